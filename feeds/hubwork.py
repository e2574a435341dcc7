"""The built-in hub's worker pool: a few threads that run keyed tasks when they are due.

A task put under a key already waiting is merged into it (a newer feed body replaces the
one a failing callback has not taken yet, a second subscription request replaces the
first), so one subscriber never has two deliveries in flight nor a queue of stale ones.
A task that asks to run again (a retry) is put back at its due time. How many tasks wait
is bounded. Nothing here knows HTTP or WebSub.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections import Counter
from collections.abc import Hashable

logger = logging.getLogger(__name__)


class Task:
    """One piece of work. ``kind`` names it for the pool's counts."""

    kind = "task"

    def run(self) -> float | None:
        """Do the work; seconds to wait before running again (a retry), or None."""
        raise NotImplementedError

    def merged(self, newer: Task) -> Task:
        """The task to keep when ``newer`` arrives under the same key: by default the
        newer one."""
        return newer


class Pool:
    def __init__(self, workers: int, max_tasks: int, name: str = "feeds-hub") -> None:
        self.workers = workers
        self.max_tasks = max_tasks
        self.name = name
        self._cond = threading.Condition()
        self._waiting: dict[Hashable, tuple[float, Task]] = {}  # key -> (due, task)
        self._heap: list[tuple[float, int, Hashable]] = []  # stale entries are skipped
        self._order = itertools.count()
        self._running: dict[Hashable, Task | None] = {}  # key -> a newer task, if any came
        self._kinds: Counter[str] = Counter()
        self._threads: list[threading.Thread] = []
        self._stopping = False

    def start(self) -> None:
        for number in range(self.workers):
            thread = threading.Thread(target=self._work, name=f"{self.name}-{number}",
                                      daemon=True)
            thread.start()
            self._threads.append(thread)

    def stop(self, seconds: float) -> None:
        """Stop taking tasks and wait up to ``seconds`` for those under way; tasks still
        waiting are dropped."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + seconds
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))

    def put(self, key: Hashable, task: Task, delay: float = 0.0) -> bool:
        """Queue ``task`` under ``key`` (merged into one already there); False when the
        pool is full."""
        with self._cond:
            if key in self._running:
                newer = self._running[key]
                if newer is None:
                    self._kinds[task.kind] += 1
                self._running[key] = task if newer is None else newer.merged(task)
                return True
            if key in self._waiting:
                due, old = self._waiting[key]
                self._waiting[key] = (due, old.merged(task))  # a back-off still holds
                return True
            if self.size() >= self.max_tasks:
                return False
            self._schedule(key, task, time.monotonic() + delay)
            self._kinds[task.kind] += 1
            return True

    def size(self) -> int:
        """Tasks waiting or under way (call with the lock held, or for a rough count)."""
        newer = sum(1 for task in self._running.values() if task is not None)
        return len(self._waiting) + len(self._running) + newer

    def count(self, kind: str) -> int:
        with self._cond:
            return self._kinds[kind]

    def wait_idle(self, timeout: float) -> bool:
        """Whether every task ran to its end within ``timeout`` seconds (tests, bench)."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._waiting and not self._running,
                                       timeout)

    def _schedule(self, key: Hashable, task: Task, due: float) -> None:
        self._waiting[key] = (due, task)
        heapq.heappush(self._heap, (due, next(self._order), key))
        self._cond.notify()

    def _take(self) -> tuple[Hashable, Task] | None:
        with self._cond:
            while not self._stopping:
                while self._heap and self._waiting.get(self._heap[0][2], (None,))[0] \
                        != self._heap[0][0]:
                    heapq.heappop(self._heap)  # merged or taken since it was pushed
                if not self._heap:
                    self._cond.wait()
                    continue
                due, _order, key = self._heap[0]
                now = time.monotonic()
                if due > now:
                    self._cond.wait(due - now)
                    continue
                heapq.heappop(self._heap)
                _due, task = self._waiting.pop(key)
                self._running[key] = None
                return key, task
            return None

    def _work(self) -> None:
        while True:
            taken = self._take()
            if taken is None:
                return
            key, task = taken
            try:
                again = task.run()
            except Exception:
                logger.exception("hub task %r failed", key)
                again = None
            self._finish(key, task, again)

    def _finish(self, key: Hashable, task: Task, again: float | None) -> None:
        with self._cond:
            newer = self._running.pop(key)
            self._kinds[task.kind] -= 1
            if newer is not None:
                self._kinds[newer.kind] -= 1
            if self._stopping:
                self._cond.notify_all()
                return
            if again is not None:
                following = task if newer is None else task.merged(newer)
                self._schedule(key, following, time.monotonic() + again)
                self._kinds[following.kind] += 1
            elif newer is not None:
                self._schedule(key, newer, time.monotonic())
                self._kinds[newer.kind] += 1
            self._cond.notify_all()
