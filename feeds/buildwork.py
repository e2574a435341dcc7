"""How ``feeds build`` asks for its URLs: one GET through the app's whole WSGI stack, and
the URLs split across processes forked once the content is loaded (``build_workers``);
and the tidying of OUT (stale files, a killed run's temporary files).

The work is Python under the GIL, so a second core is only used by a second process. A
fork shares the loaded posts and index for free; each process renders a contiguous run
of the URLs (they come newest post first, so each renders the bodies of its own part of
the history) and the children send back what they did. There is no fork where the
platform has none or another thread runs than the log's writer (a thread holding a lock
at the fork would hold it in the child for ever; the log writes directly in a child):
then one process does it all.
"""

from __future__ import annotations

import contextlib
import io
import logging
import mmap
import os
import pickle
import struct
import sys
import threading
import traceback
from collections.abc import Callable, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import unquote, urlsplit

from flask import Flask

from . import assets, links
from .logs import WRITER_THREAD

if TYPE_CHECKING:
    from .config import Settings
    from .model import Post
    from .service import FeedService

T = TypeVar("T")
R = TypeVar("R")

MIN_SPLIT = 200
"""Fewer URLs than this a process are not worth a fork."""


def _no_write(_data: bytes) -> None:
    raise NotImplementedError("the app writes its answers as its body")  # never called


def getter(app: Flask, base: str) -> Callable[[str], tuple[int, bytes, bool]]:
    """GET a URL (path and query) from the whole WSGI stack, as a server would pass it
    (PEP 3333: PATH_INFO decoded, its UTF-8 bytes as latin-1), and give the status, the
    body and whether it may be kept (not Cache-Control: no-store). No Accept-Encoding:
    the identity body, as a static host stores it. (Werkzeug's test client does the same
    at several times the cost a request.)"""
    split = urlsplit(base)
    port = str(split.port or (443 if split.scheme == "https" else 80))
    common = {
        "REQUEST_METHOD": "GET", "SCRIPT_NAME": "", "SERVER_NAME": split.hostname or "",
        "SERVER_PORT": port, "SERVER_PROTOCOL": "HTTP/1.1", "HTTP_HOST": split.netloc,
        "REMOTE_ADDR": "127.0.0.1", "wsgi.version": (1, 0), "wsgi.url_scheme": split.scheme,
        "wsgi.errors": sys.stderr, "wsgi.multithread": False, "wsgi.multiprocess": False,
        "wsgi.run_once": False,
    }

    def get(url: str) -> tuple[int, bytes, bool]:
        path, _, query = url.partition("?")
        environ = {**common, "PATH_INFO": unquote(path).encode("utf-8").decode("latin-1"),
                   "QUERY_STRING": query, "wsgi.input": io.BytesIO(b"")}
        answer: list[tuple[str, list[tuple[str, str]]]] = []

        def start_response(status: str, headers: list[tuple[str, str]],
                           _exc_info: Any = None) -> Callable[[bytes], object]:
            answer.append((status, headers))
            return _no_write

        result = app(environ, start_response)
        try:
            data = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        status, headers = answer[-1]
        keepable = ("Cache-Control", "no-store") not in headers
        return int(status[:3]), data, keepable

    return get


def bounded(settings: Settings) -> Settings:
    """The settings a build renders with: each URL is asked for once, so its answers
    are not worth keeping (4 MB), and its bodies and entries need hold only the posts
    still to be shown (``Sweep``: a thousand posts at 100,000; 16 MB)."""
    return replace(settings, cache_bytes=min(settings.cache_bytes, 4 << 20),
                   body_cache_bytes=min(settings.body_cache_bytes, 16 << 20))


