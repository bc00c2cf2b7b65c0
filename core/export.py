"""Writers of the export formats in docs FORMATS.md: one event list, several files; atomic, never a silent overwrite.

Pure functions over immutable values (a Timeline, a list of Events, an EventConfig); the file-analysis
thread, the live tagger thread or the GUI thread call them. No Qt, no torch.

Times are seconds from the start of the source, written with exactly 3 decimals; scores with 4.
CSV files: UTF-8, comma separated, RFC 4180 quoting (label names contain commas), "\\n" line ends.
TSV / txt files: TAB separated; tabs and line breaks inside names and paths become spaces.

Safety: every target path is checked before anything is written (ExportExistsError unless overwrite);
each file goes to a temp file in the same folder, is flushed and fsynced, then renamed into place.
On an OS error (disk full, no permission) the temp file is removed, files already written in the call are
kept (they are complete), and ExportError names the file and the reason.
"""
from __future__ import annotations

import csv
import functools
import json
import os
import stat
import subprocess
import tempfile
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Callable, Iterable, Iterator, TextIO

import numpy as np

from core.config import EventConfig
from core.errors import ConfigError, ExportError, ExportExistsError
from core.events import median_windows, thresholds_for
from core.timeline import Event, Timeline

__all__ = ["FORMATS", "DEFAULT_FORMATS", "PACKAGE_VERSION", "code_version", "export_timeline",
           "export_combined", "target_paths"]

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

TAGS_HEADER = ["Start (s)", "End (s)", "Scientific name", "Common name", "Confidence", "File", "model",
               "overlap", "min_conf", "window", "label_index", "mean_confidence", "peak_time", "source",
               "clock_start"]
BIRDNET_HEADER = TAGS_HEADER[:6]
RAVEN_HEADER = ["Selection", "View", "Channel", "Begin Time (s)", "End Time (s)", "Low Freq (Hz)",
                "High Freq (Hz)", "Common Name", "Scientific Name", "Confidence", "Begin Path",
                "File Offset (s)"]
SV_HEADER = ["TIME", "VALUE", "DURATION", "LABEL"]
DCASE_HEADER = ["filename", "onset", "offset", "event_label"]


@dataclass(frozen=True)
class _Part:
    """One source in an export: its timeline, sorted events, (L, 2) thresholds, start in a run-on table (s)."""

    timeline: Timeline
    events: list[Event]
    thresholds: np.ndarray
    offset_s: float


def _t3(seconds: float) -> str:
    """A time in seconds with exactly 3 decimals (never '-0.000')."""
    return f"{round(float(seconds), 3) + 0.0:.3f}"


def _c4(score: float) -> str:
    return f"{float(score):.4f}"


def _value(value: object) -> str:
    """A params.csv value: floats without drift, containers as JSON."""
    if isinstance(value, np.generic):
        value = value.item()
    if value is None:
        return ""
    if isinstance(value, float):
        return repr(round(value, 6))
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, default=str)
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


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
def code_version() -> str:
    """`git describe` of this code's repository, else PACKAGE_VERSION; computed once, never raises."""
    try:
        done = subprocess.run(
            ["git", "describe", "--tags", "--always", "--dirty"], cwd=Path(__file__).resolve().parent.parent,
            capture_output=True, text=True, timeout=5, check=False,
            env={**os.environ, "GIT_OPTIONAL_LOCKS": "0"})   # never take the index lock of a shared tree
        described = done.stdout.strip()
        if done.returncode == 0 and described:
            return described
    except Exception:   # no git, no repository, timeout, odd environment: fall back
        pass
    return PACKAGE_VERSION


# ---- rows of each format; combined=True is a multi-file table -------------------------------------

def _tags_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        tl = part.timeline
        for e in part.events:
            label = tl.labels[e.label_index]
            yield [_t3(e.start_s), _t3(e.end_s), label.id, label.name, _c4(e.peak_score), tl.source,
                   tl.model_name, _t3(tl.window_s - tl.hop_s), _c4(part.thresholds[e.label_index, 0]),
                   _t3(tl.window_s), str(e.label_index), _c4(e.mean_score), _t3(e.peak_time_s), tl.kind,
                   _clock(tl, e.start_s)]


def _birdnet_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for row in _tags_rows(parts, combined):
        yield row[:6]


def _audacity_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        for e in part.events:
            name = part.timeline.labels[e.label_index].name
            yield [_t3(part.offset_s + e.start_s), _t3(part.offset_s + e.end_s),
                   f"{name} ({e.peak_score:.2f})"]


