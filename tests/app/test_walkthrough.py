"""The README's walkthrough (app/walkthrough.py): its 10-minute scene is the same every time and made of CC0 clips
only, its reviews follow the scene it built, a missing ESC-50 is one line, and the whole walkthrough runs in the
real window (offscreen, without sound: playing is skipped as where no output can start)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import soundfile as sf

import app.walkthrough as walkthrough
from core.labels import ESC50_CSV, LabelSet
from core.timeline import Event
from tests.conftest import SHARED

ESC50 = SHARED / "esc50"
needs_esc50 = pytest.mark.skipif(not (ESC50 / "manifest.csv").is_file(), reason=f"no ESC-50 at {ESC50}")


@needs_esc50
def test_the_scene_is_ten_minutes_of_cc0_clips_and_the_same_every_time(tmp_path):
    first = walkthrough.make_long_scene(ESC50, tmp_path / "a.flac")
    again = walkthrough.make_long_scene(ESC50, tmp_path / "b.flac")
    assert first == again and sf.read(tmp_path / "a.flac")[0].tobytes() == sf.read(tmp_path / "b.flac")[0].tobytes()
    assert sf.info(tmp_path / "a.flac").duration == walkthrough.SCENE_S
    starts = [t for t, _ in first]
    gaps = [b - (a + 5.0) for a, b in zip(starts, starts[1:])]
    assert 40 <= len(first) <= 60 and all(5.0 <= g <= 10.0 for g in gaps)          # one clip at a time
    with open(tmp_path / "a.credits.csv", encoding="utf-8") as f:
        credits = list(csv.DictReader(f))
    assert [(float(r["start_s"]), r["category"]) for r in credits] == [(round(t, 3), c) for t, c in first]
    assert {r["license"] for r in credits} == {"CC0"} and all(r["author"] and r["freesound_url"] for r in credits)


def test_reviews_follow_the_clip_under_the_event():
    labels = LabelSet.from_csv(ESC50_CSV)
    placed = [(10.0, "dog"), (20.0, "rooster")]
    dog, rooster = labels.find("Dog").index, labels.find("rooster")
    event = lambda label, start, end: Event(label, start, end, 0.9, 0.8, start)   # noqa: E731
    assert walkthrough.truth(event(dog, 10.5, 14.0), labels, placed) == ("correct", "")
    assert walkthrough.truth(event(dog, 20.5, 24.0), labels, placed) == ("relabel", rooster.id)
    assert walkthrough.truth(event(dog, 16.0, 19.0), labels, placed) == ("wrong", "")     # between the clips


def test_without_esc50_it_says_where_to_find_it(tmp_path, capsys):
    assert walkthrough.main(["--esc50", str(tmp_path / "nowhere"), "--out", str(tmp_path),
                             "--work", str(tmp_path / "work")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: no ESC-50 at ") and "--esc50" in err and len(err.splitlines()) == 1


@needs_esc50
def test_the_walkthrough_runs_in_the_window(tmp_path):
    """In a process of its own, as docs/walkthrough.sh runs it (a QApplication of its own, the app's exit)."""
    code = ("import sys, pathlib, app.walkthrough as w; w.VMIC = pathlib.Path('/nonexistent'); "
            f"sys.exit(w.main(['--out', {str(tmp_path)!r}, '--work', {str(tmp_path / 'work')!r}]))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600,
                          cwd=Path(__file__).resolve().parents[2], env={**os.environ, "QT_QPA_PLATFORM": "offscreen"})
    assert done.returncode == 0, done.stderr[-2000:]
    assert "note: not playing" in done.stderr
    out = done.stdout
    assert all(f"reviewed {v}:" in out for v in ("correct", "wrong", "relabel"))
    with open(tmp_path / "work" / "tables" / "scene-10min.tags.csv", encoding="utf-8") as f:
        reviews = sorted(r["review"].split(":")[0] for r in csv.DictReader(f) if r["review"])
    assert reviews == ["correct", "relabel", "wrong"]
    assert (tmp_path / "work" / "tables" / "short.tags.csv").is_file()                # a set per file
    assert len(list((tmp_path / "work" / "clips").rglob("*.flac"))) == 2              # correct + relabelled
    for name in ("walkthrough-file.png", "walkthrough-event.png"):
        assert (tmp_path / name).stat().st_size > 50_000
