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
import html
import logging
import re
import threading
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from operator import attrgetter
from typing import TYPE_CHECKING
from urllib.parse import quote

from cachetools import LRUCache, cachedmethod

from . import assets, links, pages
from .config import Settings
from .jekyllconf import JEKYLL_EXCERPT_SEPARATOR
from .metrics import Metrics
from .model import CONTENT_TYPES, Author, Body, FeedKey, Format, Kind, Post
from .parse import BodyRules, LiquidSite, liquid_environment, render_body, with_liquid
from .render import Entry, FeedMeta, Outline, feed_title, render_feed, render_opml, smartify
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
from .snapshot import Snapshot

if TYPE_CHECKING:
    from liquid import Environment

logger = logging.getLogger(__name__)


MAX_FAILURES = 100
"""Body failures remembered for health (the count beyond is still reported)."""


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
    return (state.version, key, base)


def _opml_key(_cache: object, state: State, base: str) -> Hashable:
    return (state.version, "opml", base)


def _page_key(_cache: object, state: State, what: tuple[str, ...], page: int,
              base: str) -> Hashable:
    return (state.version, what, page, base)


def _signature(cache: FeedCache, key: FeedKey, base: str, meta: FeedMeta,
               posts: Sequence[Post], rules: EntryRules) -> Hashable:
    return (key, base, meta, rules,
            tuple((p.source, p.stamp, cache.liquid_version(p)) for p in posts))


def _body_key(cache: FeedCache, post: Post, base: str, separator: str = "") -> Hashable:
    return (post.source, post.stamp, base, separator, cache.liquid_version(post))


@dataclass(frozen=True)
class EntryRules:
    """What the site's settings say about every entry, as jekyll-feed reads them."""

    separator: str = JEKYLL_EXCERPT_SEPARATOR
    """Where an excerpt ends (Jekyll's excerpt_separator; a post's own wins)."""
    excerpt_only: bool = False
    authors: tuple[tuple[str, Author], ...] = ()
    """_data/authors.yml: an author named by its key is that author."""
    site: str = ""
    """url + baseurl (the settings' entry_base), that entry ids and links are made of."""

    @classmethod
    def of(cls, settings: Settings) -> EntryRules:
        return cls(settings.excerpt_separator or JEKYLL_EXCERPT_SEPARATOR,
                   settings.excerpt_only, settings.authors, settings.entry_base)

    def author(self, author: Author | None) -> Author | None:
        if author is None or author.email or author.uri:
            return author
        return dict(self.authors).get(author.name, author)


# --- summaries, as jekyll-feed writes them ---------------------------------------------

_LINK_DEFINITION = re.compile(r"^ {0,3}(\[[^\]]+\])(:.+)$", re.MULTILINE)
_HTML_BLOCKS = re.compile(r"<script.*?</script>|<!--.*?-->|<style.*?</style>", re.DOTALL)
_HTML_TAG = re.compile(r"<.*?>", re.DOTALL)


def excerpt_source(text: str, separator: str) -> str:
    """Jekyll's excerpt of a body, before rendering: the text up to the separator, with
    the tail's link definitions that it uses (Jekyll::Excerpt#extract_excerpt)."""
    head, _sep, tail = text.partition(separator)
    if not tail:
        return head
    used = [label + rest for label, rest in _LINK_DEFINITION.findall(tail) if label in head]
    return head + "\n\n" + "\n".join(used) if used else head


def plain_summary(fragment: str) -> str:
    """``strip_html | normalize_whitespace`` (Liquid's), read as the HTML it is."""
    text = _HTML_TAG.sub("", _HTML_BLOCKS.sub("", fragment))
    return " ".join(html.unescape(text).split())


