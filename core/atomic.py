"""Atomic file writes: one file (`atomic_write`) or a set of files committed together (`write_set`).

Used by whichever thread writes results (export on the file-analysis, live or GUI thread; model files and
checkpoints on the training thread). Nothing in memory is shared; files in one folder are guarded by an
exclusive per-name lock (`exclusive_lock`), which also serialises other processes (POSIX flock).

Contract, after SQLite's "nothing lost":
- A target is never seen half-written: the data go to a temp file in the target's folder, are flushed and
  fsynced, then renamed over the target (os.replace is atomic within one folder).
- Temp files are named `.<target name>.<host>-<pid>.<8 hex>.tmp` (host: 6 hex of the host name), so a later
  run recognises those of a process on this machine that died (kill -9, power loss) and removes them;
  anything of that pattern older than a day is removed too (`remove_stale_temps`).
- `write_set` holds the lock on the set's name from the existence check to the last rename. It writes every
  member to a temp file first and renames them into place only when all are complete; if anything fails
  on the way (disk full, SIGINT, SIGTERM raised as KeyboardInterrupt) the members already renamed are
  rolled back: new files removed, replaced files restored. The renames run with SIGINT and SIGTERM held
  back (main thread), so only a kill -9 or a power loss inside those microseconds can leave a mixed set.
"""
from __future__ import annotations

import contextlib
import errno
import functools
import hashlib
import os
import re
import secrets
import signal
import socket
import threading
import time
from pathlib import Path
from typing import IO, Callable, Iterator, Sequence

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None

__all__ = ["atomic_write", "write_set", "exclusive_lock", "remove_stale_temps", "temp_path_for", "signals_held",
           "new_file_mode", "SetExistsError", "SetWriteError", "LockTimeout", "STALE_AGE_S", "LOCK_SUFFIX"]

STALE_AGE_S = 24 * 3600.0       # a temp file of ours this old is stale whatever its pid says
LOCK_SUFFIX = ".tagger-lock"     # `.<name>.tagger-lock`: exclusive_lock's file, removed by its holder
_HOST = hashlib.sha1(socket.gethostname().encode("utf-8", "surrogateescape")).hexdigest()[:6]
_TEMP_RE = re.compile(r"^\.(?P<target>.+)\.(?P<host>[0-9a-f]{6})-(?P<pid>\d+)\.[0-9a-f]{8}\.tmp$")
_LOCK_RE = re.compile(r"^\..+" + re.escape(LOCK_SUFFIX) + "$")
_NO_HARD_LINKS = {errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS}


class SetExistsError(FileExistsError):
    """Members of a set already exist and overwriting was not asked for; nothing was written."""

    def __init__(self, paths: list[Path]):
        super().__init__(errno.EEXIST, f"{len(paths)} target(s) exist: {', '.join(map(str, paths))}")
        self.paths = paths


class SetWriteError(OSError):
    """An OS error while writing `target`; nothing of the set was left behind."""

    def __init__(self, target: Path, cause: OSError):
        super().__init__(cause.errno, cause.strerror or str(cause))
        self.target, self.cause = target, cause


class LockTimeout(TimeoutError):
    """Another writer held the lock longer than the timeout."""


@functools.lru_cache(maxsize=1)
def new_file_mode() -> int:
    """0o666 minus the process umask (read without os.umask, which is not thread-safe), else 0o644."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return 0o666 & ~int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o644


def temp_path_for(target: Path) -> Path:
    """A fresh temp name next to `target` in the recognisable pattern (see the module docstring)."""
    # at most 200 characters of the name, so that the temp name fits where the target's name just fits
    return target.with_name(f".{target.name[:200]}.{_HOST}-{os.getpid()}.{secrets.token_hex(4)}.tmp")


def _create_temp(target: Path, file_mode: int | None) -> tuple[int, Path]:
    if file_mode is None:
        try:
            file_mode = target.stat().st_mode & 0o7777   # replacing a file keeps its permissions
        except OSError:
            file_mode = new_file_mode()
    while True:
        temp = temp_path_for(target)
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:   # 32 random bits collided: draw again
            continue
    try:
        os.fchmod(fd, file_mode)
    except OSError:
        pass                       # e.g. a FAT drive: keep what the filesystem gives
    return fd, temp


def _unlink_quietly(path: Path | None) -> None:
    if path is not None:
        try:
            os.unlink(path)
        except OSError:
            pass


def fsync_dir(folder: Path) -> None:
    """Make renames in `folder` durable (POSIX); best effort."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _place(temp: Path, target: Path, overwrite: bool) -> None:
    """Rename `temp` to `target`; without overwrite never replace an existing target (FileExistsError)."""
    if overwrite:
        os.replace(temp, target)
        return
    try:
        os.link(temp, target)      # atomic no-clobber: EEXIST when the target exists
    except FileExistsError:
        raise
    except OSError as e:
        if e.errno not in _NO_HARD_LINKS:
            raise
        if os.path.lexists(target):  # a filesystem without hard links: check, then rename
            raise FileExistsError(errno.EEXIST, os.strerror(errno.EEXIST), str(target)) from None
        os.replace(temp, target)
        return
    os.unlink(temp)


