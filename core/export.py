"""Writers of the export formats in docs FORMATS.md: one event list, several files; atomic, never a silent overwrite.

Pure functions over immutable values (a Timeline, a list of Events, an EventConfig); the file-analysis
thread, the live tagger thread or the GUI thread call them. No Qt, no torch.

Times are seconds from the start of the source, written with exactly 3 decimals; scores with 4.
CSV files: UTF-8, comma separated, RFC 4180 quoting (label names contain commas), "\\n" line ends.
TSV / txt files: TAB separated; tabs and line breaks inside names and paths become spaces.
Text cells (labels, ids, paths, model names; never numbers) that a spreadsheet would run as a formula,
those starting with = + - @ TAB or CR, get a leading ' (OWASP, "CSV injection"; docs/policies.md).
File-name bytes that are not UTF-8 are written as \\xNN, so every file stays valid UTF-8.

Safety: the files of one call are one set, written with core.atomic.write_set: under an exclusive lock on
the stem in the output folder (two processes never mix their files), every target is checked
(ExportExistsError unless overwrite; nothing written), every file goes to a temp file that is fsynced, and
only then are all renamed into place. On an OS error (disk full, no permission), SIGINT or SIGTERM nothing
of the set is left: files renamed are removed again and files replaced are restored; ExportError names
the file and the reason. Temp files of a killed run are removed by the next export into that folder.
"""
from __future__ import annotations

import csv
import functools
import json
import os
import subprocess
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import IO, Callable, Iterable, Iterator, Mapping, Sequence, TextIO

import numpy as np

from core.atomic import LockTimeout, SetExistsError, SetWriteError, write_set
from core.config import EventConfig
from core.errors import ConfigError, ExportError, ExportExistsError
from core.events import median_windows, thresholds_for
from core.labels import Label
from core.review import Mark, Verdict
from core.timeline import Event, Timeline

__all__ = ["FORMATS", "DEFAULT_FORMATS", "REVIEW_FORMATS", "PACKAGE_VERSION", "COMBINED_REFUSED", "code_revision",
           "code_version", "export_timeline", "export_combined", "reviewed_events", "target_paths", "write_export_set"]

PACKAGE_VERSION = "0.1.0"

FORMATS: dict[str, str] = {          # format key (CLI) -> file name suffix after the stem
    "tags": ".tags.csv",             # the main CSV (FORMATS.md section 1)
    "audacity": ".labels.txt",       # Audacity label track
    "raven": ".selections.txt",      # Raven selection table
    "sv": ".sv.csv",                 # Sonic Visualiser regions
    "birdnet": ".BirdNET.csv",       # BirdNET-Analyzer CSV, six columns only
    "dcase": ".events.tsv",          # DCASE / sed_eval event list
    "scores": ".scores.csv",         # per-window score curves of every label
    "params": ".params.csv",         # parameters and provenance
}
DEFAULT_FORMATS = ("tags", "scores", "params")
# No file column: a combined table would put several recordings on one timeline, so only one file per table.
COMBINED_REFUSED = ("audacity", "sv")
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")   # OWASP CSV injection: cells a spreadsheet evaluates

TAGS_HEADER = ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File", "model",
               "overlap", "min_conf", "window", "label_index", "mean_confidence", "peak_time", "source",
               "clock_start"]
BIRDNET_HEADER = TAGS_HEADER[:6]
RAVEN_HEADER = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                "High Freq (Hz)", "Common Name", "Scientific Name", "Confidence", "Begin Path",
                "File Offset (s)"]
SV_HEADER = ["TIME", "VALUE", "DURATION", "LABEL"]
DCASE_HEADER = ["filename", "onset", "offset", "event_label"]
TAGS_REVIEW_HEADER = ["review", "review_note"]           # after the columns above, in reviewed exports only
RAVEN_REVIEW_HEADER = ["Review", "Review Note"]          # Raven keeps extra columns as annotations


