"""The `listen` and `devices` commands: tag an input live, headless, and print events as they close.

Main thread; the command-line front end (it prints; everything else logs). The session itself (source,
tagger, event timeline, recording, provenance) is core.session.LiveSession, which the window drives too;
this module only checks the arguments, drives a session from the terminal and writes its exports.
"""
from __future__ import annotations

import argparse
import queue
import sys
from datetime import datetime
from pathlib import Path
from typing import Callable

from core.events import thresholds_for
from core.labels import LabelSet
from core.options import (EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, add_inference_arguments, count_above_zero,
                          event_config_from, inference_options_from, load_model_showing_download, parse_formats,
                          seconds_above_zero, sigterm_as_interrupt)
from core.session import LiveTimeline  # noqa: F401 - its former home
from core.session import LiveSession, Recorder, RecordingStopped
from core.timeline import Event
from core.windows import check_live_hop

__all__ = ["run_listen", "run_devices", "build_parsers"]


def _print_event(e: Event, labels: LabelSet) -> None:
    label = labels[e.label_index]
    print(f"{e.start_s:9.3f} {e.end_s:9.3f}  {label.name} ({label.id})  {e.peak_score:.2f}", flush=True)


def run_devices(args: argparse.Namespace) -> int:
    """The `devices` subcommand: input devices, the default first, with channels and rates."""
    from core.capture import CaptureError, list_input_devices, sounddevice
    try:
        devices = list_input_devices()
        sd = sounddevice()
    except CaptureError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    if not devices:
        print("error: no audio input device found: PortAudio lists no microphone or line input on this "
              "machine; connect one (or start the sound server) and run `python main.py devices` again",
              file=sys.stderr)
        return EXIT_USAGE
    for d in devices:
        try:
            sd.check_input_settings(device=d.index, samplerate=16000, channels=1, dtype="float32")
            rate = "opens at 16000 Hz"
        except Exception:  # noqa: BLE001 - the device wants its own rate: resampled on our side
            rate = f"opens at {d.default_rate_hz} Hz, resampled to 16000 Hz"
        mark = "*" if d.is_default else " "
        print(f"{mark} {d.index:3d}  {d.name}  [{d.host_api}]  {d.max_channels} ch, default "
              f"{d.default_rate_hz} Hz, {rate}{' (default input)' if d.is_default else ''}")
    return EXIT_OK


