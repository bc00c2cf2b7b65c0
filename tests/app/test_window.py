"""The desktop window, offscreen, on the shipped default model: no device, live from a real clip played
in real time (and through the virtual microphone), files dropped on it, export, broken models, settings,
and that closing stops every thread."""
from __future__ import annotations

import contextlib
import csv
import threading
from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.controls import ExportRequest
from app.main_window import MainWindow
from app.settings import load_settings
from core.features import num_frames_for
from app.workers import FileAudio
from tests.app.conftest import NoAudio

WORKER_THREADS = ("tagger", "decode", "playback", "live-control", "player", "reviews", "clips")
SCENE_LABELS = {"Crowing, cock-a-doodle-doo", "Church bell", "Knock"}


@pytest.fixture(autouse=True)
def no_leaked_threads():
    """Every test: no tagger, decoder, playback, review-store or clip thread outlives the window."""
    yield
    alive = [t.name for t in threading.enumerate() if t.name in WORKER_THREADS and t.is_alive()]
    assert not alive, f"threads left running: {alive}"


def open_window(qtbot, qsettings, audio, **kwargs) -> MainWindow:
    window = MainWindow(qsettings=qsettings, audio=audio, **kwargs)
    qtbot.addWidget(window)
    window.show()
    qtbot.waitUntil(lambda: window.model is not None or bool(window.errors), timeout=60_000)
    return window


@contextlib.contextmanager
def answering(*answers):
    """Answer the window's next modal dialogs in order, by clicking as a user would: a QMessageBox button
    (a StandardButton), or a function given any other dialog (e.g. an ExportDialog to fill in and accept).
    Yields the texts of the message boxes asked."""
    answers, asked = list(answers), []

    def answer() -> None:
        dialog = QtWidgets.QApplication.activeModalWidget()
        if dialog is None or not answers or not dialog.isVisible():
            return
        if isinstance(dialog, QtWidgets.QMessageBox):
            asked.append(dialog.text())
            dialog.button(answers.pop(0)).click()
        elif callable(answers[0]):
            answers.pop(0)(dialog)
    timer = QtCore.QTimer()
    timer.timeout.connect(answer)
    timer.start(20)
    try:
        yield asked
    finally:
        timer.stop()


def start(qtbot, window: MainWindow) -> None:
    """Start listening and wait until the session runs (it opens on LiveControl's thread)."""
    window.start_live()
    qtbot.waitUntil(lambda: window.session is not None or window.document.live_state == "idle", timeout=20_000)
    assert window.session is not None, window.errors


def close(window: MainWindow) -> None:
    """Quit the window; a question about unsaved live sessions is answered Discard."""
    with answering(QtWidgets.QMessageBox.StandardButton.Discard):
        window.close()
    assert window.isHidden()
    assert not window.analysis.isRunning()
    assert all(loader.isFinished() for loader in window._loaders)
    assert window.session is None


def drop(window: MainWindow, paths: list[Path]) -> None:
    mime = QtCore.QMimeData()
    mime.setUrls([QtCore.QUrl.fromLocalFile(str(p)) for p in paths])
    pos = QtCore.QPointF(window.width() / 2, window.height() / 2)
    buttons, mods = QtCore.Qt.MouseButton.LeftButton, QtCore.Qt.KeyboardModifier.NoModifier
    enter = QtGui.QDragEnterEvent(pos.toPoint(), QtCore.Qt.DropAction.CopyAction, mime, buttons, mods)
    QtWidgets.QApplication.sendEvent(window, enter)
    assert enter.isAccepted()
    event = QtGui.QDropEvent(pos, QtCore.Qt.DropAction.CopyAction, mime, buttons, mods)
    QtWidgets.QApplication.sendEvent(window, event)


def analysed(qtbot, window: MainWindow, count: int = 1):
    qtbot.waitUntil(lambda: sum(r.status in ("done", "failed", "cancelled")
                                for r in window.files_view.results.values()) >= count, timeout=60_000)
    return window.files_view.results


# ------------------------------------------------------------------------------------------ start / close

