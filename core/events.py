"""The event rule: per-window scores -> events (stretches of time in which one label is on).

Pure functions over immutable values (numpy only; no torch, no Qt). The file-analysis thread, the live
tagger thread and the GUI thread each call them on their own copy of a Timeline, so one rule serves live
and offline tagging; a live view asks `open_at_end` (through core.session) instead of keeping a rule of its own.

The rule, per label, over consecutive windows k (window k covers [starts_s[k], ends_s[k]] seconds,
starts are k * hop_s). Every length is in seconds, so the hop changes the resolution, not the rule:

1. NaN scores count as 0. A median filter of `median_s` seconds smooths the scores: the median of the
   windows whose starts lie within median_s / 2 of the window's own (`median_windows`: 3 windows for
   3 s at a 1 s hop, 31 at 0.1 s; fewer than 3 = off). Near the ends it takes the neighbours that
   exist (no zero padding) and, for an even count, the lower of the two middle scores (no average), so
   the smoothed value is always one of the scores.
2. Hysteresis: an event opens at a window whose own raw score >= on, and stays open while the smoothed
   score is >= off. So the median decides only when an event closes (it bridges short dips and ignores
   single-window noise above off); it never opens an event and never erases a window whose own score
   reached on. A lone strong window is therefore an event (min_duration_s can drop it), and the
   reported confidence is a score that really crossed the threshold: a median can exceed every raw
   score of the windows it would open (at an edge, or with a long filter), which once reported
   "Confidence 0.0377" at on = 0.3.
3. Time of a run of windows i..j, with window centres c_k = starts_s[k] + window_s / 2 (the nominal
   window, so a padded last window does not shift): [c_i - hop_s / 2, c_j + hop_s / 2], except that the
   first window starts at 0 and the last window ends at duration_s; clipped to [0, duration_s].
4. Events of one label whose gap (next start - previous end) < merge_gap_s are merged; then events
   shorter than min_duration_s are dropped. Both comparisons use the times rounded to 1 ms.
5. peak_score is the peak of the RAW (unsmoothed) scores inside the event, so peak_score >= on always;
   mean_score is their mean (after a merge: the windows of all merged runs, not the gap); peak_time_s is
   the centre of the peak window. All times are rounded to 3 decimals (1 ms) to avoid float drift.
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.config import EventConfig
from core.errors import ConfigError
from core.labels import LabelSet
from core.timeline import Event, Timeline

__all__ = ["detect_events", "detect_label_events", "open_at_end", "median_filter", "median_windows",
           "thresholds_for", "rule_for"]


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


def median_windows(median_s: float, hop_s: float) -> int:
    """Windows of a median filter of median_s seconds at hop_s: those whose starts lie within median_s / 2
    of the centre window's start, i.e. 2 * floor(median_s / (2 hop_s)) + 1 (N seconds at a 1 s hop: N)."""
    if not hop_s > 0:
        raise ValueError(f"hop must be positive, got {hop_s!r}")
    return 2 * math.floor(median_s / (2.0 * hop_s) + 1e-9) + 1


