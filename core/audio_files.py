"""Which files are audio: the one list of suffixes analysed, and the audio files under folder arguments.

Used by the command line and the window (on a file-analysis path: it reads folders). No decoding here
(core.audio_io decodes, and refuses what libsndfile cannot read with its own message).
"""
from __future__ import annotations

import logging
from pathlib import Path

__all__ = ["AUDIO_SUFFIXES", "collect_audio", "file_dialog_filter"]

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = frozenset({".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"})


def collect_audio(paths: list[str]) -> list[tuple[Path, Path]]:
    """(file, folder it was found under) for every file argument and audio file under folder arguments."""
    found: list[tuple[Path, Path]] = []
    for item in paths:
        path = Path(item).expanduser()
        if path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES)
            if not files:
                log.warning("no audio files (%s) under %s", ", ".join(sorted(AUDIO_SUFFIXES)), path)
            found.extend((f, path) for f in files)
        else:
            found.append((path, path.parent))  # a missing file fails later, with the others still analysed
    return found


def file_dialog_filter() -> str:
    """A file-dialog filter of the audio suffixes, e.g. for Qt: "Audio (*.aif *.aiff ...);;All files (*)"."""
    return f"Audio ({' '.join('*' + s for s in sorted(AUDIO_SUFFIXES))});;All files (*)"