def test_starts_and_closes_cleanly_without_an_input_device(qtbot, qsettings, recwarn):
    window = open_window(qtbot, qsettings, NoAudio())
    assert window.model is not None and not window.errors
    assert window.live_view.device() is None
    assert not window.live_view.start.isEnabled()
    assert "No audio input found" in window.live_view.state.text()
    assert window.badge.text() == f"CPU · {window.model.inference}" or window.badge.text().startswith("GPU")
    assert window.model.inference.split()[0] in ("torch", "openvino")     # the engine is named (issue 11)
    window.start_live()                                 # e.g. a shortcut: says why, does not crash
    assert "no audio input device" in window.errors[-1]
    qtbot.waitUntil(lambda: not window.timer.isActive(), timeout=5000)   # idle: the redraw timer stops
    close(window)
    assert not [str(w.message) for w in recwarn.list]


def test_without_a_display_main_py_says_so_instead_of_aborting(tmp_path):
    import os
    import subprocess
    import sys
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY", "QT_QPA_PLATFORM")}
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, str(root / "main.py")], env=env, capture_output=True, text=True,
                          timeout=120, cwd=tmp_path)
    assert done.returncode == 2
    assert "no display" in done.stderr and "analyze" in done.stderr


def test_the_system_backend_without_a_sound_card_still_opens(qtbot, qsettings):
    """The real PortAudio path: on a machine with no input (or no PortAudio) the window says so in words."""
    window = open_window(qtbot, qsettings, None)
    if window.live_view.device() is None:
        assert window.live_view.state.text()
    close(window)


# ----------------------------------------------------------------------------------------------- live

def test_a_live_source_drives_the_spectrogram_bars_strip_and_events(qtbot, qsettings, scene, tmp_path):
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=4.0))
    view = window.live_view
    assert view.device() is not None
    view.start.click()
    qtbot.waitUntil(lambda: window.session is not None, timeout=20_000)     # opened on LiveControl's thread
    assert view.start.text() == "Stop"
    qtbot.waitUntil(lambda: view.level.value() > -30, timeout=20_000)    # the meter follows real audio
    qtbot.waitUntil(lambda: view.spectrogram.live_end_s > 3.0, timeout=20_000)
    qtbot.waitUntil(lambda: len(view.bars.rows) > 0, timeout=20_000)
    seen: set[str] = set()

    def collect() -> bool:
        seen.update(r.name for r in view.bars.rows if r.value > 0.3)
        return window.session is None
    qtbot.waitUntil(collect, timeout=30_000)              # the scene ends: the session closes itself
    assert seen & SCENE_LABELS, f"bars showed {seen}"
    assert view.spectrogram.strip_rows                      # the activity strip has rows
    image = view.spectrogram.spec_image.image
    assert image.shape == (128, 3000) and image.max() > image.min()   # 30 s of history, real content
    timeline, events = window.live_result
    names = {timeline.labels[e.label_index].name for e in events}
    assert len(names & SCENE_LABELS) >= 2, names
    assert view.events.rowCount() == len(events)
    assert "inference" in window.status_speed.text()
    written = window.run_export(ExportRequest("live", ("tags", "audacity"), tmp_path, "session"))
    assert [p.name for p in written] == ["session.tags.csv", "session.labels.txt"]
    close(window)


def test_a_vanishing_device_is_reported_and_what_was_heard_is_kept(qtbot, qsettings, scene):
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=4.0, fail_after_s=8.0))
    start(qtbot, window)
    qtbot.waitUntil(lambda: window.session is None, timeout=30_000)
    assert "listening stopped" in window.errors[-1] and "unplugged" in window.errors[-1]
    assert window.banner.isVisible()
    timeline, events = window.live_result
    assert 7.5 <= timeline.duration_s <= 8.5
    assert window.live_view.start.isEnabled() and window.live_view.start.text() == "Start listening"
    close(window)


def test_closing_while_listening_stops_every_thread(qtbot, qsettings, scene):
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=1.0))
    start(qtbot, window)
    qtbot.waitUntil(lambda: window.live_view.spectrogram.live_end_s > 1.0, timeout=10_000)
    close(window)                                           # the autouse fixture checks the threads


