"""A whole load's parsing shared with forked helper processes (``load_workers``).

Parsing front matter is Python under the GIL, so a second core is only used by a second
process. Before it parses, a whole load forks helpers; each parses a run of the files the
index does not hold, from the run's end, and sends back its parses pickled as a load
state keeps posts (``statefile.pickler``, as it goes: 6 us a file to read back, against
15 for the index's JSON payload), with the stamp of the bytes it read. The runs cover
every file: the loading process goes into the first run from its front meanwhile, taking
back each file its helper has not come near yet; the helper stops where they meet, so
that however fast each process goes, both are done at about the same moment. It takes a
helper's parse as the file was when the helper read it, at that stamp (a file changed
since is read again by the full scan that follows the load). A file a helper did not
parse (unreadable, a link out, a surprise) it reads and parses itself, as without a
helper.

A helper only reads files and parses them: no lock another thread may have held at the
fork is needed on its way (it logs nothing, see logs.BatchedStream for the log), and
it answers no signal the server set up. A helper that dies, sends nonsense or stops
making progress for STALL seconds (a lock held at the fork after all) is killed, and
its files are parsed by the loading process: at worst the load takes longer.
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import mmap
import os
import select
import signal
import struct
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence

from .disk import stat_post
from .model import Stamp
from .parse import SiteRules
from .parsed import Parse, read_file
from .statefile import loads_all, pickler

logger = logging.getLogger(__name__)

MIN_SHARE = 500
"""Fewer files to parse than this a helper are not worth a fork (~10 ms): a helper is
forked for each MIN_SHARE files beyond the first MIN_SHARE (each process's share)."""

TAKE_BACK_GAP = 8
"""A file of a helper's run is taken back while more than this many lie between it and
the file the helper parses next."""

BATCH = 200
"""A helper's parses are pickled this many at a time."""

STALL = 10.0
"""A helper that has parsed no file for this long is taken to be stuck, and killed."""

Parsed = dict[str, tuple[Stamp, Parse]]
"""What helpers sent: a file's stamp as read and its parse (one the index may keep)."""


class Helper:
    """One forked process parsing ``rels`` from the last; :meth:`collect` waits for its
    parses. ``progress`` holds how many it parsed, then how many of the first the
    loading process took back."""

    def __init__(self, pid: int, fd: int, rels: Sequence[str], progress: mmap.mmap) -> None:
        self.pid, self._fd, self.rels, self._progress = pid, fd, rels, progress
        self.taken_back = 0

    def _done(self) -> int:
        return int(struct.unpack_from("q", self._progress)[0])

    def take_back(self, at: int) -> bool:
        """Whether the file at ``at`` of the run is parsed by the loading process after
        all (and those before it, which it met first): the helper is still far from it.
        (Should the two ever meet on one file, both parse it: the helper's is unused.)"""
        if len(self.rels) - self._done() - at <= TAKE_BACK_GAP:
            return False
        self.taken_back = at + 1
        struct.pack_into("q", self._progress, 8, self.taken_back)
        return True

    def _read_all(self) -> bytes | None:
        """The whole of what the helper writes, or None once it made no progress for
        STALL seconds (killed then)."""
        chunks: list[bytes] = []
        done, since = self._done(), time.monotonic()
        while True:
            ready, _, _ = select.select([self._fd], [], [], 0.5)
            if ready:
                chunk = os.read(self._fd, 1 << 20)
                if not chunk:
                    return b"".join(chunks)
                chunks.append(chunk)
                since = time.monotonic()
            elif self._done() != done:
                done, since = self._done(), time.monotonic()
            elif time.monotonic() - since > STALL:
                with contextlib.suppress(OSError):
                    os.kill(self.pid, signal.SIGKILL)
                logger.warning("a load helper made no progress for %.0f s (%d of %d files "
                               "parsed): killed; its files are parsed here", STALL, done,
                               len(self.rels))
                return None

    def collect(self) -> Parsed:
        """The helper's parses (none when it failed: its files are then parsed here)."""
        try:
            data = self._read_all()
        finally:
            os.close(self._fd)
            reap(self.pid)
            self._progress.close()
        if not data:
            if data is not None:
                logger.warning("a load helper ended without its parses; its files are "
                               "parsed here")
            return {}
        try:
            parsed: Parsed = {}
            for batch in loads_all(data):
                for rel, stamp, parse in batch:
                    if not isinstance(parse, Parse) or not (
                            parse.post is None or parse.post.source == rel):
                        raise TypeError("not a parse of the file")
                    parsed[rel] = (stamp, parse)
            return parsed
        except Exception as e:  # never trusted: parsed here instead
            logger.warning("a load helper sent what cannot be read (%r); its files are "
                           "parsed here", e)
            return {}


def reap(pid: int) -> None:
    """Wait for a helper that has ended (or been killed) on a thread of its own: a
    process that held a large heap takes a while to go (0.1 s at 100,000 posts), which
    the load (or a reader's render) need not wait for."""
    with contextlib.suppress(ChildProcessError):
        if os.waitpid(pid, os.WNOHANG)[0] == 0:
            threading.Thread(target=os.waitpid, args=(pid, 0), name="feeds-reap",
                             daemon=True).start()


def _parse_share(root: str, rels: Sequence[str], rules: SiteRules,
                 progress: mmap.mmap) -> Iterator[tuple[str, Stamp, Parse]]:
    """In the helper: (path, stamp as read, parse) of each file parsed as the index
    would keep it, from the last file to the first the loading process did not take
    back; a file that is not (a link out, unreadable, a surprise) is left out."""
    for n in range(1, len(rels) + 1):
        if len(rels) - n < struct.unpack_from("q", progress, 8)[0]:
            break  # taken back: this one, and every one before it
        rel = rels[-n]
        stamp, link_problem = stat_post(root, rel)
        if stamp is not None and link_problem is None:
            parse, read_stamp, keep, _data = read_file(root, rel, stamp, rules)
            if parse is not None and keep:
                yield rel, read_stamp, parse
        struct.pack_into("q", progress, 0, n)


def _send(rows: Iterable[tuple[str, Stamp, Parse]], fd: int) -> None:
    """In the helper: its parses pickled a batch at a time as they are made (the
    pickling is part of its share of the work, which the loading process's taking back
    evens out), written at its end (a pipe written meanwhile would wait for a reader
    busy parsing)."""
    buffer = io.BytesIO()
    pickled, batch = pickler(buffer), []
    for row in rows:
        batch.append(row)
        if len(batch) == BATCH:
            pickled.dump(batch)
            batch = []
    pickled.dump(batch)
    with os.fdopen(fd, "wb") as pipe:
        pipe.write(buffer.getbuffer())


PR_SET_PDEATHSIG = 1  # prctl(2): the signal a process gets when its parent thread ends


@functools.cache
def prctl_call() -> Callable[..., int] | None:
    """Linux's prctl(2), looked up in the forking process: a helper forked from a process
    running other threads must take no lock (a dlopen's, an import's) on its way."""
    try:
        import ctypes

        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # no such call here: a helper may outlive a kill
        return None


def die_with(parent: int, prctl: Callable[..., int] | None) -> None:
    """In a helper: be killed when the thread that forked it ends (PR_SET_PDEATHSIG), so
    a server killed mid-load (or mid-batch: renderwork) leaves no helper working on,
    holding its memory, until its answer meets a closed pipe. Gone already: go now."""
    if prctl is not None:
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _fork(root: str, rels: Sequence[str], rules: SiteRules) -> Helper | None:
    progress, parent, prctl = mmap.mmap(-1, 16), os.getpid(), prctl_call()
    read, write = os.pipe()
    try:
        pid = os.fork()
    except OSError as e:
        logger.warning("cannot fork a load helper (%s); parsing here", e)
        for fd in (read, write):
            os.close(fd)
        return None
    if pid == 0:  # the helper: parse, send, go (never returns)
        code = 1
        try:
            die_with(parent, prctl)
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                signal.signal(sig, signal.SIG_DFL)
            os.close(read)
            _send(_parse_share(root, rels, rules, progress), write)
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    return Helper(pid, read, rels, progress)


def share(root: str, rels: Sequence[str], rules: SiteRules, workers: int,
          known: Callable[[str], bool]) -> list[Helper]:
    """Fork up to ``workers - 1`` helpers for the files of ``rels`` that are not
    ``known`` (the index holds them); each helper takes a run from the end of them."""
    todo = [rel for rel in rels if not known(rel)]
    helpers = min(workers - 1, len(todo) // MIN_SHARE - 1)
    if helpers < 1 or not hasattr(os, "fork"):
        return []
    # The runs cover every file: this process has no share of its own, but takes back
    # the first run's files from its front until it meets that run's helper (parsing
    # from its end), so the two end together whichever is the faster (with a first
    # share, a helper done first was left idle while this process still parsed it:
    # it also imports the web stack meanwhile). A helper's parses arrive whole at its
    # end; taking them in (~15 us a file: reading them back and filing them) follows.
    each = len(todo) // helpers
    started = []
    for k in range(helpers):
        end = len(todo) - k * each
        helper = _fork(root, todo[end - each:end], rules)
        if helper is not None:
            started.append(helper)
    if started:
        logger.info("%s: %d files to parse, %d of them by %d forked helpers", root,
                    len(todo), sum(len(h.rels) for h in started), len(started))
    return started


class Shared:
    """The helpers of one whole load, and what they parsed, taken file by file."""

    def __init__(self, helpers: Sequence[Helper]) -> None:
        self._helpers = list(helpers)
        self._owner = {rel: (helper, at) for helper in helpers
                       for at, rel in enumerate(helper.rels)}
        self._parsed: Parsed = {}

    def take(self, rel: str) -> tuple[Stamp, Parse] | None:
        """A helper's parse of this file and the stamp of what it read (waiting for that
        helper's parses once it is near the file); None for a file to parse here (no
        helper's, or taken back)."""
        owner = self._owner.pop(rel, None)
        if owner is None:
            return None
        helper, at = owner
        if helper in self._helpers:
            if helper.take_back(at):
                return None
            self._helpers.remove(helper)
            self._parsed.update(helper.collect())
        return self._parsed.pop(rel, None)

    def close(self) -> None:
        """Wait for any helper not asked yet (a load that ended early)."""
        for helper in self._helpers:
            helper.collect()
        self._helpers.clear()
        self._owner.clear()
        self._parsed.clear()


def each_file(rels: Sequence[str], root: str, on_progress: Callable[[int, int], None] | None,
              log: bool) -> Iterator[str]:
    """The files of a whole load in order, telling ``on_progress`` of each one done and,
    with ``log``, logging how far it got every 2 s."""
    started = last_report = time.monotonic()
    if on_progress is not None:
        on_progress(0, len(rels))
    for seen, rel in enumerate(rels, 1):
        yield rel
        if on_progress is not None:
            on_progress(seen, len(rels))
        now = time.monotonic()
        if log and now - last_report >= 2.0:
            last_report = now
            logger.info("loading %s: %d of %d files read, %.0f files/s",
                        root, seen, len(rels), seen / (now - started))
