"""Logging, in one place: the service log on stderr (text or JSON lines), the access log
on stdout (one line per answer, written in batches by a thread of its own), and the rate
limit on waitress's queue warnings. ``setup_logging`` puts it together for the commands;
``log_access`` writes one access line (metrics.Accounting calls it for every answer).
"""

from __future__ import annotations

import collections
import json
import logging
import os
import sys
import threading
import time
import weakref
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TextIO
from urllib.parse import quote

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

access_logger = logging.getLogger("feeds.access")


# --- the service log ------------------------------------------------------------------


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time, level, logger, message (and the exception)."""

    def format(self, record: logging.LogRecord) -> str:
        data: dict[str, Any] = {
            "time": self.formatTime(record, "%Y-%m-%dT%H:%M:%S%z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            data["exception"] = self.formatException(record.exc_info)
        return json.dumps(data, ensure_ascii=False)


class OneLineFormatter(logging.Formatter):
    """The text service log: one line a message. A file or folder name may hold a
    newline (or any control character) that would forge a log line of its own, so the
    message's control characters are written as Python escapes; a traceback still
    follows on lines of its own."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        message = record.message
        if not message.isprintable():
            record.message = "".join(
                c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                for c in message)
        return super().formatMessage(record)


class EveryMinute(logging.Filter):
    """Lets a repeating warning through once per ``interval`` and says how many were held
    back. waitress logs 'Task queue depth is N' for every request that has to wait for a
    free thread, which under an ordinary burst is hundreds of lines a second. With
    ``only``, just the records whose message holds that text are limited, each message
    on its own clock (waitress's 'reached the connection limit' and its 'left' twin, 210
    lines in a minute of a flood); the others pass."""

    def __init__(self, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic, *,
                 only: str | None = None) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.only = only
        self._last: dict[str, float] = {}
        self._dropped: dict[str, int] = {}

    def filter(self, record: logging.LogRecord) -> bool:
        key = ""
        if self.only is not None:
            key = str(record.msg)
            if self.only not in key:
                return True
        now = self.clock()
        last = self._last.get(key)
        if last is not None and now - last < self.interval:
            self._dropped[key] = self._dropped.get(key, 0) + 1
            return False
        dropped = self._dropped.pop(key, 0)
        if dropped:
            record.msg = (f"{record.msg} ({dropped} more such warnings in the last "
                          f"{self.interval:.0f} s)")
        self._last[key] = now
        return True


WRITER_THREAD = "feeds-log-writer"
"""BatchedStream's thread: the one thread a fork may leave behind (see _after_fork)."""


def _call(ref: weakref.WeakMethod[Callable[[], None]]) -> None:
    method = ref()
    if method is not None:
        method()


class BatchedStream(logging.Handler):
    """A stream handler that leaves the writing to a thread of its own. The thread that
    logs only formats its line and appends it to a queue; the writer writes all that
    has piled up in one call. Under load that is one write for many lines instead of a
    write, a flush and a contended handler lock for each: with eight waitress threads,
    a StreamHandler's access log cost a cached feed 40% of its throughput."""

    BATCH_DELAY = 0.02
    """Seconds from the first line of a batch to its write."""

    def __init__(self, stream: TextIO) -> None:
        super().__init__()
        self.stream = stream
        self._lines: collections.deque[str] = collections.deque()
        self._wake = threading.Event()
        self._write_lock = threading.Lock()
        self._closed = False
        self._failed = False
        self._direct = False
        self._writer = threading.Thread(target=self._run, name=WRITER_THREAD, daemon=True)
        self._writer.start()
        # A forked child (feeds build's workers) has no writer thread, and the lock may
        # have been held by it at the fork: there each line is written as it is logged.
        ref = weakref.WeakMethod(self._after_fork)
        os.register_at_fork(after_in_child=lambda: _call(ref))

    def _after_fork(self) -> None:
        self._write_lock = threading.Lock()
        self._direct = True

    def handle(self, record: logging.LogRecord) -> bool:
        # No handler lock around emit(): appending to a deque is atomic.
        passed = self.filter(record)
        if isinstance(passed, logging.LogRecord):  # Python 3.12: a filter may replace it
            record = passed
        if passed:
            self.emit(record)
        return bool(passed)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            self._lines.append(self.format(record))
        except Exception:
            self.handleError(record)
            return
        if self._direct:
            self.flush()
        elif not self._wake.is_set():
            self._wake.set()

    def _run(self) -> None:
        while not self._closed:
            self._wake.wait()
            # Let a burst pile up: one wake-up and one write per BATCH_DELAY at most, so
            # the writer never competes for the interpreter lock once per request.
            time.sleep(self.BATCH_DELAY)
            self._wake.clear()  # before taking the lines: one appended now wakes us again
            self.flush()

    def flush(self) -> None:
        """Write every line logged so far, now (also called at exit by logging)."""
        with self._write_lock:
            lines = self._lines
            batch: list[str] = []
            while lines:
                batch.append(lines.popleft())
            if not batch:
                return
            try:
                self.stream.write("\n".join(batch) + "\n")
                self.stream.flush()
            except (OSError, ValueError) as e:  # a closed or broken stream: say so once
                if not self._failed:
                    self._failed = True
                    print(f"feeds: cannot write the log: {e}", file=sys.stderr)

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.flush()
        super().close()


