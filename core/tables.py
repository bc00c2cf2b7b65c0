"""`--formats parquet`: a run's events and per-window scores as two Parquet datasets that pandas, DuckDB, Spark
and Ray read as tables.

Called by whichever thread writes a file's exports (the command line's main thread, locally or as the Ray
driver); pyarrow is imported on the first call (`pip install '.[cluster]'`). Layout under --out:

    parquet/events/model=<model>-<hash8>/<part>.parquet   one row per event
    parquet/scores/model=<model>-<hash8>/<part>.parquet   one row per (window, label): long, so that runs of
                                                          models with other labels share one schema

`model=...` is a Hive partition (the model's name and 8 hex of its weights' hash, core.manifest.model_hash);
<part> is 16 hex of the export's path (out folder and stem), so a rerun with --force replaces a file's part
and never adds a second one. Every row also carries the audio file, the model and the parameters (hop, window,
the event rule, the code version), so a table read alone says how it was made. Each part is written with
core.atomic.atomic_write: complete or absent, never a silent overwrite.

With review marks (`reviews=`, core.review.match_marks) the events table follows tags.csv: two more string
columns, `review` (`correct`, `wrong`, `relabel:<label name>`) and `review_note`, null on events without a
mark; relabelled events under their new label. As in tags.csv they are added only when an exported event has
a mark, so a part without marks has the schema and rows of one written before reviews existed. Notes are
stored as typed: CSV's formula guard is for spreadsheets, not for Parquet readers.
"""
from __future__ import annotations

import hashlib
import os
import re
from pathlib import Path
from typing import Mapping

import numpy as np

from core.atomic import atomic_write
from core.config import EventConfig
from core.errors import ExportError, ExportExistsError
from core.export import code_revision, reviewed_events
from core.review import Mark
from core.timeline import Event, Timeline

__all__ = ["DATASET_FORMATS", "PARQUET_DIR", "require_pyarrow", "model_tag", "parquet_paths", "write_parquet"]

DATASET_FORMATS = ("parquet",)
PARQUET_DIR = "parquet"


def require_pyarrow():
    """The pyarrow.parquet module, or ImportError's text with the install command."""
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ImportError("--formats parquet needs pyarrow, which is not installed: pip install '.[cluster]' "
                          "(or pip install pyarrow)") from None
    return pq


