"""Playing a stretch of an audio file through the sound card (sounddevice / PortAudio): listening to events.

Threads: the caller (the GUI thread, or the command line's main thread) calls `Player.play`, `play_event`,
`stop`, `position_s` and `status`, and none of them waits for audio or the disk. Each play starts a session
thread that probes the file, decodes only the region block by block (core.audio_io.iter_region), opens the
output stream as soon as the first blocks are ready and keeps decoding about `AHEAD_S` ahead of what has
been played. PortAudio's audio thread runs `_Session._callback`, which copies queued blocks into the output
and notes, in one tuple, how many frames it has handed over and when they reach the speaker; `position_s`
reads that tuple. Closing the stream runs on a closer thread that the session waits for at most
`CLOSE_TIMEOUT_S`: a PortAudio close that hangs (a sound server that went away) is abandoned, logged, and
the player stays usable.

What crosses threads: the session's block queue (a deque: the session thread appends, the callback pops)
and counters that each have one writer (CPython's GIL makes each store atomic).
"""
from __future__ import annotations

import collections
import enum
import logging
import math
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np

import core.capture as capture
from core.audio_io import AudioInfo, StreamingResampler, check_span, iter_region, probe, region_frames
from core.errors import TaggerError

__all__ = ["Player", "PlayState", "PlayerStatus", "PlaybackError", "EVENT_MARGIN_S", "CLOSE_TIMEOUT_S"]

log = logging.getLogger(__name__)

EVENT_MARGIN_S = 1.0     # an event is played with this much before and after it, to hear it in context
CLOSE_TIMEOUT_S = 1.0    # a stream whose close takes longer is abandoned (logged); the player goes on
AHEAD_S = 2.0            # decoded audio kept queued ahead of the playhead: bounded memory on long files
PREFILL_S = 0.5          # decoded before the stream starts (about 1 ms of work): a busy machine does not stutter
BLOCK_S = 0.1            # decode block


class PlaybackError(TaggerError):
    """The sound card cannot play (no PortAudio, no output device, no format it accepts)."""


class PlayState(str, enum.Enum):
    IDLE = "idle"            # nothing played yet, or stopped
    PLAYING = "playing"      # from play() until the region has been heard (or stop / a failure)
    FINISHED = "finished"    # the whole region was played
    FAILED = "failed"        # see PlayerStatus.error


@dataclass(frozen=True)
class PlayerStatus:
    """A snapshot for the GUI: what plays, where the playhead is, and why it failed."""

    state: PlayState
    position_s: float            # playhead, seconds of the file
    path: str = ""
    start_s: float = 0.0         # the region asked for (an event's, with its margins)
    end_s: float | None = None   # None: to the end of the file
    error: str = ""              # one line for the user when state is FAILED


class _Adapter:
    """File blocks (n, C) at the file's rate -> float32 (m, D) at the device's rate: NaN -> 0, clipped to
    [-1, 1] (as a 16-bit DAC would), C != D mixed to mono and copied to every output channel, resampled
    with core.audio_io's streaming resampler when the device does not take the file's rate."""

    def __init__(self, file_rate_hz: int, file_channels: int, rate_hz: int, channels: int):
        self.channels = channels
        self._mix = file_channels != channels
        width = 1 if self._mix else channels
        self._resamplers = ([StreamingResampler(file_rate_hz, rate_hz) for _ in range(width)]
                            if file_rate_hz != rate_hz else [])

    def process(self, block: np.ndarray) -> np.ndarray:
        block = np.clip(np.nan_to_num(block, nan=0.0, posinf=1.0, neginf=-1.0), -1.0, 1.0)
        if self._mix:
            block = block.mean(axis=1, keepdims=True, dtype=np.float32)                 # (n, 1)
        if self._resamplers:
            block = np.stack([r.process(block[:, c]) for c, r in enumerate(self._resamplers)], axis=1)
        return self._spread(block)

    def flush(self) -> np.ndarray:
        if not self._resamplers:
            return np.zeros((0, self.channels), dtype=np.float32)
        return self._spread(np.stack([r.flush() for r in self._resamplers], axis=1))

    def _spread(self, block: np.ndarray) -> np.ndarray:
        block = block.astype(np.float32, copy=False)
        return np.repeat(block, self.channels, axis=1) if block.shape[1] != self.channels else block


