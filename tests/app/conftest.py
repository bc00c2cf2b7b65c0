"""App fixtures: a temporary QSettings file and user data folder, audio backends without a sound card, a scene of
real clips."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.screenshot import make_scene   # the README screenshot's scene: three CC0 clips of tests/data
from core.capture import InputDevice


@pytest.fixture(autouse=True)
def user_data_elsewhere(tmp_path, monkeypatch):
    """Every app test keeps review marks (core.review's default store in the user data folder, platformdirs)
    in a temporary folder: a window made without review_store= must never write the user's own."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "user-data"))


@pytest.fixture
def qsettings(tmp_path):
    from PySide6.QtCore import QSettings
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> Path:
    """21 s at 16 kHz: rooster at 1-6 s, church bell at 8-13 s, knock at 15-20 s, silence around them."""
    return make_scene(tmp_path_factory.mktemp("scene") / "scene.wav")


class NoAudio:
    """A machine without any input device (what PortAudio reports with no sound card)."""

    def list_devices(self, refresh: bool = False) -> list[InputDevice]:
        return []

    def open(self, device: InputDevice):
        raise AssertionError("nothing to open")


@pytest.fixture(autouse=True)
def unanswered_questions():
    """A window left open by a failed test asks about its unsaved live session when pytest-qt closes it;
    a modal question nobody answers within 5 s is answered Discard here (so the run goes on) and fails."""
    import time
    from PySide6 import QtCore, QtWidgets
    seen: dict[int, float] = {}
    left: list[str] = []

    def look() -> None:
        box = QtWidgets.QApplication.activeModalWidget()
        if isinstance(box, QtWidgets.QMessageBox) and box.isVisible():
            if time.monotonic() - seen.setdefault(id(box), time.monotonic()) > 5.0:
                left.append(box.text())
                box.button(QtWidgets.QMessageBox.StandardButton.Discard).click()
    timer = QtCore.QTimer()
    timer.timeout.connect(look)
    timer.start(200)
    yield
    timer.stop()
    assert not left, f"a question was left unanswered: {left}"
