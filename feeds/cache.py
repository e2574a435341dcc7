"""What the service renders, and keeps: feeds, HTML pages and the OPML of one content
state, composed from its site index (``links`` for URLs, paging and titles, ``render``
and ``pages`` for the bytes, ``bodies`` for the entries). Bounded in bytes and
locked: waitress serves from a thread pool and cachetools' caches are not thread-safe,
so they are used through cachetools' own locked decorators (which also leave out a
value larger than the whole cache, rather than fail).

Two levels: the response cache is keyed by (content version, what, base URL), so a hit is
one locked dict lookup; on a miss after a change, the feed's *signature* (the exact posts
and file versions it shows) finds the previous rendering when nothing in it changed, so
an unrelated edit never re-renders a feed nor changes its ETag. The versions of each
feed's first page last served are kept for delta polling (see ``rendered``).
"""

from __future__ import annotations

import contextlib
import html
import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import TYPE_CHECKING

from cachetools import LRUCache, cachedmethod

from . import assets, links, pages
from .bodies import BodyCache, EntryRules
from .config import Settings
from .metrics import Metrics
from .model import CONTENT_TYPES, FeedKey, Format, Kind, Post
from .parse import LiquidSite
from .render import FeedMeta, Outline, assemble, render_feed, render_opml, smartify
from .rendered import (
    Delta,
    History,
    KeyedLRU,
    Rendered,
    held,
    history_size,
    key_bytes,
    remember,
)
from .site import State
from .snapshot import Snapshot

if TYPE_CHECKING:
    pass

logger = logging.getLogger(__name__)


class _Partial(Exception):
    """A rendering holding a body that could not be read: served, but never kept, and so
    never cached as a success (cachetools keeps no value whose making raised)."""

    def __init__(self, rendered: Rendered) -> None:
        super().__init__("partial rendering")
        self.rendered = rendered


class NotFound(LookupError):
    """No such feed, page or post (the web layer answers 404). Raised, not returned, so
    that the caches never keep it."""


def _rendered_size(rendered: Rendered) -> int:
    return rendered.size


class _CountedLRU(KeyedLRU[Rendered]):
    """The response cache, counting its hits and misses in the metrics as it is asked."""

    def __init__(self, maxsize: int, metrics: Metrics) -> None:
        super().__init__(maxsize, _rendered_size)
        self._hit = metrics.cache_hit
        self._miss = metrics.cache_miss

    def __getitem__(self, key: Hashable) -> Rendered:
        found = LRUCache.__getitem__(self, key)  # (not super(): this is the hit path)
        self._hit.inc()
        return found

    def __missing__(self, key: Hashable) -> Rendered:
        self._miss.inc()
        raise KeyError(key)


_lock_of = attrgetter("_lock")
_responses_of = attrgetter("_responses")


def _feed_key(_cache: object, state: State, key: FeedKey, base: str) -> Hashable:
    return (state.version, key, base)


def _opml_key(_cache: object, state: State, base: str) -> Hashable:
    return (state.version, "opml", base)


def _page_key(_cache: object, state: State, what: tuple[str, ...], page: int,
              base: str) -> Hashable:
    return (state.version, what, page, base)


def _signature(cache: FeedCache, key: FeedKey, base: str, meta: FeedMeta,
               posts: Sequence[Post], rules: EntryRules) -> Hashable:
    return (key, base, meta, rules,
            tuple((p.source, p.stamp, cache.bodies.liquid_version(p)) for p in posts))


_SIGNED_POST = key_bytes(("", (0, 0, 0), ""))
"""What key_bytes gives one post's (source, stamp, liquid version), less its strings."""


def _signature_bytes(signature: Hashable) -> int:
    """key_bytes of a _signature, without a call for each part of each post (a tenth of
    a feed page made from kept bodies went to sizing its signature)."""
    if not isinstance(signature, tuple) or len(signature) != 5:
        return key_bytes(signature)
    *head, posts = signature
    return (key_bytes(tuple(head)) + 8 + 56 + 8 * len(posts)
            + sum(_SIGNED_POST + len(source) + len(liquid) for source, _, liquid in posts))


