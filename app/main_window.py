"""The main window: wiring. It builds the document (app.document), the views that observe it and the
workers that feed it, and keeps what is the window's own: the dialogs, the banner, the status bar and the
timer that drains the workers' queues.

GUI thread only. Work happens in app.workers (model loading and file analysis on QThreads, live tagging on
the tagger's thread, every call of a live session that can block on LiveControl's thread) and app.filetools
(playing, saving review marks, writing clips); one ~30 Hz QTimer drains their queues into the document and
moves the playhead, and runs only while something is going on, so an idle window costs no CPU. Every
failure (no microphone, unreadable file, broken model file, full disk) is shown in words in the banner and
the app keeps working with what it had.
"""
from __future__ import annotations

import logging
import queue
import time
from pathlib import Path
from typing import Callable

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.inputs import collect_audio, file_dialog_filter
from core.capture import CaptureError, FilePlayback
from core.hub import AUDIOSET_REPO
from core.errors import ExportExistsError, TaggerError
from core.export import REVIEW_FORMATS
from core.modelfile import shipped_models
from core.playback import Player
from core.review import ReviewStore
from core.session import LiveSession, LiveTimeline
from core.tagger import TaggerState
from core.timeline import Timeline
from app.controls import ExportDialog, ExportRequest, LabelPanel, ask_unsaved, offer_audioset
from app.document import Document, FileResult
from app.exporting import export_scopes, write_each, write_export
from app.files_view import FilesView
from app.filetools import FileTools
from app.live_view import PLAY_FILE, LiveView
from app.settings import AppSettings, default_qsettings, load_settings, save_settings
from app.toolbar import HUB_MODELS, OPEN_HF_DIR, OPEN_MODEL, RunBar
from app.workers import (AnalysisWorker, DownloadProgress, HubDownloader, JobDone, JobFailed, JobProgress, LiveControl,
                         LiveFinished, LiveRequest, LiveStarted, LiveStartFailed, ModelFailed, ModelLoader, ModelReady,
                         SystemAudio, model_loader, pending)

__all__ = ["MainWindow", "default_window_size"]

log = logging.getLogger(__name__)

