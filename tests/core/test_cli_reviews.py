"""`analyze --reviews`: the marks made in the window (core.review.ReviewStore, this user's data folder) reach
the command line's exports: tags.csv's and the Parquet events' review columns, the combined table, and the
formats without a review column as the window's exports write them (relabelled, wrong left out)."""
from __future__ import annotations

import csv
from pathlib import Path

import pytest

from core.analyze import Analyzer
from core.cli import main
from core.config import EventConfig
from core.events import detect_events
from core.modelfile import load_model
from core.review import Mark, ReviewStore
from core.scorer import Scorer


@pytest.fixture
def store(tmp_path, monkeypatch) -> ReviewStore:
    """The user's review store, in a private data folder (platformdirs reads XDG_DATA_HOME)."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    return ReviewStore()


def tags(folder: Path) -> list[dict]:
    (path,) = folder.glob("*.tags.csv")
    return list(csv.DictReader(open(path, encoding="utf-8")))


def test_analyze_reviews_writes_the_windows_marks(tiny_hf_dir, esc50_clip, store, tmp_path):
    timeline = Analyzer(Scorer(load_model(str(tiny_hf_dir)), "cpu"), hop_s=1.0).analyze(str(esc50_clip))
    first, second = detect_events(timeline, EventConfig())[:2]
    labels = timeline.labels
    other = next(label.name for label in labels if label.index != second.label_index)
    store.put(esc50_clip, timeline.model_name, Mark.of(first, labels, "wrong", note="a door, not a dog"))
    store.put(esc50_clip, timeline.model_name, Mark.of(second, labels, "relabel", relabel_to=other))
    args = ["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--quiet", "--formats", "tags,audacity"]

    assert main([*args, "--out", str(tmp_path / "plain")]) == 0
    assert "review" not in tags(tmp_path / "plain")[0]               # without --reviews: as before

    out = tmp_path / "reviewed"
    assert main([*args, "--out", str(out), "--reviews"]) == 0
    rows = tags(out)
    assert [r["review"] for r in rows[:2]] == ["wrong", f"relabel:{other}"]
    assert rows[0]["review_note"] == "a door, not a dog" and {r["review"] for r in rows[2:]} <= {""}
    (audacity,) = out.glob("*.labels.txt")
    names = [line.split("\t")[2] for line in audacity.read_text(encoding="utf-8").splitlines()]
    assert len(names) == len(rows) - 1 and names[0].rsplit(" (", 1)[0] == other   # wrong left out, relabel written
    combined = tmp_path / "combined"
    assert main([*args[:-1], "tags", "--out", str(combined), "--reviews", "--combined"]) == 0
    rows = list(csv.DictReader(open(combined / "combined.tags.csv", encoding="utf-8")))
    assert [r["review"] for r in rows[:2]] == ["wrong", f"relabel:{other}"]


def test_analyze_reviews_reaches_the_parquet_events(tiny_hf_dir, esc50_clip, store, tmp_path):
    pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install '.[cluster]')")
    timeline = Analyzer(Scorer(load_model(str(tiny_hf_dir)), "cpu"), hop_s=1.0).analyze(str(esc50_clip))
    first = detect_events(timeline, EventConfig())[0]
    store.put(esc50_clip, timeline.model_name, Mark.of(first, timeline.labels, "correct"))
    out = tmp_path / "out"
    assert main(["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--quiet", "--formats", "parquet",
                 "--out", str(out), "--reviews"]) == 0
    (events,) = out.rglob("events/**/*.parquet")
    assert pq.read_table(events).column("review").to_pylist()[0] == "correct"


def test_reviews_with_cluster_is_refused_in_one_line(tiny_hf_dir, esc50_clip, tmp_path, capsys):
    assert main(["analyze", str(esc50_clip), "--model", str(tiny_hf_dir), "--out", str(tmp_path),
                 "--reviews", "--cluster", "ray"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--reviews" in err[0] and "--cluster" in err[0]