def run_listen(args: argparse.Namespace) -> int:
    """The `listen` subcommand (see build_parsers)."""
    from core.capture import Capture, CaptureError, find_input_device
    from core.export import export_timeline, target_paths
    from core.backends import resolve_device

    formats = parse_formats(args.formats)
    event_config = event_config_from(args)
    check_live_hop(args.hop)                                   # ConfigError (exit 2) outside 0.25-5 s
    try:
        device = find_input_device(args.input)
    except CaptureError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    with sigterm_as_interrupt():                               # a download in progress: "interrupted"
        loaded = load_model_showing_download(args.model)
    thresholds_for(loaded.labels, event_config)                # unknown --label-threshold fails early
    resolve_device(args.device)                                # ConfigError for --device cuda without a GPU
    out_dir = Path(args.out).expanduser() if args.out else Path.cwd()
    stem = args.name or datetime.now().strftime("live-%Y%m%d-%H%M%S")
    wav = out_dir / f"{stem}.wav"
    existing = [p for p in target_paths(out_dir, stem, formats) + ([wav] if args.record else []) if p.exists()]
    if existing and not args.force:
        raise UsageError(f"{existing[0]} already exists; pass --force to overwrite or --name for another name")
    try:
        capture = Capture(device, rate_hz=args.rate)
    except CaptureError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    recorder = Recorder(wav, overwrite=args.force) if args.record else None
    session = LiveSession(loaded, inference_options_from(args), capture, args.hop, event_config, recorder)
    tagger = session.tagger
    if session.scorer.note:
        print(f"note: {session.scorer.note}", file=sys.stderr)
    try:
        session.start()
    except CaptureError as e:
        session.close()
        if recorder:
            wav.unlink(missing_ok=True)
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"listening on {device.name!r} [{device.host_api}] at {capture.rate_hz} Hz; model {loaded.name} "
          f"({len(loaded.labels)} labels, window {tagger.window_s:.2f} s, hop {tagger.hop_s:g} s) on "
          f"{session.scorer.device}: {session.scorer.describe()}; first scores after {tagger.window_s + 0.015:.2f} s; "
          f"{'Ctrl-C to stop' if args.duration is None else f'{args.duration:g} s'}", file=sys.stderr)
    result = session.finish(_drive(args, session))
    for e in result.unreported:
        _print_event(e, loaded.labels)
    timeline, events = result.timeline, result.events
    written = export_timeline(timeline, events, event_config, out_dir, formats, stem=stem, overwrite=args.force)
    stats = session.stats()
    print(f"{timeline.duration_s:.1f} s heard: {len(events)} events in {timeline.num_windows} windows "
          f"({stats.windows_skipped} skipped, {capture.input_overflows} input overflows) -> "
          f"{', '.join(str(p) for p in written + ([wav] if recorder else []))}", file=sys.stderr)
    if result.error:
        print(f"error: {result.error}; what was heard before is exported", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _drive(args: argparse.Namespace, session: LiveSession):
    """Drain the session's queue, print closed events, watch the device and the duration; -> TaggerEnd.

    Ctrl-C (or SIGTERM) ends the capture; the tagger then scores the tail and ends. A second Ctrl-C
    stops it without the tail. Either way the caller exports everything already scored.
    """
    from core.tagger import TagFrame, TaggerEnd
    capture = session.source
    limit = None if args.duration is None else round(args.duration * capture.rate_hz)
    interrupts = 0
    if limit is not None:
        capture.ring.close(limit)      # the stream ends there; the tagger never reads past it
    with sigterm_as_interrupt():
        while True:
            try:
                try:
                    item = session.results.get(timeout=0.1)
                except queue.Empty:
                    item = None
                if isinstance(item, TaggerEnd):
                    return item
                if isinstance(item, TagFrame):
                    for e in session.add(item):
                        _print_event(e, session.labels)
                elif isinstance(item, RecordingStopped):
                    print(f"error: {item.message}", file=sys.stderr)
                if session.check() is None and capture.ring.ended:
                    session.stop()     # the --duration limit is reached: the tagger drains and ends
            except KeyboardInterrupt:
                interrupts += 1
                print("stopping: scoring the last windows and writing the exports"
                      if interrupts == 1 else "stopping now", file=sys.stderr)
                session.stop()
                if interrupts > 1:
                    session.tagger.stop()


def build_parsers(sub, common_parser: Callable[[], argparse.ArgumentParser],
                  add_event_arguments: Callable[[argparse.ArgumentParser], None]) -> None:
    """Register `listen` and `devices` on the subparsers of core.cli.main (imports no torch)."""
    d = sub.add_parser("devices", parents=[common_parser()], help="list audio input devices",
                       description="List the audio input devices PortAudio sees, the default first.")
    d.set_defaults(func=run_devices)
    p = sub.add_parser("listen", parents=[common_parser()], help="tag a microphone live, headless",
                       description="Tag an audio input live: print events as they close, and write the same "
                                   "exports as `analyze` when it stops (Ctrl-C or --duration).")
    p.add_argument("--input", default=None, metavar="DEVICE",
                   help="input device index or (part of) its name (default: the default input; see `devices`)")
    p.add_argument("--duration", type=seconds_above_zero, default=None, metavar="S", help="stop after S seconds of audio")
    p.add_argument("--model", default=None, metavar="SPEC",
                   help="our model file, a Hugging Face AST directory, an original AST .pth, a shipped model "
                        "name or a Hub id (default: shipped default)")
    p.add_argument("--hop", type=seconds_above_zero, default=1.0, metavar="S",
                   help="seconds between windows, 0.25-5 (default 1.0)")  # MIN/MAX_LIVE_HOP_S of core.tagger
    p.add_argument("--rate", type=count_above_zero, default=None, metavar="HZ",
                   help="capture rate (default 16000 if the device takes it, else its own rate; resampled)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the current folder)")
    p.add_argument("--name", default=None, metavar="STEM", help="file name stem (default live-YYYYmmdd-HHMMSS)")
    p.add_argument("--formats", default="tags,scores,params", metavar="LIST",
                   help="comma-separated export formats, as for analyze (default tags,scores,params)")
    p.add_argument("--record", action="store_true",
                   help="also save the audio as <stem>.wav (16 kHz float, what the model heard); the File column names it")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_inference_arguments(p)
    add_event_arguments(p)
    p.set_defaults(func=run_listen)
