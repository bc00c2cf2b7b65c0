"""A long file at a glance: an overview of the whole file, a zoomable detail spectrogram, and under it one
lane of event boxes per label (the layout of Sonic Visualiser and Audacity), with a playhead, review marks
(✓ / ✗ / → on the boxes) and an optional strip of score rows for labels the user watches.

GUI thread only. Everything drawn is built once per file (or per filter change) and then only repainted:
the spectrogram is one ImageItem with fixed levels, each lane is one BarGraphItem holding all of its
boxes, so panning and zooming a 10-minute file with hundreds of events repaints a number of items bounded
by the lanes, never one item per event. Time on every x axis is file seconds, shown as m:ss.
"""
from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtGui, QtWidgets

from core.config import FeatureConfig
from core.timeline import Event, Timeline
from app.lanes import Lane, box_height, build_lanes, event_colours, event_density, format_clock, spaced, thumbnail
from app.spectrogram_view import AXIS_WIDTH_PX, SPEC_CMAP, STRIP_CMAP, draw_strip, mel_ticks

__all__ = ["TimelinePanel", "ClockAxis", "LaneAxis"]

LANE_PX = 20                # preferred height of a lane; names need about a line of text
MIN_LANE_PX = 15
DETAIL_PX = 220             # preferred height of the detail: with many lanes both give way toward their minimum
OVERVIEW_PX = 96            # thumbnail + density row + time axis
DENSITY_TOP = 1.0           # overview y: the event density fills [0, 1], the thumbnail THUMB_Y
THUMB_Y = (1.2, 4.0)
CLICK_PX = 4                # a click this close to a box hits it (short events are a pixel or two wide)
CLOCK_STEPS_S = (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400)
MARK_PX = 18                # a review mark's symbol, drawn on its box
MARKS = {"correct": ("✓", "#7CFC00"), "wrong": ("✗", "#FF4040"), "relabel": ("→", "#FFFFFF")}   # verdict ->
                            # symbol, colour (a black outline keeps them legible on any box colour)
DETAIL, STRIP, LANES = 1, 2, 3                                 # rows of the layout (0: the overview)


@functools.cache
def text_symbol(text: str) -> QtGui.QPainterPath:
    """A character as a scatter symbol: its outline, centred and scaled to a unit box (made once; it needs
    the QApplication, so not at import)."""
    font = QtGui.QFont()
    font.setBold(True)
    path = QtGui.QPainterPath()
    path.addText(0, 0, font, text)
    box = path.boundingRect()
    scale = 1.0 / max(box.width(), box.height(), 1e-9)
    return QtGui.QTransform().scale(scale, scale).translate(-box.center().x(), -box.center().y()).map(path)


class ClockAxis(pg.AxisItem):
    """A time axis in m:ss (tenths when zoomed in below a second per tick) at clock-friendly steps."""

    def __init__(self, orientation: str = "bottom", label_px: int = 64):
        super().__init__(orientation)
        self.label_px = label_px
        self.enableAutoSIPrefix(False)

    def tickSpacing(self, minVal: float, maxVal: float, size: float):
        span = abs(maxVal - minVal)
        if span == 0 or size <= 0:
            return []
        fits = [s for s in CLOCK_STEPS_S if size * s / span >= self.label_px] or [CLOCK_STEPS_S[-1]]
        major = fits[0]
        minors = [s for s in CLOCK_STEPS_S if s < major and math.isclose(major / s, round(major / s))]
        return [(major, 0.0)] + ([(minors[-1], 0.0)] if minors else [])

    def tickStrings(self, values, scale, spacing):
        return [format_clock(v, 1 if spacing < 1 else 0) for v in values]


