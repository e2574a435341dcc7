"""The URLs of the site (``links.site_pages``) in *groups* that a build fingerprints
whole, so that an incremental build looks only at the URLs of the groups something in
changed, never at every URL (issue 13: one post edited in a site of 100,000 posts).

A group is one of:

- a *block* of a list (the site, a category, a tag): the posts at ``start:stop`` of it,
  ``BLOCK`` or more, a whole number of its HTML pages and of its feed pages long, with
  every page of the list's HTML and feeds (every format) that shows them; the first
  block also has the list's jekyll-feed path. A page shows only posts of its own block,
  and its bytes depend on those, the list's size (its paging) and, on the site's
  pages, every category and tag with its count;
- a run of ``POSTS`` post pages, in the site's order: a post page shows its post and
  its two neighbours;
- the URLs made every time (OPML, static files, the feeds ``feed:`` adds).

Every URL of ``links.site_pages`` is in one group (a test holds the two to each other).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

from . import links
from .config import Settings
from .model import FEED_FORMATS, Kind, Post
from .site import SiteIndex, Term

BLOCK = 500
"""A list's block is at least this many posts (a multiple of both page sizes)."""
POSTS = 256
"""Post pages a group."""

OTHER = "other"


@dataclass(frozen=True, slots=True)
class Group:
    key: str
    """Unique in a site, and the same for the same part of it from one build to the next
    (a list's name and block, a run's place)."""
    what: str
    """'list', 'posts' or 'other'."""
    posts: Sequence[Post | None] = ()
    """What its bytes are made of: a block's posts; a run's posts with the neighbour
    each end (None where there is none)."""
    total: int = 0
    """A block's list's size."""
    term: Term | None = None
    start: int = 0
    stop: int = 0


OTHER_GROUP = Group(OTHER, OTHER)
"""The URLs made every time (``others``)."""


def block_size(page_size: int, limit: int) -> int:
    step = math.lcm(page_size, limit)
    return step * max(1, -(-BLOCK // step))


def groups(index: SiteIndex, settings: Settings) -> Iterator[Group]:
    """Every group of the site but the URLs made every time (``others``)."""
    size = block_size(settings.page_size, settings.posts_limit)
    for term in links.lists(index):
        total = len(term.posts)
        name = f"{term.kind.value}:{term.name}"
        for start in range(0, max(total, 1), size):
            yield Group(f"{name}#{start // size}", "list", term.posts[start:start + size],
                        total, term, start, start + size)
    posts = index.posts
    for start in range(0, len(posts), POSTS):
        shown: list[Post | None] = [posts[start - 1] if start else None]
        shown += posts[start:start + POSTS]
        shown.append(posts[start + POSTS] if start + POSTS < len(posts) else None)
        yield Group(f"posts#{start // POSTS}", "posts", shown, start=start,
                    stop=start + POSTS)


def pages(group: Group, index: SiteIndex, settings: Settings) -> Iterator[
        tuple[str, links.Shown]]:
    """The URLs of a group, with what each shows (as ``links.site_pages`` has them)."""
    if group.what == "posts":
        posts = index.posts
        for i in range(group.start, min(group.stop, len(posts))):
            yield posts[i].url, links.Shown(
                "post", (posts[i], posts[i - 1] if i else None,
                         posts[i + 1] if i + 1 < len(posts) else None))
        return
    term = group.term
    assert term is not None
    site = term.kind is Kind.SITE
    yield from links.list_pages(links.html_path(term.kind, term.name), term, settings.page_size,
                                "index" if site else "page", group.start, group.stop)
    for fmt in FEED_FORMATS:
        yield from links.list_pages(links.feed_path(term.kind, term.name, fmt), term,
                                    settings.posts_limit, "feed", group.start, group.stop)
    if group.start == 0 and (term.kind is not Kind.TAG
                             or links.tag_path_serves(settings, term.name)):
        yield next(links.list_pages(links.jekyll_path(term.kind, term.segment), term,
                                    settings.posts_limit, "feed"))


def others(index: SiteIndex, settings: Settings, statics: Sequence[str]) -> Iterator[
        tuple[str, links.Shown]]:
    """The URLs made every time: the OPML, ``statics``, the feeds ``feed:`` adds."""
    other = links.Shown(OTHER)
    yield links.OPML, other
    yield from ((url, other) for url in statics)
    yield from ((url, other) for url in links.jekyll_urls(settings, index))
    yield from ((url, other) for url in links.collection_urls(settings, index,
                                                             settings.posts_limit))
