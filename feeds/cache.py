"""What the service renders, and keeps: feeds, HTML pages and the OPML of one content
state, composed from its site index (``links`` for URLs, paging and titles, ``render``
and ``pages`` for the bytes), and the post bodies they are made of. Bounded in bytes and
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
import logging
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import replace
from operator import attrgetter
from typing import TYPE_CHECKING

from cachetools import LRUCache, cachedmethod

from . import links, pages
from .config import Settings
from .metrics import Metrics
from .model import CONTENT_TYPES, Author, Body, FeedKey, Format, Kind, Post
from .parse import BodyRules, LiquidSite, liquid_environment, render_body, with_liquid
from .render import Entry, FeedMeta, Outline, feed_title, render_feed, render_opml
from .rendered import (
    Delta,
    History,
    Rendered,
    entry_id,
    entry_mark,
    held,
    history_size,
    remember,
)
from .site import State

if TYPE_CHECKING:
    from liquid import Environment

logger = logging.getLogger(__name__)


class NotFound(LookupError):
    """No such feed, page or post (the web layer answers 404). Raised, not returned, so
    that the caches never keep it."""


def _rendered_size(rendered: Rendered) -> int:
    return rendered.size


def _body_size(body: Body) -> int:
    return 3 * (len(body.html) + len(body.summary)) + 200


class _CountedLRU(LRUCache[Hashable, Rendered]):
    """The response cache, counting its hits and misses in the metrics as it is asked."""

    def __init__(self, maxsize: int, metrics: Metrics) -> None:
        super().__init__(maxsize=maxsize, getsizeof=_rendered_size)
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
    return (state.snapshot.version, key, base)


def _opml_key(_cache: object, state: State, base: str) -> Hashable:
    return (state.snapshot.version, "opml", base)


def _page_key(_cache: object, state: State, what: tuple[str, ...], page: int,
              base: str) -> Hashable:
    return (state.snapshot.version, what, page, base)


def _signature(cache: FeedCache, key: FeedKey, base: str, meta: FeedMeta,
               posts: Sequence[Post]) -> Hashable:
    return (key, base, meta,
            tuple((p.source, p.stamp, cache.liquid_version(p)) for p in posts))


def _body_key(cache: FeedCache, post: Post, base: str) -> Hashable:
    return (post.source, post.stamp, base, cache.liquid_version(post))


class FeedCache:
    """Renderings of the states of one content folder, and the post bodies in them.

    ``read_body`` gives the text of a post's body (after the front matter) from disk.
    Methods that take a State answer for that state; they raise NotFound when it has
    no such feed or page.
    """

    def __init__(self, settings: Settings, metrics: Metrics,
                 read_body: Callable[[Post], str],
                 liquid_site: Callable[[], LiquidSite | None] = lambda: None) -> None:
        self.metrics = metrics
        self._read_body = read_body
        self._liquid_site = liquid_site
        self._liquid_env: tuple[LiquidSite, Environment] | None = None
        self._liquid_sources: set[str] = set()
        """Posts whose body holds Liquid: their renderings depend on the whole site."""
        self._body_rules = BodyRules(settings.iframe_hosts, settings.smart_quotes)
        self._lock = threading.Lock()
        self._responses = _CountedLRU(settings.cache_bytes, metrics)
        self._signatures: LRUCache[Hashable, Rendered] = LRUCache(
            maxsize=settings.cache_bytes, getsizeof=_rendered_size)
        self._bodies: LRUCache[Hashable, Body] = LRUCache(
            maxsize=settings.body_cache_bytes, getsizeof=_body_size)
        self._history: LRUCache[Hashable, History] = LRUCache(
            maxsize=max(1_000_000, settings.cache_bytes // 4), getsizeof=history_size)

    # --- bodies -----------------------------------------------------------------------

    def body(self, post: Post, base: str) -> Body:
        try:
            return self._body(post, base)
        except Exception as e:  # gone or broken since it was indexed: keep serving
            logger.warning("%s: cannot render the body: %s", post.source, e)
            return Body(html="", summary=post.summary or "")

    @cachedmethod(attrgetter("_bodies"), key=_body_key, lock=_lock_of)
    def _body(self, post: Post, base: str) -> Body:
        return render_body(self._read_body(post), post.markup, base + post.url,
                           self._body_rules, self._liquid_of(post))

    def _liquid_of(self, post: Post) -> Callable[[str], str]:
        def run(text: str) -> str:
            if "{{" in text or "{%" in text:
                self._liquid_sources.add(post.source)
            return with_liquid(self._liquid_environment, post, text)

        return run

    def liquid_version(self, post: Post) -> str:
        """'' for a post without Liquid; else the version of the site its Liquid sees
        (a changed _config.yml, or a post added or moved, renders it again: its
        post_url, link or site.* may have changed)."""
        if post.source not in self._liquid_sources:
            return ""
        site = self._liquid_site()
        return site.version if site is not None else ""

    def _liquid_environment(self) -> Environment | None:
        """The Liquid environment of the current state's site, made when a body with
        Liquid first needs it (a body without any never pays for it)."""
        site = self._liquid_site()
        if site is None:
            return None
        made = self._liquid_env
        if made is None or made[0] is not site:
            made = self._liquid_env = (site, liquid_environment(site, self._body_rules))
        return made[1]

    def entry(self, post: Post, author: Author | None, base: str) -> Entry:
        """A post as a feed entry; ``author`` is the site's, for a post that names none."""
        return Entry(
            post=post,
            link=base + post.url,
            entry_id=entry_id(post, base),
            title=feed_title(post.title) or post.title,
            body=self.body(post, base),
            author=post.author or author,
        )

    # --- feeds ------------------------------------------------------------------------

    @cachedmethod(_responses_of, key=_feed_key, lock=_lock_of)
    def feed(self, state: State, key: FeedKey, base: str) -> Rendered:
        meta, posts = _plan(state, key, base)
        rendered = self._render(key, base, meta, posts)
        if key.page == 1:
            self._remember(key, base, rendered)
        return rendered

    @cachedmethod(attrgetter("_signatures"), key=_signature, lock=_lock_of)
    def _render(self, key: FeedKey, base: str, meta: FeedMeta,
                posts: Sequence[Post]) -> Rendered:
        entries = [self.entry(post, meta.author, base) for post in posts]
        body = render_feed(key.fmt, meta, entries)
        self.metrics.renders.labels(key.fmt.value).inc()
        return Rendered(body, CONTENT_TYPES[key.fmt], meta.updated,
                        tuple(entry_mark(p, base) for p in posts), self_url=meta.self_url)

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
        ``etags``. None when that version is unknown or no longer kept, for a page other
        than the first, or when there is no such feed."""
        if key.page != 1:
            return None
        try:
            current = self.feed(state, key, base)
        except NotFound:
            return None
        meta, posts = _plan(state, key, base)
        with self._lock:
            versions = self._history.get((key, base), ())
        version = held(versions, etags)
        if version is None:
            return None
        fresh = [p for p in posts if entry_mark(p, base) not in version.marks]
        if not fresh:
            return Delta(current, None)
        entries = [self.entry(p, meta.author, base) for p in fresh]
        # A complete feed, but no paging links: the entries are not a page of anything.
        body = render_feed(key.fmt, replace(meta, paging=()), entries)
        return Delta(current, Rendered(body, current.content_type, meta.updated,
                                       self_url=meta.self_url))

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

    @cachedmethod(_responses_of, key=_page_key, lock=_lock_of)
    def page(self, state: State, what: tuple[str, ...], page: int, base: str) -> Rendered:
        """An HTML page: ('index',), ('category', name), ('tag', name) or ('post', path)."""
        html = pages.render_page(state, what, page, base,
                                 body=lambda post: self.body(post, base),
                                 author=state.settings.author)
        if html is None:
            raise NotFound
        self.metrics.renders.labels("html").inc()
        # Every page shows the site's newest post date, so the newest 'updated' of the
        # site bounds when any page last changed.
        newest = max((p.updated for p in state.index.posts), default=None)
        return Rendered(html.encode("utf-8"), CONTENT_TYPES["html"], newest)


def _plan(state: State, key: FeedKey, base: str) -> tuple[FeedMeta, Sequence[Post]]:
    """What a feed says about itself, and the posts of its page; NotFound when there is
    no such feed or page."""
    settings = state.settings
    found = links.select(state.index, key.kind, key.name)
    if found is None:
        raise NotFound
    feed_url = base + links.feed_path(found.kind, found.name, key.fmt)
    query = () if key.limit == settings.posts_limit else (("limit", str(key.limit)),)
    paging = links.paging(feed_url, len(found.posts), key.limit, key.page, query)
    if paging is None:
        raise NotFound
    posts = paging.window(found.posts)
    meta = FeedMeta(
        title=links.title(settings.title, found.kind, found.name),
        subtitle=settings.description,
        feed_id=feed_url,
        self_url=paging.here,
        html_url=base + links.html_path(found.kind, found.name),
        lang=settings.lang,
        author=settings.author,
        updated=max((p.updated for p in posts), default=None),
        paging=paging.rels(),
        hub=settings.websub_hub,
    )
    return meta, posts