class LaneAxis(pg.AxisItem):
    """The lanes' left axis: each lane's label name in the lane's colour, so the axis is the legend."""

    def __init__(self):
        super().__init__("left")
        self._colours: dict[str, QtGui.QColor] = {}
        self.texts: list[str] = []          # what lane k is called on screen (elided)
        self.setWidth(AXIS_WIDTH_PX)

    def set_lanes(self, names: Sequence[str], colours: Sequence[QtGui.QColor]) -> None:
        """Lane k (y in [k, k + 1]) is called names[k]; names are elided to the axis width."""
        metrics = QtGui.QFontMetrics(self.style["tickFont"] or QtWidgets.QApplication.font())
        self.texts = [metrics.elidedText(n, QtCore.Qt.TextElideMode.ElideRight, AXIS_WIDTH_PX - 18) for n in names]
        self._colours = dict(zip(self.texts, colours))
        self.setTicks([[(k + 0.5, t) for k, t in enumerate(self.texts)], []])

    def drawPicture(self, p, axisSpec, tickSpecs, textSpecs):
        super().drawPicture(p, axisSpec, tickSpecs, [])
        if self.style["tickFont"] is not None:
            p.setFont(self.style["tickFont"])
        for rect, flags, text in textSpecs:
            p.setPen(self._colours.get(text, self.textPen().color()))
            p.drawText(rect, int(flags), text)


