"""App fixtures: a temporary QSettings file, audio backends without a sound card, a scene of real clips."""
from __future__ import annotations

from pathlib import Path

import pytest

from app.screenshot import make_scene   # the README screenshot's scene: three CC0 clips of tests/data
from core.capture import InputDevice


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