@contextlib.contextmanager
def atomic_write(path: str | os.PathLike, mode: str = "w", *, overwrite: bool = True,
                 encoding: str | None = "utf-8", newline: str | None = None, errors: str | None = None,
                 file_mode: int | None = None) -> Iterator[IO]:
    """Yield a file open on a temp file next to `path`; on a clean exit fsync it and rename it to `path`.

    mode: "w" (text, `encoding`/`newline`/`errors` as for open) or "wb". overwrite=False raises
    FileExistsError if `path` exists at the rename, leaving it untouched. file_mode: permissions, default
    those of the file replaced, else 0o666 minus the umask. On any exception the temp file is removed and
    `path` is as before.
    """
    target = Path(path)
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write mode must be 'w' or 'wb', got {mode!r}")
    fd, temp = _create_temp(target, file_mode)
    try:
        text = {} if mode == "wb" else {"encoding": encoding, "newline": newline, "errors": errors}
        with os.fdopen(fd, mode, **text) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        _place(temp, target, overwrite)
        temp = None
    finally:
        _unlink_quietly(temp)
    fsync_dir(target.parent)


@contextlib.contextmanager
def signals_held() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back until the block ends, then hand them to the handlers that were in place
    (main thread of the process; elsewhere a no-op).

    The OS may deliver a process's signal to any thread that does not block it (the decode thread, Ray's
    threads), so masking this thread is not enough; Python runs signal handlers on the main thread whichever
    thread received the signal, so the handlers are swapped for one that notes the signal, and the signals
    noted are raised again at the end.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {signum: signal.signal(signum, lambda received, frame: caught.append(received))
                for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_DFL if handler is None else handler)
        for signum in dict.fromkeys(caught):
            signal.raise_signal(signum)


@contextlib.contextmanager
def exclusive_lock(folder: Path, name: str, timeout_s: float = 120.0) -> Iterator[Path]:
    """Hold an exclusive lock on `name` in `folder` (file `.<name>.tagger-lock`, POSIX flock).

    Blocks while another thread or process holds it (LockTimeout after timeout_s). The holder removes the
    file on release; a file left by a killed holder is taken over (the kernel drops a dead process's lock).
    """
    path = Path(folder) / f".{name[:200]}{LOCK_SUFFIX}"   # a long name shares its lock with its prefix's
    if fcntl is None:  # pragma: no cover - not POSIX: no cross-process exclusion
        yield path
        return
    deadline = time.monotonic() + timeout_s
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise LockTimeout(f"{path} is held by another writer for more than {timeout_s:g} s") from None
                    time.sleep(0.01)
            held = os.fstat(fd)
            try:
                current = os.stat(path)
            except FileNotFoundError:
                current = None
        except BaseException:
            os.close(fd)
            raise
        if current is not None and (current.st_dev, current.st_ino) == (held.st_dev, held.st_ino):
            break
        os.close(fd)   # the holder before us removed it: lock the file that is there now
    try:
        yield path
    finally:
        _unlink_quietly(path)   # still holding the lock, so nobody else holds this inode
        os.close(fd)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True   # exists, owned by someone else
    return True


