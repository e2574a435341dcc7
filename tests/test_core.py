"""The core rules, black-box over HTTP through the Flask test client: content layout, front
matter, Jekyll's dates, the URL contract, the three feed formats, base URLs, OPML and
/healthz. Every document is parsed (lxml with recover=False, feedparser, jing with the
Atom RELAX NG schema, the JSON Feed schema); nothing greps XML text.

Most tests read tests/fixtures/core-site (a copy, served by one app per module); each file
there is named for the rule it shows. Tests that need another folder write their own."""

from __future__ import annotations

import http.client
import json
import re
import shutil
import unicodedata
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta, timezone
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from lxml import html as lxml_html

from feeds import create_app
from feeds.config import load_settings
from feeds.site import name_to_segment

from .conftest import (
    FIXTURES,
    LiveServer,
    make_settings,
    post_text,
    validate_atom_many,
    validate_json_feed,
    write_site,
)

A = "{http://www.w3.org/2005/Atom}"
CONTENT_NS = "{http://purl.org/rss/1.0/modules/content/}"
BASE = "https://example.org"
CST = timezone(timedelta(hours=8))
SITE_TITLE = "Core Site"

WINTER = "冬日随笔\uff1a一根电话线的二十年"  # with a full-width colon, as Chinese is written
# The posts of tests/fixtures/core-site that must be visible (21), and those that must not.
VISIBLE = {
    "Unquoted timestamp", "Quoted timestamp", WINTER,
    "Evening in New York", "ISO time with Z", "Date only", "File name date",
    "No Title Here", "Author mapping and more", "Author string and excerpt", "Id override",
    "Guid override", "Slug override", "Custom permalink", "Q&A ]]> 1 < 2 & done",
    "Folder categories", "Extension markdown", "Extension html", "Extension htm",
    "Extension txt", "Odd names",
}
HIDDEN = {"A draft", "Built output", "Dot folder", "Node modules", "Extension rst",
          "Not published", "Far future"}
ODD_CATEGORIES = ["a/b", "why?", "C#", "100%", "..", ".dotfile", "back\\slash", "ti~lde"]
ODD_TAGS = ["a/b", "C# & .NET", "50% off", "../etc"]


def strict_xml(data: bytes) -> etree._Element:
    """Parse XML the strict way: any well-formedness error raises."""
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    return etree.fromstring(data, parser)


def atom_entries(root: etree._Element) -> list[dict[str, Any]]:
    out = []
    for entry in root.findall(f"{A}entry"):
        content = entry.find(f"{A}content")
        summary = entry.find(f"{A}summary")
        author = entry.find(f"{A}author")
        out.append({
            "id": entry.findtext(f"{A}id"),
            "title": entry.findtext(f"{A}title"),
            "links": [(link.get("rel", "alternate"), link.get("href"))
                      for link in entry.findall(f"{A}link")],
            "published": datetime.fromisoformat(entry.findtext(f"{A}published") or ""),
            "published_text": entry.findtext(f"{A}published"),
            "updated": datetime.fromisoformat(entry.findtext(f"{A}updated") or ""),
            "categories": [c.get("term") for c in entry.findall(f"{A}category")],
            "summary": summary.text if summary is not None else None,
            "content": content.text if content is not None else None,
            "content_type": content.get("type") if content is not None else None,
            "author": None if author is None else (
                author.findtext(f"{A}name"), author.findtext(f"{A}email"),
                author.findtext(f"{A}uri")),
        })
    return out


def link_of(entry: dict[str, Any]) -> str:
    return next(href for rel, href in entry["links"] if rel == "alternate")


def get_ok(client: FlaskClient, url: str, **kwargs: Any) -> bytes:
    response = client.get(url, **kwargs)
    assert response.status_code == 200, (url, response.status_code, response.data[:200])
    return response.data


def atom_of(client: FlaskClient, url: str) -> tuple[etree._Element, list[dict[str, Any]]]:
    root = strict_xml(get_ok(client, url))
    assert root.tag == f"{A}feed"
    return root, atom_entries(root)


def by_title(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["title"]: e for e in entries}


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


@pytest.fixture(scope="module")
def core_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("core") / "site"
    shutil.copytree(FIXTURES / "core-site", target)
    return target


@pytest.fixture(scope="module")
def core_app(core_dir: Path) -> Iterator[Flask]:
    application = create_app(make_settings(core_dir), watch=False)
    yield application
    application.extensions["feeds"].stop()


@pytest.fixture
def core(core_app: Flask) -> FlaskClient:
    return core_app.test_client()


def all_site_entries(client: FlaskClient) -> list[dict[str, Any]]:
    return atom_of(client, "/feed.atom?limit=100")[1]


# --- content layout -------------------------------------------------------------------


def test_layout_reads_posts_folders_and_skips_drafts_site_dot_folders(
        core: FlaskClient) -> None:
    titles = [e["title"] for e in all_site_entries(core)]
    assert len(titles) == len(set(titles))
    assert set(titles) == VISIBLE
    assert not set(titles) & HIDDEN
    health = json.loads(get_ok(core, "/healthz"))
    assert health["posts"] == len(VISIBLE)
    assert health["rejected"] == 0


def test_every_post_extension_is_read_and_rendered(core: FlaskClient) -> None:
    entries = by_title(atom_of(core, "/tag/ext.atom")[1])
    assert list(entries) == ["Extension txt", "Extension htm", "Extension html",
                             "Extension markdown"]

    def fragment(title: str) -> Any:
        return lxml_html.fragment_fromstring(entries[title]["content"], create_parent="div")

    assert fragment("Extension markdown").xpath("//em/text()") == ["Markdown"]
    assert fragment("Extension html").xpath("//b/text()") == ["HTML"]
    assert fragment("Extension htm").xpath("//p/text()") == ["Written in HTML (htm)."]
    # Jekyll converts no .txt file: its text is written (and linked) as it is.
    assert fragment("Extension txt").xpath("text()") == ["Plain text."]
    assert link_of(entries["Extension txt"]).endswith("/2023/10/04/ext-txt.txt")


