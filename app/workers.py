"""The seam between Qt and core: workers that drive core objects off the GUI thread.

Threads: `ModelLoader` (and `HubDownloader`, which downloads a Hub model first) and `AnalysisWorker` are
QThreads; a live session is core.session.LiveSession (the one `listen` drives too: a source whose audio
thread writes its ring, and a StreamingTagger on its own thread), and `LiveControl`'s thread makes every call
of it that can block (open, start, stop, finish); `SystemAudio` and `FileAudio` are the sources the window
can open. None of them touches a widget: each puts small immutable messages (frozen dataclasses, array
copies) on its own `queue.Queue`, which the GUI thread drains on its ~30 Hz timer (MainWindow). The GUI
thread never runs the model or a decoder, and never waits on PortAudio, the disk or another thread.
"""
from __future__ import annotations

import itertools
import logging
import math
import os
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from PySide6.QtCore import QThread

from core.analyze import AnalysisCancelled, Analyzer
from core.audio_io import probe
from core.capture import Capture, FilePlayback, InputDevice, list_input_devices, refresh_devices
from core.config import EventConfig, InferenceOptions
from core.errors import TaggerError
from core.hub import DownloadCancelled, download, is_hub_id
from core.modelfile import LoadedModel, load_model
from core.backends import auto_threads
from core.scorer import Scorer
from core.session import AudioSource, LiveResult, LiveSession, new_recording
from core.tagger import TaggerEnd
from core.timeline import Timeline
from app.spectrogram_view import quantize, spectrogram_levels

__all__ = ["ModelReady", "ModelFailed", "ModelLoader", "DownloadProgress", "HubDownloader", "model_loader",
           "SystemAudio", "FileAudio", "LiveRequest", "LiveStarted", "LiveStartFailed", "LiveFinished", "LiveControl",
           "JobProgress", "JobDone", "JobFailed", "AnalysisWorker", "set_cpu_threads", "pending", "MAX_DISPLAY_COLUMNS"]

log = logging.getLogger(__name__)

MAX_DISPLAY_COLUMNS = 6000   # a file's spectrogram is max-pooled in time to at most this many columns


def set_cpu_threads() -> int:
    """Torch CPU threads for the app's work outside the model (fbank, display): all cores but one (at most 4),
    one stays free for audio and the GUI. The model's own threads are each Scorer's (core.backends' policy)."""
    n = max(1, min(4, (os.cpu_count() or 2) - 1))   # more threads do not help batch-1 windows
    torch.set_num_threads(n)
    return n


def pending(results: queue.Queue):
    """Everything a worker has put on its queue so far, without waiting (the GUI thread's drain)."""
    while True:
        try:
            yield results.get_nowait()
        except queue.Empty:
            return


def _message(e: BaseException) -> str:
    """The words a user sees for a failure: our errors carry their own text, others get their type."""
    return str(e) if isinstance(e, (TaggerError, OSError, ValueError)) and str(e) else f"{type(e).__name__}: {e}"


# ---------------------------------------------------------------------------------------------- models

@dataclass(frozen=True)
class ModelReady:
    request: int
    spec: str                # what the user picked ("" = shipped default)
    loaded: LoadedModel
    device: torch.device     # where inference runs (the CPU/GPU badge)
    load_s: float
    options: InferenceOptions   # resolved backend and precision: pass it where `device` went (LiveSession,
                                # AnalysisWorker.set_model) so that their scorers run the same, without a probe
    inference: str           # Scorer.describe(): "openvino bf16, 1 thread", for the badge
    note: str | None = None  # one line when the choice differs from the wish (backend missing, bf16 refused)


@dataclass(frozen=True)
class ModelFailed:
    request: int
    spec: str
    message: str
    cancelled: bool = False   # the user cancelled its download (HubDownloader.cancel)


@dataclass(frozen=True)
class DownloadProgress:
    request: int
    spec: str                # the Hub id being downloaded
    done_bytes: int
    total_bytes: int


class ModelLoader(QThread):
    """Loads one model (a file, a Hugging Face directory, an original .pth, a shipped name) and prepares its
    engine (backend and precision as asked, "auto" by default: a first OpenVINO conversion and the bf16
    probe happen here, off the GUI thread), then puts ModelReady or ModelFailed on `results`."""

    _requests = itertools.count(1)

    def __init__(self, spec: str, device: str, results: queue.Queue, backend: str = "auto", precision: str = "auto"):
        super().__init__()
        self.spec, self.results = spec, results
        self.options = InferenceOptions(device, backend, precision)
        self.request = next(self._requests)

    def run(self) -> None:
        t0 = time.perf_counter()
        try:
            loaded = load_model(self.spec or None)
            scorer = Scorer(loaded, self.options)   # fails here on a bad device or an unsupported precision
            self.results.put(ModelReady(self.request, self.spec, loaded, scorer.device, time.perf_counter() - t0,
                                        scorer.options, scorer.describe(), scorer.note))
        except Exception as e:  # noqa: BLE001 - any failure is shown in the window; the old model stays
            log.warning("loading model %r failed: %s", self.spec, e)
            self.results.put(ModelFailed(self.request, self.spec, _message(e)))


