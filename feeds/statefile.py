"""The load state's file (see ``loadstate``): what it holds (the files a whole load was
made of, and its outcome), how those files are compared with the folder as it is now,
and how it is written (by a forked process) and read back (a digest first, then an
unpickler that makes only what a load makes: nothing that runs code)."""

from __future__ import annotations

import collections
import contextlib
import dataclasses
import gc
import hashlib
import io
import itertools
import json
import logging
import operator
import os
import pickle
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from zoneinfo import ZoneInfo

from .disk import stamp_of
from .model import Post, Problem, Stamp
from .parsed import Parse
from .snapshot import gc_paused

logger = logging.getLogger("feeds.loadstate")

MAGIC = b"feeds load state 2\n"
ALLOWED = frozenset({
    ("datetime", "datetime"), ("datetime", "timedelta"), ("datetime", "timezone"),
    ("feeds.statefile", "_zone"), ("feeds.statefile", "_post"),
    ("feeds.model", "Problem"), ("feeds.model", "Author"), ("feeds.model", "Kind"),
    ("feeds.site", "SiteIndex"), ("feeds.site", "Term"), ("feeds.links", "reserved"),
    ("builtins", "frozenset"), ("builtins", "set"), ("feeds.statefile", "Files"),
    ("feeds.statefile", "Outcome"), ("feeds.statefile", "_parse"),
})
"""What a load state may name: the classes of what a load makes, nothing that runs code."""

HELPED = 5000
"""From this many files, a server's render helper stats them while the state is read."""

STALE_MAX = 1000
"""At most this many files changed since, and a state is taken with them read again (one
by one, as the watcher reads a change); more, and the whole load is made again (its
parsing shared with the load's helpers)."""


Verdict = tuple[str | None, list[str]]


class Helper(Protocol):
    """What a load takes of a server's render helper (renderwork.RenderHelper)."""

    def start(self, work: Callable[[Any], Any], items: Sequence[Any]) -> bool: ...
    def finish(self, count: int, bodies: bool = True) -> list[Any]: ...


@dataclass(frozen=True)
class Files:
    """What a whole load was made of: checked against the folder before anything else
    of its state is read."""

    walked: tuple[str, ...]
    """Every file the walk found, in its order."""
    files: tuple[str, ...]
    """Those that could be posts (``is_post_path``)."""
    stamps: Mapping[str, Stamp]
    layout: bool
    due: float | None
    """When the first post dated after the load comes due (a Unix time): from then on,
    the index shows it (or its ``updated`` is capped otherwise): the state is not taken."""

    def compare(self, root: str, walked: tuple[str, ...], layout: bool,
                helper: Helper | None) -> Verdict | Callable[[], Verdict]:
        """Whether the state may be taken, with the files to read again (changed, added
        or gone since): (None, files) yes; (why not, []) no. With a ``helper`` (a
        server's render helper), the stat of every file is started there, and what
        finishes the comparison is returned, to call once the rest is read meanwhile."""
        if self.layout != layout:
            return "the folder's layout changed since", []
        if self.due is not None and time.time() >= self.due:
            return "a post has come due since", []
        job = (os.path.join(root, ""), self.files)
        if helper is None or len(self.files) < HELPED or not helper.start(stamps_of, [job]):
            return self._verdict(walked, stamps_of(job))

        def finish() -> Verdict:
            assert helper is not None
            (stamps,) = helper.finish(1, bodies=False)
            if not isinstance(stamps, list) or len(stamps) != len(self.files):
                stamps = stamps_of(job)  # (the helper failed: made here)
            return self._verdict(walked, stamps)

        return finish

    def _verdict(self, walked: tuple[str, ...], stamps: list[Stamp | None]) -> Verdict:
        stale = [] if self.walked == walked else sorted(set(walked) ^ set(self.walked))
        known = self.stamps
        # A load's stamps are kept in its files' order (most often): then compared side
        # by side, not looked up one by one (~1 s of a million-post warm start).
        before = known.values() if tuple(known) == self.files else map(known.get, self.files)
        stale += [rel for rel, now, was in zip(self.files, stamps, before, strict=True)
                  if now != was]
        if len(stale) > STALE_MAX:
            return f"{len(stale)} files changed since", []
        return None, list(dict.fromkeys(stale))


