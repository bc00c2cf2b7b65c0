"""Live sessions in the real window (offscreen, shipped default model, real clips played as live input):
kept whole after Stop and listed as a result, recorded to FLAC, a full disk mid-recording, the question
before unsaved results are lost, and a source whose stop() hangs (issue 12, defects 3 and 7)."""
from __future__ import annotations

import csv
import re
import threading
import time
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from PySide6 import QtCore, QtWidgets

import app.main_window as main_window
from app.controls import ExportRequest
from app.workers import FileAudio
from core.capture import FilePlayback
from tests.app.test_listen_review import press
from tests.app.test_window import answering, close, no_leaked_threads, open_window, start  # noqa: F401 - autouse

Button = QtWidgets.QMessageBox.StandardButton
Key = QtCore.Qt.Key


@pytest.fixture(scope="module")
def long_scene(scene, tmp_path_factory) -> Path:
    """The 21 s scene twice: 42 s, longer than the 30 s the live view shows."""
    x, rate = sf.read(scene, dtype="float32")
    path = tmp_path_factory.mktemp("long") / "long.wav"
    sf.write(path, np.tile(x, 2), rate, subtype="PCM_16")
    return path


def ended(qtbot, window, count: int = 1, timeout: int = 60_000):
    """Wait until `count` sessions have finished; the newest one's entry in the Files list."""
    qtbot.waitUntil(lambda: len(window.document.live_results()) >= count and window.session is None,
                    timeout=timeout)
    return window.document.live_results()[-1]


def test_a_long_session_is_kept_whole_after_stop_and_listed_like_a_file(qtbot, qsettings, long_scene, tmp_path):
    window = open_window(qtbot, qsettings, FileAudio(long_scene, speed=8.0))
    view, doc = window.live_view, window.document
    mismatches, open_seen = [], []

    def bars_follow_the_engine(frame, open_labels) -> None:      # runs after the view drew the bars
        labels = window.session.labels
        for row in view.bars.rows:
            if row.active != bool(open_labels[labels.find(row.name).index]):
                mismatches.append((frame.index, row.name))
            open_seen.append(row.active)
    doc.liveScores.connect(bars_follow_the_engine)
    start(qtbot, window)
    qtbot.waitUntil(lambda: view.spectrogram.live_end_s > 34.0, timeout=30_000)
    view.start.click()                                             # Stop, 34+ s in
    entry = ended(qtbot, window)
    assert not mismatches and any(open_seen)                        # orange exactly when the engine says open

    timeline = entry.timeline
    assert timeline.duration_s > 34.0
    assert timeline.ends_s[-1] - timeline.starts_s[0] > 30.0         # every window's scores, not the last 30 s
    assert timeline.starts_s[0] == 0.0 and timeline.num_windows >= 30
    assert entry.spectrogram.shape[1] * entry.column_s == pytest.approx(timeline.duration_s, abs=0.05)
    first_5_s = entry.spectrogram[:, :round(5.0 / entry.column_s)]
    assert first_5_s.max() > 100                                     # the rooster at 1-6 s is still there
    rooster = [e.start_s for e in entry.events if timeline.labels[e.label_index].name == "Crowing, cock-a-doodle-doo"]
    assert min(rooster) < 10 and max(rooster) > 20                  # its events, the first time and the second
    assert view.spectrogram.spec_image.image.shape[1] == 3000        # while the Live tab shows only 30 s

    files = window.files_view
    row_text = files.display_name(entry.job)
    assert re.fullmatch(r"Live \d\d:\d\d–\d\d:\d\d, playback of long\.wav", row_text), row_text
    files.select(entry.job)                                          # browsed like a file
    assert files.timeline.detail_image.image.shape == entry.spectrogram.shape
    assert files.events_table.proxy.rowCount() == len(entry.events)
    clock = timeline.clock_start
    shown = [view.events.item(r, 0).text() for r in range(view.events.rowCount())]
    assert shown and all(re.fullmatch(r"\d\d:\d\d:\d\d", t) for t in shown)
    first_start = float(view.events.item(0, 1).text())
    assert shown[0] == f"{clock + timedelta(seconds=first_start):%H:%M:%S}"   # wall clock = clock_start + start_s

    assert window.isWindowModified()                                 # unsaved: the title says so
    title, stem = window.export_scopes()["file"]                    # File ▸ Export… offers the session
    assert title == f"This session: {entry.title}" and stem == f"live-{clock:%Y%m%d-%H%M%S}"
    written = window.run_export(ExportRequest("file", ("tags",), tmp_path, stem))
    assert [p.name for p in written] == [f"{stem}.tags.csv"]
    (combined,) = window.run_export(ExportRequest("batch", ("tags",), tmp_path / "all", "combined"))
    rows = list(csv.DictReader(open(combined, encoding="utf-8")))
    assert len(rows) == len(entry.events) and {r["File"] for r in rows} == {"live:playback of long.wav"}
    assert not doc.unsaved() and not window.isWindowModified()
    with answering(Button.Cancel) as asked:
        window.close()                                               # exported: nothing to ask
    assert asked == [] and window.isHidden()


