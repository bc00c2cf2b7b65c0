"""A batch's inputs: which audio files the paths name, and the one export name each file gets.

Runs on the thread that starts a batch (CLI main thread, GUI thread); pure functions over paths, no Qt.

Naming policy (docs/policies.md, "Export names"): a file's results are `<out dir>/<stem>.<format suffix>`.
Two inputs of one run never share a name: when several would (`x.wav` and `x.flac` in one folder, or a file
named `combined.*` beside the `--combined` tables), each of them is named by its full file name instead
(`x.wav.tags.csv`, `x.flac.tags.csv`), as `gzip` or `sha256sum` name their outputs; if that still collides
(one name in two folders sent into one --out) the run is refused before any work. A file named twice
(the same path, `./x.wav` and `x.wav`, a file and its folder, a symbolic link to it) is analysed once.
"""
from __future__ import annotations

import logging
import os
import stat
import unicodedata
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from core.audio_io import AUDIO_SUFFIXES

log = logging.getLogger(__name__)

COMBINED_STEM = "combined"


class NameClashError(ValueError):
    """Two inputs would write the same export files (a usage error)."""


@dataclass(frozen=True)
class Planned:
    """One input file and where its export set goes: out_dir / (stem + suffix)."""

    path: Path
    out_dir: Path
    stem: str


def one_line(text: str) -> str:
    """`text` safe for one terminal line: file-name bytes that are not UTF-8 as \\xNN, control characters
    (newline, carriage return, escape, ...) as \\n, \\r, \\x1b."""
    try:
        raw = text.encode("utf-8", "surrogateescape")     # names decoded by the OS with surrogateescape
    except UnicodeEncodeError:
        raw = text.encode("utf-8", "backslashreplace")
    text = raw.decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or unicodedata.category(c) != "Cc" else
                   {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(c, f"\\x{ord(c):02x}") for c in text)


def scan_audio(paths: list[str]) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(file, folder it was found under) for every file argument and audio file under folder arguments,
    each file once, and one message per path that could not be read (an unreadable folder or file).

    A missing file argument is kept: it fails later, with the others still analysed.
    """
    found: list[tuple[Path, Path]] = []
    failures: list[str] = []
    seen: set[str] = set()

    def add(file: Path, root: Path) -> None:
        key = os.path.realpath(file)
        if key not in seen:
            seen.add(key)
            found.append((file, root))

    for item in paths:
        path = Path(item).expanduser()
        try:
            is_dir = stat.S_ISDIR(os.stat(path).st_mode)
        except FileNotFoundError:
            is_dir = False
        except OSError as e:   # e.g. inside a folder without search permission
            failures.append(f"{path}: cannot be read ({e.strerror or e}); check the permissions of its folders")
            continue
        if not is_dir:
            add(path, path.parent)
            continue
        unreadable: list[str] = []
        files: list[Path] = []

        def report(e: OSError) -> None:
            unreadable.append(f"{e.filename}: cannot read this folder ({e.strerror or e}); "
                              "its audio files were not analysed")

        for folder, subfolders, names in os.walk(path, onerror=report):
            subfolders.sort()
            files.extend(Path(folder) / n for n in names if os.path.splitext(n)[1].lower() in AUDIO_SUFFIXES
                         and os.path.isfile(os.path.join(folder, n)))
        if not files and not unreadable:
            log.warning("no audio files (%s) under %s", ", ".join(sorted(AUDIO_SUFFIXES)), path)
        failures.extend(unreadable)
        for f in sorted(files):
            add(f, path)
    return found, failures


def collect_audio(paths: list[str]) -> list[tuple[Path, Path]]:
    """scan_audio's files; the unreadable paths are logged as warnings."""
    found, failures = scan_audio(paths)
    for message in failures:
        log.warning("%s", message)
    return found


def _key(out_dir: Path, stem: str) -> tuple[str, str]:
    return os.path.abspath(out_dir).casefold(), stem.casefold()   # case-insensitive drives too


def plan_outputs(files: list[tuple[Path, Path]], out_root: Path | None,
                 combined_dir: Path | None = None) -> tuple[list[Planned], list[list[Planned]]]:
    """The export name of every (file, root): out_dir mirrors the file's place under root inside out_root
    (default: next to the file), the stem is the file's stem, or its full name where stems collide (see the
    module docstring). combined_dir: where the combined tables go, if any. Returns (plans in input order,
    the groups that were renamed); NameClashError when names still collide.
    """
    plans = [Planned(p, out_root / p.parent.relative_to(root) if out_root else p.parent, p.stem) for p, root in files]
    reserved = [_key(combined_dir, COMBINED_STEM)] if combined_dir is not None else []
    counts = Counter([_key(p.out_dir, p.stem) for p in plans] + reserved)
    groups: dict[tuple[str, str], list[Planned]] = {}
    renamed = []
    for p in plans:
        key = _key(p.out_dir, p.stem)
        if counts[key] > 1:
            groups.setdefault(key, []).append(p)
            p = Planned(p.path, p.out_dir, p.path.name)
        renamed.append(p)
    counts = Counter([_key(p.out_dir, p.stem) for p in renamed] + reserved)
    clash = [p for p in renamed if counts[_key(p.out_dir, p.stem)] > 1]
    if clash:
        same = [p for p in renamed if _key(p.out_dir, p.stem) == _key(clash[0].out_dir, clash[0].stem)]
        who = " and ".join(one_line(str(p.path)) for p in same[:2]) if len(same) > 1 else \
            f"{one_line(str(same[0].path))} and the combined tables"
        raise NameClashError(f"{who} would both write {one_line(str(same[0].out_dir / same[0].stem))}.*; "
                             "analyse them into different --out folders, or pass their common parent folder "
                             "so that --out mirrors it")
    return renamed, list(groups.values())


def file_dialog_filter() -> str:
    """A file-dialog filter of the audio suffixes, e.g. for Qt: "Audio (*.aif *.aiff ...);;All files (*)"."""
    return f"Audio ({' '.join('*' + s for s in sorted(AUDIO_SUFFIXES))});;All files (*)"
