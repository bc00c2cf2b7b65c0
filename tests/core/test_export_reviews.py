"""Reviewed exports: a `review` column where the format has room for it, relabelled events under their new
label, wrong events left out of the formats that cannot say so; without reviews, the bytes of before."""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from core.errors import ConfigError
from core.export import FORMATS, export_combined, export_timeline
from core.review import Mark, Verdict, match_marks
from core.timeline import Event
from tests.core.test_export import CONFIG, EVENTS, LABELS, make_timeline, read_csv, read_tsv

PER_FILE = list(FORMATS)
COMBINABLE = [k for k in FORMATS if k not in ("audacity", "sv")]


def fixed_timeline(source: str = "clips/dog walk.wav", **kwargs):
    """make_timeline with a fixed code version (params.csv would name this checkout's commit)."""
    return make_timeline(source, extra={"weights": "ast-test.safetensors", "code_version": "fixed"}, **kwargs)


def digests(paths: list[Path]) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:16] for p in paths}


# sha256 (16 hex) of every file, written by core/export.py before reviews existed (commit 5aaabfd)
BEFORE_REVIEWS = {
    "dog walk.tags.csv": "eaaa26035d1cfd70",
    "dog walk.labels.txt": "c56b5b6fd352db2c",
    "dog walk.selections.txt": "59eebfe752439c2d",
    "dog walk.sv.csv": "0e4e5b5177eadd4c",
    "dog walk.BirdNET.csv": "d1f0197f612179d4",
    "dog walk.events.tsv": "4e678a09707c32f1",
    "dog walk.scores.csv": "3374b189706c206d",
    "dog walk.params.csv": "e19574ae44c3e108",
    "combined/combined.tags.csv": "04c9a451df5cb1bf",
    "combined/combined.selections.txt": "5891c403f723e85c",
    "combined/combined.BirdNET.csv": "d970fe1894f03380",
    "combined/combined.events.tsv": "c4638930a4fa8345",
    "combined/combined.scores.csv": "45552adc4e3c7417",
    "combined/combined.params.csv": "60385e791a554ad0",
}


def test_without_reviews_every_file_is_byte_identical_to_before(tmp_path):
    single = export_timeline(fixed_timeline(), EVENTS, CONFIG, tmp_path / "one", formats=PER_FILE)
    items = [(fixed_timeline(), EVENTS), (fixed_timeline("clips/=cat.flac", duration_s=5.0), EVENTS[:1])]
    combined = export_combined(items, CONFIG, tmp_path / "all", formats=COMBINABLE)
    assert {**digests(single), **{"combined/" + k: v for k, v in digests(combined).items()}} == BEFORE_REVIEWS


def test_no_marks_is_no_review_column(tmp_path):
    plain = export_timeline(fixed_timeline(), EVENTS, CONFIG, tmp_path / "a", formats=PER_FILE)
    empty = export_timeline(fixed_timeline(), EVENTS, CONFIG, tmp_path / "b", formats=PER_FILE, reviews={})
    assert digests(plain) == digests(empty)


def reviewed_export(tmp_path: Path, formats=PER_FILE) -> dict[str, Path]:
    """EVENTS (Dog 0-1.5 s, Baby cry 3.5-6 s) and a Speech event 2-3 s: Dog relabelled to Speech with a note
    that looks like a formula, the cry marked wrong, Speech not reviewed."""
    talk = Event(0, 2.0, 3.0, 0.7, 0.6, 2.5)
    marks = {EVENTS[1]: Mark.of(EVENTS[1], LABELS, "relabel", relabel_to="Speech", note="=cmd|' /C calc'!A0"),
             EVENTS[0]: Mark.of(EVENTS[0], LABELS, "wrong", note="a kettle")}
    paths = export_timeline(fixed_timeline(), EVENTS + [talk], CONFIG, tmp_path, formats=formats, reviews=marks)
    return {p.name.split(".", 1)[1]: p for p in paths}


def test_tags_csv_carries_the_review_and_the_new_label(tmp_path):
    rows = read_csv(reviewed_export(tmp_path)["tags.csv"])
    assert rows[0][-3:] == ["clock_start", "review", "review_note"]
    dog, talk, cry = rows[1:]
    assert dog[:6] == ["0.000", "1.500", "/m/09x0r", "Speech", "0.9500", "clips/dog walk.wav"]
    assert dog[10] == "0" and dog[8] == "0.8000"          # the new label's index; the threshold that found it
    assert dog[-2:] == ["relabel:Speech", "'=cmd|' /C calc'!A0"]              # a note is never a formula
    assert talk[2:4] == ["/m/09x0r", "Speech"] and talk[-2:] == ["", ""]     # not reviewed
    assert cry[3] == "Baby cry, infant cry" and cry[-2:] == ["wrong", "a kettle"]
    assert all(len(row) == 17 for row in rows)