def test_a_recorded_session_is_the_flac_the_model_heard(qtbot, qsettings, scene, tmp_path):
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=4.0))
    window.settings.record_dir = str(tmp_path)
    window.live_view.record.click()                                  # "Record to FLAC"
    assert window.settings.record
    start(qtbot, window)
    assert "recording to ast-tagger-" in window.status_input.text()
    entry = ended(qtbot, window)                                     # the scene ends: so does the session
    (path,) = tmp_path.glob("*.flac")
    assert re.fullmatch(r"ast-tagger-\d{8}-\d{6}\.flac", path.name)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (16000, 1, "PCM_24")
    assert info.frames == round(entry.timeline.duration_s * 16000) == 21 * 16000
    heard, _ = sf.read(path, dtype="float32")
    played = FilePlayback(scene).samples
    np.testing.assert_allclose(heard, played, atol=2 ** -22)        # exactly what was played in, 24-bit
    assert entry.timeline.source == str(path) and entry.path == str(path) and entry.recorded
    assert not window.document.unsaved()                             # recorded: quitting need not ask
    (job,) = window.open_paths([str(path)])                          # the recording opens like any file
    qtbot.waitUntil(lambda: window.document.files[job].status == "done", timeout=60_000)
    again = window.document.files[job]
    assert {e.label_index for e in again.events} == {e.label_index for e in entry.events}
    with answering(Button.Cancel) as asked:
        window.close()
    assert asked == [] and window.isHidden()


def test_a_full_disk_ends_the_recording_but_not_the_session(qtbot, qsettings, scene, tmp_path, monkeypatch):
    written = {}
    real_write = sf.SoundFile.write

    def write(self, data):                         # the disk fills up 3 s into the recording
        if self.name.endswith(".flac") and written.setdefault(self.name, 0) >= 3 * 16000:
            raise sf.LibsndfileError(2, "Error writing: ")        # what libsndfile says on a full disk
        written[self.name] = written.get(self.name, 0) + len(data)
        return real_write(self, data)
    monkeypatch.setattr(sf.SoundFile, "write", write)
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=4.0))
    window.settings.record, window.settings.record_dir = True, str(tmp_path)
    start(qtbot, window)
    entry = ended(qtbot, window)
    message = next(e for e in window.errors if "recording to" in e)
    assert re.search(r"stopped after 3\.\d s", message) and "listening goes on" in message
    assert message in window.banner.text()
    assert entry.timeline.duration_s == 21.0                         # tagging went on to the end
    assert any(e.start_s > 5.0 for e in entry.events)               # the bell and the knock came later
    assert not entry.recorded and window.document.unsaved()          # the FLAC holds 3 s: not a record of it
    close(window)


def test_quitting_and_starting_over_ask_and_each_answer_does_what_it_says(qtbot, qsettings, scene, tmp_path):
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=8.0))
    doc = window.document
    start(qtbot, window)
    first = ended(qtbot, window)
    assert doc.unsaved() == [(first.job, first.title)]

    with answering(Button.Cancel) as asked:
        window.start_live()                                          # Cancel: nothing starts, nothing is lost
    assert "Starting a new session loses" in asked[0] and first.title in asked[0]
    assert doc.live_state == "idle" and first.job in doc.files
    with answering(Button.Cancel) as asked:
        window.close()                                               # Cancel: the window stays
    assert "Quitting loses" in asked[0] and window.isVisible() and first.job in doc.files

    with answering(Button.Discard):
        start(qtbot, window)                                         # Discard: it goes, a new one starts
    assert first.job not in doc.files
    second = ended(qtbot, window)
    assert doc.unsaved() == [(second.job, second.title)]

    out = tmp_path / "exports"

    def export_to_tmp(dialog) -> None:
        dialog.folder.setText(str(out))
        dialog.accept()
    with answering(Button.Save, export_to_tmp) as asked:             # "Export…": the dialog, then quit
        window.close()
    assert len(asked) == 1 and window.isHidden()
    stem = f"live-{second.timeline.clock_start:%Y%m%d-%H%M%S}"
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{stem}{s}" for s in (".tags.csv", ".scores.csv",
                                                                                       ".params.csv"))


