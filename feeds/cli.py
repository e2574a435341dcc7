"""Command line: ``feeds serve | check | build`` (also ``python -m feeds``; ``python app.py``
is ``feeds serve``). Flags and environment variables come from config.OPTIONS."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, TextIO

from .config import OPTIONS, Settings, load_settings
from .config_file import ConfigError
from .logs import access_logger, setup_logging

if TYPE_CHECKING:
    from .model import Problem


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
    check.add_argument("--index-dir", dest="index_dir", default=None, metavar="DIR",
                       help="the persisted index (see feeds serve --help)")
    build = sub.add_parser("build", help="write every feed and page as static files")
    build.add_argument("dir", help="the content folder")
    build.add_argument("out", help="the output folder")
    build.add_argument("--base-url", dest="base_url", default=None,
                       help="absolute URL the files will be served at")
    build.add_argument("--index-dir", dest="index_dir", default=None, metavar="DIR",
                       help="the persisted index: a build parses only the posts changed "
                            "since the last run that used it (see feeds serve --help)")
    return parser


def _settings(args: argparse.Namespace, names: Sequence[str]) -> Settings:
    given = {name: getattr(args, name, None) for name in names}
    return load_settings(given)


def _content_folder(path: str) -> None:
    if not Path(path).is_dir():
        raise ConfigError(f"{path}: not a folder")


def main(argv: Sequence[str] | None = None, exit_fast: bool = False) -> int:
    """The command line; ``exit_fast`` (``python -m feeds``): a build's process ends
    without freeing what it holds, once its output is flushed."""
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
            settings = load_settings({"content": args.dir, "timezone": args.timezone,
                                      "index_dir": args.index_dir})
            return check(settings)
        if args.command == "build":
            _content_folder(args.dir)
            setup_logging("info", "text")
            access_logger.setLevel(logging.WARNING)
            settings = load_settings({"content": args.dir, "base_url": args.base_url,
                                      "index_dir": args.index_dir})
            from .export import run

            bar = Progress("build")
            try:
                result = run(settings, args.out, progress=bar.update, detach=exit_fast)
            finally:
                bar.close()
            print(result.summary(), file=sys.stderr)
            code = 1 if result.failed else 0
            if exit_fast:  # freeing every post and index one by one: ~1 s at 100,000
                _exit_now(code)
            return code
    except ConfigError as e:
        print(f"feeds: {e}", file=sys.stderr)
        return 2
    return 2


def _exit_now(code: int) -> NoReturn:
    """End the process now: its output flushed, its log handlers closed (the build's
    work is on disk, its forked processes waited for), no object freed."""
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# --- check -----------------------------------------------------------------------------


def check(settings: Settings) -> int:
    """Print one line per problem; exit status 1 when any post was rejected."""
    from . import links
    from .content import ContentStore
    from .site import SiteIndex

    started = time.monotonic()
    bar = Progress("check")
    problems: list[Problem] = []
    # The store hands each problem to us instead of logging it: printed once, on stdout.
    store = ContentStore(settings, on_problem=problems.append,
                         on_progress=bar.update if bar.enabled else None)
    try:
        snapshot = store.load(progress=False)
    finally:
        bar.close()
    store.save_index()
    # A post whose permalink another URL or a source file has is left out by the index,
    # as the server and a build leave it out: listed here, a rejection like the others.
    site_log = logging.getLogger("feeds.site")
    level, site_log.level = site_log.level, logging.ERROR  # its lines are printed below
    index = store.states.index_of(snapshot)  # (a load taken whole from its state)
    try:
        if not isinstance(index, SiteIndex):
            index = SiteIndex(snapshot.posts.values(), future=settings.future,
                              reserved=links.reserved)
    finally:
        site_log.setLevel(level)
    store.states.keep(snapshot, index)  # (what the next start takes, when it is kept)
    problems += index.problems()
    # One line per file left out or accepted with a problem, in path order. A post left
    # out on purpose (published: false) has its line too, but is not a rejection.
    lines = [(p.path, str(p)) for p in problems]
    lines += [(path, f"{path}: skipped: {why}") for path, why in snapshot.skipped.items()]
    lines += _setting_problems(settings)
    for _path, line in sorted(lines):
        print(line)
    rejected = snapshot.rejected + len(index.left_out)
    kept = [p for p in snapshot.posts.values() if p.source not in index.left_out]
    documents = sum(1 for p in kept if p.collection != "posts")
    shown = f"{len(kept) - documents} posts, " + (
        f"{documents} documents, " if documents else "")
    print(f"{shown}{rejected} rejected, "
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
