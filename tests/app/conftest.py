"""App fixtures: a temporary QSettings file, audio backends without a sound card, a scene of real clips."""
from __future__ import annotations

import threading
import time
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from core.capture import InputDevice
from core.ringbuffer import RingBuffer

DATA = Path(__file__).resolve().parents[1] / "data"
SCENE_CLIPS = ("1-44831-A-1.flac", "4-150364-B-46.flac", "5-251426-B-30.flac")   # rooster, church bell, knock


@pytest.fixture
def qsettings(tmp_path):
    from PySide6.QtCore import QSettings
    return QSettings(str(tmp_path / "settings.ini"), QSettings.Format.IniFormat)


@pytest.fixture(scope="session")
def scene(tmp_path_factory) -> Path:
    """21 s at 16 kHz: rooster at 1-6 s, church bell at 8-13 s, knock at 15-20 s, silence around them."""
    path = tmp_path_factory.mktemp("scene") / "scene.wav"
    sf.write(path, make_scene(), 16000, subtype="PCM_16")
    return path


def make_scene() -> np.ndarray:
    """Three real 5 s clips on whole seconds (where 1 s hop windows start), 2 s of silence between."""
    x = np.zeros(21 * 16000, dtype=np.float32)
    for start_s, name in zip((1, 8, 15), SCENE_CLIPS):
        clip, rate = sf.read(DATA / name, dtype="float32")
        assert rate == 16000 and len(clip) == 5 * 16000
        x[start_s * 16000:start_s * 16000 + len(clip)] = clip
    return x


class FilePlayback:
    """An AudioSource (app.workers) that plays a file into a ring at `speed` x real time, on a thread:
    the live path without a sound card. `fail_after_s` makes the 'device' vanish mid-stream."""

    def __init__(self, path: Path, speed: float = 4.0, fail_after_s: float | None = None, block: int = 1600):
        self.samples, self.rate_hz = sf.read(path, dtype="float32")
        self.device = InputDevice(0, f"playback of {Path(path).name}", "file", 1, self.rate_hz, True)
        self.ring = RingBuffer.for_seconds(30.0, self.rate_hz)
        self.input_overflows = 0
        self.speed, self.fail_after_s, self.block = speed, fail_after_s, block
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._play, name="playback", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        for i in range(0, len(self.samples), self.block):
            if self._stop.is_set():
                return
            if self.fail_after_s is not None and i >= self.fail_after_s * self.rate_hz:
                self.ring.close(error=f"input device {self.device.name!r} stopped delivering audio (unplugged)")
                return
            self.ring.write(self.samples[i:i + self.block, None])
            time.sleep(self.block / self.rate_hz / self.speed)
        self.ring.close()

    def stop(self, end_index: int | None = None) -> None:
        self._stop.set()
        if not self.ring.ended:
            self.ring.close(end_index)
        if self._thread is not None:
            self._thread.join(2.0)

    def check(self) -> str | None:
        return self.ring.error


class FakeAudio:
    """An audio backend with one input: a file played in (faster than) real time."""

    def __init__(self, path: Path, **playback):
        self.path, self.playback = path, playback
        self.opened: list[FilePlayback] = []

    def list_devices(self, refresh: bool = False) -> list[InputDevice]:
        return [InputDevice(0, f"playback of {self.path.name}", "file", 1, 16000, True)]

    def open(self, device: InputDevice) -> FilePlayback:
        source = FilePlayback(self.path, **self.playback)
        self.opened.append(source)
        return source


class NoAudio:
    """A machine without any input device (what PortAudio reports with no sound card)."""

    def list_devices(self, refresh: bool = False) -> list[InputDevice]:
        return []

    def open(self, device: InputDevice):
        raise AssertionError("nothing to open")
