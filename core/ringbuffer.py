"""A fixed-capacity float32 ring of mono audio, addressed by absolute int64 sample indices.

The one structure shared between threads: one writer (the PortAudio callback, or a file feeder in tests
and benchmarks) and any number of readers (the tagger thread, a spectrogram view, ...), each with its own
cursor (`RingReader`). Sample i of the stream is sample i forever; the ring keeps the last `capacity`
of them. Reads return copies. A read of samples already overwritten raises `OverrunError`.

Lock-free on the writer side (the audio callback never waits): the writer first announces the index it
is about to write up to (`_reserved`), copies, then publishes `_write_index`. A reader copies, then
checks against `_reserved` that nothing it copied was being overwritten meanwhile. This relies on the
GIL making each int store and load atomic and ordered, as in CPython 3.11. Readers that wait for data
sleep on a condition the writer notifies without ever blocking (a missed notification costs a reader at
most one `wait` timeout).
"""
from __future__ import annotations

import threading
import time

import numpy as np

from core.errors import TaggerError

__all__ = ["OverrunError", "RingBuffer", "RingReader"]

ARRIVAL_LOG = 4096  # writes remembered for arrival_time (about 40 s of 10 ms callbacks)


class OverrunError(TaggerError):
    """A reader asked for samples that the writer has already overwritten."""

    def __init__(self, start: int, oldest: int, capacity: int, sample_rate_hz: int):
        self.start, self.oldest = start, oldest
        behind_s = (oldest - start) / sample_rate_hz
        super().__init__(
            f"samples from index {start} were already overwritten: the ring keeps only the last {capacity} "
            f"samples ({capacity / sample_rate_hz:.1f} s) and now starts at index {oldest}, so the reader is "
            f"{behind_s:.2f} s behind; read more often, or make the ring larger")


