"""Headless command-line front end: `python main.py analyze ...` (no Qt).

Runs on the main thread; the only module of core/ that prints (results and one-line errors for the user).
Exit codes: 0 every file succeeded, 1 some failed (the others are still analysed and written), 2 usage.
"""
from __future__ import annotations

import argparse
import logging
import sys
import traceback
from pathlib import Path
from typing import Callable

from core.config import EventConfig
from core.errors import ConfigError, ExportExistsError, ModelFileError, TaggerError
from core.events import detect_events, thresholds_for
from core.export import FORMATS, export_combined, export_timeline, target_paths
from core.runtime import limit_heap_fragmentation

log = logging.getLogger(__name__)

AUDIO_SUFFIXES = {".wav", ".flac", ".ogg", ".oga", ".opus", ".mp3", ".aif", ".aiff", ".au", ".w64", ".caf"}
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad arguments: printed as one line, exit code 2."""


def add_event_arguments(p: argparse.ArgumentParser) -> None:
    d = EventConfig()
    g = p.add_argument_group("event rule")
    g.add_argument("--threshold", type=float, default=d.on_threshold, metavar="P",
                   help=f"score that opens an event (default {d.on_threshold})")
    g.add_argument("--off-threshold", type=float, default=None, metavar="P",
                   help=f"score below which an open event closes (default: threshold x {d.off_threshold / d.on_threshold:.2f})")
    g.add_argument("--label-threshold", action="append", default=[], metavar="LABEL=P",
                   help="on threshold for one label (id or display name); repeatable")
    g.add_argument("--median", type=int, default=d.median_windows, metavar="N",
                   help=f"median filter length in windows, odd (default {d.median_windows})")
    g.add_argument("--min-duration", type=float, default=d.min_duration_s, metavar="S",
                   help=f"drop events shorter than S seconds (default {d.min_duration_s})")
    g.add_argument("--merge-gap", type=float, default=d.merge_gap_s, metavar="S",
                   help=f"merge events of one label closer than S seconds (default {d.merge_gap_s})")


def event_config_from(args: argparse.Namespace) -> EventConfig:
    d = EventConfig()
    off = args.off_threshold if args.off_threshold is not None else args.threshold * d.off_threshold / d.on_threshold
    per_label = []
    for item in args.label_threshold:
        name, sep, value = item.rpartition("=")
        if not sep or not name:
            raise UsageError(f"--label-threshold expects LABEL=P, got {item!r}")
        try:
            per_label.append((name, float(value)))
        except ValueError:
            raise UsageError(f"--label-threshold {item!r}: {value!r} is not a number") from None
    return EventConfig(on_threshold=args.threshold, off_threshold=off, median_windows=args.median,
                       min_duration_s=args.min_duration, merge_gap_s=args.merge_gap,
                       label_thresholds=tuple(per_label))


def parse_formats(text: str) -> list[str]:
    keys = [k.strip() for k in text.split(",") if k.strip()]
    unknown = [k for k in keys if k not in FORMATS]
    if unknown or not keys:
        raise UsageError(f"unknown format(s) {unknown or text!r}; choose from {','.join(FORMATS)}")
    return keys


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


def _duration_or_zero(path: Path) -> float | None:
    """Seconds in the file's header; None when the header does not say (a stream), 0 when unreadable."""
    from core.audio_io import probe
    try:
        return probe(path).duration_s
    except TaggerError:
        return 0.0