class HubDownloader(ModelLoader):
    """A ModelLoader for a Hub id (`MIT/ast-finetuned-audioset-10-10-0.4593`): downloads the model into the
    Hugging Face cache first, putting DownloadProgress on `results` (at most every PROGRESS_EVERY_S), then
    loads it from there; a model already cached loads at once with no request. cancel() (any thread) stops
    the download within one chunk: ModelFailed with cancelled=True."""

    PROGRESS_EVERY_S = 0.1

    def __init__(self, spec: str, device: str, results: queue.Queue, backend: str = "auto", precision: str = "auto"):
        super().__init__(spec, device, results, backend, precision)
        self._cancel = threading.Event()
        self._last_progress = 0.0

    def cancel(self) -> None:
        self._cancel.set()

    def _progress(self, done: int, total: int) -> None:
        now = time.monotonic()
        if now - self._last_progress >= self.PROGRESS_EVERY_S or done >= total:
            self._last_progress = now
            self.results.put(DownloadProgress(self.request, self.spec, done, total))

    def run(self) -> None:
        try:
            if not Path(self.spec).expanduser().exists():     # a local folder of that name comes first
                download(self.spec, self._progress, self._cancel)
        except DownloadCancelled as e:
            self.results.put(ModelFailed(self.request, self.spec, str(e), cancelled=True))
            return
        except Exception as e:  # noqa: BLE001 - shown in the window; the old model stays
            log.warning("downloading model %r failed: %s", self.spec, e)
            self.results.put(ModelFailed(self.request, self.spec, _message(e)))
            return
        super().run()             # load_model(spec) finds every file in the cache now


def model_loader(spec: str, device: str, results: queue.Queue, backend: str = "auto",
                 precision: str = "auto") -> ModelLoader:
    """The loader for what the user picked: a HubDownloader for a Hub id that is not a local path (checked
    on the worker), else a ModelLoader. Not started."""
    return (HubDownloader if is_hub_id(spec) else ModelLoader)(spec, device, results, backend, precision)


# ------------------------------------------------------------------------------------------------ live

class SystemAudio:
    """The machine's inputs through PortAudio (core.capture). Tests pass another backend to MainWindow."""

    def list_devices(self, refresh: bool = False) -> list[InputDevice]:
        """Input devices, the default first; CaptureError when PortAudio is missing or fails."""
        if refresh:
            refresh_devices()
        return list_input_devices()

    def open(self, device: InputDevice) -> AudioSource:
        return Capture(device)       # CaptureError with the device and the reason


class FileAudio:
    """An audio backend whose one input is a file played in real time (x speed): demos, the README
    screenshots, benchmarks and tests on machines without a sound card (core.capture.FilePlayback)."""

    def __init__(self, path: str | Path, **playback):
        self.path, self.playback = Path(path), playback
        self.opened: list[FilePlayback] = []

    def list_devices(self, refresh: bool = False) -> list[InputDevice]:
        return [FilePlayback.device_for(self.path)]

    def open(self, device: InputDevice) -> FilePlayback:
        source = FilePlayback(self.path, **self.playback)
        self.opened.append(source)
        return source


@dataclass(frozen=True)
class LiveRequest:
    """What a new live session needs. `open_source` runs on the control thread: it opens a device or reads a
    whole file, either of which can take a while."""

    open_source: Callable[[], AudioSource]
    loaded: LoadedModel
    options: InferenceOptions          # the engine the model was loaded for (ModelReady.options)
    hop_s: float
    event_config: EventConfig          # the session's rule, already narrowed to this model's labels
    record_dir: Path | None = None     # also record what the model hears, as a FLAC in this folder


@dataclass(frozen=True)
class LiveStarted:
    request: int
    session: LiveSession     # handed to the GUI thread, which drains its queue from now on


@dataclass(frozen=True)
class LiveStartFailed:
    request: int
    message: str


@dataclass(frozen=True)
class LiveFinished:
    session: LiveSession     # closed: its tagger joined, its recording complete
    result: LiveResult


