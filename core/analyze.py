"""File analysis: audio file -> sliding windows -> scores (a Timeline).

Runs on a file-analysis thread (CLI main thread or a GUI worker). A helper thread decodes and resamples
the file block by block into a small queue while this thread computes fbank frames (once per file, as
they arrive) and runs windows through the model in batches, so memory stays bounded for any length:
about one window plus one batch of frames, never the whole file.

Window k starts at k * hop_s and covers the model's window; the last window reaches the end of the audio
and is padded in the log-mel domain as the model was trained (AST: zeros; FeatureConfig.padding); audio
shorter than a window gives one padded window.

A truncated or damaged file is analysed as far as it decodes; the Timeline's extra then holds `warning`
(one line for the user) and `truncated_at_s`, which params.csv records (docs/policies.md). Non-finite
scores fail the file.
"""
from __future__ import annotations

import math
import queue
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from core.audio_io import DecodeReport, iter_blocks, probe
from core.config import FeatureConfig
from core.errors import ConfigError, TaggerError
from core.features import FbankStreamer, pad_or_cut
from core.scorer import Scorer
from core.timeline import Timeline

ProgressFn = Callable[[float, float], None]  # (seconds analysed, seconds in the file; 0 = not known yet)
FramesFn = Callable[[int, np.ndarray], None]  # (index of the first fbank frame, (N, F) raw log-mel copy)

MIN_HOP_S, MAX_HOP_S = 0.01, 60.0