def model_tag(model_name: str, model_hash: str) -> str:
    """The partition value of a model: its name made safe for a folder, a dash, 8 hex of its hash."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", model_name.replace("\\", "/").rstrip("/").split("/")[-1]) or "model"
    return f"{safe[:60]}-{model_hash[:8]}"


def parquet_paths(out_root: Path, out_dir: Path, stem: str, tag: str) -> list[Path]:
    """[events part, scores part] of the export `out_dir/stem` in the datasets under out_root."""
    part = hashlib.sha256(os.fsencode(os.path.abspath(Path(out_dir) / stem))).hexdigest()[:16] + ".parquet"
    return [Path(out_root) / PARQUET_DIR / table / f"model={tag}" / part for table in ("events", "scores")]


def _common(timeline: Timeline, config: EventConfig, n: int) -> dict:
    """The provenance columns, repeated on n rows (Parquet's dictionary/RLE encoding stores them once)."""
    return {"file": [timeline.source] * n, "model_name": [timeline.model_name] * n,
            "hop_s": np.full(n, timeline.hop_s), "window_s": np.full(n, timeline.window_s),
            "on_threshold": np.full(n, config.on_threshold), "off_threshold": np.full(n, config.off_threshold),
            "median_s": np.full(n, config.median_s), "min_duration_s": np.full(n, config.min_duration_s),
            "merge_gap_s": np.full(n, config.merge_gap_s), "code_version": [code_revision()] * n}


def _review_columns(marks: list[Mark | None], timeline: Timeline) -> dict:
    """tags.csv's review columns as Parquet strings, null where an event has no mark."""
    import pyarrow as pa
    return {"review": pa.array([None if m is None else m.text(timeline.labels) for m in marks], pa.string()),
            "review_note": pa.array([None if m is None else m.note for m in marks], pa.string())}


def _tables(timeline: Timeline, events: list[Event], config: EventConfig, reviews: Mapping[Event, Mark] | None):
    import pyarrow as pa
    labels = timeline.labels
    rows, reviewed = reviewed_events(timeline, events, config, reviews)
    events = [e for e, _, _ in rows]
    idx = np.array([label.index for _, label, _ in rows], dtype=np.int32)     # a relabel's new label
    ev = pa.table({
        **_common(timeline, config, len(events)),
        "label_index": idx, "label_id": [labels[i].id for i in idx.tolist()],
        "label": [labels[i].name for i in idx.tolist()],
        "start_s": np.array([e.start_s for e in events], dtype=np.float64),
        "end_s": np.array([e.end_s for e in events], dtype=np.float64),
        "confidence": np.array([e.peak_score for e in events], dtype=np.float32),
        "mean_confidence": np.array([e.mean_score for e in events], dtype=np.float32),
        "peak_time_s": np.array([e.peak_time_s for e in events], dtype=np.float64),
        **(_review_columns([mark for _, _, mark in rows], timeline) if reviewed else {})})
    W, L = timeline.scores.shape
    names = pa.array(list(labels.names)).dictionary_encode()
    ids = pa.array(list(labels.ids)).dictionary_encode()
    label_of = np.tile(np.arange(L, dtype=np.int32), W)                                   # (W * L,)
    sc = pa.table({
        **_common(timeline, config, W * L),
        "window": np.repeat(np.arange(W, dtype=np.int32), L),
        "start_s": np.repeat(timeline.starts_s, L), "end_s": np.repeat(timeline.ends_s, L),
        "label_index": label_of,
        "label_id": pa.DictionaryArray.from_arrays(pa.array(label_of), ids.dictionary),
        "label": pa.DictionaryArray.from_arrays(pa.array(label_of), names.dictionary),
        "score": timeline.scores.astype(np.float32).reshape(-1)})                         # row-major: window, label
    return ev, sc


def write_parquet(timeline: Timeline, events: list[Event], config: EventConfig, out_root: Path, out_dir: Path,
                  stem: str, tag: str, overwrite: bool = False, reviews: Mapping[Event, Mark] | None = None
                  ) -> list[Path]:
    """Write the file's part of both datasets; ExportExistsError without overwrite when a part exists (nothing
    written), ExportError on an OS error (the parts written before it stay, complete). reviews: as
    core.export.export_timeline's (ConfigError for a relabel the model lacks, before anything is written)."""
    pq = require_pyarrow()
    paths = parquet_paths(out_root, out_dir, stem, tag)
    if not overwrite and (existing := [p for p in paths if p.exists()]):
        raise ExportExistsError(f"{existing[0]} already exists; nothing was written. Pass --force to replace it.",
                                existing)
    for path, table in zip(paths, _tables(timeline, events, config, reviews)):
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            with atomic_write(path, "wb", overwrite=overwrite) as f:
                pq.write_table(table, f, compression="zstd")
        except FileExistsError:
            raise ExportExistsError(f"{path} already exists; pass --force to replace it", [path]) from None
        except OSError as e:
            raise ExportError(f"could not write {path}: {e.strerror or e}; free some space or choose another "
                              "folder, then run again") from e
    return paths


def export_targets(out_dir: Path, stem: str, formats: list[str], out_root: Path | None, tag: str | None) -> list[Path]:
    """Every file `export_file` would write for one input."""
    from core.export import target_paths
    csv_keys = [k for k in formats if k not in DATASET_FORMATS]
    paths = target_paths(out_dir, stem, csv_keys) if csv_keys else []
    if "parquet" in formats:
        paths += parquet_paths(out_root, out_dir, stem, tag)
    return paths


def export_file(timeline: Timeline, events: list[Event], config: EventConfig, out_dir: Path, stem: str,
                formats: list[str], overwrite: bool, out_root: Path | None = None, tag: str | None = None,
                reviews: Mapping[Event, Mark] | None = None) -> list[Path]:
    """One analysed file's exports as `analyze` writes them, with or without --cluster: the set of table files
    (core.export, all or nothing), then its parts of the Parquet datasets when `parquet` is in formats; review
    marks, when given, reach both alike."""
    from core.export import export_timeline
    csv_keys = [k for k in formats if k not in DATASET_FORMATS]
    written = export_timeline(timeline, events, config, out_dir, csv_keys, stem=stem, overwrite=overwrite,
                              reviews=reviews) if csv_keys else []
    if "parquet" in formats:
        written += write_parquet(timeline, events, config, out_root, out_dir, stem, tag, overwrite, reviews)
    return written
