"""Posts -> SiteIndex: the visible posts newest first, by category and by tag, by URL; the
one rule that turns a category or tag name into a URL path segment and back; and State,
one content snapshot with its index: what every response is made from."""

from __future__ import annotations

import re
import time
import unicodedata
from bisect import bisect_left
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote, unquote

from .model import Kind, Post

if TYPE_CHECKING:
    from .config import Settings
    from .snapshot import Snapshot

# --- Names in URLs --------------------------------------------------------------------
# A name is written into a path segment as itself, except the characters that cannot
# stand in one: '/', '\', '?', '#', '%' and '~' (the escape character itself) become
# '~' and two hex digits, as does a leading '.' (so '..' is never a segment). The result
# is then percent-encoded as UTF-8. 'a/b' -> 'a~2Fb', '../x' -> '~2E.~2Fx', 'C#' -> 'C~23'.

_ESCAPED = frozenset("/\\?#%~")
_UNESCAPE = re.compile(r"~([0-9A-Fa-f]{2})")


def normalize_name(name: str) -> str:
    return unicodedata.normalize("NFC", name)


def name_to_segment(name: str) -> str:
    """The URL path segment (percent-encoded) for a category or tag name."""
    name = normalize_name(name)
    out = [f"~{ord(ch):02X}" if ch in _ESCAPED else ch for ch in name]
    if out and out[0] == ".":
        out[0] = "~2E"
    return quote("".join(out), safe="~!$&'()*+,;=:@")


def segment_to_name(segment: str) -> str:
    """Inverse of :func:`name_to_segment`, for a segment already percent-decoded (as the
    WSGI server hands it over); a raw name with none of our escapes comes back as is."""
    return normalize_name(_UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), segment))


def url_key(path: str) -> str:
    """How a post URL is looked up: percent-decoded, NFC."""
    return normalize_name(unquote(path))


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
                 now: float | None = None) -> None:
        now = time.time() if now is None else now
        visible: list[Post] = []
        upcoming: list[float] = []
        for post in posts:
            stamp = post.date.timestamp()
            if future or stamp <= now:
                visible.append(post)
            else:
                upcoming.append(stamp)
        visible.sort(key=_sort_key)
        self.future = future
        self.posts: tuple[Post, ...] = tuple(visible)
        self.newest_change = _newest_change(visible, 0.0)
        """The newest 'updated' or date of a visible post, as a Unix time: part of
        Last-Modified (a post's date counts for a post coming due)."""
        self._keys = [p.sort_key for p in visible]
        self.next_reveal: float | None = min(upcoming) if upcoming else None
        """When the earliest hidden future post becomes visible (the index is rebuilt)."""

        categories: dict[str, list[Post]] = {}
        tags: dict[str, list[Post]] = {}
        cat_names: dict[str, str] = {}
        tag_names: dict[str, str] = {}
        by_url: dict[str, Post] = {}
        self._shared_urls: set[str] = set()
        """URL keys more than one post claims (the newest wins; updates rebuild)."""
        for post in visible:
            for key, name in _keyed(post.categories):
                categories.setdefault(key, []).append(post)
                cat_names.setdefault(key, name)
            for key, name in _keyed(post.tags):
                tags.setdefault(key, []).append(post)
                tag_names.setdefault(key, name)
            url = url_key(post.url)
            if by_url.setdefault(url, post) is not post:
                self._shared_urls.add(url)
        self._set_terms(
            {k: Term(Kind.CATEGORY, cat_names[k], tuple(v)) for k, v in categories.items()},
            {k: Term(Kind.TAG, tag_names[k], tuple(v)) for k, v in tags.items()})
        self.by_url = by_url

    def _set_terms(self, categories: dict[str, Term], tags: dict[str, Term]) -> None:
        self.categories = categories
        self.tags = tags
        self._folded = {
            Kind.CATEGORY: _fold_unique(categories),
            Kind.TAG: _fold_unique(tags),
        }

    def updated(self, removed: Iterable[Post], added: Iterable[Post], *,
                now: float | None = None) -> SiteIndex | None:
        """The index with ``removed`` taken out and ``added`` put in (an edited post is
        in both, old and new), leaving this one as it is. None when a change touches
        what only a whole build gets right (a post dated in the future, a URL two
        posts share): then build it whole."""
        now = time.time() if now is None else now
        removed = list(removed)
        added = list(added)
        if any(not self.future and p.date.timestamp() > now for p in removed + added):
            return None
        urls_out = {url_key(p.url): p for p in removed}
        urls_in = {url_key(p.url): p for p in added}
        if len(urls_in) != len(added) or (self._shared_urls & (urls_out.keys() | urls_in.keys())):
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
        new._shared_urls = self._shared_urls
        new.by_url = by_url
        new._set_terms(_update_terms(self.categories, Kind.CATEGORY, removed, added),
                       _update_terms(self.tags, Kind.TAG, removed, added))
        return new

    def term(self, kind: Kind, name: str) -> Term | None:
        """A category or tag by name: exact (after NFC), else the one name that matches
        ignoring case. None when there is no such category or tag."""
        terms = self.categories if kind is Kind.CATEGORY else self.tags
        key = normalize_name(name)
        found = terms.get(key)
        if found is None:
            folded = self._folded[kind].get(key.casefold())
            found = terms.get(folded) if folded else None
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

    def sorted_terms(self, kind: Kind) -> list[Term]:
        """Categories or tags, most posts first, then by name."""
        terms = self.categories if kind is Kind.CATEGORY else self.tags
        return sorted(terms.values(), key=lambda t: (-len(t.posts), t.name))


def _newest_change(posts: Iterable[Post], newest: float) -> float:
    for post in posts:
        newest = max(newest, post.updated.timestamp(), post.date.timestamp())
    return newest


def _sort_key(post: Post) -> tuple[float, str]:
    return post.sort_key


def _keyed(names: tuple[str, ...]) -> Iterator[tuple[str, str]]:
    """(key, name) of each distinct name: a post that writes one name twice, or in both
    NFC and NFD, is listed once in that category or tag."""
    seen: set[str] = set()
    for name in names:
        key = normalize_name(name)
        if key not in seen:
            seen.add(key)
            yield key, name


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
        members.extend(joining.get(key, ()))
        if not members:
            out.pop(key, None)
            continue
        members.sort(key=_sort_key)
        # The name as the newest post writes it, as a whole build picks it.
        name = next(n for k, n in _keyed(_names(members[0], kind)) if k == key)
        out[key] = Term(kind, name, tuple(members))
    return out


def _fold_unique(terms: dict[str, Term]) -> dict[str, str]:
    folded: dict[str, str] = {}
    clashes: set[str] = set()
    for key in terms:
        f = key.casefold()
        if f in folded:
            clashes.add(f)
        folded[f] = key
    for f in clashes:
        del folded[f]
    return folded


@dataclass(frozen=True)
class State:
    """One content snapshot and the index of its visible posts, swapped in as one."""

    snapshot: Snapshot
    index: SiteIndex
    version: int = 0
    """The content version: moves with every state swapped in, a snapshot's or a post
    coming due (the key of every cache of what is served)."""
    modified: datetime = datetime(1970, 1, 1, tzinfo=UTC)
    """Last-Modified of every feed and page of this state (see service.last_modified)."""

    @property
    def settings(self) -> Settings:
        return self.snapshot.settings
