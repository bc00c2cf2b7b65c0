"""The Files tab as a daily tool (issue 12), in the real window (offscreen, shipped default model, the README
scene of real CC0 clips): listening (the real core.playback.Player on a fake sound card, on a missing one, and
through the virtual output), reviewing with the keys (marks shown, saved in a temporary store, found again by
a new window, in the exports), per-file exports of a batch and clips of events."""
from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import pytest
import soundfile as sf
from PySide6 import QtCore, QtWidgets

from core.clips import clip_names
from app.clipping import ACCEPTED, ALL, MIN_PEAK, ClipsRequest
from app.controls import ExportRequest, RelabelDialog
from app.events_table import REVIEW
from app.main_window import MainWindow
from core.playback import Player
from core.review import ReviewStore
from tests.app.conftest import NoAudio
from tests.app.test_window import analysed, answering, close, no_leaked_threads  # noqa: F401 - autouse fixture
from tests.core.test_playback import fake_sd  # noqa: F401 - a sound card that plays at twice real time

Key = QtCore.Qt.Key
Button = QtWidgets.QMessageBox.StandardButton


def open_files(qtbot, qsettings, store: Path, paths: list[Path], player: Player | None = None) -> MainWindow:
    """A window on a temporary review store, the files analysed, the first one shown, the Files tab focused."""
    window = MainWindow(qsettings=qsettings, audio=NoAudio(), player=player or Player(),
                        review_store=ReviewStore(store))
    qtbot.addWidget(window)
    window.show()
    window.activateWindow()
    qtbot.waitUntil(lambda: window.model is not None, timeout=60_000)
    window.open_paths([str(p) for p in paths])
    analysed(qtbot, window, len(paths))
    qtbot.waitUntil(lambda: not window.file_tools.busy, timeout=10_000)       # marks loaded
    window.files_view.events_table.view.setFocus()
    return window


def press(qtbot, window: MainWindow, key: Key) -> None:
    """A key as the user presses it in the events table (the window active again after a dialog, as a
    desktop makes it; the offscreen platform does not)."""
    window.activateWindow()
    qtbot.waitUntil(window.isActiveWindow, timeout=2000)
    qtbot.keyClick(window.files_view.events_table.view, key)


def review_column(window: MainWindow) -> list[str]:
    proxy = window.files_view.events_table.proxy
    return [proxy.index(r, REVIEW).data() for r in range(proxy.rowCount())]


# ------------------------------------------------------------------------------------------------ listen

def test_space_plays_from_the_playhead_which_moves_and_stops_where_the_sound_stops(qtbot, qsettings, scene,
                                                                                   tmp_path, fake_sd):
    window = open_files(qtbot, qsettings, tmp_path / "store", [scene])
    panel, doc = window.files_view.timeline, window.document
    assert not window.timer.isActive()                          # idle: no timer
    panel.timeClicked.emit(6.0)                                 # a click on empty time: the playhead goes there
    assert doc.playhead[1] == 6.0 and panel.playhead_s == 6.0
    press(qtbot, window, Key.Key_Space)
    assert window.file_tools.playing is not None and window.timer.isActive()
    assert window.file_tools.play_action.text() == "■ Stop"
    seen = []
    qtbot.waitUntil(lambda: seen.append(panel.playhead_s) or panel.playhead_s > 7.0, timeout=10_000)
    assert seen == sorted(seen) and seen[0] >= 6.0                # it moves forward from where it was put
    assert all(line.value() == panel.playhead_s for line in panel.playheads)   # overview, detail, lanes
    press(qtbot, window, Key.Key_Space)                         # stop: the playhead stays where the sound stopped
    stopped = panel.playhead_s
    assert window.file_tools.playing is None and window.file_tools.play_action.text() == "▶ Play"
    qtbot.waitUntil(lambda: not window.timer.isActive(), timeout=5000)       # idle again: the timer stops
    assert panel.playhead_s == stopped
    stream = fake_sd.streams[-1]
    first = sf.read(scene, dtype="float32", frames=1600, start=6 * 16000)[0]
    assert (stream.audio()[:1600, 0] == first).all()            # the file's audio from 6 s, sample for sample
    close(window)


