"""Command line: ``feeds serve | check | build`` (also ``python -m feeds``; ``python app.py``
is ``feeds serve``). Flags and environment variables come from config.OPTIONS."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import time
from collections.abc import Sequence
from types import FrameType
from typing import Any

from .config import OPTIONS, ConfigError, Settings, load_settings

logger = logging.getLogger("feeds")


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


class _EveryMinute(logging.Filter):
    """Lets a repeating warning through once a minute (waitress's 'Task queue depth')."""

    def __init__(self) -> None:
        super().__init__()
        self._last = 0.0
        self._dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        now = time.monotonic()
        if now - self._last < 60:
            self._dropped += 1
            return False
        if self._dropped:
            record.msg = f"{record.msg} ({self._dropped} more such warnings in the last minute)"
        self._last, self._dropped = now, 0
        return True


def setup_logging(level: str, fmt: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(_JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    access = logging.getLogger("feeds.access")
    access.propagate = False
    access_handler = logging.StreamHandler(sys.stdout)
    access_handler.setFormatter(_JsonFormatter() if fmt == "json"
                                else logging.Formatter("%(message)s"))
    access.handlers[:] = [access_handler]
    logging.getLogger("waitress.queue").addFilter(_EveryMinute())


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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "serve":
            settings = _settings(args, [o.name for o in OPTIONS if o.flag])
            setup_logging(settings.log_level, settings.log_format)
            return serve(settings)
        if args.command == "check":
            setup_logging("warning", "text")
            settings = load_settings({"content": args.dir, "timezone": args.timezone})
            return check(settings)
        if args.command == "build":
            setup_logging("info", "text")
            logging.getLogger("feeds.access").setLevel(logging.WARNING)
            settings = load_settings({"content": args.dir, "base_url": args.base_url})
            from .export import build

            status: int = build(settings, args.out)
            return status
    except ConfigError as e:
        print(f"feeds: {e}", file=sys.stderr)
        return 2
    return 2


def serve(settings: Settings) -> int:
    from waitress.server import create_server

    from . import create_app

    app = create_app(settings, background=True)
    server = create_server(
        app, host=settings.host, port=settings.port, threads=settings.threads,
        ident="feeds", connection_limit=1000, channel_timeout=60,
        clear_untrusted_proxy_headers=True,
    )
    logger.info("serving %s on http://%s:%s/ with %d threads", settings.content,
                settings.host, settings.port, settings.threads)

    def stop(signum: int, _frame: FrameType | None) -> None:
        logger.info("signal %d: finishing in-flight requests and stopping", signum)
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, stop)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        app.extensions["feeds"].stop()
    logger.info("stopped")
    return 0


def check(settings: Settings) -> int:
    """Print one line per problem; exit status 1 when any post was rejected."""
    from .content import ContentStore

    started = time.monotonic()
    store = ContentStore(settings)
    snapshot = store.load(progress=False)
    problems = sorted(
        (p for ps in snapshot.problems.values() for p in ps), key=lambda p: p.path)
    for problem in problems:
        print(problem)
    rejected = snapshot.rejected
    print(f"{len(snapshot.posts)} posts, {rejected} rejected, "
          f"{sum(1 for p in problems if not p.rejected)} warnings, "
          f"{time.monotonic() - started:.2f} s", file=sys.stderr)
    return 1 if rejected else 0
