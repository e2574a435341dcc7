"""The state of a content store (:class:`~feeds.content.ContentStore`): the tables of
what each file of the folder gave, the helpers it is read with (the persisted index, the
load state, a whole load's helpers, files caught being written, removals that may be
undone), and the accessors that only read them. How they change, file by file or whole,
is the store's own (``content``)."""

from __future__ import annotations

import heapq
import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from .config import Settings
from .config_file import ConfigFollower, LiquidFiles
from .disk import ChangeClock, KeptFiles, KnownFolders, read_post
from .loadstate import LoadStates
from .loadwork import Shared
from .model import Post, Problem, Stamp
from .parse import PostError, SiteRules, body_text
from .postcache import PostCache
from .removals import Removals
from .scan import Look, folder_look
from .settle import Retries
from .snapshot import Holding
from .statefile import Outcome

logger = logging.getLogger("feeds.content")

Begun = tuple[float, Sequence[str], Outcome | None, list[str]]
"""A whole load begun (ContentStore._begin): when, the files that may be posts, the load
state taken (else None) and its files to read again."""


class StoreBase:
    """What a content store holds, and what reads it without changing it."""

    def __init__(self, settings: Settings, *,
                 on_problem: Callable[[Problem], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self.settings = settings
        self._on_problem = on_problem
        self._on_progress = on_progress
        self.root = Path(settings.content)
        self.parse_count = 0  # how many times a file was parsed (what the tests count)
        self._version = 0
        self._touched: set[str] = set()
        self._stamps: dict[str, Stamp] = {}  # every path known (post, rejected, skipped)
        self._folders = KnownFolders()  # the folders above them
        self._clock = ChangeClock(str(self.root))  # what Snapshot.modified_ns says
        self._kept = KeptFiles(settings.source_cache_bytes)  # the bodies read_body gives
        self._posts: dict[str, Post] = {}
        self._problems: dict[str, tuple[Problem, ...]] = {}
        self._skipped: dict[str, str] = {}
        self._jekyll_layout = True
        self._rules: SiteRules = settings.site_rules()
        self._lock = threading.RLock()
        self.config = ConfigFollower(self.root)
        self._liquid_files = LiquidFiles(self.root)  # an edit: a new snapshot, same posts
        self._hold = Holding(self.root)  # a folder that had posts keeps them while it has none
        self.scan_look: tuple[Look] | None = None  # look() as the last rescan saw it
        self._retries = Retries(str(self.root))  # files caught being written, and asked
        self._removals = Removals()  # put back if the folder itself goes just after
        self._shared, self._loads = Shared(()), 0  # a whole load's helpers; loads made
        self._begun: Begun | None = None  # a first load begun early (begin)
        self.index: PostCache | None = None
        """The persisted index (``index_dir``), opened afresh by each whole load."""
        self.states = LoadStates(str(self.root), lambda: (
            self.settings.index_dir, self._rules, self.settings.future))
        """The whole load kept beside the index (``loadstate``)."""

    # --- scanning ---------------------------------------------------------------------

    @property
    def held(self) -> str | None:
        """Why the folder as it is is not handed out (None: it is)."""
        return self._hold.why

    def look(self) -> Look:
        """folder_look of the folder as a full scan walks it (collections included)."""
        return folder_look(str(self.root), self._rules.collection_folders)

    def _layout(self, folders: list[str]) -> bool:
        """Whether only files in ``_posts`` folders are posts: a ``_posts`` folder is
        among these (relative) folders, or was, and gave posts (``mv _posts x`` leaves a
        site with no posts, not a flat folder of all its pages)."""
        return self.root.name == "_posts" or any(
            f == "_posts" or f.endswith("/_posts") for f in folders) or (
            self._jekyll_layout and self._hold.had_posts)

    def _report(self, problem: Problem) -> None:
        """Tell ``on_problem`` of a problem found, else log it: once per change of a file."""
        if self._on_problem is not None:
            self._on_problem(problem)
        elif problem.rejected:
            logger.error("post rejected: %s", problem)
        else:
            logger.warning("post accepted with a problem: %s", problem)

    def due(self) -> set[str]:
        """The files due to be read again (see settle.Retries)."""
        with self._lock:
            return self._retries.due()

    def recheck(self, rel: str) -> None:
        self._retries.ask(rel)  # at the next chance: its body could not be read

    def _open_index(self, rows: Sequence[str] | None = None) -> PostCache | None:
        folder = self.settings.index_dir
        return PostCache(folder, str(self.root), self._rules, rows) if folder else None

    def save_index(self, wait: float | None = None) -> None:
        """Write what the index lacks, in one transaction, off the request path (after each
        swap; at a stop, waiting at most ``wait`` s for a write under way); failing: a warning."""
        index = self.index
        if index is not None:
            index.flush(self._lock, wait)

    def likely_newest(self, count: int) -> list[str]:
        """The texts of the ``count`` files a first load begun early (begin) most likely
        shows first, for what can be made ready while it runs: the newest by the date
        that opens a Jekyll post's name, none after today (a future post stays hidden).
        A guess, read before any is parsed; [] when no load was begun early."""
        begun = self._begun
        if begun is None or count < 1:
            return []
        today = time.strftime("%Y-%m-%d")
        names = ((rel.rpartition("/")[2], rel) for rel in begun[1])
        newest = heapq.nlargest(count, (pair for pair in names if pair[0][:10] <= today))
        texts = []
        for _name, rel in newest:
            try:
                data, _stamp = read_post(str(self.root), rel, self._rules.max_post_bytes)
                texts.append(data.decode("utf-8", "replace"))
            except PostError:
                continue
        return texts

    def read_body(self, post: Post) -> str:
        """An indexed post's body text, from the bytes read when it was indexed (else read
        again); PostError at once when unreadable, no regular file, changed or too big."""
        data = self._kept.get(post.source, post.stamp)
        if data is None:
            data, _ = read_post(str(self.root), post.source, self._rules.max_post_bytes,
                                expected=post.stamp)
        return body_text(post.source, data)
