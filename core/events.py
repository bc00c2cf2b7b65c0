"""The event rule: per-window scores -> events (stretches of time in which one label is on).

Pure functions over immutable values (numpy only; no torch, no Qt). The file-analysis thread, the live
tagger thread and the GUI thread each call them on their own copy of a Timeline, so one rule serves live
and offline tagging.

The rule, per label, over consecutive windows k (window k covers [starts_s[k], ends_s[k]] seconds,
starts are k * hop_s):

1. NaN scores count as 0. A median filter of `median_windows` windows smooths the scores (odd length;
   at the ends the median of the neighbours that exist, no zero padding; length 1 = off).
2. Hysteresis: an event opens at the first window whose smoothed score >= on and stays open while the
   smoothed score >= off.
3. Time of a run of windows i..j, with window centres c_k = starts_s[k] + window_s / 2 (the nominal
   window, so a padded last window does not shift): [c_i - hop_s / 2, c_j + hop_s / 2], except that the
   first window starts at 0 and the last window ends at duration_s; clipped to [0, duration_s].
4. Events of one label whose gap (next start - previous end) < merge_gap_s are merged; then events
   shorter than min_duration_s are dropped. Both comparisons use the times rounded to 1 ms.
5. peak_score and mean_score come from the raw (unsmoothed) scores of the event's windows (after a merge:
   the windows of all merged runs, not the gap); peak_time_s is the centre of the peak window.
   All times are rounded to 3 decimals (1 ms) to avoid float drift.
"""
from __future__ import annotations

import dataclasses

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.config import EventConfig
from core.errors import ConfigError
from core.labels import LabelSet
from core.timeline import Event, Timeline

__all__ = ["detect_events", "detect_label_events", "median_filter", "thresholds_for", "rule_for"]


def thresholds_for(labels: LabelSet, config: EventConfig) -> np.ndarray:
    """(on, off) thresholds per label, shape (L, 2), in model output order.

    Labels named in `config.label_thresholds` (by id, or by display name, case-insensitive) get their own
    on threshold, and an off threshold that keeps the global ratio: off_label = on_label * off / on.
    Later entries for the same label win. A key that is not in `labels` raises ConfigError.
    """
    table = np.empty((len(labels), 2), dtype=np.float64)
    table[:, 0] = config.on_threshold
    table[:, 1] = config.off_threshold
    ratio = config.off_threshold / config.on_threshold if config.on_threshold > 0 else 1.0
    for key, on in config.label_thresholds:
        label = labels.find(str(key))
        if label is None:
            examples = labels.suggest(str(key)) or labels.names[:5]
            raise ConfigError(
                f"label_thresholds names {key!r}, which is not a label of this model ({len(labels)} labels); "
                f"use a label id, display name or dataset name, e.g. {', '.join(repr(n) for n in examples)}")
        on = float(on)
        if not 0.0 <= on <= 1.0:
            raise ConfigError(f"threshold for label {key!r} must be between 0 and 1, got {on}")
        table[label.index] = (on, on * ratio)
    return table


def rule_for(config: EventConfig, labels: LabelSet) -> EventConfig:
    """The rule for one model's labels: per-label thresholds naming labels it lacks are left out.

    For settings carried across models (the app); typed input goes through thresholds_for, which refuses
    an unknown label so that a typo is not silently ignored.
    """
    keep = tuple((k, v) for k, v in config.label_thresholds if labels.find(str(k)) is not None)
    return config if keep == tuple(config.label_thresholds) else dataclasses.replace(config, label_thresholds=keep)


def median_filter(values: np.ndarray, length: int) -> np.ndarray:
    """Running median of a (W,) array over `length` (odd) neighbouring windows, as float64.

    At the ends the window shrinks to the neighbours that exist (e.g. with length 3 the first value is the
    median of values[0:2]); no zero padding. NaN inputs count as 0. length 1 returns a copy.
    """
    if length < 1 or length % 2 == 0:
        raise ValueError(f"median filter length must be a positive odd number, got {length}")
    x = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    if length == 1 or len(x) <= 1:
        return x.copy()
    half = length // 2
    padded = np.pad(x, half, constant_values=np.nan)          # NaN marks "no neighbour here"
    return np.nanmedian(sliding_window_view(padded, length), axis=1)  # (W, length) -> (W,)


