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


