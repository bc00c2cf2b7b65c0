"""Audio clips of events: one file per event, [start - pre_s, end + post_s] of the recording, as it is there.

`export_clips` is called by the window (on a worker: it reads and writes audio) and by `python main.py clips`
(main thread; `run_clips` analyses each file, then cuts its events). No Qt, no torch at import.

A clip is the recording's own samples: its sample rate and channels (a 44.1 kHz stereo file gives 44.1 kHz
stereo clips, never the model's 16 kHz mono), read with soundfile from the region only (core.audio_io.iter_region).
PCM is read as integers and written in the source's sample format where the container has it, so a clip of a
16- or 24-bit file is bit-exact; FLAC holds at most 24-bit integers, so 32-bit and float sources become 24-bit
FLAC (or exact WAV with audio_format="wav"), and lossy sources (MP3, Vorbis, Opus) are decoded.

Names: `<stem>_<label>_<start>s.flac`, start in seconds with 3 decimals (the event's start, not the clip's),
every character other than letters, digits, `-` and `.` made `_` (no path separators, quotes, spaces or
commas; `Baby cry, infant cry` -> `Baby_cry_infant_cry`), each part at most 80 characters; two events with the
same name get `_2`, `_3`, ... The clips of one request are one set (core/export.write_export_set): all written
or none, an existing file is never replaced unless overwrite, and a file that cannot be decoded fails the whole
request before anything is written.
"""
from __future__ import annotations

import argparse
import functools
import os
import re
import sys
from pathlib import Path
from typing import IO, Mapping, Sequence

import numpy as np
import soundfile as sf

from core.audio_io import AudioInfo, iter_region, probe, region_frames
from core.errors import ConfigError, TaggerError
from core.events import detect_events, thresholds_for
from core.export import write_export_set
from core.inputs import NameClashError, one_line, plan_outputs, scan_audio
from core.labels import LabelSet
from core.options import (EXIT_FAILED, EXIT_OK, UsageError, event_config_from, folder_name,
                          load_model_showing_download, seconds_above_zero, seconds_from_zero,
                          sigterm_as_interrupt)
from core.review import Mark, Verdict
from core.timeline import Event

__all__ = ["CLIP_FORMATS", "export_clips", "clip_names", "run_clips", "build_parser"]

CLIP_FORMATS = {"flac": "FLAC", "wav": "WAV"}        # audio_format -> libsndfile container
CLIP_MARGIN_S = 1.0                                   # default pre- and post-roll, as the player's
_INT_SUBTYPES = {"PCM_S8", "PCM_U8", "PCM_16", "PCM_24", "PCM_32"}
_UNSAFE = re.compile(r"[^\w.-]+")                    # \w: letters and digits of any script, and _
_MAX_PART = 80


def _safe(text: str) -> str:
    """A part of a file name: letters, digits, - and . kept, runs of anything else one `_`; never empty,
    never starting with a dot (a hidden file)."""
    text = _UNSAFE.sub("_", text.encode("utf-8", "surrogateescape").decode("utf-8", "replace"))
    return re.sub(r"_+", "_", text).strip("_.")[:_MAX_PART] or "clip"


def clip_names(stem: str, labelled: Sequence[tuple[str, float]], suffix: str) -> list[str]:
    """The file names of clips of (label name, event start s), in order, unique (see the module docstring)."""
    names, seen = [], set()
    for label, start_s in labelled:
        base = f"{_safe(stem)}_{_safe(label)}_{round(start_s, 3) + 0.0:.3f}s"
        name, k = base + suffix, 1
        while name.lower() in seen:          # a folder that ignores case must not merge two clips
            k += 1
            name = f"{base}_{k}{suffix}"
        seen.add(name.lower())
        names.append(name)
    return names


def _subtype(container: str, source_subtype: str) -> str:
    if sf.check_format(container, source_subtype):
        return source_subtype
    return "PCM_24" if container == "FLAC" else "FLOAT"


def _write_clip(f: IO, info: AudioInfo, first: int, stop: int | None, container: str) -> None:
    """Read frames [first, stop) of the recording and write them to `f` as a `container` file."""
    exact = info.subtype in _INT_SUBTYPES
    subtype = _subtype(container, info.subtype)
    blocks = list(iter_region(info, first, stop, block_frames=1 << 16, dtype="int32" if exact else "float64"))
    data = np.concatenate(blocks) if blocks else np.zeros((0, info.num_channels), np.int32 if exact else np.float64)
    if not exact and subtype.startswith("PCM"):
        np.clip(data, -1.0, 1.0, out=data)   # libsndfile wraps float samples beyond full scale around
    sf.write(f, data, info.sample_rate_hz, subtype=subtype, format=container)