@dataclass(frozen=True)
class _Part:
    """One source in an export: its timeline, sorted events, (L, 2) thresholds, start in a run-on table (s),
    and the review marks of its events (core.review.match_marks)."""

    timeline: Timeline
    events: list[Event]
    thresholds: np.ndarray
    offset_s: float
    reviews: Mapping[Event, Mark] = field(default_factory=dict)


def _reviewed(parts: list[_Part]) -> bool:
    """Whether the tables get review columns: any event of the export has a mark."""
    return any(part.reviews for part in parts)


def _labelled(part: _Part, keep_wrong: bool) -> Iterator[tuple[Event, Label, Mark | None]]:
    """Each event with the label it is exported under (a relabel's new label) and its mark; events marked
    wrong only where keep_wrong (formats with a review column; the others show what the reviewer accepted)."""
    labels = part.timeline.labels
    for e in part.events:
        mark = part.reviews.get(e)
        if mark is not None and mark.verdict is Verdict.WRONG and not keep_wrong:
            continue
        relabelled = mark is not None and mark.verdict is Verdict.RELABEL
        yield e, labels.find(mark.relabel_to) if relabelled else labels[e.label_index], mark


def _review_cells(mark: Mark | None, part: _Part) -> list[str]:
    return ["", ""] if mark is None else [_text(mark.text(part.timeline.labels)), _text(mark.note)]


def _t3(seconds: float) -> str:
    """A time in seconds with exactly 3 decimals (never '-0.000')."""
    return f"{round(float(seconds), 3) + 0.0:.3f}"


def _c4(score: float) -> str:
    return f"{float(score):.4f}"


def _text(value: object) -> str:
    """A text cell (label, id, path, name): valid UTF-8 (undecodable file-name bytes as \\xNN), never a
    formula (a leading = + - @ TAB or CR gets a ' in front, OWASP), line breaks as \\n (quoted in CSV,
    a space in TSV). Numbers never pass through here."""
    text = str(value)
    try:
        text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    if text.startswith(_FORMULA_STARTS):
        text = "'" + text
    return text.replace("\r\n", "\n").replace("\r", "\n")   # a bare CR would not be quoted by csv