def test_enter_and_a_double_click_play_an_event_with_a_second_around_it(qtbot, qsettings, scene, tmp_path,
                                                                        fake_sd):
    window = open_files(qtbot, qsettings, tmp_path / "store", [scene])
    files, result = window.files_view, window.document.done_results()[0]
    bell = next(i for i, e in enumerate(result.events) if result.timeline.labels[e.label_index].name == "Church bell")
    files.choose_event(bell)
    press(qtbot, window, Key.Key_Return)
    e = result.events[bell]
    qtbot.waitUntil(lambda: window.file_tools.playing is None, timeout=20_000)      # played to its end
    seconds = (e.end_s + 1.0) - (e.start_s - 1.0)
    assert len(fake_sd.streams[-1].audio()) == pytest.approx(seconds * 16000, abs=512)
    assert window.document.playhead[1] == pytest.approx(e.end_s + 1.0, abs=0.01)
    assert not window.errors

    knock = next(i for i, e in enumerate(result.events) if result.timeline.labels[e.label_index].name == "Knock")
    files.timeline.eventDoubleClicked.emit(knock)               # what a double click on its box sends
    assert files.selected_event == knock and files.events_table.current_event() == knock
    assert window.document.playhead[1] == pytest.approx(result.events[knock].start_s - 1.0)
    window.file_tools.stop()
    close(window)


def test_a_sound_card_that_cannot_play_is_said_in_the_banner_and_the_window_goes_on(qtbot, qsettings, scene,
                                                                                     tmp_path):
    window = open_files(qtbot, qsettings, tmp_path / "store", [scene], Player(device="no such speakers"))
    press(qtbot, window, Key.Key_Space)
    qtbot.waitUntil(lambda: window.file_tools.playing is None, timeout=10_000)
    assert window.banner.isVisible()
    assert window.errors[-1].startswith("could not play scene.wav: ") and "no such speakers" in window.errors[-1]
    press(qtbot, window, Key.Key_J)                             # reviewing still works
    press(qtbot, window, Key.Key_Y)
    assert review_column(window)[0] == "✓ correct"
    qtbot.waitUntil(lambda: not window.timer.isActive(), timeout=10_000)
    close(window)


def test_space_goes_to_a_focused_widget_that_uses_it_and_plays_everywhere_else_in_the_tab(qtbot, qsettings, scene,
                                                                                         tmp_path, fake_sd):
    window = open_files(qtbot, qsettings, tmp_path / "store", [scene])
    files, tools, result = window.files_view, window.file_tools, window.document.done_results()[0]
    combo = files.events_table.label_filter
    combo.setFocus()
    qtbot.keyClick(combo, Key.Key_Space)
    assert combo.view().isVisible() and tools.playing is None     # the drop-down opens; nothing plays
    QtWidgets.QApplication.processEvents()                          # the popup's window events, while it is up
    qtbot.keyClick(combo.view(), Key.Key_Escape)                   # closed as a user does
    assert not combo.view().isVisible() and window.isActiveWindow()
    box = files.events_table.min_peak
    box.setFocus()
    qtbot.keyClick(box.lineEdit(), Key.Key_Space)
    assert tools.playing is None

    for plays, widget in enumerate((files.timeline.graphics, files.events_table.view), 1):
        widget.setFocus()
        qtbot.keyClick(widget, Key.Key_Space)
        assert tools.playing == result.job, widget                 # Space plays ...
        qtbot.waitUntil(lambda: len(fake_sd.streams) == plays, timeout=5000)
        qtbot.keyClick(widget, Key.Key_Space)
        assert tools.playing is None                               # ... and stops

    (clear,) = [b for b in files.findChildren(QtWidgets.QPushButton) if b.text() == "Clear finished"]
    clear.setFocus()
    qtbot.keyClick(clear, Key.Key_Space)                           # a focused button is pressed
    assert not window.document.files and tools.playing is None and len(fake_sd.streams) == 2
    close(window)



