"""One worker thread that runs calls in order and reports each outcome on a queue: the review store's file
I/O (a recording's SHA-256, locked read-modify-writes) and clip exports, off the GUI thread.

Threads: `submit`, `busy` and `shutdown` are called on the GUI thread and never wait for the work (shutdown
waits a bounded time, at quit); the submitted calls run on the worker's own daemon thread, one at a time,
in the order given. Each outcome is a frozen `TaskDone` / `TaskFailed` put on `results`, which the window's
timer drains (app.workers.pending), like every other worker's messages.
"""
from __future__ import annotations

import logging
import queue
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Any, Callable, Hashable

from core.errors import TaggerError

__all__ = ["SerialWorker", "TaskDone", "TaskFailed"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TaskDone:
    tag: Hashable            # what the caller said the call was for
    value: Any               # what it returned (an immutable value: the GUI thread reads it)


@dataclass(frozen=True)
class TaskFailed:
    tag: Hashable
    message: str             # one line for the banner


class SerialWorker:
    """Runs submitted calls on one thread named `name`, in order; started on the first submit."""

    def __init__(self, name: str, results: queue.Queue):
        self.name = name
        self.results = results
        self._calls: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self._in_flight: Counter = Counter()        # tag -> calls submitted and not finished
        self._thread: threading.Thread | None = None

    def submit(self, tag: Hashable, call: Callable[[], Any]) -> None:
        """Run call() on the worker; TaskDone(tag, its value) or TaskFailed(tag, the reason) follows."""
        with self._lock:
            self._in_flight[tag] += 1
        self._calls.put((tag, call))
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
            self._thread.start()

    @property
    def busy(self) -> bool:
        """Calls submitted and not finished (the window keeps draining `results` until they are)."""
        with self._lock:
            return self._in_flight.total() > 0

    def pending(self, tag: Hashable) -> int:
        """How many calls with this tag are submitted and not finished."""
        with self._lock:
            return self._in_flight[tag]

    def shutdown(self, timeout_s: float) -> bool:
        """Let the calls submitted so far finish, then end the thread; wait at most timeout_s (it is a daemon:
        a call stuck on a dead network drive does not keep the program alive). True when it ended."""
        if self._thread is None:
            return True
        self._calls.put(None)
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _run(self) -> None:
        while (item := self._calls.get()) is not None:
            tag, call = item
            try:
                outcome = TaskDone(tag, call())
            except (TaggerError, OSError, ValueError) as e:
                outcome = TaskFailed(tag, " ".join(str(e).split()) or type(e).__name__)
            except Exception as e:  # noqa: BLE001 - a bug must reach the banner, not end the thread
                log.exception("a background call failed")
                outcome = TaskFailed(tag, f"{type(e).__name__}: {e}")
            with self._lock:
                self._in_flight[tag] -= 1
                if not self._in_flight[tag]:
                    del self._in_flight[tag]
            self.results.put(outcome)
