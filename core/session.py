"""A live session, wired once for the command line (`listen`) and the window: source -> ring ->
StreamingTagger -> TagFrames -> a growing Timeline with events as they close, a recording, provenance.

Threads: the audio callback of the source writes its ring; the tagger thread (core.tagger) reads it and
calls the session's audio and frame sinks (level meter, Recorder, display frames), which only compute
on their own arguments and put copies on `results`. Everything else (start, stop, close, add, timeline,
finish) belongs to one consumer thread at a time: the CLI's main thread, or in the window the GUI thread
(add, timeline) and its live-control thread (start, stop, finish, close: the calls that can block), which
hand the session over rather than share it. The consumer drains `results` (LiveFrames, TagFrame, a
RecordingStopped if the recording fails, then one TaggerEnd) and hands each TagFrame to `add`. `close` is
bounded (a source that hangs in PortAudio is abandoned, a tagger that does not stop is left behind), and a
thread that must not wait even that long hands the session to `close_in_background`.

`LiveTimeline` applies the event rule of file analysis (core.events) as frames arrive. An event is
returned once it is final, i.e. no later window can change it: its run of windows has ended (the median
filter's right neighbours are known) and any later event would start at least `merge_gap_s` after it.
Per hop only the labels that may close an event at that moment are evaluated (a score below `off` just
behind the horizon), each over a slice that begins after its last long quiet stretch, so the cost per
hop stays small over long sessions. The same rule says which labels have an event open now (the live
bars' colour). At the end the events of the whole timeline are computed exactly as `analyze` computes them.
"""
from __future__ import annotations

import itertools
import logging
import math
import queue
import shutil
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

import numpy as np
import soundfile as sf

from core.config import EventConfig
from core.errors import TaggerError
from core.events import detect_events, detect_label_events, median_windows, open_at_end, thresholds_for
from core.labels import LabelSet
from core.timeline import Event, Timeline
from core.windows import starts_s

if TYPE_CHECKING:   # torch stays unimported until a session starts (fast `--help`, `devices`)
    import torch

    from core.capture import InputDevice
    from core.config import InferenceOptions
    from core.modelfile import LoadedModel
    from core.ringbuffer import RingBuffer
    from core.tagger import TagFrame, TaggerEnd, TaggerStats

__all__ = ["LiveSession", "LiveResult", "LiveFrames", "AudioSource", "LiveTimeline", "Recorder", "RecordingError",
           "RecordingStopped", "new_recording"]

log = logging.getLogger(__name__)


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
        return starts_s(a, b, self.hop_s)

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

    def open_labels(self) -> np.ndarray:
        """(L,) bool: labels with an event open at the newest window, by the event rule (core.events.open_at_end)."""
        W, c = self.num_windows, self.event_config
        is_open = np.zeros(len(self.labels), dtype=bool)
        for label in np.flatnonzero(self._tail_max >= self._thresholds[:, 0]):   # only these can be open
            on, off = self._thresholds[label]
            is_open[label] = open_at_end(self._scores[int(self._slice_start[label]):W, label], float(on), float(off),
                                         c.median_s, self.hop_s)
        return is_open


class RecordingError(TaggerError):
    """The recording could not be written on (a full disk, a removed drive); the session goes on without it."""