def test_folder_categories_come_before_front_matter_ones(core: FlaskClient) -> None:
    entry = by_title(all_site_entries(core))["Folder categories"]
    assert entry["categories"] == ["a", "b", "杂谈", "alpha"]
    assert link_of(entry) == f"{BASE}/a/b/%E6%9D%82%E8%B0%88/2023/08/01/folder-categories.html"
    for name in ("a", "b", "杂谈"):
        titles = [e["title"] for e in atom_of(core, f"/category/{name}.atom")[1]]
        assert titles == ["Folder categories"]


def test_flat_folder_without_posts_folder(tmp_path: Path,
                                          make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "flat", {
        "notes/2021-05-06-named-by-date.md": "---\ntitle: Named by date\n---\nx\n",
        "notes/deep/dated-in-front-matter.md": post_text(
            "Front matter date", "2021-05-07 09:00:00 +0800", "[notes]"),
        # Both dates given: the front matter wins.
        "2020-01-01-both.markdown": post_text("Both dates", "2021-05-08", "[]"),
        "README.md": "# Not a post\n\nNo front matter, so not a post and not a problem.\n",
        "page.html": "<p>No front matter either.</p>\n",
        "_drafts/2021-05-09-draft.md": post_text("Draft", "2021-05-09"),
        ".git/2021-05-10-dot.md": post_text("Dot", "2021-05-10"),
        "_site/2021-05-11-built.md": post_text("Built", "2021-05-11"),
    })
    client = make_app(root).test_client()
    entries = atom_of(client, "/feed.atom")[1]
    assert [(e["title"], e["published"]) for e in entries] == [
        ("Both dates", datetime(2021, 5, 8, tzinfo=CST)),
        ("Front matter date", datetime(2021, 5, 7, 9, tzinfo=CST)),
        ("Named by date", datetime(2021, 5, 6, tzinfo=CST)),
    ]
    health = json.loads(get_ok(client, "/healthz"))
    assert (health["posts"], health["rejected"]) == (3, 0)


# --- front matter -----------------------------------------------------------------------


def test_front_matter_fields_in_atom(core: FlaskClient) -> None:
    entries = by_title(all_site_entries(core))
    mapping = entries["Author mapping and more"]
    assert mapping["author"] == ("韩梅梅", "meimei@example.org", "https://meimei.example.org/")
    assert mapping["summary"] == "A hand-written description."
    assert mapping["published"] == datetime(2023, 2, 1, 10, tzinfo=CST)
    assert mapping["updated"] == datetime(2023, 2, 3, 11, 30, tzinfo=CST)
    assert mapping["categories"] == ["news", "alpha"]
    string = entries["Author string and excerpt"]
    assert string["author"] == ("李雷", None, None)
    assert string["summary"] == "An excerpt from the front matter."
    # updated: quoted, so site-zone wall clock.
    assert string["updated"] == datetime(2023, 2, 4, 8, tzinfo=CST)
    assert string["categories"] == ["alpha", "beta"]
    # No author in the post: the site's author.
    assert entries["Date only"]["author"] == ("Site Owner", "owner@example.org", None)
    # No description: the first paragraph's text.
    assert entries["Unquoted timestamp"]["summary"] == (
        "A plain YAML timestamp without offset is UTC to Jekyll.")
    assert entries["No Title Here"]["summary"] == "No title: Jekyll titleizes the slug."


def test_front_matter_fields_in_json_feed(core: FlaskClient) -> None:
    feed = validate_json_feed(get_ok(core, "/feed.json?limit=100"))
    items = {item["title"]: item for item in feed["items"]}
    mapping = items["Author mapping and more"]
    assert mapping["image"] == f"{BASE}/img/cover.png"
    assert mapping["language"] == "en"
    assert mapping["summary"] == "A hand-written description."
    assert datetime.fromisoformat(mapping["date_published"]) == datetime(
        2023, 2, 1, 10, tzinfo=CST)
    assert datetime.fromisoformat(mapping["date_modified"]) == datetime(
        2023, 2, 3, 11, 30, tzinfo=CST)
    assert mapping["authors"] == [{"name": "韩梅梅", "url": "https://meimei.example.org/"}]
    assert mapping["tags"] == ["news", "alpha"]
    assert items["Author string and excerpt"]["authors"] == [{"name": "李雷"}]
    assert "language" not in items["Date only"] and "image" not in items["Date only"]


def test_ids_slugs_and_permalinks_from_front_matter(core: FlaskClient) -> None:
    entries = by_title(all_site_entries(core))
    # jekyll-feed ignores a front-matter id or guid (front_matter_ids opts in).
    assert entries["Id override"]["id"] == f"{BASE}/2023/03/01/id-override"
    assert link_of(entries["Id override"]) == f"{BASE}/2023/03/01/id-override.html"
    assert entries["Guid override"]["id"] == f"{BASE}/2023/03/02/guid-override"
    slug = entries["Slug override"]
    assert link_of(slug) == f"{BASE}/2023/04/01/Moving-Day.html"
    assert slug["id"] == f"{BASE}/2023/04/01/Moving%20Day"
    custom = entries["Custom permalink"]
    assert link_of(custom) == f"{BASE}/notes/2023/custom-permalink/"
    assert custom["id"] == f"{BASE}/notes/2023/custom-permalink"
    assert link_of(entries["No Title Here"]) == f"{BASE}/2022/07/01/no-title-here.html"
    # Every post is served at its link.
    for entry in entries.values():
        response = core.get(link_of(entry))
        assert (response.status_code, response.mimetype) == (200, "text/html"), link_of(entry)
        assert lxml_html.fromstring(response.data).tag == "html"


