"""Frozen, typed records that flow between the stages. No I/O here."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class Kind(StrEnum):
    """What a feed or list page selects: the whole site, one category or one tag."""

    SITE = "site"
    CATEGORY = "category"
    TAG = "tag"
    COLLECTION = "collection"
    """A collection's documents (jekyll-feed's ``feed.collections``); its name is the
    collection's, or '<collection>/<category>' for one listed category of it."""


class Format(StrEnum):
    ATOM = "atom"
    RSS = "rss"
    JSON = "json"
    HTML = "html"


FEED_FORMATS: tuple[Format, ...] = (Format.ATOM, Format.RSS, Format.JSON)

CONTENT_TYPES: dict[str, str] = {
    Format.ATOM: "application/atom+xml; charset=utf-8",
    Format.RSS: "application/rss+xml; charset=utf-8",
    Format.JSON: "application/feed+json; charset=utf-8",
    Format.HTML: "text/html; charset=utf-8",
    "opml": "text/x-opml; charset=utf-8",
}


Stamp = tuple[int, int, int]
"""(mtime_ns, size, inode) of a file as stat gives them: which version of which file."""


@dataclass(frozen=True, slots=True)
class Author:
    name: str
    email: str | None = None
    uri: str | None = None


@dataclass(frozen=True, slots=True)
class Post:
    """One post's front matter, resolved. The body stays on disk until a feed or page
    needs it (see ``stamp``)."""

    source: str
    """Path of the file relative to the content folder, with '/' separators."""
    stamp: Stamp
    """The file as it was read: the body cache's key, and how the body's read later
    knows it is still the same file."""
    markup: str
    """'markdown' or 'html'."""
    slug: str
    title: str
    date: datetime
    """Publication instant, aware, in the offset Jekyll gives it (its own or the site's)."""
    updated: datetime
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    url: str
    """Permalink path below baseurl, percent-encoded as Jekyll writes it ('/a/2021/x.html')."""
    entry_id: str
    """The entry id: Jekyll's ``post.id`` path ('/a/2021/x', made absolute when written),
    or the front matter's ``id`` or ``guid`` when it gives one."""
    author: Author | None = None
    summary: str | None = None
    image: str | None = None
    lang: str | None = None
    source_url: str | None = None
    """Where the article was first published, when the post names it."""
    excerpt_separator: str | None = None
    """The post's own ``excerpt_separator`` (else the site's)."""
    excerpt_only: bool = False
    """``feed.excerpt_only`` of the post: its feed entries carry the summary only."""
    collection: str = "posts"
    """The Jekyll collection of the file: 'posts', or one of ``feed.collections`` (a
    document of ``_<name>/``, in that collection's feeds only)."""

    @property
    def sort_key(self) -> tuple[float, str]:
        """Newest first; posts of the same instant by path, as jekyll-feed lists them."""
        return (-self.date.timestamp(), self.source)


@dataclass(frozen=True, slots=True)
class DefaultSet:
    """One set of ``_config.yml``'s front-matter ``defaults``: ``values`` for the posts
    below ``path`` ('' for all; '*' globs one path segment) of ``type`` (None for any)."""

    path: str
    type: str | None
    values: tuple[tuple[str, object], ...]
    """The values, as (key, value) pairs in their order."""


@dataclass(frozen=True, slots=True)
class Problem:
    """Something wrong with one file. ``rejected`` problems leave the post out."""

    path: str
    message: str
    rejected: bool = True

    def __str__(self) -> str:
        level = "" if self.rejected else "warning: "
        return f"{self.path}: {level}{self.message}"


@dataclass(frozen=True, slots=True)
class FeedKey:
    """What one response shows: the cache key of rendered feeds and list pages."""

    kind: Kind
    name: str
    fmt: Format
    page: int = 1
    limit: int = 10


@dataclass(frozen=True, slots=True)
class Body:
    """A post's rendered, sanitised HTML with absolute URLs, and its plain-text summary."""

    html: str
    summary: str
