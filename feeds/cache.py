"""The one place that composes content, site index and rendering, and keeps what it
rendered. Bounded in bytes, locked (waitress serves from a thread pool and cachetools'
caches are not thread-safe), and swapped in one step when the content changes.

Two levels: the response cache is keyed by (content version, what, base URL), so a hit is
one dict lookup; on a miss after a change, the feed's *signature* (the exact posts and
file versions it shows) finds the previous rendering when nothing in it changed, so an
unrelated edit never re-renders a feed nor changes its ETag.
"""

from __future__ import annotations

import gzip
import hashlib
import logging
import math
import threading
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

import brotli
from cachetools import LRUCache

from . import assets, pages
from .config import Settings
from .content import ContentStore, Snapshot
from .metrics import Metrics
from .model import (
    CONTENT_TYPES,
    FEED_FORMATS,
    Author,
    Body,
    FeedKey,
    Format,
    Kind,
    Post,
)
from .parse import body_text, render_body
from .render import Entry, FeedMeta, Outline, feed_title, render_feed, render_opml
from .site import SiteIndex, Term, name_to_segment
from .watch import Watcher

logger = logging.getLogger(__name__)

GZIP_LEVEL = 6
BROTLI_QUALITY = 5
DELTA_HISTORY = 16


_UTC = UTC


def http_date(when: datetime | None) -> str | None:
    if when is None:
        return None
    return format_datetime(when.astimezone(_UTC), usegmt=True)


class Rendered:
    """A response body with its validators; compressed forms made once, on demand."""

    __slots__ = ("_encoded", "body", "content_type", "etag", "last_modified",
                 "last_modified_ts", "marks", "self_url")

    def __init__(self, body: bytes, content_type: str, updated: datetime | None = None,
                 marks: tuple[tuple[str, str], ...] = (), self_url: str = "") -> None:
        self.body = body
        self.content_type = content_type
        digest = hashlib.blake2b(body, digest_size=12).hexdigest()
        self.etag = f'"{digest}"'
        self.last_modified = http_date(updated)
        self.last_modified_ts = math.floor(updated.timestamp()) if updated else None
        self.marks = marks
        """(entry id, updated) of each entry: what delta polling compares."""
        self.self_url = self_url
        """A feed's rel=self URL (for the HTTP Link header); '' for pages."""
        self._encoded: dict[str, tuple[bytes, str]] = {}

    def encoded(self, coding: str) -> tuple[bytes, str]:
        """(body, ETag) in 'identity', 'gzip' or 'br'. The ETag names the encoding, so a
        validator never matches a representation it does not describe."""
        if coding == "identity":
            return self.body, self.etag
        found = self._encoded.get(coding)
        if found is None:
            if coding == "gzip":
                data = gzip.compress(self.body, GZIP_LEVEL, mtime=0)
            else:
                data = brotli.compress(self.body, quality=BROTLI_QUALITY)
            found = (data, f'{self.etag[:-1]}-{"gz" if coding == "gzip" else coding}"')
            self._encoded[coding] = found
        return found

    @property
    def size(self) -> int:
        # Room for the compressed copies too, so the byte bound holds once they exist.
        return len(self.body) * 2 + 512


@dataclass(frozen=True, slots=True)
class _Version:
    """One version of a feed's first page, as delta polling remembers it."""

    etag: str
    marks: frozenset[tuple[str, str]]

    @property
    def size(self) -> int:
        return 100 + sum(len(i) + len(u) + 120 for i, u in self.marks)


@dataclass(frozen=True)
class Delta:
    """The answer to a delta request (RFC 3229 with A-IM: feed)."""

    current: Rendered
    """The feed now: its validators name the version the client will hold."""
    changes: Rendered | None
    """A complete feed of the entries new or changed since the client's version; None
    when there are none."""


@dataclass(frozen=True)
class State:
    snapshot: Snapshot
    index: SiteIndex

    @property
    def settings(self) -> Settings:
        return self.snapshot.settings