@pytest.mark.parametrize("permalink", ["date", "pretty", "ordinal", "none",
                                       "/:categories/:year/:slug:output_ext"])
def test_site_permalink_styles(permalink: str, tmp_path: Path,
                               make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "s", {
        "_posts/2021-02-03-hello-world.md": post_text("Hello", "2021-02-03 10:00:00 +0800",
                                                      "[News]"),
    }, config=f"title: S\nurl: {BASE}\ntimezone: Asia/Shanghai\npermalink: {permalink}\n")
    client = make_app(root).test_client()
    entry = atom_of(client, "/feed.atom")[1][0]
    expected = {
        "date": "/news/2021/02/03/hello-world.html",
        "pretty": "/news/2021/02/03/hello-world/",
        "ordinal": "/news/2021/034/hello-world.html",
        "none": "/news/hello-world.html",
        "/:categories/:year/:slug:output_ext": "/news/2021/hello-world.html",
    }[permalink]
    assert link_of(entry) == BASE + expected
    folder = expected.rstrip("/").rsplit("/", 1)[0]
    assert entry["id"] == f"{BASE}{folder}/hello-world"
    assert client.get(expected).status_code == 200


def test_unpublished_post_is_left_out_everywhere(core: FlaskClient) -> None:
    assert core.get("/tag/hidden-tag.atom").status_code == 404
    assert core.get("/2023/07/01/not-published.html").status_code == 404
    news = [e["title"] for e in atom_of(core, "/category/news.atom")[1]]
    assert "Not published" not in news


# --- dates ----------------------------------------------------------------------------


DATE_TABLE = [
    # title, published instant, offset written, link path
    ("Unquoted timestamp", datetime(2020, 7, 1, 22, 3, 57, tzinfo=UTC), "+08:00",
     "/news/world/2020/07/02/unquoted-timestamp.html"),
    ("Quoted timestamp", datetime(2020, 7, 5, 22, 3, 57, tzinfo=CST), "+08:00",
     "/open%20source/2020/07/05/quoted-timestamp.html"),
    (WINTER, datetime(2021, 12, 28, 0, 7, 58, tzinfo=CST), "+08:00",
     "/%E9%9A%8F%E7%AC%94/2021/12/28/%E5%86%AC%E6%97%A5%E9%9A%8F%E7%AC%94.html"),
    ("Evening in New York", datetime(2021, 3, 2, 4, 30, tzinfo=UTC), "-05:00",
     "/news/2021/03/02/offset-minus-five.html"),
    ("ISO time with Z", datetime(2022, 1, 15, 18, tzinfo=UTC), "+00:00",
     "/2022/01/16/iso-zulu.html"),
    ("Date only", datetime(2022, 5, 4, tzinfo=CST), "+08:00",
     "/news/2022/05/04/date-only.html"),
    ("File name date", datetime(2022, 6, 10, tzinfo=CST), "+08:00",
     "/news/2022/06/10/file-name-date.html"),
]


def test_dates_and_url_days_as_jekyll(core: FlaskClient) -> None:
    entries = by_title(all_site_entries(core))
    for title, instant, offset, path in DATE_TABLE:
        entry = entries[title]
        assert entry["published"] == instant, title
        assert entry["published_text"].endswith(offset), title
        assert link_of(entry) == BASE + path, title
        assert entry["id"] == BASE + path.removesuffix(".html"), title
    unquoted = entries["Unquoted timestamp"]["published"]
    assert unquoted.isoformat() == "2020-07-02T06:03:57+08:00"
    # The explicit -05:00 post keeps its own offset in RSS too (RFC 822).
    rss = strict_xml(get_ok(core, "/feed.rss?limit=100"))
    items = {i.findtext("title"): i for i in rss.iter("item")}
    pub = items["Evening in New York"].findtext("pubDate") or ""
    assert pub == "Mon, 01 Mar 2021 23:30:00 -0500"
    assert parsedate_to_datetime(pub) == datetime(2021, 3, 2, 4, 30, tzinfo=UTC)


def test_future_posts_hidden_unless_future_true(
        core: FlaskClient, core_dir: Path, make_app: Callable[..., Flask]) -> None:
    assert "Far future" not in {e["title"] for e in all_site_entries(core)}
    assert core.get("/category/future-only.atom").status_code == 404
    assert core.get("/news/2099/01/01/far-future.html").status_code == 404
    shown = make_app(core_dir, future=True).test_client()
    entries = all_site_entries(shown)
    assert entries[0]["title"] == "Far future"
    assert entries[0]["published"] == datetime(2099, 1, 1, tzinfo=CST)
    assert [e["title"] for e in atom_of(shown, "/category/future-only.atom")[1]] == [
        "Far future"]


def test_future_true_in_config_file(tmp_path: Path,
                                    make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "s", {
        "_posts/2099-01-01-later.md": post_text("Later", "2099-01-01"),
        "_posts/2000-01-01-earlier.md": post_text("Earlier", "2000-01-01"),
    }, config="title: S\nurl: https://example.org\nfuture: true\n")
    entries = all_site_entries(make_app(root).test_client())
    assert [e["title"] for e in entries] == ["Later", "Earlier"]


# --- the URL contract -----------------------------------------------------------------


FEED_URLS = {
    "/feed.atom": "atom", "/feed.rss": "rss", "/feed.json": "json", "/feed.xml": "atom",
    "/category/news.atom": "atom", "/category/news.rss": "rss",
    "/category/news.json": "json", "/tag/alpha.atom": "atom", "/tag/alpha.rss": "rss",
    "/tag/alpha.json": "json", "/feed/news.xml": "atom", "/feed/by_tag/alpha.xml": "atom",
}


