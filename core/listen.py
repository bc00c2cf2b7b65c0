"""Live sessions: TagFrames -> a growing Timeline with events as they close; `listen` and `devices` commands.

`LiveTimeline` and `WavRecorder` belong to one thread each: the consumer of the tagger's queue (CLI main
thread or GUI thread) and the tagger thread (its audio sink) respectively. `run_listen` / `run_devices`
are the headless command-line front end (main thread; they print, the rest logs).

Events come from core.events with the rule of file analysis. An event is printed once it is final, i.e.
no later window can change it: its run of windows has ended (the median filter's right neighbours are
known) and any later event would start at least `merge_gap_s` after it. Per hop only the labels that may
close an event at that moment are evaluated (a score below `off` just behind the horizon), each over a
slice that begins after its last long quiet stretch, so the cost per hop stays small over long sessions.
At the end the events of the whole timeline are computed exactly as `analyze` computes them.
"""
from __future__ import annotations

import argparse
import math
import queue
import signal
import sys
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Callable

import numpy as np
import soundfile as sf

from core.config import EventConfig
from core.events import detect_events, detect_label_events, median_windows, thresholds_for
from core.labels import LabelSet
from core.options import EXIT_FAILED, EXIT_OK, EXIT_USAGE, UsageError, event_config_from, parse_formats
from core.timeline import Event, Timeline

if TYPE_CHECKING:   # torch stays unimported until a session starts (fast `--help`, `devices`)
    from core.tagger import TagFrame

__all__ = ["LiveTimeline", "WavRecorder", "run_listen", "run_devices", "build_parsers"]


class LiveTimeline:
    """Accumulates TagFrames (in index order; missing indices = skipped windows, NaN scores)."""

    def __init__(self, labels: LabelSet, window_s: float, hop_s: float, event_config: EventConfig,
                 model_name: str, source: str, device: str = "cpu", sample_rate_hz: int = 16000):
        self.labels, self.window_s, self.hop_s = labels, window_s, hop_s
        self.event_config, self.model_name, self.source = event_config, model_name, source
        self.device, self.sample_rate_hz = device, sample_rate_hz
        L = len(labels)
        self._thresholds = thresholds_for(labels, event_config)           # (L, 2) on, off
        self._scores = np.full((64, L), np.nan, dtype=np.float32)         # (capacity, L), grows x2
        self._ends = np.zeros(64, dtype=np.float64)
        self.num_windows = 0
        half = median_windows(event_config.median_s, hop_s) // 2
        self._half = half
        self._quiet_needed = 3 * half + math.ceil(max(event_config.merge_gap_s, hop_s) / hop_s + 1e-9) + 1
        self._slice_start = np.zeros(L, dtype=np.int64)   # per label: events are computed from here on
        self._tail_max = np.full(L, -np.inf)              # per label: max raw score since the slice start
        self._quiet = np.zeros(L, dtype=np.int64)         # per label: trailing windows with raw < off
        self._reported: set[tuple[int, float]] = set()

    def _starts(self, a: int, b: int) -> np.ndarray:
        return np.round(np.arange(a, b) * self.hop_s, 6)

    def _append(self, frame: TagFrame) -> None:
        k = frame.index
        if k < self.num_windows:
            raise ValueError(f"window {k} arrived after window {self.num_windows - 1}; frames must be in order")
        if k >= len(self._scores):
            size = max(2 * len(self._scores), k + 1)
            scores = np.full((size, len(self.labels)), np.nan, dtype=np.float32)
            scores[:self.num_windows] = self._scores[:self.num_windows]
            ends = np.zeros(size, dtype=np.float64)
            ends[:self.num_windows] = self._ends[:self.num_windows]
            self._scores, self._ends = scores, ends
        gap = np.arange(self.num_windows, k)
        self._ends[gap] = self._starts(self.num_windows, k) + self.window_s   # skipped windows: NaN scores
        self._scores[k] = frame.scores
        self._ends[k] = frame.end_s
        if len(gap):   # skipped windows score 0 in the event rule
            self._quiet = np.where(self._thresholds[:, 1] > 0, self._quiet + len(gap), 0)
        quiet = np.nan_to_num(frame.scores, nan=0.0) < self._thresholds[:, 1]
        self._quiet = np.where(quiet, self._quiet + 1, 0)
        self._tail_max = np.fmax(self._tail_max, frame.scores)
        self.num_windows = k + 1

    def _last_closable(self, num_windows: int) -> int:
        """Last window j such that an event ending with window j is final once num_windows are known."""
        margin = max(self.event_config.merge_gap_s, self.hop_s) / self.hop_s
        return math.floor(num_windows - self._half - 1 - margin + 1e-9)

    def add(self, frame: TagFrame) -> list[Event]:
        """Take the next frame; return the events that closed with it (sorted by start, label)."""
        previous = self.num_windows
        self._append(frame)
        W, h, hop = self.num_windows, self._half, self.hop_s
        if W - h < 1:
            return []
        # Any event that may still change ends after this (see the module docstring).
        horizon = round(float(self._starts(W - h, W - h + 1)[0]) + self.window_s / 2 - hop / 2
                        - max(self.event_config.merge_gap_s, hop), 3)
        # Only an event whose run ends at a window j that just became closable can close now, and its
        # smoothed score at j + 1 is below off, so a raw score near j + 1 is below off (or missing).
        lo = max(0, self._last_closable(previous) - h - 1)
        hi = min(W, self._last_closable(W) + h + 3)
        below = (np.nan_to_num(self._scores[lo:max(lo, hi)], nan=0.0) < self._thresholds[:, 1]).any(axis=0)
        closed: list[Event] = []
        for label in np.flatnonzero((self._tail_max >= self._thresholds[:, 0]) & below):
            a = int(self._slice_start[label])
            on, off = self._thresholds[label]
            c = self.event_config
            events = detect_label_events(
                self._scores[a:W, label], self._starts(a, W), self._ends[a:W], hop, float(self._ends[W - 1]),
                float(on), float(off), c.median_s, c.min_duration_s, c.merge_gap_s, int(label),
                window_s=self.window_s)
            for e in events:
                if e.end_s <= horizon + 1e-9 and (e.label_index, e.start_s) not in self._reported:
                    self._reported.add((e.label_index, e.start_s))
                    closed.append(e)
        self._restart_quiet_slices(W)
        return sorted(closed, key=lambda e: (e.start_s, e.label_index))

    def _restart_quiet_slices(self, W: int) -> None:
        # Labels quiet for long enough start a new slice: nothing before it can affect later events.
        restart = np.flatnonzero((self._quiet >= self._quiet_needed)
                                 & (self._slice_start < W - self._quiet + self._half))
        if len(restart):
            starts = W - self._quiet[restart] + self._half
            self._slice_start[restart] = starts
            self._tail_max[restart] = [np.nanmax(self._scores[s:W, i], initial=-np.inf) for s, i in zip(starts, restart)]

    def timeline(self, num_samples: int, **fields) -> Timeline:
        """The Timeline of the session so far; `num_samples` (16 kHz) is its length. fields: Timeline's."""
        W = self.num_windows
        duration_s = num_samples / self.sample_rate_hz
        return Timeline(source=self.source, labels=self.labels, starts_s=self._starts(0, W),
                        ends_s=np.minimum(self._ends[:W], duration_s), scores=self._scores[:W].copy(),
                        duration_s=duration_s, window_s=self.window_s, hop_s=self.hop_s,
                        model_name=self.model_name, device=self.device, sample_rate_hz=self.sample_rate_hz,
                        kind="mic", **fields)

    def finish(self, timeline: Timeline) -> tuple[list[Event], list[Event]]:
        """(all events of the finished timeline, those of them not reported by add() yet)."""
        events = detect_events(timeline, self.event_config)
        return events, [e for e in events if (e.label_index, e.start_s) not in self._reported]


