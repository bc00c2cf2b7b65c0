"""The main window: model and run controls, the Live and Files tabs, the label panel, export, status.

GUI thread only. Work happens in app.workers (model loading and file analysis on QThreads, live tagging
on the tagger's thread); one ~30 Hz QTimer drains their queues, and runs only while something is going
on, so an idle window costs no CPU. Every failure (no microphone, unreadable file, broken model file,
full disk) is shown in words in the banner and the app keeps working with what it had.
"""
from __future__ import annotations

import logging
import queue
import time
from pathlib import Path

import numpy as np
from PySide6 import QtCore, QtGui, QtWidgets

from core.inputs import collect_audio, file_dialog_filter
from core.capture import CaptureError, FilePlayback
from core.config import EventConfig, FeatureConfig
from core.errors import ExportExistsError, TaggerError
from core.events import rule_for, thresholds_for
from core.modelfile import shipped_models
from core.session import LiveFrames, LiveSession, LiveTimeline
from core.tagger import TagFrame, TaggerEnd, TaggerState
from app.controls import ExportDialog, ExportRequest, LabelPanel
from app.exporting import export_scopes, write_export
from app.files_view import FileResult, FilesView
from app.live_view import PLAY_FILE, LiveView
from app.settings import AppSettings, default_qsettings, load_settings, save_settings
from app.toolbar import OPEN_HF_DIR, OPEN_MODEL, RunBar
from app.workers import (AnalysisWorker, JobDone, JobFailed, JobProgress, ModelFailed, ModelLoader, ModelReady,
                         SystemAudio)

__all__ = ["MainWindow", "default_window_size"]

log = logging.getLogger(__name__)

AUDIO_FILTER = file_dialog_filter()
TICK_MS = 33                 # ~30 redraws per second
BANNER_LINES = 4             # the banner shows the newest few errors whose cause is not resolved yet
STATS_EVERY_S = 0.5