def test_url_contract(core: FlaskClient) -> None:
    content_types = {"atom": "application/atom+xml", "rss": "application/rss+xml",
                     "json": "application/feed+json"}
    for url, fmt in FEED_URLS.items():
        response = core.get(url)
        assert response.status_code == 200, url
        assert response.mimetype == content_types[fmt], url
        if fmt == "json":
            validate_json_feed(response.data)
        else:
            root = strict_xml(response.data)
            assert root.tag == (f"{A}feed" if fmt == "atom" else "rss"), url
            assert not feedparser.parse(response.data).bozo, url
    # The jekyll-feed paths answer the same Atom feed as ours.
    assert get_ok(core, "/feed.xml") == get_ok(core, "/feed.atom")
    assert get_ok(core, "/feed/news.xml") == get_ok(core, "/category/news.atom")
    assert get_ok(core, "/feed/by_tag/alpha.xml") == get_ok(core, "/tag/alpha.atom")
    for url in ("/", "/category/news.html", "/tag/alpha.html"):
        response = core.get(url)
        assert (response.status_code, response.mimetype) == (200, "text/html"), url
        assert lxml_html.fromstring(response.data).tag == "html"
    opml = core.get("/feeds.opml")
    assert opml.status_code == 200 and strict_xml(opml.data).tag == "opml"


@pytest.mark.parametrize("url", [
    "/category/nope.atom", "/category/nope.rss", "/category/nope.json",
    "/category/nope.html", "/tag/nope.atom", "/tag/nope.rss", "/tag/nope.json",
    "/tag/nope.html", "/feed/nope.xml", "/feed/by_tag/nope.xml",
    "/tag/news.atom",  # a category, not a tag
    "/category/%E4%B8%8D%E5%AD%98%E5%9C%A8.atom", "/tag/不存在.rss",
])
def test_unknown_category_or_tag_is_404_never_an_empty_feed(core: FlaskClient,
                                                            url: str) -> None:
    response = core.get(url)
    assert response.status_code == 404
    assert response.mimetype == "text/plain"


def test_chinese_names_raw_percent_encoded_nfc_and_nfd(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    nfd = unicodedata.normalize("NFD", "Café 随笔")
    nfc = unicodedata.normalize("NFC", "Café 随笔")
    assert nfd != nfc
    hangul_nfd = unicodedata.normalize("NFD", "한국어")
    root = write_site(tmp_path / "s", {
        "_posts/2022-01-01-one.md": post_text(
            "One", "2022-01-01 10:00:00 +0800", json.dumps([nfd], ensure_ascii=False),
            json.dumps(["城市", hangul_nfd], ensure_ascii=False)),
        "_posts/2022-01-02-two.md": post_text(
            "Two", "2022-01-02 10:00:00 +0800", json.dumps([nfc], ensure_ascii=False),
            json.dumps(["城市", "한국어"], ensure_ascii=False)),
    })
    client = make_app(root).test_client()
    for kind, name, others in (("category", nfc, [nfd]), ("tag", "城市", []),
                               ("tag", "한국어", [hangul_nfd])):
        canonical = get_ok(client, f"/{kind}/{name_to_segment(name)}.atom")
        root_el, entries = atom_of(client, f"/{kind}/{name_to_segment(name)}.atom")
        assert [e["title"] for e in entries] == ["Two", "One"], name
        title = f"测试站 Test Site · {unicodedata.normalize('NFC', name)}"
        assert root_el.findtext(f"{A}title") == title
        for form in [name, *others]:
            raw = get_ok(client, f"/{kind}/{form}.atom")
            encoded = get_ok(client, f"/{kind}/{name_to_segment(form)}.atom")
            lower_hex = re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(),
                               name_to_segment(form))
            lower = get_ok(client, f"/{kind}/{lower_hex}.atom")
            assert raw == canonical == encoded == lower, (kind, form)
        jekyll = "/feed/by_tag/" if kind == "tag" else "/feed/"
        assert get_ok(client, f"{jekyll}{name}.xml") == canonical


def wire_get(server: LiveServer, target: str) -> tuple[int, bytes]:
    """GET with exactly this request target on the wire (no re-encoding)."""
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_chinese_names_on_a_real_server(
        core_app: Flask, live_server_factory: Callable[[Flask], LiveServer]) -> None:
    """A name typed raw reaches the server percent-encoded (clients encode the IRI: curl
    in lower-case hex, requests and browsers in upper case); every spelling answers the
    same feed. (Raw UTF-8 bytes in the request line never reach the app: waitress 3
    answers 400 'Bad URI' itself.)"""
    import requests

    server = live_server_factory(core_app)
    typed = requests.get(f"{server.url}/category/随笔.atom", timeout=10)
    assert typed.status_code == 200
    entries = atom_entries(strict_xml(typed.content))
    assert [e["title"] for e in entries] == [WINTER]
    for target in ("/category/%E9%9A%8F%E7%AC%94.atom", "/category/%e9%9a%8f%e7%ac%94.atom",
                   "/feed/%E9%9A%8F%E7%AC%94.xml"):
        assert wire_get(server, target) == (200, typed.content), target
    assert requests.get(f"{server.url}/tag/不存在.atom", timeout=10).status_code == 404


