"""Jekyll's ``collections_dir``, proven against the real Jekyll: posts are read from
``_posts`` folders below it only, their folder categories (and so their URLs and ids)
are taken from the path below it, front-matter defaults and ``{% link %}`` name posts
by that path, and a collection's documents live in ``<collections_dir>/_<name>/``. One
post per case, named for it; every entry compared field by field (tests/jekyll.py)."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from .jekyll import atom_entries, needs_jekyll
from .test_jekyll_feed_config import Pair, pair, post

__all__ = ["pair"]  # the fixture, shared

pytestmark = needs_jekyll

CONFIG = """url: https://example.org
baseurl: /blog
plugins: [jekyll-feed]
timezone: Asia/Shanghai
collections_dir: stuff
collections:
  recipes:
    output: true
feed:
  collections:
    recipes: {}
defaults:
  - scope: {path: stuff/news}
    values: {tags: [scoped-with-the-folder-named]}
  - scope: {path: stuff}
    values: {author: Never Applied}
  - scope: {path: _posts}
    values: {author: Posts Scope}
"""

POSTS = {
    "stuff/_posts/2021-01-01-top-of-collections-dir.md": post(
        "Top of collections_dir", "2021-01-01 10:00"),
    "stuff/news/_posts/2021-01-02-folder-below-collections-dir.md": post(
        "Folder below collections_dir", "2021-01-02 10:00", categories=["Own"]),
    "stuff/_posts/sub/2021-01-03-folder-inside-posts.md": post(
        "Folder inside _posts", "2021-01-03 10:00"),
    "stuff/a/b/_posts/2021-01-04-two-folders-below.md": post(
        "Two folders below", "2021-01-04 10:00", permalink="/:categories/:title/"),
    "stuff/_posts/2021-01-05-links-another-post.md": post(
        "Links another post", "2021-01-05 10:00",
        body="[one]({% link _posts/2021-01-01-top-of-collections-dir.md %}) "
             "[two]({% post_url 2021-01-02-folder-below-collections-dir %})"),
    "_posts/2021-01-06-outside-collections-dir-is-not-read.md": post(
        "Outside collections_dir", "2021-01-06 10:00"),
    "other/_posts/2021-01-07-another-folder-is-not-read.md": post(
        "Another folder", "2021-01-07 10:00"),
    "stuff/_recipes/soup.md": post("Soup", "2021-02-01 10:00", body="Hot."),
    "_recipes/outside.md": post("Recipe outside collections_dir", "2021-02-02 10:00"),
}


def test_posts_are_read_below_collections_dir_only(pair: Callable[..., Pair]) -> None:
    site = pair(POSTS, CONFIG)
    entries = site.same("feed.xml", skip=("content",))  # ours absolute, Jekyll's paths
    assert [e["title"] for e in entries] == [
        "Links another post", "Two folders below", "Folder inside _posts",
        "Folder below collections_dir", "Top of collections_dir"]


def test_folder_categories_come_from_the_path_below_collections_dir(
        pair: Callable[..., Pair]) -> None:
    """The ids are Jekyll's (same() compares them); these are the cases that moved."""
    site = pair(POSTS, CONFIG)
    entries = {e["title"]: e for e in site.same("feed.xml", skip=("content",))}
    base = "https://example.org/blog"
    assert entries["Top of collections_dir"]["link"][0] == (
        base + "/2021/01/01/top-of-collections-dir.html")
    assert entries["Folder below collections_dir"]["link"][0] == (
        base + "/news/own/2021/01/02/folder-below-collections-dir.html")
    assert entries["Two folders below"]["link"][0] == base + "/a/b/two-folders-below/"


def test_defaults_and_links_name_a_post_by_its_path_below_collections_dir(
        pair: Callable[..., Pair]) -> None:
    site = pair(POSTS, CONFIG)
    entries = {e["title"]: e for e in site.same("feed.xml", skip=("content",))}
    assert entries["Top of collections_dir"]["author"]["name"] == "Posts Scope"
    theirs = {e["title"]: e["content"] for e in atom_entries(site.theirs("feed.xml"))}
    ours = {e["title"]: e["content"] for e in atom_entries(site.ours("/feed.xml"))}
    for link in ("/blog/2021/01/01/top-of-collections-dir.html",
                 "/blog/news/own/2021/01/02/folder-below-collections-dir.html"):
        assert f'href="{link}"' in theirs["Links another post"]
        assert f'href="https://example.org{link}"' in ours["Links another post"]


