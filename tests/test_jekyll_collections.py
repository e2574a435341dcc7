"""jekyll-feed's ``feed.collections``, proven against the real Jekyll: each collection's
documents (``_<name>/``, read as Jekyll reads a collection declared in ``collections:``)
get a feed at jekyll-feed's path, and one per listed category; the site feed stays the
posts'. One document per case, named for it; every entry compared field by field
(tests/jekyll.py, the Pair of test_jekyll_feed_config)."""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask

from .conftest import validate_atom
from .jekyll import atom_entries, needs_jekyll, write_tree
from .test_jekyll_feed_config import Pair, pair, post

__all__ = ["pair"]  # the fixture, shared

pytestmark = needs_jekyll

CONFIG = """url: https://example.org
baseurl: /kitchen
plugins: [jekyll-feed]
timezone: America/New_York
time: 2024-05-01 12:00:00 +0000
collections:
  recipes:
    output: true
    permalink: /r/:path/
  notes:
    output: false
  ghosts:
    output: true
  guides:
    output: true
    permalink: /g/:categories/:name/:title:output_ext
feed:
  collections:
    recipes:
      path: /recipes.atom
      categories: [soup, stew]
    notes: {}
    guides: {}
    posts:
      path: /posts.atom
"""

DOCUMENTS = {
    "_posts/2021-01-01-a-post-stays-in-the-site-feed.md": post(
        "A post stays in the site feed", "2021-01-01 10:00"),
    "_recipes/soup/folder-path-in-a-custom-permalink.md": post(
        "Folder path in a custom permalink", "2021-03-01 10:00",
        categories=["soup"], tags=["red"]),
    "_recipes/2021-02-01-date-from-the-file-name.md":
        "---\ncategory: soup\n---\nDated by its name.\n",
    "_recipes/undated-is-dated-site-time.md": "---\ntitle: Undated\n---\nWhen?\n",
    "_recipes/future-document-is-listed.md": post(
        "Future document is listed", "2099-01-01 10:00", body="Later."),
    "_recipes/static-file-without-front-matter.txt": "Not a document.\n",
    "_recipes/_underscore-file-is-skipped.md": post("Skipped", "2021-01-05 10:00"),
    "_recipes/summary-and-author.md": post(
        "Summary and author", "2021-04-01 09:30 -0400", description="<b>Short</b> one",
        author="Ann", body="Body **here**."),
    "_notes/output-false-default-permalink.md": post(
        "Output false default permalink", "2022-01-01 08:00", body="A note."),
    "_notes/dst-hour-in-new-york.md": post("DST hour in New York", "2021-11-07 01:30"),
    "_guides/Mixed Case Name.html": post(
        "Placeholders name title and categories", "2021-06-01 10:00",
        categories=["How To", "Basics"], slug="Own Slug", body="<p>As <b>HTML</b>.</p>"),
    "_guides/deep/nested/2021-06-02-nested-folders.md":
        "---\ntags: [one]\n---\nNested.\n",
}


def test_each_collection_has_its_feed_at_jekyll_feeds_path(
        pair: Callable[..., Pair], tmp_path: Path) -> None:
    site = pair(DOCUMENTS, CONFIG)
    recipes = site.same("recipes.atom")
    assert [e["title"] for e in recipes] == [
        "Future document is listed", "Undated", "Summary and author",
        "Folder path in a custom permalink", "Date From The File Name"]
    notes = site.same("feed/notes.xml")
    assert {e["title"] for e in notes} == {"Output false default permalink",
                                           "DST hour in New York"}
    for path in ("/recipes.atom", "/feed/notes.xml"):
        validate_atom(site.ours(path), tmp_path)
    # Paths as jekyll-feed writes them; nothing at a path jekyll-feed does not.
    assert site.client.get("/feed/recipes.xml").status_code == 404
    assert site.client.get("/feed/ghosts.xml").status_code == 404


def test_a_listed_category_of_a_collection_has_its_feed(pair: Callable[..., Pair]) -> None:
    site = pair(DOCUMENTS, CONFIG)
    soup = site.same("feed/recipes/soup.xml")
    assert [e["title"] for e in soup] == ["Folder path in a custom permalink",
                                          "Date From The File Name"]
    assert site.same("feed/recipes/stew.xml") == []  # listed, no documents: empty
    assert site.client.get("/feed/recipes/other.xml").status_code == 404


def test_the_site_feed_stays_the_posts(pair: Callable[..., Pair]) -> None:
    site = pair(DOCUMENTS, CONFIG)
    # feed.collections.posts.path moves the posts' feed, as feed.path does.
    assert [e["title"] for e in site.same("posts.atom")] == ["A post stays in the site feed"]
    # /feed.xml answers too, as whenever feed.path moves the feed (see the README).
    assert [e["title"] for e in site.same("posts.atom", "/feed.xml")] == [
        "A post stays in the site feed"]