def export_clips(audio: str | os.PathLike, events: Sequence[Event], labels: LabelSet, out_dir: str | os.PathLike, *,
                 pre_s: float = CLIP_MARGIN_S, post_s: float = CLIP_MARGIN_S, audio_format: str = "flac",
                 overwrite: bool = False, reviews: Mapping[Event, Mark] | None = None,
                 stem: str | None = None) -> list[Path]:
    """Write one clip per event of `audio` into out_dir (created if missing); returns the paths, in event order.

    Each clip is [start_s - pre_s, end_s + post_s] clipped to the recording; stem: the names' first part
    (default the recording's file name without its suffix). reviews: a relabelled event's clip
    is named by its new label (which events to cut is the caller's choice: leave out those marked wrong, or
    keep them as examples of mistakes). Raises ConfigError (bad format or margins), AudioError (the recording
    cannot be read; nothing written), ExportExistsError (a clip exists and not overwrite; nothing written),
    ExportError (an OS error; nothing kept).
    """
    if audio_format not in CLIP_FORMATS:
        raise ConfigError(f"clip format must be one of {', '.join(CLIP_FORMATS)}, got {audio_format!r}")
    for name, value in (("pre_s", pre_s), ("post_s", post_s)):
        if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
            raise ConfigError(f"{name} must be a number of seconds >= 0, got {value!r}")
    info = probe(audio)
    out_dir, stem = Path(out_dir), stem or Path(os.fsdecode(audio)).stem
    names = [labels[e.label_index].name for e in events]
    for i, e in enumerate(events):
        mark = (reviews or {}).get(e)
        if mark is not None and mark.verdict is Verdict.RELABEL and (target := labels.find(mark.relabel_to)):
            names[i] = target.name
    files = clip_names(stem, [(name, e.start_s) for name, e in zip(names, events)], f".{audio_format}")
    members = []
    for e, file_name in zip(events, files):
        first, stop = region_frames(info, e.start_s - pre_s, e.end_s + post_s)
        members.append((out_dir / file_name, functools.partial(_write_clip, info=info, first=first, stop=stop,
                                                                container=CLIP_FORMATS[audio_format])))
    if not members:
        return []
    return write_export_set(members, out_dir, f"{_safe(stem)}.clips", overwrite, mode="wb")


# ---- `python main.py clips`: analyse, then cut ------------------------------------------------------------

def _label_indices(labels: LabelSet, text: str | None) -> set[int] | None:
    """--labels "Dog,Speech" -> their indices (ids, display or dataset names); None = every label."""
    if text is None:
        return None
    found = set()
    for key in (k.strip() for k in text.split(",") if k.strip()):
        label = labels.find(key)
        if label is None:
            hint = labels.suggest(key) or labels.names[:3]
            raise UsageError(f"--labels names {key!r}, which is not a label of this model; e.g. "
                             f"{', '.join(repr(n) for n in hint)}")
        found.add(label.index)
    return found


def run_clips(args: argparse.Namespace) -> int:
    """The `clips` subcommand: analyse each file as `analyze` does, then write a clip of each event. SIGTERM
    is Ctrl-C here: a file's clips being written are rolled back, not left half written."""
    with sigterm_as_interrupt():
        return _run_clips(args)


def _run_clips(args: argparse.Namespace) -> int:
    from core.analyze import Analyzer
    from core.scorer import Scorer

    event_config = event_config_from(args)
    files, unreadable = scan_audio(args.paths)
    if not files and not unreadable:
        raise UsageError("no audio files found in the given paths")
    try:
        plans, _ = plan_outputs(files, Path(args.out).expanduser())
    except NameClashError as e:
        raise UsageError(str(e)) from None
    for message in unreadable:
        print(f"error: {one_line(message)}", file=sys.stderr)
    loaded = load_model_showing_download(args.model)
    thresholds_for(loaded.labels, event_config)
    wanted = _label_indices(loaded.labels, args.labels)
    analyzer = Analyzer(Scorer(loaded, args.device), hop_s=args.hop)
    failures = len(unreadable)
    for plan in plans:
        try:
            timeline = analyzer.analyze(str(plan.path))
            events = [e for e in detect_events(timeline, event_config) if wanted is None or e.label_index in wanted]
            written = export_clips(plan.path, events, loaded.labels, plan.out_dir, pre_s=args.pre, post_s=args.post,
                                   audio_format=args.format, overwrite=args.force, stem=plan.stem)
            print(one_line(f"{plan.path}: {len(written)} clips -> {plan.out_dir}"), file=sys.stderr)
        except (TaggerError, OSError) as e:
            failures += 1
            print(one_line(f"error: {plan.path}: {e}"), file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def build_parser(sub, common_parser, add_event_arguments) -> None:
    """Register `clips` on the subparsers of core.cli.main (imports no torch)."""
    p = sub.add_parser("clips", parents=[common_parser()], help="analyse files and write an audio clip per event",
                       description="Analyse audio files (or folders) as `analyze` does and write one clip per "
                                   "event, with pre- and post-roll, at the recording's own rate and channels.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--out", type=folder_name, required=True, metavar="DIR",
                   help="folder for the clips; folder inputs are mirrored under it")
    p.add_argument("--pre", type=seconds_from_zero, default=CLIP_MARGIN_S, metavar="S",
                   help=f"seconds before each event (default {CLIP_MARGIN_S:g})")
    p.add_argument("--post", type=seconds_from_zero, default=CLIP_MARGIN_S, metavar="S",
                   help=f"seconds after each event (default {CLIP_MARGIN_S:g})")
    p.add_argument("--labels", default=None, metavar="LIST",
                   help="only events of these labels (comma-separated ids or names; default every label)")
    p.add_argument("--format", default="flac", choices=list(CLIP_FORMATS), help="clip file format (default flac)")
    p.add_argument("--model", default=None, metavar="SPEC", help="the model, as for analyze (default: shipped default)")
    p.add_argument("--hop", type=seconds_above_zero, default=1.0, metavar="S", help="seconds between windows")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model runs")
    p.add_argument("--force", action="store_true", help="overwrite existing clips")
    add_event_arguments(p)
    p.set_defaults(func=run_clips)
