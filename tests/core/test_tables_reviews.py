"""Reviewed Parquet: the events dataset gets tags.csv's `review` and `review_note` columns, by tags.csv's rule
(only when an exported event has a mark); without marks, the schema and rows of before reviews reached it."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from core.export import code_revision
from core.review import Mark
from core.tables import export_file, write_parquet
from core.timeline import Event
from tests.core.test_export import CONFIG, EVENTS, LABELS, make_timeline, read_csv

pq = pytest.importorskip("pyarrow.parquet", reason="pyarrow is not installed (pip install '.[cluster]')")

TAG = "ast-test-01234567"
TALK = Event(0, 2.0, 3.0, 0.7, 0.6, 2.5)          # Speech 2-3 s, never reviewed

# sha256 (16 hex) of each table's schema and rows (code_version left out: it names the checkout), written by
# core/tables.py before it knew reviews (commit 3113c44)
BEFORE_REVIEWS = {"events": "66cbcf30423caa10", "scores": "8652b5ab0ed87518"}


def content(path: Path) -> str:
    """16 hex of the table's schema and rows; its code_version column must be this checkout's."""
    table = pq.read_table(path)
    assert set(table.column("code_version").to_pylist()) == {code_revision()}
    rows = table.drop_columns(["code_version"]).to_pylist()
    return hashlib.sha256((table.schema.to_string() + json.dumps(rows)).encode()).hexdigest()[:16]


def write(folder: Path, reviews=None, formats=("tags", "parquet")) -> dict[str, Path]:
    """export_file of the test timeline (EVENTS and TALK) into folder: {"tags": ..., "events": ..., "scores": ...}."""
    paths = export_file(make_timeline(), EVENTS + [TALK], CONFIG, folder, "dog walk", list(formats), False,
                        folder, TAG, reviews=reviews)
    return dict(zip([k for k in formats if k != "parquet"] + (["events", "scores"] if "parquet" in formats else []),
                    paths))


@pytest.mark.parametrize("reviews", [None, {}, "not exported"])
def test_without_marks_on_its_events_the_parquet_tables_are_as_before(tmp_path, reviews):
    if reviews == "not exported":             # a mark of an event this export does not hold adds no column
        other = Event(1, 8.0, 9.0, 0.9, 0.9, 8.5)
        reviews = {other: Mark.of(other, LABELS, "wrong")}
    parts = write_parquet(make_timeline(), EVENTS + [TALK], CONFIG, tmp_path, tmp_path, "dog walk", TAG,
                          reviews=reviews)
    before = write_parquet(make_timeline(), EVENTS + [TALK], CONFIG, tmp_path / "plain", tmp_path, "dog walk", TAG)
    assert {"events": content(parts[0]), "scores": content(parts[1])} == BEFORE_REVIEWS
    assert [content(p) for p in before] == list(BEFORE_REVIEWS.values())


def test_reviewed_parquet_events_carry_the_review_columns_of_tags_csv(tmp_path):
    marks = {EVENTS[1]: Mark.of(EVENTS[1], LABELS, "relabel", relabel_to="Speech", note="=cmd|' /C calc'!A0"),
             EVENTS[0]: Mark.of(EVENTS[0], LABELS, "wrong", note="a kettle")}
    files = write(tmp_path, marks)
    events = pq.read_table(files["events"])
    assert events.column_names[-2:] == ["review", "review_note"]
    assert [str(events.schema.field(name).type) for name in ("review", "review_note")] == ["string", "string"]
    rows = events.to_pylist()
    tags = read_csv(files["tags"])[1:]
    # the same events in the same order, under the same label (a relabel's new one), with the same verdicts
    assert [(r["label_id"], r["label"], r["label_index"], r["review"] or "") for r in rows] == \
           [(t[2], t[3], int(t[10]), t[-2]) for t in tags] == [
               ("/m/09x0r", "Speech", 0, "relabel:Speech"), ("/m/09x0r", "Speech", 0, ""),
               ("/t/dd00002", "Baby cry, infant cry", 2, "wrong")]
    # notes as typed: the formula guard is for spreadsheets opening CSV, and Parquet is no spreadsheet
    assert [r["review_note"] for r in rows] == ["=cmd|' /C calc'!A0", None, "a kettle"]
    assert [t[-1] for t in tags] == ["'=cmd|' /C calc'!A0", "", "a kettle"]
    assert rows[1]["review"] is None                              # not reviewed: null, as pandas reads the empty cell
    assert content(files["scores"]) == BEFORE_REVIEWS["scores"]   # scores have no events: unchanged


def test_a_relabel_the_model_lacks_is_refused_before_any_parquet_part(tmp_path):
    from core.errors import ConfigError
    from core.review import Verdict
    stranger = Mark("/m/0bt9lr", 0.0, 1.5, Verdict.RELABEL, relabel_to="/m/01yrx")   # Cat: not in LABELS
    with pytest.raises(ConfigError, match="not labels of its model"):
        write(tmp_path, {EVENTS[1]: stranger}, formats=("parquet",))
    assert not list(tmp_path.rglob("*.parquet"))


def test_parts_with_and_without_marks_read_as_one_table_by_name(tmp_path):
    """The recipe docs/policies.md gives for a dataset whose parts differ in the review columns."""
    duckdb = pytest.importorskip("duckdb")
    write_parquet(make_timeline("a.wav"), EVENTS, CONFIG, tmp_path, tmp_path, "a", TAG)
    write_parquet(make_timeline("b.wav"), EVENTS, CONFIG, tmp_path, tmp_path, "b", TAG,
                  reviews={EVENTS[1]: Mark.of(EVENTS[1], LABELS, "correct")})
    rows = duckdb.sql(f"select file, label, review from read_parquet('{tmp_path}/parquet/events/**/*.parquet', "
                      "hive_partitioning=true, union_by_name=true) order by file, start_s").fetchall()
    assert rows == [("a.wav", "Dog", None), ("a.wav", "Baby cry, infant cry", None),
                    ("b.wav", "Dog", "correct"), ("b.wav", "Baby cry, infant cry", None)]
