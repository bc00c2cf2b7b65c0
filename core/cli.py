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

from core.errors import ConfigError, ExportExistsError, ModelFileError, TaggerError
from core.events import detect_events, thresholds_for
from core.export import COMBINED_REFUSED, FORMATS, export_combined
from core.inputs import (AUDIO_SUFFIXES, COMBINED_STEM, NameClashError, collect_audio, one_line, plan_outputs,
                         scan_audio)
from core.clips import build_parser as build_clips_parser
from core.listen import build_parsers as build_listen_parsers
from core.options import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, Parser, UsageError, add_event_arguments,
                          add_inference_arguments, count_above_zero, event_config_from, folder_name,
                          inference_options_from, load_model_showing_download, parse_formats,
                          seconds_above_zero, sigterm_as_interrupt)
from core.review import Mark, ReviewStore, match_marks
from core.runtime import limit_heap_fragmentation
from core.tables import DATASET_FORMATS, export_file, export_targets, model_tag, require_pyarrow
from core.timeline import Event, Timeline

log = logging.getLogger(__name__)

__all__ = ["main", "collect_audio", "scan_audio", "AUDIO_SUFFIXES", "add_event_arguments", "event_config_from"]


def run_analyze(args: argparse.Namespace) -> int:
    """The `analyze` subcommand."""
    with sigterm_as_interrupt():
        return _run_analyze(args)