def remove_stale_temps(folder: Path, max_age_s: float = STALE_AGE_S) -> list[Path]:
    """Remove temp files of ours in `folder` whose process on this host is gone, or older than max_age_s,
    and lock files nobody holds. Returns the temp files removed; never raises."""
    removed: list[Path] = []
    try:
        names = os.listdir(folder)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        path = Path(folder) / name
        if (m := _TEMP_RE.match(name)) is not None:
            pid = int(m["pid"])
            try:
                age_s = now - os.lstat(path).st_mtime
            except OSError:
                continue
            dead = m["host"] == _HOST and pid != os.getpid() and not _pid_alive(pid)
            if dead or age_s > max_age_s:
                try:
                    os.unlink(path)
                    removed.append(path)
                except OSError:
                    pass
        elif fcntl is not None and _LOCK_RE.match(name):
            _remove_unheld_lock(path)
    return removed


def _remove_unheld_lock(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        if os.path.samestat(os.fstat(fd), os.stat(path)):
            os.unlink(path)
    except OSError:
        pass   # held (or gone): leave it to its holder
    finally:
        os.close(fd)


def write_set(members: Sequence[tuple[Path, Callable[[IO], None]]], lock_name: str, overwrite: bool = False,
              mode: str = "w", encoding: str | None = "utf-8", newline: str | None = "",
              errors: str | None = None) -> list[Path]:
    """Write every (target, write(file)) member, all or nothing, under exclusive_lock(folder, lock_name).

    All targets must be in one folder (created if missing). Under the lock: stale temps are removed, then
    without overwrite any existing target raises SetExistsError (nothing written); each member is written
    to a temp file and fsynced; then all are renamed into place. An OSError raises SetWriteError naming the
    member; it, like any other exception (KeyboardInterrupt included), leaves no temp file and no new
    member, and restores the members replaced. Returns the targets in order.
    """
    targets = [Path(t) for t, _ in members]
    folders = {t.parent for t in targets}
    if len(folders) != 1:
        raise ValueError(f"a set is written into one folder, got {sorted(map(str, folders))}")
    folder = folders.pop()
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise SetWriteError(folder, e) from e
    text = {} if mode == "wb" else {"encoding": encoding, "newline": newline, "errors": errors}
    temps: dict[Path, Path] = {}
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(exclusive_lock(folder, lock_name))
        except OSError as e:
            raise SetWriteError(folder / f".{lock_name[:200]}{LOCK_SUFFIX}", e) from e
        stack.callback(lambda: [_unlink_quietly(t) for t in temps.values()])
        remove_stale_temps(folder)
        if not overwrite and (existing := [t for t in targets if os.path.lexists(t)]):
            raise SetExistsError(existing)
        for target, write in members:
            try:
                fd, temps[target] = _create_temp(target, None)
                with os.fdopen(fd, mode, **text) as f:
                    write(f)
                    f.flush()
                    os.fsync(f.fileno())
            except OSError as e:
                raise SetWriteError(target, e) from e
        _commit(targets, temps, overwrite)
        temps.clear()
    fsync_dir(folder)
    return targets


def _commit(targets: list[Path], temps: dict[Path, Path], overwrite: bool) -> None:
    """Rename every temp to its target; on any failure undo the renames done (restore what they replaced)."""
    done: list[tuple[Path, Path | None]] = []   # (target, backup of the file it replaced)
    with signals_held():
        try:
            for target in targets:
                backup = None
                if overwrite and os.path.lexists(target):
                    backup = temp_path_for(target)
                    try:
                        os.link(target, backup, follow_symlinks=False)   # old file stays until the replace
                    except OSError:
                        os.rename(target, backup)
                done.append((target, backup))
                try:
                    _place(temps[target], target, overwrite)
                except FileExistsError:           # created by a writer that does not take our lock
                    done.pop()
                    raise SetExistsError([target]) from None
                except OSError as e:
                    raise SetWriteError(target, e) from e
        except BaseException:
            for target, backup in reversed(done):
                if backup is not None:
                    with contextlib.suppress(OSError):
                        if os.path.lexists(target) and os.path.samestat(os.lstat(backup), os.lstat(target)):
                            os.unlink(backup)     # not replaced yet (rename() of two links is a no-op)
                        else:
                            os.replace(backup, target)
                elif not os.path.lexists(temps[target]):   # it was renamed: remove the new file
                    _unlink_quietly(target)
            raise
        for _, backup in done:     # still with signals held: an interrupt now cannot strand a backup
            _unlink_quietly(backup)