class Recorder:
    """Writes the stream to a file as it arrives: exactly what the model heard, 16 kHz mono.

    The container follows the name: `.flac` is FLAC at 24 bits (lossless for any microphone, a third of
    the size of float WAV; samples are clipped to [-1, 1] as any PCM recording is), anything else is a
    32-bit float WAV. Used as the tagger's audio sink, so write() runs on the tagger thread; close() from
    any thread after the tagger has finished. Never overwrites an existing file unless overwrite=True.

    A write that fails closes the file, keeps what was written and raises RecordingError once; later
    writes do nothing, so a full disk ends the recording but not the session.
    """

    def __init__(self, path: Path, sample_rate_hz: int = 16000, overwrite: bool = False):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.sample_rate_hz = sample_rate_hz
        flac = self.path.suffix.lower() == ".flac"
        self._file = sf.SoundFile(self.path, "w" if overwrite else "x", samplerate=sample_rate_hz, channels=1,
                                  format="FLAC" if flac else "WAV", subtype="PCM_24" if flac else "FLOAT")
        self._clip = flac
        self.num_samples = 0
        self.error: str | None = None      # why the recording stopped early, else None

    def write(self, samples: np.ndarray) -> None:
        if not len(samples) or self.error is not None:
            return
        try:
            self._file.write(np.clip(samples, -1.0, 1.0) if self._clip else samples)
        except (OSError, RuntimeError) as e:        # soundfile reports a failed write as LibsndfileError
            self.error = (f"recording to {self.path} stopped after {self.num_samples / self.sample_rate_hz:.1f} s: "
                          f"it could not be written ({e or type(e).__name__}; {_free_space(self.path.parent)}); "
                          "listening goes on, and the file keeps what was written")
            self.close()
            raise RecordingError(self.error) from None
        self.num_samples += len(samples)

    def close(self) -> None:
        if not self._file.closed:
            try:
                self._file.close()
            except (OSError, RuntimeError) as e:    # the header could not be finished either (full disk)
                log.warning("closing the recording %s: %s", self.path, e)


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    return "the disk is full" if free < 1 << 20 else f"{free / 1e9:.1f} GB free there"


def new_recording(folder: Path, started: datetime, sample_rate_hz: int = 16000) -> Recorder:
    """A FLAC Recorder at `<folder>/ast-tagger-YYYYmmdd-HHMMSS.flac` (started: local time); when that name is
    taken, `-2`, `-3`, ... is added: an existing file is never replaced, even by a recording begun in the same
    second by another window. OSError when the folder cannot be created or written."""
    stem = started.strftime("ast-tagger-%Y%m%d-%H%M%S")
    for n in itertools.count(1):
        path = Path(folder) / (f"{stem}.flac" if n == 1 else f"{stem}-{n}.flac")
        if path.exists():
            continue
        try:
            return Recorder(path, sample_rate_hz)      # opened with "x": never replaces a file
        except (OSError, RuntimeError) as e:
            if path.exists():                          # taken between the check and the open
                continue
            raise OSError(f"cannot record to {path}: {e}") from None


@dataclass(frozen=True)
class RecordingStopped:
    """The recording failed and was closed (RecordingError's text); the session goes on without it."""

    message: str


@dataclass(frozen=True)
class LiveFrames:
    """New fbank frames of the live stream (the model's own features) and the input level, for a display."""

    start_frame: int         # absolute 10 ms frame index of frames[0]
    frames: np.ndarray       # (N, F) raw log-mel
    level_db: float          # peak level of the newest audio, dBFS


class AudioSource(Protocol):
    """What a LiveSession listens to: core.capture.Capture, core.capture.FilePlayback, or anything with their
    interface (tests play a file into a ring in real time)."""

    ring: RingBuffer
    rate_hz: int
    input_overflows: int
    device: InputDevice

    def start(self) -> None: ...
    def stop(self, end_index: int | None = None) -> None: ...
    def check(self) -> str | None: ...


@dataclass(frozen=True)
class LiveResult:
    """A finished session: its Timeline (with provenance) and its events, as `analyze` computes them."""

    timeline: Timeline
    events: list[Event]
    unreported: list[Event]   # those of the events that add() had not returned yet
    error: str | None         # why the stream stopped early (device lost, tagger failure), else None