def urls(app: Flask) -> dict[str, links.Shown]:
    """Every URL of the site the app serves, as a path with its query, the shipped
    static files (and the site's own feed.xslt.xml) among them, each once, with what
    it shows.

    In the order of the newest post each shows, newest first (those that show none
    first): every list's pages then move down the site's history together, so a post's
    body and entries are made once and still kept when its other feeds and pages ask
    for them, however many posts the site has (the caches are bounded, and ``Sweep``
    retires what no URL still to come shows)."""
    svc: FeedService = app.extensions["feeds"]
    state = svc.state()
    settings = state.settings
    pages = dict(links.site_pages(state.index, settings.page_size, settings.posts_limit,
                                  statics(settings), settings))
    # By the newest post's rank, not its sort key (a date's timestamp per URL cost more
    # than the rest). The order decides what the caches hold, never a byte.
    rank = ranks(state.index.posts)

    def newest(url: str) -> tuple[bool, int]:
        found = newest_rank(rank, pages[url].posts)
        return (False, 0) if found is None else (True, found)

    return {url: pages[url] for url in sorted(pages, key=newest)}


def statics(settings: Settings) -> list[str]:
    """The static files a site serves: the shipped assets, and its own feed.xslt.xml."""
    found = [f"/static/{name}" for name in assets.ASSETS]
    if os.path.isfile(assets.site_xslt_path(settings.content)):
        found.append(f"/{assets.SITE_XSLT}")
    return found


def ranks(posts: Sequence[Post]) -> dict[int, int]:
    """Each post's place in the site's history (0: the newest), by identity."""
    return {id(post): n for n, post in enumerate(posts)}


def newest_rank(rank: dict[int, int], shown: Sequence[Post | None]) -> int | None:
    """The rank of the newest post a URL shows (its first); None when it shows none."""
    first = next((post for post in shown if post is not None), None)
    return None if first is None else rank.get(id(first), -1)


def can_fork() -> bool:
    """Whether this process may fork: it can, and no thread runs but the log's writer."""
    others = [t for t in threading.enumerate()
              if t is not threading.main_thread() and t.name != WRITER_THREAD]
    return hasattr(os, "fork") and not others