class MainWindow(QtWidgets.QMainWindow):
    def __init__(self, qsettings: QtCore.QSettings | None = None, model_spec: str | None = None,
                 compute: str | None = None, audio=None):
        super().__init__()
        self.setWindowTitle("AST Tagger")
        self.setAcceptDrops(True)
        self.qsettings = qsettings or default_qsettings()
        self.settings: AppSettings = load_settings(self.qsettings)
        if model_spec is not None:
            self.settings.model_spec = model_spec
        if compute is not None:
            self.settings.compute = compute
        self.audio = audio or SystemAudio()
        self.errors: list[str] = []                 # every message shown in the banner (tests read it)
        self._banner_items: dict[str, str] = {}     # cause -> message, oldest first (show_error's key)
        self.model: ModelReady | None = None
        self._loaders: list[ModelLoader] = []
        self._model_results: queue.Queue = queue.Queue()
        self._analysis_results: queue.Queue = queue.Queue()
        self.analysis = AnalysisWorker(self._analysis_results)
        self.session: LiveSession | None = None
        self.live_result = None                     # (Timeline, events) of the last finished live session
        self._restart_live = False
        self._wanted_model = 0
        self._last_stats = 0.0
        self.redraw_ms: list[float] = []            # GUI time per tick while drawing (bench/bench_gui.py)

        self._build()
        self.timer = QtCore.QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._tick)
        self.refresh_devices(refresh=False)
        self.load_model(self.settings.model_spec)

    # ================================================================================= construction

    def _build(self) -> None:
        bar = RunBar(self.settings, self)
        self.addToolBar(bar)
        self.run_bar = bar
        self.model_box, self.compute_box, self.badge = bar.model_box, bar.compute_box, bar.badge
        self.hop, self.on, self.off = bar.hop, bar.on, bar.off
        self._fill_models()
        self.model_box.activated.connect(self._model_chosen)
        self.compute_box.activated.connect(self._compute_chosen)
        self.hop.editingFinished.connect(self._hop_changed)
        self.on.valueChanged.connect(self._thresholds_changed)
        self.off.valueChanged.connect(self._thresholds_changed)

        self.banner = QtWidgets.QLabel()
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(QtCore.Qt.TextInteractionFlag.TextSelectableByMouse)
        self.banner.setStyleSheet("QLabel { background: #8b1e1e; color: white; padding: 6px; }")
        self.banner.hide()
        self.banner_close = QtWidgets.QToolButton(text="✕")
        self.banner_close.clicked.connect(self._hide_banner)
        self.banner_close.hide()
        self.tabs = QtWidgets.QTabWidget()
        self.live_view = LiveView()
        self.live_view.start_requested.connect(self.start_live)
        self.live_view.stop_requested.connect(self.stop_live)
        self.live_view.refresh_requested.connect(lambda: self.refresh_devices(refresh=True))
        self.files_view = FilesView()
        self.files_view.cancel_requested.connect(self.analysis.cancel)
        self.files_view.open_requested.connect(self._open_files_dialog)
        self.files_view.retry_requested.connect(lambda path: self.open_paths([path]))
        self.files_view.removed.connect(lambda path: self.clear_error(f"file:{path}"))
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

        self.labels_panel = LabelPanel()
        self.labels_panel.changed.connect(self._labels_changed)
        self.labels_panel.invalid.connect(self.show_error)
        dock = QtWidgets.QDockWidget("Labels", self)
        dock.setObjectName("labels")
        dock.setWidget(self.labels_panel)
        self.addDockWidget(QtCore.Qt.DockWidgetArea.RightDockWidgetArea, dock)

        menu = self.menuBar().addMenu("&File")
        menu.addAction("&Open files…", QtGui.QKeySequence.StandardKey.Open, self._open_files_dialog)
        menu.addAction("Open &folder…", self._open_folder_dialog)
        menu.addAction("Start/stop &listening", QtGui.QKeySequence("Ctrl+L"), self.live_view.start.click)
        self.export_action = menu.addAction("&Export…", QtGui.QKeySequence("Ctrl+E"), self.export_dialog)
        menu.addSeparator()
        menu.addAction("&Quit", QtGui.QKeySequence.StandardKey.Quit, self.close)
        models = self.menuBar().addMenu("&Model")
        models.addAction("Open model &file…", lambda: self._pick_model(OPEN_MODEL))
        models.addAction("Open Hugging Face &directory…", lambda: self._pick_model(OPEN_HF_DIR))
        models.addAction("Use the &default model", lambda: self.load_model(""))
        dock_action = dock.toggleViewAction()
        dock_action.setText("&Labels panel")
        self.menuBar().addMenu("&View").addAction(dock_action)

        status = self.statusBar()
        self.status_input = QtWidgets.QLabel("no input")
        self.status_model = QtWidgets.QLabel("no model")
        self.status_speed = QtWidgets.QLabel("")
        self.status_health = QtWidgets.QLabel("")
        for w in (self.status_input, self.status_model, self.status_speed, self.status_health):
            status.addPermanentWidget(w)
        screen = self.screen() or QtGui.QGuiApplication.primaryScreen()
        self.resize(default_window_size(screen.availableGeometry()) if screen else QtCore.QSize(1280, 800))
        geometry = self.qsettings.value("geometry")
        if isinstance(geometry, QtCore.QByteArray):
            self.restoreGeometry(geometry)

    def _fill_models(self) -> None:
        self.run_bar.fill_models(self.settings.recent_models,
                                 self.model.spec if self.model else self.settings.model_spec)

    @property
    def live(self) -> LiveTimeline | None:
        """The running session's event timeline (None when not listening)."""
        return self.session.live if self.session is not None else None

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
        loader = ModelLoader(spec, self.compute_box.currentData() or "auto", self._model_results)
        self._loaders.append(loader)
        self._wanted_model = loader.request          # a slower, older request must not win
        if self.model is None:
            self.analysis.set_model_error(None)      # queued files wait for this one
        self.status_model.setText(f"loading {Path(spec).name if spec else 'the default model'}…")
        loader.start()
        self._wake()

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

    def _compute_chosen(self) -> None:
        self.settings.compute = self.compute_box.currentData()
        self.load_model(self.model.spec if self.model else self.settings.model_spec)

    def _model_ready(self, ready: ModelReady) -> None:
        self.model = ready
        self.clear_error("model")
        loaded = ready.loaded
        self.settings.model_spec = ready.spec
        if ready.spec and ready.spec not in shipped_models() and ready.spec not in self.settings.recent_models:
            self.settings.recent_models = [ready.spec, *self.settings.recent_models][:8]
        self._fill_models()
        self.run_bar.set_badge(ready.device)
        self._model_status = (f"model {loaded.name}: {len(loaded.labels)} labels, window "
                              f"{loaded.features.window_s:.2f} s, loaded in {ready.load_s:.1f} s")
        self.status_model.setText(self._model_status)
        self.labels_panel.set_labels(loaded.labels, self.settings.pinned, self.settings.label_thresholds)
        self._thresholds_changed()
        self.analysis.set_model(loaded, ready.device, self.hop.value())
        if self.session is not None:
            self._restart_after_stop()

    def _event_config(self):
        """The event rule of the controls (global on/off, this model's per-label thresholds)."""
        on, off = self.on.value(), self.off.value()
        return EventConfig(on_threshold=on, off_threshold=min(off, on),
                           label_thresholds=tuple(self.labels_panel.thresholds().items()))

    def _thresholds_changed(self) -> None:
        if self.off.value() > self.on.value():
            self.off.setValue(self.on.value())       # keeps 0 <= off <= on
        self.settings.on_threshold, self.settings.off_threshold = self.on.value(), self.off.value()
        self.labels_panel.set_global_threshold(self.on.value())
        self.settings.label_thresholds = self.labels_panel.thresholds()
        config = self._event_config()
        labels = self.session.labels if self.session is not None else (self.model.loaded.labels if self.model else None)
        if labels is not None:         # a running session keeps its model's labels until it restarts
            self.live_view.set_thresholds(thresholds_for(labels, rule_for(config, labels)))
        self.files_view.refresh_events(config, self.labels_panel.pinned_ids())

    def _labels_changed(self) -> None:
        self.settings.pinned = self.labels_panel.pinned_ids()
        if self.model is None:
            return
        self.files_view.set_pinned(self.settings.pinned)
        new = self.labels_panel.thresholds()
        if new != self.settings.label_thresholds:
            self._thresholds_changed()
        self.live_view.update_rows(self.labels_panel.allowed(), self.labels_panel.pinned())

    def _hop_changed(self) -> None:
        if abs(self.hop.value() - self.settings.hop_s) < 1e-9:
            return
        self.hop.setValue(round(self.hop.value() * 100) / 100)       # a whole number of 10 ms frames
        self.settings.hop_s = self.hop.value()
        if self.model is not None:
            self.analysis.set_model(self.model.loaded, self.model.device, self.settings.hop_s)
        if self.session is not None:
            self._restart_after_stop()

    # ========================================================================================= live

    def refresh_devices(self, refresh: bool = True) -> None:
        try:
            devices = self.audio.list_devices(refresh=refresh and self.session is None)
            message = "" if devices else ("No audio input found: connect a microphone (or start the sound "
                                          "server) and press ⟳, or choose 'A file, played as live input…' "
                                          "in the Input list. Files can still be analysed.")
        except CaptureError as e:
            devices, message = [], str(e)
        self.live_view.set_devices(devices, self.settings.input_device, message)
        self.status_input.setText(f"input: {devices[0].name}" if devices else "no input device")

    def start_live(self) -> None:
        if self.model is None:
            self.show_error("no model is loaded yet; wait for it (or pick one) and press Start again")
            return
        choice = self.live_view.choice()
        if choice is None:
            self.show_error("no audio input device to listen to; connect one and press ⟳, or choose "
                            "'A file, played as live input…'")
            return
        if choice == PLAY_FILE:
            path, _ = QtWidgets.QFileDialog.getOpenFileName(
                self, "Play a file as live input", self.settings.export_dir, AUDIO_FILTER)
            if not path:
                return
        loaded = self.model.loaded
        try:
            config = self._event_config()
            source = FilePlayback(path) if choice == PLAY_FILE else self.audio.open(choice)
            device = source.device
            session = LiveSession(loaded, self.model.device, source, self.hop.value(), config, display=True)
            session.start()
        except (TaggerError, ValueError) as e:
            self.show_error(f"could not start listening: {e}", key="live")
            return
        self.session = session
        self.clear_error("live")
        if choice != PLAY_FILE:
            self.settings.input_device = device.name
        self.live_view.begin(loaded.features, loaded.labels, session.tagger.window_s, session.tagger.hop_s,
                             thresholds_for(loaded.labels, config))
        self.live_view.set_running(True)
        self.status_input.setText(f"input: {device.name}, {source.rate_hz} Hz"
                                  + ("" if source.rate_hz == 16000 else " → 16000 Hz"))
        self._wake()

    def stop_live(self) -> None:
        """End the stream: the tagger scores the tail, then TaggerEnd arrives and the session closes."""
        if self.session is not None:
            self.session.stop()
            self.live_view.set_running(True, stopping=True)

    def _restart_after_stop(self) -> None:
        self._restart_live = True
        self.stop_live()

    def _drain_live(self) -> None:
        session = self.session
        session.check()          # a lost device ends the stream here; the tagger then puts TaggerEnd
        allowed, pinned = self.labels_panel.allowed(), self.labels_panel.pinned()
        for item in _pending(session.results):
            if isinstance(item, LiveFrames):
                self.live_view.add_frames(item.start_frame, item.frames, item.level_db)
            elif isinstance(item, TagFrame):
                self.live_view.add_events(session.add(item))
                self.live_view.add_scores(item.index, item.start_s, item.scores, session.open_labels(), allowed, pinned)
            elif isinstance(item, TaggerEnd):
                self._live_ended(item)
                return
        now = time.monotonic()
        if now - self._last_stats > STATS_EVERY_S:
            self._last_stats = now
            self._show_stats()

    def _show_stats(self) -> None:
        if self.session is None:
            return
        stats = self.session.stats()
        if self.session.tagger.state == TaggerState.WARMING_UP:
            self.live_view.set_warmup(self.session.tagger.warmup_progress)
        if stats.inference_s:
            inference = 1000 * float(np.median(stats.inference_s[-10:]))
            lag = f", lag {1000 * float(np.median(stats.lags_s[-10:])):.0f} ms" if stats.lags_s else ""
            self.status_speed.setText(f"inference {inference:.1f} ms/window{lag}")
        self.status_health.setText(f"overflows {self.session.source.input_overflows}, skipped "
                                   f"{stats.windows_skipped}, lost {stats.windows_lost}")

    def _live_ended(self, end: TaggerEnd) -> None:
        self._show_stats()
        result = self.session.finish(end)
        self.live_view.add_events(result.unreported)
        self.live_result = (result.timeline, result.events)
        self.session = None
        self.live_view.set_running(False)
        if end.error:
            self.show_error(f"listening stopped: {end.error}. What was heard before is kept; "
                            "File ▸ Export… writes it.", key="live")
        if self._restart_live and not end.error:
            self._restart_live = False
            self.start_live()
        self._restart_live = False

    # ======================================================================================== files

    def open_paths(self, paths: list[str]) -> list[int]:
        """Queue audio files (folders: every audio file under them) for analysis; returns job ids."""
        jobs = []
        found = collect_audio([str(p) for p in paths])
        if not found:
            self.show_error(f"no audio files found in {', '.join(str(p) for p in paths)}")
        for path, _ in found:       # the worker reads each file (even its header): never the GUI thread
            job = self.analysis.submit(path)
            self.files_view.add_job(job, str(path))
            jobs.append(job)
        if jobs:
            self.tabs.setCurrentWidget(self.files_view)
            self._wake()
        return jobs

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
        for item in _pending(self._analysis_results):
            if isinstance(item, JobProgress):
                self.files_view.set_progress(item.job, item.done_s, item.total_s)
            elif isinstance(item, JobDone):
                tl = item.timeline
                result = FileResult(item.job, item.path, tl.duration_s, tl, item.spectrogram,
                                    item.frames_per_column * 0.01, self._features_of(tl), status="done")
                self.files_view.set_done(item.job, result, self._event_config())
                self.clear_error(f"file:{item.path}")
                self.statusBar().showMessage(f"{Path(item.path).name}: {tl.duration_s:.1f} s analysed in "
                                             f"{item.seconds:.1f} s", 8000)
            elif isinstance(item, JobFailed):
                self.files_view.set_failed(item.job, item.message, item.cancelled)
                if not item.cancelled and item.job in self.files_view.results:
                    self.show_error(f"{self.files_view.display_name(item.job)}: {item.message}",
                                    key=f"file:{item.path}")

    def _features_of(self, timeline):
        model = self.model.loaded if self.model else None
        if model is not None and model.name == timeline.model_name:
            return model.features
        return FeatureConfig(num_frames=round(timeline.window_s * 100))

    # ======================================================================================= export

    def _current_file(self) -> FileResult | None:
        return self.files_view.results.get(self.files_view.current) if self.files_view.current else None

    def _live_timelines(self) -> dict[str, object]:
        """'live': the running session (a snapshot) or else the last finished one; 'last': the last
        finished session while another runs (e.g. before a model change restarted the stream)."""
        last = self.live_result[0] if self.live_result is not None else None
        if self.session is not None:
            running = self.session.timeline()
            return {"live": running, **({"last": last} if last is not None else {})}
        return {"live": last} if last is not None else {}

    def export_scopes(self) -> dict[str, tuple[str, str]]:
        return export_scopes(self._current_file(), self.files_view.done_results(), self._live_timelines())

    def export(self, request: ExportRequest, overwrite: bool = False) -> list[Path]:
        """Write the request (see app.exporting.write_export)."""
        return write_export(request, self._event_config(), self._current_file(), self.files_view.done_results(),
                            self._live_timelines().get(request.scope), overwrite)

    def export_dialog(self) -> None:
        scopes = self.export_scopes()
        if not scopes:
            self.show_error("nothing to export yet: analyse a file or listen first")
            return
        dialog = ExportDialog(scopes, self.settings.export_formats, self.settings.export_dir, self)
        if self.tabs.currentWidget() is self.live_view and "live" in scopes:
            dialog.scope.setCurrentIndex(dialog.scope.findData("live"))
        if dialog.exec() != QtWidgets.QDialog.DialogCode.Accepted:
            return
        self.run_export(dialog.request())

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

    # ================================================================================== event loop

    def _wake(self) -> None:
        if not self.timer.isActive():
            self.timer.start()

    def _tick(self) -> None:
        t0 = time.perf_counter()
        for item in _pending(self._model_results):
            if getattr(item, "request", None) != self._wanted_model:
                log.info("ignoring an older model request (%s)", getattr(item, "spec", "?"))
            elif isinstance(item, ModelReady):
                self._model_ready(item)
            elif isinstance(item, ModelFailed):
                current = self.model.loaded.name if self.model else "no model"
                self.show_error(f"could not load model {item.spec or 'default'}: {item.message} "
                                f"(still using {current})", key="model")
                if self.model is None:               # files queued for it fail with its reason
                    self.analysis.set_model_error(f"could not load model {item.spec or 'default'}: "
                                                  f"{item.message}")
                self.status_model.setText(self._model_status if self.model else "no model loaded")
                self._fill_models()
        self._loaders = [w for w in self._loaders if not w.isFinished()]
        self._drain_analysis()
        if self.session is not None:
            self._drain_live()
        drew = self.live_view.tick()
        if drew:
            self.redraw_ms.append(1000 * (time.perf_counter() - t0))
        if (self.session is None and not self.analysis.busy and not self._loaders
                and self._analysis_results.empty() and self._model_results.empty()):
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
        self.timer.stop()
        if self.session is not None:
            self.session.close()
            self.session = None
        self.analysis.shutdown()
        for loader in self._loaders:
            loader.wait(30000)
        self.settings.hop_s = self.hop.value()
        self.qsettings.setValue("geometry", self.saveGeometry())
        save_settings(self.qsettings, self.settings)
        super().closeEvent(event)


def default_window_size(available: QtCore.QRect) -> QtCore.QSize:
    """1280x800, or less on a smaller screen: the available area (without panels and docks) less room for
    the title bar and frame, so a 1366x768 laptop shows the whole window."""
    return QtCore.QSize(min(1280, available.width() - 16), min(800, available.height() - 48))


def _pending(results: queue.Queue):
    """Everything a worker has put on its queue so far, without waiting."""
    while True:
        try:
            yield results.get_nowait()
        except queue.Empty:
            return
