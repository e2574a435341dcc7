"""When a post file is read again: one caught being written (it changed while it was
read, or reads broken while young) is retried soon, and one whose body could not be
read at the next chance. The store keeps what it knew of such a file meanwhile."""

from __future__ import annotations

import logging
import time

from .disk import stat_post
from .model import Stamp

logger = logging.getLogger(__name__)

SETTLE = 2.0
"""Seconds after its last write that a file may be half written."""


class Retries:
    """The files of one content folder to read again, and when (monotonic time). Not
    locked: the store calls it under its own lock, except ``ask`` (a request never
    waits), which only appends."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._when: dict[str, float] = {}
        self._asked: list[str] = []

    def settling(self, rel: str, broken: bool, stamp: Stamp, known: bool) -> bool:
        """Whether what is ``known`` of ``rel`` stays (read again soon): it reads
        ``broken`` (changed while read_post read it, say) and has changed since, or was
        written less than SETTLE ago. A read that parses was whole: read_post saw it hold
        still (whatever was saved over it since is read at its own event)."""
        if broken:  # (a whole read needs no stat: most files, at every load)
            now, _ = stat_post(self.root, rel)
            young = time.time_ns() - stamp[0] < SETTLE * 1e9
            broken = now != stamp or (young and known)
        if not broken:
            self._when.pop(rel, None)
            return False
        logger.debug("%s is being written; keeping what was read before, for now", rel)
        self._when[rel] = time.monotonic() + (0.1 if now != stamp else SETTLE)
        return True

    def later(self, rel: str) -> None:
        """Read ``rel`` once it has settled (a scan found it just written)."""
        self._when.setdefault(rel, time.monotonic() + SETTLE)

    def ask(self, rel: str) -> None:
        self._asked.append(rel)  # at the next chance: its body could not be read

    def pending(self) -> bool:
        """Whether any file is still to be read again."""
        return bool(self._when or self._asked)

    def forget(self, rel: str) -> None:
        self._when.pop(rel, None)

    def due(self) -> set[str]:
        """The files due to be read again now (each handed out once)."""
        now, (asked, self._asked) = time.monotonic(), (self._asked, [])
        due = {rel for rel, when in self._when.items() if when <= now}
        for rel in due:
            del self._when[rel]  # read again now; settling asks again if need be
        return due | set(asked)