class WavRecorder:
    """Writes the stream to a WAV as it arrives (16 kHz mono float32: exactly what the model heard).

    Used as the tagger's audio sink, so it runs on the tagger thread; close() from any thread after the
    tagger has finished. Never overwrites an existing file unless overwrite=True.
    """

    def __init__(self, path: Path, sample_rate_hz: int = 16000, overwrite: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = sf.SoundFile(self.path, "w" if overwrite else "x", samplerate=sample_rate_hz,
                                  channels=1, format="WAV", subtype="FLOAT")
        self.num_samples = 0

    def write(self, samples: np.ndarray) -> None:
        if len(samples):
            self._file.write(samples)
            self.num_samples += len(samples)

    def close(self) -> None:
        if not self._file.closed:
            self._file.close()


# ---------------------------------------------------------------------------- command line (main thread)

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
    from core.capture import Capture, CaptureError, CaptureReader, find_input_device
    from core.export import export_timeline, target_paths
    from core.modelfile import load_model
    from core.scorer import Scorer
    from core.tagger import StreamingTagger, TaggerConfig

    formats = parse_formats(args.formats)
    event_config = event_config_from(args)
    tagger_config = TaggerConfig(hop_s=args.hop)               # ConfigError (exit 2) for a bad hop
    if args.duration is not None and not args.duration > 0:
        raise UsageError(f"--duration must be a positive number of seconds, got {args.duration}")
    try:
        device = find_input_device(args.input)
    except CaptureError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    loaded = load_model(args.model)
    thresholds_for(loaded.labels, event_config)                # unknown --label-threshold fails early
    scorer = Scorer(loaded, args.device)
    if scorer.device.type == "cpu":
        # One window per hop is a small batch: on a busy 2-core machine a second torch thread spins
        # against other work (the default model took 364 ms per window with 2 threads, 5.3 ms with 1).
        import torch
        torch.set_num_threads(max(1, args.threads))
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
    recorder = WavRecorder(wav, overwrite=args.force) if args.record else None
    results: queue.Queue = queue.Queue()
    tagger = StreamingTagger(scorer, CaptureReader(capture.ring), tagger_config, results,
                             on_audio=recorder.write if recorder else None)
    live = LiveTimeline(loaded.labels, tagger.window_s, tagger.hop_s, event_config, loaded.name,
                        str(wav) if recorder else f"live:{device.name}", device=str(scorer.device))
    try:
        capture.start()
    except CaptureError as e:
        if recorder:
            recorder.close()
            wav.unlink(missing_ok=True)
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    print(f"listening on {device.name!r} [{device.host_api}] at {capture.rate_hz} Hz; model {loaded.name} "
          f"({len(loaded.labels)} labels, window {tagger.window_s:.2f} s, hop {tagger.hop_s:g} s) on "
          f"{scorer.device}; first scores after {tagger.window_s + 0.015:.2f} s; "
          f"{'Ctrl-C to stop' if args.duration is None else f'{args.duration:g} s'}", file=sys.stderr)
    tagger.start()
    end = _session(args, capture, tagger, results, live)
    capture.stop()
    if recorder:
        recorder.close()
    timeline = live.timeline(end.num_samples, clock_start=capture.clock_start(), extra={
        "input_device": device.name, "capture_rate_hz": capture.rate_hz,
        "input_overflows": capture.input_overflows, "windows_skipped": tagger.stats().windows_skipped,
        "windows_lost": tagger.stats().windows_lost})
    events, unreported = live.finish(timeline)
    for e in unreported:
        _print_event(e, loaded.labels)
    written = export_timeline(timeline, events, event_config, out_dir, formats, stem=stem, overwrite=args.force)
    stats = tagger.stats()
    print(f"{end.duration_s:.1f} s heard: {len(events)} events in {timeline.num_windows} windows "
          f"({stats.windows_skipped} skipped, {capture.input_overflows} input overflows) -> "
          f"{', '.join(str(p) for p in written + ([wav] if recorder else []))}", file=sys.stderr)
    if end.error:
        print(f"error: {end.error}; what was heard before is exported", file=sys.stderr)
        return EXIT_FAILED
    return EXIT_OK


def _session(args: argparse.Namespace, capture, tagger, results: queue.Queue, live: LiveTimeline):
    """Drain the tagger's queue, print closed events, watch the device and the duration; -> TaggerEnd.

    Ctrl-C (or SIGTERM) ends the capture; the tagger then scores the tail and ends. A second Ctrl-C
    stops it without the tail. Either way the caller exports everything already scored.
    """
    from core.tagger import TagFrame, TaggerEnd
    rate = capture.rate_hz
    limit = None if args.duration is None else round(args.duration * rate)
    interrupts = 0
    if limit is not None:
        capture.ring.close(limit)      # the stream ends there; the tagger never reads past it
    previous = signal.getsignal(signal.SIGTERM) if threading.current_thread() is threading.main_thread() else None
    if previous is not None:
        signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        while True:
            try:
                try:
                    item = results.get(timeout=0.1)
                except queue.Empty:
                    item = None
                if isinstance(item, TaggerEnd):
                    return item
                if isinstance(item, TagFrame):
                    for e in live.add(item):
                        _print_event(e, live.labels)
                if capture.check() is None and capture.ring.ended:
                    capture.stop()     # the --duration limit is reached: the tagger drains and ends
            except KeyboardInterrupt:
                interrupts += 1
                print("stopping: scoring the last windows and writing the exports"
                      if interrupts == 1 else "stopping now", file=sys.stderr)
                capture.stop()
                if interrupts > 1:
                    tagger.stop()
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)


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
    p.add_argument("--duration", type=float, default=None, metavar="S", help="stop after S seconds of audio")
    p.add_argument("--model", default=None, metavar="SPEC",
                   help="our model file, a Hugging Face AST directory, an original AST .pth, a shipped model "
                        "name or a Hub id (default: shipped default)")
    p.add_argument("--hop", type=float, default=1.0, metavar="S",
                   help="seconds between windows, 0.25-5 (default 1.0)")  # MIN/MAX_LIVE_HOP_S of core.tagger
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"], help="where the model runs")
    p.add_argument("--threads", type=int, default=1, metavar="N",
                   help="CPU threads for the model (default 1: one window per hop keeps up on one core)")
    p.add_argument("--rate", type=int, default=None, metavar="HZ",
                   help="capture rate (default 16000 if the device takes it, else its own rate; resampled)")
    p.add_argument("--out", default=None, metavar="DIR", help="output folder (default: the current folder)")
    p.add_argument("--name", default=None, metavar="STEM", help="file name stem (default live-YYYYmmdd-HHMMSS)")
    p.add_argument("--formats", default="tags,scores,params", metavar="LIST",
                   help="comma-separated export formats, as for analyze (default tags,scores,params)")
    p.add_argument("--record", action="store_true",
                   help="also save the audio as <stem>.wav (16 kHz float, what the model heard); the File column names it")
    p.add_argument("--force", action="store_true", help="overwrite existing outputs")
    add_event_arguments(p)
    p.set_defaults(func=run_listen)