class AnalysisCancelled(TaggerError):
    """The analysis was cancelled through its cancel event."""


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a stream of `num_frames_total` fbank frames start (all in frames)."""

    window_frames: int
    hop_frames: int

    def num_windows(self, num_frames_total: int) -> int:
        """Windows needed so that the last one reaches the end (at least one)."""
        if num_frames_total <= self.window_frames:
            return 1
        reach_end = 1 + math.ceil((num_frames_total - self.window_frames) / self.hop_frames)
        return min(reach_end, math.ceil(num_frames_total / self.hop_frames))  # hop > window: none starts at the end

    def start(self, k: int) -> int:
        return k * self.hop_frames


def hop_frames_for(hop_s: float, frame_shift_s: float = 0.01) -> int:
    """Hop in fbank frames; the hop must be a whole number of 10 ms frames within sensible bounds."""
    frames = round(hop_s / frame_shift_s)
    if not (MIN_HOP_S <= hop_s <= MAX_HOP_S) or abs(frames * frame_shift_s - hop_s) > 1e-9:
        raise ConfigError(f"hop must be a multiple of {frame_shift_s:g} s between {MIN_HOP_S:g} and "
                          f"{MAX_HOP_S:g} s, got {hop_s!r}")
    return frames


def _model_hop_frames(hop_s: float, features: FeatureConfig) -> int:
    """hop_frames_for on the model's frame grid. When the hop fits AST's 10 ms frames and only the model's
    odd frame shift (e.g. a feature config of 44101 Hz) rejects it, the error names the model, not --hop."""
    try:
        return hop_frames_for(hop_s, features.frame_shift_s)
    except ConfigError as model_grid_error:
        try:
            hop_frames_for(hop_s)
        except ConfigError:
            raise model_grid_error from None     # the hop is wrong on any grid
    raise ConfigError(
        f"the model's feature config says {features.frame_shift_samples} samples per frame at "
        f"{features.sample_rate_hz} Hz (frames of {features.frame_shift_s * 1000:.4g} ms), so no hop in 10 ms "
        f"steps such as {hop_s:g} s fits its frame grid; AST models use 160 samples at 16000 Hz: the model "
        "file's feature config is probably damaged; use a model file with a correct one")


class Analyzer:
    """Analyse files with one model on one device. Not thread-safe: one Analyzer per analysis thread."""

    def __init__(self, scorer: Scorer, hop_s: float = 1.0, batch_size: int | None = None,
                 block_s: float = 8.0):
        self.scorer = scorer
        self.features = scorer.features
        self.plan = WindowPlan(self.features.num_frames, _model_hop_frames(hop_s, self.features))
        self.hop_s = self.plan.hop_frames * self.features.frame_shift_s
        self.batch_size = batch_size or (64 if scorer.device.type == "cuda" else 8)
        self.block_s = block_s

    def analyze(self, path: str, progress: ProgressFn | None = None,
                cancel: threading.Event | None = None, on_frames: FramesFn | None = None) -> Timeline:
        """Decode, fbank once, score every window. Raises AudioError, AnalysisCancelled.

        on_frames gets every block's new fbank frames (e.g. for a display), on this thread.
        """
        info = probe(path)  # fails early, with a clear message, on files that cannot be read
        rate = self.features.sample_rate_hz
        total_s = info.duration_s if info.duration_s is not None else 0.0  # a stream's length is not known
        reports: list[DecodeReport] = []
        cancel = cancel or threading.Event()
        plan, T = self.plan, self.features.num_frames
        streamer = FbankStreamer(self.features, device=self.scorer.device)
        buffer = torch.zeros(0, self.features.num_mel_bins, device=self.scorer.device)  # frames [buffer_start, ...)
        buffer_start = 0
        next_window = 0
        scores: list[np.ndarray] = []

        def run(ks: list[int]) -> None:
            nonlocal buffer, buffer_start
            first, last = plan.start(ks[0]) - buffer_start, plan.start(ks[-1]) - buffer_start
            if last + T <= buffer.shape[0]:  # consecutive full windows: a strided view, no copy
                batch = buffer[first:last + T].unfold(0, T, plan.hop_frames).transpose(1, 2)  # (B, T, F)
            else:  # the tail: windows that run past the end are padded as the model was trained
                batch = torch.stack([pad_or_cut(w, T, self.features.pad_log_mel)
                                     for w in (buffer[first + i * plan.hop_frames:][:T] for i in range(len(ks)))])
            batch_scores = self.scorer(batch)                                                # (B, L)
            if not np.isfinite(batch_scores).all():   # fail now: NaN would be written as "0 events"
                raise TaggerError(
                    f"the model gave non-finite scores (NaN or inf) for '{path}' (window at "
                    f"{plan.start(ks[0]) * self.features.frame_shift_s:.2f} s); the model file is probably "
                    "damaged (NaN weights); nothing was exported for this file")
            scores.append(batch_scores)
            # frames before the next window are no longer needed; with a hop longer than the window the
            # next window may start beyond the frames received so far, so never drop more than we hold
            drop = min(plan.start(ks[-1] + 1) - buffer_start, buffer.shape[0])
            if drop > 0:
                buffer, buffer_start = buffer[drop:], buffer_start + drop

        for block in _prefetch(iter_blocks(path, rate, self.block_s), cancel, reports.append):
            frames = streamer.push(block)
            if on_frames is not None and frames.shape[0]:
                on_frames(streamer.num_frames - frames.shape[0], frames.cpu().numpy().copy())
            buffer = torch.cat([buffer, frames]) if buffer.numel() else frames
            available = buffer_start + buffer.shape[0]
            ready = []  # complete windows of this batch
            while plan.start(next_window) + T <= available:
                ready.append(next_window)
                next_window += 1
                if len(ready) == self.batch_size:
                    run(ready)
                    ready = []
                    if cancel.is_set():
                        raise AnalysisCancelled(f"analysis of {path} was cancelled")
            if ready:
                run(ready)
            if progress:
                done_s = streamer.num_samples / rate
                progress(min(done_s, total_s) if total_s else done_s, total_s)

        num_frames_total = streamer.num_frames
        num_samples = streamer.num_samples
        remaining = list(range(next_window, plan.num_windows(num_frames_total)))
        for i in range(0, len(remaining), self.batch_size):
            run(remaining[i:i + self.batch_size])
        duration_s = num_samples / rate
        if progress:
            progress(total_s or duration_s, total_s or duration_s)
        starts = np.round(np.arange(plan.num_windows(num_frames_total)) * self.hop_s, 6)
        ends = np.minimum(starts + self.features.window_s, duration_s)
        loaded = self.scorer.loaded
        return Timeline(
            source=str(path), labels=loaded.labels, starts_s=starts, ends_s=ends,
            scores=np.concatenate(scores).astype(np.float32), duration_s=duration_s,
            window_s=self.features.window_s, hop_s=self.hop_s, model_name=loaded.name,
            device=str(self.scorer.device), sample_rate_hz=rate, kind="file",
            extra={"source_sample_rate_hz": info.sample_rate_hz, "source_channels": info.num_channels,
                   **_report_rows(reports[0])},
        )


def _report_rows(report: DecodeReport) -> dict:
    """The params.csv rows of a decode report: only what went wrong."""
    rows: dict = {}
    if report.warning:
        rows.update(warning=report.warning, truncated_at_s=round(report.truncated_at_s, 6))
    if report.nonfinite_samples:
        rows["nonfinite_samples_replaced"] = report.nonfinite_samples
    if report.clipped_samples:
        rows["samples_clipped"] = report.clipped_samples
    return rows


@dataclass(frozen=True)
class _Done:
    value: object   # the generator's return value


def _prefetch(blocks, cancel: threading.Event, on_done: Callable[[object], None] | None = None, depth: int = 4):
    """Run a block generator on a helper thread (decoding overlaps inference); re-raise its errors here.

    on_done gets the generator's return value (iter_blocks' DecodeReport), on this thread, after the last block.
    """
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()

    def produce() -> None:
        try:
            while True:
                try:
                    block = next(blocks)
                except StopIteration as end:
                    q.put(_Done(end.value))
                    return
                while not stop.is_set():
                    try:
                        q.put(block, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
        except BaseException as e:  # noqa: BLE001 - handed to the consumer thread
            q.put(e)

    thread = threading.Thread(target=produce, name="decode", daemon=True)
    thread.start()
    try:
        while True:
            if cancel.is_set():
                raise AnalysisCancelled("analysis was cancelled")
            item = q.get()
            if isinstance(item, _Done):
                if on_done is not None:
                    on_done(item.value)
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # unblock a producer waiting on a full queue, then let it finish
            try:
                q.get_nowait()
            except queue.Empty:
                thread.join(timeout=0.1)
        blocks.close() if hasattr(blocks, "close") else None
