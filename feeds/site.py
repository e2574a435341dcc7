"""Posts -> SiteIndex: the visible posts newest first, by category and by tag, by URL; the
one rule that turns a category or tag name into a URL path segment and back; and State,
one content snapshot with its index: what every response is made from."""

from __future__ import annotations

import logging
import time
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from operator import itemgetter
from typing import TYPE_CHECKING

from .model import Kind, Post, Problem
from .names import (
    CONFIG_FILE as CONFIG_FILE,
)
from .names import (
    LONG_NAME_BYTES as LONG_NAME_BYTES,
)
from .names import (
    SHORTENED as SHORTENED,
)
from .names import (
    file_name as file_name,
)
from .names import (
    fold_unique,
    long_names,
    post_keys,
)
from .names import (
    name_to_segment as name_to_segment,
)
from .names import (
    normalize_name as normalize_name,
)
from .names import (
    segment_to_name as segment_to_name,
)
from .names import (
    url_key as url_key,
)

if TYPE_CHECKING:
    from .config import Settings
    from .snapshot import Snapshot

logger = logging.getLogger(__name__)

# --- The index ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Term:
    """A category or tag with its posts, newest first. (``links.select`` also gives the
    whole site as one: kind SITE, name ''.)"""

    kind: Kind
    name: str
    posts: tuple[Post, ...]

    @property
    def segment(self) -> str:
        return name_to_segment(self.name)


