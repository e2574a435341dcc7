"""Atom and RSS name an XSLT for browsers (an xml-stylesheet processing instruction right
after the XML declaration), and are otherwise the feeds they were: the same content types,
feedparser and the RELAX NG schema accept them and read the same entries as without the
instruction. The XSLT itself, run by libxslt (the XSLT engine browsers use), shows the
feed's title and description, the note with the address to subscribe to, and the entries
with their dates and links. A site's own feed.xslt.xml wins, as with jekyll-feed, in the
live service and in `feeds build`. Chromium is in test_feed_browser.py."""



from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

import feedparser
import pytest
import requests
from flask import Flask
from lxml import etree
from lxml import html as lxml_html

from feeds import create_app, export
from feeds.model import Author, Body, Post
from feeds.render import Entry, FeedMeta, render_atom, render_rss

from .conftest import LiveServer, make_settings, post_text, validate_atom_many, write_site

Factory = Callable[..., LiveServer]
BASE = "https://example.org"
TAG = "城市"
CONFIG = f"""\
title: 茶歇笔记
description: 城市见闻与一杯红茶的工夫
url: {BASE}
lang: zh-CN
author: 林小满
"""
POSTS = {
    f"_posts/2022-0{n}-0{n}-post-{n}.md": post_text(
        f"第 {n} 篇 “夜班车”", f"2022-0{n}-0{n} 0{n}:30:00 +0800", "[news]",
        f"[{TAG}, python]" if n % 2 else f"[{TAG}]", body=f"第 {n} 篇的正文。")
    for n in range(1, 6)
}
FEED_PATHS = ["/feed.atom", "/feed.rss", "/feed.xml", "/category/news.atom",
              "/category/news.rss", f"/tag/{quote(TAG)}.atom", f"/tag/{quote(TAG)}.rss",
              "/feed/news.xml", "/feed/by_tag/python.xml", "/feed.atom?limit=2&page=2",
              "/feed.rss?limit=2&page=3"]


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    started: list[Flask] = []
    yield started
    for app in started:
        app.extensions["feeds"].stop()


def serve(factory: Factory, folder: Path, apps: list[Flask]) -> LiveServer:
    app = create_app(make_settings(folder), watch=False)
    apps.append(app)
    return factory(app)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site", POSTS, CONFIG)


@pytest.fixture
def server(site: Path, live_server_factory: Factory, apps: list[Flask]) -> LiveServer:
    return serve(live_server_factory, site, apps)


def stylesheet_pi(data: bytes) -> etree._ProcessingInstruction:
    """The document's one xml-stylesheet instruction, which must come first."""
    root = etree.fromstring(data)
    before = []
    node = root.getprevious()
    while node is not None:
        before.append(node)
        node = node.getprevious()
    assert len(before) == 1, before
    (pi,) = before
    assert isinstance(pi, etree._ProcessingInstruction) and pi.target == "xml-stylesheet"
    assert pi.get("type") == "text/xsl"
    return pi


def without_pi(data: bytes) -> bytes:
    root = etree.fromstring(data)
    return etree.tostring(root, xml_declaration=True, encoding="utf-8")


def reader_view(data: bytes) -> dict[str, Any]:
    """What feedparser reads: the feed's fields and every entry's."""
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.get("bozo_exception")
    keys = ("id", "link", "title", "published", "updated", "summary", "author")
    return {
        "feed": {k: parsed.feed.get(k) for k in ("title", "subtitle", "link", "id")},
        "entries": [{**{k: e[k] for k in keys if k in e},
                     "tags": [t.term for t in e.get("tags", [])],
                     "content": [c.value for c in e.get("content", [])]}
                    for e in parsed.entries],
    }


