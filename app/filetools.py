"""Listening to, reviewing and clipping the Files tab's results: the window's part of it.

`FileTools` holds the actions (the Play and Review menus, their keys and the Files tab's tool bar), the one
`core.playback.Player`, the review store (core.review.ReviewStore) and Export clips…; MainWindow creates it,
calls `poll()` from its ~30 Hz timer and keeps that timer running while `busy` (a play, a save or a clip
export in progress), and calls `close()` at quit.

Threads: everything here runs on the GUI thread and never waits. The Player decodes and plays on its own
threads and is polled for the playhead (`Player.status`, a frozen snapshot); the store's file I/O (hashing a
recording once, locked writes) runs on the "reviews" worker and clip exports on the "clips" worker
(app.background.SerialWorker), in order, answering through one queue that `poll()` drains. The marks are the
document's (app.document): a verdict shows at once and is saved behind; the store's answer, which also holds
marks another window saved, replaces them once no later change of that recording is pending.
"""
from __future__ import annotations

import logging
import os
import queue
from pathlib import Path

from PySide6 import QtCore, QtGui, QtWidgets

from core.playback import EVENT_MARGIN_S, Player, PlayState
from core.review import Reviews, ReviewStore, Verdict
from app.background import SerialWorker, TaskDone, TaskFailed
from app.clipping import ClipsDialog, ClipsOutcome, ClipsRequest, clip_jobs, cut_clips
from app.controls import RelabelDialog
from app.document import FileResult
from app.workers import pending

__all__ = ["FileTools"]

log = logging.getLogger(__name__)

CLOSE_WAIT_S = 5.0           # quitting waits this long at most for marks being saved and clips being written
Key = QtCore.Qt.Key
# Focused widgets that use a key themselves get it, not the tab's action: Space presses, ticks, opens a drop-down
# or types a space; a letter or Delete jumps to an item of a drop-down or edits text.
TYPING_USERS = (QtWidgets.QComboBox, QtWidgets.QAbstractSpinBox, QtWidgets.QLineEdit, QtWidgets.QTextEdit,
                QtWidgets.QPlainTextEdit)
SPACE_USERS = (QtWidgets.QAbstractButton, *TYPING_USERS)


