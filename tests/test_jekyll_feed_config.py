"""jekyll-feed's configuration and entry metadata, proven against the real thing: each
test writes a fixture site (one post per case, named for it), builds it with Debian's
``jekyll`` and ``ruby-jekyll-feed`` (tests/jekyll.py) and compares the feeds Jekyll wrote
with ours for the same folder, entry by entry and field by field.

Compared as readers see them: jekyll-feed escapes titles once more than XML needs and
writes summaries as HTML, so their text is unescaped once before the comparison (ours are
escaped once: a deliberate difference, see the README); an entry author of an empty name
(jekyll-feed writes ``<author><name></name></author>`` when there is none) is no author.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from .conftest import validate_atom, validate_json_feed
from .jekyll import XML_LANG, A, Built, atom_entries, jekyll_site, needs_jekyll, write_tree

pytestmark = needs_jekyll

CONFIG = "url: https://example.org\nplugins: [jekyll-feed]\ntimezone: UTC\n"


def post(title: str, date: str, body: str = "A body.", **front: Any) -> str:
    """A post file: ``front`` values are written as JSON, which YAML reads as is."""
    lines = [f"title: {json.dumps(title)}", f"date: {date}"]
    lines += [f"{key}: {json.dumps(value)}" for key, value in front.items()]
    return "---\n" + "\n".join(lines) + "\n---\n" + body + "\n"


def readable(entries: list[dict[str, Any]], *, jekyll: bool) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        entry = dict(entry)
        if jekyll:
            entry["title"] = html.unescape(entry["title"] or "")
            if entry["summary"] is not None:
                entry["summary"] = " ".join(html.unescape(entry["summary"]).split())
        if entry["author"] is not None and not entry["author"]["name"]:
            entry["author"] = None
        out.append(entry)
    return out


class Pair:
    """One fixture site, built by Jekyll and served by us."""

    def __init__(self, built: Built, client: FlaskClient) -> None:
        self.built = built
        self.client = client

    def ours(self, url: str) -> bytes:
        response = self.client.get(url)
        assert response.status_code == 200, url
        return response.data

    def theirs(self, rel: str) -> bytes:
        assert self.built.exists(rel), f"Jekyll wrote no {rel}:\n{self.built.log}"
        return self.built.read(rel)

    def same(self, rel: str, url: str | None = None,
             skip: tuple[str, ...] = ()) -> list[dict[str, Any]]:
        """Jekyll's feed at ``rel`` and ours at ``url`` (default '/' + rel) list the same
        entries, every field equal but ``skip``; the entries, for more checks."""
        theirs = readable(atom_entries(self.theirs(rel)), jekyll=True)
        ours = readable(atom_entries(self.ours(url or "/" + rel)), jekyll=False)
        assert [e["id"] for e in ours] == [e["id"] for e in theirs]
        for mine, their in zip(ours, theirs, strict=True):
            for field in their.keys() - set(skip):
                assert mine[field] == their[field], (their["id"], field)
        return ours


@pytest.fixture
def pair(tmp_path: Path, make_app: Callable[..., Flask]) -> Callable[..., Pair]:
    def make(files: dict[str, str], config: str = CONFIG) -> Pair:
        root = tmp_path / "site"
        built = jekyll_site(root, {"_config.yml": config, **files})
        return Pair(built, make_app(root).test_client())

    return make


def feed_root(data: bytes) -> etree._Element:
    return etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))


# --- feed: paths, limits, lists ---------------------------------------------------------


def test_feed_path_serves_the_site_feed(pair: Callable[..., Pair]) -> None:
    site = pair({"_posts/2021-01-01-feed-path.md": post("Feed path", "2021-01-01 10:00 +0000")},
                CONFIG + "feed:\n  path: /atom.xml\n")
    entries = site.same("atom.xml")
    assert [e["title"] for e in entries] == ["Feed path"]
    assert site.client.get("/feed.xml").status_code == 200  # the old path still answers


def test_posts_limit_defaults_to_ten_with_paging_beyond(pair: Callable[..., Pair]) -> None:
    posts = {f"_posts/2021-01-{day:02d}-posts-limit-{day}.md":
             post(f"Posts limit {day}", f"2021-01-{day:02d} 10:00 +0000") for day in range(1, 13)}
    site = pair(posts)
    assert len(site.same("feed.xml")) == 10
    rest = atom_entries(site.ours("/feed.atom?page=2"))
    assert [e["title"] for e in rest] == ["Posts limit 2", "Posts limit 1"]


def test_posts_limit_from_feed_config(pair: Callable[..., Pair]) -> None:
    posts = {f"_posts/2021-01-{day:02d}-posts-limit-set-{day}.md":
             post(f"Limit set {day}", f"2021-01-{day:02d} 10:00 +0000") for day in range(1, 6)}
    site = pair(posts, CONFIG + "feed:\n  posts_limit: 3\n")
    assert len(site.same("feed.xml")) == 3


def test_excerpt_only_for_the_site(pair: Callable[..., Pair]) -> None:
    site = pair({"_posts/2021-01-01-excerpt-only-site.md": post(
        "Excerpt only site", "2021-01-01 10:00 +0000", "First block.\n\nSecond block.")},
        CONFIG + "feed:\n  excerpt_only: true\n")
    [entry] = site.same("feed.xml")
    assert (entry["content"], entry["summary"]) == ("", "First block.")
    item = validate_json_feed(site.ours("/feed.json"))["items"][0]
    assert "content_html" not in item and item["content_text"] == "First block."


def test_excerpt_only_for_one_post(pair: Callable[..., Pair]) -> None:
    site = pair({
        "_posts/2021-01-01-excerpt-only-post.md": post(
            "Excerpt only post", "2021-01-01 10:00 +0000", "Short.\n\nLong.",
            feed={"excerpt_only": True}),
        "_posts/2021-01-02-full-content.md": post(
            "Full content", "2021-01-02 10:00 +0000", "All of it."),
    })
    entries = {e["title"]: e for e in site.same("feed.xml")}
    assert entries["Excerpt only post"]["content"] == ""
    assert entries["Full content"]["content"] == "<p>All of it.</p>"


def test_listed_category_without_posts_is_an_empty_feed(
        pair: Callable[..., Pair], tmp_path: Path) -> None:
    site = pair({"_posts/2021-01-01-category-news.md": post(
        "Category news", "2021-01-01 10:00 +0000", categories=["news"])},
        CONFIG + "feed:\n  categories: [news, empty]\n")
    assert [e["title"] for e in site.same("feed/news.xml")] == ["Category news"]
    assert site.same("feed/empty.xml") == []
    validate_atom(site.ours("/feed/empty.xml"), tmp_path)
    assert site.client.get("/feed/never-listed.xml").status_code == 404


def test_tag_feeds_only_except_and_path(pair: Callable[..., Pair], tmp_path: Path) -> None:
    site = pair({"_posts/2021-01-01-tags-only-except.md": post(
        "Tags only except", "2021-01-01 10:00 +0000", tags=["a", "b", "c"])},
        CONFIG + "feed:\n  tags:\n    only: [a, b]\n    except: [b]\n    path: /tags/\n")
    assert [e["title"] for e in site.same("tags/a.xml")] == ["Tags only except"]
    for left_out in ("b", "c"):  # excepted; not in only
        assert not site.built.exists(f"tags/{left_out}.xml")
        assert site.client.get(f"/tags/{left_out}.xml").status_code == 404
    # The path moved: Jekyll writes nothing at the default one, nor do we answer there.
    assert not site.built.exists("feed/by_tag/a.xml")
    assert site.client.get("/feed/by_tag/a.xml").status_code == 404
    # Every tag still has our own feeds (a deliberate difference).
    assert site.client.get("/tag/c.atom").status_code == 200


def test_tag_path_is_a_prefix_and_any_true_value_means_every_tag(
        pair: Callable[..., Pair]) -> None:
    site = pair({"_posts/2021-01-01-tags-path-prefix.md": post(
        "Tags path prefix", "2021-01-01 10:00 +0000", tags=["rust", "go"])},
        CONFIG + "feed:\n  tags:\n    path: /by-tag-\n")
    assert [e["title"] for e in site.same("by-tag-rust.xml")] == ["Tags path prefix"]
    site.same("by-tag-go.xml")
    site = pair({"_posts/2021-01-01-tags-yes.md": post(
        "Tags yes", "2021-01-01 10:00 +0000", tags=["rust"])},
        CONFIG + "feed:\n  tags: yes please\n")
    site.same("feed/by_tag/rust.xml")


def test_tag_listed_in_only_without_posts_is_an_empty_feed(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    # Jekyll cannot build this site (jekyll-feed sorts the posts of a tag that has none:
    # "Cannot sort a null object"); we answer what a listed category gets, an empty feed.
    root = write_tree(tmp_path / "site", {
        "_config.yml": CONFIG + "feed:\n  tags:\n    only: [a, ghost]\n",
        "_posts/2021-01-01-tag-only-ghost.md": post(
            "Tag only ghost", "2021-01-01 10:00 +0000", tags=["a"])})
    client = make_app(root).test_client()
    response = client.get("/feed/by_tag/ghost.xml")
    assert response.status_code == 200
    assert atom_entries(response.data) == []
    validate_atom(response.data, tmp_path)
    assert client.get("/feed/by_tag/other.xml").status_code == 404


def test_tag_feeds_true_at_the_default_path(pair: Callable[..., Pair]) -> None:
    site = pair({"_posts/2021-01-01-tags-true.md": post(
        "Tags true", "2021-01-01 10:00 +0000", tags=["alpha"])},
        CONFIG + "feed:\n  tags: true\n")
    assert [e["title"] for e in site.same("feed/by_tag/alpha.xml")] == ["Tags true"]


# --- the feed's own metadata ------------------------------------------------------------


def test_site_name_is_the_title_when_title_is_unset(pair: Callable[..., Pair]) -> None:
    site = pair({"_posts/2021-01-01-site-name.md": post("Site name", "2021-01-01 10:00 +0000")},
                CONFIG + "name: \"Rock 'n' roll -- the '90s\"\n")
    theirs = html.unescape(feed_root(site.theirs("feed.xml")).findtext(f"{A}title") or "")
    ours = feed_root(site.ours("/feed.xml")).findtext(f"{A}title")
    assert ours == theirs == "Rock \u2018n\u2019 roll \u2013 the \u201990s"


def test_no_xml_lang_when_lang_is_unset_and_a_posts_lang_on_its_entry(
        pair: Callable[..., Pair]) -> None:
    site = pair({
        "_posts/2021-01-01-post-lang.md": post("Post lang", "2021-01-01 10:00 +0000",
                                               lang="fr"),
        "_posts/2021-01-02-no-lang.md": post("No lang", "2021-01-02 10:00 +0000"),
    })
    entries = {e["title"]: e for e in site.same("feed.xml")}
    assert (entries["Post lang"]["lang"], entries["No lang"]["lang"]) == ("fr", None)
    for data in (site.theirs("feed.xml"), site.ours("/feed.xml")):
        assert feed_root(data).get(XML_LANG) is None
    assert "language" not in json.loads(site.ours("/feed.json"))


def test_site_lang_is_the_feeds(pair: Callable[..., Pair]) -> None:
    site = pair({"_posts/2021-01-01-site-lang.md": post("Site lang", "2021-01-01 10:00 +0000")},
                CONFIG + "lang: de\n")
    site.same("feed.xml")
    for data in (site.theirs("feed.xml"), site.ours("/feed.xml")):
        assert feed_root(data).get(XML_LANG) == "de"


def test_authors_from_data_and_authors_list(pair: Callable[..., Pair]) -> None:
    site = pair({
        "_data/authors.yml": "jdoe:\n  name: Jane Doe\n  email: jane@example.org\n"
                             "  uri: https://example.org/jane\nbob:\n  name: Bob Roe\n",
        "_posts/2021-01-01-author-from-data.md": post(
            "Author from data", "2021-01-01 10:00 +0000", author="jdoe"),
        "_posts/2021-01-02-authors-first.md": post(
            "Authors first", "2021-01-02 10:00 +0000", authors=["bob", "jdoe"]),
        "_posts/2021-01-03-author-unknown.md": post(
            "Author unknown", "2021-01-03 10:00 +0000", author="Someone Else"),
        "_posts/2021-01-04-site-author-key.md": post(
            "Site author key", "2021-01-04 10:00 +0000"),
    }, CONFIG + "author: bob\n")
    got = {e["title"]: e["author"] for e in site.same("feed.xml")}
    assert got["Author from data"] == {"name": "Jane Doe", "email": "jane@example.org",
                                       "uri": "https://example.org/jane"}
    assert got["Authors first"]["name"] == got["Site author key"]["name"] == "Bob Roe"
    assert got["Author unknown"]["name"] == "Someone Else"


@pytest.mark.parametrize("image", ["uploads/image-path.jpg", "/uploads/image-path.jpg",
                                   "https://cdn.example.net/image-path.jpg"])
def test_image_path_is_media_against_url_and_baseurl(
        pair: Callable[..., Pair], image: str) -> None:
    site = pair({
        "_posts/2021-01-01-image-mapping.md": post(
            "Image mapping", "2021-01-01 10:00 +0000", image={"path": image}),
        "_posts/2021-01-02-image-text.md": post(
            "Image text", "2021-01-02 10:00 +0000", image=image),
    }, CONFIG + "baseurl: /blog\n")
    entries = site.same("feed.xml")
    want = image if "://" in image else "https://example.org/blog/uploads/image-path.jpg"
    assert [e["media"] for e in entries] == [[("content", want), ("thumbnail", want)]] * 2
    items = validate_json_feed(site.ours("/feed.json"))["items"]
    assert [item["image"] for item in items] == [want, want]


# --- summaries --------------------------------------------------------------------------

LONG = " ".join(["A long first paragraph that goes on."] * 20)


def test_summary_is_the_description_without_its_html(pair: Callable[..., Pair]) -> None:
    site = pair({"_posts/2021-01-01-description-html.md": post(
        "Description html", "2021-01-01 10:00 +0000",
        description="A <b>bold</b> &amp; <a href=\"/x\">linked</a>\n  description")})
    [entry] = site.same("feed.xml")
    assert entry["summary"] == "A bold & linked description"


def test_summary_is_the_whole_first_block_never_cut(pair: Callable[..., Pair]) -> None:
    site = pair({
        "_posts/2021-01-01-excerpt-long.md": post(
            "Excerpt long", "2021-01-01 10:00 +0000", LONG + "\n\nSecond."),
        "_posts/2021-01-02-excerpt-heading.md": post(
            "Excerpt heading", "2021-01-02 10:00 +0000", "# A heading first\n\nThen text."),
    })
    # Heading ids are kramdown's, which the bodies part of issue 12 brings.
    got = {e["title"]: e["summary"] for e in site.same("feed.xml", skip=("content",))}
    assert got["Excerpt long"] == LONG and len(LONG) > 400
    assert got["Excerpt heading"] == "A heading first"


def test_excerpt_separator_of_the_site_and_of_a_post(pair: Callable[..., Pair]) -> None:
    site = pair({
        "_posts/2021-01-01-separator-site.md": post(
            "Separator site", "2021-01-01 10:00 +0000",
            "One.\n\nTwo, still the excerpt.\n\n<!--more-->\n\nThree."),
        "_posts/2021-01-02-separator-post.md": post(
            "Separator post", "2021-01-02 10:00 +0000",
            "Up to here. [[cut]] Not this.", excerpt_separator="[[cut]]"),
        "_posts/2021-01-03-separator-missing.md": post(
            "Separator missing", "2021-01-03 10:00 +0000", "All.\n\nOf it."),
    }, CONFIG + "excerpt_separator: <!--more-->\n")
    # Jekyll's content keeps the <!--more--> comment; our sanitiser drops comments.
    got = {e["title"]: e["summary"] for e in site.same("feed.xml", skip=("content",))}
    assert got == {"Separator site": "One. Two, still the excerpt.",
                   "Separator post": "Up to here.", "Separator missing": "All. Of it."}


def test_excerpt_keeps_the_link_definitions_it_uses(pair: Callable[..., Pair]) -> None:
    site = pair({"_posts/2021-01-01-excerpt-link-reference.md": post(
        "Excerpt link reference", "2021-01-01 10:00 +0000",
        "See [the docs][docs] first.\n\nMore.\n\n[docs]: https://example.net/docs")})
    [entry] = site.same("feed.xml")
    assert entry["summary"] == "See the docs first."


# --- titles -----------------------------------------------------------------------------

TITLES = [
    "Smartify '90s decade", "Smartify it's \"quoted\"", "Smartify 'single' quotes",
    "Smartify -- and --- dashes...", "Smartify \"'nested' quotes\"",
    "Smartify << guillemets >>", "Smartify end'", "Smartify (\"parens\")",
    "Smartify 'tis", "Smartify \"Hello,\" she said",
]


def test_titles_smartified_as_jekyll(pair: Callable[..., Pair]) -> None:
    site = pair({f"_posts/2021-01-{i + 1:02d}-smartify-{i}.md":
                 post(title, f"2021-01-{i + 1:02d} 10:00 +0000")
                 for i, title in enumerate(TITLES)},
                CONFIG + "title: \"Site 'quoted' -- title\"\n")
    assert len(site.same("feed.xml")) == len(TITLES)
    theirs = html.unescape(feed_root(site.theirs("feed.xml")).findtext(f"{A}title") or "")
    assert feed_root(site.ours("/feed.xml")).findtext(f"{A}title") == theirs


ENTITY_TITLES = ["Entities Tom &amp; Jerry", "Entities &quot;quoted&quot; &lt;3",
                 "Entities &#169; and &copy; 2021", "Entities <b>bold</b> &amp; plain"]


def test_a_titles_entities_read_as_a_reader_shows_jekylls(pair: Callable[..., Pair]) -> None:
    """jekyll-feed writes titles as HTML (type="html"): a reader decodes their entities.
    Ours are text, so the entities are decoded here, once: both read 'Tom & Jerry'."""
    site = pair({f"_posts/2021-01-{i + 1:02d}-entities-{i}.md":
                 post(title, f"2021-01-{i + 1:02d} 10:00 +0000")
                 for i, title in enumerate(ENTITY_TITLES)},
                CONFIG + "title: \"Site &amp; 'Co'\"\n")
    titles = [e["title"] for e in site.same("feed.xml")]  # Jekyll's decoded as a reader does
    assert titles == ["Entities bold & plain", "Entities \u00a9 and \u00a9 2021",
                      "Entities \"quoted\" <3", "Entities Tom & Jerry"]
    theirs = html.unescape(feed_root(site.theirs("feed.xml")).findtext(f"{A}title") or "")
    assert feed_root(site.ours("/feed.xml")).findtext(f"{A}title") == theirs == (
        "Site & \u2018Co\u2019")


# --- feed.xslt.xml ------------------------------------------------------------------------

XSLT = ('<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" '
        'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>\n')


def stylesheet_href(data: bytes) -> str | None:
    root = feed_root(data)
    for node in root.itersiblings(preceding=True):
        if isinstance(node, etree._ProcessingInstruction) and node.target == "xml-stylesheet":
            return node.get("href")
    return None


def test_a_sites_feed_xslt_is_named_where_jekyll_names_it(pair: Callable[..., Pair]) -> None:
    site = pair({"feed.xslt.xml": XSLT,
                 "_posts/2021-01-01-feed-xslt.md": post("Feed xslt", "2021-01-01 10:00 +0000")},
                CONFIG + "baseurl: /blog\n")
    site.same("feed.xml")
    theirs = stylesheet_href(site.theirs("feed.xml"))
    assert theirs == "https://example.org/blog/feed.xslt.xml"
    assert stylesheet_href(site.ours("/feed.xml")) == theirs
    assert site.ours("/feed.xslt.xml") == site.theirs("feed.xslt.xml") == XSLT.encode()