AUDIO_FILTER = file_dialog_filter()
TICK_MS = 33                 # ~30 redraws per second
BANNER_LINES = 4             # the banner shows the newest few errors whose cause is not resolved yet
STATS_EVERY_S = 0.5
LIVE_CLOSE_WAIT_S = 3.0      # quitting waits this long at most for the live session to close
Button = QtWidgets.QMessageBox.StandardButton


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, qsettings: QtCore.QSettings | None = None, model_spec: str | None = None,
                 compute: str | None = None, audio=None, player: Player | None = None,
                 review_store: ReviewStore | None = None):
        """audio: the live inputs (app.workers.SystemAudio); player: what plays files (core.playback.Player on the
        default output); review_store: where review marks are kept (the user data folder's)."""
        super().__init__()
        self.setWindowTitle("AST Tagger[*]")
        self.setAcceptDrops(True)
        self.qsettings = qsettings or default_qsettings()
        self.settings: AppSettings = load_settings(self.qsettings)
        self.first_start = not self.qsettings.contains("model_spec")     # run_app offers the AudioSet model
        if model_spec is not None:
            self.settings.model_spec = model_spec
        if compute is not None:
            self.settings.compute = compute
        self.audio = audio or SystemAudio()
        self.document = Document(self.settings.event_config(), self.settings.pinned, self)
        self.errors: list[str] = []                 # every message shown in the banner (tests read it)
        self._banner_items: dict[str, str] = {}     # cause -> message, oldest first (show_error's key)
        self._loaders: list[ModelLoader] = []
        self._model_results: queue.Queue = queue.Queue()
        self._analysis_results: queue.Queue = queue.Queue()
        self._live_results: queue.Queue = queue.Queue()
        self.analysis = AnalysisWorker(self._analysis_results)
        self.live_control = LiveControl(self._live_results)
        self._live_source: Callable | None = None   # opens the input of the newest session (a restart reuses it)
        self._restart_live = False
        self._closed = False
        self._wanted_model = 0
        self._last_stats = 0.0
        self._model_status = "no model loaded"
        self.redraw_ms: list[float] = []            # GUI time per tick while drawing (bench/bench_gui.py)

        self._build(player or Player(), review_store or ReviewStore())
        self._wire()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.refresh_devices(refresh=False)
        self.load_model(self.settings.model_spec)

    # ================================================================================= construction

    def _build(self, player: Player, review_store: ReviewStore) -> None:
        bar = RunBar(self.settings, self.document, self)
        self.addToolBar(bar)
        self.run_bar = bar
        self.model_box, self.compute_box, self.badge = bar.model_box, bar.compute_box, bar.badge
        self.hop, self.on, self.off = bar.hop, bar.on, bar.off
        self._fill_models()

        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet("QLabel { background: #8b1e1e; color: white; padding: 6px; }")
        self.banner.hide()
        self.banner_close = QtWidgets.QToolButton(text="✕")
        self.banner_close.clicked.connect(self._hide_banner)
        self.banner_close.hide()
        self.tabs = QtWidgets.QTabWidget()
        self.live_view = LiveView(self.document)
        self.files_view = FilesView(self.document)
        self.tabs.addTab(self.live_view, "Live")
        self.tabs.addTab(self.files_view, "Files")
        central = QtWidgets.QWidget()
        v = QtWidgets.QVBoxLayout(central)
        row = QtWidgets.QHBoxLayout()
        row.addWidget(self.banner, 1)
        row.addWidget(self.banner_close)
        v.addLayout(row)
        v.addWidget(self.tabs, 1)
        self.setCentralWidget(central)
        self.file_tools = FileTools(self, player, review_store, self._wake)

        self.labels_panel = LabelPanel(self.document)
        dock = QtWidgets.QDockWidget("Labels", self)
        dock.setObjectName("labels")
        dock.setWidget(self.labels_panel)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)

        menu = self.menuBar().addMenu("&File")
        menu.addAction("&Open files…", QtGui.QKeySequence.StandardKey.Open, self._open_files_dialog)
        menu.addAction("Open &folder…", self._open_folder_dialog)
        menu.addAction("Start/stop &listening", QtGui.QKeySequence("Ctrl+L"), self.live_view.start.click)
        self.export_action = menu.addAction("&Export…", QtGui.QKeySequence("Ctrl+E"), self.export_dialog)
        menu.addAction(self.file_tools.clips_action)
        menu.addSeparator()
        menu.addAction("&Quit", QtGui.QKeySequence.StandardKey.Quit, self.close)
        models = self.menuBar().addMenu("&Model")
        models.addAction("Open model &file…", lambda: self._pick_model(OPEN_MODEL))
        models.addAction("Open Hugging Face &directory…", lambda: self._pick_model(OPEN_HF_DIR))
        models.addAction("Use the &default model", lambda: self.load_model(""))
        models.addSeparator()
        self.engine_actions = {}                     # ("backend" | "precision", value) -> checkable action
        for kind, title, values in (("backend", "&Backend (CPU)", ENGINE_TITLES["backend"]),
                                    ("precision", "&Precision (CPU)", ENGINE_TITLES["precision"])):
            menu, group = models.addMenu(title), QtGui.QActionGroup(self)
            for value, text in values.items():
                action = menu.addAction(text, lambda kind=kind, value=value: self._engine_chosen(kind, value))
                action.setCheckable(True)
                action.setChecked(getattr(self.settings, kind) == value)
                group.addAction(action)
                self.engine_actions[kind, value] = action
        self.file_tools.add_menus(self.menuBar())
        dock_action = dock.toggleViewAction()
        dock_action.setText("&Labels panel")
        self.menuBar().addMenu("&View").addAction(dock_action)

        status = self.statusBar()
        self.status_input = QtWidgets.QLabel("no input")
        self.status_model = QtWidgets.QLabel("no model")
        self.status_speed = QtWidgets.QLabel("")
        self.status_health = QtWidgets.QLabel("")
        self.download_bar = QtWidgets.QProgressBar()         # a Hub model's download (HubDownloader)
        self.download_bar.setMaximumWidth(220)
        self.download_cancel = QtWidgets.QWidget()
        row = QtWidgets.QHBoxLayout(self.download_cancel)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.download_bar)
        cancel = QtWidgets.QToolButton(text="✕")
        cancel.setAutoRaise(True)
        cancel.setToolTip("Cancel the download (the current model stays)")
        for w in (self.download_bar, cancel):                # no taller than the status texts
            w.setMaximumHeight(self.status_model.sizeHint().height())
        cancel.clicked.connect(self.cancel_download)
        row.addWidget(cancel)
        self.download_cancel.hide()
        for w in (self.status_input, self.status_model, self.download_cancel, self.status_speed, self.status_health):
            status.addPermanentWidget(w)
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        self.resize(default_window_size(screen.availableGeometry()) if screen else QtCore.QSize(1280, 800))
        geometry = self.qsettings.value("geometry")
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)

    def _wire(self) -> None:
        """The views' intents to the window (what needs a dialog or a worker), the document's news to the
        banner, the title and the settings."""
        doc = self.document
        self.model_box.activated.connect(self._model_chosen)
        self.compute_box.activated.connect(self._compute_chosen)
        self.hop.editingFinished.connect(self._hop_changed)
        self.live_view.start_requested.connect(self.start_live)
        self.live_view.stop_requested.connect(self.stop_live)
        self.live_view.refresh_requested.connect(lambda: self.refresh_devices(refresh=True))
        self.live_view.record_toggled.connect(self._record_toggled)
        self.live_view.record_folder_requested.connect(self._pick_record_dir)
        self.live_view.set_recording(self.settings.record, self._record_dir())
        self.files_view.cancel_requested.connect(self.analysis.cancel)
        self.files_view.open_requested.connect(self._open_files_dialog)
        self.files_view.retry_requested.connect(lambda path: self.open_paths([path]))
        self.files_view.remove_requested.connect(self.remove_results)
        self.labels_panel.changed.connect(lambda: self.live_view.set_allowed(self.labels_panel.allowed()))
        self.labels_panel.invalid.connect(self.show_error)
        doc.fileRemoved.connect(lambda key, path: self.clear_error(f"file:{path}"))
        doc.ruleChanged.connect(self._sync_settings)
        doc.pinsChanged.connect(self._sync_settings)
        doc.errorRaised.connect(lambda key, text: self.show_error(text, key=key))
        doc.errorCleared.connect(self.clear_error)
        doc.dirtyChanged.connect(self.setWindowModified)

    def _sync_settings(self) -> None:
        doc = self.document
        self.settings.on_threshold, self.settings.off_threshold = doc.on_threshold, doc.off_threshold
        self.settings.label_thresholds = dict(doc.label_thresholds)
        self.settings.pinned = list(doc.pinned_ids)

    def _fill_models(self) -> None:
        self.run_bar.fill_models(self.settings.recent_models,
                                 self.model.spec if self.model else self.settings.model_spec)

    @property
    def model(self) -> ModelReady | None:
        return self.document.model

    @property
    def session(self) -> LiveSession | None:
        """The running live session (None when not listening; starting does not count yet)."""
        return self.document.live.session if self.document.live is not None else None

    @property
    def live(self) -> LiveTimeline | None:
        """The running session's event timeline (None when not listening)."""
        return self.session.live if self.session is not None else None

    @property
    def live_result(self) -> tuple[Timeline, list] | None:
        """(timeline, events) of the newest finished live session in the list, events by the current rule."""
        sessions = self.document.live_results()
        return (sessions[-1].timeline, sessions[-1].events) if sessions else None

    def _event_config(self):
        """The event rule (the document's: global on/off and per-label thresholds)."""
        return self.document.event_config()

    # ======================================================================================= errors

    def show_error(self, text: str, key: str | None = None) -> None:
        """Show `text` in the banner with the other unresolved errors; `key` names its cause, so that a newer
        error of the same cause replaces it and clear_error(key) takes it away once the cause is resolved."""
        log.warning("%s", text)
        self.errors.append(text)
        key = key or text
        self._banner_items.pop(key, None)
        self._banner_items[key] = text
        while len(self._banner_items) > BANNER_LINES:
            del self._banner_items[next(iter(self._banner_items))]
        self._show_banner()
        self.statusBar().showMessage(text.split(";")[0], 10000)

    def clear_error(self, key: str) -> None:
        if self._banner_items.pop(key, None) is not None:
            self._show_banner()

    def _show_banner(self) -> None:
        self.banner.setText("\n".join(reversed(self._banner_items.values())))    # newest first
        self.banner.setVisible(bool(self._banner_items))
        self.banner_close.setVisible(bool(self._banner_items))

    def _hide_banner(self) -> None:
        self._banner_items.clear()
        self._show_banner()

    # ======================================================================================= models

    def load_model(self, spec: str) -> None:
        """Load a model on a worker thread; the current one stays in use until the new one is ready."""
        for old in self._loaders:                    # a newer pick replaces a download still running
            if isinstance(old, HubDownloader):
                old.cancel()
        loader = model_loader(spec, self.compute_box.currentData() or "auto", self._model_results,
                              self.settings.backend, self.settings.precision)
        self._loaders.append(loader)
        self._wanted_model = loader.request          # a slower, older request must not win
        if self.model is None:
            self.analysis.set_model_error(None)      # queued files wait for this one
        self.status_model.setText(f"loading {_model_title(spec)}…")
        self.download_cancel.setVisible(False)
        loader.start()
        self._wake()

    def _download_progress(self, item: DownloadProgress) -> None:
        mb = 1024 * 1024
        self.download_bar.setRange(0, max(1, item.total_bytes // mb))
        self.download_bar.setValue(item.done_bytes // mb)
        self.download_bar.setFormat("%v of %m MB")
        self.download_cancel.setVisible(True)
        self.status_model.setText(f"downloading {_model_title(item.spec)}…")

    def cancel_download(self) -> None:
        """Stop a Hub model's download; the model in use stays."""
        for loader in self._loaders:
            if isinstance(loader, HubDownloader):
                loader.cancel()

    def offer_audioset(self) -> None:
        """The first start's question (run_app asks it once, when no model was ever chosen)."""
        if offer_audioset(self):
            self.load_model(AUDIOSET_REPO)

    def _model_chosen(self, index: int) -> None:
        spec = self.model_box.itemData(index)
        if spec in (OPEN_MODEL, OPEN_HF_DIR):
            self._pick_model(spec)
        elif self.model is None or spec != self.model.spec:
            self.load_model(spec)

    def _pick_model(self, kind: str) -> None:
        if kind == OPEN_MODEL:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Open a model", "", "Models (*.safetensors *.pth *.pt *.bin);;All files (*)")
        else:
            path = QtWidgets.QFileDialog.getExistingDirectory(self, "Open a Hugging Face AST directory")
        if path:
            self.load_model(path)
        else:
            self._fill_models()

    def _engine_chosen(self, kind: str, value: str) -> None:
        """Model ▸ Backend/Precision: remembered, and the model is prepared again for it (docs/speed.md)."""
        if getattr(self.settings, kind) != value:
            setattr(self.settings, kind, value)
            self.load_model(self.model.spec if self.model else self.settings.model_spec)

    def _compute_chosen(self) -> None:
        self.settings.compute = self.compute_box.currentData()
        self.load_model(self.model.spec if self.model else self.settings.model_spec)

    def _model_ready(self, ready: ModelReady) -> None:
        self.document.set_model(ready)            # the label panel and the badge follow
        self.clear_error("model")
        loaded = ready.loaded
        self.settings.model_spec = ready.spec
        if (ready.spec and ready.spec not in shipped_models() and ready.spec not in HUB_MODELS
                and ready.spec not in self.settings.recent_models):
            self.settings.recent_models = [ready.spec, *self.settings.recent_models][:8]
        self._fill_models()
        self.download_cancel.setVisible(False)
        self._model_status = (f"model {_model_title(ready.spec) if ready.spec in HUB_MODELS else loaded.name}: "
                              f"{len(loaded.labels)} labels, window "
                              f"{loaded.features.window_s:.2f} s, loaded in {ready.load_s:.1f} s")
        self.status_model.setText(self._model_status)
        if ready.note:                            # e.g. OpenVINO is not installed: torch runs it
            self.statusBar().showMessage(ready.note, 15000)
        self.analysis.set_model(loaded, ready.options, self.hop.value())
        self._restart_after_stop()

    def _hop_changed(self) -> None:
        if abs(self.hop.value() - self.settings.hop_s) < 1e-9:
            return
        self.hop.setValue(round(self.hop.value() * 100) / 100)       # a whole number of 10 ms frames
        self.settings.hop_s = self.hop.value()
        if self.model is not None:
            self.analysis.set_model(self.model.loaded, self.model.options, self.settings.hop_s)
        self._restart_after_stop()

    # ========================================================================================= live

    def refresh_devices(self, refresh: bool = True) -> None:
        try:
            devices = self.audio.list_devices(refresh=refresh and self.document.live_state == "idle")
            message = "" if devices else ("No audio input found: connect a microphone (or start the sound "
                                          "server) and press ⟳, or choose 'A file, played as live input…' "
                                          "in the Input list. Files can still be analysed.")
        except CaptureError as e:
            devices, message = [], str(e)
        self.live_view.set_devices(devices, self.settings.input_device, message)
        self.status_input.setText(f"input: {devices[0].name}" if devices else "no input device")

    def start_live(self) -> None:
        """Start listening to the chosen input (asking first when earlier sessions were never saved)."""
        if self.document.live_state != "idle":
            return
        if self.model is None:
            self.show_error("no model is loaded yet; wait for it (or pick one) and press Start again")
            return
        choice = self.live_view.choice()
        if choice is None:
            self.show_error("no audio input device to listen to; connect one and press ⟳, or choose "
                            "'A file, played as live input…'")
            return
        answer = self._settle_unsaved("starting a new session")
        if answer == "cancel":
            return
        if answer == "discard":
            for key, _ in self.document.unsaved():    # finished sessions only: none runs now
                self.document.remove(key)
        if choice == PLAY_FILE:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Play a file as live input", self.settings.export_dir, AUDIO_FILTER)
            if not path:
                return
            self._live_source = lambda: FilePlayback(path)          # read on the control thread
        else:
            self.settings.input_device = choice.name
            self._live_source = lambda: self.audio.open(choice)
        self._start_session()

    def _start_session(self) -> None:
        """Open the newest input on LiveControl's thread with the current model, hop and rule."""
        loaded = self.model.loaded
        record_dir = Path(self._record_dir()) if self.settings.record else None
        self.live_control.start(LiveRequest(self._live_source, loaded, self.model.options, self.hop.value(),
                                            self.document.rule_for(loaded.labels), record_dir))
        self.document.start_requested()
        self._wake()

    def stop_live(self) -> None:
        """End the stream (on LiveControl's thread); the tagger scores the tail, then the session is finished."""
        session = self.document.stop_requested()
        if session is not None:
            self.live_control.stop(session)

    def _restart_after_stop(self) -> None:
        """A model or hop change while listening: end this stream and start one on the new setting (not when
        the stream is already ending: Stop was pressed, or the device went away)."""
        if self.document.live_state == "running":
            self._restart_live = True
            self.stop_live()

    def _drain_live(self) -> None:
        for item in pending(self._live_results):
            if isinstance(item, LiveStarted):
                self._live_started(item.session)
            elif isinstance(item, LiveStartFailed):
                self.document.start_failed(item.message)
            elif isinstance(item, LiveFinished):
                self._live_finished(item)
        if self.document.live is None:
            return
        end = self.document.poll_live()
        if end is not None:
            self.live_control.finish(self.document.live.session, end)
        now = time.monotonic()
        if now - self._last_stats > STATS_EVERY_S:
            self._last_stats = now
            self._show_stats()

    def _live_started(self, session: LiveSession) -> None:
        self.document.begin_live(session)
        source = session.source
        self.status_input.setText(f"input: {source.device.name}, {source.rate_hz} Hz"
                                  + ("" if source.rate_hz == 16000 else " → 16000 Hz")
                                  + (f", recording to {session.recorder.path.name}" if session.recorder else ""))

    def _show_stats(self) -> None:
        if self.document.live is None:
            return
        session = self.document.live.session
        stats = session.stats()
        if session.tagger.state == TaggerState.WARMING_UP:
            self.live_view.set_warmup(session.tagger.warmup_progress)
        if stats.inference_s:
            inference = 1000 * float(np.median(stats.inference_s[-10:]))
            lag = f", lag {1000 * float(np.median(stats.lags_s[-10:])):.0f} ms" if stats.lags_s else ""
            self.status_speed.setText(f"inference {inference:.1f} ms/window{lag}")
        self.status_health.setText(f"overflows {session.source.input_overflows}, skipped "
                                   f"{stats.windows_skipped}, lost {stats.windows_lost}")

    def _live_finished(self, finished: LiveFinished) -> None:
        self._show_stats()
        self.document.end_live(finished.result)
        restart, self._restart_live = self._restart_live, False
        if restart and not finished.result.error and self.model is not None:
            self._start_session()

    def _record_dir(self) -> str:
        if self.settings.record_dir:
            return self.settings.record_dir
        music = QtCore.QStandardPaths.writableLocation(QtCore.QStandardPaths.StandardLocation.MusicLocation)
        return music or str(Path.home())

    def _record_toggled(self, enabled: bool) -> None:
        self.settings.record = enabled

    def _pick_record_dir(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Record live sessions to", self._record_dir())
        if folder:
            self.settings.record_dir = folder
            self.live_view.set_recording(self.settings.record, folder)

    # ======================================================================================== files

    def open_paths(self, paths: list[str]) -> list[int]:
        """Queue audio files (folders: every audio file under them) for analysis; returns job ids."""
        jobs = []
        found = collect_audio([str(p) for p in paths])
        if not found:
            self.show_error(f"no audio files found in {', '.join(str(p) for p in paths)}")
        for path, _ in found:       # the worker reads each file (even its header): never the GUI thread
            job = self.analysis.submit(path)
            self.document.add_job(job, str(path))
            jobs.append(job)
        if jobs:
            self.tabs.setCurrentWidget(self.files_view)
            self._wake()
        return jobs

    def remove_results(self, keys: list[int]) -> None:
        """Take results off the list (cancelling analyses that have not finished), asking first about live
        sessions that were never saved."""
        if self._settle_unsaved("removing them from the list", keys) == "cancel":
            return
        for key in keys:
            result = self.document.files.get(key)
            if result is not None and result.status in ("queued", "running"):
                self.analysis.cancel(key)
            self.document.remove(key)

    def _open_files_dialog(self) -> None:
        paths, _ = QtWidgets.QFileDialog.getOpenFileNames(
            self, "Analyse audio files", "", AUDIO_FILTER)
        if paths:
            self.open_paths(paths)

    def _open_folder_dialog(self) -> None:
        folder = QtWidgets.QFileDialog.getExistingDirectory(self, "Analyse every audio file in a folder")
        if folder:
            self.open_paths([folder])

    def _drain_analysis(self) -> None:
        for item in pending(self._analysis_results):
            if isinstance(item, JobProgress):
                self.document.set_progress(item.job, item.done_s, item.total_s)
            elif isinstance(item, JobDone):
                tl = item.timeline
                self.document.set_done(item.job, tl, item.spectrogram, item.frames_per_column * 0.01)
                self.clear_error(f"file:{item.path}")
                self.statusBar().showMessage(f"{Path(item.path).name}: {tl.duration_s:.1f} s analysed in "
                                             f"{item.seconds:.1f} s", 8000)
            elif isinstance(item, JobFailed):
                self.document.set_failed(item.job, item.message, item.cancelled)
                if not item.cancelled and item.job in self.document.files:
                    self.show_error(f"{self.files_view.display_name(item.job)}: {item.message}",
                                    key=f"file:{item.path}")

    # ======================================================================================= export

    def _current_file(self) -> FileResult | None:
        return self.document.files.get(self.files_view.current) if self.files_view.current is not None else None

    def _live_scopes(self) -> dict[str, tuple[int | None, Timeline]]:
        """'live': the running session (a snapshot, key None) or else the newest finished one; 'last': the
        newest finished session while another runs (e.g. before a model change restarted the stream)."""
        sessions = self.document.live_results()
        last = (sessions[-1].job, sessions[-1].timeline) if sessions else None
        if self.document.live is not None:
            return {"live": (None, self.document.live_timeline()), **({"last": last} if last else {})}
        return {"live": last} if last else {}

    def export_scopes(self) -> dict[str, tuple[str, str]]:
        live = {scope: timeline for scope, (_, timeline) in self._live_scopes().items()}
        return export_scopes(self._current_file(), self.document.done_results(), live)

    def export(self, request: ExportRequest, overwrite: bool = False) -> list[Path]:
        """Write the request (see app.exporting.write_export) and note which live results it saved."""
        current, done = self._current_file(), self.document.done_results()
        with_marks = bool(REVIEW_FORMATS & set(request.formats))

        def wrote(key: int | None, timeline: Timeline) -> None:
            self.document.mark_exported(key, timeline, with_marks)

        if request.scope == "each":
            return write_each(request, self._event_config(), done, overwrite,
                              wrote=lambda result: wrote(result.job, result.timeline))
        key, live = self._live_scopes().get(request.scope, (None, None))
        marks = self.document.files[key].marks if key in self.document.files else ()
        written = write_export(request, self._event_config(), current, done, live, overwrite, marks)
        if request.scope == "file" and current is not None:
            wrote(current.job, current.timeline)
        elif request.scope == "batch":
            for result in done:
                wrote(result.job, result.timeline)
        elif live is not None:
            wrote(key, live)
        return written

    def export_dialog(self, scope: str | None = None) -> bool:
        """Ask what to export and where, then export; scope preselects what. True when files were written."""
        scopes = self.export_scopes()
        if not scopes:
            self.show_error("nothing to export yet: analyse a file or listen first")
            return False
        dialog = ExportDialog(scopes, self.settings.export_formats, self.settings.export_dir, self)
        if scope is None and self.tabs.currentWidget() is self.live_view and "live" in scopes:
            scope = "live"
        if scope in scopes:
            dialog.scope.setCurrentIndex(dialog.scope.findData(scope))
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return False
        return bool(self.run_export(dialog.request()))

    def run_export(self, request: ExportRequest) -> list[Path]:
        """Export, asking before anything is overwritten; errors go to the banner. Returns what was written."""
        self.settings.export_formats, self.settings.export_dir = list(request.formats), str(request.out_dir)
        try:
            try:
                written = self.export(request)
            except ExportExistsError as e:
                names = "\n".join(p.name for p in e.paths[:8]) + ("\n…" if len(e.paths) > 8 else "")
                answer = QtWidgets.QMessageBox.question(
                    self, "Overwrite?", f"These files already exist in {request.out_dir}:\n{names}\n\nOverwrite them?")
                if answer != QtWidgets.QMessageBox.StandardButton.Yes:
                    self.statusBar().showMessage("export cancelled: nothing was overwritten", 8000)
                    return []
                written = self.export(request, overwrite=True)
        except (TaggerError, ValueError) as e:
            self.show_error(f"export failed: {e}", key="export")
            return []
        self.clear_error("export")
        self.statusBar().showMessage(f"wrote {len(written)} files to {request.out_dir}", 10000)
        return written

    def _settle_unsaved(self, action: str, keys: list[int] | None = None) -> str:
        """Before `action` loses live results that no export or recording holds (Document.unsaved: sessions,
        or the review marks made on an unrecorded one since its last export; of `keys`, None: all, the running
        one too), ask "Export…, Discard, Cancel" until none is left: -> "proceed" (nothing unsaved, or all
        exported now), "discard" or "cancel" (also when an export dialog is cancelled)."""
        while unsaved := [(k, text) for k, text in self.document.unsaved() if keys is None or k in keys]:
            answer = ask_unsaved(self, [text for _, text in unsaved], action)
            if answer == Button.Discard:
                return "discard"
            if answer != Button.Save:
                return "cancel"
            key = unsaved[0][0]
            if key is not None:
                self.tabs.setCurrentWidget(self.files_view)
                self.files_view.select(key)
            if not self.export_dialog("live" if key is None else "file"):
                return "cancel"
        return "proceed"

    # ================================================================================== event loop

    def _wake(self) -> None:
        if not self.timer.isActive():
            self.timer.start()

    def _tick(self) -> None:
        t0 = time.perf_counter()
        for item in pending(self._model_results):
            if getattr(item, "request", None) != self._wanted_model:
                log.info("ignoring an older model request (%s)", getattr(item, "spec", "?"))
            elif isinstance(item, ModelReady):
                self._model_ready(item)
            elif isinstance(item, DownloadProgress):
                self._download_progress(item)
            elif isinstance(item, ModelFailed) and item.cancelled:
                self.download_cancel.setVisible(False)
                self.status_model.setText(self._model_status)
                self.statusBar().showMessage(f"download of {_model_title(item.spec)} cancelled", 8000)
                self._fill_models()
            elif isinstance(item, ModelFailed):
                self.download_cancel.setVisible(False)
                current = self.model.loaded.name if self.model else "no model"
                self.show_error(f"could not load model {item.spec or 'default'}: {item.message} "
                                f"(still using {current})", key="model")
                if self.model is None:               # files queued for it fail with its reason
                    self.analysis.set_model_error(f"could not load model {item.spec or 'default'}: "
                                                  f"{item.message}")
                self.status_model.setText(self._model_status)
                self._fill_models()
        self._loaders = [w for w in self._loaders if not w.isFinished()]
        self._drain_analysis()
        self._drain_live()
        self.file_tools.poll()
        drew = self.live_view.tick()
        if drew:
            self.redraw_ms.append(1000 * (time.perf_counter() - t0))
        if (self.document.live_state == "idle" and not self.live_control.busy and not self.analysis.busy
                and not self._loaders and self._analysis_results.empty() and self._model_results.empty()
                and self._live_results.empty() and not self.file_tools.busy):
            self.timer.stop()                      # idle: no CPU until something starts

    # ================================================================================ drag and drop

    def dragEnterEvent(self, event: QtGui.QDragEnterEvent) -> None:
        if any(u.isLocalFile() for u in event.mimeData().urls()):
            event.acceptProposedAction()

    def dropEvent(self, event: QtGui.QDropEvent) -> None:
        paths = [u.toLocalFile() for u in event.mimeData().urls() if u.isLocalFile()]
        if paths:
            event.acceptProposedAction()
            self.open_paths(paths)

    # ======================================================================================== close

    def closeEvent(self, event: QtGui.QCloseEvent) -> None:
        """Quit: ask about unsaved live results, then close the session on LiveControl's thread, waiting
        LIVE_CLOSE_WAIT_S at most (a sound server that hangs PortAudio does not hang the quit)."""
        if self._closed:
            event.accept()
            return
        self.timer.stop()                          # nothing new arrives while the question is open
        if self._settle_unsaved("quitting") == "cancel":
            event.ignore()
            self._wake()
            return
        self._closed = True
        self.document.forget_live()                # LiveControl closes it (the running one too)
        if not self.live_control.shutdown(LIVE_CLOSE_WAIT_S):
            log.warning("the live session did not close within %.0f s (the audio device does not answer); "
                        "quitting without it", LIVE_CLOSE_WAIT_S)
        self.analysis.shutdown()
        self.file_tools.close()
        for loader in self._loaders:
            if isinstance(loader, HubDownloader):
                loader.cancel()                    # quitting does not wait for a download
            loader.wait(30000)
        self.settings.hop_s = self.hop.value()
        self._sync_settings()
        self.qsettings.setValue("geometry", self.saveGeometry())
        save_settings(self.qsettings, self.settings)
        super().closeEvent(event)


ENGINE_TITLES = {
    "backend": {"auto": "Auto (OpenVINO where installed)", "torch": "PyTorch", "openvino": "OpenVINO"},
    "precision": {"auto": "Auto (bf16 where the CPU has it and the scores stay within 0.02)",
                  "fp32": "fp32 (exact)", "bf16": "bf16 (fast on AVX512-BF16/AMX CPUs)"},
}


def _model_title(spec: str) -> str:
    """A model as the status bar names it: the picker's title of a Hub model, a file's name, or the default."""
    if spec in HUB_MODELS:
        return HUB_MODELS[spec][0]
    return Path(spec).name if spec else "the default model"


def default_window_size(available: QtCore.QRect) -> QtCore.QSize:
    """1280x800, or less on a smaller screen: the available area (without panels and docks) less room for
    the title bar and frame, so a 1366x768 laptop shows the whole window."""
    return QtCore.QSize(min(1280, available.width() - 16), min(800, available.height() - 48))