def test_letters_go_to_a_focused_drop_down_and_review_everywhere_else_in_the_tab(qtbot, qsettings, scene, tmp_path,
                                                                                 fake_sd):
    """J, K, Y, N, R and Delete step and mark from the timeline or the table; a focused drop-down gets them
    instead (a typed letter jumps to a label there), so typing into the label filter marks nothing."""
    window = open_files(qtbot, qsettings, tmp_path / "store", [scene])
    files, tools, result = window.files_view, window.file_tools, window.document.done_results()[0]
    tools.auto_play_action.setChecked(False)
    view = files.events_table.view
    view.setFocus()
    qtbot.keyClick(view, Key.Key_J)
    first = view.currentIndex().row()
    assert first >= 0                                                    # J steps to an event
    combo = files.events_table.label_filter
    combo.setFocus()
    for key in (Key.Key_J, Key.Key_Y, Key.Key_N, Key.Key_Delete):
        qtbot.keyClick(combo, key)
    assert view.currentIndex().row() == first and not result.marks       # no step, no mark
    combo.setCurrentIndex(0)                                             # all labels again, as the table was
    view.setFocus()
    qtbot.keyClick(view, Key.Key_Y)
    assert len(result.marks) == 1                                        # the table still marks
    close(window)

def test_an_event_through_the_virtual_output(qtbot, qsettings, scene, tmp_path, virtual_mic):
    """Real PortAudio: the private PulseAudio's null sink is the default output."""
    window = open_files(qtbot, qsettings, tmp_path / "store", [scene])
    result = window.document.done_results()[0]
    press(qtbot, window, Key.Key_J)                              # auto-play: the first event plays
    e = result.events[0]
    positions = []
    qtbot.waitUntil(lambda: positions.append(window.document.playhead[1]) or window.file_tools.playing is None,
                    timeout=30_000)
    assert not window.errors, window.errors
    assert positions == sorted(positions) and positions[-1] == pytest.approx(e.end_s + 1.0, abs=0.05)
    assert len(set(positions)) > 10                               # it moved smoothly, not in one jump
    close(window)


# ------------------------------------------------------------------------------------------------ review

def relabel_to(text: str):
    """Answer the relabel dialog: type `text`, press Enter (the first label that matches)."""
    def answer(dialog):
        assert isinstance(dialog, RelabelDialog)
        dialog.search.setText(text)
        dialog.search.setFocus()
        QtCore.QTimer.singleShot(0, lambda: dialog.accept())
    return answer


def test_review_keys_mark_the_events_and_a_new_window_finds_the_marks(qtbot, qsettings, scene, tmp_path, fake_sd):
    store = tmp_path / "store"
    window = open_files(qtbot, qsettings, store, [scene])
    files, result = window.files_view, window.document.done_results()[0]
    labels = result.timeline.labels
    tools = window.file_tools
    assert not tools.correct_action.isEnabled()                  # no event chosen: nothing to mark
    files.choose_event(1)                                        # as a click on a box or a row does
    assert tools.correct_action.isEnabled() and tools.relabel_action.isEnabled()
    files.show_job(result.job)                                   # drawn again: its events are new, none chosen
    assert files.selected_event is None and not tools.correct_action.isEnabled()
    tools.auto_play_action.setChecked(False)
    press(qtbot, window, Key.Key_J)
    assert files.selected_event == 0 and tools.playing is None   # auto-play off: stepping is quiet
    press(qtbot, window, Key.Key_Y)                              # 0: correct
    press(qtbot, window, Key.Key_J)
    press(qtbot, window, Key.Key_N)                              # 1: wrong
    press(qtbot, window, Key.Key_Down)                           # the table's own arrow keys step too
    with answering(relabel_to("dog")):
        press(qtbot, window, Key.Key_R)                          # 2: relabelled to Dog
    press(qtbot, window, Key.Key_J)
    press(qtbot, window, Key.Key_Y)
    press(qtbot, window, Key.Key_Delete)                         # 3: marked, then cleared
    press(qtbot, window, Key.Key_K)
    assert files.selected_event == 2
    expected = ["✓ correct", "✗ wrong", "→ Dog"] + [""] * (len(result.events) - 3)
    assert review_column(window) == expected
    by_label = {labels[e.label_index].name: text for e, text in zip(result.events, expected)}
    assert files.timeline.marks == {0: "correct", 1: "wrong", 2: "relabel"}       # ✓ ✗ → on the boxes
    assert "3 reviewed" in files.title.text()
    qtbot.waitUntil(lambda: not window.file_tools.reviews.busy, timeout=10_000)
    (saved,) = [p for p in (store / "reviews").glob("*.json") if p.name != "digests.json"]
    marks = json.loads(saved.read_text())["models"][result.timeline.model_name]
    assert sorted(m["verdict"] for m in marks) == ["correct", "relabel", "wrong"]
    assert next(m for m in marks if m["verdict"] == "relabel")["relabel_to"] == labels.find("Dog").id
    close(window)

    moved = tmp_path / "moved.wav"                               # the same recording under another name
    shutil.copy(scene, moved)
    again = open_files(qtbot, qsettings, store, [moved])
    assert review_column(again) == expected
    again.on.setValue(0.9)                                       # a stricter rule: fewer, shorter events ...
    result = again.document.done_results()[0]
    names = [labels[e.label_index].name for e in result.events]
    assert 0 < len(names) < len(expected)
    assert review_column(again) == [by_label[n] for n in names]   # ... which keep their marks
    close(again)


