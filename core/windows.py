"""The window grid, written once: window k -> fbank frames -> seconds, hop limits, and the tail padding.

Used by file analysis (core.analyze, a file-analysis thread), the streaming tagger (core.tagger, its own
thread) and the live timeline (core.session, the consumer's thread); a WindowPlan is an immutable value,
so each thread may hold the same one.

Window k covers fbank frames [k * hop_frames, k * hop_frames + T), i.e. stream samples from
k * hop_frames * frame_shift on; its start is k * hop_s seconds (rounded to 1 us, so every user of the grid
writes the same numbers) and its end start + window_s, or the end of the audio for a window that runs past
it. Windows are added until one reaches the end of the audio (at least one): a window that runs past the end
is padded in the log-mel domain as the model was trained (FeatureConfig.pad_log_mel: AST's zeros, or
digital silence for our models), so a short file is one padded window, and a live stream that ends is
scored exactly as the analysis of its recording.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.config import FeatureConfig
from core.errors import ConfigError

if TYPE_CHECKING:   # torch is imported by the first batch(): the command line's --help and `devices` stay fast
    import torch

__all__ = ["WindowPlan", "hop_frames_for", "check_live_hop", "starts_s", "ends_s", "MIN_HOP_S", "MAX_HOP_S",
           "MIN_LIVE_HOP_S", "MAX_LIVE_HOP_S"]

MIN_HOP_S, MAX_HOP_S = 0.01, 60.0            # files: one 10 ms frame up to a minute
MIN_LIVE_HOP_S, MAX_LIVE_HOP_S = 0.25, 5.0   # live: one model call per hop must fit the CPU/GPU


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


def check_live_hop(hop_s: float) -> None:
    """ConfigError unless hop_s suits live tagging (within the live limits, on the 10 ms grid)."""
    if not MIN_LIVE_HOP_S <= hop_s <= MAX_LIVE_HOP_S:
        raise ConfigError(f"live hop must be between {MIN_LIVE_HOP_S:g} and {MAX_LIVE_HOP_S:g} s, "
                          f"got {hop_s!r}; one model call per hop must fit the CPU/GPU")
    hop_frames_for(hop_s)


def starts_s(first: int, stop: int, hop_s: float) -> np.ndarray:
    """(stop - first,) float64 start times of windows first..stop-1 at hop_s, s, rounded to 1 us."""
    return np.round(np.arange(first, stop) * hop_s, 6)


def ends_s(starts: np.ndarray | float, window_s: float, duration_s: float) -> np.ndarray:
    """End times of windows with these starts in audio of duration_s: start + window_s, or the end."""
    return np.minimum(np.asarray(starts, dtype=np.float64) + window_s, duration_s)


@dataclass(frozen=True)
class WindowPlan:
    """Where the windows of a stream of fbank frames start, in frames and in seconds."""

    window_frames: int               # T, the model's window
    hop_frames: int
    frame_shift_s: float = 0.01      # seconds per fbank frame (160 samples at 16 kHz)

    @classmethod
    def for_model(cls, features: FeatureConfig, hop_s: float) -> "WindowPlan":
        """The plan of a model's features at hop_s (ConfigError for a hop off the 10 ms grid)."""
        return cls(features.num_frames, _model_hop_frames(hop_s, features), features.frame_shift_s)

    @property
    def hop_s(self) -> float:
        return self.hop_frames * self.frame_shift_s

    @property
    def window_s(self) -> float:
        return self.window_frames * self.frame_shift_s

    def num_windows(self, num_frames_total: int) -> int:
        """Windows needed so that the last one reaches the end (at least one)."""
        if num_frames_total <= self.window_frames:
            return 1
        reach_end = 1 + math.ceil((num_frames_total - self.window_frames) / self.hop_frames)
        return min(reach_end, math.ceil(num_frames_total / self.hop_frames))  # hop > window: none starts at the end

    def start(self, k: int) -> int:
        """First fbank frame of window k."""
        return k * self.hop_frames

    def is_padded(self, k: int, num_frames_total: int) -> bool:
        """Window k runs past the last of num_frames_total frames."""
        return self.start(k) + self.window_frames > num_frames_total

    def starts_s(self, first: int, stop: int) -> np.ndarray:
        """(stop - first,) float64 start times of windows first..stop-1, s, rounded to 1 us."""
        return starts_s(first, stop, self.hop_s)

    def ends_s(self, starts: np.ndarray | float, duration_s: float) -> np.ndarray:
        """End times of windows with these starts in audio of duration_s: start + window_s, or the end."""
        return ends_s(starts, self.window_s, duration_s)

    def batch(self, frames: torch.Tensor, first_frame: int, ks: list[int], pad_log_mel: float) -> torch.Tensor:
        """(B, T, F) model input of windows ks from frames (N, F), whose row 0 is absolute frame first_frame.

        Consecutive complete windows are a strided view (no copy); windows that run past the frames held
        (the tail) are padded with pad_log_mel (FeatureConfig.pad_log_mel) to T frames.
        """
        import torch

        from core.features import pad_or_cut
        T, hop = self.window_frames, self.hop_frames
        first, last = self.start(ks[0]) - first_frame, self.start(ks[-1]) - first_frame
        consecutive = ks[-1] - ks[0] == len(ks) - 1
        if consecutive and first >= 0 and last + T <= frames.shape[0]:
            return frames[first:last + T].unfold(0, T, hop).transpose(1, 2)        # (B, F, T) -> (B, T, F)
        return torch.stack([pad_or_cut(frames[self.start(k) - first_frame:][:T], T, pad_log_mel) for k in ks])
