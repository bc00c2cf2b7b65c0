"""Capture without a sound card: the reader path's resampling, the callback, device listing and failures.

A fake sounddevice module stands in for PortAudio where a test needs a device that misbehaves on purpose;
real PortAudio capture through the virtual microphone is tested in test_listen.py.
"""
import random
import threading
import time
import types

import numpy as np
import soundfile as sf
import pytest

import core.capture as capture
from core.audio_io import StreamingResampler
from core.capture import Capture, CaptureError, CaptureReader, InputDevice, NoInputDeviceError
from core.cli import main
from core.ringbuffer import RingBuffer


def one_shot(x: np.ndarray, rate_hz: int) -> np.ndarray:
    r = StreamingResampler(rate_hz, 16000)
    return np.concatenate([r.process(x), r.flush()])


def feed_and_read(x: np.ndarray, rate_hz: int, seed: int, stereo: bool) -> tuple[list[int], np.ndarray]:
    """Write x in callback-sized blocks (a writer thread), read it through a CaptureReader in random sizes."""
    ring = RingBuffer.for_seconds(5.0, rate_hz)
    reader = CaptureReader(ring)
    rng = random.Random(seed)

    def writer() -> None:
        i = 0
        while i < len(x):
            n = rng.choice([rng.randint(1, 64), rng.randint(100, 1200), 441, 480])
            block = x[i:i + n]
            ring.write(np.stack([block + 0.25, block - 0.25], axis=1) if stereo else block)
            i += n
            time.sleep(0.0002)
        ring.close()

    t = threading.Thread(target=writer)
    t.start()
    starts, pieces = [], []
    while not reader.finished:
        start, got = reader.read(timeout_s=0.01, max_input=rng.randint(1, 3000))
        starts.append(start)
        pieces.append(got)
        assert start == sum(len(p) for p in pieces[:-1])     # contiguous 16 kHz indices
    t.join()
    return starts, np.concatenate(pieces)