def test_reviewed_exports_carry_the_review_column(qtbot, qsettings, scene, tmp_path, fake_sd):
    window = open_files(qtbot, qsettings, tmp_path / "store", [scene])
    result = window.document.done_results()[0]
    window.file_tools.auto_play_action.setChecked(False)
    press(qtbot, window, Key.Key_J)
    press(qtbot, window, Key.Key_N)                              # the first event is wrong
    out = tmp_path / "out"
    window.run_export(ExportRequest("file", ("tags", "audacity"), out, "scene"))
    rows = list(csv.DictReader(open(out / "scene.tags.csv", encoding="utf-8")))
    assert [r["review"] for r in rows] == ["wrong"] + [""] * (len(result.events) - 1)
    audacity = (out / "scene.labels.txt").read_text().splitlines()
    assert len(audacity) == len(result.events) - 1              # no review column: the wrong event is left out
    close(window)


def test_the_relabel_dialog_finds_labels_by_any_of_their_names(qtbot):
    from core.labels import ESC50_CSV, LabelSet
    labels = LabelSet.from_csv(ESC50_CSV)
    dialog = RelabelDialog(labels, labels.find("Dog").index)
    qtbot.addWidget(dialog)
    assert dialog.chosen() == labels.find("Dog").id               # starts on the detected label
    dialog.search.setText("rooster")                              # ESC-50's name of "Crowing, cock-a-doodle-doo"
    assert dialog.chosen() == labels.find("Crowing, cock-a-doodle-doo").id
    dialog.search.setText("no such sound")
    assert dialog.chosen() is None


def test_a_damaged_review_file_is_set_aside_and_said(qtbot, qsettings, scene, tmp_path, fake_sd):
    store = tmp_path / "store"
    digest = ReviewStore(store).digest(scene)
    (store / "reviews" / f"{digest}.json").write_text("{ not json")
    window = open_files(qtbot, qsettings, store, [scene])
    assert any("could not be read" in e for e in window.errors), window.errors
    assert list((store / "reviews").glob(f"{digest}.json.corrupt-*"))
    assert review_column(window) == [""] * len(window.document.done_results()[0].events)
    close(window)


# ------------------------------------------------------------------------------------ exports and clips

@pytest.fixture
def two_folders(scene, tmp_path) -> list[Path]:
    paths = []
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        paths.append(tmp_path / folder / "scene.wav")
        shutil.copy(scene, paths[-1])
    return paths


def test_each_file_gets_its_own_set_and_overwriting_is_asked_once(qtbot, qsettings, two_folders, tmp_path):
    window = open_files(qtbot, qsettings, tmp_path / "store", two_folders)
    assert window.export_scopes()["each"][0].startswith("Each analysed file (one set per file)")
    out = tmp_path / "out"
    request = ExportRequest("each", ("tags", "params"), out, "")
    written = window.run_export(request)
    assert sorted(str(p.relative_to(out)) for p in written) == [
        "d1/scene.params.csv", "d1/scene.tags.csv", "d2/scene.params.csv", "d2/scene.tags.csv"]
    (out / "d2" / "scene.tags.csv").write_text("my edits\n")
    with answering(Button.No) as asked:
        assert window.run_export(request) == []
    assert len(asked) == 1 and "scene.tags.csv" in asked[0]      # one question for the whole batch
    assert (out / "d2" / "scene.tags.csv").read_text() == "my edits\n"
    with answering(Button.Yes) as asked:
        assert len(window.run_export(request)) == 4
    assert len(asked) == 1 and (out / "d2" / "scene.tags.csv").read_text().startswith("Start (s)")
    close(window)