class LiveSession:
    """One live stream: source -> ring -> StreamingTagger -> `results`; the LiveTimeline of its frames.

    The consumer thread drains `results` and calls add(frame) for each TagFrame; stop() ends the stream
    (the tagger scores the tail, then puts TaggerEnd), finish(end) closes everything and returns the
    LiveResult; close() stops at once (no tail) and joins the tagger. `display=True` also puts LiveFrames
    (fbank frames and the input level) on `results`.
    """

    def __init__(self, loaded: LoadedModel, options: InferenceOptions | str | torch.device, source: AudioSource,
                 hop_s: float = 1.0, event_config: EventConfig = EventConfig(), recorder: Recorder | None = None,
                 display: bool = False):
        from core.capture import CaptureReader
        from core.scorer import Scorer
        from core.tagger import StreamingTagger, TaggerConfig
        self.source, self.recorder = source, recorder
        self.results: queue.Queue = queue.Queue()
        self.scorer = Scorer(loaded, options, live=True)   # options: core.scorer.Scorer's (a bare device: exact)
        self._level_db = -120.0
        self.tagger = StreamingTagger(self.scorer, CaptureReader(source.ring), TaggerConfig(hop_s=hop_s), self.results,
                                      on_audio=self._on_audio, on_frames=self._on_frames if display else None)
        self.live = LiveTimeline(loaded.labels, self.tagger.window_s, self.tagger.hop_s, event_config, loaded.name,
                                 str(recorder.path) if recorder else f"live:{source.device.name}",
                                 device=str(self.scorer.device), sample_rate_hz=loaded.features.sample_rate_hz)

    @property
    def labels(self) -> LabelSet:
        return self.live.labels

    # ---- tagger thread ----------------------------------------------------------------------------------

    def _on_audio(self, samples: np.ndarray) -> None:
        if len(samples):
            self._level_db = 20.0 * math.log10(max(float(np.max(np.abs(samples))), 1e-6))
            if self.recorder is not None and self.recorder.error is None:
                try:
                    self.recorder.write(samples)
                except RecordingError as e:
                    self.results.put(RecordingStopped(str(e)))

    def _on_frames(self, start_frame: int, frames: np.ndarray) -> None:
        self.results.put(LiveFrames(start_frame, frames, self._level_db))

    # ---- consumer thread --------------------------------------------------------------------------------

    def start(self) -> None:
        """Open the source (CaptureError: the device did not open), then start tagging."""
        self.source.start()
        self.tagger.start()

    def check(self) -> str | None:
        """The reason the stream ended early (device lost), else None."""
        return self.source.check()

    def stop(self) -> None:
        """End the stream: the tagger scores the tail, then puts TaggerEnd."""
        self.source.stop()

    def close(self, timeout_s: float = 5.0) -> None:
        """Stop the source and the tagger now (no tail), join it, close the recording; returns within about
        timeout_s (the source's stop is bounded on its own: Capture.stop)."""
        deadline = time.monotonic() + timeout_s
        self.tagger.stop()
        self.source.stop()
        if self.tagger.join(max(0.0, deadline - time.monotonic())):
            self._close_recorder()
        else:      # it may still write the recording: close that once the tagger has ended
            log.warning("the tagger thread did not stop within %.1f s", timeout_s)
            threading.Thread(target=lambda: (self.tagger.join(), self._close_recorder()),
                             name="session-close-recording", daemon=True).start()

    def _close_recorder(self) -> None:
        if self.recorder is not None:
            self.recorder.close()

    def close_in_background(self) -> threading.Thread:
        """close() on a new daemon thread, returned started: the GUI thread never waits for PortAudio, the
        tagger or the disk. Join it (with a timeout) before the process exits if the recording matters."""
        thread = threading.Thread(target=self.close, name="session-close", daemon=True)
        thread.start()
        return thread

    def stats(self) -> TaggerStats:
        return self.tagger.stats()

    def add(self, frame: TagFrame) -> list[Event]:
        """Take the next TagFrame; return the events that became final with it."""
        return self.live.add(frame)

    def open_labels(self) -> np.ndarray:
        """(L,) bool: labels with an event open now, by the session's event rule."""
        return self.live.open_labels()

    def timeline(self, num_samples: int | None = None) -> Timeline:
        """The Timeline so far (num_samples: its length at 16 kHz; default: what the tagger has read), with
        the provenance every export writes: device, engine, capture rate, overflows, skipped and lost windows."""
        stats = self.stats()
        clock = getattr(self.source, "clock_start", None)
        return self.live.timeline(stats.num_samples if num_samples is None else num_samples,
                                  clock_start=clock() if clock else None,
                                  extra={"inference": self.scorer.describe(), "input_device": self.source.device.name,
                                         "capture_rate_hz": self.source.rate_hz,
                                         "input_overflows": self.source.input_overflows,
                                         "windows_skipped": stats.windows_skipped, "windows_lost": stats.windows_lost})

    def finish(self, end: TaggerEnd) -> LiveResult:
        """After TaggerEnd: close the session and return its timeline and events."""
        self.close()
        timeline = self.timeline(end.num_samples)
        events, unreported = self.live.finish(timeline)
        return LiveResult(timeline, events, unreported, end.error)