def _raven_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    selection = 0
    for part in parts:
        tl = part.timeline
        for e in part.events:
            selection += 1
            label = tl.labels[e.label_index]
            yield [str(selection), "Spectrogram 1", "1", _t3(part.offset_s + e.start_s),
                   _t3(part.offset_s + e.end_s), "0.000", _t3(tl.sample_rate_hz / 2), label.name, label.id,
                   _c4(e.peak_score), tl.source, _t3(e.start_s)]


def _sv_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        for e in part.events:
            start = round(part.offset_s + e.start_s, 3)
            end = round(part.offset_s + e.end_s, 3)
            yield [_t3(start), _c4(e.peak_score), _t3(end - start), part.timeline.labels[e.label_index].name]


def _dcase_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        for e in part.events:
            yield [part.timeline.source, _t3(e.start_s), _t3(e.end_s), part.timeline.labels[e.label_index].name]


def _scores_rows(parts: list[_Part], combined: bool) -> Iterator[list[str]]:
    for part in parts:
        tl = part.timeline
        prefix = [tl.source] if combined else []
        for start, end, row in zip(tl.starts_s.tolist(), tl.ends_s.tolist(), tl.scores):
            yield prefix + [_t3(start), _t3(end)] + [f"{x:.4f}" for x in row.tolist()]


def _params_rows_of(part: _Part, config: EventConfig) -> list[list[str]]:
    tl = part.timeline
    rows: dict[str, str] = {
        "model": tl.model_name, "window_s": _t3(tl.window_s), "hop_s": _t3(tl.hop_s),
        "on_threshold": _value(config.on_threshold), "off_threshold": _value(config.off_threshold),
        "median_s": _t3(config.median_s), "median_windows": str(median_windows(config.median_s, tl.hop_s)),
        "min_duration_s": _t3(config.min_duration_s),
        "merge_gap_s": _t3(config.merge_gap_s)}
    for key, _ in config.label_thresholds:          # effective on threshold, one row per label
        label = tl.labels.find(str(key))
        rows[f"threshold:{label.id}"] = _value(float(part.thresholds[label.index, 0]))
    rows.update({"device": tl.device, "sample_rate_hz": str(tl.sample_rate_hz), "source": tl.kind,
                 "file": tl.source, "duration_s": _t3(tl.duration_s), "code_version": code_version()})
    if tl.clock_start is not None:
        rows["clock_start"] = _value(tl.clock_start)
    for key, value in tl.extra.items():             # provenance; replaces a built-in row of the same name
        rows[str(key)] = _value(value)
    return [[name, value] for name, value in rows.items()]


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
        names = parts[0].timeline.labels.names if parts else []
        return ",", (["File"] if combined else []) + ["Start (s)", "End (s)"] + names, _scores_rows(parts, combined)
    if key == "params":
        if not combined:
            return ",", ["name", "value"], _params_rows_of(parts[0], config)
        rows = [row + [part.timeline.source] for part in parts for row in _params_rows_of(part, config)]
        return ",", ["name", "value", "file"], rows
    delimiter, header, make_rows = _WRITERS[key]
    return delimiter, header, make_rows(parts, combined)


def _write_table(f: TextIO, delimiter: str, header: list[str] | None, rows: Iterable[list[str]]) -> None:
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


# ---- atomic writing -------------------------------------------------------------------------------

