"""Microphone capture with sounddevice (PortAudio): device listing, the input stream, the reader side.

Threads: `list_input_devices`, `find_input_device` and `Capture.start/check/stop` run on the thread that
controls the session (CLI main thread or a GUI worker). `Capture._callback` runs on PortAudio's audio
thread and only downmixes into the RingBuffer and counts overflows. PortAudio's stop/close can hang when
the sound server dies under a stream (its audio thread holds a lock the stop waits for), so `stop` runs them
on a helper thread and gives up after STOP_WAIT_S; after any failure the next Capture re-initialises
PortAudio and looks its device up again by name. `CaptureReader` belongs to the
consumer thread (the tagger): it reads the ring and, when the device runs at another rate, resamples
to 16 kHz with core.audio_io.StreamingResampler, whose output equals one-shot resampling for any chunking.

sounddevice is imported lazily: without Debian's libportaudio2 its import raises OSError, which becomes a
CaptureError with a clear message while the rest of the program (file analysis) keeps working.
"""
from __future__ import annotations

import atexit
import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import numpy as np

from core.audio_io import StreamingResampler
from core.errors import TaggerError
from core.ringbuffer import OverrunError, RingBuffer

__all__ = ["CaptureError", "NoInputDeviceError", "InputDevice", "Capture", "CaptureReader",
           "list_input_devices", "find_input_device", "refresh_devices", "MODEL_RATE_HZ", "FilePlayback"]

log = logging.getLogger(__name__)

MODEL_RATE_HZ = 16000      # what the tagger consumes; devices at other rates are resampled on the reader side
RING_S = 30.0              # seconds of audio the ring keeps for the tagger to catch up
STALL_S = 5.0              # no audio for this long from an "active" stream counts as a lost device
STOP_WAIT_S = 1.0          # the longest Capture.stop() waits for PortAudio before abandoning the stream
REINIT_WAIT_S = 5.0        # the longest a re-initialisation of PortAudio may take (ALSA probes every card)

NOT_ANSWERING = ("the audio system (PortAudio) does not answer since an input failed; restart the program to "
                 "listen again (analysing files still works)")

_abandoned: list[Any] = []          # streams whose stop/close never returned: referenced so they are never
                                    # collected (and closed again) while PortAudio is still inside them
_reinit: _PortAudioCall | None = None   # the last re-initialisation of PortAudio (refresh_devices)
_stale = threading.Event()          # a stream failed or was abandoned and none has started since: PortAudio's
                                    # device list may be that of a sound server that is gone; re-initialise
                                    # before each open until a stream starts again


class CaptureError(TaggerError):
    """The audio input cannot be used (no PortAudio, device failed to open or disappeared)."""


class NoInputDeviceError(CaptureError):
    """This machine has no audio input device at all."""


def sounddevice(what: str = "audio input", error: type[TaggerError] = CaptureError,
                use: str = "to listen to a microphone") -> Any:
    """The sounddevice module; `error` (CaptureError for input) when PortAudio is missing."""
    try:
        import sounddevice as sd
    except OSError as e:  # "PortAudio library not found"
        raise error(
            f"{what} is unavailable: the PortAudio library could not be loaded ({e}); install it "
            f"(Debian/Ubuntu: apt-get install libportaudio2) {use}; analysing files works without it") from None
    return sd


@dataclass(frozen=True)
class InputDevice:
    """An input device as PortAudio lists it."""

    index: int
    name: str
    host_api: str
    max_channels: int
    default_rate_hz: int
    is_default: bool