def _run_analyze(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from core.analyze import Analyzer
    from core.audio_io import probe_duration
    from core.manifest import model_hash
    from core.scorer import Scorer

    formats = parse_formats(args.formats, datasets=DATASET_FORMATS)
    if "parquet" in formats:
        if not args.out:
            raise UsageError("--formats parquet needs --out DIR: the Parquet datasets hold the whole run there")
        try:
            require_pyarrow()
        except ImportError as e:
            raise UsageError(str(e)) from None
    if args.cluster and args.reviews:
        raise UsageError("--reviews reads the review marks kept on this machine, which --cluster's workers "
                         "cannot; analyse the reviewed files without --cluster")
    if args.cluster:
        from core.cluster import cluster_address, require_ray
        try:
            cluster_address(args.cluster)
            require_ray()
        except (ValueError, TaggerError) as e:
            raise UsageError(str(e)) from None
        if not args.out:
            raise UsageError("--cluster needs --out DIR: the exports and the run manifest (what is done) go there")
        if args.combined:
            raise UsageError("--cluster does not write --combined tables: a resumed run would combine only the "
                             "files it analysed; use --formats parquet for tables of the whole archive")
    if args.combined and (refused := [k for k in formats if k in COMBINED_REFUSED]):
        raise UsageError(f"--combined cannot write {', '.join(refused)}: those tables have no file column, so "
                         "several recordings would share one timeline; their per-file tables are written "
                         "without --combined, or leave them out of --formats")
    event_config = event_config_from(args)
    files, unreadable = scan_audio(args.paths)
    if not files and not unreadable:
        raise UsageError("no audio files found in the given paths")
    out_root = Path(args.out).expanduser() if args.out else None
    combined_dir = (out_root or Path.cwd()) if args.combined else None
    try:
        plans, renamed = plan_outputs(files, out_root, combined_dir)
    except NameClashError as e:
        raise UsageError(str(e)) from None
    failures = len(unreadable)
    for message in unreadable:
        print(f"error: {one_line(message)}", file=sys.stderr)
    for group in renamed:
        who = " and ".join(p.path.name for p in group) if len(group) > 1 else f"{group[0].path.name} and --combined"
        print(one_line(f"note: {who} would both write {group[0].out_dir / group[0].stem}.*; named by the full "
                       f"file name instead: {', '.join(p.path.name + '.*' for p in group)}"), file=sys.stderr)
    if not plans:
        return EXIT_FAILED
    loaded = load_model_showing_download(args.model, args.quiet)
    thresholds_for(loaded.labels, event_config)  # unknown --label-threshold names fail before any work
    if args.cluster:
        from core.cluster import run_cluster
        return run_cluster(args, plans, formats, event_config, loaded, prior_failures=failures)
    tag = model_tag(loaded.name, model_hash(loaded)) if "parquet" in formats else None
    scorer = Scorer(loaded, inference_options_from(args))
    analyzer = Analyzer(scorer, hop_s=args.hop, batch_size=args.batch_size)
    store = ReviewStore() if args.reviews else None
    if scorer.note:
        print(one_line(f"note: {scorer.note}"), file=sys.stderr)
    print(f"model {loaded.name} ({len(loaded.labels)} labels, window {loaded.features.window_s:.2f} s, "
          f"hop {analyzer.hop_s:g} s) on {scorer.device}: {scorer.describe()}", file=sys.stderr)

    durations = {plan.path: probe_duration(plan.path) for plan in plans}  # bad files fail later, one by one
    results = []
    known = None not in durations.values()  # a stream of unknown length: the bar counts without a total
    bar = tqdm(total=sum(durations.values()) if known else None, unit="s", file=sys.stderr, dynamic_ncols=True,
               disable=args.quiet, bar_format="{l_bar}{bar}| {n:.0f}/{total:.0f} s audio [{elapsed}<{remaining}]"
               if known else "{n:.0f} s audio [{elapsed}]")
    for plan in plans:
        path, out_dir = plan.path, plan.out_dir
        bar.set_postfix_str(one_line(path.name))
        counted = 0.0  # seconds of this file already on the bar

        def progress(done_s: float, total_s: float) -> None:
            nonlocal counted
            bar.update(done_s - counted)
            counted = done_s

        try:
            if not args.force and (existing := [p for p in export_targets(out_dir, plan.stem, formats, out_root, tag)
                                                if p.exists()]):
                raise ExportExistsError(f"{existing[0]} already exists; pass --force to overwrite")
            timeline = analyzer.analyze(str(path), progress=progress)
            events = detect_events(timeline, event_config)
            reviews = None if store is None else _reviews(store, path, timeline, events)
            export_file(timeline, events, event_config, out_dir, plan.stem, formats, args.force, out_root, tag,
                        reviews)
            results.append((timeline, events, reviews))
            if warning := timeline.extra.get("warning"):  # truncated/damaged: analysed as far as it decodes
                failures += 1
                tqdm.write(one_line(f"error: {path}: {warning}; {len(events)} events in what decoded -> "
                                    f"{out_dir / plan.stem}.*"), file=sys.stderr)
            else:
                tqdm.write(one_line(f"{path}: {len(events)} events in {timeline.num_windows} windows -> "
                                    f"{out_dir / plan.stem}.*"), file=sys.stderr)
        except (TaggerError, OSError) as e:
            failures += 1
            tqdm.write(one_line(f"error: {path}: {e}"), file=sys.stderr)
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
            written = export_combined([(t, e) for t, e, _ in results], event_config, combined_dir,
                                      [k for k in formats if k not in DATASET_FORMATS], stem=COMBINED_STEM,
                                      overwrite=args.force, reviews=[r for _, _, r in results])
            print(one_line(f"combined tables of {len(results)} files: {', '.join(str(p) for p in written)}"),
                  file=sys.stderr)
        except (TaggerError, OSError) as e:
            failures += 1
            print(one_line(f"error: combined tables: {e}"), file=sys.stderr)
    return EXIT_FAILED if failures else EXIT_OK


def _reviews(store: ReviewStore, path: Path, timeline: Timeline, events: list[Event]) -> dict[Event, Mark]:
    """The window's review marks of `path` under the timeline's model, matched to `events` (core.review); a
    store file that was unreadable and set aside is one note line."""
    from tqdm import tqdm
    kept = store.load(path, timeline.model_name)
    if kept.warning:
        tqdm.write(one_line(f"note: {path}: {kept.warning}"), file=sys.stderr)
    return match_marks(events, timeline.labels, kept.marks)


def build_analyze_parser(sub) -> None:
    p = sub.add_parser("analyze", parents=[common_parser()], help="tag audio files into timelines and exports",
                       description="Tag audio files (or folders, recursively) with an AST model and write "
                                   "event tables (CSV, Audacity, Raven, Sonic Visualiser, BirdNET, DCASE).")
    p.add_argument("paths", nargs="+", metavar="PATH", help="audio files or folders")
    p.add_argument("--model", default=None, metavar="SPEC",
                   help="our model file, a Hugging Face AST directory, an original AST .pth, a shipped model "
                        "name or a Hub id such as MIT/ast-finetuned-audioset-10-10-0.4593 (default: shipped default)")
    p.add_argument("--hop", type=seconds_above_zero, default=1.0, metavar="S",
                   help="seconds between windows (default 1.0)")
    p.add_argument("--out", type=folder_name, default=None, metavar="DIR",
                   help="output folder (default: next to each audio file); folder inputs are mirrored under it")
    p.add_argument("--formats", default="tags,scores,params", metavar="LIST",
                   help=f"comma-separated, from {','.join([*FORMATS, *DATASET_FORMATS])} (default "
                        "tags,scores,params; parquet: events and scores as Parquet datasets under --out)")
    p.add_argument("--combined", action="store_true", help="also write one combined table per format")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("--batch-size", type=count_above_zero, default=None, metavar="N", help="windows per model call")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--reviews", action="store_true",
                   help="add the review marks made in the window (of these recordings, under this model): review "
                        "columns in tags, raven and parquet; relabels and wrong marks in the other formats")
    p.add_argument("--cluster", default=None, metavar="ray|ray://HOST:PORT",
                   help="analyse on Ray (pip install '.[cluster]'): 'ray' starts one here (or joins RAY_ADDRESS); "
                        "resumable through a manifest in --out (docs/scale.md)")
    add_inference_arguments(p)
    add_event_arguments(p)
    p.set_defaults(func=run_analyze)


def common_parser() -> argparse.ArgumentParser:
    common = Parser(add_help=False)
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
    parser = Parser(prog="main.py", parents=[common_parser()],
                                     description="Real-time audio tagging with the Audio Spectrogram "
                                                 "Transformer. Without a command, opens the desktop app.")
    sub = parser.add_subparsers(dest="command")
    build_app_parser(sub)
    build_analyze_parser(sub)
    build_listen_parsers(sub, common_parser, add_event_arguments)
    build_clips_parser(sub, common_parser, add_event_arguments)
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
        print(one_line(f"error: {e}"), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
