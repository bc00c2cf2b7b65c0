"""The Files tab: the list of results (analyses with progress and cancel, finished live sessions) and the
timeline of the chosen one.

GUI thread only. It observes app.document.Document: rows follow fileAdded/fileChanged/fileRemoved, the events
shown are the document's (its one event rule), and a changed rule or pin redraws the timeline without
re-analysing. Cancel, retry and remove are intents it signals; the window decides (a live session that was
never saved is asked about first).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pyqtgraph as pg
from PySide6 import QtCore, QtWidgets

from app.document import Document, FileResult
from app.spectrogram_view import SpectrogramView

__all__ = ["FilesView", "label_color"]

MAX_STRIP_ROWS = 12
_FILE, _LENGTH, _PROGRESS, _CANCEL = range(4)


def label_color(index: int):
    return pg.intColor(index * 7, hues=23, values=1, maxValue=255, minValue=180)


class FilesView(QtWidgets.QSplitter):
    cancel_requested = QtCore.Signal(int)
    open_requested = QtCore.Signal()
    retry_requested = QtCore.Signal(str)          # a failed file's path, to analyse again
    remove_requested = QtCore.Signal(list)        # keys of results to take off the list

    def __init__(self, document: Document, parent=None):
        super().__init__(QtCore.Qt.Orientation.Horizontal, parent)
        self.document = document
        self.current: int | None = None
        left = QtWidgets.QWidget()
        lv = QtWidgets.QVBoxLayout(left)
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
        left.setMinimumWidth(240)
        self.addWidget(left)

        right = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        self.title = QtWidgets.QLabel("")
        self.view = SpectrogramView()
        self.view.spec_plot.setXRange(0, 10, padding=0)      # no file yet: file time starts at 0
        self.view.sigClicked.connect(self._clicked_at)
        top = QtWidgets.QWidget()
        tv = QtWidgets.QVBoxLayout(top)
        tv.setContentsMargins(0, 0, 0, 0)
        tv.addWidget(self.title)
        tv.addWidget(self.view)
        right.addWidget(top)
        self.events = QtWidgets.QTableWidget(0, 4)
        self.events.setHorizontalHeaderLabels(["Start (s)", "End (s)", "Label", "Peak"])
        self.events.verticalHeader().setVisible(False)
        self.events.setSelectionBehavior(QtWidgets.QAbstractItemView.SelectionBehavior.SelectRows)
        self.events.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.events.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.events.horizontalHeader().setSectionResizeMode(2, QtWidgets.QHeaderView.ResizeMode.Stretch)
        self.events.cellClicked.connect(lambda row, col: self.focus_event(row))
        right.addWidget(self.events)
        right.setStretchFactor(0, 3)
        right.setStretchFactor(1, 1)
        self.addWidget(right)
        self.setStretchFactor(0, 1)
        self.setStretchFactor(1, 3)

        document.fileAdded.connect(self._added)
        document.fileChanged.connect(self._changed)
        document.fileRemoved.connect(self._removed)
        document.ruleChanged.connect(self._rule_changed)
        document.pinsChanged.connect(self._redraw_current)

    @property
    def results(self) -> dict[int, FileResult]:
        """The document's results by key (the rows of this list)."""
        return self.document.files

    def done_results(self) -> list[FileResult]:
        return self.document.done_results()

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
            self.view.set_events([])
            self.view.spec_image.clear()
            self.view.set_strip([], 0.0, 1.0, np.zeros((0, 0)))
            self.events.setRowCount(0)
        self._name_rows()
        self.hint.setVisible(not self.results)

    def _rule_changed(self) -> None:
        for result in self.done_results():
            row = self._row(result.job)
            if row >= 0:
                self.queue.cellWidget(row, _PROGRESS).setFormat(f"{len(result.events)} events")
        self._redraw_current()

    def _redraw_current(self) -> None:
        if self.current is not None and self.results[self.current].status == "done":
            self._draw(self.results[self.current])

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
        self.current = job
        if result.status != "done":
            self.title.setText(f"{self.display_name(job)}: {result.status}"
                               + (f": {result.message}" if result.message else ""))
            return
        self.view.show_file(result.features, result.spectrogram, result.column_s)
        self._draw(result)

    def _draw(self, result: FileResult) -> None:
        tl, labels = result.timeline, result.timeline.labels
        self.title.setText(f"{self.display_name(result.job)}: {_clock(tl.duration_s)}, {tl.num_windows} windows, "
                           f"{len(result.events)} events ({tl.model_name} on {tl.device})")
        self.view.set_events([(e.start_s, e.end_s, labels[e.label_index].name, label_color(e.label_index))
                              for e in result.events])
        # strip rows: pinned labels, labels with their own threshold (kept when it removes their events),
        # then labels with events by total time on, then the highest scores
        pinned = [label.index for key in self.document.pinned_ids if (label := labels.find(key)) is not None]
        own = [labels.find(str(key)).index for key, _ in self.document.rule_for(labels).label_thresholds]
        time_on: dict[int, float] = {}
        for e in result.events:
            time_on[e.label_index] = time_on.get(e.label_index, 0.0) + e.end_s - e.start_s
        rows = list(dict.fromkeys(pinned + own + [i for i, _ in sorted(time_on.items(), key=lambda kv: -kv[1])]))
        if len(rows) < 3 and tl.num_windows:
            rows += [int(i) for i in np.argsort(-np.nanmax(tl.scores, axis=0)) if int(i) not in rows][:3 - len(rows)]
        rows = rows[:MAX_STRIP_ROWS]
        x0 = tl.window_s / 2 - tl.hop_s / 2
        self.view.set_strip([labels[i].name for i in rows], x0, tl.hop_s, tl.scores[:, rows].T)
        self.events.setRowCount(len(result.events))
        for r, e in enumerate(result.events):
            for c, text in enumerate((f"{e.start_s:.3f}", f"{e.end_s:.3f}", labels[e.label_index].name,
                                      f"{e.peak_score:.2f}")):
                item = QtWidgets.QTableWidgetItem(text)
                if c == 2:
                    item.setForeground(label_color(e.label_index))
                self.events.setItem(r, c, item)

    def focus_event(self, row: int) -> None:
        """Move the view to event `row` of the current file (and select it)."""
        if self.current is None:
            return
        events = self.results[self.current].events
        if 0 <= row < len(events):
            self.view.show_range(events[row].start_s, events[row].end_s)
            self.events.selectRow(row)

    def _clicked_at(self, x_s: float) -> None:
        if self.current is None:
            return
        for row, e in enumerate(self.results[self.current].events):
            if e.start_s <= x_s <= e.end_s:
                self.events.selectRow(row)
                self.events.scrollToItem(self.events.item(row, 0))
                return


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