def refresh_devices() -> None:
    """Re-initialise PortAudio so devices (or a sound server) that appeared since start-up are seen.

    Only call it while no stream is open. Bounded like Capture.stop: Pa_Terminate closes the streams
    PortAudio still holds, and one abandoned by Capture.stop can keep it waiting; then this raises a
    CaptureError after REINIT_WAIT_S (and again at once while that re-initialisation is still stuck).
    """
    global _reinit
    if _reinit is not None and _reinit.is_alive():
        raise CaptureError(NOT_ANSWERING)
    sd = sounddevice()

    def reinit() -> None:
        sd._terminate()
        sd._initialize()

    _reinit = _PortAudioCall(reinit, "portaudio-reinit")
    if not _reinit.returned(REINIT_WAIT_S):
        raise CaptureError(NOT_ANSWERING)


class _PortAudioCall(threading.Thread):
    """A PortAudio call that may never return (a dead sound server), started on a daemon thread."""

    def __init__(self, call: Callable[[], object], name: str):
        super().__init__(name=name, daemon=True)
        self._call, self._error = call, None
        self.start()

    def run(self) -> None:
        try:
            self._call()
        except Exception as e:  # noqa: BLE001 - handed to the caller in returned()
            self._error = e

    def returned(self, timeout_s: float) -> bool:
        """Wait up to timeout_s: True when the call returned (its exception is raised here), False when it is
        still inside PortAudio, where it is left to return on its own."""
        self.join(timeout_s)
        if self.is_alive():
            return False
        if self._error is not None:
            raise self._error
        return True


def _abandon(stream: Any, sd: Any) -> None:
    """Keep a stream that did not stop, and drop sounddevice's exit handler: at exit it would call
    Pa_Terminate, which waits for the same lock, and the program would hang instead of ending."""
    _abandoned.append(stream)
    _stale.set()
    exit_handler = getattr(sd, "_exit_handler", None)
    if exit_handler is not None:
        atexit.unregister(exit_handler)


def _current(device: InputDevice) -> InputDevice:
    """After a failure: re-initialise PortAudio and look `device` up again by name (its index and default
    rate may have changed with the sound server); CaptureError when it is gone or PortAudio does not answer."""
    refresh_devices()
    devices = list_input_devices()
    if not devices:
        raise NoInputDeviceError(
            f"no audio input device found: {device.name!r} is gone and PortAudio lists no other input; connect "
            "one (or start the sound server) and try again, or analyse files with `analyze`")
    for found in devices:
        if found.name == device.name:
            return found
    listed = "; ".join(f"{d.index}: {d.name}" for d in devices)
    raise CaptureError(f"input device {device.name!r} is gone; the inputs now are: {listed}")


def list_input_devices() -> list[InputDevice]:
    """Every device with input channels, the default input first, then in PortAudio's order."""
    sd = sounddevice()
    try:
        devices = sd.query_devices()
        apis = sd.query_hostapis()
        default = sd.default.device[0]
    except sd.PortAudioError as e:
        raise CaptureError(f"PortAudio could not list the audio devices ({e})") from None
    if default is None or default < 0:
        try:
            default = sd.query_devices(kind="input")["index"]
        except (sd.PortAudioError, KeyError, TypeError, ValueError):
            default = -1
    found = [InputDevice(index=i, name=str(d["name"]), host_api=str(apis[d["hostapi"]]["name"]),
                         max_channels=int(d["max_input_channels"]), default_rate_hz=round(d["default_samplerate"]),
                         is_default=(i == default))
             for i, d in enumerate(devices) if d["max_input_channels"] > 0]
    return sorted(found, key=lambda d: not d.is_default)


def find_input_device(spec: str | int | None = None) -> InputDevice:
    """The device for `spec`: None = default input, an index, or (part of) a name, case-insensitive."""
    devices = list_input_devices()
    if not devices:
        raise NoInputDeviceError(
            "no audio input device found: PortAudio lists no microphone or line input on this machine; "
            "connect one (or start the sound server) and try again, or analyse files with `analyze`")
    if spec is None or str(spec).strip() == "":
        return devices[0]
    text = str(spec).strip()
    if text.isdigit():
        matches = [d for d in devices if d.index == int(text)]
    else:
        matches = [d for d in devices if d.name == text] or [d for d in devices if text.lower() in d.name.lower()]
    if not matches:
        listed = "; ".join(f"{d.index}: {d.name}" for d in devices)
        raise CaptureError(f"no input device matches {text!r}; the inputs are: {listed} "
                           "(pass an index or part of a name; see `python main.py devices`)")
    return matches[0]