def test_atom_and_rss_name_the_xslt_and_keep_their_content_types(
        server: LiveServer, tmp_path: Path) -> None:
    atoms: dict[str, bytes] = {}
    xslt_urls = set()
    with requests.Session() as http:
        for path in FEED_PATHS:
            response = http.get(server.url + path, timeout=60)
            assert response.status_code == 200, path
            rss = ".rss" in path
            assert response.headers["Content-Type"] == (
                "application/rss+xml; charset=utf-8" if rss
                else "application/atom+xml; charset=utf-8"), path
            xslt_urls.add(stylesheet_pi(response.content).get("href"))
            # The same feed for readers: feedparser reads exactly what it reads without
            # the instruction.
            view = reader_view(response.content)
            assert view == reader_view(without_pi(response.content)), path
            assert view["entries"], path
            if not rss:
                atoms[path] = response.content
        # JSON Feed has nothing of the kind.
        assert "stylesheet" not in http.get(server.url + "/feed.json", timeout=60).text
        validate_atom_many(atoms, tmp_path)
        (href,) = xslt_urls
        assert href.startswith(BASE + "/static/feed.xsl?v=")
        xsl = http.get(server.url + href.removeprefix(BASE), timeout=60)
        assert xsl.status_code == 200
        assert xsl.headers["Content-Type"] == "application/xslt+xml"
        etree.XSLT(etree.fromstring(xsl.content))  # a stylesheet libxslt compiles


def test_the_instruction_is_all_that_changes() -> None:
    """Rendered with and without a stylesheet, the documents are the same but for it."""
    when = datetime(2022, 3, 1, 9, 30, tzinfo=UTC)
    post = Post(source="_posts/a.md", stamp=(0, 0, 0), markup="markdown", slug="a", title="A",
                date=when, updated=when, categories=("news",), tags=("城市",),
                url="/news/a.html", entry_id=BASE + "/news/a")
    entry = Entry(post=post, link=BASE + "/news/a.html", entry_id=BASE + "/news/a",
                  title="A & <b>", body=Body(html="<p>x</p>", summary="x"),
                  author=Author("林小满"))
    # A hostile URL (quotes, '?>', '&', '<') must neither end the instruction nor break
    # the document.
    href = BASE + '/static/feed.xsl?v=1&x="?><evil/>'
    meta = FeedMeta(title="T", subtitle="S", feed_id=BASE + "/feed.atom",
                    self_url=BASE + "/feed.atom", html_url=BASE + "/",
                    lang="zh-CN", author=None, updated=when, stylesheet=href)
    for render in (render_atom, render_rss):
        styled = render(meta, [entry])
        plain = render(replace(meta, stylesheet=""), [entry])
        pi = stylesheet_pi(styled)
        assert pi.get("href") == BASE + "/static/feed.xsl?v=1%26x=%22?%3E%3Cevil/%3E"
        assert etree.fromstring(plain).getprevious() is None
        assert without_pi(styled) == without_pi(plain)
        assert not list(etree.fromstring(styled).iter("evil"))


def transform(server: LiveServer, path: str) -> tuple[Any, bytes]:
    """The page libxslt makes of a feed with the XSLT its instruction names."""
    data = requests.get(server.url + path, timeout=60).content
    href = stylesheet_pi(data).get("href") or ""
    xsl = requests.get(server.url + href.removeprefix(BASE), timeout=60).content
    result = etree.XSLT(etree.fromstring(xsl))(etree.fromstring(data))
    return lxml_html.fromstring(str(result)), data


@pytest.mark.parametrize("path", ["/feed.atom", f"/tag/{quote(TAG)}.rss",
                                  "/feed.rss?limit=2&page=2", "/feed.atom?limit=2&page=3"])
