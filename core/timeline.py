"""Results of tagging: per-window scores (a Timeline) and the events derived from them.

Built by the file-analysis thread or the live tagger, then handed to other threads as immutable values.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

import numpy as np

from core.labels import LabelSet


@dataclass(frozen=True)
class Event:
    """One stretch of time in which one label is on (after the event rule)."""

    label_index: int
    start_s: float
    end_s: float
    peak_score: float
    mean_score: float
    peak_time_s: float


@dataclass
class Timeline:
    """Sigmoid scores of consecutive windows of one source (a file or a live session).

    Window k covers [starts_s[k], ends_s[k]] in seconds from the start of the source;
    starts are k * hop_s, ends are min(start + window_s, duration_s).
    """

    source: str                   # the File column: audio path, or `live:<device>` / recorded WAV
    labels: LabelSet
    starts_s: np.ndarray          # (W,) float64 window starts, s
    ends_s: np.ndarray            # (W,) float64 window ends, s
    scores: np.ndarray            # (W, L) float32 sigmoid scores
    duration_s: float             # length of the audio, s
    window_s: float               # model window, s
    hop_s: float                  # hop between windows, s
    model_name: str               # model name or path, for exports
    device: str = "cpu"           # where inference ran
    sample_rate_hz: int = 16000   # rate of the analysed (model) audio
    kind: str = "file"            # "file" or "mic"
    clock_start: datetime | None = None  # wall-clock time (tz-aware) of second 0, live only
    extra: dict = field(default_factory=dict)  # provenance to write in params (code version, ...)

    def __post_init__(self) -> None:
        w = len(self.starts_s)
        if self.scores.shape != (w, len(self.labels)) or len(self.ends_s) != w:
            raise ValueError(f"inconsistent timeline: {w} starts, {len(self.ends_s)} ends, "
                             f"scores {self.scores.shape}, {len(self.labels)} labels")

    @property
    def num_windows(self) -> int:
        return len(self.starts_s)
