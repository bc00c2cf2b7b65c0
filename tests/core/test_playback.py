"""Playing regions of files: real PortAudio output through the virtual microphone (what is heard is the clip,
the playhead follows it), and a fake sounddevice for exact samples, rates and the failures a sound card has
(no device, no PortAudio, a close that hangs, a stream that dies)."""
import logging
import os
import threading
import time
import types
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

import core.capture as capture
from core.audio_io import StreamingResampler
from core.capture import Capture
from core.playback import CLOSE_TIMEOUT_S, Player, PlayState
from tests.conftest import vmic

BLOCK = 512     # frames per fake callback


class FakeOutputStream:
    """Calls the callback from its own thread, `speed` x faster than real time, and keeps what was played."""

    def __init__(self, sd, device, samplerate, channels, dtype, callback, finished_callback):
        assert dtype == "float32"
        self.sd, self.rate, self.channels = sd, samplerate, channels
        self.callback, self.finished_callback = callback, finished_callback
        self.latency = 0.02
        self.played: list[np.ndarray] = []
        self.closed = threading.Event()
        sd.streams.append(self)

    def start(self):
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self):
        t0, k = time.monotonic(), 0
        while not self.closed.is_set() and k != self.sd.die_after_callbacks:
            out = np.full((BLOCK, self.channels), np.nan, dtype=np.float32)   # garbage unless written
            now = time.monotonic()
            info = types.SimpleNamespace(currentTime=now, outputBufferDacTime=now + self.latency)
            try:
                self.callback(out, BLOCK, info, types.SimpleNamespace(output_underflow=False))
            except self.sd.CallbackStop:
                self.played.append(out)
                break
            except self.sd.CallbackAbort:
                break
            self.played.append(out)
            k += 1
            time.sleep(max(0.0, t0 + k * BLOCK / self.rate / self.sd.speed - time.monotonic()))
        self.finished_callback()

    def close(self, ignore_errors=True):
        if self.sd.close_hangs:
            self.sd.release_close.wait()
        self.closed.set()

    def audio(self) -> np.ndarray:
        return np.concatenate(self.played) if self.played else np.zeros((0, self.channels), np.float32)


class FakeSD:
    class PortAudioError(Exception):
        pass

    class CallbackStop(Exception):
        pass

    class CallbackAbort(Exception):
        pass

    def __init__(self, rates_ok=(16000, 44100, 48000), max_channels=2, default_rate=48000.0, has_output=True):
        self.rates_ok, self.max_channels, self.default_rate = rates_ok, max_channels, default_rate
        self.has_output = has_output
        self.streams: list[FakeOutputStream] = []
        self.speed = 2.0     # x real time: quick tests, and room for the decoder thread on a busy machine
        self.close_hangs = False
        self.release_close = threading.Event()
        self.die_after_callbacks = -1

    def query_devices(self, device=None, kind=None):
        assert kind == "output"
        if not self.has_output:
            raise self.PortAudioError("Error querying device -1")
        return {"index": 3, "name": "Speakers", "max_output_channels": self.max_channels,
                "default_samplerate": self.default_rate}

    def check_output_settings(self, device, samplerate, channels, dtype):
        if samplerate not in self.rates_ok or channels > self.max_channels:
            raise self.PortAudioError("Invalid sample rate")

    def OutputStream(self, **kw):
        return FakeOutputStream(self, **kw)


@pytest.fixture
def fake_sd(monkeypatch):
    sd = FakeSD()
    monkeypatch.setattr(capture, "sounddevice", lambda *args: sd)
    yield sd
    sd.release_close.set()


def trim_tail(audio: np.ndarray, expected_len: int) -> np.ndarray:
    """The last callback is padded with zeros after the region: it must be, and is cut off here."""
    assert len(audio) - BLOCK < expected_len <= len(audio), "silence was inserted: the decoder fell behind"
    assert not audio[expected_len:].any()
    return audio[:expected_len]


def test_a_region_is_played_sample_exact_at_the_files_rate(fake_sd, esc50_clip):
    source, rate = sf.read(esc50_clip, dtype="float32", always_2d=True)          # 5 s, 16 kHz mono
    player = Player()
    player.play(esc50_clip, 1.0, 2.5)
    assert player.state is PlayState.PLAYING
    assert player.wait(10)
    audio = trim_tail(fake_sd.streams[-1].audio(), 24000)
    np.testing.assert_array_equal(audio, source[16000:40000])
    assert player.state is PlayState.FINISHED and player.position_s() == pytest.approx(2.5)