def test_clips_of_the_events_reviewed_correct_and_of_every_file(qtbot, qsettings, two_folders, tmp_path, fake_sd):
    window = open_files(qtbot, qsettings, tmp_path / "store", two_folders)
    tools, result = window.file_tools, window.document.files[min(window.document.files)]
    window.files_view.select(result.job)
    tools.auto_play_action.setChecked(False)
    press(qtbot, window, Key.Key_J)
    press(qtbot, window, Key.Key_Y)
    out = tmp_path / "clips"
    tools.run_clips(ClipsRequest("file", out, which=ACCEPTED))
    qtbot.waitUntil(lambda: not tools.busy, timeout=20_000)
    (clip,) = out.glob("*.flac")
    e = result.events[0]
    assert clip.name == clip_names("scene", [(result.timeline.labels[e.label_index].name, e.start_s)], ".flac")[0]
    info = sf.info(clip)
    assert info.frames == round((min(e.end_s + 1.0, 21.0) - max(e.start_s - 1.0, 0.0)) * 16000)

    every = ClipsRequest("each", out, which=ALL, pre_s=0.5, post_s=0.5, audio_format="wav")
    tools.run_clips(every)
    qtbot.waitUntil(lambda: not tools.busy, timeout=30_000)
    count = len(result.events)
    assert len(list((out / "d1").glob("*.wav"))) == count == len(list((out / "d2").glob("*.wav")))
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")}
    with answering(Button.No) as asked:
        tools.run_clips(every)
        qtbot.waitUntil(lambda: bool(asked) and not tools.busy, timeout=30_000)
    assert len(asked) == 1 and f"{2 * count} clips already exist" in asked[0]
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.wav")} == before       # nothing replaced
    with answering(Button.Yes) as asked:
        tools.run_clips(every)
        qtbot.waitUntil(lambda: bool(asked) and not tools.busy, timeout=30_000)
    assert all(p.stat().st_mtime_ns != t for p, t in before.items())              # replaced, as asked

    loud = ClipsRequest("file", tmp_path / "loud", which=MIN_PEAK, min_peak=0.95)
    tools.run_clips(loud)
    qtbot.waitUntil(lambda: not tools.busy, timeout=20_000)
    assert len(list((tmp_path / "loud").glob("*.flac"))) == sum(e.peak_score >= 0.95 for e in result.events) > 0
    blocker = tmp_path / "a_file"
    blocker.write_text("x")
    tools.run_clips(ClipsRequest("file", blocker / "clips"))                      # a folder that cannot be made
    qtbot.waitUntil(lambda: not tools.busy, timeout=20_000)
    assert "clips" in window.errors[-1] and "a_file" in window.errors[-1] and blocker.read_text() == "x"
    close(window)


def test_keys_typed_into_the_peak_filter_stay_there(qtbot, qsettings, scene, tmp_path, fake_sd):
    """The play and review keys act in the Files tab, but not on what is typed into a number field in it."""
    window = open_files(qtbot, qsettings, tmp_path / "store", [scene])
    files, tools, result = window.files_view, window.file_tools, window.document.done_results()[0]
    tools.auto_play_action.setChecked(False)
    press(qtbot, window, Key.Key_J)
    press(qtbot, window, Key.Key_Y)
    box = files.events_table.min_peak
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), "0.95")
    for key in (Key.Key_Backspace, Key.Key_Delete, Key.Key_Return):
        qtbot.keyClick(box.lineEdit(), key)
    assert box.value() == pytest.approx(0.9) and len(result.marks) == 1 and tools.playing is None
    assert files.selected_event is None and not tools.correct_action.isEnabled()   # hidden at 0.95: unchosen
    files.timeline.graphics.setFocus()                           # on the timeline the arrows step ...
    qtbot.keyClick(files.timeline.graphics, Key.Key_Down)
    assert files.selected_event == files.events_table.shown_events()[0]
    qtbot.keyClick(files.timeline.graphics, Key.Key_Return)      # ... and Enter plays
    assert tools.playing == result.job
    tools.stop()
    close(window)