def test_odd_names_get_working_urls_from_index_and_opml(core: FlaskClient) -> None:
    index = lxml_html.fromstring(get_ok(core, "/"))
    anchors = {(a.text_content().strip(), a.get("href")) for a in index.iter("a")}
    hrefs = {href for _text, href in anchors}
    opml = strict_xml(get_ok(core, "/feeds.opml"))
    opml_urls: dict[str, set[str]] = {}
    for outline in opml.iter("outline"):
        if outline.get("xmlUrl"):
            opml_urls.setdefault(outline.get("title") or "", set()).add(outline.get("xmlUrl"))
    for kind, names in (("category", ODD_CATEGORIES), ("tag", ODD_TAGS)):
        for name in names:
            segment = name_to_segment(name)
            assert "/" not in segment and segment not in {".", ".."}
            html_url = f"{BASE}/{kind}/{segment}.html"
            assert (name, html_url) in anchors, (kind, name)
            assert f"{BASE}/{kind}/{segment}.atom" in hrefs, (kind, name)
            page = core.get(html_url)
            assert (page.status_code, page.mimetype) == (200, "text/html")
            assert name in lxml_html.fromstring(page.data).text_content()
            root, entries = atom_of(core, f"{BASE}/{kind}/{segment}.atom")
            assert root.findtext(f"{A}title") == f"{SITE_TITLE} · {name}"
            assert [e["title"] for e in entries] == ["Odd names"]
            assert f"{BASE}/{kind}/{segment}.atom" in opml_urls[f"{SITE_TITLE} · {name}"]
            jekyll = "/feed/by_tag/" if kind == "tag" else "/feed/"
            assert get_ok(core, f"{jekyll}{segment}.xml") == get_ok(core, f"/{kind}/{segment}.atom")


def every_feed_url(client: FlaskClient) -> list[str]:
    """The Atom URL of the site feed and of every category and tag, from the OPML."""
    opml = strict_xml(get_ok(client, "/feeds.opml"))
    return [path_of(o.get("xmlUrl")) for o in opml.iter("outline") if o.get("xmlUrl")]


def test_rss_and_atom_carry_only_ascii_absolute_urls(core: FlaskClient) -> None:
    urls = every_feed_url(core)
    assert len(urls) == 1 + 15 + 10
    for url in urls:
        atom = strict_xml(get_ok(core, url + "?limit=100"))
        for el in atom.iter(f"{A}link"):
            href = el.get("href") or ""
            assert href.isascii() and href.startswith(BASE + "/"), (url, href)
        ids = [atom.findtext(f"{A}id"), *[e.findtext(f"{A}id") for e in atom.iter(f"{A}entry")]]
        for value in ids:
            assert value and value.isascii() and ":" in value, (url, value)
        rss_url = url.removesuffix(".atom") + ".rss?limit=100"
        rss = strict_xml(get_ok(core, rss_url))
        values = [el.text or "" for el in rss.iter("link")]
        values += [el.get("href") or "" for el in rss.iter(f"{A}link")]
        assert values
        for value in values:
            assert value.isascii() and value.startswith(BASE + "/"), (rss_url, value)
        # guids are the entries' ids (isPermaLink="false"): ASCII URIs, not always links.
        for guid in rss.iter("guid"):
            assert guid.text and guid.text.isascii() and ":" in guid.text, (rss_url, guid.text)


# --- the feeds ------------------------------------------------------------------------


@pytest.fixture
def many_dir(tmp_path: Path) -> Path:
    """25 posts a day apart, in category 'all'; odd days also tagged 'odd'."""
    posts = {
        f"_posts/2022-01-{day:02d}-post-{day:02d}.md": post_text(
            f"Post {day:02d}", f"2022-01-{day:02d} 12:00:00 +0800", "[all]",
            "[odd]" if day % 2 else "[]")
        for day in range(1, 26)
    }
    return write_site(tmp_path / "many", posts)


def test_newest_first_and_posts_limit_default_10(
        many_dir: Path, make_app: Callable[..., Flask]) -> None:
    # jekyll-feed's default: a migrated site's readers see the same ten entries.
    client = make_app(many_dir).test_client()
    for url in ("/feed.atom", "/category/all.atom"):
        entries = atom_of(client, url)[1]
        assert [e["title"] for e in entries] == [f"Post {d:02d}" for d in range(25, 15, -1)]
        dates = [e["published"] for e in entries]
        assert dates == sorted(dates, reverse=True)
    assert len(feedparser.parse(get_ok(client, "/feed.rss")).entries) == 10
    assert len(validate_json_feed(get_ok(client, "/feed.json"))["items"]) == 10
    page2 = atom_of(client, "/feed.atom?page=2")[1]
    assert [e["title"] for e in page2] == [f"Post {d:02d}" for d in range(15, 5, -1)]
    page3 = atom_of(client, "/feed.atom?page=3")[1]
    assert [e["title"] for e in page3] == [f"Post {d:02d}" for d in range(5, 0, -1)]
    assert client.get("/feed.atom?page=4").status_code == 404


def test_posts_limit_from_config_and_limit_query(
        many_dir: Path, make_app: Callable[..., Flask]) -> None:
    config = (many_dir / "_config.yml").read_text("utf-8") + "feed:\n  posts_limit: 7\n"
    (many_dir / "_config.yml").write_text(config, "utf-8")
    client = make_app(many_dir, max_limit=12).test_client()
    assert len(atom_of(client, "/feed.atom")[1]) == 7
    assert len(atom_of(client, "/tag/odd.atom")[1]) == 7
    assert len(validate_json_feed(get_ok(client, "/feed.json"))["items"]) == 7
    limited = atom_of(client, "/feed.atom?limit=3")[1]
    assert [e["title"] for e in limited] == ["Post 25", "Post 24", "Post 23"]
    assert len(atom_of(client, "/feed.atom?limit=50")[1]) == 12  # clamped to max_limit
    assert len(strict_xml(get_ok(client, "/feed.rss?limit=2")).findall(
        "channel/item")) == 2
    for bad in ("0", "-1", "abc", "2.5", ""):
        response = client.get(f"/feed.atom?limit={bad}")
        assert (response.status_code, response.mimetype) == (400, "text/plain"), bad