def _value(value: object) -> str:
    """A params.csv value: floats without drift, containers as JSON, text as _text."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, (dict, list, tuple)):
        return _text(json.dumps(value, default=str))
    if hasattr(value, "isoformat"):
        return value.isoformat()
    if isinstance(value, (bool, int, float)):
        return str(value)
    return _text(value)


def _flat(text: str) -> str:
    """A field for a TAB-separated file: no tabs, no line breaks."""
    return text.replace("\t", " ").replace("\r", " ").replace("\n", " ")


def _clock(timeline: Timeline, start_s: float) -> str:
    """ISO-8601 wall-clock onset with UTC offset for live timelines, '' for files."""
    if timeline.kind == "file" or timeline.clock_start is None:
        return ""
    clock = timeline.clock_start
    if clock.tzinfo is None:
        clock = clock.astimezone()   # naive: take it as local time and attach the local offset
    return (clock + timedelta(seconds=round(start_s, 3))).isoformat(timespec="milliseconds")


@functools.lru_cache(maxsize=1)
def code_revision() -> str:
    """The code's revision, one form for exports (params.csv `code_version`) and model-file provenance:
    $CODE_REVISION where the caller knows better (a copy on another machine carries stale git data),
    else the commit of this checkout plus '-dirty' when tracked files are modified, else PACKAGE_VERSION.
    Computed once; never raises."""
    if os.environ.get("CODE_REVISION"):
        return os.environ["CODE_REVISION"]
    root = Path(__file__).resolve().parent.parent
    env = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}   # never take the index lock of a shared tree
    try:
        def git(*args: str) -> subprocess.CompletedProcess:
            return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=10,
                                  check=False, env=env)
        commit = git("rev-parse", "--verify", "HEAD")
        if commit.returncode == 0 and commit.stdout.strip():
            dirty = git("status", "--porcelain", "--untracked-files=no").stdout.strip()
            return commit.stdout.strip() + ("-dirty" if dirty else "")
    except Exception:   # no git, no repository, timeout, odd environment: fall back
        pass
    return PACKAGE_VERSION


code_version = code_revision   # the name params.csv's row has; kept for callers


# ---- rows of each format; combined=True is a multi-file table -------------------------------------

def _tags_rows(parts: list[_Part], combined: bool, keep_wrong: bool = True) -> Iterator[list[str]]:
    reviewed = _reviewed(parts)
    for part in parts:
        tl = part.timeline
        for e, label, mark in _labelled(part, keep_wrong):
            row = [_t3(e.start_s), _t3(e.end_s), _text(label.id), _text(label.name), _c4(e.peak_score),
                   _text(tl.source), _text(tl.model_name), _t3(tl.window_s - tl.hop_s),
                   _c4(part.thresholds[e.label_index, 0]),
                   _t3(tl.window_s), str(label.index), _c4(e.mean_score), _t3(e.peak_time_s), _text(tl.kind),
                   _clock(tl, e.start_s)]
            yield row + _review_cells(mark, part) if reviewed else row


def _birdnet_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for row in _tags_rows(parts, combined, keep_wrong=False):
        yield row[:6]


def _audacity_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        for e, label, _ in _labelled(part, keep_wrong=False):
            yield [_t3(part.offset_s + e.start_s), _t3(part.offset_s + e.end_s),
                   _text(f"{label.name} ({e.peak_score:.2f})")]


def _raven_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    selection = 0
    reviewed = _reviewed(parts)
    for part in parts:
        tl = part.timeline
        for e, label, mark in _labelled(part, keep_wrong=True):
            selection += 1
            row = [str(selection), "Spectrogram 1", "1", _t3(part.offset_s + e.start_s),
                   _t3(part.offset_s + e.end_s), "0.000", _t3(tl.sample_rate_hz / 2), _text(label.name),
                   _text(label.id), _c4(e.peak_score), _text(tl.source), _t3(e.start_s)]
            yield row + _review_cells(mark, part) if reviewed else row


def _sv_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        for e, label, _ in _labelled(part, keep_wrong=False):
            start = round(part.offset_s + e.start_s, 3)
            end = round(part.offset_s + e.end_s, 3)
            yield [_t3(start), _c4(e.peak_score), _t3(end - start), _text(label.name)]


def _dcase_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        for e, label, _ in _labelled(part, keep_wrong=False):
            yield [_text(part.timeline.source), _t3(e.start_s), _t3(e.end_s), _text(label.name)]


def _scores_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        tl = part.timeline
        prefix = [_text(tl.source)] if combined else []
        for start, end, row in zip(tl.starts_s.tolist(), tl.ends_s.tolist(), tl.scores):
            yield prefix + [_t3(start), _t3(end)] + [f"{x:.4f}" for x in row.tolist()]


def _params_rows_of(part: _Part, config: EventConfig) -> list[list[str]]:
    tl = part.timeline
    rows: dict[str, str] = {
        "model": _text(tl.model_name), "window_s": _t3(tl.window_s), "hop_s": _t3(tl.hop_s),
        "on_threshold": _value(config.on_threshold), "off_threshold": _value(config.off_threshold),
        "median_s": _t3(config.median_s), "median_windows": str(median_windows(config.median_s, tl.hop_s)),
        "min_duration_s": _t3(config.min_duration_s),
        "merge_gap_s": _t3(config.merge_gap_s)}
    for key, _ in config.label_thresholds:          # effective on threshold, one row per label
        label = tl.labels.find(str(key))
        rows[f"threshold:{label.id}"] = _value(float(part.thresholds[label.index, 0]))
    rows.update({"device": _text(tl.device), "sample_rate_hz": str(tl.sample_rate_hz), "source": _text(tl.kind),
                 "file": _text(tl.source), "duration_s": _t3(tl.duration_s), "code_version": _text(code_revision())})
    if tl.clock_start is not None:
        rows["clock_start"] = _value(tl.clock_start)
    for key, value in tl.extra.items():             # provenance; replaces a built-in row of the same name
        rows[str(key)] = _value(value)
    return [[_text(name), value] for name, value in rows.items()]


# The formats with room for the review columns; the others write relabels and leave out events marked wrong.
_REVIEW_HEADERS = {"tags": TAGS_REVIEW_HEADER, "raven": RAVEN_REVIEW_HEADER}
REVIEW_FORMATS = frozenset(_REVIEW_HEADERS)   # an export holds every review mark only through one of these
# format key -> (delimiter, header or None, rows(parts, combined)); scores and params are built in _layout.
_WRITERS: dict[str, tuple[str, list[str] | None, Callable[[list[_Part], bool], Iterator[list[str]]]]] = {
    "tags": (",", TAGS_HEADER, _tags_rows),
    "audacity": ("\t", None, _audacity_rows),
    "raven": ("\t", RAVEN_HEADER, _raven_rows),
    "sv": (",", SV_HEADER, _sv_rows),
    "birdnet": (",", BIRDNET_HEADER, _birdnet_rows),
    "dcase": ("\t", DCASE_HEADER, _dcase_rows),
}


def _layout(key: str, parts: list[_Part], config: EventConfig, combined: bool
            ) -> tuple[str, list[str] | None, Iterable[list[str]]]:
    """(delimiter, header, rows) of one format."""
    if key == "scores":
        names = [_text(name) for name in parts[0].timeline.labels.names] if parts else []
        return ",", (["File"] if combined else []) + ["Start (s)", "End (s)"] + names, _scores_rows(parts, combined)
    if key == "params":
        if not combined:
            return ",", ["name", "value"], _params_rows_of(parts[0], config)
        rows = [row + [_text(part.timeline.source)] for part in parts for row in _params_rows_of(part, config)]
        return ",", ["name", "value", "file"], rows
    delimiter, header, make_rows = _WRITERS[key]
    if _reviewed(parts) and key in _REVIEW_HEADERS:
        header = header + _REVIEW_HEADERS[key]
    return delimiter, header, make_rows(parts, combined)


def _write_table(f: TextIO, *, delimiter: str, header: list[str] | None, rows: Iterable[list[str]]) -> None:
    if delimiter == ",":
        writer = csv.writer(f, lineterminator="\n")   # QUOTE_MINIMAL: RFC 4180 quoting where needed
        if header is not None:
            writer.writerow(header)
        writer.writerows(rows)
        return
    if header is not None:
        f.write(delimiter.join(header) + "\n")
    for row in rows:
        f.write(delimiter.join(_flat(field) for field in row) + "\n")


# ---- writing: one export set, all or nothing (core/atomic.py) -------------------------------------

def _exists_error(paths: list[Path]) -> ExportExistsError:
    names = ", ".join(str(p) for p in paths)
    what = f"{names} already exists" if len(paths) == 1 else f"{len(paths)} export files already exist: {names}"
    return ExportExistsError(f"{what}; nothing was written. Pass --force (overwrite=True) to replace, "
                             "or choose another output folder or name.", paths)


def _write_all(jobs: list[tuple[str, Path, tuple]], out_dir: Path, stem: str, overwrite: bool) -> list[Path]:
    """Write the jobs as one set under the lock of `stem` in out_dir: every file or none (see core/atomic.py)."""
    members = [(path, functools.partial(_write_table, delimiter=delimiter, header=header, rows=rows))
               for _, path, (delimiter, header, rows) in jobs]
    return write_export_set(members, out_dir, stem, overwrite)


def write_export_set(members: list[tuple[Path, Callable[[IO], None]]], out_dir: Path, stem: str, overwrite: bool,
                     mode: str = "w") -> list[Path]:
    """Write (path, write(file)) members into out_dir as one set under the lock of `stem`, every file or none
    (core.atomic.write_set; mode "w": UTF-8 text, "wb": bytes), raising the export errors: ExportExistsError
    (a target exists and not overwrite; nothing written), ExportError (an OS error; nothing kept)."""
    try:
        return write_set(members, lock_name=stem, overwrite=overwrite, mode=mode, encoding="utf-8", newline="")
    except SetExistsError as e:
        raise _exists_error(e.paths) from None
    except SetWriteError as e:
        raise ExportError(f"could not write {e.target}: {e.strerror or e}. Nothing of this export was kept "
                          "(files it would replace are unchanged); free some space or choose another folder, "
                          "then export again.") from e
    except LockTimeout as e:
        raise ExportError(f"{e}; another program is still writing {stem} files into {out_dir}. "
                          "Wait for it or choose another folder.") from e


# ---- public API -----------------------------------------------------------------------------------

def _format_keys(formats: Iterable[str] | str) -> list[str]:
    keys = [formats] if isinstance(formats, str) else list(formats)
    unknown = [k for k in keys if k not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown export format(s) {unknown}; valid formats: {', '.join(FORMATS)}")
    return list(dict.fromkeys(keys))   # drop repeats, keep order


def _check_stem(stem: str) -> str:
    if not stem or stem in (".", "..") or "/" in stem or (os.sep in stem) or (os.altsep and os.altsep in stem):
        raise ConfigError(f"export name {stem!r} must be a plain file name without folders")
    return stem


def _default_stem(timeline: Timeline) -> str:
    if timeline.source.startswith("live:"):
        return "live"
    return Path(timeline.source).stem or "export"


def target_paths(out_dir: Path, stem: str, formats: Iterable[str] = DEFAULT_FORMATS) -> list[Path]:
    """The files an export would write: out_dir / (stem + suffix) per format key, in order."""
    return [Path(out_dir) / (_check_stem(stem) + FORMATS[key]) for key in _format_keys(formats)]


def _parts(items: list[tuple[Timeline, list[Event]]], config: EventConfig,
           reviews: Sequence[Mapping[Event, Mark] | None] | None = None) -> list[_Part]:
    if reviews is not None and len(reviews) != len(items):
        raise ValueError(f"reviews must hold one mapping (or None) per exported source: {len(items)} sources, "
                         f"{len(reviews)} review mappings")
    parts, offset = [], 0.0
    for (timeline, events), marks in zip(items, reviews or [None] * len(items)):
        thresholds = thresholds_for(timeline.labels, config)   # ConfigError for an unknown label key
        bad = [e.label_index for e in events if not 0 <= e.label_index < len(timeline.labels)]
        if bad:
            raise ValueError(f"events of {timeline.source} have label indices {bad[:5]} outside the "
                             f"{len(timeline.labels)} labels of its model")
        unknown = sorted({m.relabel_to for m in (marks or {}).values()
                          if m.verdict is Verdict.RELABEL and timeline.labels.find(m.relabel_to) is None})
        if unknown:
            raise ConfigError(f"reviews of {timeline.source} relabel events to {unknown[:3]}, which are not labels "
                              f"of its model {timeline.model_name}; review them again with this model's labels")
        ordered = sorted(events, key=lambda e: (e.start_s, e.label_index, e.end_s))
        exported = set(ordered)
        kept = {e: m for e, m in (marks or {}).items() if e in exported}
        parts.append(_Part(timeline, ordered, thresholds, offset, kept))
        offset += float(timeline.duration_s)
    return parts


def _export(parts: list[_Part], config: EventConfig, out_dir: Path, formats: Iterable[str] | str, stem: str,
            overwrite: bool, combined: bool) -> list[Path]:
    out_dir = Path(out_dir)
    keys = _format_keys(formats)
    paths = target_paths(out_dir, stem, keys)
    jobs = [(key, path, _layout(key, parts, config, combined)) for key, path in zip(keys, paths)]
    return _write_all(jobs, out_dir, stem, overwrite)


def export_timeline(timeline: Timeline, events: list[Event], event_config: EventConfig, out_dir: Path,
                    formats: Iterable[str] = DEFAULT_FORMATS, stem: str | None = None,
                    overwrite: bool = False, reviews: Mapping[Event, Mark] | None = None) -> list[Path]:
    """Write the events (and scores/params) of one source; returns the paths written, in format order.

    formats: keys of FORMATS; stem: file name before the suffix, default the source file's stem ("live"
    for a `live:` source). out_dir is created if missing. Raises ConfigError (unknown format key or label
    key, bad stem, a relabel to a label the model lacks), ExportExistsError (a target exists and not
    overwrite; nothing written) or ExportError (an OS error while writing; files written before it are
    complete, no partial or temp file is left).

    reviews: the review mark of each event that has one (core.review.match_marks). When any event has one,
    tags and raven get review columns (`correct`, `wrong` or `relabel:<name>`, and the note); relabelled
    events are written under their new label in every format; the formats without a review column (audacity,
    sv, birdnet, dcase) leave out the events marked wrong. None or no marks: the tables as without reviews.
    """
    parts = _parts([(timeline, events)], event_config, None if reviews is None else [reviews])
    return _export(parts, event_config, out_dir, formats, stem or _default_stem(timeline), overwrite, False)


def reviewed_events(timeline: Timeline, events: list[Event], event_config: EventConfig,
                    reviews: Mapping[Event, Mark] | None = None) -> tuple[list[tuple[Event, Label, Mark | None]], bool]:
    """The events of one source as a table with review columns holds them, for writers outside this module
    (core.tables' Parquet): each event in export order with the label it is exported under (a relabel's new
    one) and its mark, events marked wrong kept, and whether the review columns are written at all (an exported
    event has a mark). The same checks and rule as export_timeline's tags.csv, so both tables always agree."""
    [part] = _parts([(timeline, events)], event_config, None if reviews is None else [reviews])
    return list(_labelled(part, keep_wrong=True)), _reviewed([part])


