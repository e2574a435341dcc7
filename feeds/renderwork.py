"""A server's body rendering shared with a forked helper process (``render_workers``).

A body's Markdown is Python under the GIL: a server's threads render one body at a
time, on one core, however many readers wait. A server forks one helper before it
starts threads of its own. When a feed needs several bodies not yet rendered, the
helper renders some of them while the asking thread renders the others.

The helper is sent a module's function by name and the items to apply it to (for
bodies, ``summaries.made_body``: a body's text, its excerpt's, its URL and the rules, all
plain values), and sends back each result. It reads no file, sees no site state and
runs no Liquid: a body with Liquid is always rendered here, as is any the helper does
not answer for. It runs the same code as this process (forked from it), so which
process rendered a body never shows in its bytes.

A helper that dies, sends nonsense or takes more than DEADLINE seconds for a batch is
killed, and from then on every body is rendered here, as with ``render_workers: 1``.
One thread uses the helper at a time; another meanwhile renders its bodies itself.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
import select
import signal
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

from .loadwork import die_with, prctl_call, reap

logger = logging.getLogger(__name__)

DEADLINE = 10.0
"""Seconds a batch may take (sent, rendered, sent back) before the helper is killed."""

LATE = 1.0
"""Past the deadline, how long each further piece of an answer already coming may take."""

_HEADER = struct.Struct("!Q")


def _each(work: Callable[[Any], Any], items: Sequence[Any]) -> list[Any]:
    """In the helper: ``work(item)`` for each item, None for one that raised (the asking
    process does that item itself, and meets what went wrong)."""
    done = []
    for item in items:
        try:
            done.append(work(item))
        except Exception:
            done.append(None)
    return done


def _read_exactly(fd: int, size: int, deadline: float | None,
                  grace: float = 0.0) -> bytes | None:
    """``size`` bytes from ``fd`` (None at EOF, or when nothing comes by ``deadline``,
    or ``grace`` seconds after it once a message is coming, for each piece: a batch
    answered in time is read however late its asker comes for it)."""
    chunks, left = [], size
    while left:
        if deadline is not None:
            wait = max(deadline - time.monotonic(), grace)
            if not select.select([fd], [], [], wait)[0]:
                return None
        chunk = os.read(fd, min(left, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        left -= len(chunk)
        grace = LATE
    return b"".join(chunks)


def _write_all(fd: int, data: bytes, deadline: float | None) -> bool:
    view = memoryview(data)
    while view:
        if deadline is not None:
            wait = deadline - time.monotonic()
            if wait <= 0 or not select.select([], [fd], [], wait)[1]:
                return False
        view = view[os.write(fd, view[: 1 << 16]):]
    return True


def _message(fd: int, deadline: float | None) -> object:
    header = _read_exactly(fd, _HEADER.size, deadline)
    if header is None:
        raise EOFError
    data = _read_exactly(fd, _HEADER.unpack(header)[0], deadline, LATE)
    if data is None:
        raise EOFError
    return pickle.loads(data)


def _frame(payload: object) -> bytes:
    data = pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL)
    return _HEADER.pack(len(data)) + data


def _serve(jobs_fd: int, done_fd: int) -> None:
    """The helper's life: warm the engine (if its parent had not), then answer each
    message until EOF: ("each", work, items) with [work(item), ...]; ("call", work,
    argument) with nothing."""
    from .parse.body import warm_engine

    warm_engine()
    while True:
        try:
            message = _message(jobs_fd, None)
        except EOFError:
            return
        if not isinstance(message, tuple) or len(message) != 3:
            return
        kind, work, payload = message
        if kind == "each":
            _write_all(done_fd, _frame(_each(work, payload)), None)
        elif kind == "call":
            with contextlib.suppress(Exception):
                work(payload)
        else:
            return


class RenderHelper:
    """The forked helper of one server; :meth:`start` and :meth:`finish` a batch."""

    def __init__(self, pid: int, jobs_fd: int, done_fd: int) -> None:
        self.pid, self._jobs_fd, self._done_fd = pid, jobs_fd, done_fd
        self._lock = threading.Lock()
        self._deadline = 0.0
        self.alive = True
        self._gone = False  # killed and reaped (or closed)
        self._closed = False
        self.done = 0
        """Items the helper has computed (for tests)."""

    @classmethod
    def fork(cls) -> RenderHelper | None:
        """Fork the helper (None where there is no fork, or it fails). Call it before
        the process starts threads of its own: the helper imports the engine."""
        if not hasattr(os, "fork"):
            return None
        parent, prctl = os.getpid(), prctl_call()
        jobs_read, jobs_write = os.pipe()
        done_read, done_write = os.pipe()
        try:
            pid = os.fork()
        except OSError as e:
            logger.warning("cannot fork a render helper (%s); bodies render here", e)
            for fd in (jobs_read, jobs_write, done_read, done_write):
                os.close(fd)
            return None
        if pid == 0:  # the helper (never returns)
            try:
                die_with(parent, prctl)
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    signal.signal(sig, signal.SIG_DFL)
                os.close(jobs_write)
                os.close(done_read)
                _serve(jobs_read, done_write)
            finally:
                os._exit(0)
        os.close(jobs_read)
        os.close(done_write)
        os.set_blocking(jobs_write, False)
        return cls(pid, jobs_write, done_read)

    def start(self, work: Callable[[Any], Any], items: Sequence[Any]) -> bool:
        """Send a batch: the helper computes ``work(item)`` for each item (``work`` a
        module's function, sent by name; each item and result pickled). False (nothing
        sent) when the helper is gone, or another thread is using it. After True,
        :meth:`finish` must be called, once."""
        if not self.alive or not items or not self._lock.acquire(blocking=False):
            return False
        self._deadline = time.monotonic() + DEADLINE
        if self._send(("each", work, list(items))):
            return True
        self._lock.release()
        return False

    def finish(self, count: int, bodies: bool = True) -> list[Any]:
        """The started batch's ``count`` results (None for each the helper did not
        compute: all of them when it failed); ``bodies``: they count in ``done``."""
        try:
            done = _message(self._done_fd, self._deadline)
            if isinstance(done, list) and len(done) == count:
                self.done += sum(d is not None for d in done) if bodies else 0
                return done
            self._stop("sent what cannot be read")
        except EOFError:
            self._stop(f"ended, or took more than {DEADLINE:.0f} s for a batch")
        except Exception as e:  # never trusted: computed here instead
            self._stop(f"sent what cannot be read ({e!r})")
        finally:
            self._lock.release()
        return [None] * count

    def call(self, work: Callable[[Any], object], argument: object) -> None:
        """Have the helper run ``work(argument)`` (making lexers ready, say), without
        waiting for it or for an answer; nothing when it is busy or gone."""
        if not self.alive or not self._lock.acquire(blocking=False):
            return
        try:
            self._deadline = time.monotonic() + DEADLINE
            self._send(("call", work, argument))
        finally:
            self._lock.release()

    def _send(self, message: tuple[str, object, object]) -> bool:
        try:
            if _write_all(self._jobs_fd, _frame(message), self._deadline):
                return True
            self._stop("took too long to take a batch")
        except OSError as e:
            self._stop(f"cannot be written to ({e.strerror or e})")
        return False

    def _stop(self, why: str) -> None:
        """Kill the helper (the asking thread holds the lock), and reap it at once: it
        was a zombie until the server stopped. Once reaped, its pid is never signalled
        again (it may be another process's by then)."""
        if self.alive:
            logger.warning("the render helper %s: killed; bodies now render here", why)
        self.alive = False
        if not self._gone:
            self._gone = True
            with contextlib.suppress(OSError):
                os.kill(self.pid, signal.SIGKILL)
            reap(self.pid)

    def close(self) -> None:
        """End the helper (its batch input closes: it exits) and reap it. Once: asked
        again (a service stopped twice), it closes nothing, as its descriptors' numbers
        may be another file's by then."""
        with self._lock:
            self.alive = False
            if self._closed:
                return
            self._closed = True
            for fd in (self._jobs_fd, self._done_fd):
                with contextlib.suppress(OSError):
                    os.close(fd)
            gone, self._gone = self._gone, True
        if gone:
            return
        with contextlib.suppress(OSError):
            os.kill(self.pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError, OSError):
            os.waitpid(self.pid, 0)