class FileTools(QtCore.QObject):
    """See the module docstring. window: the MainWindow (its banner, status bar, tabs and Files tab)."""

    def __init__(self, window, player: Player, store: ReviewStore, wake):
        """wake(): start the window's timer (it stops when nothing is going on)."""
        super().__init__(window)
        self.window, self.document, self.files = window, window.document, window.files_view
        self.player, self.store, self.wake = player, store, wake
        self.results: queue.Queue = queue.Queue()
        self.reviews = SerialWorker("reviews", self.results)
        self.clips = SerialWorker("clips", self.results)
        self.playing: int | None = None          # the result being played
        self._loaded: dict[int, FileResult] = {}  # results whose marks were asked of the store
        self._make_actions()
        self._wire()
        self._update_actions()

    # ---- actions --------------------------------------------------------------------------------------

    def _action(self, text: str, keys: list, slot, tip: str, where: tuple = ()) -> QtGui.QAction:
        """An action whose keys work while the focus is in the Files tab (elsewhere Space presses a button
        and Enter finishes a typed number; in the tab too, see eventFilter), or only in the widgets `where`;
        also in the menus and the tab's tool bar."""
        action = QtGui.QAction(text, self.window)
        action.setShortcuts([QtGui.QKeySequence(k) for k in keys])
        action.setShortcutContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
        action.setToolTip(f"{tip} ({' or '.join(QtGui.QKeySequence(k).toString() for k in keys)})")
        action.triggered.connect(lambda: slot())          # not slot(checked)
        for widget in where or (self.files,):
            widget.addAction(action)
        return action

    def _make_actions(self) -> None:
        self.play_action = self._action("▶ Play", [Key.Key_Space], self.toggle_play,
                                        "Play the file from the playhead, or stop")
        self.files.installEventFilter(self)            # Space stays with a focused widget that uses it
        self.play_event_action = self._action("Play event", [Key.Key_Return, Key.Key_Enter], self.play_event,
                                              "Play the chosen event with a second before and after it",
                                              where=(self.files.events_table.view, self.files.timeline))
        self.auto_play_action = QtGui.QAction("Auto-play", self.window, checkable=True,
                                              checked=self.window.settings.auto_play)
        self.auto_play_action.setToolTip("Play each event when J / K or the arrow keys step to it")
        self.auto_play_action.toggled.connect(self._auto_play_toggled)
        self.next_action = self._action("Next event", [Key.Key_J], lambda: self.step(1),
                                        "Step to the next event in the table")
        self.previous_action = self._action("Previous event", [Key.Key_K], lambda: self.step(-1),
                                            "Step to the previous event in the table")
        self.correct_action = self._action("✓ Correct", [Key.Key_Y], lambda: self.review(Verdict.CORRECT),
                                           "Mark the chosen event as correct")
        self.wrong_action = self._action("✗ Wrong", [Key.Key_N], lambda: self.review(Verdict.WRONG),
                                         "Mark the chosen event as wrong")
        self.relabel_action = self._action("Relabel…", [Key.Key_R], lambda: self.review(Verdict.RELABEL),
                                           "Say which label the chosen event really is")
        self.clear_action = self._action("Clear review", [Key.Key_Delete, Key.Key_Backspace],
                                         lambda: self.review(None), "Take away the chosen event's mark")
        self.clips_action = QtGui.QAction("Export &clips…", self.window)
        self.clips_action.setShortcut(QtGui.QKeySequence("Ctrl+Shift+E"))
        self.clips_action.triggered.connect(self.clips_dialog)
        tools = self.files.tools
        for action in (self.play_action, self.play_event_action, self.auto_play_action, None, self.correct_action,
                       self.wrong_action, self.relabel_action):
            tools.addAction(action) if action is not None else tools.addSeparator()
        for key, delta in ((Key.Key_Down, 1), (Key.Key_Up, -1)):    # on the timeline; the table has its own
            shortcut = QtGui.QShortcut(QtGui.QKeySequence(key), self.files.timeline)
            shortcut.setContext(QtCore.Qt.ShortcutContext.WidgetWithChildrenShortcut)
            shortcut.activated.connect(lambda delta=delta: self.step(delta))

    def _auto_play_toggled(self, checked: bool) -> None:
        """Remembered between runs like the window's other choices (the window saves its settings at quit)."""
        self.window.settings.auto_play = checked

    def eventFilter(self, watched: QtCore.QObject, event: QtCore.QEvent) -> bool:
        """The tab's keys act only where the focused widget does not use them (SPACE_USERS, TYPING_USERS):
        before a shortcut takes a key, Qt offers it to the focused widget as a ShortcutOverride, which comes up
        to the Files tab when the widget ignores it (a combo box or a button does); accepting it here hands
        the key to the widget."""
        if event.type() != QtCore.QEvent.Type.ShortcutOverride:
            return False
        focused = QtWidgets.QApplication.focusWidget()
        modifier = QtCore.Qt.KeyboardModifier
        modified = event.modifiers() & ~(modifier.ShiftModifier | modifier.KeypadModifier)
        typed = not modified and (event.text().isprintable() and event.text() != ""
                                  or event.key() in (Key.Key_Delete, Key.Key_Backspace))
        if (event.key() == Key.Key_Space and isinstance(focused, SPACE_USERS)
                or typed and isinstance(focused, TYPING_USERS)):
            event.accept()
            return True
        return False

    def add_menus(self, menu_bar: QtWidgets.QMenuBar) -> None:
        play = menu_bar.addMenu("&Play")
        for action in (self.play_action, self.play_event_action, self.auto_play_action, None, self.next_action,
                       self.previous_action):
            play.addAction(action) if action is not None else play.addSeparator()
        review = menu_bar.addMenu("&Review")
        for action in (self.correct_action, self.wrong_action, self.relabel_action, self.clear_action):
            review.addAction(action)

    def _wire(self) -> None:
        doc, files = self.document, self.files
        files.play_requested.connect(self.play_event)
        files.stepped.connect(self._stepped)
        files.review_requested.connect(lambda i, verdict: self.review(Verdict(verdict) if verdict else None, i))
        files.seek_requested.connect(self.seek)
        files.chosen_changed.connect(self._update_actions)
        self.window.tabs.currentChanged.connect(self._tab_changed)
        for signal in (doc.fileAdded, doc.fileChanged):
            signal.connect(self._result_changed)
        doc.fileRemoved.connect(self._result_removed)

    def _tab_changed(self) -> None:
        """On the Files tab the keys go to the events table, unless something in the tab has the focus."""
        focus = QtWidgets.QApplication.focusWidget()
        if self.window.tabs.currentWidget() is self.files and not (focus and self.files.isAncestorOf(focus)):
            self.files.events_table.view.setFocus()

    def _update_actions(self) -> None:
        """Playing needs a recording, reviewing a chosen event."""
        shown = self.files.shown
        event = shown is not None and self.files.selected_event is not None
        self.play_action.setEnabled(self.playing is not None or (shown is not None and shown.audio is not None))
        self.play_action.setText("■ Stop" if self.playing is not None else "▶ Play")
        self.play_event_action.setEnabled(event and shown.audio is not None)
        for action in (self.next_action, self.previous_action):
            action.setEnabled(shown is not None and bool(shown.events))
        for action in (self.correct_action, self.wrong_action, self.relabel_action, self.clear_action):
            action.setEnabled(event)
        self.clips_action.setEnabled(any(r.audio is not None and r.events for r in self.document.done_results()))

    # ---- listening ------------------------------------------------------------------------------------

    def toggle_play(self) -> None:
        """Space: stop what plays, or play the shown recording from the playhead (from its start when the
        playhead is at the end)."""
        if self.playing is not None:
            self.stop()
            return
        result = self.files.shown
        if result is None or result.audio is None:
            self._no_audio(result)
            return
        playhead = self.document.playhead
        start = playhead[1] if playhead is not None and playhead[0] == result.job else 0.0
        self._play(result, 0.0 if start >= result.duration_s - 0.05 else start, None)

    def play_event(self, index: int | None = None) -> None:
        """Enter or a double-click: play event `index` (default: the chosen one) with a second around it."""
        result = self.files.shown
        index = self.files.selected_event if index is None else index
        if result is None or index is None:
            return
        if result.audio is None:
            self._no_audio(result)
            return
        if index != self.files.selected_event:
            self.files.choose_event(index)
        e = result.events[index]
        self.player.play_event(result.audio, e.start_s, e.end_s)
        self._started(result, max(0.0, e.start_s - EVENT_MARGIN_S))

    def seek(self, t_s: float) -> None:
        """A click on empty time: the playhead goes there (and the play, if one runs)."""
        result = self.files.shown
        if result is None:
            return
        self.document.set_playhead(result.job, t_s)
        if self.playing == result.job and result.audio is not None:
            self._play(result, t_s, None)

    def stop(self) -> None:
        self.player.stop()
        self._poll_player()            # the playhead stays where the sound stopped; Play is offered at once

    def _play(self, result: FileResult, start_s: float, end_s: float | None) -> None:
        self.player.play(result.audio, start_s, end_s)
        self._started(result, start_s)

    def _started(self, result: FileResult, start_s: float) -> None:
        self.playing = result.job
        self.document.set_playhead(result.job, start_s)
        self._update_actions()
        self.wake()

    def _no_audio(self, result: FileResult | None) -> None:
        if result is not None:
            self.window.statusBar().showMessage(f"{result.title or Path(result.path).name} has no audio to play: "
                                                "it was not recorded (Record to FLAC keeps a session's audio)", 8000)

    def _poll_player(self) -> None:
        """Move the playhead with the sound; when the play ends, say why if it failed."""
        if self.playing is None:
            return
        status = self.player.status()
        if self.playing in self.document.files:
            self.document.set_playhead(self.playing, status.position_s)
        if status.state is PlayState.PLAYING:
            return
        key, self.playing = self.playing, None
        if status.state is PlayState.FAILED:
            name = self.files.display_name(key) if key in self.document.files else Path(status.path).name
            self.window.show_error(f"could not play {name}: {status.error}", key="playback")
        else:
            self.window.clear_error("playback")
        self._update_actions()

    # ---- reviewing ------------------------------------------------------------------------------------

    def step(self, delta: int) -> None:
        """J / K: the next or previous event in the table's order, played when auto-play is on."""
        index = self.files.step(delta)
        if index is not None:
            self._stepped(index)

    def _stepped(self, index: int) -> None:
        self._update_actions()
        if self.auto_play_action.isChecked():
            self.play_event(index)

    def review(self, verdict: Verdict | None, index: int | None = None) -> None:
        """Y / N / R / Delete: mark the chosen event (None: take its mark away); the document shows it at once,
        the store saves it behind (not for a session without a recording: its marks live in the document)."""
        result = self.files.shown
        index = self.files.selected_event if index is None else index
        if result is None or index is None:
            return
        relabel_to = ""
        if verdict is Verdict.RELABEL:
            dialog = RelabelDialog(result.timeline.labels, result.events[index].label_index, self.window)
            if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted or dialog.chosen() is None:
                return
            relabel_to = dialog.chosen()
        audio, model_name = result.audio, result.timeline.model_name
        if verdict is None:
            mark = self.document.unmark_event(result.job, index)
            if mark is not None and audio is not None:
                self.reviews.submit(("reviews", result.job), lambda: self.store.remove(audio, model_name, mark.key))
        else:
            mark = self.document.mark_event(result.job, index, verdict, relabel_to)
            if audio is not None:
                self.reviews.submit(("reviews", result.job), lambda: self.store.put(audio, model_name, mark))
        self.wake()

    def _result_changed(self, key: int) -> None:
        """A result that is done for the first time (or again, re-analysed) asks the store for its marks."""
        result = self.document.files.get(key)
        if result is not None and result.status == "done" and self._loaded.get(key) is not result:
            self._loaded[key] = result
            if result.audio is not None:
                self.reviews.submit(("reviews", key), lambda: self.store.load(result.audio, result.timeline.model_name))
                self.wake()
        self._update_actions()

    def _result_removed(self, key: int) -> None:
        self._loaded.pop(key, None)
        if self.playing == key:
            self.stop()
        self._update_actions()

    def _reviews_answered(self, key: int, reviews: Reviews) -> None:
        """The store's marks of a recording, for every result of it under that model (once nothing of it is
        pending: a later answer holds the later change)."""
        result = self.document.files.get(key)
        if result is None or self.reviews.pending(("reviews", key)):
            return
        same = os.path.realpath(result.audio)
        for other in self.document.done_results():
            if (other.audio is not None and os.path.realpath(other.audio) == same
                    and other.timeline.model_name == result.timeline.model_name):
                self.document.set_marks(other.job, reviews.marks)
        if reviews.warning:
            self.window.show_error(reviews.warning, key=f"reviews:{same}")

    # ---- clips ----------------------------------------------------------------------------------------

    def clips_dialog(self) -> None:
        """File ▸ Export clips…: ask what, where and which events, then cut them on the clips worker."""
        shown = self.files.shown
        recordings = [r for r in self.document.done_results() if r.audio is not None and r.events]
        scopes = {}
        if shown is not None and shown.audio is not None and shown.events:
            scopes["file"] = f"This file: {self.files.display_name(shown.job)}"
        if len(recordings) > 1 or (recordings and not scopes):
            scopes["each"] = f"Each analysed file ({len(recordings)} recordings)"
        if not scopes:
            self.window.show_error("no events to cut clips of: analyse a file first (a live session needs "
                                   "Record to FLAC)", key="clips")
            return
        dialog = ClipsDialog(scopes, self.window.settings.export_dir, self.window)
        if dialog.exec() == QtWidgets.QDialog.DialogCode.Accepted:
            self.run_clips(dialog.request())

    def run_clips(self, request: ClipsRequest, overwrite: bool = False, jobs: list | None = None) -> None:
        """Cut the request's clips on the clips worker (jobs: only these, e.g. the sets to overwrite)."""
        jobs = clip_jobs(request, self.files.shown, self.document.done_results()) if jobs is None else jobs
        if not jobs:
            self.window.statusBar().showMessage("no events match; no clips were written", 8000)
            return
        self.window.settings.export_dir = str(request.out_dir)
        self.clips.submit(("clips", request, overwrite), lambda: cut_clips(request, jobs, overwrite))
        self.window.statusBar().showMessage(f"writing the clips of {sum(len(j.events) for j in jobs)} events…")
        self.wake()

    def _clips_done(self, request: ClipsRequest, outcome: ClipsOutcome) -> None:
        if outcome.failed:
            self.window.show_error(f"clips not written: {'; '.join(outcome.failed[:3])}", key="clips")
        else:
            self.window.clear_error("clips")
        self.window.statusBar().showMessage(f"wrote {len(outcome.written)} clips to {request.out_dir}", 10000)
        if outcome.existing:
            names = "\n".join(p.name for p in outcome.existing_paths[:8]) + (
                "\n…" if len(outcome.existing_paths) > 8 else "")
            answer = QtWidgets.QMessageBox.question(
                self.window, "Overwrite clips?", f"{len(outcome.existing_paths)} clips already exist in "
                f"{request.out_dir}:\n{names}\n\nOverwrite them?")
            if answer == QtWidgets.QMessageBox.StandardButton.Yes:
                self.run_clips(request, overwrite=True, jobs=list(outcome.existing))

    # ---- the window's timer and quit ------------------------------------------------------------------

    @property
    def busy(self) -> bool:
        """Something to poll: a play, marks being saved, clips being written, answers not drained."""
        return self.playing is not None or self.reviews.busy or self.clips.busy or not self.results.empty()

    def poll(self) -> None:
        """Per timer tick: the playhead, and the workers' answers."""
        self._poll_player()
        for outcome in pending(self.results):
            kind, key = outcome.tag[0], outcome.tag[1]
            if isinstance(outcome, TaskFailed):
                what = "saving or reading review marks" if kind == "reviews" else "writing clips"
                self.window.show_error(f"{what} failed: {outcome.message}", key=kind)
            elif isinstance(outcome, TaskDone) and kind == "reviews":
                self._reviews_answered(key, outcome.value)
            elif isinstance(outcome, TaskDone):
                self._clips_done(key, outcome.value)

    def close(self) -> None:
        """At quit: stop playing, and let marks being saved and clips being written finish (CLOSE_WAIT_S at
        most each; they are daemon threads, and a play's stream closes within core.playback's 1 s)."""
        self.player.stop()
        for worker in (self.reviews, self.clips):
            if not worker.shutdown(CLOSE_WAIT_S):
                log.warning("the %s worker did not finish within %.0f s; quitting without it", worker.name,
                            CLOSE_WAIT_S)
        if not self.player.wait(CLOSE_WAIT_S):
            log.warning("the audio output did not close in time; quitting without it")