class SiteIndex:
    """The posts visible at ``now``, newest first, grouped every way the URLs need.

    Built whole at the first load; after a change of a few files, :meth:`updated` makes
    the next index from this one in time proportional to the posts that changed and the
    categories and tags they touch, not to the size of the site.
    """

    def __init__(self, posts: Iterable[Post], *, future: bool = False,
                 now: float | None = None, reserved: Reserved | None = None) -> None:
        now = time.time() if now is None else now
        everything = list(posts)
        self.collections = _documents(everything)
        if self.collections:
            everything = [p for p in everything if p.collection == "posts"]
        pairs: list[tuple[tuple[float, str], Post]] = []  # (sort_key, post): a date read once
        upcoming: list[float] = []
        for post in everything:
            stamp = post.date.timestamp()
            if future or stamp <= now:
                pairs.append(((-stamp, post.source), post))
            else:
                upcoming.append(stamp)
        pairs.sort(key=itemgetter(0))  # (keyed from C, not by a lambda's lookup of each)
        sources = {normalize_name(p.source) for p in everything} | {CONFIG_FILE}
        visible, self.left_out, files, urls = _claim([p for _k, p in pairs], sources, reserved)
        kept = {id(p) for p in visible} if len(visible) < len(pairs) else None
        self._keys = [k for k, p in pairs if kept is None or id(p) in kept]
        # Kept, but static hosts (nginx-static.conf) deny their hidden files.
        self.hidden = {p.source: p.url for p, name in zip(visible, files, strict=True)
                       if _hidden(name)}
        self.report()
        self.future = future
        self.reserved = reserved
        self.posts: tuple[Post, ...] = tuple(visible)
        # The newest date is the first post's; a post's updated is most often its date
        # (the same object): 0.14 s of 100,000 timestamps spared. (0.0: as _newest_change.)
        self.newest_change = max(-self._keys[0][0] if visible else 0.0, max(
            (p.updated.timestamp() for p in visible if p.updated is not p.date),
            default=0.0), 0.0)
        """The newest 'updated' or date of a visible post, as a Unix time: part of
        Last-Modified (a post's date counts for a post coming due)."""
        self.next_reveal: float | None = min(upcoming) if upcoming else None
        """When the earliest hidden future post becomes visible (the index is rebuilt)."""

        categories: dict[str, list[Post]] = {}
        tags: dict[str, list[Post]] = {}
        cat_names: dict[str, str] = {}
        tag_names: dict[str, str] = {}
        for post in visible:
            for key, name in _keyed(post.categories):
                categories.setdefault(key, []).append(post)
                cat_names.setdefault(key, name)
            for key, name in _keyed(post.tags):
                tags.setdefault(key, []).append(post)
                tag_names.setdefault(key, name)
        self._set_terms(
            {k: Term(Kind.CATEGORY, cat_names[k], tuple(v)) for k, v in categories.items()},
            {k: Term(Kind.TAG, tag_names[k], tuple(v)) for k, v in tags.items()})
        self.by_url = dict(zip(urls, visible, strict=True))
        # The files left-out posts wanted: when their owner goes, build whole.
        self._wanted = frozenset(file_key(p.url) for p in everything if p.source in self.left_out)

    def report(self) -> None:
        """Log each post left out for its URL (once per index built, or taken back)."""
        for source, why in sorted(self.left_out.items()):
            logger.warning("post %s: %s", source, why)

    def problems(self) -> list[Problem]:
        """A line for ``feeds check`` per post left out for its URL, and a warning per
        post a static host will not serve."""
        hidden = "has a folder or file whose name starts with '.': static hosts deny it"
        return sorted([Problem(source, why) for source, why in self.left_out.items()] + [
            Problem(source, f"its permalink {url} {hidden}", rejected=False)
            for source, url in self.hidden.items()], key=lambda p: p.path)

    def _set_terms(self, categories: dict[str, Term], tags: dict[str, Term]) -> None:
        self.categories = categories
        self.tags = tags
        self._folded = {
            Kind.CATEGORY: fold_unique(categories),
            Kind.TAG: fold_unique(tags),
        }
        self._long = {Kind.CATEGORY: long_names(categories), Kind.TAG: long_names(tags)}

    def updated(self, removed: Iterable[Post], added: Iterable[Post], *,
                now: float | None = None) -> SiteIndex | None:
        """The index with ``removed`` taken out and ``added`` put in (an edited post is
        in both, old and new), leaving this one as it is. None when a change touches
        what only a whole build gets right (a post dated in the future, a URL two
        posts share): then build it whole."""
        now = time.time() if now is None else now
        removed = list(removed)
        added = list(added)
        if any(p.collection != "posts" for p in removed + added):
            return None  # a collection's document: its feeds are built whole
        if any(not self.future and p.date.timestamp() > now for p in removed + added):
            return None
        urls_out = {url_key(p.url): p for p in removed}
        urls_in = {url_key(p.url): p for p in added}
        if len(urls_in) != len(added) or not self._claims_hold(removed, added):
            return None
        by_url = dict(self.by_url)
        for url, post in urls_out.items():
            if by_url.get(url) is not post:
                return None  # not what this index holds: build whole
            del by_url[url]
        for url, post in urls_in.items():
            if url in by_url:
                return None
            by_url[url] = post

        keys = self._keys.copy()
        posts = list(self.posts)
        for post in removed:
            i = bisect_left(keys, post.sort_key)
            if i == len(posts) or posts[i] is not post:
                return None
            del keys[i], posts[i]
        for post in added:
            key = post.sort_key
            i = bisect_left(keys, key)
            keys.insert(i, key)
            posts.insert(i, post)

        new = object.__new__(SiteIndex)
        new.future = self.future
        new.posts = tuple(posts)
        new._keys = keys
        new.next_reveal = self.next_reveal
        # Never less than before: a post removed still moved its folder's mtime.
        new.newest_change = _newest_change(added, self.newest_change)
        new.reserved = self.reserved
        new.left_out = self.left_out
        new.hidden = self.hidden
        new._wanted = self._wanted
        new.by_url = by_url
        new.collections = self.collections
        new._set_terms(_update_terms(self.categories, Kind.CATEGORY, removed, added),
                       _update_terms(self.tags, Kind.TAG, removed, added))
        return new

    def _claims_hold(self, removed: list[Post], added: list[Post]) -> bool:
        """Whether no post left out for its URL may come in, and none coming in is left
        out: else only a whole build decides who owns a URL."""
        if any(file_key(p.url) in self._wanted or p.source in self.hidden
               for p in removed + added):
            return False
        leaving = {url_key(p.url) for p in removed}
        for post in added:
            name = file_key(post.url)
            # Hidden, or may name a source file (_config.yml, _posts/...), or reserved.
            if _hidden(name) or "/_" in "/" + name or (
                    self.reserved is not None and self.reserved(name) is not None):
                return False
            if "/" + normalize_name(post.source) in self.by_url or any(
                    other in self.by_url and other not in leaving
                    for other in _same_file(url_key(post.url))):
                return False
        return True

    def term(self, kind: Kind, name: str) -> Term | None:
        """A category or tag by name: exact (after NFC), else the one name that matches
        ignoring case. None when there is no such category or tag."""
        terms = self.categories if kind is Kind.CATEGORY else self.tags
        key = normalize_name(name)
        found = terms.get(key)
        if found is None:
            folded = self._folded[kind].get(key.casefold())
            found = terms.get(folded) if folded else None
        if found is None and SHORTENED.search(key):
            long_key = self._long[kind].get(key)
            found = terms.get(long_key) if long_key else None
        return found

    def post_at(self, path: str) -> Post | None:
        """The post whose permalink is this (decoded) path; '/x/' also answers '/x/index.html'
        and '/x.html' also answers '/x'."""
        key = url_key(path)
        post = self.by_url.get(key)
        if post is None and key.endswith("/index.html"):
            post = self.by_url.get(key[: -len("index.html")])
        if post is None and not key.endswith((".html", "/")):
            post = self.by_url.get(key + ".html") or self.by_url.get(key + "/")
        return post

    def neighbours(self, post: Post) -> tuple[Post | None, Post | None]:
        """The posts just newer and just older than ``post`` (one of this index's), by
        its sort key: O(log posts), so no post page costs time in the site's size."""
        i = bisect_left(self._keys, post.sort_key)
        if i == len(self.posts) or self.posts[i] is not post:
            i = self.posts.index(post)  # never expected; still the right answer
        return (self.posts[i - 1] if i > 0 else None,
                self.posts[i + 1] if i + 1 < len(self.posts) else None)

    def with_neighbours(self) -> Iterator[tuple[Post, Post | None, Post | None]]:
        """Every post with its ``neighbours``, newest first (by position: no sort key)."""
        posts = self.posts
        for i, post in enumerate(posts):
            yield post, posts[i - 1] if i else None, posts[i + 1] if i + 1 < len(posts) else None

    def sorted_terms(self, kind: Kind) -> list[Term]:
        """Categories or tags, most posts first, then by name."""
        terms = self.categories if kind is Kind.CATEGORY else self.tags
        return sorted(terms.values(), key=lambda t: (-len(t.posts), t.name))