def _settings_error(sd: Any, device: InputDevice, rate_hz: int, channels: int) -> str | None:
    """None when the device takes this float32 input, else PortAudio's reason."""
    try:
        sd.check_input_settings(device=device.index, samplerate=rate_hz, channels=channels, dtype="float32")
        return None
    except Exception as e:  # PortAudioError or ValueError: unsupported combination, or a device that is gone
        return str(e) or type(e).__name__


class Capture:
    """An input stream writing 16 kHz-or-native-rate mono float32 into a RingBuffer.

    rate_hz: None = 16 kHz when the device accepts it, else its own default rate (the reader resamples).
    Use start(), then poll check() from the controlling thread; stop() ends the ring for the readers.
    """

    def __init__(self, device: InputDevice, rate_hz: int | None = None, ring_s: float = RING_S,
                 stall_s: float = STALL_S):
        self._sd = sounddevice()
        if _stale.is_set():          # the last stream failed: its sound server may have restarted since
            device = _current(device)
        self.device = device
        self.stall_s = stall_s
        if rate_hz is None:
            takes_16k = _settings_error(self._sd, device, MODEL_RATE_HZ, 1) is None
            rate_hz = MODEL_RATE_HZ if takes_16k else device.default_rate_hz
        self.rate_hz = int(rate_hz)
        errors = {c: _settings_error(self._sd, device, self.rate_hz, c)
                  for c in (1, min(2, device.max_channels), device.max_channels)}
        channels = [c for c, error in errors.items() if error is None]
        if not channels:
            if self.rate_hz == device.default_rate_hz:   # refused its own rate: gone with its server?
                _stale.set()
            raise CaptureError(self._refusal(errors[1]))
        self.channels = channels[0]
        self.ring = RingBuffer.for_seconds(ring_s, self.rate_hz)
        self.input_overflows = 0     # PortAudio reported input overflow (audio lost before us)
        self._stream: Any = None
        self._started_wall: datetime | None = None
        self._started_perf = 0.0
        self._last_index, self._last_change = 0, 0.0
        self._stopping = False
        self._latency_s = 0.0

    def _refusal(self, error: str) -> str:
        """Why the device takes no input at self.rate_hz, in words."""
        name = self.device.name
        if self.rate_hz == self.device.default_rate_hz:
            return (f"input device {name!r} cannot be opened ({error}); it was probably unplugged, is used "
                    "exclusively by another program, or its sound server stopped; check it and try again")
        return (f"input device {name!r} does not accept {self.rate_hz} Hz float32 input ({error}; its default "
                f"rate is {self.device.default_rate_hz} Hz); choose another rate or device")

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        self.ring.write(indata)                     # (frames, channels) -> mono, into the ring
        if status.input_overflow:
            self.input_overflows += 1

    def _finished(self) -> None:  # PortAudio thread: the stream stopped (by us, or the device went away)
        if not self.ring.ended and self._stream is not None and not self._stopping:
            self._lost("the stream stopped")

    def _lost(self, what: str) -> None:
        """The device went away: end the ring with the reason; the next Capture re-initialises PortAudio."""
        _stale.set()
        self.ring.close(error=self._lost_text(what))

    def start(self) -> None:
        """Open and start the stream; CaptureError with the device and the reason if that fails."""
        self._stopping = False
        try:
            self._stream = self._sd.InputStream(
                device=self.device.index, samplerate=self.rate_hz, channels=self.channels, dtype="float32",
                callback=self._callback, finished_callback=self._finished)
            self._started_wall, self._started_perf = datetime.now(timezone.utc), time.perf_counter()
            self._stream.start()
            self._latency_s = float(self._stream.latency or 0.0)
            _stale.clear()
        except Exception as e:  # PortAudioError, or ValueError for settings
            self._stream = None
            _stale.set()
            raise CaptureError(f"could not open input device {self.device.name!r} at {self.rate_hz} Hz "
                               f"({e}); check that it is connected and not used exclusively by another "
                               "program, or pick another with --input") from None
        self._last_index, self._last_change = 0, time.monotonic()

    def _lost_text(self, what: str) -> str:
        heard = self.ring.write_index / self.rate_hz
        return (f"input device {self.device.name!r} stopped delivering audio after {heard:.1f} s ({what}); "
                "it was probably unplugged or its sound server stopped")

    def check(self) -> str | None:
        """From the controlling thread: close the ring and return a message if the device was lost."""
        if self.ring.ended or self._stream is None:   # finished, or not started / already stopped
            return self.ring.error
        if not self._stream.active:
            self._lost("the stream is no longer active")
        elif self.ring.write_index != self._last_index:
            self._last_index, self._last_change = self.ring.write_index, time.monotonic()
        elif time.monotonic() - self._last_change > self.stall_s:
            self._lost(f"no audio for {self.stall_s:g} s")
        return self.ring.error

    def stop(self, end_index: int | None = None) -> None:
        """End the ring at end_index (default: all captured), then stop and close the stream.

        Never raises and returns within about STOP_WAIT_S: a stream that PortAudio does not stop by then
        (a dead sound server can leave it waiting forever) is abandoned on its helper thread.
        """
        self._stopping = True
        self.ring.close(end_index)
        stream, self._stream = self._stream, None
        if stream is None:
            return

        def stop_and_close() -> None:
            stream.stop()
            stream.close()

        try:
            stopped = _PortAudioCall(stop_and_close, "portaudio-stop").returned(STOP_WAIT_S)
        except Exception as e:  # noqa: BLE001 - the device may already be gone; nothing to do about it
            log.debug("closing the input stream: %s", e)
            return
        if not stopped:
            log.warning("input device %r did not stop within %.1f s; its stream is abandoned and PortAudio "
                        "is re-initialised before the next input opens", self.device.name, STOP_WAIT_S)
            _abandon(stream, self._sd)

    def clock_start(self) -> datetime:
        """Tz-aware wall-clock time of stream sample 0 (for the clock_start export column only).

        The first block arrived `first_arrival - started` seconds after start(); its first sample was
        captured one block length plus the input latency before that.
        """
        start = self._started_wall or datetime.now(timezone.utc)
        first = self.ring.first_arrival
        if first is not None:
            before_s = self.ring.first_write_samples / self.rate_hz + self._latency_s
            start += timedelta(seconds=first - self._started_perf - before_s)
        return start.astimezone()

    def __enter__(self) -> "Capture":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class CaptureReader:
    """The consumer side: reads a capture ring and yields 16 kHz mono chunks with absolute 16 kHz indices.

    Owned by one thread. At the device rate r != 16 kHz the samples go through a StreamingResampler, so
    the stream equals one-shot resampling of everything captured. After an overrun (the reader fell more
    than the ring's length behind) it jumps ahead to a point where input and output indices align exactly
    (a multiple of the reduced rate ratio) and restarts the resampler: the chunk then starts later than
    the previous one ended, and the consumer sees the gap.
    """

    def __init__(self, ring: RingBuffer, target_rate_hz: int = MODEL_RATE_HZ, start: int = 0):
        self.ring = ring
        self.rate_hz = ring.sample_rate_hz
        self.target_rate_hz = target_rate_hz
        self._resampler = StreamingResampler(self.rate_hz, target_rate_hz)
        g = math.gcd(self.rate_hz, target_rate_hz)
        self._orig, self._new = self.rate_hz // g, target_rate_hz // g
        self._reader = ring.reader(start)
        self.position = start * self._new // self._orig   # 16 kHz index of the next output sample
        self._flushed = False

    @property
    def overruns(self) -> int:
        return self._reader.overruns

    @property
    def lost_samples(self) -> int:
        return self._reader.lost_samples

    @property
    def finished(self) -> bool:
        return self._flushed

    @property
    def pending(self) -> int:
        """Ring samples written but not read yet (how far this reader is behind the writer)."""
        return self._reader.available

    def capture_index_for(self, target_index: int) -> int:
        """Ring samples needed before 16 kHz sample `target_index - 1` can be produced (approximate)."""
        width = getattr(self._resampler, "_width", 0)  # input samples the kernel reaches past an output
        return -(-target_index * self._orig // self._new) + width

    def read(self, timeout_s: float = 0.05, max_input: int | None = None) -> tuple[int, np.ndarray]:
        """(16 kHz index of the first sample, new samples (N,) float32); waits up to timeout_s for input.

        At the end of the stream the resampler's tail comes out, then `finished` turns True.
        """
        if self._flushed:
            return self.position, np.zeros(0, dtype=np.float32)
        try:
            _, raw = self._reader.read(max_input, timeout_s=timeout_s)
        except OverrunError as e:
            log.warning("%s", e)
            cursor = self._reader.resync(align=self._orig, margin=self.ring.capacity // 10)
            self._resampler.reset()
            self.position = cursor // self._orig * self._new
            _, raw = self._reader.read(max_input)
        start = self.position
        out = self._resampler.process(raw)
        if self._reader.finished and self._reader.available <= 0:
            out = np.concatenate([out, self._resampler.flush()])
            self._flushed = True
        self.position += len(out)
        return start, out


class FilePlayback:
    """A file played into a ring as if it were an input device: a Capture look-alike for demos, tests
    and screenshots without a sound card. A thread writes 16 kHz blocks at `speed` x real time;
    `fail_after_s` makes the "device" vanish at that point of the file (the ring closes with an error).
    """

    def __init__(self, path, speed: float = 1.0, fail_after_s: float | None = None, block_s: float = 0.1):
        from core.audio_io import read_audio
        self.samples = read_audio(path, MODEL_RATE_HZ)                      # (N,) float32, AudioError
        self.rate_hz = MODEL_RATE_HZ
        self.device = self.device_for(path)
        self.ring = RingBuffer.for_seconds(RING_S, self.rate_hz)
        self.input_overflows = 0
        self.speed, self.fail_after_s = speed, fail_after_s
        self.block = max(1, round(block_s * self.rate_hz))
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = datetime.now(timezone.utc)

    @staticmethod
    def device_for(path) -> InputDevice:
        """How the playback of `path` is listed as an input (without reading the file)."""
        return InputDevice(-1, f"playback of {Path(path).name}", "file", 1, MODEL_RATE_HZ, True)

    def start(self) -> None:
        self._started = datetime.now(timezone.utc)
        self._thread = threading.Thread(target=self._play, name="playback", daemon=True)
        self._thread.start()

    def _play(self) -> None:
        t0 = time.monotonic()
        for i in range(0, len(self.samples), self.block):
            if self.fail_after_s is not None and i >= self.fail_after_s * self.rate_hz:
                self.ring.close(error=f"input device {self.device.name!r} stopped delivering audio after "
                                      f"{i / self.rate_hz:.1f} s (it was unplugged)")
                return
            due = t0 + i / self.rate_hz / self.speed       # absolute schedule: no drift
            if self._stop.wait(max(0.0, due - time.monotonic())):
                return
            self.ring.write(self.samples[i:i + self.block])
        self.ring.close()

    def stop(self, end_index: int | None = None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(2.0)
        if not self.ring.ended:
            self.ring.close(end_index)

    def check(self) -> str | None:
        return self.ring.error

    def clock_start(self) -> datetime:
        return self._started.astimezone()
