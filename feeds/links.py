"""Every URL of the site, decided here once: which lists of posts the site has, the paths
of their feeds and HTML pages, how a list is split into pages, and their titles.

A *list* is the whole site, one category or one tag. Each is served as feeds (Atom, RSS,
JSON Feed: ``/feed.atom``, ``/category/<name>.rss``) and as HTML pages (``/``,
``/tag/<name>.html``), page N at ``?page=N``; the site's and every category's and tag's
Atom feed also at jekyll-feed's paths (``/feed.xml``, ``/feed/<name>.xml``,
``/feed/by_tag/<name>.xml``), so subscribers of a former Jekyll site keep working. Names
become path segments by the rule in ``site``. What ``_config.yml``'s ``feed:`` adds
(``path``, ``categories``, ``tags``) is decided here too: ``configured`` and
``select``. Routes, pages, feeds, OPML, the static export and WebSub all take their URLs
from here.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from urllib.parse import urlencode

from .config import Settings
from .jekyllconf import DEFAULT_TAG_PATH, CollectionFeed
from .model import FEED_FORMATS, Format, Kind, Post
from .site import SiteIndex, Term, name_to_segment, segment_to_name

HOME = "/"
OPML = "/feeds.opml"
STYLESHEET = "/static/style.css"
SITE_FEED = "/feed"
"""The site's feeds, without the format's extension."""
TERM_KINDS = (Kind.CATEGORY, Kind.TAG)


# --- paths ------------------------------------------------------------------------------


def term_stem(kind: Kind, segment: str) -> str:
    """A category's or tag's feeds and page, without the extension, for a name already
    made a path segment (routes pass a URL rule's placeholder)."""
    return f"/{kind.value}/{segment}"


def jekyll_path(kind: Kind, segment: str = "") -> str:
    """jekyll-feed's path of a list's Atom feed, for a name already made a segment."""
    if kind is Kind.SITE:
        return SITE_FEED + ".xml"
    folder = SITE_FEED if kind is Kind.CATEGORY else f"{SITE_FEED}/by_tag"
    return f"{folder}/{segment}.xml"


def _stem(kind: Kind, name: str) -> str:
    return SITE_FEED if kind is Kind.SITE else term_stem(kind, name_to_segment(name))


def feed_path(kind: Kind, name: str, fmt: Format, settings: Settings | None = None) -> str:
    """The path of a list's feed in one format (its first page). A collection's feed
    is Atom only, at jekyll-feed's path (``settings`` say which)."""
    if kind is Kind.COLLECTION:
        label, _, category = name.partition("/")
        feed = _collection_feed(settings, label)
        if feed is None:
            return f"/feed/{name}.xml"
        return feed.category_path(category) if category else feed.feed_path
    return f"{_stem(kind, name)}.{fmt.value}"


def html_path(kind: Kind, name: str) -> str:
    """The path of a list's HTML page (its first page); a collection's feed links to
    the home page, as jekyll-feed's does (this service has no page of documents)."""
    if kind in (Kind.SITE, Kind.COLLECTION):
        return HOME
    return f"{_stem(kind, name)}.{Format.HTML.value}"


def feed_urls(kind: Kind, name: str, base: str) -> list[tuple[Format, str]]:
    """(format, URL) of every feed of the site, a category or a tag."""
    stem = base + _stem(kind, name)
    return [(fmt, f"{stem}.{fmt.value}") for fmt in FEED_FORMATS]


def title(site_title: str, kind: Kind, name: str) -> str:
    """The title of a list's feeds: the site's, or the site's with the name after it;
    a collection's as jekyll-feed writes it ('Site | Recipes | Soup': capitalised)."""
    if kind is Kind.COLLECTION:
        return " | ".join([site_title, *(part.capitalize() for part in name.split("/", 1))])
    return site_title if kind is Kind.SITE else f"{site_title} · {name}"


def reserved(name: str) -> str | None:
    """What else a post's file name (``site.file_name`` of its permalink) is, when the
    site has it for something else: then the post is left out (``SiteIndex``), so a
    static build never writes over it and the server and the build agree. None: free.
    The whole of a URL rule's space is kept, not only the names in use, so a post does
    not come and go as tags do."""
    # 'feed.atom?page=2' is page 2's file: a '?' (%3F in the URL) makes no new name.
    head, _, rest = name.partition("?")[0].partition("/")
    if not rest:
        return _SITE_FILES.get(head)
    if head == "static" or head in SERVICE_PATHS:
        return f"below /{head}/, the service's own"
    if head in _TERM_HEADS and rest.endswith(_TERM_SUFFIXES):
        return f"in the space of the {head} feeds and pages"
    if head == SITE_FEED.lstrip("/") and rest.endswith(".xml"):
        return "in the space of jekyll-feed's category and tag feeds"
    return None


SERVICE_PATHS = ("healthz", "metrics", "websub")
"""Paths the service answers itself (web's and hubweb's routes)."""
_TERM_HEADS = frozenset(k.value for k in TERM_KINDS)
_TERM_SUFFIXES = tuple(f".{fmt.value}" for fmt in (*FEED_FORMATS, Format.HTML))
_SITE_FILES = {
    "index.html": "the home page",
    OPML.lstrip("/"): "the OPML",
    SITE_FEED.lstrip("/") + ".xml": "the site's jekyll-feed path",
    SITE_FEED.lstrip("/") + ".xslt.xml": "the site's feed stylesheet",
    **{f"{SITE_FEED.lstrip('/')}.{fmt.value}": f"the site's .{fmt.value} feed"
       for fmt in FEED_FORMATS},
    **{path: "the service's own" for path in SERVICE_PATHS},
    # A file where a build has a folder could be neither.
    **{folder: f"the folder /{folder}/" for folder in (
        "static", SITE_FEED.lstrip("/"), *(kind.value for kind in TERM_KINDS))},
}


# --- which lists exist ------------------------------------------------------------------


def select(index: SiteIndex, kind: Kind, name: str,
           settings: Settings | None = None) -> Term | None:
    """A list and its posts: the whole site (as a Term of kind SITE, name ''), else the
    category or tag by name (as the index spells it); None when there is no such one.
    With ``settings``, a category of ``feed.categories`` or a tag of ``feed.tags.only``
    that has no posts is an empty list, as jekyll-feed writes an empty feed for it."""
    if kind is Kind.SITE:
        return Term(Kind.SITE, "", index.posts)
    if kind is Kind.COLLECTION:
        return _documents(index, name, settings)
    found = index.term(kind, name)
    if found is None and settings is not None and name in _listed(settings, kind):
        return Term(kind, name, ())
    return found


def _collection_feed(settings: Settings | None, label: str) -> CollectionFeed | None:
    """The ``feed.collections`` entry of a collection (none for 'posts': its feed is
    the site's)."""
    if settings is None or label == "posts":
        return None
    return next((f for f in settings.feed_collections if f.label == label), None)


def _documents(index: SiteIndex, name: str, settings: Settings | None) -> Term | None:
    """A collection's feed: its documents, or those of one listed category of it (an
    empty feed when it has none, as jekyll-feed writes one)."""
    label, _, category = name.partition("/")
    feed = _collection_feed(settings, label)
    if feed is None or (category and category not in feed.categories):
        return None
    docs = index.collections.get(label, ())
    if category:
        docs = tuple(doc for doc in docs if category in doc.categories)
    return Term(Kind.COLLECTION, name, docs)


def _listed(settings: Settings, kind: Kind) -> tuple[str, ...]:
    """The names ``feed:`` asks a jekyll-feed feed for, posts or not."""
    if kind is Kind.CATEGORY:
        return settings.feed_categories
    tags = settings.feed_tags
    if not tags.enabled or tags.only is None:
        return ()
    return tuple(tag for tag in tags.only if tags.listed(tag))


def configured(settings: Settings, path: str) -> tuple[Kind, str] | None:
    """The list whose Atom feed a path of ``feed:`` names (decoded, as routes get it):
    ``feed.path`` the site's, ``feed.tags.path`` + '<tag>.xml' a tag's when the tag is
    listed; None when the path is none of these."""
    if settings.feed_path and path == settings.feed_path:
        return Kind.SITE, ""
    for feed in settings.feed_collections:
        if feed.label == "posts":
            continue
        if path == feed.feed_path:
            return Kind.COLLECTION, feed.label
        for category in feed.categories:
            if path == feed.category_path(category):
                return Kind.COLLECTION, f"{feed.label}/{category}"
    tags = settings.feed_tags
    if tags.enabled and path.startswith(tags.path) and path.endswith(".xml"):
        name = segment_to_name(path[len(tags.path):-len(".xml")])
        if name and tags.listed(name):
            return Kind.TAG, name
    return None


def tag_path_serves(settings: Settings, name: str) -> bool:
    """Whether jekyll-feed's default tag path (/feed/by_tag/<tag>.xml) serves a tag:
    every tag unless ``feed.tags`` moves the path or leaves the tag out."""
    tags = settings.feed_tags
    return not tags.enabled or (tags.path == DEFAULT_TAG_PATH and tags.listed(name))


def jekyll_urls(settings: Settings, index: SiteIndex) -> Iterator[str]:
    """The feeds ``feed:`` adds: ``feed.path``, the listed categories and tags that have
    no posts, and the tags at a moved ``feed.tags.path``."""
    if settings.feed_path:
        yield settings.feed_path
    for kind in TERM_KINDS:
        for name in _listed(settings, kind):
            if index.term(kind, name) is None:
                yield jekyll_path(kind, name_to_segment(name))
    tags = settings.feed_tags
    if tags.enabled and tags.path != DEFAULT_TAG_PATH:
        for term in index.sorted_terms(Kind.TAG):
            if tags.listed(term.name):
                yield f"{tags.path}{term.segment}.xml"


def collection_urls(settings: Settings, index: SiteIndex, limit: int) -> Iterator[str]:
    """The feeds of ``feed.collections``, with all their pages."""
    for feed in settings.feed_collections:
        for category in ("", *feed.categories):
            name = f"{feed.label}/{category}" if category else feed.label
            found = _documents(index, name, settings)
            if found is not None:
                path = feed_path(Kind.COLLECTION, name, Format.ATOM, settings)
                yield from (url for url, _shown in list_pages(path, found, limit, "feed"))


def lists(index: SiteIndex) -> Iterator[Term]:
    """Every list of the site: the site, then the categories, then the tags (each most
    posts first, then by name)."""
    yield Term(Kind.SITE, "", index.posts)
    for kind in TERM_KINDS:
        yield from index.sorted_terms(kind)


# --- paging -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Paging:
    """Page ``page`` of the ``pages`` of a list shown ``size`` posts at a time. Page 1 is
    at ``url`` itself, page N at ``url?page=N``; ``query`` follows on every page (a
    feed's non-default ``limit``)."""

    url: str
    page: int
    pages: int
    size: int
    query: tuple[tuple[str, str], ...] = ()

    def url_of(self, page: int) -> str:
        if not self.query:  # urlencode's answer, without its cost (a build asks each page)
            return f"{self.url}?page={page}" if page > 1 else self.url
        query = (("page", str(page)), *self.query) if page > 1 else self.query
        return f"{self.url}?{urlencode(query)}" if query else self.url

    @property
    def here(self) -> str:
        return self.url_of(self.page)

    @property
    def previous(self) -> str | None:
        return self.url_of(self.page - 1) if self.page > 1 else None

    @property
    def next(self) -> str | None:
        return self.url_of(self.page + 1) if self.page < self.pages else None

    def window(self, posts: Sequence[Post]) -> Sequence[Post]:
        """The posts on this page."""
        start = (self.page - 1) * self.size
        return posts[start:start + self.size]

    def rels(self) -> tuple[tuple[str, str], ...]:
        """A feed's paging links (RFC 5005), (rel, URL): first, previous, next and last
        as they apply; none for a list of one page."""
        if self.pages == 1:
            return ()
        found = (("first", self.url_of(1)), ("previous", self.previous),
                 ("next", self.next), ("last", self.url_of(self.pages)))
        return tuple((rel, url) for rel, url in found if url is not None)

    def urls(self) -> Iterator[str]:
        """The URL of every page, the first first."""
        return (self.url_of(page) for page in range(1, self.pages + 1))


def paging(url: str, total: int, size: int, page: int = 1,
           query: tuple[tuple[str, str], ...] = ()) -> Paging | None:
    """Page ``page`` of a list of ``total`` posts at ``url``; None past the last page (a
    list with no posts still has its one, empty, page)."""
    pages = max(1, math.ceil(total / size))
    if page > pages:
        return None
    return Paging(url, page, pages, size, query)


@dataclass(frozen=True, slots=True)
class Shown:
    """What one URL of the site shows, for a build to order and fingerprint it by:
    ``what`` is 'index' (the site's HTML pages), 'page' (a category's or tag's), 'feed',
    'post' or 'other' (OPML, static files, the feeds ``feed:`` adds: made every time);
    ``posts`` the posts on it (a post page: the post, the newer, the older); ``total``
    and ``name`` the size and name of its list (its paging, its title)."""

    what: str
    posts: tuple[Post | None, ...] = ()
    total: int = 0
    name: str = ""


_OTHER = Shown("other")


def list_pages(url: str, found: Term, size: int, what: str, start: int = 0,
               stop: int | None = None) -> Iterator[tuple[str, Shown]]:
    """The pages of a list at ``url``, ``size`` posts each, with what each shows: those
    whose first post is at ``start:stop`` of it (a multiple of ``size`` each; all by
    default)."""
    posts = found.posts
    paged = paging(url, len(posts), size)
    assert paged is not None  # page 1 always exists
    name = f"{found.kind.value}:{found.name}"
    last = paged.pages if stop is None else min(paged.pages, stop // size)
    for page in range(start // size, last):
        first = page * size
        yield paged.url_of(page + 1), Shown(what, posts[first:first + size], len(posts), name)


# --- every URL --------------------------------------------------------------------------


def site_urls(index: SiteIndex, page_size: int, limit: int,
              statics: Sequence[str] = (STYLESHEET,),
              settings: Settings | None = None) -> Iterator[str]:
    """Every URL of the site, as a path with its query (see site_pages)."""
    return (url for url, _shown in site_pages(index, page_size, limit, statics, settings))


def site_pages(index: SiteIndex, page_size: int, limit: int,
               statics: Sequence[str] = (STYLESHEET,),
               settings: Settings | None = None) -> Iterator[tuple[str, Shown]]:
    """Every URL of the site, as a path with its query, with what it shows: for each
    list its HTML pages, its feeds in each format with all their pages (``limit``
    entries a page) and its jekyll-feed path (the first page: later pages link to the
    /feed.atom form); after the site's pages the OPML and the ``statics`` (stylesheet,
    XSLT); with ``settings``, the feeds ``feed:`` adds (``jekyll_urls``); last every
    post."""
    for found in lists(index):
        site = found.kind is Kind.SITE
        yield from list_pages(html_path(found.kind, found.name), found, page_size,
                          "index" if site else "page")
        if site:
            yield OPML, _OTHER
            yield from ((url, _OTHER) for url in statics)
        for fmt in FEED_FORMATS:
            yield from list_pages(feed_path(found.kind, found.name, fmt), found, limit, "feed")
        if (settings is None or found.kind is not Kind.TAG
                or tag_path_serves(settings, found.name)):
            yield next(list_pages(jekyll_path(found.kind, found.segment), found, limit, "feed"))
    if settings is not None:
        yield from ((url, _OTHER) for url in jekyll_urls(settings, index))
        yield from ((url, _OTHER) for url in collection_urls(settings, index, limit))
    for post, newer, older in index.with_neighbours():
        yield post.url, Shown("post", (post, newer, older))