def test_review_marks_on_an_unrecorded_session_are_asked_about_until_an_export_holds_them(qtbot, qsettings, scene,
                                                                                          tmp_path):
    """Its marks have no recording to be kept by in the review store: only an export made after the last
    mark holds them."""
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=8.0))
    doc, files = window.document, window.files_view
    start(qtbot, window)
    entry = ended(qtbot, window)
    assert entry.audio is None and entry.events
    window.tabs.setCurrentWidget(files)
    files.select(entry.job)
    window.run_export(ExportRequest("file", ("tags",), tmp_path, "found"))
    assert not doc.unsaved() and not window.isWindowModified()      # what it found is exported

    files.events_table.view.setFocus()
    press(qtbot, window, Key.Key_J)
    press(qtbot, window, Key.Key_Y)                                  # marked after the export
    assert len(entry.marks) == 1 and window.isWindowModified()
    lost = f"{entry.title}: the review marks made since its last export"
    with answering(Button.Cancel) as asked:
        window.close()
    assert "Quitting loses" in asked[0] and lost in asked[0] and window.isVisible()
    with answering(Button.Cancel) as asked:
        window.remove_results([entry.job])
    assert lost in asked[0] and entry.job in doc.files

    window.run_export(ExportRequest("file", ("scores", "audacity"), tmp_path, "no-review-column"))
    assert doc.unsaved() and window.isWindowModified()              # neither format has a review column
    window.run_export(ExportRequest("file", ("tags",), tmp_path, "marked"))
    assert not doc.unsaved() and not window.isWindowModified()      # the export holds the mark

    press(qtbot, window, Key.Key_N)                                  # changed: correct -> wrong
    out = tmp_path / "on-quit"

    def export_to(dialog) -> None:
        dialog.folder.setText(str(out))
        dialog.accept()
    with answering(Button.Save, export_to) as asked:                 # "Export…", then quit without asking again
        window.close()
    assert len(asked) == 1 and lost in asked[0] and window.isHidden()
    (tags,) = out.glob("*.tags.csv")
    rows = list(csv.DictReader(open(tags, encoding="utf-8")))
    assert [r["review"] for r in rows] == ["wrong"] + [""] * (len(entry.events) - 1)


def test_quitting_while_listening_asks_and_discard_quits_at_once(qtbot, qsettings, scene):
    window = open_window(qtbot, qsettings, FileAudio(scene, speed=1.0))
    start(qtbot, window)
    qtbot.waitUntil(lambda: window.live is not None and window.live.num_windows >= 1, timeout=20_000)
    t0 = time.monotonic()
    with answering(Button.Discard) as asked:
        window.close()
    assert "the running session" in asked[0] and window.isHidden()
    assert time.monotonic() - t0 < main_window.LIVE_CLOSE_WAIT_S
    assert window.session is None


class HangingPlayback(FilePlayback):
    """A source whose stop() hangs as PortAudio's did when the sound server died: the stream ends for the
    tagger (its ring closes first, as Capture.stop does) but the call returns only once `released` is set."""

    def __init__(self, path, released: threading.Event, **playback):
        super().__init__(path, **playback)
        self.released = released

    def stop(self, end_index: int | None = None) -> None:
        super().stop(end_index)
        self.released.wait()


class HangingAudio(FileAudio):
    def __init__(self, path, released: threading.Event, **playback):
        super().__init__(path, **playback)
        self.released = released

    def open(self, device) -> HangingPlayback:
        return HangingPlayback(self.path, self.released, **self.playback)


def test_stop_and_quit_never_wait_on_a_source_that_hangs(qtbot, qsettings, scene, monkeypatch):
    released = threading.Event()
    safety = threading.Timer(8.0, released.set)      # if the window did wait, it is let go (and the test fails)
    safety.start()
    monkeypatch.setattr(main_window, "LIVE_CLOSE_WAIT_S", 1.0)
    window = open_window(qtbot, qsettings, HangingAudio(scene, released, speed=1.0))
    try:
        start(qtbot, window)
        qtbot.waitUntil(lambda: window.live_view.spectrogram.live_end_s > 1.0, timeout=10_000)
        t0 = time.monotonic()
        window.live_view.start.click()                               # Stop: the source's stop() hangs
        assert time.monotonic() - t0 < 0.5
        ticks = []
        QtCore.QTimer.singleShot(100, lambda: ticks.append(time.monotonic()))
        qtbot.waitUntil(lambda: bool(ticks), timeout=2000)           # the GUI thread goes on
        assert window.live_view.start.text() == "Stopping…" and not released.is_set()
        t0 = time.monotonic()
        close(window)                                                # waits 1 s for the session, then quits
        assert time.monotonic() - t0 < 2.5 and not released.is_set()
    finally:
        released.set()
        safety.cancel()
    alive = lambda: [t for t in threading.enumerate() if t.name in ("live-control", "tagger", "playback")]  # noqa: E731
    qtbot.waitUntil(lambda: not alive(), timeout=10_000)             # released, everything ends
