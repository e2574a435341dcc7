"""Snapshot: one consistent, frozen state of the content folder, as ``content`` hands it
out; the pause of the garbage collector while a whole one is built; and the cap on a
post's ``updated`` that keeps a snapshot's dates from running ahead of the clock."""

from __future__ import annotations

import contextlib
import gc
import logging
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path

from .config import Settings
from .model import Post, Problem

logger = logging.getLogger(__name__)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk of objects that live on is built.

    Posts hold no reference cycles; without this, every few hundred posts the
    collector walks every object made so far, which made a first load of 1,000 posts
    three times slower (measured, #5). Reference counting still frees as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Snapshot:
    """One consistent state of the content folder."""

    version: int
    settings: Settings
    posts: Mapping[str, Post]
    problems: Mapping[str, tuple[Problem, ...]]
    skipped: Mapping[str, str] = field(default_factory=dict)
    """Files deliberately not posts (``published: false``): path -> why."""
    duration: float = 0.0
    changed: frozenset[str] | None = None
    """The files whose post changed since the snapshot of the version before (None: a
    whole load). Lets the site index be updated rather than built again."""
    modified_ns: int = 0  # the newest mtime of its files, folders, _config.yml (disk)

    @property
    def rejected(self) -> int:
        return sum(1 for ps in self.problems.values() if any(p.rejected for p in ps))


def capped_updated(post: Post, problems: list[Problem]) -> Post:
    """A post whose ``updated`` (``last_modified_at``) is in the future, and after its
    date, is given now instead, with a warning: a far-future date would pin every
    Last-Modified, and If-Modified-Since would hide real changes (a future ``date`` is
    Jekyll's own rule: the post waits for it, see ``future``)."""
    if post.updated <= post.date:  # nearly every post: no clock needed (cap >= date)
        return post
    cap = max(datetime.now(UTC), post.date)
    if post.updated <= cap:
        return post
    problems.append(Problem(post.source, f"updated {post.updated.isoformat()} is in the "
                                         "future; capped to now", rejected=False))
    return replace(post, updated=cap)


class Holding:
    """What a content folder's snapshots are handed out as: a folder that had posts and
    has none now (unmounted, being swapped) keeps the last content served, and ``why``
    says so (health)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.why: str | None = None
        self.had_posts = False

    def __call__(self, snapshot: Snapshot | None) -> Snapshot | None:
        """The snapshot to hand out, or None (keep serving the last one)."""
        if snapshot is None:
            return None
        if not snapshot.posts and self.had_posts:
            why = "has no posts" if self.root.is_dir() else "is missing"
            if self.why is None:
                logger.warning("%s %s; serving its last content until posts come back",
                               self.root, why)
            self.why = f"the content folder {why}; serving the last content it had"
            return None
        if self.why is not None:
            logger.info("%s has posts again", self.root)
        self.why = None
        self.had_posts = self.had_posts or bool(snapshot.posts)
        return snapshot
