"""RingBuffer: absolute indices, copies, wrap-around, overrun errors, one writer and several readers at once."""
import random
import threading
import time

import numpy as np
import pytest

from core.ringbuffer import OverrunError, RingBuffer

EXACT = 1 << 24  # float32 holds every integer below 2**24 exactly: sample value = index mod 2**24


def ramp(start: int, n: int) -> np.ndarray:
    return (np.arange(start, start + n) % EXACT).astype(np.float32)


def test_absolute_indices_wrap_around_and_copies():
    ring = RingBuffer(capacity=10, sample_rate_hz=16000)
    assert (ring.write_index, ring.oldest_index) == (0, 0)
    ring.write(ramp(0, 7))
    ring.write(ramp(7, 7))          # wraps: holds 4..13
    assert (ring.write_index, ring.oldest_index) == (14, 4)
    got = ring.read(5, 14)
    np.testing.assert_array_equal(got, ramp(5, 9))
    got[:] = -1                     # a copy: the ring is unchanged
    np.testing.assert_array_equal(ring.read(4, 14), ramp(4, 10))
    assert ring.read(9, 9).shape == (0,)
    with pytest.raises(ValueError, match="holds"):
        ring.read(10, 15)           # not written yet


def test_multichannel_blocks_are_averaged_into_the_ring():
    ring = RingBuffer(capacity=8, sample_rate_hz=48000)
    block = np.stack([ramp(0, 6), ramp(0, 6) + 2], axis=1)   # (6, 2): mean = index + 1
    ring.write(block)
    ring.write(block)               # wraps inside a 2-D write
    np.testing.assert_array_equal(ring.read(4, 12), np.concatenate([ramp(4, 2), ramp(0, 6)]) + 1)


def test_block_longer_than_the_ring_keeps_its_newest_samples():
    ring = RingBuffer(capacity=5, sample_rate_hz=16000)
    ring.write(ramp(0, 12))
    assert (ring.write_index, ring.oldest_index) == (12, 7)
    np.testing.assert_array_equal(ring.read(7, 12), ramp(7, 5))


def test_overrun_is_a_clear_error_and_a_reader_can_resync():
    ring = RingBuffer.for_seconds(0.001, 16000)   # 16 samples
    reader = ring.reader()
    ring.write(ramp(0, 40))
    with pytest.raises(OverrunError, match=r"already overwritten.*last 16 samples.*behind.*ring larger"):
        ring.read(0, 10)
    with pytest.raises(OverrunError):
        reader.read()
    assert reader.cursor == 0                      # a failed read moves nothing
    assert reader.resync(align=5) == 25            # oldest is 24, rounded up to a multiple of 5
    assert (reader.overruns, reader.lost_samples) == (1, 25)
    start, got = reader.read()
    assert start == 25
    np.testing.assert_array_equal(got, ramp(25, 15))


def test_readers_have_their_own_cursors_and_finish_at_the_end():
    ring = RingBuffer(capacity=100, sample_rate_hz=16000)
    a, b = ring.reader(), ring.reader()
    ring.write(ramp(0, 30))
    assert a.read(max_samples=10) == (0, pytest.approx(ramp(0, 10)))
    start, got = b.read()
    assert start == 0 and len(got) == 30
    start, got = a.read()
    assert start == 10 and len(got) == 20
    ring.close(end_index=50)                        # a limit in the future: not ended yet
    assert not ring.ended and not a.finished
    ring.write(ramp(30, 40))
    assert ring.ended and ring.write_index == 50    # nothing past the end is handed out
    assert a.read()[1].shape == (20,) and a.finished
    ring.close(error="gone")                        # a later close keeps the earliest end
    assert ring.end_index == 50 and ring.error == "gone"


def test_wait_for_wakes_on_writes_and_on_close():
    ring = RingBuffer(capacity=1000, sample_rate_hz=16000)
    assert ring.wait_for(1, timeout_s=0.05) is False
    threading.Timer(0.05, ring.write, args=(ramp(0, 10),)).start()
    t0 = time.monotonic()
    assert ring.wait_for(10, timeout_s=2.0) is True
    assert time.monotonic() - t0 < 1.0
    threading.Timer(0.05, ring.close).start()
    assert ring.wait_for(100, timeout_s=2.0) is True    # ended: nothing more will come


def test_arrival_time_is_when_the_sample_was_published():
    ring = RingBuffer(capacity=1000, sample_rate_hz=16000)
    t0 = time.perf_counter()
    ring.write(ramp(0, 10))
    time.sleep(0.02)
    ring.write(ramp(10, 10))
    first, second = ring.arrival_time(9), ring.arrival_time(10)
    assert t0 <= first < second <= time.perf_counter() and second - first >= 0.015
    assert ring.arrival_time(20) is None and ring.first_write_samples == 10


def test_concurrent_writer_and_readers_see_every_sample_by_its_index():
    """One writer in random blocks (mono and stereo), three readers at their own pace, one random-access
    reader near the overwrite edge: every value handed out equals its absolute index, or OverrunError."""
    total, capacity = 1_500_000, 20_000
    ring = RingBuffer(capacity=capacity, sample_rate_hz=16000)
    errors: list[str] = []
    stats = {"edge_reads": 0, "edge_overruns": 0}

    def writer() -> None:
        rng = random.Random(1)
        i = 0
        while i < total:
            n = min(rng.randint(1, 2000), total - i)
            block = ramp(i, n)
            ring.write(np.stack([block - 1, block + 1], axis=1) if rng.random() < 0.3 else block)
            i += n
            if rng.random() < 0.02:
                time.sleep(0.0005)
        ring.close()

    def reader(seed: int, slow: bool) -> None:
        rng = random.Random(seed)
        r = ring.reader(0)
        seen = 0
        while not r.finished:
            try:
                start, got = r.read(max_samples=rng.randint(1, 5000), timeout_s=0.01)
            except OverrunError:
                r.resync()
                continue
            if not np.array_equal(got, ramp(start, len(got))):
                errors.append(f"reader {seed}: wrong values at {start}")
                return
            seen += len(got)
            if slow and rng.random() < 0.05:
                time.sleep(0.002)
        if r.cursor != total or seen + r.lost_samples != total:
            errors.append(f"reader {seed}: ended at {r.cursor}, saw {seen}, lost {r.lost_samples}")

    def edge_reader() -> None:   # reads the oldest samples, racing the writer that overwrites them
        while not ring.ended:
            oldest = ring.oldest_index
            stop = min(oldest + 3000, ring.write_index)
            try:
                got = ring.read(oldest, stop)
            except OverrunError:
                stats["edge_overruns"] += 1
                continue
            stats["edge_reads"] += 1
            if not np.array_equal(got, ramp(oldest, stop - oldest)):
                errors.append(f"edge read [{oldest}, {stop}) returned overwritten samples")
                return

    threads = [threading.Thread(target=writer)] + [
        threading.Thread(target=reader, args=(s, s == 2)) for s in range(3)] + [threading.Thread(target=edge_reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    assert stats["edge_reads"] > 0