def test_live_through_the_virtual_microphone(qtbot, qsettings, virtual_mic, scene):
    from tests.conftest import vmic
    window = open_window(qtbot, qsettings, None)
    window.refresh_devices(refresh=True)
    assert window.live_view.device() is not None, window.live_view.state.text()
    start(qtbot, window)
    player = threading.Thread(target=vmic, args=("play", str(scene)))
    player.start()
    seen: set[str] = set()

    def collect() -> bool:
        seen.update(r.name for r in window.live_view.bars.rows if r.value > 0.3)
        return SCENE_LABELS <= seen
    try:
        qtbot.waitUntil(collect, timeout=40_000)
    finally:
        player.join()
        window.stop_live()
        qtbot.waitUntil(lambda: window.session is None, timeout=20_000)
        close(window)
    assert window.live_result[0].duration_s > 15


# ---------------------------------------------------------------------------------------------- files

def test_dropping_a_real_clip_gives_its_timeline_and_events(qtbot, qsettings, scene):
    window = open_window(qtbot, qsettings, NoAudio())
    drop(window, [scene])
    assert window.tabs.currentWidget() is window.files_view
    (result,) = analysed(qtbot, window).values()
    assert result.status == "done", result.message
    names = [result.timeline.labels[e.label_index].name for e in result.events]
    assert len(set(names) & SCENE_LABELS) >= 2, names
    view = window.files_view
    assert view.events_table.proxy.rowCount() == len(result.events)
    assert view.timeline.detail_image.image.shape == (128, num_frames_for(21 * 16000))   # a column per 10 ms frame
    lanes = {result.timeline.labels[lane.label_index].name for lane in view.timeline.lanes}
    assert lanes == set(names)                           # every label with an event has its lane
    last = len(names) - 1
    view.focus_event(last)                               # the view zooms to the event
    x0, x1 = view.timeline.visible_range()
    e = result.events[last]
    assert x0 <= e.start_s and e.end_s <= x1 and x1 - x0 < 15
    assert view.events_table.current_event() == last == view.selected_event
    window.on.setValue(0.99)                             # thresholds redraw without re-analysing
    assert len(result.events) < len(names)
    close(window)