@functools.lru_cache(maxsize=1)
def _new_file_mode() -> int:
    """0o666 minus the process umask (read without os.umask, which is not thread-safe), else 0o644."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def _exists_error(paths: list[Path]) -> ExportExistsError:
    names = ", ".join(str(p) for p in paths)
    what = f"{names} already exists" if len(paths) == 1 else f"{len(paths)} export files already exist: {names}"
    return ExportExistsError(f"{what}; nothing was written. Pass --force (overwrite=True) to replace, "
                             "or choose another output folder or name.", paths)


def _write_atomic(target: Path, write: Callable[[TextIO], None], overwrite: bool) -> None:
    """Write `target` through a temp file in its folder + fsync + os.replace; no temp file survives."""
    temp_name = None
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode) if os.path.exists(target) else _new_file_mode()
        with tempfile.NamedTemporaryFile("w", encoding="utf-8", newline="", dir=target.parent, delete=False,
                                         prefix="." + target.name, suffix=".tmp") as f:
            temp_name = f.name
            write(f)
            f.flush()
            os.fsync(f.fileno())
        try:
            os.chmod(temp_name, mode)   # NamedTemporaryFile creates 0o600
        except OSError:
            pass                        # e.g. a FAT drive: keep what the filesystem gives
        if not overwrite and os.path.lexists(target):   # appeared since the check in _write_all
            raise _exists_error([target])
        os.replace(temp_name, target)
        temp_name = None
    except ExportExistsError:
        raise
    except OSError as e:
        raise ExportError(f"could not write {target}: {e.strerror or e}. Files written before it are "
                          "complete; free some space or choose another folder, then export again.") from e
    finally:
        if temp_name is not None:
            try:
                os.unlink(temp_name)
            except OSError:
                pass


def _write_all(jobs: list[tuple[str, Path, tuple]], out_dir: Path, overwrite: bool) -> list[Path]:
    existing = [path for _, path, _ in jobs if os.path.lexists(path)]
    if existing and not overwrite:
        raise _exists_error(existing)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ExportError(f"could not create the export folder {out_dir}: {e.strerror or e}") from e
    written = []
    for _, path, (delimiter, header, rows) in jobs:
        _write_atomic(path, lambda f: _write_table(f, delimiter, header, rows), overwrite)
        written.append(path)
    try:   # make the renames durable (POSIX); best effort
        fd = os.open(out_dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError:
        pass
    return written


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


def _parts(items: list[tuple[Timeline, list[Event]]], config: EventConfig) -> list[_Part]:
    parts, offset = [], 0.0
    for timeline, events in items:
        thresholds = thresholds_for(timeline.labels, config)   # ConfigError for an unknown label key
        bad = [e.label_index for e in events if not 0 <= e.label_index < len(timeline.labels)]
        if bad:
            raise ValueError(f"events of {timeline.source} have label indices {bad[:5]} outside the "
                             f"{len(timeline.labels)} labels of its model")
        ordered = sorted(events, key=lambda e: (e.start_s, e.label_index, e.end_s))
        parts.append(_Part(timeline, ordered, thresholds, offset))
        offset += float(timeline.duration_s)
    return parts


def _export(parts: list[_Part], config: EventConfig, out_dir: Path, formats: Iterable[str] | str, stem: str,
            overwrite: bool, combined: bool) -> list[Path]:
    out_dir = Path(out_dir)
    keys = _format_keys(formats)
    paths = target_paths(out_dir, stem, keys)
    jobs = [(key, path, _layout(key, parts, config, combined)) for key, path in zip(keys, paths)]
    return _write_all(jobs, out_dir, overwrite)


def export_timeline(timeline: Timeline, events: list[Event], event_config: EventConfig, out_dir: Path,
                    formats: Iterable[str] = DEFAULT_FORMATS, stem: str | None = None,
                    overwrite: bool = False) -> list[Path]:
    """Write the events (and scores/params) of one source; returns the paths written, in format order.

    formats: keys of FORMATS; stem: file name before the suffix, default the source file's stem ("live"
    for a `live:` source). out_dir is created if missing. Raises ConfigError (unknown format key or label
    key, bad stem), ExportExistsError (a target exists and not overwrite; nothing written) or ExportError
    (an OS error while writing; files written before it are complete, no partial or temp file is left).
    """
    parts = _parts([(timeline, events)], event_config)
    return _export(parts, event_config, out_dir, formats, stem or _default_stem(timeline), overwrite, False)


def export_combined(items: list[tuple[Timeline, list[Event]]], event_config: EventConfig, out_dir: Path,
                    formats: Iterable[str] = DEFAULT_FORMATS, stem: str = "combined",
                    overwrite: bool = False) -> list[Path]:
    """Write one table per format for a batch of sources, in list order, with one header.

    - tags, birdnet, dcase: the rows of every file; the File / filename column tells them apart and times
      are within each file.
    - raven, audacity, sv: times run on across files as if the files were played one after another
      (offset = sum of the previous files' duration_s); Raven also keeps `Begin Path` and the time within
      the file in `File Offset (s)`; Selection numbers run on.
    - scores: a first column `File`, then `Start (s)`, `End (s)`, one column per label; every timeline
      must have the same labels (ExportError otherwise, before anything is written).
    - params: header `name,value,file`: the `name,value` rows of each file with its File value appended.
    Errors as in export_timeline.
    """
    if "scores" in _format_keys(formats) and items:
        first = items[0][0].labels.ids
        differ = [tl.source for tl, _ in items if tl.labels.ids != first]
        if differ:
            raise ExportError(f"cannot combine score curves: {differ[:3]} use other labels than "
                              f"{items[0][0].source}; export those files separately or leave out 'scores'")
    parts = _parts(items, event_config)
    return _export(parts, event_config, out_dir, formats, stem, overwrite, True)