def test_atom_feed_metadata(many_dir: Path, make_app: Callable[..., Flask]) -> None:
    client = make_app(many_dir).test_client()
    root, entries = atom_of(client, "/feed.atom")
    assert root.findtext(f"{A}id") == f"{BASE}/feed.atom"
    assert root.findtext(f"{A}title") == "测试站 Test Site"
    links = {(link.get("rel"), link.get("href")) for link in root.findall(f"{A}link")}
    assert ("self", f"{BASE}/feed.atom") in links
    assert ("alternate", f"{BASE}/") in links
    updated = datetime.fromisoformat(root.findtext(f"{A}updated") or "")
    assert updated == entries[0]["updated"] == max(e["updated"] for e in entries)

    root, entries = atom_of(client, "/tag/odd.atom")
    assert root.findtext(f"{A}id") == f"{BASE}/tag/odd.atom"
    assert root.findtext(f"{A}title") == "测试站 Test Site · odd"
    links = {(link.get("rel"), link.get("href")) for link in root.findall(f"{A}link")}
    assert ("self", f"{BASE}/tag/odd.atom") in links
    assert ("alternate", f"{BASE}/tag/odd.html") in links
    assert datetime.fromisoformat(root.findtext(f"{A}updated") or "") == entries[0]["updated"]

    # The jekyll-feed path serves the same feed; its id is the canonical URL.
    assert strict_xml(get_ok(client, "/feed/all.xml")).findtext(f"{A}id") == (
        f"{BASE}/category/all.atom")
    # A later page keeps the feed's id; its self link is the page.
    root, _ = atom_of(client, "/feed.atom?page=2")
    assert root.findtext(f"{A}id") == f"{BASE}/feed.atom"
    links = {(link.get("rel"), link.get("href")) for link in root.findall(f"{A}link")}
    assert ("self", f"{BASE}/feed.atom?page=2") in links


def test_atom_entries(core: FlaskClient) -> None:
    root, entries = atom_of(core, "/feed.atom?limit=100")
    overridden = {"Slug override", "Custom permalink"}
    for entry in entries:
        link = link_of(entry)
        if entry["title"] not in overridden:
            assert entry["id"] == re.sub(r"\.(html|htm|txt)$", "", link), entry["title"]
        assert entry["updated"] >= entry["published"]
        assert entry["author"] is not None and entry["author"][0]
        assert entry["content_type"] == "html"
        assert entry["content"] and entry["summary"]
    news = by_title(entries)["Unquoted timestamp"]
    assert news["categories"] == ["news", "world", "alpha", "红网新闻"]
    parsed = feedparser.parse(get_ok(core, "/feed.atom?limit=100"))
    assert not parsed.bozo
    assert [e.title for e in parsed.entries] == [e["title"] for e in entries]
    assert len(root.findall(f"{A}entry")) == len(VISIBLE)


def test_same_content_same_bytes_on_two_instances(
        core: FlaskClient, core_dir: Path, make_app: Callable[..., Flask]) -> None:
    other = make_app(core_dir).test_client()
    for url in ("/feed.atom", "/feed.rss", "/feed.json", "/feed.xml", "/category/news.atom",
                "/tag/%E7%BA%A2%E7%BD%91%E6%96%B0%E9%97%BB.rss", "/feeds.opml"):
        first, second = core.get(url), other.get(url)
        assert first.status_code == second.status_code == 200
        assert first.data == second.data, url
        assert first.headers["ETag"] == second.headers["ETag"], url


def test_rss_channel_and_items(core: FlaskClient) -> None:
    rss = strict_xml(get_ok(core, "/category/news.rss"))
    assert rss.tag == "rss" and rss.get("version") == "2.0"
    channel = rss.find("channel")
    assert channel is not None
    assert channel.findtext("title") == f"{SITE_TITLE} · news"
    assert channel.findtext("link") == f"{BASE}/category/news.html"
    assert channel.findtext("description") == "Posts that exercise the core rules"
    self_links = [el.get("href") for el in channel.findall(f"{A}link")
                  if el.get("rel") == "self"]
    assert self_links == [f"{BASE}/category/news.rss"]
    items = channel.findall("item")
    newest = max(parsedate_to_datetime(i.findtext("pubDate") or "") for i in items)
    assert parsedate_to_datetime(channel.findtext("lastBuildDate") or "") >= newest
    atom_entries_by_title = by_title(atom_of(core, "/category/news.atom")[1])
    assert [i.findtext("title") for i in items] == list(atom_entries_by_title)
    for item in items:
        entry = atom_entries_by_title[item.findtext("title")]
        link = item.findtext("link")
        assert link == link_of(entry)
        guid = item.find("guid")
        # The Atom entry's id, not a permalink: one id per post in every format.
        assert guid is not None and guid.get("isPermaLink") == "false"
        assert guid.text == entry["id"] and guid.text != link
        assert parsedate_to_datetime(item.findtext("pubDate") or "") == entry["published"]
        assert [c.text for c in item.findall("category")] == entry["categories"]
        assert item.findtext("description") == entry["summary"]
        assert item.findtext(f"{CONTENT_NS}encoded") == entry["content"]


def test_json_feed(core: FlaskClient) -> None:
    feed = validate_json_feed(get_ok(core, "/tag/alpha.json"))
    assert feed["version"] == "https://jsonfeed.org/version/1.1"
    assert feed["title"] == f"{SITE_TITLE} · alpha"
    assert feed["home_page_url"] == f"{BASE}/tag/alpha.html"
    assert feed["feed_url"] == f"{BASE}/tag/alpha.json"
    atom = atom_of(core, "/tag/alpha.atom")[1]
    assert [i["title"] for i in feed["items"]] == [e["title"] for e in atom]
    for item, entry in zip(feed["items"], atom, strict=True):
        assert item["id"] == entry["id"]
        assert item["url"] == link_of(entry)
        assert datetime.fromisoformat(item["date_published"]) == entry["published"]
        assert datetime.fromisoformat(item["date_modified"]) == entry["updated"]
        assert item["content_html"] == entry["content"]
        assert item["summary"] == entry["summary"]
        assert item["tags"] == entry["categories"]


