"""Review marks: kept per recording (by content) and model, atomic, a damaged store set aside; matched to the
events of a changed rule by label and overlap."""
import json
import os
import shutil
import threading
from pathlib import Path

import pytest

from core.labels import LabelSet
from core.review import Mark, ReviewError, Reviews, ReviewStore, Verdict, match_marks
from core.timeline import Event

DATA = Path(__file__).resolve().parents[1] / "data"
LABELS = LabelSet.from_names(["Dog", "Speech", "Rooster"], ids=["/m/0bt9lr", "/m/09x0r", "/m/07st88b"])
MODEL = "ast-test"


def event(label: int, start: float, end: float) -> Event:
    return Event(label, start, end, peak_score=0.9, mean_score=0.7, peak_time_s=(start + end) / 2)


@pytest.fixture
def clips(tmp_path) -> tuple[Path, Path]:
    """Two real recordings in a folder of their own (so that moving them does not touch tests/data)."""
    folder = tmp_path / "audio"
    folder.mkdir()
    return (Path(shutil.copy(DATA / "1-100032-A-0.flac", folder)), Path(shutil.copy(DATA / "1-44831-A-1.flac", folder)))


@pytest.fixture
def store(tmp_path) -> ReviewStore:
    return ReviewStore(tmp_path / "data")


def test_marks_round_trip_and_replace_the_mark_of_the_same_event(store, clips):
    dog, _ = clips
    bark, talk = event(0, 1.0, 2.5), event(1, 3.0004, 4.0)
    assert store.load(dog, MODEL) == Reviews()
    store.put(dog, MODEL, Mark.of(bark, LABELS, "wrong", note="=HYPERLINK(\"x\") a door, not a dog"))
    store.put(dog, MODEL, Mark.of(talk, LABELS, Verdict.CORRECT))
    kept = store.put(dog, MODEL, Mark.of(bark, LABELS, "relabel", relabel_to="rooster", note="a rooster"))
    assert [(m.label_id, m.start_s, m.end_s, m.verdict, m.relabel_to, m.note) for m in kept.marks] == [
        ("/m/09x0r", 3.0, 4.0, Verdict.CORRECT, "", ""),
        ("/m/0bt9lr", 1.0, 2.5, Verdict.RELABEL, "/m/07st88b", "a rooster")]
    again = ReviewStore(store.folder.parent).load(dog, MODEL)                 # a new process reads the same
    assert again == Reviews(kept.marks)
    assert [m.text(LABELS) for m in again.marks] == ["correct", "relabel:Rooster"]
    assert store.load(dog, "another-model") == Reviews()                       # marks are per model
    assert store.remove(dog, MODEL, ("/m/09x0r", 3.0, 4.0)).marks == kept.marks[1:]
    assert [p.name for p in store.folder.iterdir() if p.name.startswith(".")] == []   # no temp or lock left


def test_bad_marks_are_refused_with_the_reason():
    with pytest.raises(ReviewError, match="one of correct, wrong, relabel, got 'maybe'"):
        Mark.of(event(0, 1, 2), LABELS, "maybe")
    with pytest.raises(ReviewError, match="only a relabel does"):
        Mark("/m/0bt9lr", 1.0, 2.0, Verdict.RELABEL)
    with pytest.raises(ReviewError, match="cannot relabel to 'Cat': not a label of this model"):
        Mark.of(event(0, 1, 2), LABELS, "relabel", relabel_to="Cat")
    with pytest.raises(ReviewError, match="start <= end"):
        Mark("/m/0bt9lr", 2.0, 1.0, Verdict.WRONG)


def test_two_recordings_keep_their_own_marks(store, clips):
    dog, rooster = clips
    store.put(dog, MODEL, Mark.of(event(0, 0.0, 1.0), LABELS, "correct"))
    store.put(rooster, MODEL, Mark.of(event(2, 2.0, 3.0), LABELS, "wrong"))
    assert [m.label_id for m in store.load(dog, MODEL).marks] == ["/m/0bt9lr"]
    assert [m.label_id for m in store.load(rooster, MODEL).marks] == ["/m/07st88b"]
    assert sorted(p.name for p in store.folder.glob("*.json")) == sorted(
        [f"{store.digest(dog)}.json", f"{store.digest(rooster)}.json", "digests.json"])