class _AsWritten(logging.Formatter):
    """The access line as log_access wrote it. Formatter("%(message)s") gives the same
    text but looks for a time, an exception and a stack in every record: a sixth of
    what a line costs."""

    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def setup_logging(level: str, fmt: str) -> None:
    """Service logs on stderr (text or JSON lines); the access log (log_access renders
    each line, combined or JSON) on stdout, at INFO, so ``--log-level warning`` silences
    it."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    # No format here shows a record's thread or process: not looking them up saves a
    # tenth of what an access line costs (the logging HOWTO, "Optimization").
    logging.logThreads = logging.logProcesses = logging.logMultiprocessing = False
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    access_logger.propagate = False
    for earlier in access_logger.handlers:
        if isinstance(earlier, BatchedStream):
            earlier.close()
    access_handler = BatchedStream(sys.stdout)
    access_handler.setFormatter(_AsWritten())
    access_logger.handlers[:] = [access_handler]
    queue = logging.getLogger("waitress.queue")
    queue.filters[:] = [f for f in queue.filters if not isinstance(f, EveryMinute)]
    queue.addFilter(EveryMinute())


def flush_access_log() -> None:
    """Write the last lines of a batching access log now (a server that stops)."""
    for handler in access_logger.handlers:
        handler.flush()


# --- the access log -------------------------------------------------------------------


class _Clock:
    """The access log's two timestamps, formatted once a second rather than per line."""

    def __init__(self) -> None:
        self._second = -1
        self._stamps = ("", "")

    def stamps(self) -> tuple[str, str]:
        now = time.time()
        second = int(now)
        if second != self._second:
            local = time.localtime(now)
            self._stamps = (time.strftime("%d/%b/%Y:%H:%M:%S %z", local),
                            time.strftime("%Y-%m-%dT%H:%M:%S%z", local))
            self._second = second
        return self._stamps


_clock = _Clock()


def request_target(environ: WSGIEnvironment) -> str:
    """The request target as the client sent it, still percent-encoded: REQUEST_URI
    (waitress, werkzeug), else RAW_URI, else rebuilt from the path and query."""
    uri: str | None = environ.get("REQUEST_URI") or environ.get("RAW_URI")
    if uri:
        return uri
    path = environ.get("PATH_INFO", "").encode("latin-1").decode("utf-8", "replace")
    query = environ.get("QUERY_STRING", "")
    return quote(environ.get("SCRIPT_NAME", "") + path) + (f"?{query}" if query else "")


def log_access(environ: WSGIEnvironment, uri: str, status: int, size: int, elapsed: float,
               as_json: bool) -> None:
    """One line per request: the combined log format (as Apache and nginx write it), or
    with --log-format json one JSON object with the same facts and the duration."""
    protocol = environ.get("SERVER_PROTOCOL", "HTTP/1.1")
    remote = environ.get("REMOTE_ADDR") or "-"
    referer = environ.get("HTTP_REFERER", "-")
    agent = environ.get("HTTP_USER_AGENT", "-")
    method = environ.get("REQUEST_METHOD", "GET")
    common, iso = _clock.stamps()
    if as_json:
        line = json.dumps({
            "time": iso, "remote": remote, "method": method, "uri": uri,
            "protocol": protocol, "status": status, "bytes": size, "referer": referer,
            "agent": agent, "seconds": round(elapsed, 6),
        }, ensure_ascii=False)
    else:
        line = (f'{remote} - - [{common}] "{method} {escape(uri)} {protocol}" {status} '
                f'{size or "-"} "{escape(referer)}" "{escape(agent)}"')
    # makeRecord + handle is what info() does, less the walk up the stack for the
    # caller's file and line, which an access line has no use for.
    access_logger.handle(access_logger.makeRecord(
        access_logger.name, logging.INFO, "(access log)", 0, line, (), None))


def escape(text: str) -> str:
    """Quotes, backslashes and unprintable characters as escapes, as Apache writes them,
    so a client cannot break a log line apart or forge one."""
    if text.isascii() and text.isprintable() and '"' not in text and "\\" not in text:
        return text
    return "".join(
        "\\" + ch if ch in '"\\' else f"\\x{ord(ch):02x}" if not " " <= ch <= "~" else ch
        for ch in text)