def _newest_change(posts: Iterable[Post], newest: float) -> float:
    for post in posts:
        newest = max(newest, post.updated.timestamp(), post.date.timestamp())
    return newest


Reserved = Callable[[str], "str | None"]  # links.reserved: what else a file name is


def file_key(url: str) -> str:
    """The file a post URL is, as two posts' files are compared: NFC."""
    return normalize_name(file_name(url))


def _hidden(name: str) -> bool:
    """Whether a folder or file of the path starts with '.'."""
    return name.startswith(".") or "/." in name


def _same_file(key: str) -> tuple[str, ...]:
    """The URL keys that are one file with ``key`` ('/x/' and '/x/index.html')."""
    base = key.removesuffix("index.html") if key.endswith("/index.html") else key
    return (base, base + "index.html") if base.endswith("/") else (key,)


def _claim(visible: list[Post], sources: set[str], reserved: Reserved | None,
           ) -> tuple[list[Post], dict[str, str], list[str], list[str]]:
    """The posts (newest first) that keep their URL, why each other one is left out,
    and the file (``file_key``) and ``url_key`` of each kept one. Left out: a URL the site uses for
    something else, a file of the content folder, or one a newer post has. A static
    build would write over that file, and the server answers that path with something
    else, so neither lists the post."""
    owners: dict[str, Post] = {}
    kept: list[Post] = []
    files: list[str] = []
    urls: list[str] = []
    left_out: dict[str, str] = {}
    for post in visible:
        name, url = post_keys(post.url)
        why = reserved(name) if reserved is not None else None
        if why is None and name in sources:
            why = f"the source file {name}"
        if why is None and name in owners:
            why = f"{owners[name].source}'s too"
        if why is not None:
            left_out[post.source] = f"left out: its permalink {post.url} is {why}"
            continue
        owners[name] = post
        kept.append(post)
        files.append(name)
        urls.append(url)
    return kept, left_out, files, urls


def _sort_key(post: Post) -> tuple[float, str]:
    return post.sort_key


def _keyed(names: tuple[str, ...]) -> Iterable[tuple[str, str]]:
    """(key, name) of each distinct name, as the post first writes it: a post that
    writes one name twice, or in both NFC and NFD, is listed once in that category or
    tag. (A list, not a generator: this runs for every post of a whole index.)"""
    if len(names) < 2:
        return [(normalize_name(name), name) for name in names]
    first: dict[str, str] = {}
    for name in names:
        first.setdefault(normalize_name(name), name)
    return first.items()


def _names(post: Post, kind: Kind) -> tuple[str, ...]:
    return post.categories if kind is Kind.CATEGORY else post.tags


def _update_terms(terms: dict[str, Term], kind: Kind, removed: list[Post],
                  added: list[Post]) -> dict[str, Term]:
    """``terms`` with ``removed`` taken out and ``added`` put in. Only the categories or
    tags those posts name are rebuilt; the rest are shared with the old index."""
    gone = {id(p) for p in removed}
    joining: dict[str, list[Post]] = {}
    for post in added:
        for key, _name in _keyed(_names(post, kind)):
            joining.setdefault(key, []).append(post)
    keys = joining.keys() | {k for p in removed for k, _n in _keyed(_names(p, kind))}
    out = dict(terms)
    for key in keys:
        old = terms.get(key)
        members = [p for p in old.posts if id(p) not in gone] if old else []
        for post in joining.get(key, ()):  # into the sorted rest: a sort of all of them
            insort(members, post, key=_sort_key)  # read every date (70 ms at 100k)
        if not members:
            out.pop(key, None)
            continue
        # The name as the newest post writes it, as a whole build picks it.
        name = next(n for k, n in _keyed(_names(members[0], kind)) if k == key)
        out[key] = Term(kind, name, tuple(members))
    return out


def _documents(posts: list[Post]) -> dict[str, tuple[Post, ...]]:
    """The documents of each collection but posts, newest first. All of them, as
    jekyll-feed lists ``site[collection]``: Jekyll holds back only future posts."""
    found: dict[str, list[Post]] = {}
    for post in posts:
        if post.collection != "posts":
            found.setdefault(post.collection, []).append(post)
    return {label: tuple(sorted(docs, key=_sort_key)) for label, docs in found.items()}


@dataclass(frozen=True)
class State:
    """One content snapshot and the index of its visible posts, swapped in as one."""

    snapshot: Snapshot
    index: SiteIndex
    version: int = 0
    """The content version: moves with every state swapped in, a snapshot's or a post
    coming due (the key of every cache of what is served)."""
    modified: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    """Last-Modified of every feed and page of this state (see rendered.last_modified)."""

    @property
    def settings(self) -> Settings:
        return self.snapshot.settings