def test_the_xslt_shows_title_note_address_and_entries(server: LiveServer,
                                                       path: str) -> None:
    page, data = transform(server, path)
    feed = feedparser.parse(data)
    title = feed.feed.title
    assert page.findtext(".//title") == title
    assert page.xpath("string(//h1)").strip() == title
    assert page.xpath("string(//p[@class='tagline'])") == "城市见闻与一杯红茶的工夫"
    # The note, in the site's language, with the address of the feed's first page.
    note = page.xpath("string(//section[@class='feed-note'])")
    assert "这是一个订阅源" in note and "阅读器" in note
    stem = path.partition("?")[0]
    first_page = BASE + stem + ("?limit=2" if "limit" in path else "")
    assert page.xpath("string(//code[@class='feed-url'])") == first_page
    # The entries, in order, with their links and their dates.
    assert page.xpath("//ol[@class='posts']/li/a[@class='title']/@href") == [
        e.link for e in feed.entries]
    assert page.xpath("//ol[@class='posts']/li/a[@class='title']/text()") == [
        e.title for e in feed.entries]
    # Each post's own date (post n is dated 2022-0n-0n, early morning at +08:00, which
    # is the day before in UTC).
    numbers = [e.title.split()[1] for e in feed.entries]
    assert page.xpath("//ol[@class='posts']/li//time/text()") == [
        f"2022-0{n}-0{n}" for n in numbers]
    assert page.xpath("//html/@lang") == ["zh-CN"]
    # The site's style goes with it (fonts, dark mode), and nothing is fetched from
    # elsewhere: no script, no external stylesheet.
    style = page.xpath("string(//style)")
    assert "prefers-color-scheme: dark" in style and "Noto Sans CJK SC" in style
    assert not page.xpath("//script | //link[@rel='stylesheet'] | //img")


@pytest.mark.parametrize(("lang", "words"), [("en", "This is a feed."),
                                             ("zh-TW", "這是一個訂閱源"),
                                             ("zh-Hans-CN", "这是一个订阅源")])
def test_the_note_speaks_the_sites_language(tmp_path: Path, live_server_factory: Factory,
                                            apps: list[Flask], lang: str,
                                            words: str) -> None:
    folder = write_site(tmp_path / "site", POSTS, CONFIG.replace("zh-CN", lang))
    server = serve(live_server_factory, folder, apps)
    for path in ("/feed.atom", "/feed.rss"):
        page, _ = transform(server, path)
        assert words in page.xpath("string(//section[@class='feed-note'])"), path
        assert ("Latest posts" if lang == "en" else "最新文章") == page.xpath("string(//h2)")


OWN_XSLT = b"""<?xml version="1.0" encoding="utf-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:output method="html"/>
  <xsl:template match="/"><html><body><p id="own">the site's own</p></body></html>
  </xsl:template>
</xsl:stylesheet>
"""


def test_a_sites_own_feed_xslt_wins(site: Path, tmp_path: Path,
                                    live_server_factory: Factory, apps: list[Flask]) -> None:
    (site / "feed.xslt.xml").write_bytes(OWN_XSLT)
    server = serve(live_server_factory, site, apps)
    for path in FEED_PATHS:
        data = requests.get(server.url + path, timeout=60).content
        assert stylesheet_pi(data).get("href") == BASE + "/feed.xslt.xml", path
    page, _ = transform(server, "/feed.atom")
    assert page.xpath("string(//p[@id='own'])") == "the site's own"

    # `feeds build` writes it too, with the shipped files, as the service serves them.
    out = tmp_path / "out"
    assert export.run(make_settings(site), str(out)).failed == 0
    assert (out / "feed.xslt.xml").read_bytes() == OWN_XSLT
    for name in ("feed.xsl", "style.css"):
        served = requests.get(f"{server.url}/static/{name}", timeout=60,
                              headers={"Accept-Encoding": "identity"}).content
        assert (out / "static" / name).read_bytes() == served
    # Without one, the build has none and the feeds name the shipped XSLT.
    (site / "feed.xslt.xml").unlink()
    assert export.run(make_settings(site), str(out)).failed == 0
    assert not (out / "feed.xslt.xml").exists()
    assert stylesheet_pi((out / "feed.atom").read_bytes()).get("href", "").startswith(
        BASE + "/static/feed.xsl?v=")
