"""What the timeline view draws, computed without a window: a colour per label, the lanes of event boxes,
the event density of the overview, its thumbnail, and times in m:ss.

Pure functions over immutable values (numpy and QColor only), used on the GUI thread by app.timeline_view
and app.events_table, so both show a label in the same colour and in the same order.
"""
from __future__ import annotations

import math
import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
from PySide6 import QtGui

from core.timeline import Event, Timeline

__all__ = ["PALETTE", "MAX_LANES", "OTHER", "OTHER_COLOUR", "Lane", "label_colours", "event_colours",
           "format_clock", "order_lanes", "own_lanes", "build_lanes", "box_height", "event_density", "thumbnail",
           "spaced"]

# 20 colours picked by greedy max-min CIEDE2000 distance (the Glasbey et al. 2007 method) from the sRGB grid in
# steps of 15, among lightness 50-82 and chroma 30-90: each stands out on the black background and from the
# others (min dE2000 16.9; among the first ten 23.7). pg.intColor's evenly spaced hues collide in green and blue.
PALETTE = ("#F0962D", "#4B69FF", "#00E169", "#F01E5A", "#00D2F0", "#F0B4F0", "#788700", "#008778", "#D23CD2",
           "#D2D200", "#D24B0F", "#FFA596", "#96B4F0", "#0087B4", "#78A578", "#C37896", "#00E1C3", "#A5784B",
           "#B4A569", "#B487FF")
MAX_LANES = len(PALETTE)    # labels with a lane and a colour of their own; the others share one grey lane
OTHER = -1                  # label index of that shared lane ("+ N more labels")
OTHER_COLOUR = "#BBBBBB"


def label_colours(label_ids: Iterable[str]) -> dict[str, QtGui.QColor]:
    """A palette colour per label id, the same in every file: each id hashes (crc32) to a preferred colour,
    taken in id order; an id whose colour is already taken gets the next free one. So labels never share a
    colour while there are at most len(PALETTE) of them, and a label keeps its colour across files unless
    a label earlier in id order took it in this file. Beyond len(PALETTE) labels, colours repeat."""
    ids = sorted(set(label_ids))
    taken: set[int] = set()
    colours = {}
    for label_id in ids:
        slot = zlib.crc32(label_id.encode("utf-8")) % len(PALETTE)
        if len(taken) < len(PALETTE):
            while slot in taken:
                slot = (slot + 1) % len(PALETTE)
            taken.add(slot)
        colours[label_id] = QtGui.QColor(PALETTE[slot])
    return colours


def own_lanes(events: Sequence[Event]) -> list[int]:
    """The labels that get a lane of their own: the first MAX_LANES of order_lanes."""
    return order_lanes(events)[:MAX_LANES]


def event_colours(events: Sequence[Event], timeline: Timeline) -> dict[int, QtGui.QColor]:
    """label index -> colour for every label with events: label_colours over the ids of the labels with
    lanes of their own (so no two of them share one), OTHER_COLOUR for the labels of the shared lane."""
    own = own_lanes(events)
    by_id = label_colours(timeline.labels[i].id for i in own)
    colours = {e.label_index: QtGui.QColor(OTHER_COLOUR) for e in events}
    colours.update({i: by_id[timeline.labels[i].id] for i in own})
    return colours


def format_clock(seconds: float, decimals: int = 1) -> str:
    """83.44 -> '1:23.4' (decimals=1), '1:23' (0); an hour or more: '1:02:03.0'."""
    sign, total = ("-" if seconds < 0 else ""), round(abs(seconds), decimals)
    minutes, s = divmod(total, 60.0)
    hours, minutes = divmod(int(minutes), 60)
    sec = f"{s:0{3 + decimals if decimals else 2}.{decimals}f}"
    return f"{sign}{hours}:{minutes:02d}:{sec}" if hours else f"{sign}{minutes}:{sec}"


def order_lanes(events: Sequence[Event]) -> list[int]:
    """Label indices of the labels with events, by total time on (longest first), then first start."""
    total: dict[int, float] = {}
    first: dict[int, float] = {}
    for e in events:
        total[e.label_index] = total.get(e.label_index, 0.0) + e.end_s - e.start_s
        first[e.label_index] = min(first.get(e.label_index, math.inf), e.start_s)
    return sorted(total, key=lambda i: (-round(total[i], 3), first[i], i))