class LiveControl:
    """The one thread that makes the live session's calls that can block: opening the source, starting it,
    stopping it (PortAudio stop/close, which hung the window when the sound server died), finishing it
    (joining the tagger, closing the recording). Commands run in order, so a restart starts after the old
    session finished. Outcomes go to `results` (LiveStarted/LiveStartFailed, LiveFinished).

    A session belongs to one thread at a time: the GUI thread drains it (LiveSession.add) between LiveStarted
    and the TaggerEnd it hands to finish(); stop() only ends the source, which the GUI then no longer polls.
    """

    _requests = itertools.count(1)

    def __init__(self, results: queue.Queue):
        self.results = results
        self._commands: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._open: set[LiveSession] = set()       # control thread: started and not finished yet
        self._thread: threading.Thread | None = None

    # GUI thread
    def start(self, request: LiveRequest) -> int:
        """Open and start a session; LiveStarted or LiveStartFailed with the returned number follows."""
        number = next(self._requests)
        self._submit(lambda: self._start(number, request))
        return number

    def stop(self, session: LiveSession) -> None:
        """End the session's stream: its tagger scores the tail and puts TaggerEnd on the session's queue."""
        self._submit(session.stop)

    def finish(self, session: LiveSession, end: TaggerEnd) -> None:
        """After its TaggerEnd: close the session; LiveFinished follows."""
        self._submit(lambda: self._finish(session, end))

    @property
    def busy(self) -> bool:
        """Commands not finished yet (the GUI keeps draining `results` until they are)."""
        with self._lock:
            return self._in_flight > 0

    def shutdown(self, timeout_s: float) -> bool:
        """Close every session still open (no tail), after the commands before; wait at most timeout_s.
        False: the thread is still stuck (e.g. in a PortAudio call); it is a daemon and dies with the app."""
        if self._thread is None:
            return True
        self._commands.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _submit(self, command: Callable[[], None]) -> None:
        with self._lock:
            self._in_flight += 1
        self._commands.put(command)
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-control", daemon=True)
            self._thread.start()

    # control thread
    def _run(self) -> None:
        while (command := self._commands.get()) is not None:
            try:
                command()
            except Exception:  # noqa: BLE001 - a bug here must not end the thread that closes sessions
                log.exception("a live-session command failed")
            finally:
                with self._lock:
                    self._in_flight -= 1
        for session in list(self._open):
            session.close()

    def _start(self, number: int, request: LiveRequest) -> None:
        session, recorder = None, None
        try:
            source = request.open_source()
            if request.record_dir is not None:
                recorder = new_recording(request.record_dir, datetime.now())
            session = LiveSession(request.loaded, request.options, source, request.hop_s, request.event_config,
                                  recorder, display=True)
            session.start()
        except Exception as e:  # noqa: BLE001 - CaptureError, AudioError, OSError: said in the window
            if session is not None:
                session.close()
            if recorder is not None:
                recorder.close()
                recorder.path.unlink(missing_ok=True)      # nothing was recorded
            self.results.put(LiveStartFailed(number, _message(e)))
            return
        self._open.add(session)
        self.results.put(LiveStarted(number, session))

    def _finish(self, session: LiveSession, end: TaggerEnd) -> None:
        result = session.finish(end)
        self._open.discard(session)
        self.results.put(LiveFinished(session, result))


# --------------------------------------------------------------------------------------- file analysis

@dataclass(frozen=True)
class JobProgress:
    job: int
    done_s: float
    total_s: float


@dataclass(frozen=True)
class JobDone:
    job: int
    path: str
    timeline: Timeline
    spectrogram: np.ndarray   # (F, C) uint8 display image: log-mel max-pooled over `frames_per_column`
                              # 10 ms frames, quantized at the model's fixed levels (64 kB per 5 s clip)
    frames_per_column: int
    seconds: float            # wall time of the analysis


@dataclass(frozen=True)
class JobFailed:
    job: int
    path: str
    message: str
    cancelled: bool = False


@dataclass
class _Job:
    job: int
    path: str
    cancel: threading.Event = field(default_factory=threading.Event)


