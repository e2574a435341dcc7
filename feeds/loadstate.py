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
import logging
import os
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import Stamp
from .parse import SiteRules
from .postcache import identity, index_path
from .snapshot import Snapshot
from .statefile import Files, Helper, Outcome, Verdict, key_of, read, state_path, write

logger = logging.getLogger(__name__)


def files_of(walked: Iterable[tuple[str, os.DirEntry[str]]]) -> tuple[list[str], bool]:
    """The paths a walk gave, and whether any of them is a link (a link's target can
    change with no stamp of its own changing: no state is taken then)."""
    files, links = [], False
    for rel, entry in walked:
        files.append(rel)
        links = links or entry.is_symlink()
    return files, links


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


STALE_KEPT = 100
"""A build (``later``) takes a state with this many files to read again, or fewer, and
leaves it as it is: written anew for one file edited, it cost the other core ~1.4 s of
an incremental build of 100,000 posts (the next start reads the same few again)."""


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
        self.helper: Helper | None = None
        """A server's render helper, which stats the files while the state is read."""
        self.later = False
        """``keep`` does not wait for the state's writer (a build, whose work goes on
        meanwhile on the other core): ``finish`` does, unless the build's process ends
        first (the writer then finishes on its own)."""
        self._writing: Callable[[], None] | None = None

    def _place(self) -> tuple[Path, bytes] | None:
        folder, rules, future = self._where()
        if not folder:
            return None
        path = state_path(index_path(folder, self.root))
        return path, key_of(identity(self.root, rules), future)

    def kept(self) -> bool:
        """Whether a state is kept for this folder (a whole load may take it)."""
        place = self._place()
        return place is not None and place[0].exists()

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

        def told(verdict: Verdict) -> str | None:
            stale.extend(verdict[1])
            return verdict[0]

        def wanted(files: Files) -> str | Callable[[], str | None] | None:
            verdict = files.compare(self.root, self._walked, layout, self.helper)
            return (lambda: told(verdict())) if callable(verdict) else told(verdict)

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
            if not self._stale or (self.later and len(self._stale) <= STALE_KEPT):
                self._walked = ()  # (the walk's paths: a million strings at 1,000,000)
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
        self.finish()
        self._writing = write(place[0], made.key, Outcome(
            files, snapshot.posts, snapshot.problems, snapshot.skipped, index))
        if not self.later:
            self.finish()

    def finish(self) -> None:
        """Wait for the state's writer, if one is still at work."""
        writing, self._writing = self._writing, None
        if writing is not None:
            writing()
