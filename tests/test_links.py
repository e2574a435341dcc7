"""links: the one place that decides paths, paging and titles. The HTTP tests check what
the service answers at these URLs; these pin the rules themselves."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime

from feeds import links
from feeds.model import Format, Kind, Post
from feeds.site import SiteIndex


def _post(n: int, tags: tuple[str, ...] = ()) -> Post:
    when = datetime(2022, 1, n, tzinfo=UTC)
    return Post(source=f"_posts/p{n}.md", stamp=(0, 0), markup="markdown", slug=f"p{n}",
                title=f"P{n}", date=when, updated=when, categories=(), tags=tags,
                url=f"/p{n}.html", entry_id=f"/p{n}")


def test_paths_of_the_site_a_category_and_a_tag() -> None:
    assert links.feed_path(Kind.SITE, "", Format.RSS) == "/feed.rss"
    assert links.feed_path(Kind.TAG, "a/b", Format.ATOM) == "/tag/a~2Fb.atom"
    assert links.html_path(Kind.SITE, "") == "/"
    assert links.html_path(Kind.CATEGORY, "C#") == "/category/C~23.html"
    assert links.jekyll_path(Kind.SITE) == "/feed.xml"
    assert links.jekyll_path(Kind.CATEGORY, "x") == "/feed/x.xml"
    assert links.jekyll_path(Kind.TAG, "x") == "/feed/by_tag/x.xml"
    assert links.feed_urls(Kind.TAG, "x", "https://h") == [
        (Format.ATOM, "https://h/tag/x.atom"), (Format.RSS, "https://h/tag/x.rss"),
        (Format.JSON, "https://h/tag/x.json")]
    assert links.title("Site", Kind.SITE, "") == "Site"
    assert links.title("Site", Kind.TAG, "x") == "Site · x"


def test_paging_first_page_is_the_bare_url_and_the_query_follows() -> None:
    assert links.paging("/f", 0, 10) is not None  # an empty list still has its page
    assert links.paging("/f", 10, 5, page=3) is None
    paging = links.paging("/f", 11, 5, page=2, query=(("limit", "5"),))
    assert paging is not None
    assert (paging.pages, paging.here) == (3, "/f?page=2&limit=5")
    assert (paging.previous, paging.next) == ("/f?limit=5", "/f?page=3&limit=5")
    assert paging.rels() == (("first", "/f?limit=5"), ("previous", "/f?limit=5"),
                             ("next", "/f?page=3&limit=5"), ("last", "/f?page=3&limit=5"))
    assert list(paging.urls()) == ["/f?limit=5", "/f?page=2&limit=5", "/f?page=3&limit=5"]
    one = links.paging("/f", 5, 5)
    assert one is not None and one.rels() == () and one.previous is one.next is None
    assert list(paging.window(tuple(range(11)))) == [5, 6, 7, 8, 9]


def test_select_and_site_urls() -> None:
    index = SiteIndex([_post(1, ("x",)), _post(2)], now=datetime(2023, 1, 1).timestamp())
    site = links.select(index, Kind.SITE, "")
    assert site is not None and site.posts == index.posts
    assert links.select(index, Kind.TAG, "X") is index.term(Kind.TAG, "x")
    assert links.select(index, Kind.CATEGORY, "anything") is None
    assert list(links.site_urls(index, page_size=1, limit=20)) == [
        "/", "/?page=2", "/feeds.opml", "/static/style.css",
        "/feed.atom", "/feed.rss", "/feed.json", "/feed.xml",
        "/tag/x.html", "/tag/x.atom", "/tag/x.rss", "/tag/x.json", "/feed/by_tag/x.xml",
        "/p2.html", "/p1.html"]


def test_the_newest_change_is_the_newest_date_or_updated_of_any_post() -> None:
    """A site's Last-Modified: an old post edited (``last_modified_at``) after the newest
    post's date dates the site; an updated that equals a date by value, not as the same
    object (a row of the index), counts as that date."""
    posts = [_post(n) for n in (1, 2, 3)]
    assert SiteIndex(posts).newest_change == posts[2].date.timestamp()
    edited = replace(posts[0], updated=datetime(2022, 2, 1, 12, tzinfo=UTC))
    assert SiteIndex([edited, *posts[1:]]).newest_change == edited.updated.timestamp()
    copied = replace(posts[2], updated=datetime(2022, 1, 3, tzinfo=UTC))
    assert copied.updated is not copied.date
    assert SiteIndex([*posts[:2], copied]).newest_change == posts[2].date.timestamp()
    assert SiteIndex([]).newest_change == 0.0