class TimelinePanel(QtWidgets.QWidget):
    """Overview of the whole file (spectrogram thumbnail, event density and the region shown below it), the
    detail spectrogram of that region and the event lanes, x-linked. The wheel zooms, dragging pans, the
    region drags and resizes, a click on the overview centres the detail there.

    eventActivated(i): a box was clicked (i indexes the events given to set_file); eventDoubleClicked(i): a
    box was double-clicked (to play it); timeClicked(t_s): empty time was clicked on the detail, the strip or
    the lanes (to play from there).
    """

    eventActivated = QtCore.Signal(int)
    eventDoubleClicked = QtCore.Signal(int)
    timeClicked = QtCore.Signal(float)

    def __init__(self, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.graphics = pg.GraphicsLayoutWidget()
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.graphics)
        self._make_plots()
        self._make_items()
        self.lane_items: list[pg.BarGraphItem] = []     # one per lane, holding all of its boxes
        self.lanes: list[Lane] = []
        self._lane_of: dict[int, int] = {}               # event index -> lane
        self._timeline: Timeline | None = None
        self._events: list[Event] = []
        self._colours: dict[int, QtGui.QColor] = {}
        self._duration_s = 1.0
        self._min_peak = 0.0
        self._selected: int | None = None
        self._marks: dict[int, str] = {}                 # event index -> verdict (Mark.verdict's value)
        self.strip_rows: list[str] = []
        self._playhead_s: float | None = None
        self._syncing = False
        self.region.sigRegionChanged.connect(self._region_moved)
        self.region.sigRegionChangeFinished.connect(lambda: self._range_changed(None, self.visible_range()))
        self.detail_plot.getViewBox().sigXRangeChanged.connect(self._range_changed)
        self.graphics.scene().sigMouseClicked.connect(self._clicked)
        self.graphics.scene().sigMouseMoved.connect(self._hovered)
        self.clear()

    def _make_plots(self) -> None:
        """Overview (fixed height), detail (takes the rest), the strip and the lanes (a line of text each), one
        above the other with left axes of one width, so that one second is at the same x in all but the overview."""
        self.overview_plot = self.graphics.addPlot(row=0, col=0, axisItems={"bottom": ClockAxis()})
        self.detail_plot = self.graphics.addPlot(row=DETAIL, col=0)
        self.strip_plot = self.graphics.addPlot(row=STRIP, col=0)
        self.lane_axis = LaneAxis()
        self.lane_plot = self.graphics.addPlot(row=LANES, col=0, axisItems={"left": self.lane_axis,
                                                                            "bottom": ClockAxis()})
        self._grid = self.graphics.ci.layout
        self._grid.setRowFixedHeight(0, OVERVIEW_PX)
        self._grid.setRowStretchFactor(DETAIL, 1)
        self._grid.setRowPreferredHeight(DETAIL, DETAIL_PX)
        for plot in (self.strip_plot, self.lane_plot):
            plot.setXLink(self.detail_plot)
        for plot in (self.overview_plot, self.detail_plot, self.strip_plot, self.lane_plot):
            plot.setMenuEnabled(False)
            plot.hideButtons()
            plot.getAxis("left").setWidth(AXIS_WIDTH_PX)
            plot.getAxis("left").enableAutoSIPrefix(False)
            plot.getViewBox().setMouseEnabled(x=plot is not self.overview_plot, y=False)
        self.detail_plot.hideAxis("bottom")
        self.strip_plot.hideAxis("bottom")
        self.detail_plot.setMinimumHeight(90)
        for plot in (self.strip_plot, self.lane_plot):
            plot.getViewBox().invertY(True)                       # the first row (lane with the most time) on top
        self.overview_plot.setYRange(0, THUMB_Y[1], padding=0)
        self.overview_plot.getAxis("left").setTicks([[(DENSITY_TOP / 2, "events"),
                                                      (sum(THUMB_Y) / 2, "whole file")], []])

    def _make_items(self) -> None:
        """The items drawn whatever the file: images, density, region, selection, lane shading, playheads."""
        self.overview_image = pg.ImageItem(axisOrder="row-major")
        self.density = pg.PlotCurveItem(pen=pg.mkPen("#D0D0D0"), brush=pg.mkBrush(208, 208, 208, 120))
        self.region = pg.LinearRegionItem((0.0, 1.0), brush=pg.mkBrush(255, 255, 255, 45),
                                          hoverBrush=pg.mkBrush(255, 255, 255, 70), pen=pg.mkPen("w", width=2))
        self.region.setZValue(10)
        self.detail_image = pg.ImageItem(axisOrder="row-major", autoDownsample=True)
        self.selected_band = pg.LinearRegionItem((0.0, 0.0), movable=False, brush=pg.mkBrush(255, 255, 255, 28),
                                                 pen=pg.mkPen(255, 255, 255, 160))
        self.lane_shading = pg.BarGraphItem(x0=[], x1=[], y0=[], height=[], pen=None,
                                            brush=pg.mkBrush(255, 255, 255, 16))
        pen = QtGui.QPen(QtGui.QColor("white"), 2)
        pen.setCosmetic(True)
        self.selected_box = QtWidgets.QGraphicsRectItem()
        self.selected_box.setPen(pen)
        self.selected_box.setZValue(5)
        self.strip_image = pg.ImageItem(axisOrder="row-major")
        self.strip_image.setColorMap(STRIP_CMAP)
        self.mark_items = pg.ScatterPlotItem(pxMode=True, size=MARK_PX, pen=pg.mkPen("k", width=1))
        self.mark_items.setZValue(6)
        for image in (self.overview_image, self.detail_image):
            image.setColorMap(SPEC_CMAP)
        for plot, items in ((self.overview_plot, (self.overview_image, self.density, self.region)),
                            (self.detail_plot, (self.detail_image, self.selected_band)),
                            (self.strip_plot, (self.strip_image,)),
                            (self.lane_plot, (self.lane_shading, self.selected_box, self.mark_items))):
            for item in items:
                plot.addItem(item)
        self.playheads = []
        for plot in (self.overview_plot, self.detail_plot, self.strip_plot, self.lane_plot):
            self.playheads.append(pg.InfiniteLine(angle=90, movable=False, pen=pg.mkPen("#FFFFFF", width=2)))
            self.playheads[-1].setZValue(20)
            plot.addItem(self.playheads[-1], ignoreBounds=True)

    # ---- content ------------------------------------------------------------------------------------

    def set_file(self, features: FeatureConfig, spectrogram: np.ndarray, column_s: float, timeline: Timeline,
                 events: Sequence[Event]) -> None:
        """Show one analysed file: its (F, C) uint8 display image of column_s-second columns
        (app.workers.JobDone), its timeline (duration, labels) and its events; the detail shows it all.
        Bad input raises ValueError and leaves the file shown before; the peak filter is kept."""
        image = np.asarray(spectrogram)
        F = features.num_mel_bins
        if image.ndim != 2 or image.dtype != np.uint8 or image.shape[0] != F:
            raise ValueError(f"the spectrogram must be a ({F}, columns) uint8 image (app.workers.JobDone), "
                             f"got {image.dtype} {image.shape}")
        if not column_s > 0:
            raise ValueError(f"column_s must be a positive number of seconds, got {column_s!r}")
        unknown = [e.label_index for e in events if not 0 <= e.label_index < len(timeline.labels)]
        if unknown:
            raise ValueError(f"an event has label index {unknown[0]}, but the timeline has {len(timeline.labels)} "
                             "labels; events must come from this timeline")
        self._timeline, self._events = timeline, list(events)
        self._colours = event_colours(self._events, timeline)
        self._duration_s = max(float(timeline.duration_s), column_s * image.shape[1], 1e-3)
        self._show_image(features, image if image.shape[1] else np.zeros((F, 1), np.uint8), column_s)
        self.region.setBounds((0, self._duration_s))
        shortest = min(self._duration_s, max(1.0, 4 * column_s))
        for plot in (self.detail_plot, self.lane_plot):
            plot.getViewBox().setLimits(xMin=0, xMax=self._duration_s, minXRange=shortest,
                                        maxXRange=self._duration_s)
        self._selected, self._marks = None, {}
        self.set_playhead(None)
        self._redraw_events()
        self.show_range(0, self._duration_s)

    def _show_image(self, features: FeatureConfig, image: np.ndarray, column_s: float) -> None:
        """The (F, C) image in the detail, and pooled small in the overview."""
        F, width_s = features.num_mel_bins, column_s * image.shape[1]
        self.detail_image.setImage(image, levels=(0, 255), autoLevels=False)
        self.detail_image.setRect(QtCore.QRectF(0, 0, width_s, F))
        self.detail_plot.getAxis("left").setTicks([spaced(mel_ticks(features), 0.08 * F), []])
        self.detail_plot.setYRange(0, F, padding=0)
        self.overview_image.setImage(thumbnail(image, rows=32, max_columns=2000), levels=(0, 255), autoLevels=False)
        self.overview_image.setRect(QtCore.QRectF(0, THUMB_Y[0], width_s, THUMB_Y[1] - THUMB_Y[0]))
        self.overview_plot.setXRange(0, self._duration_s, padding=0)

    def clear(self) -> None:
        """No file: empty images, no lanes, no strip, no playhead."""
        self._timeline, self._events, self._colours = None, [], {}
        self.detail_image.clear()
        self.overview_image.clear()
        self._selected, self._marks = None, {}
        self.set_playhead(None)
        self.set_strip([], 0.0, 1.0, np.zeros((0, 0)))
        self._redraw_events()

    def set_strip(self, names: Sequence[str], x0_s: float, column_s: float, scores: np.ndarray) -> None:
        """Score rows under the detail: row k is names[k], column j is [x0_s + j column_s, x0_s + (j + 1)
        column_s), scores (K, C) in [0, 1] (NaN: not scored). No names: the strip takes no room."""
        self.strip_rows = list(names)
        K = len(self.strip_rows)
        line_px = QtGui.QFontMetrics(self.font()).height() + 1
        self._grid.setRowFixedHeight(STRIP, K * line_px)          # none: a row of no height ...
        self.strip_plot.showAxis("left", K > 0)                   # ... with nothing drawn
        metrics = QtGui.QFontMetrics(self.strip_plot.getAxis("left").style["tickFont"] or self.font())
        elided = [metrics.elidedText(n, QtCore.Qt.TextElideMode.ElideRight, AXIS_WIDTH_PX - 18) for n in names]
        draw_strip(self.strip_plot, self.strip_image, elided, x0_s, column_s, scores)

    def set_marks(self, marks: Mapping[int, str]) -> None:
        """Review marks by event index: "correct", "wrong" or "relabel", drawn as ✓, ✗ or → on the box."""
        unknown = sorted(set(marks.values()) - set(MARKS))
        if unknown:
            raise ValueError(f"a mark is one of {', '.join(MARKS)}, got {unknown[0]!r}")
        self._marks = dict(marks)
        self._draw_marks()

    def set_min_peak(self, min_peak: float) -> None:
        """Hide the events whose peak score is below min_peak (the events table's confidence filter)."""
        self._min_peak = float(min_peak)
        self._redraw_events()

    @property
    def events(self) -> list[Event]:
        return list(self._events)

    def _redraw_events(self) -> None:
        """Lanes, their names and the density row from the events that pass the peak filter."""
        names = self._timeline.labels.names if self._timeline is not None else []
        self.lanes = build_lanes(self._events, names, self._colours, self._min_peak)
        self._lane_of = {int(i): k for k, lane in enumerate(self.lanes) for i in lane.events}
        self._draw_lanes()
        if self.lanes or self._timeline is None:
            self.lane_axis.set_lanes([lane.name for lane in self.lanes], [lane.colour for lane in self.lanes])
        else:
            self.lane_axis.set_lanes([f"no events ≥ {self._min_peak:.2f}" if self._min_peak > 0 else "no events"],
                                     [QtGui.QColor("#BBBBBB")])
        self._draw_marks()
        visible = [e for e in self._events if e.peak_score >= self._min_peak]
        bins = int(min(1000, max(1, self._duration_s / 0.5)))
        counts = event_density(visible, self._duration_s, bins)
        self.density.setData(np.linspace(0, self._duration_s, bins + 1),
                             0.95 * DENSITY_TOP * counts / max(1, counts.max(initial=0)),
                             stepMode="center", fillLevel=0)
        self.select_event(self._selected, reveal=False)

    def _draw_lanes(self) -> None:
        """One BarGraphItem per lane (made or dropped to match), boxes standing on the lane's floor with a
        height for their peak; every other lane shaded; the lanes' row sized to a line of text each."""
        while len(self.lane_items) < len(self.lanes):
            self.lane_items.append(pg.BarGraphItem(x0=[], x1=[], y0=[], height=[]))
            self.lane_plot.addItem(self.lane_items[-1])
        while len(self.lane_items) > len(self.lanes):
            self.lane_plot.removeItem(self.lane_items.pop())
        for k, (lane, item) in enumerate(zip(self.lanes, self.lane_items)):
            height = box_height(lane.peaks)
            item.setOpts(x0=lane.starts_s, x1=lane.ends_s, y0=k + 0.92 - height, height=height,
                         brush=pg.mkBrush(lane.colour), pen=pg.mkPen(lane.colour))
        odd = np.arange(1, len(self.lanes), 2)
        self.lane_shading.setOpts(x0=np.zeros(len(odd)), x1=np.full(len(odd), self._duration_s), y0=odd,
                                  height=np.ones(len(odd)))
        rows = max(1, len(self.lanes))
        self.lane_plot.setYRange(0, rows, padding=0)
        axis_px = self.lane_plot.getAxis("bottom").height()
        self._grid.setRowMinimumHeight(LANES, rows * MIN_LANE_PX + axis_px)
        self._grid.setRowPreferredHeight(LANES, rows * LANE_PX + axis_px)

    def _draw_marks(self) -> None:
        """One symbol per marked event that has a box (the peak filter hides both), centred on the box."""
        shown = [(i, verdict) for i, verdict in self._marks.items() if i in self._lane_of]
        self.mark_items.setData(
            x=[(self._events[i].start_s + self._events[i].end_s) / 2 for i, _ in shown],
            y=[self._lane_of[i] + 0.5 for i, _ in shown],
            symbol=[text_symbol(MARKS[verdict][0]) for _, verdict in shown],
            brush=[pg.mkBrush(MARKS[verdict][1]) for _, verdict in shown],
            data=[i for i, _ in shown])

    @property
    def marks(self) -> dict[int, str]:
        return dict(self._marks)

    # ---- view ---------------------------------------------------------------------------------------

    def visible_range(self) -> tuple[float, float]:
        """(start_s, end_s) of what the detail shows."""
        a, b = self.detail_plot.getViewBox().viewRange()[0]
        return float(a), float(b)

    def show_range(self, start_s: float, end_s: float) -> None:
        """Show [start_s, end_s] in the detail (moved inside the file, its width kept where it fits)."""
        width = min(max(end_s - start_s, 0.0), self._duration_s)
        start = min(max(start_s, 0.0), self._duration_s - width)
        self.detail_plot.setXRange(start, start + width, padding=0)

    def select_event(self, index: int | None, reveal: bool = True) -> None:
        """Outline event `index` (None: none); reveal=True pans to it when it is off screen, keeping the
        zoom unless the event is wider than the view."""
        if index is None or not 0 <= index < len(self._events):
            self._selected = None
            self.selected_box.hide()
            self.selected_band.hide()
            return
        self._selected = index
        e = self._events[index]
        lane = self._lane_of.get(index)
        self.selected_box.setRect(QtCore.QRectF(e.start_s, (lane or 0) + 0.02, e.end_s - e.start_s, 0.96))
        self.selected_box.setVisible(lane is not None)
        self.selected_band.setRegion((e.start_s, e.end_s))
        self.selected_band.show()
        a, b = self.visible_range()
        if reveal and (e.start_s < a or e.end_s > b):
            width = max(b - a, 1.5 * (e.end_s - e.start_s))
            centre = (e.start_s + e.end_s) / 2
            self.show_range(centre - width / 2, centre + width / 2)

    @property
    def selected(self) -> int | None:
        return self._selected

    def set_playhead(self, t_s: float | None) -> None:
        """Draw the playhead at t_s seconds (None hides it). When it runs off the right edge of the detail
        while playing, the detail pages forward so that it stays in view (Audacity's page scrolling)."""
        if t_s is None:
            self._playhead_s = None
            for line in self.playheads:
                line.hide()
            return
        t = min(max(float(t_s), 0.0), self._duration_s)
        a, b = self.visible_range()
        if self._playhead_s is not None and a <= self._playhead_s <= b < t:
            self.show_range(t, t + (b - a))
        self._playhead_s = t
        for line in self.playheads:
            line.setPos(t)
            line.show()

    @property
    def playhead_s(self) -> float | None:
        return self._playhead_s

    # ---- interaction --------------------------------------------------------------------------------

    def _region_moved(self) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            a, b = self.region.getRegion()
            self.detail_plot.setXRange(a, b, padding=0)
        finally:
            self._syncing = False

    def _range_changed(self, _view, x_range) -> None:
        if self._syncing:
            return
        self._syncing = True
        try:
            self.region.setRegion(x_range)
        finally:
            self._syncing = False

    def event_at(self, t_s: float, lane: int, tolerance_s: float = 0.0) -> int | None:
        """The event of lane `lane` under t_s (within tolerance_s of a box; the nearest, then the strongest)."""
        if not 0 <= lane < len(self.lanes):
            return None
        row = self.lanes[lane]
        distance = np.maximum(np.maximum(row.starts_s - t_s, t_s - row.ends_s), 0.0)
        hits = np.flatnonzero(distance <= tolerance_s)
        if len(hits) == 0:
            return None
        best = hits[np.lexsort((-row.peaks[hits], distance[hits]))[0]]
        return int(row.events[best])

    def _clicked(self, event) -> None:
        if event.button() != QtCore.Qt.MouseButton.LeftButton or self._timeline is None:
            return
        pos = event.scenePos()
        if event.double():                             # its first click already selected; this one plays
            hit = self._box_at(pos)
            if hit is not None:
                self.eventDoubleClicked.emit(hit)
            return
        plot = next((p for p in (self.overview_plot, self.detail_plot, self.strip_plot, self.lane_plot)
                     if p.getViewBox().sceneBoundingRect().contains(pos)), None)
        if plot is None:
            return
        view = plot.getViewBox()
        point = view.mapSceneToView(pos)
        t = min(max(point.x(), 0.0), self._duration_s)
        if plot is self.overview_plot:
            a, b = self.visible_range()
            self.show_range(t - (b - a) / 2, t + (b - a) / 2)
            return
        hit = self._box_at(pos) if plot is self.lane_plot else None
        if hit is None:
            self.timeClicked.emit(t)
            return
        self.select_event(hit, reveal=False)
        self.eventActivated.emit(hit)

    def _box_at(self, scene_pos: QtCore.QPointF) -> int | None:
        """The event whose box is at a scene point of the lanes (with CLICK_PX of slack), or None."""
        view = self.lane_plot.getViewBox()
        if self._timeline is None or not view.sceneBoundingRect().contains(scene_pos):
            return None
        point = view.mapSceneToView(scene_pos)
        return self.event_at(point.x(), math.floor(point.y()), CLICK_PX * view.viewPixelSize()[0])

    def _hovered(self, scene_pos: QtCore.QPointF) -> None:
        """The box under the mouse says what it is (label, times, peak) in the tooltip."""
        hit = self._box_at(scene_pos)
        text = ""
        if hit is not None:
            e = self._events[hit]
            text = (f"{self._timeline.labels[e.label_index].name}\n{format_clock(e.start_s)} – "
                    f"{format_clock(e.end_s)} ({e.end_s - e.start_s:.1f} s)\npeak {e.peak_score:.2f}")
        self.graphics.viewport().setToolTip(text)
