"""The Live tab: input picker, start/stop, the recording option, level meter, scrolling spectrogram with
the label strip, confidence bars and the events that closed (with their wall-clock time).

GUI thread only. It observes app.document.Document: the running session's frames, scores and closed
events arrive as its signals (the document drains the session). It owns display state only, never the
model, the stream or a rule: which labels have an event open comes from the session (the event rule of
core.events, LiveSession.open_labels), and the thresholds drawn on the bars are the session's own.
"""
from __future__ import annotations

import collections
import math
from datetime import datetime, timedelta

import numpy as np
from PySide6 import QtCore, QtWidgets

from core.capture import InputDevice
from core.config import FeatureConfig
from core.events import thresholds_for
from core.labels import LabelSet
from core.session import LiveFrames
from core.tagger import TagFrame
from core.timeline import Event
from app.document import Document
from app.spectrogram_view import SpectrogramView
from app.tags_view import BarRanking, BarRow, ConfidenceBars

__all__ = ["LiveView", "PLAY_FILE"]

LEVEL_FLOOR_DB = -60.0
PLAY_FILE = "\x00play-file"     # the input entry that plays a file as if it were a microphone


class LiveView(QtWidgets.QWidget):
    start_requested = QtCore.Signal()
    stop_requested = QtCore.Signal()
    refresh_requested = QtCore.Signal()
    record_toggled = QtCore.Signal(bool)
    record_folder_requested = QtCore.Signal()

    def __init__(self, document: Document, history_s: float = 30.0, parent=None):
        super().__init__(parent)
        self.document = document
        self.history_s = history_s
        self.devices = QtWidgets.QComboBox()
        self.devices.setMinimumWidth(200)
        self.devices.setSizeAdjustPolicy(QtWidgets.QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.devices.setMinimumContentsLength(24)
        self.devices.setToolTip("Audio input (the system default first)")
        self.refresh = QtWidgets.QToolButton(text="⟳")
        self.refresh.setToolTip("Look for input devices again")
        self.refresh.clicked.connect(self.refresh_requested)
        self.devices.currentIndexChanged.connect(self._choice_changed)
        self.start = QtWidgets.QPushButton("Start listening")
        self.start.clicked.connect(self._start_clicked)
        self.level = QtWidgets.QProgressBar()
        self.level.setRange(int(LEVEL_FLOOR_DB), 0)
        self.level.setValue(int(LEVEL_FLOOR_DB))
        self.level.setFormat("%v dBFS")
        self.level.setFixedWidth(140)
        self.level.setToolTip("Input level (peak, dBFS)")
        self.record = QtWidgets.QCheckBox("Record to FLAC")
        self.record.setToolTip("Also save what the model hears (16 kHz mono FLAC, 24 bit) as "
                               "ast-tagger-<date>-<time>.flac in the folder on the right")
        self.record.toggled.connect(self.record_toggled)
        self.record_folder = QtWidgets.QToolButton()
        self.record_folder.setToolButtonStyle(QtCore.Qt.ToolButtonStyle.ToolButtonTextOnly)
        self.record_folder.clicked.connect(self.record_folder_requested)
        self.state = QtWidgets.QLabel("")     # its own line under the controls: long hints wrap across the width
        self.state.setWordWrap(True)
        top = QtWidgets.QHBoxLayout()
        top.addWidget(QtWidgets.QLabel("Input:"))
        top.addWidget(self.devices)
        top.addWidget(self.refresh)
        top.addWidget(self.start)
        top.addWidget(self.level)
        top.addStretch(1)
        recording = QtWidgets.QHBoxLayout()        # its own row: the top one stays narrow for small screens
        recording.addWidget(self.record)
        recording.addWidget(self.record_folder)
        recording.addStretch(1)

        self.spectrogram = SpectrogramView(history_s)
        self.bars = ConfidenceBars()
        self.events = QtWidgets.QTableWidget(0, 5)
        self.events.setHorizontalHeaderLabels(["Time", "Start (s)", "End (s)", "Label", "Peak"])
        self.events.horizontalHeaderItem(0).setToolTip("Wall-clock time the event started (this computer's clock)")
        self.events.verticalHeader().setVisible(False)
        self.events.setEditTriggers(QtWidgets.QAbstractItemView.EditTrigger.NoEditTriggers)
        self.events.horizontalHeader().setSectionResizeMode(QtWidgets.QHeaderView.ResizeMode.ResizeToContents)
        self.events.horizontalHeader().setSectionResizeMode(3, QtWidgets.QHeaderView.ResizeMode.Stretch)
        side = QtWidgets.QSplitter(QtCore.Qt.Orientation.Vertical)
        side.addWidget(self.bars)
        side.addWidget(self.events)
        split = QtWidgets.QSplitter(QtCore.Qt.Orientation.Horizontal)
        split.addWidget(self.spectrogram)
        split.addWidget(side)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        layout = QtWidgets.QVBoxLayout(self)
        layout.addLayout(top)
        layout.addLayout(recording)
        layout.addWidget(self.state)
        layout.addWidget(split, 1)

        self.ranking = BarRanking()
        self.labels = LabelSet.from_names([])
        self.thresholds = np.zeros((0, 2))
        self.running = False
        self._history: collections.OrderedDict[int, tuple[float, np.ndarray]] = collections.OrderedDict()
        self._active = np.zeros(0, dtype=bool)
        self._latest = np.zeros(0)
        self._allowed = np.ones(0, dtype=bool)     # the Labels panel's filter, for the current model's labels
        self._window_s, self._hop_s = 1.0, 1.0
        document.liveStarted.connect(self._session_started)
        document.liveChanged.connect(self._state_changed)
        document.liveFrames.connect(self._frames)
        document.liveScores.connect(self._scores)
        document.liveEvents.connect(self.add_events)
        document.pinsChanged.connect(self._pins_changed)

    # ---- the document -------------------------------------------------------------------------------

    def _session_started(self) -> None:
        session = self.document.live.session
        self.begin(self.document.live.features, session.labels, session.tagger.window_s, session.tagger.hop_s,
                   thresholds_for(session.labels, session.live.event_config))

    def _state_changed(self) -> None:
        state = self.document.live_state
        self.set_running(state != "idle", busy=state in ("starting", "stopping"),
                         text={"starting": "Starting…", "stopping": "Stopping…"}.get(state))

    def _frames(self, item: LiveFrames) -> None:
        self.add_frames(item.start_frame, item.frames, item.level_db)

    def _scores(self, frame: TagFrame, open_labels: np.ndarray) -> None:
        self.add_scores(frame.index, frame.start_s, frame.scores, open_labels, self._allowed, self._pinned())

    def _pinned(self) -> list[int]:
        """The document's pins as indices of this session's labels."""
        return [label.index for key in self.document.pinned_ids if (label := self.labels.find(key)) is not None]

    def _pins_changed(self) -> None:
        self.update_rows(self._allowed, self._pinned())

    def set_allowed(self, allowed: np.ndarray) -> None:
        """The labels the bars may show (the Labels panel's filter), for the model in the panel."""
        self._allowed = np.asarray(allowed, dtype=bool)
        self.update_rows(self._allowed, self._pinned())

    def set_recording(self, enabled: bool, folder: str) -> None:
        """The remembered recording choice and folder (shown on the folder button)."""
        self.record.setChecked(enabled)
        self.record_folder.setText(f"{_short_path(folder)}…")
        self.record_folder.setToolTip(f"Recordings go to {folder}; click to choose another folder")

    # ---- devices ------------------------------------------------------------------------------------

    def set_devices(self, devices: list[InputDevice], preferred: str = "", message: str = "") -> None:
        """The inputs (default first), then 'a file played as live input'; with none, say so first."""
        self.devices.clear()
        if not devices:
            self.devices.addItem("no audio input found")
        for d in devices:
            self.devices.addItem(f"{d.name}{'  (default)' if d.is_default else ''}  [{d.host_api}]", d)
        self.devices.addItem("A file, played as live input…", PLAY_FILE)
        self.devices.setItemData(self.devices.count() - 1, "Tag a recording as if it came from a microphone, "
                                 "in real time (no sound card needed)", QtCore.Qt.ItemDataRole.ToolTipRole)
        names = [d.name for d in devices]
        if preferred in names:
            self.devices.setCurrentIndex(names.index(preferred))
        self.devices.setEnabled(not self.running)
        self._choice_changed()
        self.state.setText(message)

    def choice(self) -> InputDevice | str | None:
        """The chosen input device, PLAY_FILE, or None (nothing to listen to)."""
        data = self.devices.currentData()
        return data if isinstance(data, InputDevice) or data == PLAY_FILE else None

    def device(self) -> InputDevice | None:
        data = self.devices.currentData()
        return data if isinstance(data, InputDevice) else None

    def _choice_changed(self) -> None:
        if not self.running:
            self.start.setEnabled(self.choice() is not None)

    def _start_clicked(self) -> None:
        (self.stop_requested if self.running else self.start_requested).emit()

    def set_running(self, running: bool, busy: bool = False, text: str | None = None) -> None:
        """running: a session is starting, running or stopping; busy: it is starting or stopping (the button
        waits, showing `text`)."""
        self.running = running
        self.start.setText(text or ("Stop" if running else "Start listening"))
        self.start.setEnabled(not busy and (running or self.choice() is not None))
        for widget in (self.devices, self.refresh, self.record, self.record_folder):
            widget.setEnabled(not running)
        if not running:
            self.level.setValue(int(LEVEL_FLOOR_DB))

    # ---- a session ----------------------------------------------------------------------------------

    def begin(self, features: FeatureConfig, labels: LabelSet, window_s: float, hop_s: float,
              thresholds: np.ndarray) -> None:
        self.labels, self.thresholds = labels, thresholds
        self._window_s, self._hop_s = window_s, hop_s
        self.spectrogram.start_live(features)
        self.ranking.reset()
        self.bars.set_rows([])
        self.events.setRowCount(0)
        self._history.clear()
        self._active = np.zeros(len(labels), dtype=bool)
        self._latest = np.zeros(len(labels))
        self.state.setText(f"warming up: first tags after {window_s + 0.015:.1f} s of audio")

    def set_warmup(self, progress: float) -> None:
        if not self._history:
            self.state.setText(f"warming up: {progress:.0%} of the first {self._window_s:.2f} s window heard")

    def add_frames(self, start_frame: int, frames: np.ndarray, level_db: float) -> None:
        self.spectrogram.add_frames(start_frame, frames)
        self.level.setValue(int(max(LEVEL_FLOOR_DB, min(0.0, level_db))))

    def add_scores(self, index: int, start_s: float, scores: np.ndarray, active: np.ndarray, allowed: np.ndarray,
                   pinned: list[int]) -> None:
        """The scores of live window `index` (starting at start_s) and the labels with an event open (the
        session's answer, LiveSession.open_labels): bars, their colour, the strip."""
        if not self._history:
            self.state.setText("")
        self._history[index] = (start_s, scores)
        keep = math.ceil((self.history_s + self._window_s) / self._hop_s) + 2
        while len(self._history) > keep:
            self._history.popitem(last=False)
        self._active = np.asarray(active, dtype=bool)
        self._latest = np.nan_to_num(scores, nan=0.0)
        self.update_rows(allowed, pinned)

    def update_rows(self, allowed: np.ndarray, pinned: list[int]) -> None:
        """Re-rank the bars (new scores, filter or pins changed) and redraw the strip for their labels."""
        if len(self._latest) != len(self.labels):
            return
        if len(allowed) != len(self.labels):     # the panel shows another model: all of this stream's labels
            allowed, pinned = np.ones(len(self.labels), dtype=bool), []
        rows = self.ranking.update(self._latest, allowed, pinned)
        self.bars.set_rows([BarRow(self.labels[i].name, float(self._latest[i]), float(self.thresholds[i, 0]),
                                   bool(self._active[i]), i in pinned) for i in rows])
        if self._history:
            first, last = next(iter(self._history)), next(reversed(self._history))
            matrix = np.full((len(rows), last - first + 1), np.nan, dtype=np.float32)   # (K, C)
            for k, (_, scores) in self._history.items():
                matrix[:, k - first] = scores[rows]
            x0 = self._history[first][0] + self._window_s / 2 - self._hop_s / 2
            self.spectrogram.set_strip([self.labels[i].name for i in rows], x0, self._hop_s, matrix)

    def add_events(self, events: list[Event], clock_start: datetime | None = None) -> None:
        """Events that closed; clock_start (the stream's second 0 on the wall clock) gives their Time."""
        for e in events:
            row = self.events.rowCount()
            self.events.insertRow(row)
            when = clock_start + timedelta(seconds=e.start_s) if clock_start is not None else None
            for c, text in enumerate((f"{when:%H:%M:%S}" if when else "", f"{e.start_s:.3f}", f"{e.end_s:.3f}",
                                      self.labels[e.label_index].name, f"{e.peak_score:.2f}")):
                item = QtWidgets.QTableWidgetItem(text)
                if c == 0 and when is not None:
                    item.setToolTip(when.isoformat(timespec="milliseconds"))
                self.events.setItem(row, c, item)
        if events:
            self.events.scrollToBottom()

    def tick(self) -> bool:
        """Per timer tick: scroll the spectrogram; True if anything was redrawn."""
        drew = self.spectrogram.refresh()
        return self.bars.tick() or drew


def _short_path(folder: str, limit: int = 28) -> str:
    return folder if len(folder) <= limit else "…" + folder[-(limit - 1):]
