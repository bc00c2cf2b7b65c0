"""The events of one file as a table: start, end, label, peak and an optional review verdict, sortable by
any column, filtered by label and by a minimum peak score.

GUI thread only. A QTableView over a QSortFilterProxyModel (EventFilter) over EventsModel, a read-only view
of the event list it is given; rows always report the event's index in that list, whatever the sort and the
filter, so the table and app.timeline_view.TimelinePanel talk in the same indices. Review verdicts are shown,
not owned: a key press asks for one (reviewRequested), whoever keeps them answers with set_review. A verdict
is the export's review cell (core.review.Mark.text): "correct", "wrong" or "relabel:<label name>".
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

from PySide6 import QtCore, QtGui, QtWidgets

from core.timeline import Event, Timeline
from app.lanes import event_colours, format_clock, order_lanes

__all__ = ["EventsTable", "EventsModel", "EventFilter", "REVIEW_TEXT", "review_text"]

START, END, LABEL, PEAK, REVIEW = range(5)
HEADERS = ("Start", "End", "Label", "Peak", "Review")
SORT_ROLE = QtCore.Qt.ItemDataRole.UserRole + 1
REVIEW_TEXT = {"": "", "correct": "✓ correct", "wrong": "✗ wrong"}
RELABEL = "relabel:"
Key = QtCore.Qt.Key
REVIEW_KEYS = {Key.Key_Y: "correct", Key.Key_N: "wrong", Key.Key_Delete: "", Key.Key_Backspace: ""}


def review_text(verdict: str) -> str:
    """What the Review column shows for a verdict: '✓ correct', '✗ wrong', '→ Dog' for 'relabel:Dog'.
    ValueError for anything else."""
    if verdict in REVIEW_TEXT:
        return REVIEW_TEXT[verdict]
    if verdict.startswith(RELABEL) and verdict[len(RELABEL):]:
        return f"→ {verdict[len(RELABEL):]}"
    raise ValueError(f"a review verdict is one of {sorted(REVIEW_TEXT)} or 'relabel:<label name>', got {verdict!r}")


class EventsModel(QtCore.QAbstractTableModel):
    """Row i is event i. Display text in m:ss.s; SORT_ROLE gives the numbers (and lower-case names)."""

    def __init__(self, review: bool = False, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.review = review
        self.events: list[Event] = []
        self.names: list[str] = []                    # display name per label index
        self.colours: dict[int, QtGui.QColor] = {}
        self.reviews: dict[int, str] = {}

    def set_events(self, events: Sequence[Event], names: Sequence[str], colours: Mapping[int, QtGui.QColor],
                   reviews: Mapping[int, str] | None = None) -> None:
        self.beginResetModel()
        self.events, self.names, self.colours = list(events), list(names), dict(colours)
        self.reviews = dict(reviews or {})
        self.endResetModel()

    def set_review(self, row: int, verdict: str) -> None:
        review_text(verdict)
        self.reviews[row] = verdict
        if self.review:
            cell = self.index(row, REVIEW)
            self.dataChanged.emit(cell, cell)

    def set_reviews(self, reviews: Mapping[int, str]) -> None:
        """Every row's verdict at once (rows not named have none)."""
        for verdict in reviews.values():
            review_text(verdict)
        self.reviews = dict(reviews)
        if self.review and self.events:
            self.dataChanged.emit(self.index(0, REVIEW), self.index(len(self.events) - 1, REVIEW))

    def rowCount(self, parent=QtCore.QModelIndex()) -> int:
        return 0 if parent.isValid() else len(self.events)

    def columnCount(self, parent=QtCore.QModelIndex()) -> int:
        return 0 if parent.isValid() else (5 if self.review else 4)

    def headerData(self, section, orientation, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if orientation == QtCore.Qt.Orientation.Horizontal and role == QtCore.Qt.ItemDataRole.DisplayRole:
            return HEADERS[section]
        return None

    def data(self, index: QtCore.QModelIndex, role=QtCore.Qt.ItemDataRole.DisplayRole):
        if not index.isValid():
            return None
        e, column, Role = self.events[index.row()], index.column(), QtCore.Qt.ItemDataRole
        if role == Role.DisplayRole:
            return (format_clock(e.start_s), format_clock(e.end_s), self.names[e.label_index],
                    f"{e.peak_score:.2f}", review_text(self.reviews.get(index.row(), "")))[column]
        if role == SORT_ROLE:
            return (e.start_s, e.end_s, self.names[e.label_index].lower(), e.peak_score,
                    self.reviews.get(index.row(), ""))[column]
        if role == Role.DecorationRole and column == LABEL:
            return self.colours.get(e.label_index)        # the lane's colour, as a swatch
        if role == Role.TextAlignmentRole and column in (START, END, PEAK):
            return int(QtCore.Qt.AlignmentFlag.AlignRight | QtCore.Qt.AlignmentFlag.AlignVCenter)
        if role == Role.ToolTipRole:
            return (f"{self.names[e.label_index]}: {e.start_s:.3f}-{e.end_s:.3f} s, peak {e.peak_score:.3f} "
                    f"at {e.peak_time_s:.3f} s, mean {e.mean_score:.3f}")
        return None


class EventFilter(QtCore.QSortFilterProxyModel):
    """Keeps the events of one label (None: all) whose peak score reaches min_peak."""

    def __init__(self, parent: QtCore.QObject | None = None):
        super().__init__(parent)
        self.label_index: int | None = None
        self.min_peak = 0.0
        self.setSortRole(SORT_ROLE)

    def set_filter(self, label_index: int | None, min_peak: float) -> None:
        self.beginFilterChange()
        self.label_index, self.min_peak = label_index, float(min_peak)
        self.endFilterChange(QtCore.QSortFilterProxyModel.Direction.Rows)

    def filterAcceptsRow(self, source_row: int, source_parent: QtCore.QModelIndex) -> bool:
        e = self.sourceModel().events[source_row]
        return e.peak_score >= self.min_peak and self.label_index in (None, e.label_index)


class _EventsView(QtWidgets.QTableView):
    """The table itself: Y / N / Delete ask for a review verdict of the current row; `by_key` says whether
    the current row is being moved by a key (stepping through events) rather than by the mouse."""

    reviewKey = QtCore.Signal(str)

    def __init__(self):
        super().__init__()
        self.by_key = False

    def keyPressEvent(self, event: QtGui.QKeyEvent) -> None:
        verdict = REVIEW_KEYS.get(QtCore.Qt.Key(event.key()))
        if verdict is not None and self.currentIndex().isValid() and self.model().columnCount() > REVIEW:
            self.reviewKey.emit(verdict)
            return
        self.by_key = True
        try:
            super().keyPressEvent(event)
        finally:
            self.by_key = False


class EventsTable(QtWidgets.QWidget):
    """Filters (label, minimum peak) over the sortable events table, with "shown of all" under them.

    eventSelected(i): the current row became event i (click, Up/Down); eventStepped(i): the same, by a key
    (Up/Down, Page Up/Down: the reviewer steps through the events), after eventSelected; eventActivated(i):
    Enter or a double-click on event i; minPeakChanged(p): the peak filter changed (for
    TimelinePanel.set_min_peak); filtered: the filters changed (the current event, if it was hidden, is no
    longer current); reviewRequested(i, verdict): Y, N or Delete on event i (with review=True).
    """

    eventSelected = QtCore.Signal(int)
    eventStepped = QtCore.Signal(int)
    filtered = QtCore.Signal()
    eventActivated = QtCore.Signal(int)
    minPeakChanged = QtCore.Signal(float)
    reviewRequested = QtCore.Signal(int, str)

    def __init__(self, review: bool = False, parent: QtWidgets.QWidget | None = None):
        super().__init__(parent)
        self.model = EventsModel(review, self)
        self.proxy = EventFilter(self)
        self.proxy.setSourceModel(self.model)
        self.label_filter = QtWidgets.QComboBox()
        self.label_filter.setToolTip("Show the events of one label")
        self.min_peak = QtWidgets.QDoubleSpinBox()
        self.min_peak.setRange(0.0, 1.0)
        self.min_peak.setSingleStep(0.05)
        self.min_peak.setDecimals(2)
        self.min_peak.setPrefix("peak ≥ ")
        self.min_peak.setToolTip("Hide events whose peak score is lower")
        self.count = QtWidgets.QLabel("")
        self.view = _EventsView()
        self.view.setModel(self.proxy)
        self.view.setSortingEnabled(True)
        self.view.sortByColumn(START, QtCore.Qt.SortOrder.AscendingOrder)
        self.view.verticalHeader().setVisible(False)
        self.view.verticalHeader().setDefaultSectionSize(QtGui.QFontMetrics(self.font()).height() + 6)
        self.view.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.view.horizontalHeader().setStretchLastSection(True)
        self.view.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.view.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.view.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.view.setAlternatingRowColors(True)
        self.view.setHorizontalScrollBarPolicy(QtCore.Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.view.selectionModel().currentRowChanged.connect(self._current_changed)
        self.view.activated.connect(lambda index: self.eventActivated.emit(self._event_of(index)))
        self.view.reviewKey.connect(lambda verdict: self.reviewRequested.emit(self.current_event(), verdict))
        self.label_filter.currentIndexChanged.connect(self._filter_changed)
        self.min_peak.valueChanged.connect(self._filter_changed)
        self.min_peak.valueChanged.connect(self.minPeakChanged)
        filters = QtWidgets.QHBoxLayout()
        filters.addWidget(self.label_filter, 1)
        filters.addWidget(self.min_peak)
        layout = QtWidgets.QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(filters)
        layout.addWidget(self.view, 1)
        layout.addWidget(self.count)
        self._quiet = False
        self.set_events([], None)

    def set_events(self, events: Sequence[Event], timeline: Timeline | None,
                   reviews: Mapping[int, str] | None = None) -> None:
        """Show these events of `timeline` (their indices are the ones every signal reports); the label
        filter offers the labels with events, the peak filter is kept."""
        names = timeline.labels.names if timeline is not None else []
        colours = event_colours(events, timeline) if timeline is not None else {}
        self.model.set_events(events, names, colours, reviews)
        self.label_filter.blockSignals(True)
        self.label_filter.clear()
        self.label_filter.addItem("All labels", None)
        for label in order_lanes(events):
            pixmap = QtGui.QPixmap(12, 12)
            pixmap.fill(colours[label])
            self.label_filter.addItem(QtGui.QIcon(pixmap), names[label], label)
        self.label_filter.blockSignals(False)
        self._filter_changed()
        self.setMinimumWidth(self.sizeHint().width())

    def sizeHint(self) -> QtCore.QSize:
        """As wide as every column's contents (the label column is never squashed), plus the scroll bar."""
        header = self.view.horizontalHeader()
        columns = sum(max(header.sectionSizeHint(c), self.view.sizeHintForColumn(c))
                      for c in range(self.model.columnCount()))
        frame = 2 * self.view.frameWidth() + self.view.verticalScrollBar().sizeHint().width()
        return QtCore.QSize(max(columns + frame, super().sizeHint().width()), super().sizeHint().height())

    def set_review(self, index: int, verdict: str) -> None:
        """Show event `index`'s verdict ("correct", "wrong", "relabel:<label name>" or "" for none)."""
        self.model.set_review(index, verdict)

    def set_reviews(self, reviews: Mapping[int, str]) -> None:
        """Show these verdicts by event index (the others: none); the table widens for a long relabel."""
        self.model.set_reviews(reviews)
        self.setMinimumWidth(self.sizeHint().width())

    def select_event(self, index: int | None) -> None:
        """Make event `index` the current row and scroll to it (no signal; None or a hidden event: none)."""
        row = self.proxy.mapFromSource(self.model.index(index, 0)) if index is not None else QtCore.QModelIndex()
        self._quiet = True
        try:
            if row.isValid():
                self.view.setCurrentIndex(row)
                self.view.scrollTo(row)
            else:
                self.view.clearSelection()
                self.view.setCurrentIndex(QtCore.QModelIndex())
        finally:
            self._quiet = False

    def current_event(self) -> int | None:
        index = self.view.currentIndex()
        return self._event_of(index) if index.isValid() else None

    def shown_events(self) -> list[int]:
        """The events the filter lets through, in the table's order."""
        return [self._event_of(self.proxy.index(r, 0)) for r in range(self.proxy.rowCount())]

    def _event_of(self, proxy_index: QtCore.QModelIndex) -> int:
        return self.proxy.mapToSource(proxy_index).row()

    def _current_changed(self, current: QtCore.QModelIndex, _previous: QtCore.QModelIndex) -> None:
        if current.isValid() and not self._quiet:
            self.eventSelected.emit(self._event_of(current))
            if self.view.by_key:
                self.eventStepped.emit(self._event_of(current))

    def _filter_changed(self) -> None:
        """Filter; the current event stays current while shown, and none is current once it is hidden (the
        view would otherwise move to a neighbour, which a review key would then mark)."""
        current = self.current_event()
        self._quiet = True
        try:
            self.proxy.set_filter(self.label_filter.currentData(), self.min_peak.value())
        finally:
            self._quiet = False
        self.select_event(current if current in self.shown_events() else None)
        self.count.setText(f"{self.proxy.rowCount()} of {self.model.rowCount()} events")
        self.filtered.emit()
