"""The Files tab: the list of results (analyses with progress and cancel, finished live sessions), the chosen
one's events table under it, and its timeline (app.timeline_view: overview, detail, score strip, lanes).

GUI thread only. It observes app.document.Document: rows follow fileAdded/fileChanged/fileRemoved, the events
shown are the document's (its one event rule), a changed rule or pin redraws the timeline without
re-analysing, review marks (reviewChanged) show in the table's Review column and on the boxes, and the
playhead (playheadChanged) is drawn when it is in the shown result. Cancel, retry, remove, play, step and
review are intents it signals; the window decides (a live session that was never saved is asked about first;
playing and saving marks are app.filetools').
"""
from __future__ import annotations

from pathlib import Path

from PySide6 import QtCore, QtWidgets

from core.review import Verdict
from app.document import Document, FileResult
from app.events_table import EventsTable
from app.timeline_view import TimelinePanel

__all__ = ["FilesView"]

MAX_STRIP_ROWS = 12
ZOOM_CONTEXT_S = 4.0        # focus_event shows at least this much around an event
_FILE, _LENGTH, _PROGRESS, _CANCEL = range(4)


class FilesView(QtWidgets.QSplitter):
    """Left: the list and, under it, the chosen result's title, the play / review tools (`tools`, filled by
    the window) and its events table (as wide as its columns need); right: its timeline, the full height.

    play_requested(i): Enter or a double-click on event i of the shown result; stepped(i): a key moved the
    selection to event i (to play it when auto-play is on); review_requested(i, verdict): the table's Y / N /
    Delete on event i; seek_requested(t_s): empty time was clicked (the playhead goes there); chosen_changed:
    the shown result or its chosen event changed (what the play and review actions act on).
    """

    cancel_requested = QtCore.Signal(int)
    open_requested = QtCore.Signal()
    retry_requested = QtCore.Signal(str)          # a failed file's path, to analyse again
    remove_requested = QtCore.Signal(list)        # keys of results to take off the list
    play_requested = QtCore.Signal(int)
    stepped = QtCore.Signal(int)
    review_requested = QtCore.Signal(int, str)
    seek_requested = QtCore.Signal(float)
    chosen_changed = QtCore.Signal()

    def __init__(self, document: Document, parent=None):
        super().__init__(QtCore.Qt.Orientation.Horizontal, parent)
        self.document = document
        self.current: int | None = None
        left = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        left.addWidget(self._make_queue())
        left.addWidget(self._make_events())
        left.setStretchFactor(0, 1)
        left.setStretchFactor(1, 3)
        self.addWidget(left)
        self.timeline = TimelinePanel()
        self.addWidget(self.timeline)
        self.setStretchFactor(0, 0)
        self.setStretchFactor(1, 1)
        self._wire_events()

        document.fileAdded.connect(self._added)
        document.fileChanged.connect(self._changed)
        document.fileRemoved.connect(self._removed)
        document.ruleChanged.connect(self._rule_changed)
        document.pinsChanged.connect(self._redraw_current)
        document.reviewChanged.connect(self._reviews_changed)
        document.playheadChanged.connect(self._show_playhead)

    def _make_queue(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(box)
        lv.setContentsMargins(0, 0, 0, 0)
        self.hint = QtWidgets.QLabel("Drop audio files or a folder on the window, or use File ▸ Open files…; "
                                     "live sessions appear here when they stop")
        self.hint.setWordWrap(True)
        lv.addWidget(self.hint)
        self.queue = QtWidgets.QTableWidget(0, 4)
        self.queue.setHorizontalHeaderLabels(["File", "Length", "Progress", ""])
        self.queue.verticalHeader().setVisible(False)
        self.queue.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.queue.setSelectionMode(QtWidgets.QAbstractItemView.SelectionMode.SingleSelection)
        self.queue.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        h = self.queue.horizontalHeader()
        h.setSectionResizeMode(_FILE, QtWidgets.QHeaderView.ResizeMode.Stretch)
        for c in (_LENGTH, _PROGRESS, _CANCEL):
            h.setSectionResizeMode(c, QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.queue.itemSelectionChanged.connect(self._selected)
        self.queue.setContextMenuPolicy(QtCore.Qt.ContextMenuPolicy.CustomContextMenu)
        self.queue.customContextMenuRequested.connect(self._queue_menu)
        lv.addWidget(self.queue)
        buttons = QtWidgets.QGridLayout()          # two rows: legible in the narrow queue of a small window
        for place, text, tip, slot in (
                ((0, 0, 1, 2), "Open files…", "", self.open_requested.emit),
                ((1, 0, 1, 1), "Retry failed", "Analyse the files that failed or were cancelled again",
                 self.retry_failed),
                ((1, 1, 1, 1), "Clear finished", "Remove the analysed, failed and cancelled files and the "
                 "finished live sessions from the list", self.clear_finished)):
            button = QtWidgets.QPushButton(text)
            button.setToolTip(tip)
            button.clicked.connect(slot)
            buttons.addWidget(button, *place)
        lv.addLayout(buttons)
        box.setMinimumWidth(240)
        return box

    def _make_events(self) -> QtWidgets.QWidget:
        box = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(box)
        v.setContentsMargins(0, 0, 0, 0)
        self.title = QtWidgets.QLabel("")
        self.title.setWordWrap(True)
        self.tools = QtWidgets.QToolBar()
        self.tools.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.events_table = EventsTable(review=True)
        v.addWidget(self.title)
        v.addWidget(self.tools)
        v.addWidget(self.events_table, 1)
        return box

    def _wire_events(self) -> None:
        table, panel = self.events_table, self.timeline
        table.eventSelected.connect(self._table_chose)
        table.eventStepped.connect(self.stepped)
        table.eventActivated.connect(self.play_requested)
        table.reviewRequested.connect(self.review_requested)
        table.minPeakChanged.connect(panel.set_min_peak)
        table.filtered.connect(self._filtered)
        panel.eventActivated.connect(self._panel_chose)
        panel.eventDoubleClicked.connect(self.play_requested)
        panel.timeClicked.connect(self.seek_requested)

    @property
    def results(self) -> dict[int, FileResult]:
        """The document's results by key (the rows of this list)."""
        return self.document.files

    def done_results(self) -> list[FileResult]:
        return self.document.done_results()

    def _table_chose(self, index: int) -> None:
        self.timeline.select_event(index)
        self.chosen_changed.emit()

    def _filtered(self) -> None:
        """An event the table's filters hide is not chosen any more: no key marks what is not shown."""
        if self.timeline.selected is not None and self.timeline.selected not in self.events_table.shown_events():
            self.timeline.select_event(None)
            self.chosen_changed.emit()

    def _panel_chose(self, index: int) -> None:
        self.events_table.select_event(index)
        self.chosen_changed.emit()

    # ---- rows, following the document ---------------------------------------------------------------

    def _added(self, key: int) -> None:
        result = self.results[key]
        row = self.queue.rowCount()
        self.queue.insertRow(row)
        item = QtWidgets.QTableWidgetItem(result.title or Path(result.path).name)
        item.setToolTip(result.path)
        item.setData(QtCore.Qt.ItemDataRole.UserRole, key)
        self.queue.setItem(row, _FILE, item)
        self.queue.setItem(row, _LENGTH, QtWidgets.QTableWidgetItem("…"))
        bar = QtWidgets.QProgressBar()
        bar.setRange(0, 1000)
        bar.setValue(0)                 # below the minimum (its initial -1) a bar hides its text
        bar.setFormat("queued")
        self.queue.setCellWidget(row, _PROGRESS, bar)
        cancel = QtWidgets.QToolButton(text="✕")
        cancel.setToolTip("Cancel this analysis")
        cancel.clicked.connect(lambda: self.cancel_or_remove(key))
        self.queue.setCellWidget(row, _CANCEL, cancel)
        self.hint.hide()
        self._name_rows()
        if result.status == "done":
            self._changed(key)

    def _changed(self, key: int) -> None:
        row, result = self._row(key), self.results.get(key)
        if row < 0 or result is None:
            return
        bar = self.queue.cellWidget(row, _PROGRESS)
        if result.status == "running":
            self.queue.item(row, _LENGTH).setText(_clock(result.duration_s))
            total = result.duration_s
            bar.setValue(int(1000 * result.done_s / total) if total > 0 else 0)
            bar.setFormat(f"{100 * result.done_s / total:.0f} %" if total > 0 else "…")
        elif result.status == "done":
            self.queue.item(row, _LENGTH).setText(_clock(result.duration_s))
            bar.setValue(1000)
            bar.setFormat(f"{len(result.events)} events")
            self.queue.cellWidget(row, _CANCEL).setToolTip("Remove from the list")
            if self.current is None or self.current == key or self.results[self.current].status != "done":
                self.queue.selectRow(row)
                self.show_job(key)
        elif result.status in ("failed", "cancelled"):
            bar.setFormat(result.status)
            bar.setToolTip(result.message)
            self.queue.item(row, _FILE).setToolTip(f"{result.path}\n{result.message}")
            if result.status == "failed":
                self.queue.item(row, _LENGTH).setText("–")
            self.queue.cellWidget(row, _CANCEL).setToolTip("Remove from the list (right-click: retry)")
            if self.current == key:
                self.show_job(key)

    def _removed(self, key: int, path: str) -> None:
        row = self._row(key)
        if row >= 0:
            self.queue.removeRow(row)
        if self.current == key:
            self.current = None
            self.title.setText("")
            self.timeline.clear()
            self.events_table.set_events([], None)
            self.chosen_changed.emit()
        self._name_rows()
        self.hint.setVisible(not self.results)

    def _rule_changed(self) -> None:
        for result in self.done_results():
            row = self._row(result.job)
            if row >= 0:
                self.queue.cellWidget(row, _PROGRESS).setFormat(f"{len(result.events)} events")
        self._redraw_current()

    def _redraw_current(self) -> None:
        if self.shown is not None:
            self._draw(self.shown)

    # ---- intents ------------------------------------------------------------------------------------

    def display_name(self, job: int) -> str:
        """The row's name: a session's title, or the file name with as many parent folders as tell it from
        the other files'."""
        row = self._row(job)
        return self.queue.item(row, _FILE).text() if row >= 0 else Path(self.results[job].path).name

    def _name_rows(self) -> None:
        keys = [self.queue.item(r, _FILE).data(QtCore.Qt.ItemDataRole.UserRole) for r in range(self.queue.rowCount())]
        files = [k for k in keys if self.results[k].kind == "file"]
        names = dict(zip(files, _distinct_names([Path(self.results[k].path) for k in files])))
        for row, key in enumerate(keys):
            self.queue.item(row, _FILE).setText(names.get(key, self.results[key].title))

    def cancel_or_remove(self, job: int) -> None:
        """The row's ✕: cancels a queued or running analysis, removes a finished one from the list."""
        result = self.results.get(job)
        if result is not None and result.status in ("queued", "running"):
            self.cancel_requested.emit(job)
        else:
            self.remove(job)

    def remove(self, job: int) -> None:
        """Ask to take a result off the list (a queued or running analysis is cancelled first)."""
        if job in self.results:
            self.remove_requested.emit([job])

    def retry(self, job: int) -> None:
        """Analyse a failed or cancelled file again (it goes to the end of the queue)."""
        result = self.results.get(job)
        if result is not None and result.status in ("failed", "cancelled"):
            self.remove_requested.emit([job])
            self.retry_requested.emit(result.path)

    def retry_failed(self) -> None:
        for job in [j for j, r in self.results.items() if r.status in ("failed", "cancelled")]:
            self.retry(job)

    def clear_finished(self) -> None:
        finished = [j for j, r in self.results.items() if r.status in ("done", "failed", "cancelled")]
        if finished:
            self.remove_requested.emit(finished)

    def _queue_menu(self, pos: QtCore.QPoint) -> None:
        item = self.queue.itemAt(pos)
        if item is None:
            return
        job = self.queue.item(item.row(), _FILE).data(QtCore.Qt.ItemDataRole.UserRole)
        status = self.results[job].status
        menu = QtWidgets.QMenu(self)
        if status in ("queued", "running"):
            menu.addAction("Cancel", lambda: self.cancel_requested.emit(job))
        if status in ("failed", "cancelled"):
            menu.addAction("Retry", lambda: self.retry(job))
        menu.addAction("Remove from the list", lambda: self.remove(job))
        menu.addSeparator()
        menu.addAction("Retry failed", self.retry_failed)
        menu.addAction("Clear finished", self.clear_finished)
        menu.exec(self.queue.viewport().mapToGlobal(pos))

    def _row(self, job: int) -> int:
        for row in range(self.queue.rowCount()):
            if self.queue.item(row, _FILE).data(QtCore.Qt.ItemDataRole.UserRole) == job:
                return row
        return -1

    def select(self, key: int) -> None:
        """Choose result `key` (its row is selected and its timeline shown)."""
        row = self._row(key)
        if row >= 0:
            self.queue.selectRow(row)
            self.show_job(key)

    def _selected(self) -> None:
        rows = self.queue.selectionModel().selectedRows()
        if rows:
            self.show_job(self.queue.item(rows[0].row(), _FILE).data(QtCore.Qt.ItemDataRole.UserRole))

    # ---- the timeline -------------------------------------------------------------------------------

    def show_job(self, job: int) -> None:
        result = self.results.get(job)
        if result is None:
            return
        shown_before = self.current == job
        self.current = job
        if result.status != "done":
            self.title.setText(f"{self.display_name(job)}: {result.status}"
                               + (f": {result.message}" if result.message else ""))
        else:
            self._draw(result, keep_view=shown_before)
        self.chosen_changed.emit()

    def _draw(self, result: FileResult, keep_view: bool = True) -> None:
        """Timeline, strip, table and marks of a done result; keep_view keeps the zoom and the label filter
        (a changed rule or pin redraws the same result)."""
        tl, panel, table = result.timeline, self.timeline, self.events_table
        shown, label = panel.visible_range(), table.label_filter.currentData()
        panel.set_file(result.features, result.spectrogram, result.column_s, tl, result.events)
        table.set_events(result.events, tl)
        if keep_view:
            panel.show_range(*shown)
            table.label_filter.setCurrentIndex(max(0, table.label_filter.findData(label)))
        rows = self._strip_labels(result)
        panel.set_strip([tl.labels[i].name for i in rows], tl.window_s / 2 - tl.hop_s / 2, tl.hop_s,
                        tl.scores[:, rows].T)
        self._reviews_changed(result.job)
        self._show_playhead()
        self.chosen_changed.emit()                  # the events are new: none is chosen

    def _strip_labels(self, result: FileResult) -> list[int]:
        """The labels of the score strip: pinned ones, then those with their own threshold (their row stays
        when the threshold removes their events, to compare the scores with it). Events have their lanes."""
        labels = result.timeline.labels
        pinned = [label.index for key in self.document.pinned_ids if (label := labels.find(key)) is not None]
        own = [labels.find(str(key)).index for key, _ in self.document.rule_for(labels).label_thresholds]
        return list(dict.fromkeys(pinned + own))[:MAX_STRIP_ROWS]

    def _title(self, result: FileResult) -> str:
        tl, reviewed = result.timeline, len(result.reviews())
        return (f"{self.display_name(result.job)}: {_clock(tl.duration_s)}, {len(result.events)} events"
                + (f", {reviewed} reviewed" if reviewed else "") + f" ({tl.model_name} on {tl.device})")

    def _reviews_changed(self, key: int) -> None:
        """The marks of the shown result, by event: the table's Review column and the symbols on the boxes."""
        result = self.results.get(key)
        if key != self.current or result is None or result.status != "done":
            return
        labels = result.timeline.labels
        marks = result.reviews()
        by_index = {i: marks[e] for i, e in enumerate(result.events) if e in marks}
        self.events_table.set_reviews({i: m.text(labels) for i, m in by_index.items()})
        self.timeline.set_marks({i: Verdict(m.verdict).value for i, m in by_index.items()})
        self.title.setText(self._title(result))

    def _show_playhead(self) -> None:
        playhead = self.document.playhead
        self.timeline.set_playhead(playhead[1] if playhead is not None and playhead[0] == self.current else None)

    @property
    def shown(self) -> FileResult | None:
        """The result whose timeline is shown (analysed or finished), or None."""
        result = self.results.get(self.current) if self.current is not None else None
        return result if result is not None and result.status == "done" else None

    @property
    def selected_event(self) -> int | None:
        """The event chosen in the table or on the lanes (an index into the shown result's events)."""
        return self.timeline.selected if self.shown is not None else None

    def choose_event(self, index: int) -> None:
        """Select event `index` in the table and on the lanes (the detail pans to it, keeping the zoom)."""
        self.events_table.select_event(index)
        self.timeline.select_event(index)
        self.chosen_changed.emit()

    def step(self, delta: int) -> int | None:
        """Select the event `delta` rows away in the table's order (its sort and filters); from none, the
        first (or last). Returns it, or None when the table shows no event."""
        order = self.events_table.shown_events()
        if self.shown is None or not order:
            return None
        current = self.selected_event
        if current in order:
            index = order[min(max(order.index(current) + delta, 0), len(order) - 1)]
        else:
            index = order[0] if delta > 0 else order[-1]
        self.choose_event(index)
        return index

    def focus_event(self, index: int) -> None:
        """Select event `index` and zoom the detail to it, with ZOOM_CONTEXT_S of context around it."""
        result = self.shown
        if result is None or not 0 <= index < len(result.events):
            return
        e = result.events[index]
        pad = max(ZOOM_CONTEXT_S, e.end_s - e.start_s) / 2
        self.timeline.show_range(e.start_s - pad, e.end_s + pad)
        self.choose_event(index)


def _distinct_names(paths: list[Path]) -> list[str]:
    """Each path's file name, with the fewest parent folders that tell it from the other paths of the same
    name: a/x/rec.wav and b/x/rec.wav -> 'a/x/rec.wav', 'b/x/rec.wav'; a lone rec.wav stays 'rec.wav'."""
    names = []
    for path in paths:
        others = [q.parts for q in paths if q != path and q.name == path.name]
        k = 1
        while k < len(path.parts) and any(o[-k:] == path.parts[-k:] for o in others):
            k += 1
        names.append("/".join(path.parts[-k:]))
    return names


def _clock(seconds: float) -> str:
    m, s = divmod(max(0.0, seconds), 60)
    return f"{int(m)}:{s:04.1f}" if m < 60 else f"{int(m // 60)}:{int(m % 60):02d}:{s:04.1f}"