def stamps_of(job: tuple[str, Sequence[str]]) -> list[Stamp | None]:
    """The stamp (of its lstat: a state is taken only from a walk that met no link) of
    each file of ``job`` (a folder's path ending in '/', paths below it); None: gone.
    Run by a server's render helper, or here."""
    prefix, rels = job
    stamps: list[Stamp | None] = []
    for rel in rels:
        try:
            stamps.append(stamp_of(os.lstat(prefix + rel)))
        except OSError:
            stamps.append(None)
    return stamps


@dataclass(frozen=True)
class Outcome:
    """What a whole load made, as the store holds it."""

    files: Files
    posts: Mapping[str, Post]
    problems: Mapping[str, tuple[Problem, ...]]
    skipped: Mapping[str, str]
    index: Any
    """The site index made of ``posts`` (a SiteIndex; not imported: it comes later)."""

    def tell(self, report: Callable[[Problem], None], skipped: Callable[[str, str], None],
             stale: Iterable[str] = ()) -> None:
        """Tell each problem and each file skipped again, in the walk's order, as the load
        that made them told them; not those of the ``stale`` files (read again)."""
        again = set(stale)
        for rel in self.files.files:
            if rel in again:
                continue
            for problem in self.problems.get(rel, ()):
                report(problem)
            if rel in self.skipped:
                skipped(rel, self.skipped[rel])


_FIELDS = tuple(field.name for field in dataclasses.fields(Post))
_SETTERS = tuple(getattr(Post, name).__set__ for name in _FIELDS)  # its slots'


def _post(values: tuple[Any, ...]) -> Post:
    """A Post from its fields' values, as a state keeps it: set slot by slot, each
    slot's setter called from C (map), not from a Python loop (1.7 against 2.0 us a post
    here). (A frozen dataclass's own unpickling sets each field through a Python call
    that steps round its guard: 2.4 times as long, 0.66 s for 100,000 posts against 0.27 s.)"""
    if len(values) != len(_SETTERS):
        raise pickle.UnpicklingError("not a post's fields")
    post = object.__new__(Post)
    collections.deque(map(operator.call, _SETTERS, itertools.repeat(post), values), 0)
    return post


def _reduce_post(post: Post) -> tuple[Any, ...]:
    return _post, (tuple(getattr(post, name) for name in _FIELDS),)


def _zone(key: str) -> ZoneInfo:
    return ZoneInfo(key)  # (the one instance a key has, as parsing shares it)


def _reduce_zone(zone: ZoneInfo) -> tuple[Any, ...]:
    # (its own reduction names getattr, which a state may not: it reaches anything)
    return _zone, (zone.key,)


def _parse(post: Post | None, warnings: tuple[str, ...], error: str | None,
           skipped: str | None) -> Parse:
    return Parse(post, warnings, error, skipped)


def _reduce_parse(parse: Parse) -> tuple[Any, ...]:
    return _parse, (parse.post, parse.warnings, parse.error, parse.skipped)


DISPATCH: dict[type, Callable[[Any], tuple[Any, ...]]] = {
    Post: _reduce_post, ZoneInfo: _reduce_zone, Parse: _reduce_parse}
"""How a state's (and a load helper's) pickler reduces what a load makes."""


def pickler(buffer: BinaryIO) -> pickle.Pickler:
    """A pickler writing to ``buffer`` as a state is written (posts by their slots); what
    its dumps write, one after another, ``loads_all`` reads back."""
    made = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    made.dispatch_table = DISPATCH
    return made


def loads_all(data: bytes) -> Iterator[Any]:
    """Each value pickled in ``data`` by one ``pickler``, unpickled as a state is (only a
    load's own classes; what the pickler wrote once is made once)."""
    f = io.BytesIO(data)
    unpickler = _Guarded(f)
    while f.tell() < len(data):
        yield unpickler.load()


_CODE: list[str] = []


def _code() -> str:
    """A digest of every module of the package (as this process read them: once)."""
    if _CODE:
        return _CODE[0]
    here = Path(__file__).parent
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(here.rglob("*.py")):
        h.update(path.relative_to(here).as_posix().encode() + b"\0" + path.read_bytes())
    _CODE.append(h.hexdigest())
    return _CODE[0]