def test_a_feed_of_a_collection_jekyll_does_not_read_is_empty(
        make_app: Callable[..., Flask], tmp_path: Path) -> None:
    """Not in ``collections:``: Jekyll fails the whole build on it (site[name] is nil);
    here its feed is valid and empty, and its folder is not read."""
    config = CONFIG.replace("    notes: {}\n", "    notes: {}\n    undeclared: {}\n")
    root = write_tree(tmp_path / "site", {"_config.yml": config, **DOCUMENTS,
                                          "_undeclared/a-folder-not-in-collections.md": post(
                                              "A folder not in collections", "2021-01-01 10:00")})
    client = make_app(root).test_client()
    response = client.get("/feed/undeclared.xml")
    assert response.status_code == 200
    assert atom_entries(response.data) == []
    validate_atom(response.data, tmp_path)


@pytest.mark.parametrize(("style", "rel", "links"), [
    # A site's permalink style suffixes the default template (/:collection/:path/).
    ("pretty", "feed/notes.xml", {"/notes/output-false-default-permalink/",
                                  "/notes/dst-hour-in-new-york/"}),
    # A collection's own permalink, with :categories, :name and :title.
    ("date", "feed/guides.xml", {"/g/how%20to/basics/mixed-case-name/Own-Slug.html",
                                 "/g/2021-06-02-nested-folders/nested-folders.html"}),
], ids=["site-style-suffix", "collection-permalink-placeholders"])
def test_document_links(pair: Callable[..., Pair], style: str, rel: str,
                        links: set[str]) -> None:
    site = pair(DOCUMENTS, CONFIG.replace("timezone:", f"permalink: {style}\ntimezone:"))
    entries = site.same(rel)
    assert {e["link"][0] for e in entries} == {
        "https://example.org/kitchen" + link for link in links}


def test_a_document_without_a_date_or_site_time_is_dated_by_its_file(
        make_app: Callable[..., Flask], tmp_path: Path) -> None:
    config = CONFIG.replace("time: 2024-05-01 12:00:00 +0000\n", "")
    root = write_tree(tmp_path / "site", {"_config.yml": config, **DOCUMENTS})
    path = root / "_recipes" / "undated-is-dated-site-time.md"
    os.utime(path, (1_600_000_000, 1_600_000_000))
    entries = atom_entries(make_app(root).test_client().get("/recipes.atom").data)
    undated = next(e for e in entries if e["title"] == "Undated")
    assert undated["published"] == datetime.fromtimestamp(1_600_000_000, UTC)


def test_a_post_links_to_a_document(pair: Callable[..., Pair]) -> None:
    """``{% link %}`` names a collection's document as it names a post."""
    site = pair({**DOCUMENTS, "_posts/2021-01-02-a-post-links-a-document.md": post(
        "A post links a document", "2021-01-02 10:00",
        body="[Soup]({% link _recipes/soup/folder-path-in-a-custom-permalink.md %})")},
        CONFIG)
    ours = site.same("posts.atom", skip=("content",))  # ours absolute, Jekyll's a path
    theirs = atom_entries(site.theirs("posts.atom"))
    link = "/kitchen/r/soup/folder-path-in-a-custom-permalink/"
    assert f'href="{link}"' in theirs[0]["content"]
    assert f'href="https://example.org{link}"' in ours[0]["content"]


def test_liquid_sees_a_collection_as_jekyll_renders_it(pair: Callable[..., Pair]) -> None:
    """``site.<name>``: the documents, oldest first; their ``content`` as written to a
    post (Jekyll renders posts first), a post's rendered to a document."""
    site = pair({**DOCUMENTS,
                 "_posts/2021-01-03-a-post-lists-a-collection.md": post(
                     "A post lists a collection", "2021-01-03 10:00",
                     body="{% for r in site.notes %}{{ r.title }}: {{ r.content | strip }}; "
                          "{% endfor %}{{ site.recipes | size }}"),
                 "_notes/reads-the-posts.md": post(
                     "Reads the posts", "2023-01-01 10:00",
                     body="{{ site.posts.last.content | strip }}"),
                 }, CONFIG)
    # Summaries aside: Jekyll renders excerpts last, when every document has been
    # rendered (README: known differences).
    site.same("posts.atom", skip=("content", "summary"))
    site.same("feed/notes.xml", skip=("content", "summary"))
    for rel in ("posts.atom", "feed/notes.xml"):
        theirs = {e["title"]: e["content"] for e in atom_entries(site.theirs(rel))}
        ours = {e["title"]: e["content"] for e in atom_entries(site.ours("/" + rel))}
        for title in ("A post lists a collection", "Reads the posts"):
            if title in theirs:
                assert ours[title] == theirs[title], title