def test_stereo_44k_plays_as_it_is_or_resampled_where_the_device_wants(fake_sd, esc50_clip, tmp_path):
    mono, _ = sf.read(esc50_clip, dtype="float32")
    stereo = np.stack([mono, -0.5 * mono], axis=1)
    stereo = np.concatenate([StreamingResampler(16000, 44100).process(stereo[:, c])[:, None] for c in (0, 1)], 1)
    path = tmp_path / "stereo44.wav"
    sf.write(path, stereo, 44100, subtype="FLOAT")
    player = Player()
    player.play(path, 2.0)                                                    # to the end
    assert player.wait(10) and player.state is PlayState.FINISHED, player.error
    region = stereo[88200:]
    np.testing.assert_array_equal(trim_tail(fake_sd.streams[-1].audio(), len(region)), region)

    fake_sd.rates_ok, fake_sd.max_channels = (48000,), 1                      # a mono 48 kHz output
    player.play(path, 2.0)
    assert player.wait(10) and player.state is PlayState.FINISHED, player.error
    resampler = StreamingResampler(44100, 48000)
    mixed = region.mean(axis=1, dtype=np.float32)
    expected = np.concatenate([resampler.process(mixed), resampler.flush()])
    got = trim_tail(fake_sd.streams[-1].audio(), len(expected))
    assert got.shape == (len(expected), 1)
    np.testing.assert_allclose(got[:, 0], expected, atol=1e-6)


def test_an_event_plays_with_a_second_around_it_clipped_to_the_file(fake_sd, esc50_clip):
    source, _ = sf.read(esc50_clip, dtype="float32", always_2d=True)
    player = Player()
    player.play_event(esc50_clip, 0.5, 1.25)                                  # -> [0, 2.25]
    assert player.wait(10) and player.state is PlayState.FINISHED
    np.testing.assert_array_equal(trim_tail(fake_sd.streams[-1].audio(), 36000), source[:36000])
    assert player.status().start_s == 0.0 and player.status().end_s == 2.25
    player.play_event(esc50_clip, 4.5, 5.0)                                   # -> [3.5, 5.0]: the file ends
    assert player.wait(10) and player.state is PlayState.FINISHED
    np.testing.assert_array_equal(trim_tail(fake_sd.streams[-1].audio(), 24000), source[56000:])
    assert player.position_s() == pytest.approx(5.0)


def test_stop_returns_at_once_and_a_hung_close_is_abandoned(fake_sd, esc50_clip, caplog):
    fake_sd.speed, fake_sd.close_hangs = 1.0, True
    player = Player()
    player.play(esc50_clip)
    deadline = time.monotonic() + 5
    while player.position_s() < 0.3 and time.monotonic() < deadline:
        time.sleep(0.01)
    heard = player.position_s()
    assert 0.3 <= heard < 1.0
    caplog.set_level(logging.WARNING, logger="core.playback")
    t0 = time.monotonic()
    player.stop()
    assert time.monotonic() - t0 < 0.05                                       # the caller never waits
    assert player.state is PlayState.IDLE
    time.sleep(0.1)
    assert player.position_s() == pytest.approx(heard, abs=0.05)              # stopped where it was
    first = fake_sd.streams[0]
    assert not first.closed.is_set()                                          # its close still hangs ...
    assert player.wait(CLOSE_TIMEOUT_S + 1.0)                                 # ... and is given up on
    assert "abandoned" in caplog.text and player._session.abandoned
    fake_sd.close_hangs, fake_sd.speed = False, 2.0
    player.play(esc50_clip, 4.0)                                              # the player is still usable
    assert player.wait(10) and player.state is PlayState.FINISHED, player.error
    assert len(fake_sd.streams) == 2 and not first.closed.is_set()


def test_playing_again_replaces_the_play_before(fake_sd, esc50_clip):
    fake_sd.speed = 1.0
    player = Player()
    player.play(esc50_clip)
    time.sleep(0.2)
    player.play(esc50_clip, 4.0)
    assert player.wait(10) and player.state is PlayState.FINISHED
    first, second = fake_sd.streams
    assert first.closed.is_set() and len(first.audio()) < 16000              # cut short, closed
    assert len(second.audio()) >= 16000


def test_no_output_device_is_a_clear_failure_not_a_crash(fake_sd, esc50_clip):
    fake_sd.has_output = False
    player = Player()
    player.play(esc50_clip)
    assert player.wait(5)
    status = player.status()
    assert status.state is PlayState.FAILED
    assert status.error.startswith("no audio output device (Error querying device -1)")
    assert "\n" not in status.error and fake_sd.streams == []