def test_raven_keeps_every_event_with_review_columns(tmp_path):
    rows = read_tsv(reviewed_export(tmp_path)["selections.txt"])
    assert rows[0][-3:] == ["File Offset (s)", "Review", "Review Note"]
    assert [(r[0], r[7], r[12], r[13]) for r in rows[1:]] == [
        ("1", "Speech", "relabel:Speech", "'=cmd|' /C calc'!A0"), ("2", "Speech", "", ""),
        ("3", "Baby cry, infant cry", "wrong", "a kettle")]


def test_formats_without_a_review_column_write_what_the_reviewer_accepted(tmp_path):
    files = reviewed_export(tmp_path)
    assert read_tsv(files["labels.txt"]) == [["0.000", "1.500", "Speech (0.95)"], ["2.000", "3.000", "Speech (0.70)"]]
    assert [r[3] for r in read_csv(files["sv.csv"])[1:]] == ["Speech", "Speech"]
    assert read_csv(files["BirdNET.csv"])[1:] == [
        ["0.000", "1.500", "/m/09x0r", "Speech", "0.9500", "clips/dog walk.wav"],
        ["2.000", "3.000", "/m/09x0r", "Speech", "0.7000", "clips/dog walk.wav"]]
    assert [r[3] for r in read_tsv(files["events.tsv"])[1:]] == ["Speech", "Speech"]
    assert read_csv(files["BirdNET.csv"])[0] == read_csv(files["tags.csv"])[0][:6]   # still strict BirdNET


def test_combined_tables_have_review_columns_when_any_file_has_marks(tmp_path):
    cat = fixed_timeline("clips/cat.flac", duration_s=5.0)
    marks = [None, {EVENTS[1]: Mark.of(EVENTS[1], LABELS, "correct")}]
    paths = export_combined([(fixed_timeline(), EVENTS), (cat, EVENTS)], CONFIG, tmp_path,
                            formats=["tags", "raven", "dcase"], reviews=marks)
    tags = read_csv(paths[0])
    assert [(r[5], r[3], r[-2]) for r in tags[1:]] == [
        ("clips/dog walk.wav", "Dog", ""), ("clips/dog walk.wav", "Baby cry, infant cry", ""),
        ("clips/cat.flac", "Dog", "correct"), ("clips/cat.flac", "Baby cry, infant cry", "")]
    assert [r[-2] for r in read_tsv(paths[1])[1:]] == ["", "", "correct", ""]
    with pytest.raises(ValueError, match="one mapping .* per exported source: 2 sources, 1 review"):
        export_combined([(fixed_timeline(), EVENTS), (cat, EVENTS)], CONFIG, tmp_path / "x", reviews=marks[:1])


def test_a_relabel_to_a_label_the_model_lacks_is_refused_before_writing(tmp_path):
    stranger = Mark("/m/0bt9lr", 0.0, 1.5, Verdict.RELABEL, relabel_to="/m/01yrx")   # Cat: not in LABELS
    with pytest.raises(ConfigError, match=r"relabel events to \['/m/01yrx'\], which are not labels of its model"):
        export_timeline(fixed_timeline(), EVENTS, CONFIG, tmp_path, reviews={EVENTS[1]: stranger})
    assert list(tmp_path.iterdir()) == []


def test_marks_from_the_store_reach_the_export_after_a_rule_change(tmp_path):
    """The window's path: marks saved for events of one threshold, events of another, match_marks, export."""
    marks = [Mark("/m/0bt9lr", 0.0, 2.0, Verdict.WRONG)]                       # Dog reviewed at 0-2 s
    moved = Event(1, 0.0, 1.5, 0.95, 0.875, 1.0)                                # the Dog event at a new threshold
    matched = match_marks([moved, EVENTS[0]], LABELS, marks)
    [path] = export_timeline(fixed_timeline(), [moved, EVENTS[0]], CONFIG, tmp_path, formats=["tags"],
                             reviews=matched)
    assert [(r[3], r[-2]) for r in read_csv(path)[1:]] == [("Dog", "wrong"), ("Baby cry, infant cry", "")]
