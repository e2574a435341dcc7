"""A post as a feed entry, as jekyll-feed writes it: its body rendered once (Liquid, then
Markdown, sanitised) and kept, bounded in bytes; its excerpt and summary; its id, link,
author and image from the site's rules. A body that cannot be read is served as the
post's last good one (else its summary alone), remembered for health, and never kept as
a success."""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Callable, Collection, Hashable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import quote

from .config import Settings
from .jekyllconf import JEKYLL_EXCERPT_SEPARATOR
from .model import Author, Body, Format, Post
from .parse import (
    BodyRules,
    LiquidSite,
    holds_liquid,
    liquid_environment,
    markup_body,
    warm_lexers,
    with_liquid,
)
from .render import Entry, feed_title, render_entries
from .rendered import KeyedLRU, LatestLRU, entry_id, entry_mark
from .renderwork import RenderHelper
from .snapshot import Snapshot
from .summaries import HelperJob, excerpt_source, finished_body, made_body, plain_summary

if TYPE_CHECKING:
    from liquid import Environment

logger = logging.getLogger(__name__)

MAX_FAILURES = 100
"""Body failures remembered for health (the count beyond is still reported)."""


def _body_size(body: Body) -> int:
    return 3 * (len(body.html) + len(body.summary)) + 200



def _marked_size(marked: tuple[str, str | None]) -> int:
    return len(marked[0]) + len(marked[1] or "") + 200


def _fragment_size(found: tuple[bytes, tuple[str, str]]) -> int:
    return len(found[0]) + 300


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


def absolute_url(base: str, path: str) -> str:
    """Jekyll's ``absolute_url`` for a front-matter URL: left alone when it has a scheme,
    else below url + baseurl with one leading '/'."""
    if "://" in path:
        return path
    if path.startswith("//"):
        return base.split("//", 1)[0] + path
    return base + quote("/" + path.lstrip("/"), safe="/:?#[]@!$&'()*+,;=%~")


