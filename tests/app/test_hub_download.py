"""The AudioSet model in one click: the picker's entry, HubDownloader's progress and cancel on its queue (against
the local Hub of tests/core/test_hub.py), and the first start's offer."""
from __future__ import annotations

import queue
import time

from PySide6 import QtCore, QtWidgets

from app.controls import offer_audioset
from app.document import Document
from app.settings import AppSettings
from app.toolbar import HUB_MODELS, RunBar
from app.workers import DownloadProgress, HubDownloader, ModelFailed, ModelLoader, ModelReady, model_loader
from core.hub import AUDIOSET_REPO
from tests.core.test_hub import hub, hub_folder, local_hub  # noqa: F401 - the local Hub's fixtures


def messages(results: queue.Queue, loader: HubDownloader, qtbot) -> list:
    qtbot.waitUntil(loader.isFinished, timeout=60_000)
    out = []
    while not results.empty():
        out.append(results.get())
    return out


def test_the_picker_offers_audioset_by_hub_id_once(qtbot):
    bar = RunBar(AppSettings(), Document())
    qtbot.addWidget(bar)
    bar.fill_models([AUDIOSET_REPO, "/models/mine.safetensors"], AUDIOSET_REPO)
    box = bar.model_box
    texts = [box.itemText(i) for i in range(box.count())]
    assert texts.count("AST AudioSet (527 labels)") == 1 and "mine.safetensors" in texts
    index = box.findData(AUDIOSET_REPO)
    assert box.currentIndex() == index and box.itemText(index) == "AST AudioSet (527 labels)"
    assert "346 MB" in box.itemData(index, QtCore.Qt.ItemDataRole.ToolTipRole)
    results = queue.Queue()
    assert type(model_loader(AUDIOSET_REPO, "cpu", results)) is HubDownloader
    assert type(model_loader("", "cpu", results)) is ModelLoader
    assert type(model_loader("/models/mine.safetensors", "cpu", results)) is ModelLoader
    assert set(HUB_MODELS) == {AUDIOSET_REPO}


def test_hub_downloader_reports_progress_then_loads_and_the_second_time_needs_no_network(qtbot, local_hub):
    results: queue.Queue = queue.Queue()
    loader = model_loader(AUDIOSET_REPO, "cpu", results)
    loader.start()
    got = messages(results, loader, qtbot)
    progress = [m for m in got if isinstance(m, DownloadProgress)]
    ready = got[-1]
    assert isinstance(ready, ModelReady), got
    assert progress and progress[0].done_bytes == 0 and progress[-1].done_bytes == progress[-1].total_bytes > 0
    assert all(p.request == loader.request and p.spec == AUDIOSET_REPO for p in progress)
    assert ready.loaded.name == AUDIOSET_REPO and [label.name for label in ready.loaded.labels] == ["Speech", "Dog",
                                                                                                     "Music"]
    local_hub.requests.clear()
    again = model_loader(AUDIOSET_REPO, "cpu", results)
    again.start()
    got = messages(results, again, qtbot)
    assert [type(m) for m in got] == [ModelReady] and local_hub.requests == []


def test_cancelling_the_download_is_a_cancelled_failure_and_the_old_model_stays(qtbot, local_hub):
    results: queue.Queue = queue.Queue()
    loader = model_loader(AUDIOSET_REPO, "cpu", results)
    loader.start()
    first = results.get(timeout=30)                 # (0, total): sizes known, no byte fetched yet
    assert isinstance(first, DownloadProgress) and first.done_bytes == 0
    loader.cancel()
    got = messages(results, loader, qtbot)
    assert isinstance(got[-1], ModelFailed) and got[-1].cancelled and "cancelled" in got[-1].message
    assert not any(isinstance(m, ModelReady) for m in got)


def test_the_first_start_offer_says_what_it_downloads_and_answers_yes_or_no(qtbot):
    for button, expected in ((QtWidgets.QMessageBox.StandardButton.Yes, True),
                             (QtWidgets.QMessageBox.StandardButton.No, False)):
        seen = []

        def answer(button=button):
            box = QtWidgets.QApplication.activeModalWidget()
            seen.append(box.text())
            box.button(button).click()

        QtCore.QTimer.singleShot(50, answer)
        t0 = time.monotonic()
        assert offer_audioset(None) is expected and time.monotonic() - t0 < 10
        assert "346 MB" in seen[0] and "527 sounds" in seen[0] and "AST AudioSet (527 labels)" in seen[0]


def test_the_window_downloads_the_audioset_pick_with_progress_and_cancel_keeps_the_model(qtbot, qsettings,
                                                                                        local_hub):
    from app.main_window import MainWindow
    window = MainWindow(qsettings=qsettings)
    qtbot.addWidget(window)
    assert window.first_start                      # fresh settings: run_app would offer the AudioSet model
    qtbot.waitUntil(lambda: window.model is not None, timeout=60_000)
    shipped = window.model.loaded.name

    local_hub.delay_s = 0.2                        # slow enough to see the bar and press ✕
    window.model_box.setCurrentIndex(window.model_box.findData(AUDIOSET_REPO))
    window.model_box.activated.emit(window.model_box.currentIndex())
    qtbot.waitUntil(lambda: window.download_cancel.isVisibleTo(window), timeout=30_000)
    assert "downloading AST AudioSet (527 labels)" in window.status_model.text()
    window.cancel_download()
    qtbot.waitUntil(lambda: not window.download_cancel.isVisibleTo(window), timeout=30_000)
    assert window.model.loaded.name == shipped and not window.errors    # a cancel is no error

    local_hub.delay_s = 0.0
    window.load_model(AUDIOSET_REPO)
    qtbot.waitUntil(lambda: window.model.loaded.name == AUDIOSET_REPO, timeout=60_000)
    assert window.status_model.text().startswith("model AST AudioSet (527 labels): 3 labels")
    assert not window.download_cancel.isVisibleTo(window) and AUDIOSET_REPO not in window.settings.recent_models
    window.close()
    assert not MainWindow(qsettings=qsettings).first_start    # asked once: the choice is saved