class AnalysisWorker(QThread):
    """Analyses queued files one after another with the current model; one cancel flag per job.

    Jobs submitted before the first model is ready wait for it (files given on the command line are queued
    right after the window opens); if that model fails to load, they fail with its reason.
    """

    _jobs = itertools.count(1)

    def __init__(self, results: queue.Queue):
        super().__init__()
        self.results = results
        self._todo: queue.Queue = queue.Queue()
        self._pending: dict[int, _Job] = {}
        self._lock = threading.Lock()
        self._model: tuple[LoadedModel, InferenceOptions | torch.device, float] | None = None
        self._scorer: tuple[tuple, Scorer] | None = None     # worker thread: kept across jobs (_scorer_for)
        self._no_model: str | None = None       # why no model will come (its load failed); None: wait
        self._changed = threading.Condition(self._lock)   # a model, a model failure, a cancel or shutdown

    # GUI thread
    def set_model(self, loaded: LoadedModel, options: InferenceOptions | torch.device, hop_s: float) -> None:
        """Jobs that start from now on use this model (a running job finishes with its own); options:
        ModelReady.options (a bare device: the model exactly, torch fp32). A job started while a live tagger
        runs takes one CPU thread (core.backends' thread policy)."""
        with self._lock:
            self._model, self._no_model = (loaded, options, hop_s), None
            self._changed.notify_all()

    def set_model_error(self, message: str | None) -> None:
        """No model is coming (`message` says why; jobs waiting for one fail with it), or None: one is
        loading again, so new jobs wait for it."""
        with self._lock:
            self._no_model = message
            self._changed.notify_all()

    def submit(self, path: str | Path) -> int:
        job = _Job(next(self._jobs), str(path))
        self._pending[job.job] = job
        self._todo.put(job)
        if not self.isRunning():
            self.start()
        return job.job

    def cancel(self, job: int) -> None:
        if job in self._pending:
            self._pending[job].cancel.set()
            with self._lock:
                self._changed.notify_all()

    def shutdown(self, timeout_s: float = 10.0) -> bool:
        for job in list(self._pending.values()):
            job.cancel.set()
        with self._lock:
            self._changed.notify_all()
        self._todo.put(None)
        return self.wait(int(timeout_s * 1000)) if self.isRunning() else True

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    # worker thread
    def run(self) -> None:
        while True:
            job = self._todo.get()
            if job is None:
                return
            try:
                self._analyze(job)
            finally:
                self._pending.pop(job.job, None)

    def _analyze(self, job: _Job) -> None:
        if job.cancel.is_set():
            self.results.put(JobFailed(job.job, job.path, "cancelled", cancelled=True))
            return
        with self._lock:       # the first model may still be loading: wait for it (or its failure)
            self._changed.wait_for(lambda: self._model is not None or self._no_model is not None
                                   or job.cancel.is_set())
            model, no_model = self._model, self._no_model
        if job.cancel.is_set():
            self.results.put(JobFailed(job.job, job.path, "cancelled", cancelled=True))
            return
        if model is None:
            self.results.put(JobFailed(job.job, job.path, no_model or "no model is loaded"))
            return
        loaded, options, hop_s = model
        t0 = time.perf_counter()
        try:
            total_frames = max(1, round((probe(job.path).duration_s or 0.0) * 100))  # None: a stream
            pool = max(1, math.ceil(total_frames / MAX_DISPLAY_COLUMNS))
            display = _Pooler(pool)
            last = [0.0]

            def progress(done_s: float, total_s: float) -> None:
                now = time.perf_counter()
                if now - last[0] > 0.1 or done_s >= total_s:
                    last[0] = now
                    self.results.put(JobProgress(job.job, done_s, total_s))

            timeline = Analyzer(self._scorer_for(loaded, options), hop_s=hop_s).analyze(
                job.path, progress, job.cancel, on_frames=display.push)
            image = quantize(display.result(loaded.features.num_mel_bins), spectrogram_levels(loaded.features))
            self.results.put(JobDone(job.job, job.path, timeline, image, pool, time.perf_counter() - t0))
        except AnalysisCancelled:
            self.results.put(JobFailed(job.job, job.path, "cancelled", cancelled=True))
        except Exception as e:  # noqa: BLE001 - shown next to the file; the queue goes on
            log.warning("analysis of %s failed: %s", job.path, e)
            self.results.put(JobFailed(job.job, job.path, _message(e)))


    def _scorer_for(self, loaded: LoadedModel, options: InferenceOptions | torch.device) -> Scorer:
        """The Scorer of the previous job when the model, the engine and the thread count it would get now are
        the same (an OpenVINO model is compiled once, not per file); the thread count follows the thread policy,
        which gives file analysis one thread while a live tagger runs (core.backends.auto_threads)."""
        key = (loaded.model, options, auto_threads(loaded.model.config))
        if self._scorer is None or self._scorer[0] != key:
            self._scorer = None                     # the old one's memory goes before the new one is built
            self._scorer = (key, Scorer(loaded, options))
        return self._scorer[1]


class _Pooler:
    """Max-pools a stream of (N, F) frames over groups of `size` frames (the display of a long file)."""

    def __init__(self, size: int):
        self.size = size
        self._columns: list[np.ndarray] = []
        self._rest: np.ndarray | None = None

    def push(self, start_frame: int, frames: np.ndarray) -> None:
        if self._rest is not None:
            frames = np.concatenate([self._rest, frames])
        whole = len(frames) // self.size * self.size
        if whole:
            self._columns.append(frames[:whole].reshape(-1, self.size, frames.shape[1]).max(axis=1))
        self._rest = frames[whole:] if whole < len(frames) else None

    def result(self, num_bins: int) -> np.ndarray:
        """(C, F) pooled frames (C = 0 for audio shorter than one frame)."""
        columns = list(self._columns)
        if self._rest is not None and len(self._rest):
            columns.append(self._rest.max(axis=0, keepdims=True))
        return np.concatenate(columns) if columns else np.zeros((0, num_bins), dtype=np.float32)
