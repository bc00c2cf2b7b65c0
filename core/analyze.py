"""File analysis: audio file -> sliding windows -> scores (a Timeline).

Runs on a file-analysis thread (CLI main thread or a GUI worker). A helper thread decodes and resamples
the file block by block into a small queue while this thread computes fbank frames (once per file, as
they arrive) and runs windows through the model in batches, so memory stays bounded for any length:
about one window plus one batch of frames, never the whole file.

The windows are those of core.windows (the grid shared with live tagging): window k starts at k * hop_s and
covers the model's window; the last window reaches the end of the audio and is padded as the model was
trained; audio shorter than a window gives one padded window.

A truncated or damaged file is analysed as far as it decodes; the Timeline's extra then holds `warning`
(one line for the user) and `truncated_at_s`, which params.csv records (docs/policies.md). Non-finite
scores fail the file.
"""
from __future__ import annotations

import queue
import threading
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from core.audio_io import DecodeReport, iter_blocks, probe
from core.errors import TaggerError
from core.features import FbankStreamer
from core.scorer import Scorer
from core.timeline import Timeline
from core.windows import MAX_HOP_S, MIN_HOP_S, WindowPlan, hop_frames_for  # noqa: F401 - the grid's home

__all__ = ["Analyzer", "AnalysisCancelled", "WindowPlan", "hop_frames_for", "MIN_HOP_S", "MAX_HOP_S"]

ProgressFn = Callable[[float, float], None]  # (seconds analysed, seconds in the file; 0 = not known yet)
FramesFn = Callable[[int, np.ndarray], None]  # (index of the first fbank frame, (N, F) raw log-mel copy)


class AnalysisCancelled(TaggerError):
    """The analysis was cancelled through its cancel event."""


class Analyzer:
    """Analyse files with one model on one device. Not thread-safe: one Analyzer per analysis thread."""

    def __init__(self, scorer: Scorer, hop_s: float = 1.0, batch_size: int | None = None,
                 block_s: float = 8.0):
        self.scorer = scorer
        self.features = scorer.features
        self.plan = WindowPlan.for_model(self.features, hop_s)
        self.hop_s = self.plan.hop_s
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
            batch_scores = self.scorer(plan.batch(buffer, buffer_start, ks, self.features.pad_log_mel))  # (B, L)
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
        starts = plan.starts_s(0, plan.num_windows(num_frames_total))
        ends = plan.ends_s(starts, duration_s)
        loaded = self.scorer.loaded
        return Timeline(
            source=str(path), labels=loaded.labels, starts_s=starts, ends_s=ends,
            scores=np.concatenate(scores).astype(np.float32), duration_s=duration_s,
            window_s=self.features.window_s, hop_s=self.hop_s, model_name=loaded.name,
            device=str(self.scorer.device), sample_rate_hz=rate, kind="file",
            extra={"inference": self.scorer.describe(), "source_sample_rate_hz": info.sample_rate_hz,
                   "source_channels": info.num_channels, **_report_rows(reports[0])},
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
