"""A whole load's outcome, kept in the ``index_dir`` folder beside the persisted index, so
that a restart on a folder where no file changed makes no post and no site index anew.

The index (``postcache``) keeps each file's parse, so a restart reads no file; but it
still makes every post, then the site index, one Python object at a time (at 100,000
posts: ~1.2 s for the posts and ~1.2 s for the index). This file holds those objects as
the last whole load made them, pickled: the posts, the problems, the files skipped, and
the :class:`~feeds.site.SiteIndex`, taken back in one pass (~1 s at 100,000).

It is taken only when it is the outcome of this very folder as it is now:

- its key is the index's identity (the folder's real path and inode, the parse rules,
  the parsing code and libraries), the ``future`` setting, and the bytes of every module
  of the package (what a post and an index are made by);
- the files that could be posts are the same paths, each with the same stamp (size,
  mtime_ns, inode), but at most STALE_MAX of them, which are read again (from the
  index's rows when the service that ran wrote them); and none of them is a link;
- a digest of its bytes holds, and what it unpickles names only the classes a load
  makes (anything else is refused unread: a file placed there runs no code).

Anything else and the load is made from the index as before, and this file written again.
It is written only for an outcome the clock cannot change: no ``updated`` capped to the
moment of the load, no file left to be read again once its writer is done; and it is
taken only until the first post dated after its load comes due. It is written by a
forked process, so the server's own memory never holds the pickler's table of every
object.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import hashlib
import io
import json
import logging
import os
import pickle
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from .model import Post, Problem, Stamp
from .parse import SiteRules
from .postcache import identity, index_path
from .snapshot import Snapshot, gc_paused

logger = logging.getLogger(__name__)

MAGIC = b"feeds load state 2\n"
ALLOWED = frozenset({
    ("datetime", "datetime"), ("datetime", "timedelta"), ("datetime", "timezone"),
    ("feeds.loadstate", "_zone"), ("feeds.loadstate", "_post"),
    ("feeds.model", "Problem"), ("feeds.model", "Author"), ("feeds.model", "Kind"),
    ("feeds.site", "SiteIndex"), ("feeds.site", "Term"), ("feeds.links", "reserved"),
    ("builtins", "frozenset"), ("builtins", "set"), ("feeds.loadstate", "Files"),
    ("feeds.loadstate", "Outcome"),
})
"""What a load state may name: the classes of what a load makes, nothing that runs code."""

STALE_MAX = 1000
"""At most this many files changed since, and a state is taken with them read again (one
by one, as the watcher reads a change); more, and the whole load is made again (its
parsing shared with the load's helpers)."""


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

    def changes(self, root: str, walked: tuple[str, ...],
                layout: bool) -> tuple[str | None, list[str]]:
        """(None, the files to read again: changed, added or gone since) when the state
        may be taken with them read again; else (why not, []). (A state is taken only
        from a walk that met no link.)"""
        if self.layout != layout:
            return "the folder's layout changed since", []
        if self.due is not None and time.time() >= self.due:
            return "a post has come due since", []
        stale = [] if self.walked == walked else sorted(set(walked) ^ set(self.walked))
        prefix = os.path.join(root, "")
        for rel in self.files:
            try:
                st = os.lstat(prefix + rel)
            except OSError:
                stale.append(rel)
                continue
            if (st.st_mtime_ns, st.st_size, st.st_ino) != self.stamps.get(rel):
                stale.append(rel)
        if len(stale) > STALE_MAX:
            return f"{len(stale)} files changed since", []
        return None, list(dict.fromkeys(stale))


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
    """A Post from its fields' values, as a state keeps it: set slot by slot. (A frozen
    dataclass's own unpickling sets each field through a Python call that steps round
    its guard: 2.4 times as long, 0.66 s for 100,000 posts against 0.27 s.)"""
    post = object.__new__(Post)
    for set_value, value in zip(_SETTERS, values, strict=True):
        set_value(post, value)
    return post


def _reduce_post(post: Post) -> tuple[Any, ...]:
    return _post, (tuple(getattr(post, name) for name in _FIELDS),)


def _zone(key: str) -> ZoneInfo:
    return ZoneInfo(key)  # (the one instance a key has, as parsing shares it)


def _reduce_zone(zone: ZoneInfo) -> tuple[Any, ...]:
    # (its own reduction names getattr, which a state may not: it reaches anything)
    return _zone, (zone.key,)


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


def _body(data: bytes, key: bytes) -> tuple[bytes | None, str]:
    """The pickled part of a state file, or None and why not."""
    head, _, rest = data.partition(b"\n\n")
    lines = head.split(b"\n")
    if len(lines) != 3 or lines[0] + b"\n" != MAGIC:
        return None, "not a load state"
    if lines[1] != key:
        return None, "made for another folder, other settings or other code"
    if hashlib.blake2b(rest, digest_size=32).hexdigest().encode() != lines[2]:
        return None, "damaged"
    return rest, ""


def read(path: Path, key: bytes, wanted: Callable[[Files], str | None]) -> Outcome | None:
    """The outcome kept at ``path`` under ``key``, or None: missing, made for something
    else, damaged, or what ``wanted`` (None: yes; else why not) says of its files."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    rest, why = _body(data, key)
    if rest is not None:
        try:
            with gc_paused():  # (a bulk of objects that live on, as a load makes them)
                pickled = _Guarded(io.BytesIO(rest))
                files = pickled.load()
                if not isinstance(files, Files):
                    raise pickle.UnpicklingError("no list of files first")
                why = wanted(files) or ""
                outcome = None if why else pickled.load()
        except Exception as e:  # anything at all: the state is not used
            why = f"cannot be read ({type(e).__name__}: {e})"
        else:
            if isinstance(outcome, Outcome) and outcome.files is files:
                return outcome
            why = why or "not a load state"
    logger.info("load state %s: %s; the load is made again", path, why)
    return None


def files_of(walked: Iterable[tuple[str, os.DirEntry[str]]]) -> tuple[list[str], bool]:
    """The paths a walk gave, and whether any of them is a link (a link's target can
    change with no stamp of its own changing: no state is taken then)."""
    files, links = [], False
    for rel, entry in walked:
        files.append(rel)
        links = links or entry.is_symlink()
    return files, links


def write(path: Path, key: bytes, outcome: Outcome) -> None:
    """Keep ``outcome`` at ``path`` (a temporary file, renamed over it), pickled in a
    forked process that is waited for: its files first, then the rest, by one pickler
    (so the rest refers to the files' paths and stamps). A failure is logged at debug
    level only (the next start makes the load again)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    pid = os.fork()
    if pid == 0:  # the child: no lock, no log, no thread; only the file
        code = 1
        try:
            gc.disable()  # (its walks would copy every page the parent shares with it)
            buffer = io.BytesIO()
            pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
            pickler.dispatch_table = {Post: _reduce_post, ZoneInfo: _reduce_zone}
            pickler.dump(outcome.files)
            pickler.dump(outcome)
            body = buffer.getvalue()
            digest = hashlib.blake2b(body, digest_size=32).hexdigest().encode()
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "wb") as f:
                f.write(MAGIC + key + b"\n" + digest + b"\n\n")
                f.write(body)
            os.replace(tmp, path)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        logger.debug("load state %s: not written (status %d)", path, status)
        with contextlib.suppress(OSError):
            tmp.unlink()


@dataclass
class _Made:
    """A whole load just made from the files (not from a state), to be kept."""

    key: bytes
    walked: tuple[str, ...]
    files: tuple[str, ...]
    stamps: dict[str, Stamp]
    snapshot: Snapshot
    layout: bool
    since: float
    """The wall-clock time its load began: an ``updated`` capped to now is after it."""


class LoadStates:
    """The load state of one content folder: looked for at each whole load (``find``),
    noted after one made from the files (``made``), kept once its site index is made
    (``keep``). ``where`` gives the settings' index folder (None: none), the parse rules
    and the ``future`` setting of the load under way."""

    def __init__(self, root: str,
                 where: Callable[[], tuple[str | None, SiteRules, bool]]) -> None:
        self.root = root
        self._where = where
        self._walked: tuple[str, ...] = ()
        self._made: _Made | None = None
        self._found: Outcome | None = None
        self._stale: list[str] = []
        self._index: tuple[Snapshot, Any] | None = None
        self._since = 0.0
        self.taken = 0
        """Loads taken whole from a state (what the tests count)."""

    def _place(self) -> tuple[Path, bytes] | None:
        folder, rules, future = self._where()
        if not folder:
            return None
        path = state_path(index_path(folder, self.root))
        return path, key_of(identity(self.root, rules), future)

    def find(self, walked: Sequence[str], layout: bool, links: bool,
             is_post: Callable[[str], bool],
             ) -> tuple[Sequence[str], Outcome | None, list[str]]:
        """The files of ``walked`` that could be posts (``is_post``), the outcome kept of
        these files (else None), and those of them to read again (changed since)."""
        self._made, self._found, self._since = None, None, time.time()
        self._walked, self._stale = tuple(walked), []
        place = self._place()
        if place is None or links:
            self._walked = ()  # (nothing to keep either)
            return [rel for rel in walked if is_post(rel)], None, []
        stale: list[str] = []

        def wanted(files: Files) -> str | None:
            why, changed = files.changes(self.root, self._walked, layout)
            stale.extend(changed)
            return why

        found = read(*place, wanted)
        if found is None:
            return [rel for rel in walked if is_post(rel)], None, []
        self.taken += 1
        self._found, self._stale = found, stale
        same = found.files.walked == self._walked
        return (found.files.files if same else [rel for rel in walked if is_post(rel)],
                found, stale)

    def index_of(self, snapshot: Snapshot) -> Any:
        """The site index of ``snapshot`` when a state made it (else None), once: the one
        kept, with the posts read again put in (None when that takes a whole build)."""
        kept, self._index = self._index, None
        return kept[1] if kept is not None and kept[0] is snapshot else None

    def made(self, files: Sequence[str], stamps: Mapping[str, Stamp], snapshot: Snapshot,
             layout: bool, unsettled: bool) -> None:
        """A whole load made ``snapshot``: from the state ``find`` found (its index is then
        ``index_of(snapshot)``), else from the files; kept by ``keep`` unless it is the
        state as found, or ``unsettled`` (a file is to be read again once its writer is
        done)."""
        found, self._found = self._found, None
        if found is not None:
            pairs = [(found.posts.get(rel), snapshot.posts.get(rel)) for rel in self._stale]
            pairs = [(old, new) for old, new in pairs if old is not new]
            self._index = (snapshot, found.index.updated(
                [old for old, _new in pairs if old is not None],
                [new for _old, new in pairs if new is not None]) if pairs else found.index)
            if not self._stale:
                return
        place = self._place()
        if place is not None and self._walked and not unsettled:
            self._made = _Made(place[1], self._walked, tuple(files), dict(stamps), snapshot,
                               layout, self._since)
        self._walked = ()

    def keep(self, snapshot: Snapshot, index: Any) -> None:
        """Write the state of the load noted by ``made``, when ``snapshot`` is its
        snapshot and ``index`` its site index, and the clock cannot change them."""
        made, self._made = self._made, None
        place = self._place()
        if made is None or made.snapshot is not snapshot or place is None \
                or place[1] != made.key:
            return
        due: float | None = None
        for post in snapshot.posts.values():
            date = post.date.timestamp()
            if date > made.since:
                due = date if due is None else min(due, date)
            elif post.updated.timestamp() >= made.since:
                return  # capped to the moment of the load (snapshot.capped_updated)
        with contextlib.suppress(OSError):
            place[0].parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        files = Files(made.walked, made.files, made.stamps, made.layout, due)
        write(place[0], made.key, Outcome(files, snapshot.posts, snapshot.problems,
                                          snapshot.skipped, index))
