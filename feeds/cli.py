"""Command line: ``feeds serve | check | build`` (also ``python -m feeds``; ``python app.py``
is ``feeds serve``). Flags and environment variables come from config.OPTIONS."""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

from .config import OPTIONS, Settings, load_settings
from .config_file import ConfigError

if TYPE_CHECKING:
    from .content import ContentStore

logger = logging.getLogger("feeds")

# --- logging ---------------------------------------------------------------------------


class _JsonFormatter(logging.Formatter):
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


class _OneLineFormatter(logging.Formatter):
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


class _EveryMinute(logging.Filter):
    """Lets a repeating warning through once per ``interval`` and says how many were held
    back. waitress logs 'Task queue depth is N' for every request that has to wait for a
    free thread, which under an ordinary burst is hundreds of lines a second."""

    def __init__(self, interval: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self._last: float | None = None
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = self.clock()
        if self._last is not None and now - self._last < self.interval:
            self._dropped += 1
            return False
        if self._dropped:
            record.msg = (f"{record.msg} ({self._dropped} more such warnings in the last "
                          f"{self.interval:.0f} s)")
        self._last, self._dropped = now, 0
        return True


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
        self._writer = threading.Thread(target=self._run, name="feeds-log-writer",
                                        daemon=True)
        self._writer.start()

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
        if not self._wake.is_set():
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


def setup_logging(level: str, fmt: str) -> None:
    """Service logs on stderr (text or JSON lines); the access log (web.py renders each
    line, combined or JSON) on stdout, at INFO, so ``--log-level warning`` silences it."""
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(_OneLineFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    access = logging.getLogger("feeds.access")
    access.propagate = False
    for earlier in access.handlers:
        if isinstance(earlier, BatchedStream):
            earlier.close()
    access_handler = BatchedStream(sys.stdout)
    access_handler.setFormatter(logging.Formatter("%(message)s"))
    access.handlers[:] = [access_handler]
    queue = logging.getLogger("waitress.queue")
    queue.filters[:] = [f for f in queue.filters if not isinstance(f, _EveryMinute)]
    queue.addFilter(_EveryMinute())


# --- progress on a terminal ------------------------------------------------------------


class Progress:
    """A one-line progress bar on a terminal, redrawn at most ten times a second; does
    nothing at all when the stream is not a terminal (a log file, a pipe, CI)."""

    WIDTH = 30

    def __init__(self, label: str, stream: TextIO | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty()
        self.clock = clock
        self.started = clock()
        self._drawn = 0.0
        self._shown = False

    def update(self, done: int, total: int | None = None) -> None:
        if not self.enabled:
            return
        now = self.clock()
        if now - self._drawn < 0.1 and done != total:
            return
        self._drawn = now
        rate = done / max(now - self.started, 1e-6)
        if total:
            filled = self.WIDTH * done // total
            bar = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {done}/{total}"
        else:
            bar = f"{done}"
        self.stream.write(f"\r{self.label} {bar} {rate:,.0f}/s\x1b[K")
        self.stream.flush()
        self._shown = True

    def close(self) -> None:
        """Clear the bar, so the summary line that follows stands alone."""
        if self._shown:
            self.stream.write("\r\x1b[K")
            self.stream.flush()
            self._shown = False


# --- commands --------------------------------------------------------------------------


def _add_setting_flags(parser: argparse.ArgumentParser) -> None:
    for option in OPTIONS:
        if not option.flag:
            continue
        env = f" (env {option.env})" if option.env else ""
        if isinstance(option.default, bool):
            parser.add_argument(option.flag, dest=option.name, default=None,
                                action=argparse.BooleanOptionalAction,
                                help=f"{option.help}{env}; default {option.default}")
        else:
            parser.add_argument(option.flag, dest=option.name, default=None, metavar="VALUE",
                                help=f"{option.help}{env}; default {option.default!r}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="feeds", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve feeds and pages with waitress")
    _add_setting_flags(serve)
    check = sub.add_parser("check", help="read a content folder and list its problems")
    check.add_argument("dir", help="the content folder")
    check.add_argument("--timezone", dest="timezone", default=None)
    build = sub.add_parser("build", help="write every feed and page as static files")
    build.add_argument("dir", help="the content folder")
    build.add_argument("out", help="the output folder")
    build.add_argument("--base-url", dest="base_url", default=None,
                       help="absolute URL the files will be served at")
    return parser


def _settings(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    given = {name: getattr(args, name, None) for name in names}
    return load_settings(given)


def _content_folder(path: str) -> None:
    if not Path(path).is_dir():
        raise ConfigError(f"{path}: not a folder")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = _settings(args, [o.name for o in OPTIONS if o.flag])
            setup_logging(settings.log_level, settings.log_format)
            from .server import serve

            return serve(settings)
        if args.command == "check":
            _content_folder(args.dir)
            setup_logging("warning", "text")
            settings = load_settings({"content": args.dir, "timezone": args.timezone})
            return check(settings)
        if args.command == "build":
            _content_folder(args.dir)
            setup_logging("info", "text")
            logging.getLogger("feeds.access").setLevel(logging.WARNING)
            settings = load_settings({"content": args.dir, "base_url": args.base_url})
            from .export import run

            bar = Progress("build")
            try:
                result = run(settings, args.out, progress=bar.update)
            finally:
                bar.close()
            print(result.summary(), file=sys.stderr)
            return 1 if result.failed else 0
    except ConfigError as e:
        print(f"feeds: {e}", file=sys.stderr)
        return 2
    return 2


# --- check -----------------------------------------------------------------------------


class _Problems(logging.Filter):
    """`feeds check` prints each problem itself, on stdout; the store's log line for the
    same problem would only repeat it on stderr."""

    TEMPLATES = ("post rejected: %s", "post accepted with a problem: %s")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.TEMPLATES


def check(settings: Settings) -> int:
    """Print one line per problem; exit status 1 when any post was rejected."""
    started = time.monotonic()
    bar = Progress("check")
    store = _progress_store(settings, bar)
    content_logger = logging.getLogger("feeds.content")
    quiet = _Problems()
    content_logger.addFilter(quiet)
    try:
        snapshot = store.load(progress=False)
    finally:
        content_logger.removeFilter(quiet)
        bar.close()
    problems = sorted(
        (p for ps in snapshot.problems.values() for p in ps), key=lambda p: p.path)
    # One line per file left out or accepted with a problem, in path order. A post left
    # out on purpose (published: false) has its line too, but is not a rejection.
    lines = [(p.path, str(p)) for p in problems]
    lines += [(path, f"{path}: skipped: {why}") for path, why in snapshot.skipped.items()]
    lines += _setting_problems(settings)
    for _path, line in sorted(lines):
        print(line)
    rejected = snapshot.rejected
    print(f"{len(snapshot.posts)} posts, {rejected} rejected, "
          f"{sum(1 for p in problems if not p.rejected)} warnings, "
          f"{time.monotonic() - started:.2f} s", file=sys.stderr)
    return 1 if rejected else 0


def _setting_problems(settings: Settings) -> list[tuple[str, str]]:
    """A line for each text setting (from _config.yml, a flag or the environment) that
    holds characters XML cannot carry: the feeds drop them, the operator should know."""
    from dataclasses import fields

    from .parse import CONTROL_WARNING, XML_ILLEGAL

    return [("_config.yml", f"_config.yml: {f.name}: {CONTROL_WARNING}")
            for f in fields(settings)
            if isinstance(value := getattr(settings, f.name), str) and XML_ILLEGAL.search(value)]


def _progress_store(settings: Settings, bar: Progress) -> ContentStore:
    """A ContentStore whose folder walk drives the bar: the walk is listed first (cheap
    next to parsing), so the bar knows its total, then handed out one file at a time."""
    from .content import ContentStore

    class Counting(ContentStore):
        def _walk(self, top: str, folders: list[str] | None = None,
                  ) -> Iterator[tuple[str, os.DirEntry[str]]]:
            found = list(super()._walk(top, folders))
            for done, item in enumerate(found, 1):
                yield item
                bar.update(done, len(found))

    return Counting(settings) if bar.enabled else ContentStore(settings)