def test_every_atom_feed_passes_the_relax_ng_schema(core: FlaskClient, tmp_path: Path) -> None:
    docs = {url: get_ok(core, url) for url in every_feed_url(core)}
    docs["/feed.xml"] = get_ok(core, "/feed.xml")
    docs["/feed.atom?limit=5&page=2"] = get_ok(core, "/feed.atom?limit=5&page=2")
    docs["/feed/by_tag/alpha.xml"] = get_ok(core, "/feed/by_tag/alpha.xml")
    assert len(docs) == 29
    validate_atom_many(docs, tmp_path)


# --- content and hostile text -----------------------------------------------------------


def content_urls(html_text: str) -> list[str]:
    doc = lxml_html.fragment_fromstring(html_text, create_parent="div")
    return [el.get("href") or el.get("src") for el in doc.iter()
            if el.get("href") is not None or el.get("src") is not None]


def test_every_url_inside_content_is_absolute(core: FlaskClient) -> None:
    page = f"{BASE}/2023/06/01/"
    expected = [
        f"{page}other.html", f"{BASE}/root/page.html", "https://cdn.example.net/x.js",
        f"{BASE}/%E6%A0%87%E7%AD%BE/%E9%A1%B5.html", f"{page}pics/a.png",
        f"{BASE}/img/b.png", "https://absolute.example.com/y",
    ]
    atom = by_title(atom_of(core, "/tag/escapes.atom")[1])["Q&A ]]> 1 < 2 & done"]
    assert content_urls(atom["content"]) == expected
    rss = strict_xml(get_ok(core, "/tag/escapes.rss")).find("channel/item")
    assert rss is not None
    assert content_urls(rss.findtext(f"{CONTENT_NS}encoded") or "") == expected
    item = validate_json_feed(get_ok(core, "/tag/escapes.json"))["items"][0]
    assert content_urls(item["content_html"]) == expected
    # Nothing in any post's content is relative.
    for entry in all_site_entries(core):
        for url in content_urls(entry["content"]):
            assert urlsplit(url).scheme in {"http", "https"}, (entry["title"], url)


def test_hostile_text_never_breaks_the_documents(core: FlaskClient) -> None:
    title = "Q&A ]]> 1 < 2 & done"
    atom = by_title(atom_of(core, "/tag/escapes.atom")[1])[title]
    body = lxml_html.fragment_fromstring(atom["content"], create_parent="div")
    assert body.xpath("string(p[1])") == "Text with ]]> and a stray < and & in it."
    assert atom["summary"] == "Text with ]]> and a stray < and & in it."
    rss = strict_xml(get_ok(core, "/tag/escapes.rss"))
    assert rss.findtext("channel/item/title") == title
    # RSS's description is HTML to readers: the plain-text summary goes in escaped, so
    # what a reader shows is the summary's text, '<' and '&' included.
    shown = lxml_html.fragment_fromstring(rss.findtext("channel/item/description"),
                                          create_parent="div")
    assert shown.text_content() == atom["summary"] and len(shown) == 0
    item = validate_json_feed(get_ok(core, "/tag/escapes.json"))["items"][0]
    assert item["title"] == title
    for url in ("/tag/escapes.atom", "/tag/escapes.rss"):
        assert not feedparser.parse(get_ok(core, url)).bozo


def test_xml_illegal_characters_are_dropped(tmp_path: Path,
                                            make_app: Callable[..., Flask]) -> None:
    root = tmp_path / "s"
    write_site(root, {})
    post = (b'---\ntitle: "Bell\\x07 and\\x1b escape"\ndate: 2022-01-01 10:00:00 +0800\n'
            b"tags: [ctl]\n---\nBody \x01with\x08 controls\x0b and \x0c feeds ]]> & <\n")
    (root / "_posts").mkdir()
    (root / "_posts" / "2022-01-01-controls.md").write_bytes(post)
    client = make_app(root).test_client()
    entries = atom_of(client, "/tag/ctl.atom")[1]
    assert entries[0]["title"] == "Bell and escape"
    text = lxml_html.fragment_fromstring(entries[0]["content"], create_parent="div")
    assert text.xpath("string(.)").strip() == "Body with controls and  feeds ]]> & <"
    rss = strict_xml(get_ok(client, "/tag/ctl.rss"))
    assert rss.findtext("channel/item/title") == "Bell and escape"
    item = validate_json_feed(get_ok(client, "/tag/ctl.json"))["items"][0]
    assert item["title"] == "Bell and escape"
    assert json.loads(get_ok(client, "/healthz"))["rejected"] == 0


# --- base URL -------------------------------------------------------------------------


def feed_id(client: FlaskClient, url: str = "/feed.atom", **kwargs: Any) -> str:
    return strict_xml(get_ok(client, url, **kwargs)).findtext(f"{A}id") or ""


def test_base_url_from_url_and_baseurl(tmp_path: Path,
                                       make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "s", {
        "_posts/2022-01-01-x.md": post_text("X", "2022-01-01", "[随笔]", "[t]",
                                            "[rel](y.html)"),
    }, config="title: S\nurl: https://example.org/\nbaseurl: /blog/\n"
              "timezone: Asia/Shanghai\n")
    client = make_app(root).test_client()
    # Served with and without the prefix (behind a proxy that keeps or strips it).
    assert get_ok(client, "/blog/feed.atom") == get_ok(client, "/feed.atom")
    root_el, entries = atom_of(client, "/blog/category/%E9%9A%8F%E7%AC%94.atom")
    assert root_el.findtext(f"{A}id") == (
        "https://example.org/blog/category/%E9%9A%8F%E7%AC%94.atom")
    link = "https://example.org/blog/%E9%9A%8F%E7%AC%94/2022/01/01/x.html"
    assert link_of(entries[0]) == link
    assert content_urls(entries[0]["content"]) == [
        "https://example.org/blog/%E9%9A%8F%E7%AC%94/2022/01/01/y.html"]
    assert client.get(path_of(link)).status_code == 200


