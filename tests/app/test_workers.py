"""The window's workers take the engine from the settings and say which one runs (issue 11)."""
from __future__ import annotations

import queue
import sys

import pytest

import core.backends as backends
from app.workers import AnalysisWorker, JobDone, ModelFailed, ModelLoader, ModelReady

needs_openvino = pytest.mark.skipif(backends.import_openvino() is None,
                                    reason="openvino is not installed (pip install '.[fast]')")


def load(backend: str, precision: str) -> ModelReady | ModelFailed:
    results: queue.Queue = queue.Queue()
    ModelLoader("", "cpu", results, backend=backend, precision=precision).run()   # the thread's body, here
    return results.get_nowait()


@needs_openvino
def test_the_loaded_engine_is_the_one_files_are_analysed_with(esc50_clip):
    ready = load("openvino", "fp32")
    assert isinstance(ready, ModelReady) and ready.note is None
    assert ready.inference == "openvino fp32, 1 thread"
    assert (ready.options.backend, ready.options.precision) == ("openvino", "fp32")
    results: queue.Queue = queue.Queue()
    worker = AnalysisWorker(results)
    worker.set_model(ready.loaded, ready.options, 1.0)
    worker.submit(esc50_clip)
    try:
        while not isinstance(item := results.get(timeout=60), JobDone):
            pass
    finally:
        assert worker.shutdown()
    assert item.timeline.extra["inference"] == "openvino fp32, 1 thread"


def test_a_missing_backend_loads_on_torch_with_a_note(monkeypatch):
    monkeypatch.setitem(sys.modules, "openvino", None)
    ready = load("openvino", "auto")
    assert ready.inference == "torch fp32, 1 thread"
    assert ready.note.startswith("openvino is not installed, running on torch")


def test_a_precision_the_cpu_cannot_run_is_a_failed_load_with_the_reason(monkeypatch):
    monkeypatch.setattr(backends, "cpu_flags", lambda: frozenset({"avx2"}))
    failed = load("torch", "bf16")
    assert isinstance(failed, ModelFailed) and "no native bf16" in failed.message


@needs_openvino
def test_the_window_says_which_engine_runs_and_the_model_menu_changes_it(qtbot, qsettings, scene):
    """The badge names backend, precision and threads; Model ▸ Backend reloads the model for the choice, which
    is remembered, and a file analysed then is tagged by that engine with the same events as with torch."""
    from tests.app.conftest import NoAudio
    from tests.app.test_window import analysed, close, open_window
    qsettings.setValue("backend", '"torch"')
    qsettings.setValue("precision", '"fp32"')
    window = open_window(qtbot, qsettings, NoAudio())
    assert window.badge.text() == "CPU · torch fp32, 1 thread"
    window.open_paths([str(scene)])
    torch_result = list(analysed(qtbot, window).values())[0]
    window.engine_actions["backend", "openvino"].trigger()
    qtbot.waitUntil(lambda: window.model.inference.startswith("openvino"), timeout=120_000)
    assert window.badge.text() == "CPU · openvino fp32, 1 thread"
    assert window.engine_actions["backend", "openvino"].isChecked()
    window.open_paths([str(scene)])
    ov_result = list(analysed(qtbot, window, count=2).values())[1]
    assert ov_result.timeline.extra["inference"] == "openvino fp32, 1 thread"
    assert [(e.label_index, e.start_s, e.end_s) for e in ov_result.events] == \
        [(e.label_index, e.start_s, e.end_s) for e in torch_result.events]
    close(window)
    assert window.settings.backend == "openvino"
