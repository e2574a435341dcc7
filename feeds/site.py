"""Posts -> SiteIndex: the visible posts newest first, by category and by tag, by URL; and
the one rule that turns a category or tag name into a URL path segment and back."""

from __future__ import annotations

import re
import time
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, unquote

from .model import Kind, Post

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
    """A category or tag with its posts, newest first."""

    kind: Kind
    name: str
    posts: tuple[Post, ...]

    @property
    def segment(self) -> str:
        return name_to_segment(self.name)


class SiteIndex:
    """The posts visible at ``now``, newest first, grouped every way the URLs need."""

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
        self.posts: tuple[Post, ...] = tuple(visible)
        self.next_reveal: float | None = min(upcoming) if upcoming else None
        """When the earliest hidden future post becomes visible (the index is rebuilt)."""

        categories: dict[str, list[Post]] = {}
        tags: dict[str, list[Post]] = {}
        cat_names: dict[str, str] = {}
        tag_names: dict[str, str] = {}
        by_url: dict[str, Post] = {}
        for post in visible:
            for name in post.categories:
                key = normalize_name(name)
                categories.setdefault(key, []).append(post)
                cat_names.setdefault(key, name)
            for name in post.tags:
                key = normalize_name(name)
                tags.setdefault(key, []).append(post)
                tag_names.setdefault(key, name)
            by_url.setdefault(url_key(post.url), post)
        self.categories: dict[str, Term] = {
            k: Term(Kind.CATEGORY, cat_names[k], tuple(v)) for k, v in categories.items()
        }
        self.tags: dict[str, Term] = {
            k: Term(Kind.TAG, tag_names[k], tuple(v)) for k, v in tags.items()
        }
        self._folded = {
            Kind.CATEGORY: _fold_unique(self.categories),
            Kind.TAG: _fold_unique(self.tags),
        }
        self.by_url = by_url

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

    def selection(self, kind: Kind, name: str) -> tuple[Post, ...] | None:
        if kind is Kind.SITE:
            return self.posts
        term = self.term(kind, name)
        return term.posts if term else None

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


def _sort_key(post: Post) -> tuple[float, str]:
    return post.sort_key


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