def run_analyze(args: argparse.Namespace) -> int:
    """The `analyze` subcommand."""
    from tqdm import tqdm

    from core.analyze import Analyzer
    from core.modelfile import load_model
    from core.scorer import Scorer

    formats = parse_formats(args.formats)
    event_config = event_config_from(args)
    files = collect_audio(args.paths)
    if not files:
        raise UsageError("no audio files found in the given paths")
    out_root = Path(args.out).expanduser() if args.out else None
    loaded = load_model(args.model)
    thresholds_for(loaded.labels, event_config)  # unknown --label-threshold names fail before any work
    analyzer = Analyzer(Scorer(loaded, args.device), hop_s=args.hop, batch_size=args.batch_size)
    print(f"model {loaded.name} ({len(loaded.labels)} labels, window {loaded.features.window_s:.2f} s, "
          f"hop {analyzer.hop_s:g} s) on {analyzer.scorer.device}", file=sys.stderr)

    durations = {path: _duration_or_zero(path) for path, _ in files}  # bad files fail later, one by one
    failures, results = 0, []
    known = None not in durations.values()  # a stream of unknown length: the bar counts without a total
    bar = tqdm(total=sum(durations.values()) if known else None, unit="s", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]"
               if known else "{n:.0f} s audio [{elapsed}]")
    for path, root in files:
        out_dir = out_root / path.parent.relative_to(root) if out_root else path.parent
        bar.set_postfix_str(path.name)
        counted = 0.0  # seconds of this file already on the bar

        def progress(done_s: float, total_s: float) -> None:
            nonlocal counted
            bar.update(done_s - counted)
            counted = done_s

        try:
            if not args.force and (existing := [p for p in target_paths(out_dir, path.stem, formats) if p.exists()]):
                raise ExportExistsError(f"{existing[0]} already exists; pass --force to overwrite")
            timeline = analyzer.analyze(str(path), progress=progress)
            events = detect_events(timeline, event_config)
            export_timeline(timeline, events, event_config, out_dir, formats, overwrite=args.force)
            results.append((timeline, events))
            if warning := timeline.extra.get("warning"):  # truncated/damaged: analysed as far as it decodes
                failures += 1
                tqdm.write(f"error: {path}: {warning}; {len(events)} events in what decoded -> {out_dir}",
                           file=sys.stderr)
            else:
                tqdm.write(f"{path}: {len(events)} events in {timeline.num_windows} windows -> {out_dir}",
                           file=sys.stderr)
        except (TaggerError, OSError) as e:
            failures += 1
            tqdm.write(f"error: {path}: {e}", file=sys.stderr)
            if args.debug:
                traceback.print_exc()
        except Exception as e:  # noqa: BLE001 - a bug in one file's analysis must not stop the others
            failures += 1
            detail = " ".join(str(e).split())
            tqdm.write(f"error: {path}: unexpected {type(e).__name__}: {detail} (a bug: rerun with --debug for "
                       "the traceback and report it)", file=sys.stderr)
            if args.debug:
                traceback.print_exc()
        bar.update((durations[path] if durations[path] is not None else counted) - counted)
    bar.close()
    if args.combined and results:
        try:
            written = export_combined(results, event_config, out_root or Path.cwd(), formats, overwrite=args.force)
            print(f"combined tables of {len(results)} files: {', '.join(str(p) for p in written)}", file=sys.stderr)
        except (TaggerError, OSError) as e:
            failures += 1
            print(f"error: combined tables: {e}", file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def build_analyze_parser(sub) -> None:
    p = sub.add_parser("analyze", parents=[common_parser()], help="tag audio files into timelines and exports",
                       description="Tag audio files (or folders, recursively) with an AST model and write "
                                   "event tables (CSV, Audacity, Raven, Sonic Visualiser, BirdNET, DCASE).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--model", default=None, metavar="SPEC",
                   help="our model file, a Hugging Face AST directory, an original AST .pth, a shipped model "
                        "name or a Hub id such as MIT/ast-finetuned-audioset-10-10-0.4593 (default: shipped default)")
    p.add_argument("--hop", type=float, default=1.0, metavar="S", help="seconds between windows (default 1.0)")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model runs")
    p.add_argument("--out", default=None, metavar="DIR",
                   help="output folder (default: next to each audio file); folder inputs are mirrored under it")
    p.add_argument("--formats", default="tags,scores,params", metavar="LIST",
                   help=f"comma-separated, from {','.join(FORMATS)} (default tags,scores,params)")
    p.add_argument("--combined", action="store_true", help="also write one combined table per format")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--batch-size", type=int, default=None, metavar="N", help="windows per model call")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    add_event_arguments(p)
    p.set_defaults(func=run_analyze)


def common_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show tracebacks and debug logging")
    return common


def build_app_parser(sub) -> None:
    p = sub.add_parser("app", parents=[common_parser()], help="open the desktop window (the default)",
                       description="Open the desktop window: live tagging of a microphone, files dropped on "
                                   "it analysed into timelines, exports.")
    p.add_argument("--model", default=None, metavar="SPEC",
                   help="model to start with (default: the one used last, else the shipped default)")
    p.add_argument("--device", default=None, choices=["auto", "cpu", "cuda"],
                   help="where the model runs (default: as last time, else auto)")
    p.add_argument("files", nargs="*", help="audio files or folders to analyse at start")


def main(argv: list[str] | None = None, open_app: Callable[[argparse.Namespace], int] | None = None) -> int:
    """The command line. open_app runs the desktop window (main.py passes it; core never imports Qt)."""
    parser = argparse.ArgumentParser(prog="main.py", parents=[common_parser()],
                                     description="Real-time audio tagging with the Audio Spectrogram "
                                                 "Transformer. Without a command, opens the desktop app.")
    sub = parser.add_subparsers(dest="command")
    build_app_parser(sub)
    build_analyze_parser(sub)
    from core.listen import build_parsers as build_listen_parsers
    build_listen_parsers(sub, common_parser, add_event_arguments)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in sub.choices and not argv[0].startswith("-"):
        first = Path(argv[0]).expanduser()
        if first.exists():
            argv = ["app", *argv]          # `python main.py recording.wav`: open the window on it
        elif first.suffix or len(first.parts) > 1:     # looks like a path, not a mistyped command
            print(f"error: file not found: {argv[0]}", file=sys.stderr)
            return EXIT_USAGE
    args = parser.parse_args(argv)
    args.debug = getattr(args, "debug", False)
    limit_heap_fragmentation()  # flat memory over long files (see core/runtime.py)
    logging.basicConfig(level=logging.DEBUG if args.debug else logging.WARNING,
                        format="%(levelname)s: %(message)s")
    if args.command in (None, "app"):
        if args.command is None:
            args = parser.parse_args(["app", *argv])
        if open_app is None:
            print("this entry point has no desktop window; use a command:", file=sys.stderr)
            parser.print_help(sys.stderr)
            return EXIT_USAGE
        args.func = open_app
    try:
        return args.func(args)
    except (UsageError, ConfigError, ModelFileError) as e:
        if args.debug:
            traceback.print_exc()
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