def event_density(events: Sequence[Event], duration_s: float, bins: int) -> np.ndarray:
    """(bins,) number of events overlapping each of `bins` equal stretches of [0, duration_s]."""
    counts = np.zeros(bins + 1, dtype=np.int64)
    if duration_s <= 0 or not events:
        return counts[:-1]
    scale = bins / duration_s
    for e in events:
        a = min(int(e.start_s * scale), bins - 1)
        b = min(max(math.ceil(e.end_s * scale), a + 1), bins)    # an event shorter than a bin still counts
        counts[a] += 1
        counts[b] -= 1
    return np.cumsum(counts)[:-1]


def thumbnail(image: np.ndarray, rows: int, max_columns: int) -> np.ndarray:
    """(F, C) uint8 -> (<= rows, <= max_columns): max over groups of columns (a short sound stays visible),
    mean over groups of rows."""
    F, C = image.shape
    group = max(1, math.ceil(C / max_columns))
    padded = np.zeros((F, math.ceil(C / group) * group), dtype=np.uint8)
    padded[:, :C] = image
    pooled = padded.reshape(F, -1, group).max(axis=2)                     # (F, C / group)
    step = max(1, F // rows)
    return pooled[:F // step * step].reshape(-1, step, pooled.shape[1]).mean(axis=1).astype(np.uint8)


@dataclass(frozen=True)
class Lane:
    """One row of boxes: the events of one label, or (label_index OTHER) of the labels past the first MAX_LANES."""

    label_index: int
    name: str
    colour: QtGui.QColor
    events: np.ndarray      # (n,) indices into the panel's events
    starts_s: np.ndarray    # (n,) float64
    ends_s: np.ndarray      # (n,) float64
    peaks: np.ndarray       # (n,) float64


def spaced(ticks: Sequence[tuple[float, str]], min_gap: float) -> list[tuple[float, str]]:
    """The ticks, from the highest down, that lie at least min_gap below the last one kept (the low Hz ticks
    of a mel axis crowd into a few rows)."""
    kept: list[tuple[float, str]] = []
    for y, text in sorted(ticks, reverse=True):
        if not kept or kept[-1][0] - y >= min_gap:
            kept.append((y, text))
    return kept


def box_height(peak: np.ndarray) -> np.ndarray:
    """Height of a box in its lane (lane height 1): taller is more confident; the weakest still shows."""
    return 0.2 + 0.7 * np.clip(peak, 0.0, 1.0)


def build_lanes(events: Sequence[Event], names: Sequence[str], colours: dict[int, QtGui.QColor],
                min_peak: float = 0.0) -> list[Lane]:
    """The lanes of the events whose peak reaches min_peak: the own_lanes labels in their order, then one
    lane (label index OTHER) shared by the other labels; lanes left empty by min_peak are left out. Which
    labels have lanes is decided on all the events, so the filter never moves a label to another lane.
    names: display name per label index; colours: event_colours."""
    own = own_lanes(events)
    members: dict[int, list[int]] = {label: [] for label in own}
    rest: list[int] = []
    for i, e in enumerate(events):
        if e.peak_score >= min_peak:
            members.get(e.label_index, rest).append(i)

    def lane(label: int, name: str, colour: QtGui.QColor, indices: list[int]) -> Lane:
        chosen = [events[i] for i in indices]
        return Lane(label, name, colour, np.array(indices, dtype=np.int64),
                    np.array([e.start_s for e in chosen], dtype=np.float64),
                    np.array([e.end_s for e in chosen], dtype=np.float64),
                    np.array([e.peak_score for e in chosen], dtype=np.float64))

    lanes = [lane(label, names[label], colours[label], members[label]) for label in own if members[label]]
    if rest:
        others = len({events[i].label_index for i in rest})
        lanes.append(lane(OTHER, f"+ {others} more label{'s' if others > 1 else ''}", QtGui.QColor(OTHER_COLOUR),
                          rest))
    return lanes