def test_a_folder_with_a_bad_file_keeps_going_and_says_why(qtbot, qsettings, scene, tmp_path):
    folder = tmp_path / "batch"
    folder.mkdir()
    (folder / "a_broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    (folder / "b_empty.flac").write_bytes(b"")
    (folder / "c_scene.wav").write_bytes(scene.read_bytes())
    window = open_window(qtbot, qsettings, NoAudio())
    window.open_paths([str(folder)])
    results = analysed(qtbot, window, 3)
    statuses = {Path(r.path).name: r.status for r in results.values()}
    assert statuses == {"a_broken.wav": "failed", "b_empty.flac": "failed", "c_scene.wav": "done"}
    assert any("a_broken.wav" in e for e in window.errors) and any("b_empty.flac" in e for e in window.errors)
    close(window)


def test_cancel_stops_an_analysis(qtbot, qsettings, scene, tmp_path):
    long = tmp_path / "long.wav"
    import soundfile as sf
    x, rate = sf.read(scene, dtype="float32")
    sf.write(long, np.tile(x, 30), rate)                 # 10 minutes
    window = open_window(qtbot, qsettings, NoAudio())
    (job,) = window.open_paths([str(long)])
    qtbot.waitUntil(lambda: window.files_view.results[job].status == "running", timeout=30_000)
    window.files_view.queue.cellWidget(0, 3).click()
    (result,) = analysed(qtbot, window).values()
    assert result.status == "cancelled"
    assert not [e for e in window.errors if "long.wav" in e]       # a cancel is not an error
    close(window)


# --------------------------------------------------------------------------------------------- export

def test_export_writes_the_files_and_never_overwrites_unasked(qtbot, qsettings, scene, tmp_path, monkeypatch):
    window = open_window(qtbot, qsettings, NoAudio())
    window.open_paths([str(scene)])
    (result,) = analysed(qtbot, window).values()
    assert result.events
    scopes = window.export_scopes()
    assert "file" in scopes and "live" not in scopes
    out = tmp_path / "out"
    request = ExportRequest("file", ("tags", "raven", "params"), out, "scene")
    written = window.run_export(request)
    assert [p.name for p in written] == ["scene.tags.csv", "scene.selections.txt", "scene.params.csv"]
    rows = list(csv.DictReader(open(out / "scene.tags.csv", encoding="utf-8")))
    assert [r["Common name"] for r in rows] == [result.timeline.labels[e.label_index].name
                                                 for e in result.events]
    before = {p: p.read_bytes() for p in written}
    (out / "scene.tags.csv").write_text("my edits\n")
    asked = []
    monkeypatch.setattr(QtWidgets.QMessageBox, "question",
                        lambda *a, **k: asked.append(a) or QtWidgets.QMessageBox.StandardButton.No)
    assert window.run_export(request) == []
    assert len(asked) == 1 and "scene.tags.csv" in asked[0][2]
    assert (out / "scene.tags.csv").read_text() == "my edits\n"   # nothing overwritten
    monkeypatch.setattr(QtWidgets.QMessageBox, "question", lambda *a, **k: QtWidgets.QMessageBox.StandardButton.Yes)
    assert len(window.run_export(request)) == 3
    assert {p: p.read_bytes() for p in written} == before
    close(window)


def test_export_to_an_unwritable_place_is_an_error_in_words(qtbot, qsettings, scene, tmp_path):
    window = open_window(qtbot, qsettings, NoAudio())
    window.open_paths([str(scene)])
    analysed(qtbot, window)
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    assert window.run_export(ExportRequest("file", ("tags",), blocker / "sub", "scene")) == []
    assert window.errors[-1].startswith("export failed:")
    close(window)


# --------------------------------------------------------------------------------------------- models

def test_the_model_picker_rejects_a_broken_file_and_keeps_the_model(qtbot, qsettings, scene, tmp_path):
    window = open_window(qtbot, qsettings, NoAudio())
    before = window.model
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    window.load_model(str(broken))
    qtbot.waitUntil(lambda: len(window.errors) > 0, timeout=30_000)
    assert "could not load model" in window.errors[-1] and "broken.safetensors" in window.errors[-1]
    assert window.model is before and window.banner.isVisible()
    window.open_paths([str(scene)])                          # the app keeps working with the old model
    assert next(iter(analysed(qtbot, window).values())).status == "done"
    close(window)


def test_a_hugging_face_directory_loads_with_its_labels(qtbot, qsettings, tiny_hf_dir):
    window = open_window(qtbot, qsettings, NoAudio())
    window.load_model(str(tiny_hf_dir))
    qtbot.waitUntil(lambda: window.model.spec == str(tiny_hf_dir), timeout=30_000)
    assert window.labels_panel.table.rowCount() == 4
    assert window.model_box.currentData() == str(tiny_hf_dir)
    close(window)


# ------------------------------------------------------------------------------------ labels, settings

def test_settings_labels_and_thresholds_are_remembered(qtbot, qsettings):
    window = open_window(qtbot, qsettings, NoAudio())
    panel = window.labels_panel
    dog = panel.labels.find("Dog").index
    panel.set_pinned(dog, True)
    panel.table.item(dog, 2).setText("0.7")
    panel.table.item(dog + 1, 2).setText("banana")           # refused in words, not kept
    assert "between 0 and 1" in window.errors[-1]
    window.hop.setValue(0.5)
    window._hop_changed()
    window.on.setValue(0.4)
    window.off.setValue(0.25)
    panel.search.setText("bell")
    assert panel.allowed().sum() == 1 and panel.allowed()[panel.labels.find("Church bell").index]
    close(window)

    again = open_window(qtbot, qsettings, NoAudio())
    assert again.hop.value() == 0.5 and again.on.value() == 0.4 and again.off.value() == 0.25
    assert again.labels_panel.pinned_ids() == [again.labels_panel.labels[dog].id]
    assert again.labels_panel.thresholds() == {again.labels_panel.labels[dog].id: 0.7}
    assert again._event_config().label_thresholds == ((again.labels_panel.labels[dog].id, 0.7),)
    close(again)


def test_auto_play_is_remembered_like_the_other_settings(qtbot, qsettings):
    window = open_window(qtbot, qsettings, NoAudio())
    auto_play = window.file_tools.auto_play_action
    assert auto_play.isChecked()                              # a settings file without it: the default, on
    auto_play.trigger()                                       # Play ▸ Auto-play, as the menu does: off
    close(window)

    again = open_window(qtbot, qsettings, NoAudio())
    auto_play = again.file_tools.auto_play_action
    assert not auto_play.isChecked()                          # the same settings folder remembers it
    auto_play.trigger()                                       # on again
    close(again)
    assert load_settings(qsettings).auto_play


def test_switching_the_model_while_listening_restarts_the_stream_on_the_new_model(qtbot, qsettings, scene,
                                                                                 tiny_hf_dir):
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=2.0))
    start(qtbot, window)
    first = window.session
    qtbot.waitUntil(lambda: window.live_view.spectrogram.live_end_s > 1.0, timeout=10_000)
    window.load_model(str(tiny_hf_dir))
    qtbot.waitUntil(lambda: window.session is not None and window.session is not first, timeout=30_000)
    assert len(window.live_view.labels) == 4 and window.live.labels.names[0] == "Speech"
    assert window.live_result is not None and len(window.live_result[0].labels) == 51   # the first session is kept
    assert {"live", "last"} <= set(window.export_scopes())                              # ... and exportable
    window.hop.setValue(0.5)
    window._hop_changed()
    second = window.session
    qtbot.waitUntil(lambda: window.session is not None and window.session is not second, timeout=30_000)
    assert window.session.tagger.hop_s == 0.5
    close(window)