def _output_format(sd: Any, device: int | str | None, info: AudioInfo) -> tuple[int, int, int]:
    """(device index, rate, channels) to play `info`'s audio: the file's own rate and channels where the
    device takes them, else its default rate and stereo or mono. PlaybackError if there is no output."""
    try:
        found = sd.query_devices(device, kind="output")
    except (sd.PortAudioError, ValueError) as e:
        which = "no audio output device" if device is None else f"no audio output device matches {device!r}"
        raise PlaybackError(f"{which} ({e}): PortAudio lists no speaker or headphones to play on; connect "
                            "one (or start the sound server) and try again") from None
    index, name = int(found["index"]), str(found["name"])
    rates = list(dict.fromkeys([info.sample_rate_hz, round(found["default_samplerate"])]))
    counts = [c for c in dict.fromkeys([info.num_channels, 2, 1]) if c <= found["max_output_channels"]]
    for rate in rates:
        for channels in counts:
            try:
                sd.check_output_settings(device=index, samplerate=rate, channels=channels, dtype="float32")
                return index, rate, channels
            except Exception:  # PortAudioError or ValueError: this combination is not supported
                continue
    raise PlaybackError(f"output device {name!r} takes neither {info.sample_rate_hz} Hz nor its own "
                        f"{rates[-1]} Hz float32 output; choose another output device")