class RingBuffer:
    """Mono float32 ring; `write` is for exactly one thread, every other method is for any thread."""

    def __init__(self, capacity: int, sample_rate_hz: int):
        if capacity <= 0 or sample_rate_hz <= 0:
            raise ValueError(f"capacity and sample_rate_hz must be positive, got {capacity}, {sample_rate_hz}")
        self.capacity = int(capacity)
        self.sample_rate_hz = int(sample_rate_hz)
        self._data = np.zeros(self.capacity, dtype=np.float32)
        self._write_index = 0      # samples published: readable are [oldest_index, write_index)
        self._reserved = 0         # >= _write_index while a write is in progress
        self._end_index: int | None = None  # set by close(): the stream ends here
        self.error: str | None = None       # why the stream ended early (device lost, ...), else None
        self.first_arrival: float | None = None  # time.perf_counter() when the first samples arrived
        self.first_write_samples = 0              # ... and how many came in that first write
        self._log_end = np.zeros(ARRIVAL_LOG, dtype=np.int64)      # write_index after write n
        self._log_time = np.zeros(ARRIVAL_LOG, dtype=np.float64)   # perf_counter() after write n
        self._num_writes = 0
        self._cond = threading.Condition()

    @classmethod
    def for_seconds(cls, capacity_s: float, sample_rate_hz: int) -> "RingBuffer":
        return cls(max(1, round(capacity_s * sample_rate_hz)), sample_rate_hz)

    # ---- writer (one thread: the audio callback) -------------------------------------------------------

    def write(self, block: np.ndarray) -> None:
        """Append a block (N,) or (N, C); channels are averaged straight into the ring (no other copy)."""
        n = block.shape[0]
        if n == 0:
            return
        if n > self.capacity:  # only the newest `capacity` samples can be kept
            self._write_index = self._reserved = self._write_index + n - self.capacity
            block, n = block[n - self.capacity:], self.capacity
        start = self._write_index
        self._reserved = start + n
        pos = start % self.capacity
        first = min(n, self.capacity - pos)
        if block.ndim == 1:
            self._data[pos:pos + first] = block[:first]
            self._data[:n - first] = block[first:]
        else:
            np.mean(block[:first], axis=1, out=self._data[pos:pos + first])
            np.mean(block[first:], axis=1, out=self._data[:n - first])
        self._write_index = start + n
        now = time.perf_counter()
        slot = self._num_writes % ARRIVAL_LOG
        self._log_end[slot], self._log_time[slot] = start + n, now
        self._num_writes += 1
        if self.first_arrival is None:
            self.first_arrival, self.first_write_samples = now, n
        if self._cond.acquire(blocking=False):  # never wait in the callback
            self._cond.notify_all()
            self._cond.release()

    def close(self, end_index: int | None = None, error: str | None = None) -> None:
        """End the stream at `end_index` (default: what has been written so far; may lie in the future,
        e.g. a --duration limit); readers drain up to it and then finish. Any thread may call it.

        Several calls keep the earliest end; `error` says why the stream ended early (shown to the user).
        """
        end = self._write_index if end_index is None else int(end_index)
        if self._end_index is None or end < self._end_index:
            self._end_index = end
        if error and self.error is None:
            self.error = error
        with self._cond:
            self._cond.notify_all()

    # ---- any thread --------------------------------------------------------------------------------------

    @property
    def write_index(self) -> int:
        """Absolute index of the next sample to be written (= samples written so far, capped at the end)."""
        w = self._write_index
        return w if self._end_index is None else min(w, self._end_index)

    @property
    def oldest_index(self) -> int:
        """Absolute index of the oldest sample still held."""
        return max(0, self._reserved - self.capacity)

    @property
    def end_index(self) -> int | None:
        """Where the stream ends (None while open); samples past it are never handed out."""
        return self._end_index

    @property
    def ended(self) -> bool:
        """The stream has an end and everything up to it has been written."""
        return self._end_index is not None and self._write_index >= self._end_index

    def read(self, start: int, stop: int) -> np.ndarray:
        """Copy of samples [start, stop) as float32. OverrunError if any was overwritten."""
        if stop > self.write_index or start > stop or start < 0:
            raise ValueError(f"cannot read samples [{start}, {stop}): the ring holds "
                             f"[{self.oldest_index}, {self.write_index})")
        if start < self.oldest_index:
            raise OverrunError(start, self.oldest_index, self.capacity, self.sample_rate_hz)
        a, b = start % self.capacity, stop % self.capacity
        if stop - start == 0:
            out = np.zeros(0, dtype=np.float32)
        elif a < b:
            out = self._data[a:b].copy()
        else:
            out = np.concatenate([self._data[a:], self._data[:b]])
        if start < self._reserved - self.capacity:  # overwritten while we copied
            raise OverrunError(start, self.oldest_index, self.capacity, self.sample_rate_hz)
        return out

    def wait_for(self, index: int, timeout_s: float) -> bool:
        """Wait until sample `index - 1` is written or the stream has ended; True if so."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while self.write_index < index and not self.ended:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.02))  # bounded: the writer's notify is best-effort
        return True

    def arrival_time(self, index: int) -> float | None:
        """time.perf_counter() at which sample `index` was published, None if no longer remembered."""
        n = self._num_writes
        count = min(n, ARRIVAL_LOG)
        slots = (np.arange(n - count, n) % ARRIVAL_LOG)  # oldest first
        ends = self._log_end[slots]
        k = int(np.searchsorted(ends, index, side="right"))
        if k >= count or (k == 0 and n > ARRIVAL_LOG):
            return None
        return float(self._log_time[slots[k]])

    def reader(self, start: int | None = None) -> "RingReader":
        """A new reader whose cursor starts at `start` (default: the oldest sample held)."""
        return RingReader(self, self.oldest_index if start is None else start)


class RingReader:
    """One consumer's cursor into a RingBuffer. Owned by one thread."""

    def __init__(self, ring: RingBuffer, start: int):
        self.ring = ring
        self.cursor = int(start)   # absolute index of the next sample this reader will get
        self.overruns = 0          # times this reader fell behind the writer
        self.lost_samples = 0      # samples it never got because of that

    @property
    def available(self) -> int:
        return self.ring.write_index - self.cursor

    @property
    def finished(self) -> bool:
        """The stream has ended and this reader has everything."""
        end = self.ring.end_index
        return end is not None and self.cursor >= end

    def read(self, max_samples: int | None = None, timeout_s: float = 0.0) -> tuple[int, np.ndarray]:
        """(absolute index of the first sample, copy of the new samples), waiting up to timeout_s for some.

        The chunk may be empty. OverrunError if the reader fell behind; call `resync` and go on.
        """
        if timeout_s > 0 and self.available <= 0:
            self.ring.wait_for(self.cursor + 1, timeout_s)
        stop = self.ring.write_index
        if max_samples is not None:
            stop = min(stop, self.cursor + max_samples)
        start = self.cursor
        if stop <= start:  # nothing new (the cursor may be ahead of the writer after a resync)
            return start, np.zeros(0, dtype=np.float32)
        samples = self.ring.read(start, stop)
        self.cursor = stop
        return start, samples

    def resync(self, align: int = 1, margin: int = 0) -> int:
        """After an OverrunError: move the cursor to the oldest sample still held (plus `margin`,
        rounded up to a multiple of `align`), count what was lost, return the new cursor."""
        target = max(self.cursor, self.ring.oldest_index + margin)
        target = -(-target // align) * align   # may lie ahead of the writer: reads wait for it
        self.overruns += 1
        self.lost_samples += target - self.cursor
        self.cursor = target
        return target