class FeedCache:
    """Renderings of the states of one content folder, and the post bodies in them.

    ``read_body`` gives the text of a post's body (after the front matter) from disk.
    Methods that take a State answer for that state; they raise NotFound when it has
    no such feed or page.
    """

    def __init__(self, settings: Settings, metrics: Metrics,
                 read_body: Callable[[Post], str],
                 on_body_failure: Callable[[Post], None] = lambda post: None,
                 liquid_site: Callable[[], LiquidSite | None] = lambda: None) -> None:
        self.metrics = metrics
        self.bodies = BodyCache(settings, read_body, on_body_failure, liquid_site)
        self._lock = threading.Lock()
        self._responses = _CountedLRU(settings.cache_bytes, metrics)
        # Bounded in bytes, keys included: a signature holds every post's stamp.
        self._signatures = KeyedLRU[Rendered](settings.cache_bytes, _rendered_size,
                                              _signature_bytes)
        self._history = KeyedLRU[History](max(1_000_000, settings.cache_bytes // 4),
                                          history_size)

    def drop(self) -> None:
        """Forget every rendering and body kept (a build whose URLs are all made)."""
        with self._lock:
            for kept in (self._responses, self._signatures, self._history):
                kept.clear()
        self.bodies.drop()

    def body_failures(self) -> str | None:
        return self.bodies.failures()

    def forget_failures(self, snapshot: Snapshot) -> None:
        self.bodies.forget_failures(snapshot)

    # --- feeds ------------------------------------------------------------------------

    def feed(self, state: State, key: FeedKey, base: str) -> Rendered:
        try:
            return self._feed(state, key, base)
        except _Partial as e:
            return e.rendered.dated(state.modified)

    @cachedmethod(_responses_of, key=_feed_key, lock=_lock_of)
    def _feed(self, state: State, key: FeedKey, base: str) -> Rendered:
        meta, posts = _plan(state, key, base)
        rendered = self._render(key, base, meta, posts,
                                EntryRules.of(state.settings)).dated(state.modified)
        if key.page == 1:
            self._remember(key, base, rendered)
        return rendered

    @cachedmethod(attrgetter("_signatures"), key=_signature, lock=_lock_of)
    def _render(self, key: FeedKey, base: str, meta: FeedMeta, posts: Sequence[Post],
                rules: EntryRules) -> Rendered:
        failed: list[Post] = []
        self.bodies.prepare(posts, base, rules)
        entries = [self.bodies.entry(post, meta.author, base, rules, failed) for post in posts]
        pieces, marks = self.bodies.fragments(key.fmt, entries)
        body = assemble(key.fmt, meta, pieces)
        self.metrics.renders.labels(key.fmt.value).inc()
        # No date: Last-Modified is the content state's, set by feed() (Rendered.dated).
        rendered = Rendered(body, CONTENT_TYPES[key.fmt], None, tuple(marks),
                            self_url=meta.self_url, partial=bool(failed))
        if failed:
            raise _Partial(rendered)
        return rendered

    # --- delta polling (RFC 3229 + feed) ----------------------------------------------

    def _remember(self, key: FeedKey, base: str, rendered: Rendered) -> None:
        """Keep the entry marks of the last versions of a feed's first page (on each
        response-cache miss: every version served passes here)."""
        history_key = (key, base)
        with self._lock:
            versions = remember(self._history.get(history_key, ()), rendered)
            if versions is not None:
                with contextlib.suppress(ValueError):  # larger than the whole bound
                    self._history[history_key] = versions

    def delta(self, state: State, key: FeedKey, base: str,
              etags: Sequence[str]) -> Delta | None:
        """What changed in a feed since the version a client holds, named by one of
        ``etags``: no changes when that is the current version; the entries whose
        served form differs when a delta can say it all. None (answer the whole feed)
        when the version is unknown or no longer kept, when it differs only in what a
        delta cannot carry (an entry gone, the order, the feed's own metadata), for a
        page other than the first, or when there is no such feed."""
        if key.page != 1:
            return None
        try:
            current = self.feed(state, key, base)
        except NotFound:
            return None
        with self._lock:
            versions = self._history.get((key, base), ())
        version = held(versions, etags)
        if version is None:
            return None
        if version.etag == current.etag:
            return Delta(current, None)
        meta, posts = _plan(state, key, base)
        fresh = [p for p, mark in zip(posts, current.marks, strict=True)
                 if mark not in version.marks]
        if not fresh:
            return None
        rules = EntryRules.of(state.settings)
        failed: list[Post] = []
        entries = [self.bodies.entry(p, meta.author, base, rules, failed) for p in fresh]
        # A complete feed, but no paging links: the entries are not a page of anything.
        body = render_feed(key.fmt, replace(meta, paging=()), entries)
        return Delta(current, Rendered(body, current.content_type, state.modified,
                                       self_url=meta.self_url, partial=bool(failed)))

    # --- OPML and HTML ----------------------------------------------------------------

    @cachedmethod(_responses_of, key=_opml_key, lock=_lock_of)
    def opml(self, state: State, base: str) -> Rendered:
        settings = state.settings
        index = state.index
        groups: dict[Kind, list[Outline]] = {kind: [] for kind in Kind}
        for listed in links.lists(index):
            groups[listed.kind].append(Outline(
                links.title(settings.title, listed.kind, listed.name),
                base + links.feed_path(listed.kind, listed.name, Format.ATOM),
                base + links.html_path(listed.kind, listed.name)))
        body = render_opml(settings.title, [
            ("Site", groups[Kind.SITE]),
            ("Categories", groups[Kind.CATEGORY]),
            ("Tags", groups[Kind.TAG]),
        ], index.posts[0].updated if index.posts else None)
        return Rendered(body, CONTENT_TYPES["opml"])

    def page(self, state: State, what: tuple[str, ...], page: int, base: str) -> Rendered:
        """An HTML page: ('index',), ('category', name), ('tag', name) or ('post', path)."""
        try:
            return self._page(state, what, page, base)
        except _Partial as e:
            return e.rendered

    @cachedmethod(_responses_of, key=_page_key, lock=_lock_of)
    def _page(self, state: State, what: tuple[str, ...], page: int, base: str) -> Rendered:
        failed: list[Post] = []
        html = pages.render_page(state, what, page, base,
                                 body=lambda post: self.bodies.body(post, base, failed=failed),
                                 author=state.settings.author)
        if html is None:
            raise NotFound
        self.metrics.renders.labels("html").inc()
        rendered = Rendered(html.encode("utf-8"), CONTENT_TYPES["html"], state.modified,
                            partial=bool(failed))
        if failed:
            raise _Partial(rendered)
        return rendered


def _plan(state: State, key: FeedKey, base: str) -> tuple[FeedMeta, Sequence[Post]]:
    """What a feed says about itself, and the posts of its page; NotFound when there is
    no such feed or page."""
    settings = state.settings
    found = links.select(state.index, key.kind, key.name, settings)
    if found is None:
        raise NotFound
    feed_url = base + links.feed_path(found.kind, found.name, key.fmt, settings)
    query = () if key.limit == settings.posts_limit else (("limit", str(key.limit)),)
    paging = links.paging(feed_url, len(found.posts), key.limit, key.page, query)
    if paging is None:
        raise NotFound
    posts = paging.window(found.posts)
    meta = FeedMeta(
        # jekyll-feed: title | smartify, written as HTML; here the text a reader shows of
        # the site's title (its entities decoded), and a tag's name as it is
        title=smartify(links.title(html.unescape(settings.title), found.kind, found.name)),
        subtitle=settings.description,
        feed_id=feed_url,
        self_url=paging.here,
        html_url=base + links.html_path(found.kind, found.name),
        lang=settings.lang,
        author=settings.author,
        updated=max((p.updated for p in posts), default=None),
        paging=paging.rels(),
        hub=settings.hub_url(base),
        stylesheet=("" if key.fmt is Format.JSON
                    else assets.feed_stylesheet(settings.content, base)),
    )
    return meta, posts