def _medians_at(x: np.ndarray, positions: np.ndarray, half: int) -> np.ndarray:
    """For each k in positions, the median of x[max(0, k - half) : k + half + 1] (the lower middle value
    when the ends leave an even count)."""
    num = len(x)
    whole = (positions >= half) & (positions < num - half)
    out = np.empty(len(positions), dtype=np.float64)
    full = np.flatnonzero(whole)
    if len(full):
        view = sliding_window_view(x, 2 * half + 1)               # (W - 2 half, 2 half + 1), row i centred on i + half
        rows = positions[full] - half
        step = max(1, (1 << 22) // (2 * half + 1))                # bounded memory for long files and short hops
        for i in range(0, len(rows), step):
            out[full[i:i + step]] = np.median(view[rows[i:i + step]], axis=1)
    for i in np.flatnonzero(~whole):                              # the ends: at most 2 half positions
        k = int(positions[i])
        values = x[max(0, k - half):k + half + 1]
        out[i] = np.partition(values, (len(values) - 1) // 2)[(len(values) - 1) // 2]
    return out


def median_filter(values: np.ndarray, length: int) -> np.ndarray:
    """Running median of a (W,) array over `length` (odd) neighbouring windows, as float64.

    Near the ends it takes the neighbours that exist (with length 3 the first value is the median of
    values[0:2]) and, for an even count, the lower middle value, so every output is one of the inputs
    (no zero padding, no average). NaN inputs count as 0. length 1 returns a copy.
    """
    if length < 1 or length % 2 == 0:
        raise ValueError(f"median filter length must be a positive odd number, got {length}")
    x = np.nan_to_num(np.asarray(values, dtype=np.float64), nan=0.0)
    if length == 1 or len(x) <= 1:
        return x.copy()
    return _medians_at(x, np.arange(len(x)), length // 2)


def _held(raw: np.ndarray, on: float, off: float, half: int) -> np.ndarray:
    """(W,) bool: windows an event may contain: raw >= on, or the median over +-half windows >= off.

    The medians are computed only where a raw score >= off lies within `half` windows; elsewhere every
    neighbour, hence the median, is below off (so long files with short hops stay cheap).
    """
    above_off = raw >= off
    if half == 0 or not above_off.any():
        return above_off                                          # no smoothing: the median is the score
    held = raw >= on
    count = np.concatenate(([0], np.cumsum(above_off)))           # raw >= off among windows [k - half, k + half]
    k = np.arange(len(raw))
    near = (count[np.minimum(k + half + 1, len(raw))] - count[np.maximum(k - half, 0)]) > 0
    todo = np.flatnonzero(near & ~held)
    if len(todo):
        held[todo] = _medians_at(raw, todo, half) >= off
    return held


def _event_runs(raw: np.ndarray, on: float, off: float, half: int) -> list[tuple[int, int]]:
    """Inclusive window ranges (i, j): open at a raw value >= on, stay open while held (see _held)."""
    held = np.concatenate(([0], _held(raw, on, off, half).astype(np.int8), [0]))
    edges = np.diff(held)
    run_starts = np.flatnonzero(edges == 1)
    run_ends = np.flatnonzero(edges == -1) - 1
    on_index = np.flatnonzero(raw >= on)
    runs = []
    for a, b in zip(run_starts, run_ends):     # each maximal held run ...
        k = np.searchsorted(on_index, a)
        if k < len(on_index) and on_index[k] <= b:  # ... is an event from its first raw value >= on to its end
            runs.append((int(on_index[k]), int(b)))
    return runs


def detect_label_events(scores_1d: np.ndarray, starts_s: np.ndarray, ends_s: np.ndarray, hop_s: float,
                        duration_s: float, on: float, off: float, median_s: float,
                        min_duration_s: float, merge_gap_s: float, label_index: int,
                        window_s: float | None = None) -> list[Event]:
    """Events of one label, sorted by start (see the module docstring for the rule).

    scores_1d: (W,) raw sigmoid scores of consecutive windows; starts_s / ends_s: (W,) window bounds, s;
    hop_s, duration_s, median_s, min_duration_s, merge_gap_s, window_s: seconds. window_s is the nominal
    model window used for window centres; None takes the longest window in starts_s/ends_s.
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
    runs = _event_runs(raw, on, off, median_windows(median_s, hop_s) // 2)
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


def open_at_end(scores_1d: np.ndarray, on: float, off: float, median_s: float, hop_s: float) -> bool:
    """Whether the rule (steps 1-2) has an event of this label open at the last of these windows.

    scores_1d: (W,) raw scores of consecutive windows up to now. Before merging and min_duration_s, and
    with the median of the windows known so far (it shrinks at the end), so a live view can show "open"
    while a stream runs; the final events come from detect_events when it ends.
    """
    raw = np.nan_to_num(np.asarray(scores_1d, dtype=np.float64), nan=0.0)
    if len(raw) == 0:
        return False
    runs = _event_runs(raw, on, off, median_windows(median_s, hop_s) // 2)
    return bool(runs) and runs[-1][1] == len(raw) - 1


def detect_events(timeline: Timeline, config: EventConfig) -> list[Event]:
    """Events of every label of a timeline, sorted by start time, then label index.

    Per-label on/off thresholds come from `thresholds_for` (ConfigError for an unknown label key).
    Labels whose raw scores never reach their on threshold are skipped early (only a raw score opens an
    event), so a 527-label timeline costs little more than the labels that fire.
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
            timeline.duration_s, float(on), float(off), config.median_s, config.min_duration_s,
            config.merge_gap_s, int(label_index), window_s=timeline.window_s))
    events.sort(key=lambda e: (e.start_s, e.label_index))
    return events