def export_combined(items: list[tuple[Timeline, list[Event]]], event_config: EventConfig, out_dir: Path,
                    formats: Iterable[str] = DEFAULT_FORMATS, stem: str = "combined",
                    overwrite: bool = False,
                    reviews: Sequence[Mapping[Event, Mark] | None] | None = None) -> list[Path]:
    """Write one table per format for a batch of sources, in list order, with one header.

    - tags, birdnet, dcase: the rows of every file; the File / filename column tells them apart and times
      are within each file.
    - raven: times run on across files as if the files were played one after another (offset = sum of
      the previous files' duration_s); `Begin Path` names the file and `File Offset (s)` is the time
      within it; Selection numbers run on.
    - audacity, sv: no file column, so ConfigError for more than one file (COMBINED_REFUSED).
    - scores: a first column `File`, then `Start (s)`, `End (s)`, one column per label; every timeline
      must have the same labels (ExportError otherwise, before anything is written).
    - params: header `name,value,file`: the `name,value` rows of each file with its File value appended.
    reviews: one mapping (or None) per item, as export_timeline's; review columns when any file has a mark.
    Errors as in export_timeline.
    """
    refused = [k for k in _format_keys(formats) if k in COMBINED_REFUSED]
    if refused and len(items) > 1:
        raise ConfigError(f"cannot combine {', '.join(refused)} tables of {len(items)} files: they have no file "
                          "column, so the recordings would share one timeline; export them one file at a time")
    if "scores" in _format_keys(formats) and items:
        first = items[0][0].labels.ids
        differ = [tl.source for tl, _ in items if tl.labels.ids != first]
        if differ:
            raise ExportError(f"cannot combine score curves: {differ[:3]} use other labels than "
                              f"{items[0][0].source}; export those files separately or leave out 'scores'")
    parts = _parts(items, event_config, reviews)
    return _export(parts, event_config, out_dir, formats, stem, overwrite, True)
