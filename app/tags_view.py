"""Label confidence bars for the live view, with a ranking that does not reshuffle every hop.

GUI thread only. `BarRanking` decides which labels are shown and in which order (plain numpy, tested
without a window); `ConfidenceBars` paints them and eases each bar towards its new value per timer tick.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

__all__ = ["BarRanking", "BarRow", "ConfidenceBars"]


class BarRanking:
    """The labels on the bars: pinned labels first, then the strongest others, with hysteresis.

    A label outside the bars replaces the weakest one shown only when it beats it by `margin`; two shown
    labels swap places only when the lower one leads by `margin`. So a label stays put while scores
    jitter, and a clearly stronger sound still comes up within one hop.
    """

    def __init__(self, num_rows: int = 8, margin: float = 0.1, floor: float = 0.02):
        self.num_rows, self.margin, self.floor = num_rows, margin, floor
        self.rows: list[int] = []        # the unpinned labels shown, top to bottom

    def reset(self) -> None:
        self.rows = []

    def update(self, scores: np.ndarray, allowed: np.ndarray | None = None,
               pinned: list[int] | tuple[int, ...] = ()) -> list[int]:
        """scores (L,) in [0, 1] (NaN = not scored); allowed (L,) bool (the label filter) -> shown rows."""
        s = np.nan_to_num(np.asarray(scores, dtype=np.float64), nan=0.0)
        ok = np.ones(len(s), dtype=bool) if allowed is None else np.asarray(allowed, dtype=bool).copy()
        pinned = [p for p in pinned if 0 <= p < len(s)]
        ok[pinned] = False
        slots = max(0, self.num_rows - len(pinned))
        rows = [r for r in self.rows if r < len(s) and ok[r]][:slots]
        ok[rows] = False
        for c in np.argsort(-s, kind="stable"):        # candidates, strongest first
            if not ok[c] or s[c] < self.floor:
                continue
            if len(rows) < slots:
                rows.append(int(c))
            else:
                weakest = min(range(len(rows)), key=lambda i: s[rows[i]])
                if s[c] <= s[rows[weakest]] + self.margin:
                    break                              # no later candidate can beat it either
                rows[weakest] = int(c)
        for _ in range(len(rows)):                     # bubble up only on a clear lead
            swapped = False
            for i in range(len(rows) - 1):
                if s[rows[i + 1]] > s[rows[i]] + self.margin:
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
        self._shown: dict[str, float] = {}      # eased display value per label name
        self.setMinimumWidth(260)
        self.setSizePolicy(QtWidgets.QSizePolicy.Policy.Preferred, QtWidgets.QSizePolicy.Policy.Expanding)

    def set_rows(self, rows: list[BarRow]) -> None:
        self.rows = list(rows)
        self._shown = {r.name: self._shown.get(r.name, 0.0) for r in rows}
        self.update()

    def tick(self) -> bool:
        """Ease the bars towards their values (called per timer tick); True if anything moved."""
        moved = False
        for r in self.rows:
            shown = self._shown.get(r.name, 0.0)
            if abs(r.value - shown) > 1e-3:
                self._shown[r.name] = shown + 0.45 * (r.value - shown)
                moved = True
            else:
                self._shown[r.name] = r.value
        if moved:
            self.update()
        return moved

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
            value = self._shown.get(r.name, r.value)
            color = QtGui.QColor("#f28e2b") if r.active else QtGui.QColor("#4e79a7")
            p.fillRect(bar_x, y, int(bar_w * min(max(value, 0.0), 1.0)), h, color)
            tx = bar_x + int(bar_w * r.on_threshold)
            p.setPen(QtGui.QPen(pal.color(QtGui.QPalette.ColorRole.Text), 1, QtCore.Qt.PenStyle.DashLine))
            p.drawLine(tx, y - 1, tx, y + h + 1)
            p.setPen(pal.color(QtGui.QPalette.ColorRole.Text))
            p.drawText(QtCore.QRect(bar_x + bar_w + 4, y, 52, h), QtCore.Qt.AlignmentFlag.AlignVCenter,
                       f"{r.value:.2f}")
        p.end()
