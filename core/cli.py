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

from core.audio_files import collect_audio
from core.errors import ConfigError, ExportExistsError, ModelFileError, TaggerError
from core.events import detect_events, thresholds_for
from core.export import FORMATS, export_combined, export_timeline, target_paths
from core.listen import build_parsers as build_listen_parsers
from core.options import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, add_event_arguments, event_config_from,
                          parse_formats)
from core.runtime import limit_heap_fragmentation

log = logging.getLogger(__name__)

def _duration_or_zero(path: Path) -> float:
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
    bar = tqdm(total=sum(durations.values()), unit="s", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]")
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
            tqdm.write(f"{path}: {len(events)} events in {timeline.num_windows} windows -> {out_dir}", file=sys.stderr)
        except (TaggerError, OSError) as e:
            failures += 1
            tqdm.write(f"error: {path}: {e}", file=sys.stderr)
            if args.debug:
                traceback.print_exc()
        bar.update(durations[path] - counted)
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
    build_listen_parsers(sub, common_parser, add_event_arguments)
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] not in sub.choices and Path(argv[0]).expanduser().exists():
        argv = ["app", *argv]          # `python main.py recording.wav`: open the window on it
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
