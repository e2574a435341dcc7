"""Files a change removed, remembered for a moment. When the folder itself goes soon
after (an ``rm -rf`` that paused part-way, which a busy machine does), those removals
were the start of its removal, not edits: the store puts them back, so the folder's
last content is served whole while the new one settles (see ``watch``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from .model import Post, Problem, Stamp

UNDO_WITHIN = 5.0
"""How long after a removal the folder's own removal takes it back."""


@dataclass(frozen=True, slots=True)
class Gone:
    """What the store knew of a file before it was forgotten."""

    stamp: Stamp
    post: Post | None
    problems: tuple[Problem, ...] | None
    skipped: str | None
    when: float


class Removals:
    """The files forgotten in the last UNDO_WITHIN seconds, by relative path. The tables
    are the store's: stamps, posts, problems and skipped reasons, by relative path."""

    def __init__(self) -> None:
        self._gone: dict[str, Gone] = {}

    def note(self, rel: str, stamps: dict[str, Stamp], posts: dict[str, Post],
             problems: dict[str, tuple[Problem, ...]], skipped: dict[str, str]) -> None:
        """``rel`` (which ``stamps`` holds) is about to be forgotten."""
        now = time.monotonic()
        gone = self._gone
        gone.pop(rel, None)  # (so the oldest is always first)
        gone[rel] = Gone(stamps[rel], posts.get(rel), problems.get(rel), skipped.get(rel), now)
        self._prune(now)

    def _prune(self, now: float) -> None:
        """Let go of what is too old to be taken back: the oldest first."""
        gone = self._gone
        while gone:
            oldest = next(iter(gone))
            if now - gone[oldest].when <= UNDO_WITHIN:
                break
            del gone[oldest]

    def put_back(self, stamps: dict[str, Stamp], posts: dict[str, Post],
                 problems: dict[str, tuple[Problem, ...]], skipped: dict[str, str],
                 ) -> set[str]:
        """Put the recent ones that are still gone back into the tables; their paths. A
        removal is taken back once: the rest are let go."""
        self._prune(time.monotonic())
        gone, self._gone = self._gone, {}
        back = {rel: g for rel, g in gone.items() if rel not in stamps}
        for rel, g in back.items():
            stamps[rel] = g.stamp
            if g.post is not None:
                posts[rel] = g.post
            if g.problems is not None:
                problems[rel] = g.problems
            if g.skipped is not None:
                skipped[rel] = g.skipped
        return set(back)
