"""Issue 12's defects, each shown on the real window (offscreen, shipped default model) where it was seen."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PySide6 import QtCore, QtGui, QtWidgets

from app.main_window import MainWindow
from core.cli import main as cli_main
from tests.app.conftest import NoAudio
from tests.app.test_window import analysed, close, no_leaked_threads, open_window  # noqa: F401 - autouse fixture


# ---------------------------------------------------------------- 1: files on the command line


def test_files_queued_before_the_model_is_ready_wait_for_it(qtbot, qsettings, scene):
    window = MainWindow(qsettings=qsettings, audio=NoAudio())       # fresh settings, as run_app does
    qtbot.addWidget(window)
    window.show()
    assert window.model is None
    window.open_paths([str(scene)])                                  # at once, before the model is loaded
    (result,) = analysed(qtbot, window).values()
    assert result.status == "done", result.message
    assert result.events and not window.errors
    close(window)


def test_files_queued_for_a_model_that_fails_fail_with_its_reason(qtbot, qsettings, scene, tmp_path):
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all")
    window = MainWindow(qsettings=qsettings, audio=NoAudio(), model_spec=str(broken))
    qtbot.addWidget(window)
    window.show()
    window.open_paths([str(scene)])
    (result,) = analysed(qtbot, window).values()
    assert result.status == "failed"
    assert "broken.safetensors" in result.message
    close(window)


# ---------------------------------------------------------------- 2: typing a threshold


def type_into(qtbot, box: QtWidgets.QDoubleSpinBox, text: str) -> None:
    box.setFocus()
    box.lineEdit().selectAll()
    qtbot.keyClicks(box.lineEdit(), text)
    qtbot.keyClick(box.lineEdit(), QtCore.Qt.Key.Key_Return)


def test_typing_an_on_threshold_keeps_the_off_threshold(qtbot, qsettings):
    window = open_window(qtbot, qsettings, NoAudio())
    window.on.setValue(0.5)
    window.off.setValue(0.3)
    type_into(qtbot, window.on, "0.80")                   # passes through "0" and "0.8" on the way
    assert window.on.value() == pytest.approx(0.80)
    assert window.off.value() == pytest.approx(0.30)
    assert window.settings.off_threshold == pytest.approx(0.30)
    type_into(qtbot, window.off, "0.9")                    # off above on is refused: it stays at most on
    assert window.off.value() <= window.on.value()
    type_into(qtbot, window.on, "0.2")                     # a finished on below off takes off down with it
    assert window.on.value() == pytest.approx(0.2) and window.off.value() == pytest.approx(0.2)
    close(window)


# ---------------------------------------------------------------- 8: a missing file on the command line


def test_a_missing_file_argument_says_file_not_found(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opened = []
    assert cli_main(["missing.wav"], open_app=opened.append) == 2
    err = capsys.readouterr().err
    assert "file not found: missing.wav" in err and "invalid choice" not in err
    assert cli_main([str(tmp_path / "no" / "such.flac")], open_app=opened.append) == 2
    assert "file not found" in capsys.readouterr().err
    with pytest.raises(SystemExit):                         # a mistyped command still lists the commands
        cli_main(["analyse"], open_app=opened.append)
    assert "invalid choice" in capsys.readouterr().err
    assert not opened


# ---------------------------------------------------------------- 10: first look


def test_first_look_no_negative_seconds_inherited_thresholds_and_the_file_input_hint(qtbot, qsettings):
    window = open_window(qtbot, qsettings, NoAudio())
    x0, _ = window.files_view.timeline.visible_range()
    assert x0 >= 0
    assert "A file, played as live input" in window.live_view.state.text()
    panel = window.labels_panel
    window.on.setValue(0.45)
    dog = panel.labels.find("Dog").index
    assert panel.shown_threshold(dog) == "0.45"             # inherited: the global value, shown as such
    panel.table.item(dog, 2).setText("0.7")
    assert panel.shown_threshold(dog) == "0.7"
    assert panel.thresholds() == {panel.labels[dog].id: 0.7}
    close(window)


# ---------------------------------------------------------------- 5: pins and per-label thresholds in Files


def test_files_view_keeps_pins_across_files_and_the_rows_of_labels_with_their_own_threshold(
        qtbot, qsettings, scene, tmp_path):
    copy = tmp_path / "again.wav"
    copy.write_bytes(scene.read_bytes())
    window = open_window(qtbot, qsettings, NoAudio())
    panel, view = window.labels_panel, window.files_view
    panel.set_pinned(panel.labels.find("Dog").index, True)          # pinned before any file is analysed
    first, second = window.open_paths([str(scene), str(copy)])
    analysed(qtbot, window, 2)
    view.show_job(first)
    assert view.timeline.strip_rows[0] == "Dog"                      # applied without touching a threshold
    view.show_job(second)
    view.show_job(first)
    assert view.timeline.strip_rows[0] == "Dog"                      # ... and kept when switching file
    rooster = panel.labels.find("Crowing, cock-a-doodle-doo").index
    assert rooster in [lane.label_index for lane in view.timeline.lanes]     # its events have their lane
    panel.table.item(rooster, 2).setText("0.99")                    # its own threshold: no events left ...
    assert not [e for e in view.results[first].events if e.label_index == rooster]
    assert rooster not in [lane.label_index for lane in view.timeline.lanes]
    assert "Crowing, cock-a-doodle-doo" in view.timeline.strip_rows  # ... but its score row shows, to compare
    panel.set_pinned(panel.labels.find("Dog").index, False)
    assert "Dog" not in view.timeline.strip_rows
    close(window)


# ---------------------------------------------------------------- 9: label names


def test_labels_are_found_by_their_dataset_names_and_an_empty_filter_says_so(qtbot, qsettings):
    from core.config import EventConfig
    from core.errors import ConfigError
    from core.events import thresholds_for
    window = open_window(qtbot, qsettings, NoAudio())
    panel = window.labels_panel
    labels = panel.labels
    rooster, hen = labels.find("rooster"), labels.find("hen")        # ESC-50's own category names
    assert rooster is not None and rooster.name == "Crowing, cock-a-doodle-doo"
    assert hen is not None and hen.name == "Chicken, rooster"
    assert "rooster" in panel.table.item(rooster.index, 1).text()
    assert "hen" in panel.table.item(hen.index, 1).text()
    table = thresholds_for(labels, EventConfig(label_thresholds=(("rooster", 0.5),)))   # --label-threshold
    assert table[rooster.index, 0] == 0.5 and table[hen.index, 0] == EventConfig().on_threshold
    with pytest.raises(ConfigError, match="rooster"):                 # a typo suggests the rooster
        thresholds_for(labels, EventConfig(label_thresholds=(("roostr", 0.5),)))
    panel.search.setText("bird")
    assert panel.allowed()[labels.find("Chirp, tweet").index]
    assert not panel.no_match.isVisible()
    panel.search.setText("rooster")
    assert panel.allowed()[rooster.index]
    panel.search.setText("zebra")
    assert not panel.allowed().any()
    assert panel.no_match.isVisible() and "no label matches" in panel.no_match.text()
    panel.search.clear()
    assert not panel.no_match.isVisible() and panel.allowed().all()
    close(window)


# ---------------------------------------------------------------- 6: the bars


def bar_fill(bars, row: int) -> float:
    """Fraction of row `row`'s bar that is painted (read back from the widget's pixels; within 3 pixels:
    rounding and the threshold tick drawn over it)."""
    image = bars.grab().toImage()
    name_w = min(190, int(bars.width() * 0.45))
    bar_x, bar_w = name_w + 8, max(20, bars.width() - name_w - 60)
    y = 4 + row * bars.ROW_PX + (bars.ROW_PX - 6) // 2
    fills = {QtGui.QColor("#4e79a7").rgb(), QtGui.QColor("#f28e2b").rgb()}
    return sum(image.pixelColor(x, y).rgb() in fills for x in range(bar_x, bar_x + bar_w)) / bar_w


def test_bars_show_labels_that_score_in_score_order_at_their_numbers(qtbot, qsettings):
    from core.config import EventConfig
    from core.events import thresholds_for
    window = open_window(qtbot, qsettings, NoAudio())
    view, loaded = window.live_view, window.model.loaded
    labels = loaded.labels
    view.begin(loaded.features, labels, 1.0, 1.0, thresholds_for(labels, EventConfig()))
    allowed = np.ones(len(labels), dtype=bool)
    scores = np.zeros(len(labels))
    scores[:8] = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2]
    none_open = np.zeros(len(labels), dtype=bool)   # no event open (the session would say which are)
    view.add_scores(0, 0.0, scores, none_open, allowed, [])
    assert [r.value for r in view.bars.rows] == pytest.approx(list(scores[:8]))
    assert all(abs(bar_fill(view.bars, i) - r.value) < 0.05 for i, r in enumerate(view.bars.rows))
    scores[:8] = [0.0, 0.0, 0.05, 0.12, 0.0, 0.01, 0.3, 0.5]           # most fall silent
    view.add_scores(1, 1.0, scores, none_open, allowed, [])
    values = [r.value for r in view.bars.rows]
    assert values == pytest.approx([0.5, 0.3, 0.12, 0.05])             # no rows at 0.00, highest first
    assert all(abs(bar_fill(view.bars, i) - v) < 0.05 for i, v in enumerate(values))   # no lag behind the text
    close(window)


# ---------------------------------------------------------------- 4: the queue and the banner


def test_queue_rows_say_their_state_retry_remove_clear_and_tell_same_names_apart(qtbot, qsettings, scene, tmp_path):
    for folder in ("d1", "d2"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "scene.wav").write_bytes(scene.read_bytes())
    bad, worse = tmp_path / "bad.wav", tmp_path / "worse.flac"
    bad.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk")
    worse.write_bytes(b"")
    window = MainWindow(qsettings=qsettings, audio=NoAudio())
    qtbot.addWidget(window)
    window.show()
    view, queue = window.files_view, window.files_view.queue
    jobs = window.open_paths([str(tmp_path / "d1" / "scene.wav"), str(tmp_path / "d2" / "scene.wav"),
                              str(bad), str(worse)])
    assert [queue.cellWidget(r, 2).text() for r in range(4)] == ["queued"] * 4   # shown, not hidden
    assert [queue.item(r, 0).text() for r in range(4)] == ["d1/scene.wav", "d2/scene.wav", "bad.wav",
                                                           "worse.flac"]
    analysed(qtbot, window, 4)
    assert queue.cellWidget(2, 2).text() == "failed" and queue.cellWidget(3, 2).text() == "failed"
    assert "bad.wav" in window.banner.text() and "worse.flac" in window.banner.text()   # both, not the last
    bad.write_bytes(scene.read_bytes())                                  # the cause is fixed: retry
    view.retry(jobs[2])
    qtbot.waitUntil(lambda: [r.status for r in view.results.values()].count("done") == 3, timeout=60_000)
    assert "bad.wav" not in window.banner.text() and "worse.flac" in window.banner.text()  # stale error gone
    assert queue.rowCount() == 4
    view.remove(jobs[3])                                                 # removing the failed file ...
    assert queue.rowCount() == 3 and jobs[3] not in view.results
    assert not window.banner.isVisible()                                 # ... takes its error with it
    view.remove(jobs[1])
    assert [queue.item(r, 0).text() for r in range(queue.rowCount())] == ["scene.wav", "bad.wav"]  # unique again
    view.clear_finished()
    assert queue.rowCount() == 0 and not view.results
    close(window)


# ---------------------------------------------------------------- 11: small screens


def test_the_window_fits_the_screen_and_stays_legible_at_1024x640(qtbot, qsettings, scene):
    from app.main_window import default_window_size
    laptop = default_window_size(QtCore.QRect(0, 32, 1366, 736))          # 1366x768 less a 32 px panel
    assert laptop.width() <= 1366 and laptop.height() + 40 <= 736           # room for the title bar
    assert default_window_size(QtCore.QRect(0, 0, 2560, 1400)) == QtCore.QSize(1280, 800)
    window = open_window(qtbot, qsettings, NoAudio())
    screen = window.screen().availableGeometry()
    assert window.width() <= screen.width() and window.height() <= screen.height()
    window.resize(1024, 640)
    assert window.minimumSizeHint().width() <= 1024 and window.minimumSizeHint().height() <= 640
    qtbot.waitUntil(lambda: window.size() == QtCore.QSize(1024, 640))
    panel = window.labels_panel
    for i in range(12):                                                    # a full strip: 12 rows
        panel.set_pinned(i, True)
    window.open_paths([str(scene)])
    analysed(qtbot, window)
    qtbot.wait(50)
    line_px = QtGui.QFontMetrics(QtWidgets.QApplication.font()).height()
    files, live = window.files_view.timeline, window.live_view.spectrogram
    for view, spectrogram in ((files, files.detail_plot), (live, live.spec_plot)):
        view.set_strip([f"label {k}" for k in range(12)], 0.0, 1.0, np.zeros((12, 5)))
        qtbot.wait(50)
        assert view.strip_plot.getViewBox().height() / 12 >= line_px          # a row per line of text
        assert spectrogram.getViewBox().height() >= 100                       # and the spectrogram still shows
    table = panel.table
    assert table.columnWidth(1) >= 140                                     # label names readable
    assert sum(table.columnWidth(c) for c in range(3)) <= table.viewport().width()   # nothing cut off
    close(window)