def chunks(items: Sequence[T], workers: int) -> list[Sequence[T]]:
    """``items`` in contiguous runs, one a process (one run when forking is not on)."""
    workers = min(workers, max(1, len(items) // MIN_SPLIT))
    if workers <= 1 or not can_fork():
        return [items]
    size = -(-len(items) // workers)
    return [items[i:i + size] for i in range(0, len(items), size)]


class Counter:
    """A count every process adds to (the progress of the whole build)."""

    def __init__(self, slots: int) -> None:
        self._map = mmap.mmap(-1, 8 * slots)
        self.slots = slots

    def set(self, slot: int, value: int) -> None:
        struct.pack_into("q", self._map, 8 * slot, value)

    def total(self) -> int:
        return sum(struct.unpack_from("q", self._map, 8 * i)[0] for i in range(self.slots))


class Sweep:
    """Where one process's run of URLs has got to in the site's history. Its URLs come
    in the order of the newest post each shows, and a list's page shows its newest
    posts first, so a post newer than the one the current URL starts with is on no
    URL still to come: every ``STEP`` posts gone past, ``retire`` is given their
    sources (the build's bodies and entries then hold what is still to be shown, a
    thousand posts at 100,000, not the last ones rendered: fewer made twice, less
    memory)."""

    STEP = 500

    def __init__(self, posts: Sequence[Post], retire: Callable[[set[str]], None]) -> None:
        self._posts = posts
        self._rank = ranks(posts)
        self._retire = retire
        self._done = 0
        """The posts before this rank are retired."""

    def at(self, shown: Sequence[Post | None]) -> None:
        """The next URL to make shows these posts."""
        rank = newest_rank(self._rank, shown)
        if rank is not None and rank - self._done >= self.STEP:
            self._retire({post.source for post in self._posts[self._done:rank]})
            self._done = rank


def forked(work: Callable[[], object]) -> tuple[int, int] | None:
    """``work()`` in a process forked for it, its result pickled back (None: this
    process may not fork, see ``can_fork``); ``answer`` reads it."""
    if not can_fork():
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: its answer, and go
        code = 1
        try:
            os.close(read)
            with os.fdopen(write, "wb") as pipe:
                pickle.dump(work(), pipe)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return pid, read


def answer(child: tuple[int, int]) -> tuple[bool, Any]:
    """(whether it answered, what) of a process ``forked`` made, waited for."""
    pid, read = child
    with os.fdopen(read, "rb") as pipe:
        try:
            found: tuple[bool, Any] = (True, pickle.load(pipe))  # (our own child's)
        except (EOFError, pickle.UnpicklingError):
            found = (False, None)
    os.waitpid(pid, 0)
    return found


class WorkerDied(Exception):
    """A forked process ended without sending its result."""


def in_parallel(parts: Sequence[Sequence[T]],
                work: Callable[[Sequence[T], int], R]) -> list[R | WorkerDied]:
    """``work(part, slot)`` for each part: the first in this process, each other in a
    process forked for it, whose result comes back pickled through a pipe. A child's
    exception comes back as WorkerDied with its traceback; the child never returns."""
    children: list[tuple[int, int]] = []
    for slot, part in enumerate(parts[1:], 1):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the child: do its part, send the result, and go
            os.close(read)
            code = 0
            try:
                payload: object = work(part, slot)
            except BaseException:  # everything goes back to the parent
                payload, code = WorkerDied(traceback.format_exc()), 1
            try:
                with os.fdopen(write, "wb") as pipe:
                    pickle.dump(payload, pipe)
                logging.shutdown()  # os._exit skips it: the child's last lines are written
            finally:
                os._exit(code)
        os.close(write)
        children.append((pid, read))
    results: list[R | WorkerDied] = []
    try:
        results.append(work(parts[0], 0))
    finally:  # however this part ends, every child is waited for
        for pid, read in children:
            with os.fdopen(read, "rb") as pipe:
                try:
                    results.append(pickle.load(pipe))
                except (EOFError, pickle.UnpicklingError) as e:
                    results.append(WorkerDied(f"a build process sent nothing back: {e!r}"))
            os.waitpid(pid, 0)
    return results


# --- the files a build leaves -------------------------------------------------------


RUNNING = ".feeds-build-running"
"""Made as a build starts, removed once it has ended: found at the start of the next one,
it says a run was killed, and may have left temporary files."""


def begin(root: Path) -> bool:
    """Mark a build of ``root`` as running; whether the last one was killed."""
    killed = (root / RUNNING).exists()
    with contextlib.suppress(OSError):  # (a run killed then is swept by a full build)
        (root / RUNNING).touch()
    return killed


def end(root: Path, leftovers: Callable[[], set[str]] | None) -> None:
    """The build has ended; with ``leftovers`` (there may be some: the files they would
    be beside), ``sweep`` first. Only then: reading every folder of OUT costs more than
    the rest of a small change's build."""
    if leftovers is not None:
        sweep(root, leftovers())
    with contextlib.suppress(OSError):
        (root / RUNNING).unlink(missing_ok=True)


def tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp")


def remove_stale(root: Path, stale: set[str]) -> int:
    """Remove the files a previous run wrote that this one did not, then the folders
    that leaves empty (never ``root`` itself)."""
    removed = 0
    folders: set[Path] = set()
    for rel in sorted(stale):
        path = root / rel
        if path.is_file() and root in path.resolve().parents:
            path.unlink()
            removed += 1
            folders.update(p for p in path.parents if root in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: something else lives there
            folder.rmdir()
    return removed


def sweep(root: Path, rels: set[str]) -> None:
    """Remove the temporary files a killed run left next to the files it wrote (found by
    reading the folders: one failed unlink a file cost more)."""
    for folder, _dirs, names in os.walk(root):
        for name in names:
            if name.startswith(".") and name.endswith(".tmp"):
                path = Path(folder, name[1:-4])
                if path.relative_to(root).as_posix() in rels:
                    with contextlib.suppress(OSError):
                        tmp_path(path).unlink()
