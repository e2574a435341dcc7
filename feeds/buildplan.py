"""What a build makes and what it keeps (``buildstate`` is what the last one left): a
group whose fingerprint is the last build's, and whose files are still as it left them,
is kept whole, unlisted; in any other group each URL is looked at, and one whose
fingerprint and file are the last build's is kept.

Whether the files are as the last build left them (size, mtime_ns, inode; a file
changed or removed by hand is made again) is a look at every file it wrote: ~0.5 s at
190,000 files, more when their folders are not in memory. ``Check`` does it in a process
forked as the build starts, while the content loads, and answers the groups with a file
that is not.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from . import assets, buildgroups, buildwork
from .buildgroups import Group
from .buildstate import NEVER, BuildState, Fingerprints, Kept, Made, as_left, context_digest
from .links import Shown
from .model import Post
from .postcache import identity
from .site import SiteIndex

if TYPE_CHECKING:
    from flask import Flask

    from .config import Settings
    from .service import FeedService

logger = logging.getLogger(__name__)


def context_of(settings: Settings) -> str:
    """The context a build's bytes are made in (``buildstate``): known before the load."""
    base = settings.site_base or "http://localhost"
    # Every setting but the processes, cache bounds and the persisted index (and the
    # record of what was given, whose values are the fields): no byte depends on them.
    bytes_of = replace(settings, build_workers=1, overrides=(), cache_bytes=1,
                       body_cache_bytes=1, source_cache_bytes=1, index_dir="")
    parsing = identity(settings.content, settings.site_rules())
    return context_digest(repr(bytes_of), base, assets.feed_stylesheet(settings.content, base),
                          repr(sorted(parsing.items())))


def usable(old: BuildState | None, context: str, root: Path) -> BuildState | None:
    """The last build's state, if it was made in this context (else None: a full build)."""
    if old is not None and old.context != context:
        logger.info("%s: made with other settings or code: building everything", root)
        return None
    return old


def app_for(bounded: Settings, old: BuildState | None) -> Flask:
    """The app a build asks for each URL, its content loaded, with ``bounded`` settings
    (``buildwork.bounded``: each URL is asked for once, and what a build reuses is in
    its body and entry caches). A small change's build (``old``) does not wait for the
    load state's writer."""
    from . import create_app
    from .content import ContentStore
    from .renderwork import RenderHelper

    store = ContentStore(bounded)
    store.states.later = old is not None
    # A server's render helper, forked before the load: it stats a warm load's files on
    # the other core, and renders half of each feed's new bodies while one process
    # makes a small change (a build that forks its own processes leaves it idle).
    helper = RenderHelper.fork() if bounded.render_workers > 1 and buildwork.can_fork() \
        else None
    app = create_app(bounded, watch=False, store=store, render_helper=helper)
    # The posts and the index live as long as the build and hold no cycles: kept out of
    # the collector's walks (each full one walked them all: ~0.3 s at 100,000 posts).
    gc.freeze()
    app.extensions["feeds"].without_timer()
    return app


def _bad(root: Path, state: BuildState, keys: Iterable[str]) -> set[str]:
    """The groups among ``keys`` with a file that is not as the state has it."""
    bad = set()
    for key in keys:
        kept = state.groups.get(key)
        try:
            if kept is not None and all(as_left(root, m) for m in kept.made().values()):
                continue
        except (ValueError, TypeError):
            pass
        bad.add(key)
    return bad


class Check:
    """The last build's files compared with OUT in a forked process (where there is
    fork, and no thread but the log's writer: see buildwork), else here when asked."""

    def __init__(self, root: Path, state: BuildState | None) -> None:
        self.root, self.state = root, state
        self._found: set[str] | None = None
        self._child = None if state is None or not state.groups else buildwork.forked(
            lambda: _bad(root, state, state.groups))

    def bad(self, keys: Iterable[str]) -> set[str]:
        """Those of ``keys`` whose files are not all as the state has them."""
        keys = set(keys)
        if self.state is None:
            return keys
        if self._child is not None:
            answered, found = buildwork.answer(self._child)
            self._child = None  # (it died: nothing is trusted whole)
            self._found = found if answered else set(self.state.groups)
        if self._found is not None:
            return keys & self._found
        return _bad(self.root, self.state, keys)

    def close(self) -> None:
        """Wait for the child (a build that stopped before it asked), and let the state
        go (28 MB at 100,000 posts, held to a full build's end when its context changed)."""
        if self._child is not None:
            self.bad(())
        self.state = None