def test_a_damaged_store_file_is_set_aside_reported_and_the_others_kept(store, clips):
    dog, rooster = clips
    store.put(dog, MODEL, Mark.of(event(0, 0.0, 1.0), LABELS, "correct"))
    store.put(rooster, MODEL, Mark.of(event(2, 2.0, 3.0), LABELS, "wrong"))
    damaged = store.folder / f"{store.digest(dog)}.json"
    damaged.write_text('{"format": "ast-tagger-reviews", "models": {"ast-test": [{"label_id": ', encoding="utf-8")
    loaded = store.load(dog, MODEL)
    assert loaded.marks == () and "could not be read" in loaded.warning and "\n" not in loaded.warning
    aside = list(store.folder.glob(f"{damaged.name}.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text(encoding="utf-8").endswith('"label_id": ')   # nothing lost
    assert aside[0].name in loaded.warning
    assert [m.verdict for m in store.load(rooster, MODEL).marks] == [Verdict.WRONG]   # the other file's marks
    store.put(dog, MODEL, Mark.of(event(0, 0.0, 1.0), LABELS, "wrong"))          # and it works again
    assert [m.verdict for m in store.load(dog, MODEL).marks] == [Verdict.WRONG]
    damaged.write_text(json.dumps({"format": "ast-tagger-reviews", "models": {MODEL: [{"label_id": 3}]}}))
    assert "could not be read" in store.load(dog, MODEL).warning                 # valid JSON, not marks


def test_a_moved_recording_is_found_again_by_its_content(store, clips, tmp_path):
    dog, _ = clips
    store.put(dog, MODEL, Mark.of(event(0, 1.0, 2.0), LABELS, "correct"))
    moved = tmp_path / "elsewhere" / "renamed.flac"
    moved.parent.mkdir()
    os.replace(dog, moved)
    os.utime(moved, (1e9, 1e9))                                                   # even with another mtime
    assert [m.key for m in store.load(moved, MODEL).marks] == [("/m/0bt9lr", 1.0, 2.0)]
    copy = shutil.copy(moved, tmp_path / "copy.flac")                             # a copy is the same recording
    assert store.load(copy, MODEL).marks == store.load(moved, MODEL).marks
    with pytest.raises(ReviewError, match="cannot read .*missing.flac' to find its reviews"):
        store.load(tmp_path / "missing.flac", MODEL)


def test_digests_are_remembered_per_file_version(store, clips):
    dog, _ = clips
    first = store.digest(dog)
    stat = os.stat(dog)
    data = bytearray(dog.read_bytes())
    data[-1] ^= 0xFF
    dog.write_bytes(bytes(data))
    os.utime(dog, ns=(stat.st_atime_ns, stat.st_mtime_ns))                       # same size and time:
    assert store.digest(dog) == first                                             # the remembered digest
    os.utime(dog, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1))                   # touched: hashed again
    assert store.digest(dog) != first
    (store.folder / "digests.json").write_text("[not json")                       # a damaged cache costs a hash
    assert store.digest(dog) != first and json.loads((store.folder / "digests.json").read_text())


def test_two_writers_never_lose_each_others_marks(tmp_path, clips):
    dog, _ = clips
    stores = [ReviewStore(tmp_path / "data"), ReviewStore(tmp_path / "data")]   # two windows

    def mark_many(store: ReviewStore, label: int) -> None:
        for k in range(15):
            store.put(dog, MODEL, Mark.of(event(label, k, k + 0.5), LABELS, "correct"))

    threads = [threading.Thread(target=mark_many, args=(s, i)) for i, s in enumerate(stores)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(stores[0].load(dog, MODEL).marks) == 30


def test_marks_follow_events_when_the_rule_moves_them():
    marks = [Mark.of(event(0, 10.0, 14.0), LABELS, "correct"), Mark.of(event(0, 20.0, 21.0), LABELS, "wrong"),
             Mark.of(event(1, 30.0, 32.0), LABELS, "relabel", relabel_to="Dog")]
    same, shrunk, grown = event(0, 10.0, 14.0), event(0, 11.0, 13.0), event(0, 9.0, 15.0)
    left, right = event(0, 10.0, 11.5), event(0, 12.5, 14.0)                     # a higher threshold split it
    merged = event(0, 10.0, 21.0)                                                 # a lower one merged two
    other_label = event(2, 10.0, 14.0)
    grazing = event(0, 13.5, 18.0)                                                # overlaps 0.5 s of a 4 s mark
    talk = event(1, 30.0004, 31.9996)
    matched = match_marks([same, shrunk, grown, left, right, merged, other_label, grazing, talk], LABELS, marks)
    assert {e: m.verdict.value for e, m in matched.items()} == {
        same: "correct", shrunk: "correct", grown: "correct", left: "correct", right: "correct",
        merged: "correct", talk: "relabel"}
    assert matched[talk].text(LABELS) == "relabel:Dog"
    exact_first = marks + [Mark.of(event(0, 9.0, 15.0), LABELS, "wrong")]
    assert match_marks([grown, same], LABELS, exact_first)[grown].verdict is Verdict.WRONG   # exact beats overlap
    assert match_marks([same], LABELS, exact_first)[same].verdict is Verdict.CORRECT
