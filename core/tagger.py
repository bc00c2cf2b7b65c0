"""The live streaming tagger: ring buffer -> incremental fbank -> one window per hop -> AST -> TagFrames.

Runs on its own thread (`StreamingTagger.start`), which owns the Scorer, the FbankStreamer and all tagger
state; it only reads the ring (through a CaptureReader, copies) and puts immutable `TagFrame`s, then one
`TaggerEnd`, on a queue for the consumer (CLI main thread, GUI thread). Timestamps come from sample counts.

Windows are on the grid of file analysis (core.windows): window k covers fbank frames
[k * hop_frames, k * hop_frames + T), i.e. stream samples from k * hop_s on, so live and file tagging give
the same windows for the same samples. Warm-up: no window is emitted before the first full one (window 0,
complete once window_s + 15 ms of audio has arrived); until then `state` is WARMING_UP and
`warmup_progress` goes from 0 to 1. At the end of the stream (ring closed: Ctrl-C, duration reached,
device lost) the tail windows are scored padded exactly as file analysis pads them, so a live
session equals the analysis of its recording. If inference falls behind, only the newest complete window
is scored and the others are counted as skipped (their scores are NaN in a LiveTimeline), never queued up.
"""
from __future__ import annotations

import collections
import enum
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from core.backends import live_tagging
from core.capture import CaptureReader
from core.errors import ConfigError
from core.features import FbankStreamer
from core.scorer import Scorer
from core.windows import MAX_LIVE_HOP_S, MIN_LIVE_HOP_S, WindowPlan, check_live_hop

__all__ = ["TaggerConfig", "TaggerState", "TagFrame", "TaggerEnd", "TaggerStats", "StreamingTagger",
           "MIN_LIVE_HOP_S", "MAX_LIVE_HOP_S"]

log = logging.getLogger(__name__)

AudioSink = Callable[[np.ndarray], None]   # gets every 16 kHz sample of the stream in order (gaps as zeros)
FrameSink = Callable[[int, np.ndarray], None]  # (absolute index of the first fbank frame, (N, F) raw log-mel copy)


@dataclass(frozen=True)
class TaggerConfig:
    hop_s: float = 1.0           # seconds between windows: 0.25-5 s, a multiple of 10 ms (the file grid)
    poll_s: float = 0.05         # longest wait for new audio before re-checking stop()
    flush_tail: bool = True      # at the end, score the zero-padded tail windows as file analysis does
    skip_on_lag: bool = True     # live: score only the newest window; False: every window (replaying files)
    batch_size: int = 8          # windows per model call when catching up without skipping, or flushing
    keep_lags: int = 100_000     # processing lags remembered for stats()

    def __post_init__(self) -> None:
        check_live_hop(self.hop_s)   # ConfigError outside the live limits or off the 10 ms grid


class TaggerState(str, enum.Enum):
    IDLE = "idle"
    WARMING_UP = "warming_up"    # less than one full window heard so far
    RUNNING = "running"
    FINISHED = "finished"        # stream ended (or stop()), everything scored and queued
    FAILED = "failed"            # an exception in the tagger thread; see TaggerEnd.error


@dataclass(frozen=True)
class TagFrame:
    """Scores of window `index`, which covers stream samples [start_sample, end_sample) at 16 kHz."""

    index: int
    start_sample: int
    end_sample: int           # start + the window (or the end of the stream for a padded tail window)
    start_s: float            # start_sample / rate, rounded to 1 us as file analysis rounds
    end_s: float              # start_s + window_s, or the end of the stream for a padded tail window
    scores: np.ndarray        # (L,) float32 sigmoid scores, a read-only copy
    padded: bool = False      # a tail window that runs past the end of the stream


@dataclass(frozen=True)
class TaggerEnd:
    """The last item the tagger puts on its queue."""

    num_samples: int          # 16 kHz samples the stream held (its duration = num_samples / 16000)
    duration_s: float
    error: str | None         # why the stream or the tagger stopped early (device lost, exception), else None
    stopped: bool             # stop() was called: the tail was not flushed


@dataclass(frozen=True)
class TaggerStats:
    """A snapshot of the tagger's counters (taken from any thread)."""

    windows_scored: int
    windows_skipped: int      # complete windows never scored because inference fell behind
    windows_lost: int         # windows that fell in a gap of audio lost to a ring overrun
    overruns: int             # times the reader fell more than the ring's length behind
    lost_samples: int         # capture-rate samples lost that way
    num_samples: int          # 16 kHz samples read so far
    lags_s: tuple[float, ...]        # per scored live window: last sample in the ring -> scores queued
    inference_s: tuple[float, ...]   # per model call: the Scorer alone


