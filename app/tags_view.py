"""Label confidence bars for the live view, with a ranking that does not reshuffle every hop.

GUI thread only. `BarRanking` decides which labels are shown and in which order (plain numpy, tested
without a window); `ConfidenceBars` paints them, each bar at the score written next to it.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["BarRanking", "BarRow", "ConfidenceBars"]


class BarRanking:
    """The labels on the bars: pinned labels first, then the strongest others, with hysteresis.

    A label outside the bars replaces the weakest one shown only when it beats it by a lead; two shown
    labels swap places only when the lower one leads by it. The lead is `margin`, or half the score it has
    to beat if that is less (0.05 vs 0.12 is a clear order, 0.5 vs 0.55 is jitter). So a label stays put
    while scores jitter, and a clearly stronger sound still comes up within one hop. A label comes onto
    the bars at `floor` and leaves when its score falls below half of it: no rows of zeros.
    """

    def __init__(self, num_rows: int = 8, margin: float = 0.1, floor: float = 0.05):
        self.num_rows, self.margin, self.floor = num_rows, margin, floor
        self.rows: list[int] = []        # the unpinned labels shown, top to bottom

    def _lead(self, score: float) -> float:
        return min(self.margin, 0.5 * score)

    def reset(self) -> None:
        self.rows = []

    def update(self, scores: np.ndarray, allowed: np.ndarray | None = None,
               pinned: list[int] | tuple[int, ...] = ()) -> list[int]:
        """scores (L,) in [0, 1] (NaN = not scored); allowed (L,) bool (the label filter) -> shown rows."""
        raw = np.asarray(scores, dtype=np.float64)
        s = np.nan_to_num(raw, nan=0.0)
        ok = np.ones(len(s), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool).copy()
        pinned = [p for p in pinned if 0 <= p < len(s)]
        ok[pinned] = False
        slots = max(0, self.num_rows - len(pinned))
        rows = [r for r in self.rows if r < len(s) and ok[r]
                and not raw[r] < self.floor / 2][:slots]          # NaN (not scored) keeps its row
        ok[rows] = False
        for c in np.argsort(-s, kind="stable"):        # candidates, strongest first
            if not ok[c] or s[c] < self.floor:
                continue
            if len(rows) < slots:
                rows.append(int(c))
            else:
                weakest = min(range(len(rows)), key=lambda i: s[rows[i]])
                if s[c] <= s[rows[weakest]] + self._lead(s[rows[weakest]]):
                    break                              # no later candidate can beat it either
                rows[weakest] = int(c)
        for _ in range(len(rows)):                     # bubble up only on a clear lead
            swapped = False
            for i in range(len(rows) - 1):
                if s[rows[i + 1]] > s[rows[i]] + self._lead(s[rows[i]]):
                    rows[i], rows[i + 1] = rows[i + 1], rows[i]
                    swapped = True
            if not swapped:
                break
        self.rows = rows
        return list(pinned) + rows


@dataclass(frozen=True)
class BarRow:
    name: str
    value: float             # score in [0, 1]
    on_threshold: float      # where an event opens (drawn as a tick on the bar)
    active: bool             # an event of this label is open
    pinned: bool = False


class ConfidenceBars(QtWidgets.QWidget):
    """One horizontal bar per label: name, score, the label's on threshold; active labels in accent."""

    ROW_PX = 22

    def __init__(self, parent=None):
        super().__init__(parent)
        self.rows: list[BarRow] = []
        self.setMinimumWidth(260)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Expanding)

    def set_rows(self, rows: list[BarRow]) -> None:
        self.rows = list(rows)
        self.update()

    def tick(self) -> bool:
        """Per timer tick: nothing to animate (a bar is drawn at its score at once, like its number)."""
        return False

    def sizeHint(self) -> QtCore.QSize:
        return QtCore.QSize(320, self.ROW_PX * 8 + 8)

    def paintEvent(self, event: QtGui.QPaintEvent) -> None:
        p = QtGui.QPainter(self)
        pal = self.palette()
        p.fillRect(self.rect(), pal.color(QtGui.QPalette.ColorRole.Base))
        if not self.rows:
            p.setPen(pal.color(QtGui.QPalette.ColorRole.PlaceholderText))
            p.drawText(self.rect(), QtCore.Qt.AlignmentFlag.AlignCenter, "label confidences appear here")
            return
        w = self.width()
        name_w = min(190, int(w * 0.45))
        bar_x, bar_w = name_w + 8, max(20, w - name_w - 60)
        fm = p.fontMetrics()
        for i, r in enumerate(self.rows):
            y = 4 + i * self.ROW_PX
            h = self.ROW_PX - 6
            p.setPen(pal.color(QtGui.QPalette.ColorRole.Text))
            name = ("★ " if r.pinned else "") + r.name
            p.drawText(QtCore.QRect(4, y, name_w, h), QtCore.Qt.AlignmentFlag.AlignVCenter,
                       fm.elidedText(name, QtCore.Qt.TextElideMode.ElideRight, name_w))
            p.fillRect(bar_x, y, bar_w, h, QtGui.QColor(128, 128, 128, 50))
            value = r.value
            color = QtGui.QColor("#f28e2b") if r.active else QtGui.QColor("#4e79a7")
            p.fillRect(bar_x, y, int(bar_w * min(max(value, 0.0), 1.0)), h, color)
            tx = bar_x + int(bar_w * r.on_threshold)
            p.setPen(QtGui.QPen(pal.color(QtGui.QPalette.ColorRole.Text), 1, QtCore.Qt.PenStyle.DashLine))
            p.drawLine(tx, y - 1, tx, y + h + 1)
            p.setPen(pal.color(QtGui.QPalette.ColorRole.Text))
            p.drawText(QtCore.QRect(bar_x + bar_w + 4, y, 52, h), QtCore.Qt.AlignmentFlag.AlignVCenter,
                       f"{r.value:.2f}")
        p.end()