def test_a_collection_lives_in_collections_dir(pair: Callable[..., Pair]) -> None:
    site = pair(POSTS, CONFIG)
    assert [e["title"] for e in site.same("feed/recipes.xml")] == ["Soup"]


def test_liquid_lists_site_documents_as_jekyll_does(pair: Callable[..., Pair]) -> None:
    """``site.documents``: every collection's documents, the posts' first (oldest
    first), as Jekyll's Site#documents lists them."""
    site = pair({**POSTS, "stuff/_posts/2021-01-08-lists-the-documents.md": post(
        "Lists the documents", "2021-01-08 10:00",
        body="{% for d in site.documents %}{{ d.title }} in {{ d.collection }}; {% endfor %}"
             "{{ site.documents | size }}")}, CONFIG)
    theirs = {e["title"]: e["content"] for e in atom_entries(site.theirs("feed.xml"))}
    ours = {e["title"]: e["content"] for e in atom_entries(site.ours("/feed.xml"))}
    assert "Soup in recipes; 7" in theirs["Lists the documents"]
    assert ours["Lists the documents"] == theirs["Lists the documents"]


@pytest.mark.parametrize("folder", ["", "stuff/"], ids=["site", "collections-dir"])
def test_a_permalinks_path_is_jekylls_cleaned_relative_path(
        pair: Callable[..., Pair], folder: str) -> None:
    """``:path`` in a post's permalink: the path below collections_dir, without its
    extension and the first '_posts' in it ('_posts/sub/2021-01-02-b.md' -> '/sub/...')."""
    config = CONFIG if folder else CONFIG.replace("collections_dir: stuff\n", "")
    posts = {
        f"{folder}_posts/2021-03-01-path-at-the-top.md": post(
            "Path at the top", "2021-03-01 10:00", permalink="/p/:path/"),
        f"{folder}_posts/sub/2021-03-02-path-in-a-folder.md": post(
            "Path in a folder", "2021-03-02 10:00", permalink="/p/:path:output_ext"),
        f"{folder}news/_posts/2021-03-03-path-below-a-category.md": post(
            "Path below a category", "2021-03-03 10:00", permalink="/p/:path.html"),
    }
    entries = pair(posts, config).same("feed.xml")
    assert [e["link"][0] for e in entries] == [
        "https://example.org/blog/p/news/2021-03-03-path-below-a-category.html",
        "https://example.org/blog/p/sub/2021-03-02-path-in-a-folder.html",
        "https://example.org/blog/p/2021-03-01-path-at-the-top/"]


def test_page_path_is_below_collections_dir_and_include_relative_finds_its_file(
        pair: Callable[..., Pair]) -> None:
    """``page.path`` is Jekyll's relative_path, the path below collections_dir (as for a
    collection's document), and ``include_relative`` still reads beside the real file."""
    site = pair({
        **POSTS,
        "stuff/_posts/2021-01-09-shows-its-path.md": post(
            "Shows its path", "2021-01-09 10:00",
            body="Path {{ page.path }}; {% include_relative note.txt %}"),
        "stuff/_posts/note.txt": "The note beside it.\n",
        "stuff/_recipes/stew.md": post("Stew", "2021-02-03 10:00",
                                       body="Path {{ page.path }}."),
    }, CONFIG)
    cases = (("feed.xml", "Shows its path", "_posts/2021-01-09-shows-its-path.md; The note"),
             ("feed/recipes.xml", "Stew", "_recipes/stew.md."))
    for feed, title, shown in cases:
        theirs = {e["title"]: e["content"] for e in atom_entries(site.theirs(feed))}
        ours = {e["title"]: e["content"] for e in atom_entries(site.ours("/" + feed))}
        assert f"Path {shown}" in theirs[title]
        assert ours[title] == theirs[title]