def key_of(identity: Mapping[str, str], future: bool) -> bytes:
    """The key a state is kept under: what it was made from, besides the files."""
    text = json.dumps([dict(identity), future, _code(), pickle.HIGHEST_PROTOCOL],
                      sort_keys=True)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest().encode()


def state_path(index_file: Path) -> Path:
    """The state kept beside the index file ``index_file``."""
    return index_file.with_suffix(".state")


class _Guarded(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not part of a load state")
        return super().find_class(module, name)


HEAD_MAX = 4096
"""A state's header (three lines) is shorter than this."""


def body_digest(data: bytes = b"") -> Any:
    """The hash a state's body is checked with: SHA-256, which on CPUs with SHA
    extensions (this machine's) reads ~1.7 GB/s, twice blake2b's speed (0.2 s of a
    million-post warm start, whose state is ~390 MB)."""
    return hashlib.sha256(data)


def _checked(f: BinaryIO, key: bytes) -> str:
    """'' when the open state file ``f`` was made under ``key`` and its digest holds,
    with ``f`` left at its pickles; else why not. Read in pieces: a whole state held
    as bytes, at a million posts, was 400 MB more at the start's peak."""
    head = f.read(HEAD_MAX)
    end = head.find(b"\n\n")
    lines = head[:end].split(b"\n") if end >= 0 else []
    if len(lines) != 3 or lines[0] + b"\n" != MAGIC:
        return "not a load state"
    if lines[1] != key:
        return "made for another folder, other settings or other code"
    f.seek(end + 2)
    digest = body_digest()
    while chunk := f.read(1 << 20):
        digest.update(chunk)
    if digest.hexdigest().encode() != lines[2]:
        return "damaged"
    f.seek(end + 2)
    return ""


def read(path: Path, key: bytes,
         wanted: Callable[[Files], str | Callable[[], str | None] | None]) -> Outcome | None:
    """The outcome kept at ``path`` under ``key``, or None: missing, made for something
    else, damaged, or what ``wanted`` says of its files (None: yes; else why not; or
    what says so once the rest is read)."""
    try:
        f = open(path, "rb")  # noqa: SIM115 (closed below, however it ends)
    except OSError:
        return None
    with f:
        try:
            why = _checked(f, key)
            if not why:
                with gc_paused():  # (a bulk of objects that live on, as a load makes them)
                    pickled = _Guarded(f)
                    files = pickled.load()
                    if not isinstance(files, Files):
                        raise pickle.UnpicklingError("no list of files first")
                    verdict = wanted(files)
                    why = "" if verdict is None or callable(verdict) else verdict
                    outcome = None if why else pickled.load()
                    if callable(verdict):
                        why = verdict() or ""
                if not why and isinstance(outcome, Outcome) and outcome.files is files:
                    return outcome
                why = why or "not a load state"
        except Exception as e:  # anything at all: the state is not used
            why = f"cannot be read ({type(e).__name__}: {e})"
    logger.info("load state %s: %s; the load is made again", path, why)
    return None


def write(path: Path, key: bytes, outcome: Outcome) -> Callable[[], None]:
    """Keep ``outcome`` at ``path`` (a temporary file, renamed over it), pickled in a
    forked process: its files first, then the rest, by one pickler (so the rest refers
    to the files' paths and stamps). What it gives waits for that process (the caller
    may go on meanwhile). A failure is logged at debug level only (the next start makes
    the load again)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pid = os.fork()
    if pid == 0:  # the child: no lock, no log, no thread; only the file
        code = 1
        try:
            gc.disable()  # (its walks would copy every page the parent shares with it)
            buffer = io.BytesIO()
            pickled = pickler(buffer)
            pickled.dump(outcome.files)
            pickled.dump(outcome)
            body = buffer.getvalue()
            digest = body_digest(body).hexdigest().encode()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as f:
                f.write(MAGIC + key + b"\n" + digest + b"\n\n")
                f.write(body)
            os.replace(tmp, path)
            code = 0
        finally:
            os._exit(code)

    def wait() -> None:
        _, status = os.waitpid(pid, 0)
        if status != 0:
            logger.debug("load state %s: not written (status %d)", path, status)
            with contextlib.suppress(OSError):
                tmp.unlink()

    return wait