class _Session:
    """One play request: its decoder/stream thread, its queue and its playhead (see the module docstring)."""

    def __init__(self, path: str, start_s: float, end_s: float | None, device: int | str | None,
                 previous: "_Session | None"):
        self.path, self.start_s, self.end_s, self.device = path, start_s, end_s, device
        self.state, self.error = PlayState.PLAYING, ""
        self.stopping = threading.Event()      # stop() asked; the callback aborts, the thread closes
        self.released = threading.Event()      # the stream is closed (or abandoned): the next may open one
        self.abandoned = False                 # its close hung for CLOSE_TIMEOUT_S
        self.underflows = 0                    # callbacks that found no decoded audio (the disk was late)
        self._previous = previous
        self._blocks: collections.deque[np.ndarray] = collections.deque()
        self._head = 0                         # frames of _blocks[0] already played (callback only)
        self._queued = 0                       # frames appended (session thread only)
        self._taken = 0                        # frames handed to PortAudio (callback only)
        self._decoded_all = False
        self._finished = threading.Event()     # PortAudio played the last frame (finished_callback)
        self._first_s = start_s                # where the region really starts (rounded to a frame)
        self._rate_hz = 0
        self._latency_s = 0.0                  # the stream's output latency, where the host gives no DAC time
        # (frames handed over before the last callback's block, after it, monotonic time its first frame
        # reaches the DAC): replaced whole by the callback, so readers never see a half update
        self._clock: tuple[int, int, float] = (0, 0, math.inf)
        self._last_position_s = start_s
        self._sd: Any = None
        self.thread = threading.Thread(target=self._run, name="player", daemon=True)

    # ---- the session thread ----------------------------------------------------------------------

    def _run(self) -> None:
        stream = None
        try:
            if self._previous is not None:   # two streams never open at once; a hung close is not waited out
                self._previous.released.wait(CLOSE_TIMEOUT_S + 0.5)
                self._previous = None
            info = probe(self.path)
            first, stop = region_frames(info, self.start_s, self.end_s)
            self._first_s = first / info.sample_rate_hz
            self._last_position_s = self._first_s
            self._sd = capture.sounddevice("audio playback", PlaybackError, "to play audio")
            index, self._rate_hz, channels = _output_format(self._sd, self.device, info)
            blocks = self._converted(info, first, stop, _Adapter(info.sample_rate_hz, info.num_channels,
                                                                 self._rate_hz, channels))
            while self._queued < PREFILL_S * self._rate_hz and (block := next(blocks, None)) is not None:
                self._queue(block)
            if self.stopping.is_set():
                return
            stream = self._open(index, channels)
            for block in blocks:
                while self._queued - self._taken > AHEAD_S * self._rate_hz and not self._ended():
                    self.stopping.wait(0.02)
                if self._ended():
                    break
                self._queue(block)
            else:
                self._decoded_all = True
            while not self._ended():
                self.stopping.wait(0.02)
            if self.stopping.is_set():
                return
            if self._blocks or not self._decoded_all:   # PortAudio ended the stream (an error, a lost device)
                raise PlaybackError(f"the audio output stopped after {self._taken / self._rate_hz:.1f} s of "
                                    f"{self._queued / self._rate_hz:.1f} s; the device was probably unplugged "
                                    "or its sound server stopped")
            self.state = PlayState.FINISHED
        except TaggerError as e:   # AudioError, PlaybackError
            self._fail(str(e))
        except Exception as e:     # noqa: BLE001 - PortAudio errors, a bug: the GUI must hear of it
            self._fail(f"playback failed: {type(e).__name__}: {' '.join(str(e).split())}")
        finally:
            if stream is not None:
                self._close(stream)
            self.released.set()

    def _ended(self) -> bool:
        return self.stopping.is_set() or self._finished.is_set()

    def _converted(self, info: AudioInfo, first: int, stop: int | None, adapter: _Adapter) -> Iterator[np.ndarray]:
        block_frames = max(1, round(BLOCK_S * info.sample_rate_hz))
        for block in iter_region(info, first, stop, block_frames):
            yield adapter.process(block)
        yield adapter.flush()

    def _queue(self, block: np.ndarray) -> None:
        if len(block):
            self._blocks.append(np.ascontiguousarray(block))
            self._queued += len(block)

    def _open(self, index: int, channels: int) -> Any:
        sd = self._sd
        try:
            stream = sd.OutputStream(device=index, samplerate=self._rate_hz, channels=channels, dtype="float32",
                                     callback=self._callback, finished_callback=self._finished.set)
        except Exception as e:   # PortAudioError, ValueError
            raise PlaybackError(f"could not open the audio output at {self._rate_hz} Hz ({e}); check that it "
                                "is connected and not used exclusively by another program") from None
        self._latency_s = float(stream.latency or 0.0)
        try:
            stream.start()
        except Exception as e:
            self._close(stream)
            raise PlaybackError(f"could not start the audio output ({e})") from None
        return stream

    def _close(self, stream: Any) -> None:
        """Close on a closer thread; wait CLOSE_TIMEOUT_S at most, then abandon the stream (logged)."""
        closer = threading.Thread(target=_close_quietly, args=(stream,), name="player-close", daemon=True)
        closer.start()
        closer.join(CLOSE_TIMEOUT_S)
        if closer.is_alive():
            self.abandoned = True
            log.warning("the audio output did not close within %.1f s (its sound server may be gone); the "
                        "stream is abandoned and the next play opens a new one", CLOSE_TIMEOUT_S)

    def _fail(self, message: str) -> None:
        if not self.stopping.is_set():
            self.state, self.error = PlayState.FAILED, message
        log.debug("playback of %s: %s", self.path, message)

    # ---- PortAudio's audio thread ----------------------------------------------------------------

    def _callback(self, outdata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if self.stopping.is_set():
            raise self._sd.CallbackAbort
        filled = 0
        while filled < frames and self._blocks:
            block = self._blocks[0]
            n = min(frames - filled, len(block) - self._head)
            outdata[filled:filled + n] = block[self._head:self._head + n]
            filled, self._head = filled + n, self._head + n
            if self._head == len(block):
                self._blocks.popleft()
                self._head = 0
        outdata[filled:] = 0
        dac_s = time_info.outputBufferDacTime    # 0 where the host API does not say: take the stream's latency
        ahead_s = max(0.0, dac_s - time_info.currentTime) if dac_s > 0 else self._latency_s
        self._clock = (self._taken, self._taken + filled, time.monotonic() + ahead_s)
        self._taken += filled
        if filled < frames:
            if self._decoded_all and not self._blocks:
                raise self._sd.CallbackStop   # PortAudio plays what it holds, then calls finished_callback
            self.underflows += 1

    # ---- any thread --------------------------------------------------------------------------------

    def position_s(self) -> float:
        """Seconds of the file at the speaker: frames handed over, less those still in PortAudio's buffers."""
        if self.state is PlayState.FINISHED:
            self._last_position_s = self._first_s + self._taken / self._rate_hz
        elif self.state is PlayState.PLAYING and not self.stopping.is_set() and self._rate_hz:
            before, after, dac_time = self._clock   # frames before `before` play until dac_time
            played = min(max(0.0, before + (time.monotonic() - dac_time) * self._rate_hz), after)
            self._last_position_s = max(self._last_position_s, self._first_s + played / self._rate_hz)
        return self._last_position_s


def _close_quietly(stream: Any) -> None:
    try:
        stream.close(ignore_errors=True)   # aborts an active stream: pending buffers are dropped
    except Exception as e:  # noqa: BLE001 - the device may be gone already
        log.debug("closing the audio output: %s", e)


class Player:
    """Plays regions of audio files on one output device, one at a time; a new play replaces the last.

    device: None = the system's default output, else a PortAudio index or (part of) a name. Nothing here
    raises for a missing sound card or a bad file: the status turns FAILED with the reason in `error`.
    """

    def __init__(self, device: int | str | None = None):
        self.device = device
        self._session: _Session | None = None

    def play(self, path: str | Path, start_s: float = 0.0, end_s: float | None = None) -> None:
        """Play seconds [start_s, end_s] of the file (end_s None: to its end); returns at once.

        Times past the file are clipped to it. ValueError (at once) for times that are not finite or
        an end before the start; everything else (no such file, no output device) turns the status FAILED.
        """
        check_span(start_s, end_s)
        self.stop()
        self._session = _Session(str(path), float(start_s), None if end_s is None else float(end_s),
                                 self.device, previous=self._session)
        self._session.thread.start()

    def play_event(self, path: str | Path, start_s: float, end_s: float, margin_s: float = EVENT_MARGIN_S) -> None:
        """Play an event with margin_s before and after it (clipped to the file): the sound in its context."""
        check_span(start_s, end_s)
        self.play(path, max(0.0, start_s - margin_s), end_s + margin_s)

    def stop(self) -> None:
        """Stop at once (the state turns IDLE, the playhead stays where it was); returns without waiting."""
        session = self._session
        if session is not None and session.state is PlayState.PLAYING:
            session.position_s()          # freeze the playhead where the sound stops
            session.stopping.set()
            session.state = PlayState.IDLE

    close = stop

    @property
    def state(self) -> PlayState:
        return self._session.state if self._session is not None else PlayState.IDLE

    @property
    def error(self) -> str:
        return self._session.error if self._session is not None else ""

    def position_s(self) -> float:
        """The playhead in seconds of the file, for a GUI timer to poll: never moves backwards within one
        play, the region's start before the first sound, its end when FINISHED."""
        return self._session.position_s() if self._session is not None else 0.0

    def status(self) -> PlayerStatus:
        session = self._session
        if session is None:
            return PlayerStatus(PlayState.IDLE, 0.0)
        return PlayerStatus(session.state, session.position_s(), session.path, session.start_s, session.end_s,
                            session.error)

    def wait(self, timeout_s: float | None = None) -> bool:
        """Block until the current play has ended and its stream is closed (for the CLI and tests); True
        if it has within timeout_s. Never call it from the GUI thread."""
        session = self._session
        return session is None or session.released.wait(timeout_s)
