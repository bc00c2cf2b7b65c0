"""core.atomic: single-file and set writes are all-or-nothing, exclusive, and clean up after crashes."""
from __future__ import annotations

import errno
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

import core.atomic as atomic
from core.atomic import (SetExistsError, SetWriteError, atomic_write, exclusive_lock, remove_stale_temps,
                         temp_path_for, write_set)


def names(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def writer(text: str):
    return lambda f: f.write(text)


def test_atomic_write_replaces_and_keeps_the_mode(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    target.chmod(0o640)
    with atomic_write(target) as f:
        f.write("new")
        assert target.read_text() == "old"          # never seen half-written
    assert target.read_text() == "new" and target.stat().st_mode & 0o777 == 0o640
    assert names(tmp_path) == ["a.txt"]


def test_atomic_write_error_in_body_leaves_target_and_no_temp(tmp_path):
    target = tmp_path / "a.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_write(target, "wb") as f:
            f.write(b"half")
            raise RuntimeError("boom")
    assert target.read_bytes() == b"old" and names(tmp_path) == ["a.bin"]


def test_atomic_write_without_overwrite_never_clobbers(tmp_path):
    target = tmp_path / "a.txt"
    with atomic_write(target, overwrite=False) as f:
        f.write("first")
    with pytest.raises(FileExistsError):
        with atomic_write(target, overwrite=False) as f:
            f.write("second")
    assert target.read_text() == "first" and names(tmp_path) == ["a.txt"]


def test_write_set_existing_member_writes_nothing(tmp_path):
    (tmp_path / "s.b").write_text("keep")
    with pytest.raises(SetExistsError) as info:
        write_set([(tmp_path / "s.a", writer("a")), (tmp_path / "s.b", writer("b"))], "s")
    assert info.value.paths == [tmp_path / "s.b"] and names(tmp_path) == ["s.b"]


def test_write_set_disk_full_on_second_member_leaves_nothing(tmp_path):
    def full(f):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    with pytest.raises(SetWriteError) as info:
        write_set([(tmp_path / "s.a", writer("a")), (tmp_path / "s.b", full), (tmp_path / "s.c", writer("c"))], "s")
    assert info.value.target == tmp_path / "s.b" and info.value.errno == errno.ENOSPC
    assert names(tmp_path) == []


@pytest.mark.parametrize("overwrite", [False, True])
def test_write_set_failed_rename_rolls_back_the_renamed_members(tmp_path, monkeypatch, overwrite):
    if overwrite:
        for name in ("s.a", "s.b"):
            (tmp_path / name).write_text("old " + name)
    real_place, calls = atomic._place, []

    def place(temp, target, overwrite):
        calls.append(target)
        if len(calls) == 2:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        real_place(temp, target, overwrite)

    monkeypatch.setattr(atomic, "_place", place)
    with pytest.raises(SetWriteError):
        write_set([(tmp_path / "s.a", writer("new a")), (tmp_path / "s.b", writer("new b"))], "s", overwrite)
    if overwrite:   # the previous set, intact
        assert [(tmp_path / n).read_text() for n in ("s.a", "s.b")] == ["old s.a", "old s.b"]
        assert names(tmp_path) == ["s.a", "s.b"]
    else:
        assert names(tmp_path) == []


def test_write_set_interrupt_while_writing_leaves_nothing(tmp_path):
    def interrupted(f):
        f.write("half")
        raise KeyboardInterrupt
    with pytest.raises(KeyboardInterrupt):
        write_set([(tmp_path / "s.a", writer("a")), (tmp_path / "s.b", interrupted)], "s")
    assert names(tmp_path) == []


def test_exclusive_lock_serialises_threads_and_removes_its_file(tmp_path):
    inside, overlaps = [], []

    def hold():
        with exclusive_lock(tmp_path, "x"):
            if inside:
                overlaps.append(1)
            inside.append(1)
            time.sleep(0.05)
            inside.pop()

    threads = [threading.Thread(target=hold) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlaps == [] and names(tmp_path) == []


def test_stale_temps_of_dead_processes_and_old_ones_are_removed(tmp_path):
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(dead.stdout)
    ours = temp_path_for(tmp_path / "x.tags.csv")
    stale = ours.with_name(ours.name.replace(f"-{os.getpid()}.", f"-{dead_pid}."))
    alive = ours.with_name(ours.name.replace(f"-{os.getpid()}.", f"-{os.getppid()}."))
    old = alive.with_name(alive.name.replace(".tmp", "").replace("x.tags", "y.tags") + ".tmp")
    user = tmp_path / ".x.tags.csv.12.notours.tmp"
    for path in (ours, stale, alive, old, user):
        path.write_text("")
    os.utime(old, (time.time() - 2 * atomic.STALE_AGE_S,) * 2)
    (tmp_path / f".z{atomic.LOCK_SUFFIX}").write_text("")       # left by a killed holder
    assert sorted(remove_stale_temps(tmp_path)) == sorted([stale, old])
    assert names(tmp_path) == sorted(p.name for p in (ours, alive, user))


def test_a_target_name_of_255_characters_still_gets_a_temp_and_a_lock(tmp_path):
    long = "x" * 240
    targets = [tmp_path / f"{long}.tags.csv", tmp_path / f"{long}.sv.csv"]
    assert write_set([(t, writer("a")) for t in targets], long) == targets
    assert names(tmp_path) == sorted(t.name for t in targets)