@pytest.mark.parametrize("rate_hz", [44100, 48000])
@pytest.mark.parametrize("stereo", [False, True])
def test_reader_resampling_equals_one_shot_for_any_chunking(rate_hz, stereo):
    rng = np.random.default_rng(rate_hz)
    x = (rng.standard_normal(rate_hz * 2 + 123) * 0.2).astype(np.float32)   # 2 s and an odd tail
    _, got = feed_and_read(x, rate_hz, seed=rate_hz + stereo, stereo=stereo)
    ref = one_shot(x, rate_hz)
    assert len(got) == len(ref) == -(-len(x) * 16000 // rate_hz)
    np.testing.assert_allclose(got, ref, atol=1e-6, rtol=0)
    torchaudio = pytest.importorskip("torchaudio")
    import torch
    oracle = torchaudio.functional.resample(   # the resampler's filter (test_audio_io.FILTER)
        torch.from_numpy(x), rate_hz, 16000, lowpass_filter_width=128, rolloff=0.975,
        resampling_method="sinc_interp_kaiser", beta=14.769656459379492).numpy()
    np.testing.assert_allclose(got, oracle, atol=2e-5, rtol=0)


def test_reader_at_16k_passes_samples_through():
    x = np.random.default_rng(0).standard_normal(16000).astype(np.float32)
    _, got = feed_and_read(x, 16000, seed=0, stereo=False)
    np.testing.assert_array_equal(got, x)


def test_reader_jumps_over_an_overrun_on_an_exact_grid():
    rate = 44100
    x = np.random.default_rng(1).standard_normal(rate * 3).astype(np.float32)
    ring = RingBuffer(capacity=rate // 2, sample_rate_hz=rate)
    reader = CaptureReader(ring)
    ring.write(x[:1000])
    assert reader.read()[0] == 0
    ring.write(x[1000:])                     # 3 s into a 0.5 s ring: the reader fell behind
    ring.close()
    start, got = reader.read()
    assert reader.overruns == 1
    cursor = start * 441 // 160               # the input index the reader restarted at
    assert cursor * 160 == start * 441 and cursor >= len(x) - rate // 2   # 441 input = 160 output samples
    rest = [got]
    while not reader.finished:
        rest.append(reader.read()[1])
    np.testing.assert_allclose(np.concatenate(rest), one_shot(x[cursor:], rate), atol=1e-6)


# ---- devices and the callback, with a fake PortAudio --------------------------------------------------

class FakeStream:
    """Delivers stereo blocks of a known signal from a thread, like PortAudio; can 'lose' its device."""

    def __init__(self, fake, samplerate, channels, callback, finished_callback, **kw):
        if fake.open_error:
            raise fake.PortAudioError(fake.open_error)
        self.fake, self.callback, self.finished = fake, callback, finished_callback
        self.channels, self.active, self.latency = channels, False, 0.01
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        i = 0
        while self.active and i < self.fake.total:
            block = (np.arange(i, i + 160) % 1000).astype(np.float32)[:, None] * [1.0, 3.0][:self.channels]
            status = types.SimpleNamespace(input_overflow=(i // 160) % 10 == 3)
            self.callback(block.astype(np.float32), 160, None, status)
            i += 160
            if i >= self.fake.vanish_at:      # the device disappears: PortAudio stops calling back
                self.active = False
                self.finished()
                return
            time.sleep(0.001)

    def start(self):
        self.active = True
        self._thread.start()

    def stop(self):
        self.active = False

    def close(self):
        self.active = False


class FakeSD(types.SimpleNamespace):
    class PortAudioError(Exception):
        pass

    def __init__(self, devices, default=(0, -1), **kw):
        super().__init__(devices=devices, default=types.SimpleNamespace(device=list(default)), open_error=None,
                         total=10**9, vanish_at=10**9, rates_ok={16000}, **kw)

    def query_devices(self, device=None, kind=None):
        if kind == "input":
            if self.default.device[0] < 0:
                raise self.PortAudioError("Error querying device -1")
            return {"index": self.default.device[0], **self.devices[self.default.device[0]]}
        return self.devices

    def query_hostapis(self):
        return [{"name": "ALSA"}]

    def check_input_settings(self, device, samplerate, channels, dtype):
        if samplerate not in self.rates_ok or channels > self.devices[device]["max_input_channels"]:
            raise self.PortAudioError("Invalid sample rate")

    def InputStream(self, **kw):
        return FakeStream(self, **kw)

    def _terminate(self):
        pass

    def _initialize(self):
        pass


def dev(name, inputs, rate=44100.0):
    return {"name": name, "hostapi": 0, "max_input_channels": inputs, "default_samplerate": rate}


@pytest.fixture
def fake_sd(monkeypatch):
    sd = FakeSD([dev("Speakers", 0, 48000.0), dev("USB mic", 2), dev("Line in", 1, 48000.0)], default=(2, 0))
    monkeypatch.setattr(capture, "sounddevice", lambda: sd)
    monkeypatch.setattr(capture, "_stale", threading.Event())    # what fakes fail stays with the fakes
    monkeypatch.setattr(capture, "_abandoned", [])
    monkeypatch.setattr(capture, "_reinit", None)
    return sd


def test_devices_are_listed_default_first_and_found_by_name_or_index(fake_sd, capsys):
    devices = capture.list_input_devices()
    assert [(d.index, d.name, d.is_default) for d in devices] == [(2, "Line in", True), (1, "USB mic", False)]
    assert capture.find_input_device(None).name == "Line in"
    assert capture.find_input_device("usb").index == 1 and capture.find_input_device("1").name == "USB mic"
    with pytest.raises(CaptureError, match=r"no input device matches 'webcam'; the inputs are: 2: Line in; 1: USB mic"):
        capture.find_input_device("webcam")
    assert main(["devices"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("*   2  Line in") and "1 ch, default 48000 Hz" in out[0] and "(default input)" in out[0]
    assert "USB mic" in out[1] and "2 ch" in out[1]


def test_no_input_device_at_all_is_a_clear_error_and_exit_code_2(monkeypatch, capsys, tmp_path):
    sd = FakeSD([dev("HDMI out", 0)], default=(-1, -1))
    monkeypatch.setattr(capture, "sounddevice", lambda: sd)
    with pytest.raises(NoInputDeviceError, match="no audio input device found"):
        capture.find_input_device()
    assert main(["listen", "--model", "unused", "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err.strip().startswith("error: no audio input device found")
    assert main(["devices"]) == 2
    assert "no audio input device found" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_missing_portaudio_is_a_clear_error(no_portaudio, capsys):
    with pytest.raises(CaptureError, match=r"PortAudio library could not be loaded.*libportaudio2.*analysing files"):
        capture.sounddevice()
    assert main(["listen", "--model", "unused"]) == 2
    assert "apt-get install libportaudio2" in capsys.readouterr().err


def test_callback_downmixes_counts_overflows_and_the_rate_falls_back(fake_sd):
    usb = capture.find_input_device("USB")
    fake_sd.rates_ok = {44100}                  # the device refuses 16 kHz: open at its own rate
    cap = Capture(usb)
    assert (cap.rate_hz, cap.channels) == (44100, 1)   # mono is accepted, so no downmix needed
    fake_sd.rates_ok = {16000}
    cap = Capture(usb)
    assert (cap.rate_hz, cap.channels) == (16000, 1)
    fake_sd.check_input_settings = lambda device, samplerate, channels, dtype: (
        None if channels == 2 else (_ for _ in ()).throw(fake_sd.PortAudioError("stereo only")))
    fake_sd.total = 160 * 40
    cap = Capture(usb)
    assert cap.channels == 2
    cap.start()
    assert cap.ring.wait_for(160 * 40, timeout_s=5)
    cap.stop()
    expected = (np.arange(160 * 40) % 1000).astype(np.float32) * 2.0      # mean of (x, 3x)
    np.testing.assert_array_equal(cap.ring.read(0, 160 * 40), expected)
    assert cap.input_overflows == 4                                     # blocks 3, 13, 23, 33
    assert cap.clock_start().tzinfo is not None


def test_device_that_fails_to_open_gives_a_clear_error(fake_sd):
    fake_sd.open_error = "Device unavailable"
    cap = Capture(capture.find_input_device())
    with pytest.raises(CaptureError, match=r"could not open input device 'Line in' at 16000 Hz \(Device unavailable\)"):
        cap.start()


def test_device_vanishing_mid_stream_ends_the_ring_with_a_message(fake_sd):
    fake_sd.vanish_at = 160 * 30
    cap = Capture(capture.find_input_device())
    cap.start()
    reader = CaptureReader(cap.ring)
    got = []
    deadline = time.monotonic() + 10
    while not reader.finished and time.monotonic() < deadline:
        got.append(reader.read(timeout_s=0.05)[1])
        cap.check()
    assert reader.finished and sum(map(len, got)) == 160 * 30
    assert "stopped delivering audio after 0.3 s" in cap.ring.error and "unplugged" in cap.check()
    cap.stop()                                  # still fine after the device is gone


def test_stalled_device_counts_as_lost(fake_sd):
    fake_sd.total = 320                          # two blocks, then silence from an "active" stream
    cap = Capture(capture.find_input_device(), stall_s=0.2)
    cap.start()
    deadline = time.monotonic() + 5
    while cap.check() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "no audio for 0.2 s" in cap.ring.error and cap.ring.ended
    cap.stop()


def test_input_device_is_a_frozen_value():
    d = InputDevice(1, "mic", "ALSA", 2, 48000, True)
    with pytest.raises(AttributeError):
        d.name = "other"


# ---- issue 12 defect 3: a dead sound server never freezes the caller ---------------------------------

class HangingStream(FakeStream):
    """A stream whose stop() never returns while `release` is unset: PortAudio's audio thread holds the lock
    Pa_StopStream waits for, as it did when the sound server died mid-stream."""

    def stop(self):
        self.active = False
        self.fake.release.wait()


@pytest.fixture
def hanging_sd(fake_sd):
    fake_sd.release, fake_sd.reinits = threading.Event(), 0
    fake_sd.InputStream = lambda **kw: (HangingStream if fake_sd.hang else FakeStream)(fake_sd, **kw)

    def reinit():
        fake_sd.reinits += 1
    fake_sd._initialize = reinit
    fake_sd.hang = True
    yield fake_sd
    fake_sd.release.set()                       # lets the abandoned helper thread end


def test_stop_returns_within_a_second_when_portaudio_hangs_and_the_next_capture_works(hanging_sd, caplog):
    cap = Capture(capture.find_input_device())
    cap.start()
    assert cap.ring.wait_for(1600, timeout_s=5)
    t0 = time.monotonic()
    cap.stop()
    assert time.monotonic() - t0 < 1.5
    assert cap.ring.ended and cap.ring.error is None           # the readers get everything captured
    assert "did not stop within 1.0 s; its stream is abandoned" in caplog.text
    assert len(capture._abandoned) == 1 and any(t.name == "portaudio-stop" for t in threading.enumerate())
    hanging_sd.hang = False
    again = Capture(capture.find_input_device())                # PortAudio is re-initialised first
    assert hanging_sd.reinits == 1
    again.start()
    assert again.ring.wait_for(1600, timeout_s=5)
    again.stop()
    assert hanging_sd.reinits == 1                              # a clean stop needs no re-initialisation


def test_after_a_lost_device_the_next_capture_looks_it_up_again_by_name(hanging_sd):
    hanging_sd.hang, hanging_sd.vanish_at = False, 160 * 10
    old = capture.find_input_device("USB")                     # index 1, 44100 Hz default
    hanging_sd.rates_ok = {44100}
    cap = Capture(old)
    cap.start()
    deadline = time.monotonic() + 5
    while cap.check() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert "stopped delivering audio" in cap.check()
    cap.stop()
    # the sound server came back with the device at another index and rate
    hanging_sd.devices = [dev("USB mic", 2, 48000.0), dev("Line in", 1, 48000.0)]
    hanging_sd.default.device = [1, -1]
    hanging_sd.rates_ok = {48000}
    fresh = Capture(old)          # the stale listing said index 1 at 44100 Hz: "does not accept 44100 Hz"
    assert hanging_sd.reinits == 1
    assert (fresh.device.index, fresh.device.default_rate_hz, fresh.rate_hz) == (0, 48000, 48000)
    hanging_sd.devices = [dev("Line in", 1, 48000.0)]
    hanging_sd.default.device = [0, -1]
    capture._stale.set()
    with pytest.raises(CaptureError, match=r"input device 'USB mic' is gone; the inputs now are: 0: Line in"):
        Capture(old)


def test_a_live_session_closes_in_bounded_time_and_off_the_calling_thread(hanging_sd, tmp_path):
    from core.modelfile import load_model
    from core.session import LiveSession, Recorder
    from tests.core.test_tagger import make_energy_model
    loaded = load_model(make_energy_model(tmp_path / "energy.safetensors"))
    recorder = Recorder(tmp_path / "heard.wav")
    session = LiveSession(loaded, "cpu", Capture(capture.find_input_device()), hop_s=0.25, recorder=recorder)
    session.start()
    assert session.source.ring.wait_for(3200, timeout_s=5)
    t0 = time.monotonic()
    closing = session.close_in_background()
    assert time.monotonic() - t0 < 0.1                          # the caller (a GUI thread) goes on at once
    closing.join(3)
    assert not closing.is_alive() and time.monotonic() - t0 < 1.5
    assert session.tagger.join(0) and len(capture._abandoned) == 1
    assert sf.info(tmp_path / "heard.wav").frames == recorder.num_samples > 0   # the recording is closed


def test_refreshing_the_devices_is_bounded_while_portaudio_hangs(fake_sd, monkeypatch):
    release = threading.Event()
    fake_sd._terminate = release.wait                      # Pa_Terminate waits on an abandoned stream
    monkeypatch.setattr(capture, "REINIT_WAIT_S", 0.3)
    try:
        t0 = time.monotonic()
        with pytest.raises(CaptureError, match=r"PortAudio\) does not answer since an input failed; restart"):
            capture.refresh_devices()
        assert 0.3 <= time.monotonic() - t0 < 1.0
        t0 = time.monotonic()
        with pytest.raises(CaptureError, match="does not answer"):
            capture.refresh_devices()                      # no second Pa_Terminate beside the stuck one
        assert time.monotonic() - t0 < 0.1
        assert sum(t.name == "portaudio-reinit" for t in threading.enumerate()) == 1
    finally:
        release.set()
    capture._reinit.join(1)
    capture.refresh_devices()                              # answered at last: it works again