def test_a_file_can_be_played_as_live_input_without_a_sound_card(qtbot, qsettings, scene, tmp_path, monkeypatch):
    import soundfile as sf
    x, rate = sf.read(scene, dtype="float32")
    short = tmp_path / "rooster.wav"
    sf.write(short, x[:7 * rate], rate)                     # silence, then the rooster: 7 s
    monkeypatch.setattr(QtWidgets.QFileDialog, "getOpenFileName", lambda *a, **k: (str(short), ""))
    window = open_window(qtbot, qsettings, NoAudio())
    combo = window.live_view.devices
    assert not window.live_view.start.isEnabled()
    combo.setCurrentIndex(combo.count() - 1)                 # "A file, played as live input…"
    assert window.live_view.start.isEnabled()
    window.live_view.start.click()
    qtbot.waitUntil(lambda: window.session is not None, timeout=20_000)     # opened on LiveControl's thread
    assert "rooster.wav" in window.status_input.text()
    qtbot.waitUntil(lambda: window.session is None, timeout=30_000)     # real time: the file ends, so does the session
    timeline, events = window.live_result
    assert timeline.duration_s == pytest.approx(7.0, abs=0.01)
    assert "Crowing, cock-a-doodle-doo" in {timeline.labels[e.label_index].name for e in events}
    close(window)


def test_the_last_model_picked_wins_even_if_an_earlier_one_loads_later(qtbot, qsettings, tiny_hf_dir, tmp_path):
    window = open_window(qtbot, qsettings, NoAudio())
    window.load_model(str(tiny_hf_dir))                  # slower (a directory through transformers' names)
    window.load_model("")                                # then back to the shipped default, at once
    qtbot.waitUntil(lambda: not window._loaders, timeout=30_000)
    qtbot.wait(100)
    assert window.model.spec == "" and len(window.model.loaded.labels) == 51
    assert window.labels_panel.table.rowCount() == 51
    close(window)


def test_the_virtual_microphone_vanishing_is_reported_and_the_window_recovers(qtbot, qsettings, virtual_mic):
    from tests.conftest import vmic
    window = open_window(qtbot, qsettings, None)
    window.refresh_devices(refresh=True)
    start(qtbot, window)
    try:
        qtbot.waitUntil(lambda: window.live_view.spectrogram.live_end_s > 1.5, timeout=20_000)
        assert vmic("stop").returncode == 0                   # the sound server goes away mid-stream
        qtbot.waitUntil(lambda: window.session is None, timeout=30_000)
        assert "listening stopped" in window.errors[-1] and "stopped delivering audio" in window.errors[-1]
        assert window.live_result[0].duration_s > 1.0          # what was heard is kept for export
    finally:
        vmic("start")
    window.refresh_devices(refresh=True)                       # ⟳ finds the input again
    assert window.live_view.device() is not None
    close(window)