def test_non_ascii_baseurl_is_percent_encoded(tmp_path: Path,
                                              make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "s", {
        "_posts/2022-01-01-x.md": post_text("X", "2022-01-01", "[]"),
    }, config="title: S\nurl: https://example.org\nbaseurl: /博客\n")
    client = make_app(root).test_client()
    prefix = "https://example.org/%E5%8D%9A%E5%AE%A2"
    assert feed_id(client) == f"{prefix}/feed.atom"
    assert get_ok(client, "/博客/feed.atom") == get_ok(client, "/feed.atom")
    rss = strict_xml(get_ok(client, "/feed.rss"))
    assert rss.findtext("channel/item/link") == f"{prefix}/2022/01/01/x.html"


def test_base_url_moves_the_feeds_but_not_the_entries(site_dir: Path,
                                                      make_app: Callable[..., Flask]) -> None:
    plain = atom_of(make_app(site_dir).test_client(), "/feed.atom")[1]
    client = make_app(site_dir, base_url="https://feeds.example.net/mirror/").test_client()
    assert feed_id(client) == "https://feeds.example.net/mirror/feed.atom"
    entries = atom_of(client, "/feed.atom")[1]
    # Entry ids and links stay the site's (url + baseurl), as jekyll-feed wrote them.
    assert [(e["id"], link_of(e)) for e in entries] == [(e["id"], link_of(e)) for e in plain]
    assert not any("feeds.example.net" in e["id"] + link_of(e) for e in entries)


def test_front_matter_ids_setting_opts_in(core_dir: Path,
                                          make_app: Callable[..., Flask]) -> None:
    client = make_app(core_dir, front_matter_ids=True).test_client()
    entries = by_title(all_site_entries(client))
    assert entries["Id override"]["id"] == "urn:uuid:6e8bc430-9c3a-11d9-9669-0800200c9a66"
    assert entries["Guid override"]["id"] == "tag:example.org,2023:guid-override"


def test_feeds_base_url_environment_variable(site_dir: Path) -> None:
    settings = load_settings({"content": str(site_dir), "watch": False},
                             environ={"FEEDS_BASE_URL": "https://env.example.net"})
    application = create_app(settings, watch=False)
    try:
        assert feed_id(application.test_client()) == "https://env.example.net/feed.atom"
    finally:
        application.extensions["feeds"].stop()
    # A flag (given setting) wins over the environment.
    flagged = load_settings({"content": str(site_dir), "base_url": "https://flag.example"},
                            environ={"FEEDS_BASE_URL": "https://env.example.net"})
    assert flagged.site_base == "https://flag.example"


def test_without_configured_url_the_request_host_is_used(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "s", {
        "_posts/2022-01-01-x.md": post_text("X", "2022-01-01", "[news]"),
    }, config="title: S\n")
    client = make_app(root).test_client()
    assert feed_id(client, base_url="http://feeds.test:8080") == "http://feeds.test:8080/feed.atom"
    assert feed_id(client, base_url="https://other.test") == "https://other.test/feed.atom"
    entries = atom_of(client, "/feed.atom")[1]
    assert link_of(entries[0]) == "http://localhost/news/2022/01/01/x.html"
    opml = strict_xml(get_ok(client, "/feeds.opml", base_url="http://feeds.test:8080"))
    urls = [o.get("xmlUrl") for o in opml.iter("outline") if o.get("xmlUrl")]
    assert urls and all(u.startswith("http://feeds.test:8080/") for u in urls)


# --- OPML and health --------------------------------------------------------------------


def test_opml_lists_every_feed_with_titles(core: FlaskClient) -> None:
    opml = strict_xml(get_ok(core, "/feeds.opml"))
    assert opml.tag == "opml" and opml.get("version") == "2.0"
    assert opml.findtext("head/title") == SITE_TITLE
    body = opml.find("body")
    assert body is not None
    groups = {g.get("text"): g.findall("outline") for g in body}
    assert set(groups) == {"Site", "Categories", "Tags"}
    health = json.loads(get_ok(core, "/healthz"))
    assert len(groups["Site"]) == 1
    assert len(groups["Categories"]) == health["categories"] == 15
    assert len(groups["Tags"]) == health["tags"] == 10
    assert groups["Site"][0].get("xmlUrl") == f"{BASE}/feed.atom"
    assert groups["Site"][0].get("title") == SITE_TITLE
    names = {"Categories": set(), "Tags": set()}  # type: dict[str, set[str]]
    for group in ("Categories", "Tags"):
        for outline in groups[group]:
            title = outline.get("title") or ""
            assert outline.get("text") == title and title.startswith(f"{SITE_TITLE} · ")
            names[group].add(title.removeprefix(f"{SITE_TITLE} · "))
            feed_root, entries = atom_of(core, outline.get("xmlUrl") or "")
            assert feed_root.findtext(f"{A}title") == title
            assert entries
            assert core.get(outline.get("htmlUrl") or "").status_code == 200
    assert names["Categories"] >= {"news", "world", "Open Source", "随笔", "a", "b", "杂谈",
                                   *ODD_CATEGORIES}
    assert names["Tags"] >= {"alpha", "beta", "红网新闻", "two words", "ext", "escapes",
                             *ODD_TAGS}


def test_healthz(core: FlaskClient) -> None:
    response = core.get("/healthz")
    assert response.status_code == 200
    assert response.mimetype == "application/json"
    health = response.get_json()
    assert health["status"] == "ok"
    assert health["posts"] == len(VISIBLE)