def absolute_url(base: str, path: str) -> str:
    """Jekyll's ``absolute_url`` for a front-matter URL: left alone when it has a scheme,
    else below url + baseurl with one leading '/'."""
    if "://" in path:
        return path
    if path.startswith("//"):
        return base.split("//", 1)[0] + path
    return base + quote("/" + path.lstrip("/"), safe="/:?#[]@!$&'()*+,;=%~")


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
        self._read_body = read_body
        self._on_body_failure = on_body_failure
        self._failures: dict[tuple[str, Hashable], str] = {}
        """(source, stamp) of a post whose body could not be read -> why."""
        self._failures_lock = threading.Lock()
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

    def body(self, post: Post, base: str, separator: str = JEKYLL_EXCERPT_SEPARATOR,
             failed: list[Post] | None = None) -> Body:
        """A post's body, its summary the excerpt up to ``separator`` (or the post's).
        When it cannot be read (the file changed since it was indexed, or broke): its
        summary alone; the post is added to ``failed`` and the store is asked to read
        the file again."""
        key = (post.source, post.stamp)
        try:
            body = self._body(post, base, post.excerpt_separator or separator)
        except Exception as e:  # gone or broken since it was indexed: keep serving
            with self._failures_lock:
                new = key not in self._failures
                if new and len(self._failures) < MAX_FAILURES:
                    self._failures[key] = str(e)
            if new:  # once per version of the file, however many requests meet it
                logger.warning("%s: cannot render the body: %s", post.source, e)
            if failed is not None:
                failed.append(post)
            self._on_body_failure(post)
            return Body(html="", summary=post.summary or "")
        if self._failures:
            with self._failures_lock:
                self._failures.pop(key, None)
        return body

    def body_failures(self) -> str | None:
        """For health: which bodies of the current content could not be read."""
        with self._failures_lock:
            if not self._failures:
                return None
            why = next(iter(self._failures.values()))
            return f"{len(self._failures)} post bodies cannot be read, e.g. {why}"

    def forget_failures(self, snapshot: Snapshot) -> None:
        """Failures of files a new snapshot no longer holds as they were."""
        posts = snapshot.posts
        with self._failures_lock:
            for source, stamp in list(self._failures):
                post = posts.get(source)
                if post is None or post.stamp != stamp:
                    del self._failures[(source, stamp)]

    @cachedmethod(attrgetter("_bodies"), key=_body_key, lock=_lock_of)
    def _body(self, post: Post, base: str, separator: str = "") -> Body:
        text = self._read_body(post)
        url = base + post.url
        liquid = self._liquid_of(post)
        body = render_body(text, post.markup, url, self._body_rules, liquid)
        if post.summary:  # the description is the summary: no excerpt to render
            return replace(body, summary=plain_summary(post.summary))
        head = excerpt_source(text, separator) if separator else text
        # Jekyll renders the excerpt as a document of its own, and never cuts it.
        excerpt = (body if head == text
                   else render_body(head, post.markup, url, self._body_rules, liquid))
        return replace(body, summary=plain_summary(excerpt.html))

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

    def entry(self, post: Post, author: Author | None, base: str,
              rules: EntryRules | None = None, failed: list[Post] | None = None) -> Entry:
        """A post as a feed entry; ``author`` is the site's, for a post that names none.
        Its id and link are jekyll-feed's, made from ``rules.site`` (the settings'
        ``entry_base``: url + baseurl), never from ``base``, where this service is
        reached. When the site is only a path (no url, no base_url) the id is the path
        jekyll-feed writes then, and the link is on ``base``, so a reader can follow it."""
        rules = rules or EntryRules()
        link_base = rules.site if "://" in rules.site else base
        body = self.body(post, link_base, rules.separator, failed)
        return Entry(
            post=post,
            link=link_base + post.url,
            entry_id=entry_id(post, rules.site),
            title=feed_title(post.title) or post.title,
            body=body,
            author=rules.author(post.author or author),
            summary=plain_summary(post.summary) if post.summary else body.summary,
            image=absolute_url(link_base, post.image) if post.image else None,
            excerpt_only=post.excerpt_only or rules.excerpt_only,
        )

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
        entries = [self.entry(post, meta.author, base, rules, failed) for post in posts]
        body = render_feed(key.fmt, meta, entries)
        self.metrics.renders.labels(key.fmt.value).inc()
        # No date: Last-Modified is the content state's, set by feed() (Rendered.dated).
        rendered = Rendered(body, CONTENT_TYPES[key.fmt], None,
                            tuple(entry_mark(e) for e in entries), self_url=meta.self_url,
                            partial=bool(failed))
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
        entries = [self.entry(p, meta.author, base, rules, failed) for p in fresh]
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
                                 body=lambda post: self.body(post, base, failed=failed),
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
    feed_url = base + links.feed_path(found.kind, found.name, key.fmt)
    query = () if key.limit == settings.posts_limit else (("limit", str(key.limit)),)
    paging = links.paging(feed_url, len(found.posts), key.limit, key.page, query)
    if paging is None:
        raise NotFound
    posts = paging.window(found.posts)
    meta = FeedMeta(
        # jekyll-feed: title | smartify
        title=smartify(links.title(settings.title, found.kind, found.name)),
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