def _hysteresis_runs(smoothed: np.ndarray, on: float, off: float) -> list[tuple[int, int]]:
    """Inclusive window ranges (i, j): open at the first value >= on, stay open while >= off."""
    above_off = np.concatenate(([0], (smoothed >= off).astype(np.int8), [0]))
    edges = np.diff(above_off)
    run_starts = np.flatnonzero(edges == 1)
    run_ends = np.flatnonzero(edges == -1) - 1
    on_index = np.flatnonzero(smoothed >= on)
    runs = []
    for a, b in zip(run_starts, run_ends):     # each maximal run of values >= off ...
        k = np.searchsorted(on_index, a)
        if k < len(on_index) and on_index[k] <= b:  # ... is an event from its first value >= on to its end
            runs.append((int(on_index[k]), int(b)))
    return runs


def detect_label_events(scores_1d: np.ndarray, starts_s: np.ndarray, ends_s: np.ndarray, hop_s: float,
                        duration_s: float, on: float, off: float, median_windows: int,
                        min_duration_s: float, merge_gap_s: float, label_index: int,
                        window_s: float | None = None) -> list[Event]:
    """Events of one label, sorted by start (see the module docstring for the rule).

    scores_1d: (W,) raw sigmoid scores of consecutive windows; starts_s / ends_s: (W,) window bounds, s;
    hop_s, duration_s, min_duration_s, merge_gap_s, window_s: seconds. window_s is the nominal model window
    used for window centres; None takes the longest window in starts_s/ends_s.
    """
    raw = np.nan_to_num(np.asarray(scores_1d, dtype=np.float64), nan=0.0)
    starts = np.asarray(starts_s, dtype=np.float64)
    num_windows = len(raw)
    if len(starts) != num_windows or len(ends_s) != num_windows:
        raise ValueError(f"{num_windows} scores but {len(starts)} starts and {len(ends_s)} ends")
    if num_windows == 0:
        return []
    if window_s is None:
        window_s = float(np.max(np.asarray(ends_s, dtype=np.float64) - starts))
    runs = _hysteresis_runs(median_filter(raw, median_windows), on, off)
    if not runs:
        return []

    centres = starts + window_s / 2.0
    last = num_windows - 1

    def span(i: int, j: int) -> tuple[float, float]:
        start = 0.0 if i == 0 else float(centres[i]) - hop_s / 2.0
        end = float(duration_s) if j == last else float(centres[j]) + hop_s / 2.0
        start = round(min(max(start, 0.0), duration_s), 3)
        end = round(min(max(end, 0.0), duration_s), 3)
        return min(start, end), end

    # Merge runs whose gap is below merge_gap_s; each group keeps its runs (for peak/mean) and its span.
    groups: list[list] = []   # [runs, start_s, end_s]
    for i, j in runs:
        start, end = span(i, j)
        if groups and round(start - groups[-1][2], 3) < merge_gap_s:
            groups[-1][0].append((i, j))
            groups[-1][2] = end
        else:
            groups.append([[(i, j)], start, end])

    events = []
    for group_runs, start, end in groups:
        if round(end - start, 3) < min_duration_s:
            continue
        index = np.concatenate([np.arange(i, j + 1) for i, j in group_runs])
        values = raw[index]
        peak = int(index[int(np.argmax(values))])   # first window with the highest raw score
        peak_time = min(max(float(centres[peak]), 0.0), duration_s)
        events.append(Event(label_index=int(label_index), start_s=start, end_s=end,
                            peak_score=float(raw[peak]), mean_score=float(values.mean()),
                            peak_time_s=round(peak_time, 3)))
    return events


def detect_events(timeline: Timeline, config: EventConfig) -> list[Event]:
    """Events of every label of a timeline, sorted by start time, then label index.

    Per-label on/off thresholds come from `thresholds_for` (ConfigError for an unknown label key).
    Labels whose raw scores never reach their on threshold are skipped early (a median never exceeds
    the maximum), so a 527-label timeline costs little more than the labels that fire.
    """
    table = thresholds_for(timeline.labels, config)
    if timeline.num_windows == 0:
        return []
    scores = np.nan_to_num(np.asarray(timeline.scores, dtype=np.float64), nan=0.0)  # (W, L)
    candidates = np.flatnonzero(scores.max(axis=0) >= table[:, 0])
    events: list[Event] = []
    for label_index in candidates:
        on, off = table[label_index]
        events.extend(detect_label_events(
            scores[:, label_index], timeline.starts_s, timeline.ends_s, timeline.hop_s,
            timeline.duration_s, float(on), float(off), config.median_windows, config.min_duration_s,
            config.merge_gap_s, int(label_index), window_s=timeline.window_s))
    events.sort(key=lambda e: (e.start_s, e.label_index))
    return events