class BodyCache:
    """The rendered bodies of posts, by file version, base URL and excerpt separator
    (and, for a body with Liquid, the version of the site it saw)."""

    def __init__(self, settings: Settings, read_body: Callable[[Post], str],
                 on_body_failure: Callable[[Post], None] = lambda post: None,
                 liquid_site: Callable[[], LiquidSite | None] = lambda: None) -> None:
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
        self.helper: RenderHelper | None = None
        """A server's render helper (renderwork), given once it is forked."""
        # One version of each post (by base URL and separator), one of each entry (by
        # format and link): a post saved every moment keeps no trail of old versions.
        self._bodies = LatestLRU[Body](settings.body_cache_bytes, _body_size)
        self._last_good = KeyedLRU[Body](max(1, settings.body_cache_bytes // 4), _body_size)
        """Source -> its last body rendered: what a body that cannot be read falls back
        on (mostly the same objects as in ``_bodies``)."""
        self._fragments = LatestLRU[tuple[bytes, tuple[str, str]]](
            settings.body_cache_bytes, _fragment_size)
        self._marked = LatestLRU[tuple[str, str | None]](
            max(1, settings.body_cache_bytes // 4), _marked_size)
        """(source, separator) -> the body's and the excerpt's HTML before sanitising:
        the costly part, the same at every base URL. A site whose url is not where this
        service is reached shows each body at two (feed entries at url + baseurl, pages
        here): an export made every body twice. Bounded: an export's URLs come in
        order of their newest post, so what a post's other pages need is still held."""

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
            with self._lock:
                last = self._last_good.get(post.source)
            return last or Body(html="", summary=plain_summary(post.summary)
                                if post.summary else "")
        with self._lock, contextlib.suppress(ValueError):  # larger than the whole bound
            if self._last_good.get(post.source) is not body:  # (get: now the newest)
                self._last_good[post.source] = body
        if self._failures:
            with self._failures_lock:
                self._failures.pop(key, None)
        return body

    def drop(self) -> None:
        """Forget every body and entry kept (their failures are still reported)."""
        with self._lock:
            for kept in (self._bodies, self._last_good, self._fragments, self._marked):
                kept.clear()

    def retire(self, sources: Collection[str]) -> None:
        """Forget the bodies and entries of these posts (a build's URLs come newest post
        first: those it has gone past are on none of the URLs still to make), so what
        it keeps is what it will show again, not the last bodies made."""
        if not sources:
            return
        with self._lock:
            for kept, at in ((self._bodies, 0), (self._fragments, 1), (self._marked, 0)):
                for key in [k for k in kept if isinstance(k, tuple) and k[at] in sources]:
                    del kept[key]
            for source in sources:
                self._last_good.pop(source, None)

    def failures(self) -> str | None:
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

    def _body(self, post: Post, base: str, separator: str = "") -> Body:
        """The rendered body of this version of the post, kept (raises, and keeps
        nothing, when it cannot be read)."""
        slot = (post.source, base, separator)
        version = (post.stamp, self.liquid_version(post))
        with self._lock:
            found = self._bodies.latest(slot, version)
        if found is None:
            found = self._render(post, base, separator)
            with self._lock:
                self._bodies.put(slot, version, found)
        return found

    def _render(self, post: Post, base: str, separator: str) -> Body:
        raw, raw_excerpt = self._markup(post, separator)
        return finished_body(raw, raw_excerpt, base + post.url, post.summary,
                             self._body_rules)

    def _markup(self, post: Post, separator: str) -> tuple[str, str | None]:
        """The body's HTML before sanitising, and the excerpt's (None: the body's own, or
        none needed), kept for the post's other base URL."""
        slot = (post.source, separator)
        version = (post.stamp, self.liquid_version(post))
        with self._lock:
            found = self._marked.latest(slot, version)
        if found is not None:
            return found
        text = self._read_body(post)
        liquid = self._liquid_of(post)
        raw = markup_body(text, post.markup, self._body_rules, liquid)
        head = excerpt_source(text, separator) if separator and not post.summary else text
        # Jekyll renders the excerpt as a document of its own, and never cuts it.
        made = (raw, None if head == text
                else markup_body(head, post.markup, self._body_rules, liquid))
        with self._lock:
            self._marked.put(slot, version, made)
        return made

    def _liquid_of(self, post: Post) -> Callable[[str], str]:
        def run(text: str) -> str:
            if holds_liquid(text):
                self._liquid_sources.add(post.source)
            return with_liquid(self._liquid_environment, post, text)

        return run

    def liquid_sources(self) -> frozenset[str]:
        """The posts rendered so far whose body holds Liquid."""
        return frozenset(self._liquid_sources)

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

    def warm(self, texts: Sequence[str]) -> None:
        """Make the lexers these bodies' code blocks name ready here and in the render
        helper (a server's first feed: see FeedService._warm_newest)."""
        if self.helper is not None:
            self.helper.call(warm_lexers, list(texts))
        warm_lexers(texts)

    def prepare(self, posts: Sequence[Post], base: str, rules: EntryRules) -> None:
        """Render those of ``posts`` whose bodies are not kept, the later half in the
        render helper while this thread renders the first half: a feed page's entries,
        before :meth:`entry` makes each (from what is kept by then). A body with Liquid,
        or one the helper does not answer for, is left to entry()."""
        helper = self.helper
        if helper is None or not helper.alive:
            return
        link_base = rules.site if "://" in rules.site else base
        todo = []
        with self._lock:
            for post in posts:
                slot = (post.source, link_base, post.excerpt_separator or rules.separator)
                version = (post.stamp, self.liquid_version(post))
                if post.markup == "markdown" and self._bodies.latest(slot, version) is None:
                    todo.append((post, slot, version))
        if len(todo) < 2:
            return
        mine = len(todo) * 11 // 20  # the helper also sends its bodies back
        jobs: list[HelperJob] = []
        sent = []
        for post, slot, version in todo[mine:]:
            try:
                text = self._read_body(post)
            except Exception:  # entry() reads it again, and reports why it cannot
                continue
            if holds_liquid(text):
                continue
            separator = slot[2]
            head = excerpt_source(text, separator) if separator and not post.summary else text
            jobs.append((str(text), None if head == text else str(head),
                         link_base + post.url, post.summary, self._body_rules))
            sent.append((post, slot, version))
        if not helper.start(made_body, jobs):
            return
        try:
            for post, (_source, _base, separator), _version in todo[:mine]:
                with contextlib.suppress(Exception):  # entry() meets it again
                    self._body(post, link_base, separator)
        finally:
            done = helper.finish(len(jobs))
        with self._lock:
            for (post, slot, version), made in zip(sent, done, strict=True):
                if made is not None:
                    self._marked.put((post.source, slot[2]), version, made[0])
                    self._bodies.put(slot, version, made[1])

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
            summary=body.summary,  # the description, stripped, when the post has one
            image=absolute_url(link_base, post.image) if post.image else None,
            excerpt_only=post.excerpt_only or rules.excerpt_only,
        )

    def fragments(self, fmt: Format, entries: list[Entry]) -> tuple[list[bytes],
                                                                     list[tuple[str, str]]]:
        """Each entry's bytes in a feed of ``fmt`` and its delta mark, made once for every
        feed that shows it: an entry's bytes are a function of the entry (its post, body,
        link, author, ...) and the format alone. Kept in the same byte bound as bodies."""
        with self._lock:
            found = [self._fragments.latest(_entry_slot(fmt, entry), entry)
                     for entry in entries]
        missing = [entry for entry, hit in zip(entries, found, strict=True) if hit is None]
        if missing:
            made = iter(zip(render_entries(fmt, missing), map(entry_mark, missing),
                            strict=True))
            with self._lock:
                for i, hit in enumerate(found):
                    if hit is None:
                        found[i] = made_one = next(made)
                        entry = entries[i]
                        self._fragments.put(_entry_slot(fmt, entry), entry, made_one)
        done = [hit for hit in found if hit is not None]
        return [data for data, _mark in done], [mark for _data, mark in done]


def _entry_slot(fmt: Format, entry: Entry) -> Hashable:
    """Where an entry's bytes are kept: one version of a post's entry per format, link
    and id (the same entry in every feed that shows it)."""
    return (fmt, entry.post.source, entry.link, entry.entry_id)