class NotReady(Exception):
    """The first load has not finished."""


class FeedService:
    """Content, index and caches of one content folder."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.store = ContentStore(settings)
        self._state: State | None = None
        self._lock = threading.Lock()
        self._responses: LRUCache[Hashable, Rendered] = LRUCache(
            maxsize=settings.cache_bytes, getsizeof=lambda r: r.size)
        self._signatures: LRUCache[Hashable, Rendered] = LRUCache(
            maxsize=settings.cache_bytes, getsizeof=lambda r: r.size)
        self._bodies: LRUCache[Hashable, Body] = LRUCache(
            maxsize=settings.body_cache_bytes,
            getsizeof=lambda b: 3 * (len(b.html) + len(b.summary)) + 200)
        self._history: LRUCache[Hashable, tuple[_Version, ...]] = LRUCache(
            maxsize=max(1_000_000, settings.cache_bytes // 4),
            getsizeof=lambda versions: sum(v.size for v in versions) + 100)
        self.ready = threading.Event()
        self.last_reload: dict[str, Any] = {}
        self.load_error: str | None = None
        self.listeners: list[Callable[[State | None, State], None]] = []
        self.stoppers: list[Callable[[], None]] = []
        """Called by stop(): helpers started with the service (the WebSub publisher)."""
        self._watcher: Watcher | None = None
        self._reveal_at: float | None = None

    # --- lifecycle --------------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        state = self._state
        return state.settings if state else self.store.settings

    def load(self) -> None:
        """The first load, in the calling thread."""
        started = time.monotonic()
        try:
            snapshot = self.store.load()
        except Exception as e:
            self.load_error = str(e)
            logger.exception("cannot load %s", self.store.root)
            raise
        self._install(snapshot, time.monotonic() - started)
        self.ready.set()

    def start(self, background: bool = False, watch: bool | None = None) -> None:
        """Load (now, or on a thread while the server already answers 503) and then
        follow changes when ``watch`` (default: the ``watch`` setting)."""
        watch = self.store.settings.watch if watch is None else watch

        def run() -> None:
            self.load()
            if watch:
                self._start_watcher()

        if background:
            threading.Thread(target=run, name="feeds-loader", daemon=True).start()
        else:
            run()

    def _start_watcher(self) -> None:
        self._watcher = Watcher(
            str(self.store.root), self.settings.reload_interval,
            on_paths=lambda paths: self._reload(self.store.apply, paths),
            on_poll=lambda: self._reload(lambda _: self.store.rescan(), set()),
            on_tick=self.reveal_due_posts,
        )
        self._watcher.start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        for stopper in self.stoppers:
            stopper()

    def _reload(self, step: Callable[[set[str]], Snapshot | None], paths: set[str]) -> None:
        started = time.monotonic()
        snapshot = step(paths)
        if snapshot is not None:
            self._install(snapshot, time.monotonic() - started)

    def refresh(self) -> None:
        """Poll once, now (tests, and `feeds` commands without a watcher)."""
        self._reload(lambda _: self.store.rescan(), set())

    def _install(self, snapshot: Snapshot, seconds: float) -> None:
        old = self._state
        index = self._next_index(old, snapshot)
        new = State(snapshot, index)
        self._state = new  # one reference swap: readers see the old state or the new
        self._reveal_at = index.next_reveal
        self.last_reload = {
            "time": datetime.now(_UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 4),
            "version": snapshot.version,
        }
        self.metrics.reloads.inc()
        self.metrics.reload_seconds.observe(seconds)
        self.metrics.posts.set(len(index.posts))
        self.metrics.rejected.set(snapshot.rejected)
        if old is not None:
            logger.info("content version %d: %d posts, %d rejected (%.3f s)",
                        snapshot.version, len(index.posts), snapshot.rejected, seconds)
        for listener in self.listeners:
            try:
                listener(old, new)
            except Exception:
                logger.exception("content-change listener failed")

    @staticmethod
    def _next_index(old: State | None, snapshot: Snapshot) -> SiteIndex:
        """The index of this snapshot: the old one updated with the files that changed,
        when it is the very next version under the same settings; else built whole."""
        if (old is not None and snapshot.changed is not None
                and snapshot.version == old.snapshot.version + 1
                and snapshot.settings is old.snapshot.settings):
            before, after = old.snapshot.posts, snapshot.posts
            index = old.index.updated(
                [before[rel] for rel in snapshot.changed if rel in before],
                [after[rel] for rel in snapshot.changed if rel in after])
            if index is not None:
                return index
        return SiteIndex(snapshot.posts.values(), future=snapshot.settings.future)

    def reveal_due_posts(self) -> None:
        """Rebuild the index when a post dated in the future has come due."""
        reveal = self._reveal_at
        state = self._state
        if reveal is not None and state is not None and time.time() >= reveal:
            self._install(state.snapshot, 0.0)

    def state(self) -> State:
        state = self._state
        if state is None:
            raise NotReady
        if self._reveal_at is not None and time.time() >= self._reveal_at:
            self.reveal_due_posts()
            state = self._state
            assert state is not None
        return state

    def replayable_version(self) -> int | None:
        """The content version a response made now would be made from; None while
        there is none yet, or when a future-dated post is due and the next request
        must rebuild the index (see state())."""
        state = self._state
        if state is None or (self._reveal_at is not None and time.time() >= self._reveal_at):
            return None
        return state.snapshot.version

    def health(self) -> dict[str, Any]:
        state = self._state
        if state is None:
            return {"status": "loading", "error": self.load_error}
        return {
            "status": "ok",
            "posts": len(state.index.posts),
            "rejected": state.snapshot.rejected,
            "categories": len(state.index.categories),
            "tags": len(state.index.tags),
            "version": state.snapshot.version,
            "last_reload": self.last_reload,
            "watch": self._watcher.mode if self._watcher else "off",
        }

    # --- caches -----------------------------------------------------------------------

    def _cached(self, key: Hashable) -> Rendered | None:
        with self._lock:
            found = self._responses.get(key)
        if found is None:
            self.metrics.cache_miss.inc()
        else:
            self.metrics.cache_hit.inc()
        return found

    def _store(self, key: Hashable, rendered: Rendered) -> Rendered:
        with self._lock:
            if rendered.size <= self._responses.maxsize:
                self._responses[key] = rendered
        return rendered

    def body(self, post: Post, base: str) -> Body:
        key = (post.source, post.stamp, base)
        with self._lock:
            found = self._bodies.get(key)
        if found is not None:
            return found
        root = self.store.root
        try:
            with open(root / post.source, "rb") as f:
                text = body_text(post.source, f.read(self.settings.max_post_bytes + 1))
            body = render_body(text, post.markup, base + post.url)
        except Exception as e:  # gone or broken since it was indexed: keep serving
            logger.warning("%s: cannot render the body: %s", post.source, e)
            return Body(html="", summary=post.summary or "")
        with self._lock:
            if self._bodies.getsizeof(body) <= self._bodies.maxsize:  # else ValueError
                self._bodies[key] = body
        return body

    # --- feeds ------------------------------------------------------------------------

    def feed(self, key: FeedKey, base: str, state: State | None = None) -> Rendered | None:
        """The rendered feed, or None when there is no such feed (or page)."""
        state = state or self.state()
        cache_key = (state.snapshot.version, key, base)
        found = self._cached(cache_key)
        if found is not None:
            return found
        plan = self._plan(state, key, base)
        if plan is None:
            return None
        meta, posts = plan
        signature = (key, base, meta, tuple((p.source, p.stamp) for p in posts))
        with self._lock:
            rendered = self._signatures.get(signature)
        if rendered is None:
            entries = [self.entry(post, state.settings, base) for post in posts]
            body = render_feed(key.fmt, meta, entries)
            self.metrics.renders.labels(key.fmt.value).inc()
            rendered = Rendered(body, CONTENT_TYPES[key.fmt], meta.updated,
                                tuple(entry_mark(p, base) for p in posts),
                                self_url=meta.self_url)
            with self._lock:
                if rendered.size <= self._signatures.maxsize:  # else ValueError
                    self._signatures[signature] = rendered
        if key.page == 1:
            self._remember(key, base, rendered)
        return self._store(cache_key, rendered)

    def entry(self, post: Post, settings: Settings, base: str) -> Entry:
        entry_id = post.entry_id
        if entry_id.startswith("/"):
            entry_id = base + entry_id
        return Entry(
            post=post,
            link=base + post.url,
            entry_id=entry_id,
            title=feed_title(post.title) or post.title,
            body=self.body(post, base),
            author=post.author or site_author(settings),
        )

    def _plan(self, state: State, key: FeedKey,
              base: str) -> tuple[FeedMeta, Sequence[Post]] | None:
        index = state.index
        settings = state.settings
        if key.kind is Kind.SITE:
            selection: Sequence[Post] = index.posts
            title, path = settings.title, "/feed"
            html_url = base + "/"
        else:
            term = index.term(key.kind, key.name)
            if term is None:
                return None
            selection = term.posts
            title = f"{settings.title} · {term.name}"
            path = f"/{key.kind.value}/{term.segment}"
            html_url = f"{base}{path}.html"
        pages_total = max(1, math.ceil(len(selection) / key.limit))
        if key.page > pages_total:
            return None
        start = (key.page - 1) * key.limit
        posts = selection[start:start + key.limit]
        feed_url = f"{base}{path}.{key.fmt.value}"

        def page_url(page: int) -> str:
            query = {}
            if page > 1:
                query["page"] = str(page)
            if key.limit != settings.posts_limit:
                query["limit"] = str(key.limit)
            return feed_url + ("?" + urlencode(query) if query else "")

        paging: list[tuple[str, str]] = []
        if pages_total > 1:
            paging.append(("first", page_url(1)))
            if key.page > 1:
                paging.append(("previous", page_url(key.page - 1)))
            if key.page < pages_total:
                paging.append(("next", page_url(key.page + 1)))
            paging.append(("last", page_url(pages_total)))
        meta = FeedMeta(
            title=title,
            subtitle=settings.description,
            feed_id=feed_url,
            self_url=page_url(key.page),
            html_url=html_url,
            home_url=base + "/",
            lang=settings.lang,
            author=site_author(settings),
            updated=max((p.updated for p in posts), default=None),
            paging=tuple(paging),
            hub=settings.websub_hub,
            stylesheet=("" if key.fmt is Format.JSON
                        else assets.feed_stylesheet(settings.content, base)),
        )
        return meta, posts

    # --- delta polling (RFC 3229 + feed) ----------------------------------------------

    def _remember(self, key: FeedKey, base: str, rendered: Rendered) -> None:
        """Keep the entry marks of the last DELTA_HISTORY versions of a feed's first page
        (on each response-cache miss: every version served passes here)."""
        history_key = (key, base)
        with self._lock:
            versions = self._history.get(history_key, ())
            if versions and versions[-1].etag == rendered.etag:
                return
            kept = tuple(v for v in versions if v.etag != rendered.etag)
            version = _Version(rendered.etag, frozenset(rendered.marks))
            versions = (*kept[-(DELTA_HISTORY - 1):], version)
            if sum(v.size for v in versions) + 100 <= self._history.maxsize:
                self._history[history_key] = versions

    def delta(self, key: FeedKey, base: str, etags: Sequence[str]) -> Delta | None:
        """What changed in a feed since the version a client holds, named by one of
        ``etags`` (any encoding's ETag, weak or strong). None when that version is
        unknown or no longer kept, or for a page other than the first."""
        if key.page != 1:
            return None
        state = self.state()
        current = self.feed(key, base, state)
        plan = self._plan(state, key, base)
        if current is None or plan is None:
            return None
        wanted = {bare_etag(tag) for tag in etags}
        with self._lock:
            versions = self._history.get((key, base), ())
        held = next((v for v in reversed(versions) if v.etag in wanted), None)
        if held is None:
            return None
        meta, posts = plan
        fresh = [p for p in posts if entry_mark(p, base) not in held.marks]
        if not fresh:
            return Delta(current, None)
        entries = [self.entry(p, state.settings, base) for p in fresh]
        # A complete feed, but no paging links: the entries are not a page of anything.
        body = render_feed(key.fmt, replace(meta, paging=()), entries)
        return Delta(current, Rendered(body, current.content_type, meta.updated,
                                       self_url=meta.self_url))

    # --- OPML and HTML ----------------------------------------------------------------

    def opml(self, base: str) -> Rendered:
        state = self.state()
        cache_key = (state.snapshot.version, "opml", base)
        found = self._cached(cache_key)
        if found is not None:
            return found
        settings = state.settings
        index = state.index

        def outlines(terms: list[Term]) -> list[Outline]:
            return [
                Outline(f"{settings.title} · {t.name}",
                        f"{base}/{t.kind.value}/{t.segment}.atom",
                        f"{base}/{t.kind.value}/{t.segment}.html")
                for t in terms
            ]

        body = render_opml(settings.title, [
            ("Site", [Outline(settings.title, f"{base}/feed.atom", f"{base}/")]),
            ("Categories", outlines(index.sorted_terms(Kind.CATEGORY))),
            ("Tags", outlines(index.sorted_terms(Kind.TAG))),
        ], index.posts[0].updated if index.posts else None)
        return self._store(cache_key, Rendered(body, CONTENT_TYPES["opml"]))

    def page(self, what: tuple[str, ...], page: int, base: str) -> Rendered | None:
        """An HTML page: ('index',), ('category', name), ('tag', name) or ('post', path)."""
        state = self.state()
        cache_key = (state.snapshot.version, what, page, base)
        found = self._cached(cache_key)
        if found is not None:
            return found
        html = pages.render_page(self, state, what, page, base)
        if html is None:
            return None
        self.metrics.renders.labels("html").inc()
        # Every page shows the site's newest post date, so the newest 'updated' of the
        # site bounds when any page last changed.
        newest = max((p.updated for p in state.index.posts), default=None)
        return self._store(cache_key, Rendered(html.encode("utf-8"), CONTENT_TYPES["html"],
                                               newest))

    def feed_links(self, kind: Kind, name: str, base: str) -> list[tuple[Format, str]]:
        """(format, URL) of every feed of the site, a category or a tag."""
        path = "/feed" if kind is Kind.SITE else f"/{kind.value}/{name_to_segment(name)}"
        return [(fmt, f"{base}{path}.{fmt.value}") for fmt in FEED_FORMATS]


def site_author(settings: Settings) -> Author | None:
    value = settings.author
    if isinstance(value, str) and value.strip():
        return Author(name=value.strip())
    if isinstance(value, dict) and value.get("name"):
        return Author(name=str(value["name"]), email=value.get("email") or None,
                      uri=value.get("uri") or value.get("url") or None)
    return None


def entry_mark(post: Post, base: str) -> tuple[str, str]:
    """What delta polling compares: an entry's id (as the feed writes it) and its updated."""
    entry_id = post.entry_id
    if entry_id.startswith("/"):
        entry_id = base + entry_id
    return entry_id, post.updated.isoformat()


def bare_etag(tag: str) -> str:
    """An ETag as the history keeps it: weak comparison (RFC 9110 8.8.3.2) drops 'W/',
    and an encoding's suffix ('-gz', '-br', see Rendered.encoded) names the same version."""
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    for suffix in ('-gz"', '-br"'):
        if tag.endswith(suffix):
            return tag[:-len(suffix)] + '"'
    return tag