def test_missing_portaudio_is_a_clear_failure(no_portaudio, esc50_clip):
    player = Player()
    player.play(esc50_clip)
    assert player.wait(5) and player.state is PlayState.FAILED
    assert player.error.startswith("audio playback is unavailable: the PortAudio library could not be loaded")
    assert "apt-get install libportaudio2" in player.error


def test_bad_files_and_times(fake_sd, esc50_clip, tmp_path):
    player = Player()
    with pytest.raises(ValueError, match="ends .* before it starts"):
        player.play(esc50_clip, 2.0, 1.0)
    with pytest.raises(ValueError, match="start_s must be a finite number"):
        player.play(esc50_clip, float("nan"))
    assert player.state is PlayState.IDLE
    player.play(tmp_path / "missing.flac")
    assert player.wait(5) and player.state is PlayState.FAILED
    assert "Audio file not found" in player.error and fake_sd.streams == []


def test_a_stream_that_dies_midway_is_a_failure(fake_sd, esc50_clip):
    fake_sd.die_after_callbacks = 16                                          # 0.5 s, then PortAudio ends it
    player = Player()
    player.play(esc50_clip)
    assert player.wait(10) and player.state is PlayState.FAILED
    assert player.error.startswith("the audio output stopped after 0.5 s of")


def correlation(captured: np.ndarray, clip: np.ndarray) -> tuple[int, float]:
    """(lag of clip in captured, correlation coefficient of the aligned samples)."""
    size = 1 << int(np.ceil(np.log2(len(captured) + len(clip))))
    cross = np.fft.irfft(np.fft.rfft(captured, size) * np.conj(np.fft.rfft(clip, size)), size)
    lag = int(np.argmax(cross[:len(captured)]))
    heard = captured[lag:lag + len(clip)]
    return lag, float(np.corrcoef(heard, clip[:len(heard)])[0, 1])


def server_pid() -> str:
    """The virtual microphone's PulseAudio process: other test runs on this machine may restart it."""
    try:
        return (Path(os.environ.get("VMIC_DIR", "/tmp/vmic")) / "pulse" / "pid").read_text().strip()
    except OSError:
        return ""


def play_and_record(path: Path) -> tuple[Player, list[tuple[float, float]], float, np.ndarray]:
    """Play `path` while recording the default input; (player, (seconds since play, playhead) polled every
    20 ms, seconds until the play ended, what the input heard)."""
    mic = Capture(capture.find_input_device(), 16000)
    mic.start()
    try:
        player = Player()
        t0 = time.monotonic()
        player.play(path)
        positions = []
        while player.state is PlayState.PLAYING and time.monotonic() - t0 < 15:
            positions.append((time.monotonic() - t0, player.position_s()))
            time.sleep(0.02)
        elapsed = time.monotonic() - t0
        time.sleep(0.3)
    finally:
        mic.stop()
    assert player.wait(2)
    return player, positions, elapsed, mic.ring.reader(0).read()[1]


def test_real_playback_is_heard_and_the_playhead_follows_it(virtual_mic, esc50_clip):
    """Through PulseAudio: the Player plays into the null sink (the default output) while a Capture records
    its monitor (the default input): what comes back is the clip."""
    clip, rate = sf.read(esc50_clip, dtype="float32")
    for _ in range(3):
        before = server_pid()
        player, positions, elapsed, heard = play_and_record(esc50_clip)
        if server_pid() == before:
            break
        vmic("start")          # restarted under us by another run: wait for it and measure again
        capture.refresh_devices()
    else:
        pytest.skip("the shared virtual microphone was restarted by another process during every attempt")
    assert player.state is PlayState.FINISHED, player.error
    values = [p for _, p in positions]
    assert values == sorted(values) and values[0] < 0.1                       # monotonic, from the start
    assert values[-1] == pytest.approx(5.0, abs=0.15) and player.position_s() == pytest.approx(5.0)
    assert 4.9 < elapsed < 6.5                                                # played in real time
    mid = [(t, p) for t, p in positions if 2.0 < p < 3.0]
    assert mid and all(abs((t - elapsed) - (p - 5.0)) < 0.3 for t, p in mid)  # the playhead keeps time
    lag, r = correlation(heard, clip)
    assert len(heard) >= lag + len(clip), "the capture missed the end of the clip"
    assert r > 0.99