class Memory:
    """This build's groups and the fingerprint of each, and of each URL it looks at;
    what the last build made (``old``, when it is this build's context)."""

    def __init__(self, svc: FeedService, root: Path, old: BuildState | None,
                 context: str) -> None:
        """``old``: the last build's state, made in ``context`` (``usable``), or None."""
        state = svc.state()
        self.svc, self.root, self.index, self.settings = svc, root, state.index, state.settings
        self.old = old
        self.base_prints = Fingerprints(context, state.index)
        # Posts whose body held Liquid when last rendered, and are the same posts now.
        self.liquid = {s for s, d in (old.liquid.items() if old else ())
                       if s in self.by_source and self.base_prints.post(self.by_source[s]) == d}
        self.version = self._liquid_version(self.liquid)
        self.prints = self.base_prints.with_liquid(map(self.by_source.__getitem__, self.liquid),
                                                   self.version)
        self.groups = self._fingerprints(state.index)
        self.kept: dict[str, Kept] = {}
        """The groups kept whole."""
        self.looked: dict[str, tuple[list[str], dict[str, Made]]] = {}
        """The other groups: their URLs, and what the last build made of them."""
        self.pages: dict[str, Shown] = {}
        """The URLs of the groups looked at."""
        self.made: dict[str, Made] = {}
        self.liquid_found: set[str] = set()
        """Bodies with Liquid that other processes of the build rendered."""

    def _fingerprints(self, index: SiteIndex) -> list[tuple[Group, str]]:
        """Each group with its fingerprint. A category's or tag's blocks keep the last
        build's when none of its posts is new since (no key the last build did not show)
        and it is as long: each of its posts was in it then (a post's categories, tags and
        place come from its record, known by its key), so it holds the same posts in the
        same order. The others are taken (every list's, post by post: 0.27 s at 100,000)."""
        old, same = self.old, set()
        if old is not None and old.keys and self.prints.plain:
            known = set(old.keys)
            new = {id(p) for p, k in zip(index.posts, self.base_prints.keys, strict=True)
                   if k not in known}
            same = {id(t) for terms in (index.categories, index.tags) for t in terms.values()
                    if new.isdisjoint(map(id, t.posts))}
        groups = []
        for group in buildgroups.groups(index, self.settings):
            was = old.groups.get(group.key) if old is not None else None
            if was is not None and id(group.term) in same and was.fingerprint != NEVER \
                    and was.total == group.total:
                groups.append((group, was.fingerprint))
            else:
                groups.append((group, self.prints.group(group)))
        return [*groups, (buildgroups.OTHER_GROUP, NEVER)]

    def _liquid_version(self, liquid: set[str]) -> str:
        site = self.svc.liquid_site() if liquid else None
        return site.version if site is not None else ""

    @cached_property
    def by_source(self) -> dict[str, Post]:
        return {p.source: p for p in self.index.posts}

    @property
    def trusted(self) -> int:
        """The files of the groups kept whole."""
        return sum(kept.count for kept in self.kept.values())

    def plan(self, keep: Callable[[Made], bool], check: Check) -> list[str]:
        """Keep what can be kept (``keep``: whether a URL's file is still as it was made,
        and takes it); the URLs to make, newest post first (as ``buildwork.urls``)."""
        old = self.old.groups if self.old is not None else {}
        same = {g.key for g, fp in self.groups
                if fp != NEVER and g.key in old and old[g.key].fingerprint == fp}
        same -= check.bad(same) if same else set()
        todo = []
        for group, _fp in self.groups:
            if group.key in same:
                self.kept[group.key] = old[group.key]
                continue
            try:
                before = old[group.key].made() if group.key in old else {}
            except (ValueError, TypeError):
                before = {}
            urls = []
            pages = buildgroups.pages(group, self.index, self.settings) \
                if group.what != buildgroups.OTHER else buildgroups.others(
                    self.index, self.settings, buildwork.statics(self.settings))
            for url, shown in pages:
                self.pages[url] = shown
                urls.append(url)
                made = before.get(url)
                if made is not None and made.fingerprint \
                        and made.fingerprint == self.prints.of(url, shown) and keep(made):
                    self.made[url] = made
                else:
                    todo.append(url)
            self.looked[group.key] = (urls, before)
        rank = buildwork.ranks(self.index.posts) if len(todo) > 1 else {}

        def newest(url: str) -> tuple[bool, int]:
            found = buildwork.newest_rank(rank, self.pages[url].posts)
            return (False, 0) if found is None else (True, found)

        return sorted(dict.fromkeys(todo), key=newest)

    def record(self, url: str, stat: os.stat_result, rel: str, keepable: bool) -> None:
        fingerprint = self.prints.of(url, self.pages[url]) if keepable else None
        self.made[url] = Made(fingerprint or "", stat.st_size, stat.st_mtime_ns,
                              stat.st_ino, rel)

    def leftovers(self, written: set[str]) -> tuple[set[str], set[str]]:
        """(stale, new): the files the last build wrote in the groups looked at (or gone)
        that this one did not, and those this one wrote that it did not."""
        assert self.old is not None
        before = {m.rel for _urls, made in self.looked.values() for m in made.values()}
        for key, kept in self.old.groups.items():
            if key not in self.looked and key not in self.kept:  # a group gone
                before |= _rels(kept)
        stale = before - written
        if stale:  # (a file may have moved to a group kept whole: rare, and costs them all)
            for kept in self.kept.values():
                stale -= _rels(kept)
        return stale, written - before

    def state(self) -> BuildState:
        """The state to keep for the next build (written after the manifest). When this
        build found bodies with Liquid it did not know of, the fingerprints of the groups
        it looked at are taken again with them (no group kept whole shows such a body:
        each is new or changed, so each group that shows it was looked at)."""
        found = self.svc.cache.bodies.liquid_sources() | self.liquid_found
        liquid = self.liquid | (found & self.by_source.keys())
        version = self._liquid_version(liquid)
        prints = self.prints
        if liquid != self.liquid or version != self.version:
            prints = self.base_prints.with_liquid(map(self.by_source.__getitem__, liquid), version)
        groups = {}
        for group, fp in self.groups:
            kept = self.kept.get(group.key)
            if kept is None:
                urls, _before = self.looked[group.key]
                made = {url: self.made[url] for url in urls if url in self.made}
                if prints is not self.prints:
                    fp = prints.group(group)
                    made = {url: replace(m, fingerprint=prints.of(url, self.pages[url]) or "")
                            if m.fingerprint else m for url, m in made.items()}
                whole = len(made) == len(set(urls)) and all(m.fingerprint for m in made.values())
                kept = Kept.of(fp if whole else NEVER, made, group.total)
            groups[group.key] = kept
        return BuildState(
            self.base_prints.context, version,
            {s: self.base_prints.post(self.by_source[s]) for s in sorted(liquid)}, groups,
            self.base_prints.keys)


def _rels(kept: Kept) -> set[str]:
    try:
        return {m.rel for m in kept.made().values()}
    except (ValueError, TypeError):
        return set()