class StreamingTagger:
    """Tags a live stream on its own thread; see the module docstring. One instance per stream."""

    def __init__(self, scorer: Scorer, reader: CaptureReader, config: TaggerConfig = TaggerConfig(),
                 results: queue.Queue | None = None, on_audio: AudioSink | None = None,
                 on_frames: FrameSink | None = None):
        features = scorer.features
        if reader.target_rate_hz != features.sample_rate_hz:
            raise ConfigError(f"the reader delivers {reader.target_rate_hz} Hz, the model expects "
                              f"{features.sample_rate_hz} Hz")
        self.scorer, self.reader, self.config = scorer, reader, config
        self.features = features
        self.plan = WindowPlan.for_model(features, config.hop_s)
        self.hop_s = self.plan.hop_s
        self.window_s = features.window_s
        self.results: queue.Queue = results if results is not None else queue.Queue()
        self.on_audio = on_audio
        self.on_frames = on_frames   # e.g. a display: the model's own features, as they are computed
        self.state = TaggerState.IDLE
        self.warmup_progress = 0.0   # share of the first window heard, 0..1
        self.error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._position = reader.position   # 16 kHz index of the next sample expected from the reader
        self._shift = features.frame_shift_samples
        hop_samples = self.plan.hop_frames * self._shift
        self._next_window = -(-self._position // hop_samples)   # a reader joining mid-stream: next grid point
        self._restart_fbank(self._next_window * hop_samples)
        self._scored = self._skipped = self._lost = 0
        self._lags: collections.deque = collections.deque(maxlen=config.keep_lags)
        self._inference: collections.deque = collections.deque(maxlen=config.keep_lags)

    # ---- control (any thread) ----------------------------------------------------------------------------

    def start(self) -> "StreamingTagger":
        self._thread = threading.Thread(target=self.run, name="tagger", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop soon without flushing the tail (to end a stream normally, close its ring instead)."""
        self._stop.set()

    def join(self, timeout_s: float | None = None) -> bool:
        if self._thread is not None:
            self._thread.join(timeout_s)
            return not self._thread.is_alive()
        return True

    @property
    def windows_done(self) -> int:
        """Windows scored or skipped so far (cheap to poll, unlike stats())."""
        return self._scored + self._skipped

    def stats(self) -> TaggerStats:
        return TaggerStats(self._scored, self._skipped, self._lost, self.reader.overruns,
                           self.reader.lost_samples, self._position, tuple(self._lags), tuple(self._inference))

    # ---- the tagger thread -------------------------------------------------------------------------------

    def run(self) -> None:
        """Thread body (also callable directly): consume until the stream ends, then queue TaggerEnd."""
        self.state = TaggerState.WARMING_UP
        with live_tagging():   # batch scorers made meanwhile leave the cores to this one (core.backends)
            try:
                while not self._stop.is_set():
                    start, samples = self.reader.read(self.config.poll_s)
                    if len(samples) or start != self._position:
                        self._consume(start, samples)
                        self._score_newest()
                    if self.reader.finished:
                        break
                if not self._stop.is_set() and self.config.flush_tail:
                    self._flush()
                self.state = TaggerState.FINISHED
            except Exception as e:  # noqa: BLE001 - reported to the consumer, which shows it
                log.exception("the tagger thread failed")
                self.error = f"the live tagger stopped: {type(e).__name__}: {e}"
                self.state = TaggerState.FAILED
            finally:
                rate = self.features.sample_rate_hz
                self.results.put(TaggerEnd(self._position, self._position / rate,
                                           self.error or self.reader.ring.error, self._stop.is_set()))

    def _restart_fbank(self, origin: int) -> None:
        """Start fbank frames at 16 kHz sample `origin` (a multiple of the hop in samples)."""
        self._streamer = FbankStreamer(self.features, device=self.scorer.device)
        self._frame_origin = origin // self._shift        # absolute frame index of the streamer's frame 0
        self._frames = torch.zeros(0, self.features.num_mel_bins, device=self.scorer.device)
        self._frames_start = self._frame_origin            # absolute frame index of self._frames[0]
        self._discard_until = origin                       # samples before this are not framed

    def _consume(self, start: int, samples: np.ndarray) -> None:
        if start != self._position:   # the reader jumped over audio lost to an overrun
            self._gap(start)
        if self.on_audio is not None:
            self.on_audio(samples)
        cut = min(len(samples), max(0, self._discard_until - start))
        self._position = start + len(samples)
        new = self._streamer.push(samples[cut:])
        if new.shape[0]:
            if self.on_frames is not None:
                first = self._frame_origin + self._streamer.num_frames - new.shape[0]
                self.on_frames(first, new.cpu().numpy().copy())
            self._frames = torch.cat([self._frames, new]) if self._frames.shape[0] else new

    def _gap(self, start: int) -> None:
        lost = start - self._position
        log.warning("lost %.2f s of audio at %.2f s of the stream", lost / self.features.sample_rate_hz,
                    self._position / self.features.sample_rate_hz)
        if self.on_audio is not None and lost > 0:
            self.on_audio(np.zeros(lost, dtype=np.float32))  # keep recordings aligned with stream time
        hop_samples = self.plan.hop_frames * self._shift
        first = -(-start // hop_samples)                    # first window on the grid after the gap
        self._restart_fbank(first * hop_samples)
        self._lost += max(0, first - self._next_window)
        self._next_window = max(self._next_window, first)
        self._position = start

    def _available_frames(self) -> int:
        return self._frame_origin + self._streamer.num_frames

    def _score_newest(self) -> None:
        """Score the newest complete window (skip_on_lag) or every complete window, in batches."""
        T, hop = self.plan.window_frames, self.plan.hop_frames
        available = self._available_frames()
        if self.state == TaggerState.WARMING_UP:
            self.warmup_progress = min(1.0, available / T)
        newest = (available - T) // hop if available >= T else -1
        while newest >= self._next_window and not self._stop.is_set():
            if self.config.skip_on_lag:
                self._skipped += newest - self._next_window
                ks = [newest]
            else:
                ks = list(range(self._next_window, min(newest + 1, self._next_window + self.config.batch_size)))
            windows = self.plan.batch(self._frames, self._frames_start, ks, self.features.pad_log_mel)
            scores = self._score(ks, windows)                                   # (B, T, F) -> (B, L)
            self.state = TaggerState.RUNNING        # before the first frame is seen by the consumer
            for k, row in zip(ks, scores):
                self.results.put(self._frame(k, row, padded=False))
            arrival = self.reader.ring.arrival_time(self.reader.capture_index_for(self._last_sample(ks[-1])) - 1)
            if arrival is not None:
                self._lags.append(time.perf_counter() - arrival)
            self._next_window = ks[-1] + 1
            drop = self.plan.start(self._next_window) - self._frames_start
            self._frames, self._frames_start = self._frames[drop:], self._frames_start + drop

    def _last_sample(self, k: int) -> int:
        """16 kHz samples needed to complete window k (its last fbank frame ends there)."""
        return self._shift * (self.plan.start(k) + self.plan.window_frames - 1) + self.features.frame_length_samples

    def _score(self, ks: list[int], windows: torch.Tensor) -> np.ndarray:
        t0 = time.perf_counter()
        scores = self.scorer(windows)                                         # (B, L)
        self._inference.append(time.perf_counter() - t0)
        self._scored += len(ks)
        return scores

    def _frame(self, k: int, scores: np.ndarray, padded: bool) -> TagFrame:
        start = self.plan.start(k) * self._shift
        end = start + self.plan.window_frames * self._shift
        start_s = float(self.plan.starts_s(k, k + 1)[0])
        end_s = start_s + self.window_s
        if padded:   # the grid's end of a window that runs past the stream
            end = min(end, self._position)
            end_s = float(self.plan.ends_s(start_s, self._position / self.features.sample_rate_hz))
        values = np.array(scores, dtype=np.float32)
        values.setflags(write=False)
        return TagFrame(k, start, end, start_s, end_s, values, padded)

    def _flush(self) -> None:
        """End of stream: score the remaining windows that reach the end, padded like file analysis."""
        if self._position == 0:
            return
        total = self._available_frames()
        ks = list(range(self._next_window, self.plan.num_windows(total)))
        for i in range(0, len(ks), self.config.batch_size):
            batch_ks = ks[i:i + self.config.batch_size]
            windows = self.plan.batch(self._frames, self._frames_start, batch_ks, self.features.pad_log_mel)
            scores = self._score(batch_ks, windows)
            for k, row in zip(batch_ks, scores):
                self.results.put(self._frame(k, row, padded=self.plan.is_padded(k, total)))
        self._next_window = max(self._next_window, ks[-1] + 1) if ks else self._next_window
