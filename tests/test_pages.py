"""The HTML side, black-box through the Flask test client: every page parses as HTML5 in
html5lib's strict mode; the index, category, tag and post pages show what a reader needs
(titles, dates in the site's zone, authors, categories and tags with counts, feed links
that answer); list pages page; text is escaped; no scripts, no outside resources.

The content folder is written here from ``POSTS``, and what each page must show is
worked out from that same list."""

# ruff: noqa: RUF001  (Chinese text: full-width punctuation is meant)

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit
from zoneinfo import ZoneInfo

import feedparser
import html5lib
import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from feeds import create_app
from feeds.pages import labels_for

from .conftest import make_settings, write_site

BASE = "https://example.org"
ZONE = "Asia/Shanghai"
SITE_TITLE = "茶 <与> 代码 & Co"
SITE_AUTHOR = "站长老林"
EVIL_TITLE = "深夜 <script>alert(1)</script> & “茶”"


@dataclass(frozen=True)
class Spec:
    """One post of the test site, and so what its pages must show."""

    slug: str
    title: str
    when: datetime
    categories: tuple[str, ...]
    tags: tuple[str, ...]
    body: str = "Hello."
    front: dict[str, Any] = field(default_factory=dict)

    @property
    def path(self) -> str:
        return f"_posts/{self.when:%Y-%m-%d}-{self.slug}.md"

    def text(self) -> str:
        front = {"title": self.title, "date": self.when.strftime("%Y-%m-%d %H:%M:%S %z"),
                 "categories": list(self.categories), "tags": list(self.tags), **self.front}
        lines = [f"{k}: {json.dumps(v, ensure_ascii=False)}" for k, v in front.items()]
        return "---\n" + "\n".join(lines) + "\n---\n" + self.body + "\n"


def at(day: int, hour: int = 9, minute: int = 0) -> datetime:
    return datetime(2022, 1, 1, hour, minute, tzinfo=UTC) + timedelta(days=day)


POSTS = [
    # 23:30 UTC on Jan 5 is 07:30 on Jan 6 in Shanghai: the page must say the 6th.
    Spec("late-night", EVIL_TITLE, at(4, 23, 30), ("随笔",), ("红茶", "C#"),
         body="<p>正文第一段。</p>\n<script>alert('body')</script>\n"
              "<p onclick=\"alert(2)\">第二段 <a href=\"javascript:alert(3)\">链接</a></p>",
         front={"source_url": "https://example.com/origin/late-night.html"}),
    Spec("own-author", "有自己作者的文章", at(3), ("tech",), ("红茶",),
         body="Some **bold** text.",
         front={"author": {"name": "阿棠", "uri": "https://example.org/people/atang"}}),
    Spec("english", "An English Post", at(2), ("tech",), ("红茶", "python"),
         body="An English body.", front={"lang": "en", "description": "Short and sweet."}),
    Spec("first", "第一篇", at(1), ("随笔",), ("红茶",), body="最早的一篇。"),
    Spec("bad-author-link", "作者链接不安全", at(0), ("随笔",), ("杂项",),
         front={"author": {"name": "Mallory", "uri": "javascript:alert(4)"},
                "source_url": "javascript:alert(5)"}),
]
NEWEST_FIRST = sorted(POSTS, key=lambda p: p.when, reverse=True)
PAGE_SIZE = 2

CONFIG = f"""\
title: {json.dumps(SITE_TITLE, ensure_ascii=False)}
description: 一个测试用的小站：茶与代码
url: {BASE}
timezone: {ZONE}
lang: zh-CN
author: {SITE_AUTHOR}
page_size: {PAGE_SIZE}
"""


def site_folder(root: Path, posts: list[Spec] = POSTS, config: str = CONFIG) -> Path:
    return write_site(root, {p.path: p.text() for p in posts}, config)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return site_folder(tmp_path / "site")


def start(folder: Path) -> Flask:
    return create_app(make_settings(folder), watch=False)


@pytest.fixture
def pages(site: Path) -> Iterator[FlaskClient]:
    app = start(site)
    yield app.test_client()
    app.extensions["feeds"].stop()


# --- helpers ----------------------------------------------------------------------------


def path_of(url: str) -> str:
    parts = urlsplit(url)
    return parts.path + (f"?{parts.query}" if parts.query else "")


def strict_parse(data: bytes) -> etree._Element:
    """The page as an lxml tree; html5lib's strict mode raises on any parse error."""
    parser = html5lib.HTMLParser(strict=True, tree=html5lib.getTreeBuilder("lxml"),
                                 namespaceHTMLElements=False)
    doc = parser.parse(data, transport_encoding="utf-8")
    root: etree._Element = doc.getroot()
    return root


def get_page(client: FlaskClient, url: str) -> etree._Element:
    response = client.get(path_of(url))
    assert response.status_code == 200, url
    assert response.mimetype == "text/html", url
    assert response.mimetype_params.get("charset") == "utf-8"
    return strict_parse(response.data)


def text(el: etree._Element) -> str:
    return " ".join("".join(el.itertext()).split())


def one(root: etree._Element, xpath: str) -> etree._Element:
    found = root.xpath(xpath)
    assert len(found) == 1, (xpath, len(found))
    element: etree._Element = found[0]
    return element


def listed(root: etree._Element) -> list[dict[str, Any]]:
    """The posts a list page shows: title, link, time, category names."""
    out = []
    for li in root.xpath("//ol[@class='posts']/li"):
        link = one(li, ".//a[@class='title']")
        when = one(li, ".//time")
        out.append({
            "title": text(link), "url": link.get("href"), "shown": text(when),
            "datetime": datetime.fromisoformat(when.get("datetime")),
            "categories": [text(a) for a in li.xpath(".//a[contains(@class, 'chip')]")],
        })
    return out


def alternates(root: etree._Element) -> dict[str, str]:
    return {link.get("type"): link.get("href")
            for link in root.xpath("//head/link[@rel='alternate']")}


def term_url(kind: str, name: str, ext: str = "html") -> str:
    escaped = "".join(f"~{ord(c):02X}" if c in "/\\?#%~" else c for c in name)
    return f"{BASE}/{kind}/{quote(escaped, safe='~')}.{ext}"


def local(when: datetime, zone: str = ZONE) -> datetime:
    return when.astimezone(ZoneInfo(zone))


def walk(client: FlaskClient, url: str) -> tuple[list[dict[str, Any]], list[etree._Element]]:
    """Every post of a paged list, following rel=next from ``url``; and the pages."""
    seen: list[dict[str, Any]] = []
    docs: list[etree._Element] = []
    for _ in range(len(POSTS) + 2):  # bounded: never more pages than posts
        doc = get_page(client, url)
        docs.append(doc)
        seen.extend(listed(doc))
        following = doc.xpath("//nav[@class='paging']/a[@rel='next']/@href")
        if not following:
            return seen, docs
        url = following[0]
    raise AssertionError("rel=next never ends")


# --- every page is HTML5 ----------------------------------------------------------------


def all_page_urls() -> list[str]:
    urls = [f"{BASE}/", f"{BASE}/?page=2", f"{BASE}/?page=3"]
    for kind, attr in (("category", "categories"), ("tag", "tags")):
        names = Counter(n for p in POSTS for n in getattr(p, attr))
        for name, count in names.items():
            urls.append(term_url(kind, name))
            urls.extend(f"{term_url(kind, name)}?page={n}"
                        for n in range(2, -(-count // PAGE_SIZE) + 1))
    return urls


def test_every_page_is_strict_html5_and_every_post_is_reachable(pages: FlaskClient) -> None:
    post_urls: set[str] = set()
    for url in all_page_urls():
        doc = get_page(pages, url)
        assert doc.tag == "html" and doc.get("lang") == "zh-CN", url
        post_urls.update(p["url"] for p in listed(doc))
    assert len(post_urls) == len(POSTS)
    for url in post_urls:
        doc = get_page(pages, url)
        assert one(doc, "//head/meta[@name='viewport']").get("content") == (
            "width=device-width, initial-scale=1")


# --- index ------------------------------------------------------------------------------


def test_index_shows_title_description_and_the_newest_posts(pages: FlaskClient) -> None:
    doc = get_page(pages, f"{BASE}/")
    assert text(one(doc, "//head/title")) == SITE_TITLE
    assert text(one(doc, "//h1")) == SITE_TITLE
    assert text(one(doc, "//p[@class='tagline']")) == "一个测试用的小站：茶与代码"
    shown = listed(doc)
    assert [p["title"] for p in shown] == [p.title for p in NEWEST_FIRST[:PAGE_SIZE]]
    for entry, spec in zip(shown, NEWEST_FIRST, strict=False):
        assert entry["datetime"] == spec.when
        assert entry["shown"] == f"{local(spec.when):%Y-%m-%d}"
        assert entry["categories"] == list(spec.categories)


@pytest.mark.parametrize("kind,attr", [("category", "categories"), ("tag", "tags")])
def test_index_lists_every_term_with_its_count_and_feeds(pages: FlaskClient, kind: str,
                                                         attr: str) -> None:
    doc = get_page(pages, f"{BASE}/")
    section = one(doc, f"//section[h2[@id='{attr}']]")
    expected = Counter(n for p in POSTS for n in getattr(p, attr))
    rows = section.xpath(".//ul[contains(@class, 'terms')]/li")
    assert len(rows) == len(expected)
    for row in rows:
        link = one(row, "./a[@class='term']")
        name = text(link)
        assert link.get("href") == term_url(kind, name)
        count = int(re.sub(r"\D", "", text(one(row, "./span[@class='count']"))))
        assert count == expected[name], name
        feeds = {a.get("type"): a.get("href") for a in row.xpath("./span[@class='fmts']/a")}
        assert feeds == {
            "application/atom+xml": term_url(kind, name, "atom"),
            "application/rss+xml": term_url(kind, name, "rss"),
            "application/feed+json": term_url(kind, name, "json"),
        }
        # The links answer, with that name's posts.
        atom = pages.get(path_of(feeds["application/atom+xml"]))
        assert atom.status_code == 200
        parsed = feedparser.parse(atom.data)
        assert not parsed.bozo and len(parsed.entries) == expected[name]
        assert pages.get(path_of(feeds["application/rss+xml"])).status_code == 200
        assert pages.get(path_of(feeds["application/feed+json"])).status_code == 200
        assert pages.get(path_of(link.get("href"))).status_code == 200


def test_index_links_site_feeds_and_opml(pages: FlaskClient) -> None:
    doc = get_page(pages, f"{BASE}/")
    site_feeds = {"application/atom+xml": f"{BASE}/feed.atom",
                  "application/rss+xml": f"{BASE}/feed.rss",
                  "application/feed+json": f"{BASE}/feed.json"}
    assert alternates(doc) == site_feeds
    buttons = {a.get("type"): a.get("href")
               for a in doc.xpath("//header//div[@class='subscribe']/a")}
    assert buttons == {**site_feeds, "text/x-opml": f"{BASE}/feeds.opml"}
    for url in buttons.values():
        response = pages.get(path_of(url))
        assert response.status_code == 200, url
    opml = etree.fromstring(pages.get("/feeds.opml").data)
    assert len(opml.xpath("//outline[@xmlUrl]")) == 1 + len(
        {c for p in POSTS for c in p.categories}) + len({t for p in POSTS for t in p.tags})


# --- paging -----------------------------------------------------------------------------


@pytest.mark.parametrize("start_url,selection", [
    (f"{BASE}/", POSTS),
    (term_url("tag", "红茶"), [p for p in POSTS if "红茶" in p.tags]),
    (term_url("category", "随笔"), [p for p in POSTS if "随笔" in p.categories]),
])
def test_following_next_shows_each_post_once_newest_first(
        pages: FlaskClient, start_url: str, selection: list[Spec]) -> None:
    seen, docs = walk(pages, start_url)
    newest = sorted(selection, key=lambda p: p.when, reverse=True)
    assert [p["title"] for p in seen] == [p.title for p in newest]
    assert len(docs) == -(-len(selection) // PAGE_SIZE)
    # Previous links lead back the same way, page 1 by its bare URL; the head says so too.
    for n, doc in enumerate(docs, 1):
        previous = doc.xpath("//nav[@class='paging']/a[@rel='prev']/@href")
        head_prev = doc.xpath("//head/link[@rel='prev']/@href")
        if n == 1:
            assert previous == [] and head_prev == []
        else:
            expected = start_url if n == 2 else f"{start_url}?page={n - 1}"
            assert previous == [expected] == head_prev
        where = text(one(doc, "//nav[@class='paging']/span[@class='where']"))
        assert where == f"第 {n} / {len(docs)} 页"
        canonical = one(doc, "//head/link[@rel='canonical']").get("href")
        assert canonical == (start_url if n == 1 else f"{start_url}?page={n}")


@pytest.mark.parametrize("url", ["/?page=4", "/tag/%E7%BA%A2%E8%8C%B6.html?page=3",
                                 "/category/tech.html?page=2"])
def test_page_past_the_end_is_404(pages: FlaskClient, url: str) -> None:
    assert pages.get(url).status_code == 404


def test_a_list_that_fits_one_page_has_no_paging(pages: FlaskClient) -> None:
    doc = get_page(pages, term_url("category", "tech"))
    assert doc.xpath("//nav[@class='paging']") == []
    assert doc.xpath("//head/link[@rel='next' or @rel='prev']") == []


# --- category and tag pages -------------------------------------------------------------


@pytest.mark.parametrize("kind,name", [("tag", "红茶"), ("category", "随笔"), ("tag", "C#"),
                                       ("category", "tech")])
def test_term_page_shows_its_posts_and_its_feeds(pages: FlaskClient, kind: str,
                                                 name: str) -> None:
    attr = "categories" if kind == "category" else "tags"
    selection = sorted((p for p in POSTS if name in getattr(p, attr)),
                       key=lambda p: p.when, reverse=True)
    doc = get_page(pages, term_url(kind, name))
    assert text(one(doc, "//h1")) == f"{'分类' if kind == 'category' else '标签'} {name}"
    assert text(one(doc, "//p[@class='count']")) == f"{len(selection)} 篇文章"
    assert [p["title"] for p in listed(doc)] == [p.title for p in selection[:PAGE_SIZE]]
    feeds = {ext: term_url(kind, name, ext) for ext in ("atom", "rss", "json")}
    assert alternates(doc) == {"application/atom+xml": feeds["atom"],
                               "application/rss+xml": feeds["rss"],
                               "application/feed+json": feeds["json"]}
    buttons = [a.get("href") for a in doc.xpath("//main//div[@class='subscribe']/a")]
    assert buttons == list(feeds.values())
    # The term's own feed holds the same posts the page lists.
    titles = [e["title"] for e in json.loads(pages.get(path_of(feeds["json"])).data)["items"]]
    assert len(titles) == len(selection)
    crumbs = doc.xpath("//nav[@class='crumbs']//li")
    assert [text(li) for li in crumbs] == ["首页", "分类" if kind == "category" else "标签",
                                           name]
    assert crumbs[0].xpath("./a/@href") == [f"{BASE}/"]
    assert crumbs[-1].get("aria-current") == "page"


def test_term_names_match_case_insensitively_and_unknown_is_404(pages: FlaskClient) -> None:
    assert pages.get("/category/TECH.html").status_code == 200
    assert pages.get("/tag/%E4%B8%8D%E5%AD%98%E5%9C%A8.html").status_code == 404
    assert pages.get("/tag/tech.html").status_code == 404  # a category, not a tag
    assert pages.get("/tag/python.html?page=0").status_code == 400


# --- post pages -------------------------------------------------------------------------


def post_page(client: FlaskClient, spec: Spec) -> etree._Element:
    index = NEWEST_FIRST.index(spec)
    seen, _ = walk(client, f"{BASE}/")
    return get_page(client, seen[index]["url"])


def test_post_page_shows_what_a_reader_needs(pages: FlaskClient) -> None:
    spec = POSTS[0]
    doc = post_page(pages, spec)
    article = one(doc, "//article")
    assert text(one(article, ".//h1")) == spec.title
    assert text(one(doc, "//head/title")) == f"{spec.title} · {SITE_TITLE}"
    when = one(article, "./header//time")
    assert datetime.fromisoformat(when.get("datetime")) == spec.when
    assert text(when) == "2022-01-06 07:30"  # the site's zone, not UTC's 23:30 on the 5th
    assert text(one(article, ".//span[@class='author']")) == f"作者：{SITE_AUTHOR}"
    chips = {text(a): a.get("href") for a in article.xpath("./header//a[contains(@class,'chip')]")}
    assert chips == {"随笔": term_url("category", "随笔"), "#红茶": term_url("tag", "红茶"),
                     "#C#": term_url("tag", "C#")}
    for url in chips.values():  # each leads to a page that lists this post
        assert spec.title in [p["title"] for p in walk(pages, url)[0]]
    content = one(article, "./div[@class='content']")
    assert [text(p) for p in content.xpath("./p")] == ["正文第一段。", "第二段 链接"]
    origin = one(article, ".//p[@class='origin']/a")
    assert origin.get("href") == "https://example.com/origin/late-night.html"
    assert alternates(doc) == {"application/atom+xml": f"{BASE}/feed.atom",
                               "application/rss+xml": f"{BASE}/feed.rss",
                               "application/feed+json": f"{BASE}/feed.json"}
    crumbs = [text(li) for li in doc.xpath("//nav[@class='crumbs']//li")]
    assert crumbs == ["首页", "随笔", spec.title]


def test_post_body_is_sanitised(pages: FlaskClient) -> None:
    doc = post_page(pages, POSTS[0])
    content = one(doc, "//article/div[@class='content']")
    assert content.xpath(".//script") == []
    assert [a for a in content.iter() if any(k.startswith("on") for k in a.attrib)] == []
    hrefs = content.xpath(".//a/@href")
    assert not any(h.strip().lower().startswith("javascript:") for h in hrefs)


def test_post_with_its_own_author_and_language(pages: FlaskClient) -> None:
    doc = post_page(pages, POSTS[1])
    author = one(doc, "//article//span[@class='author']/a")
    assert (text(author), author.get("href")) == ("阿棠", "https://example.org/people/atang")
    assert doc.xpath("//article//p[@class='origin']") == []  # no source: no source line
    english = post_page(pages, POSTS[2])
    assert one(english, "//article").get("lang") == "en"
    assert english.get("lang") == "zh-CN"  # the page around it stays in the site's language
    assert one(english, "//head/meta[@name='description']").get("content") == "Short and sweet."


def test_unsafe_author_and_source_links_are_not_links(pages: FlaskClient) -> None:
    doc = post_page(pages, POSTS[4])
    assert text(one(doc, "//article//span[@class='author']")) == "作者：Mallory"
    assert doc.xpath("//article//span[@class='author']/a") == []
    assert doc.xpath("//article//p[@class='origin']") == []
    assert not any("javascript" in h.lower() for h in doc.xpath("//@href"))


def test_neighbour_links_walk_every_post(pages: FlaskClient) -> None:
    doc = post_page(pages, NEWEST_FIRST[0])
    titles = [text(one(doc, "//article//h1"))]
    for _ in range(len(POSTS)):
        older = doc.xpath("//nav[@class='post-nav']/a[@class='older']/@href")
        if not older:
            break
        doc = get_page(pages, older[0])
        titles.append(text(one(doc, "//article//h1")))
    assert titles == [p.title for p in NEWEST_FIRST]
    assert doc.xpath("//nav[@class='post-nav']/a[@class='newer']/@href")


# --- escaping, scripts, outside resources ------------------------------------------------


def test_markup_in_titles_and_names_is_text(pages: FlaskClient) -> None:
    for url in (f"{BASE}/", term_url("tag", "红茶")):
        doc = get_page(pages, url)
        assert EVIL_TITLE in [p["title"] for p in listed(doc)]
        assert doc.xpath("//script") == []
        assert text(one(doc, "//header//a[contains(@class, 'brand')]")) == SITE_TITLE
    raw = pages.get("/").data.decode()
    assert "&lt;script&gt;alert(1)&lt;/script&gt; &amp;" in raw  # escaped, once


def test_no_scripts_and_nothing_from_elsewhere(pages: FlaskClient) -> None:
    urls = all_page_urls()
    urls += [p["url"] for p in walk(pages, f"{BASE}/")[0]]
    for url in urls:
        doc = get_page(pages, url)
        assert doc.xpath("//script | //iframe | //object | //embed") == [], url
        assert [e.tag for e in doc.iter() if isinstance(e.tag, str)
                and any(k.lower().startswith("on") for k in e.attrib)] == [], url
        loaded = doc.xpath("//link[@rel='stylesheet']/@href | //*[@src]/@src")
        assert loaded and all(u.startswith(BASE + "/") for u in loaded), url
    href = one(get_page(pages, f"{BASE}/"), "//link[@rel='stylesheet']").get("href")
    with pages.get(path_of(href)) as style:  # a file response: close it
        assert style.status_code == 200 and style.mimetype == "text/css"
        css = style.data.decode()
        # Its URL holds a hash of its bytes, so it may be kept for a year, unchanged.
        assert re.fullmatch(r".*/static/style\.css\?v=[0-9a-f]{8}", href)
        assert style.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        etag = style.headers["ETag"]
    with pages.get(path_of(href), headers={"If-None-Match": etag}) as again:
        assert again.status_code == 304
    assert "@import" not in css and "@font-face" not in css
    assert re.findall(r"url\((?!\"?data:)", css) == []


# --- time zone and language -------------------------------------------------------------


@pytest.mark.parametrize("zone", ["Asia/Shanghai", "America/New_York", "UTC"])
def test_dates_are_shown_in_the_site_time_zone(tmp_path: Path, zone: str) -> None:
    folder = site_folder(tmp_path / "site", config=CONFIG.replace(ZONE, zone))
    app = start(folder)
    try:
        client = app.test_client()
        doc = get_page(client, f"{BASE}/")
        first = listed(doc)[0]
        spec = NEWEST_FIRST[0]
        assert first["shown"] == f"{local(spec.when, zone):%Y-%m-%d}"
        assert first["datetime"].utcoffset() == local(spec.when, zone).utcoffset()
        post = get_page(client, first["url"])
        assert text(one(post, "//article/header//time")) == (
            f"{local(spec.when, zone):%Y-%m-%d %H:%M}")
    finally:
        app.extensions["feeds"].stop()


@pytest.mark.parametrize("lang,words", [
    ("en", {"tags": "Tags", "latest": "Latest posts"}),
    ("zh-TW", {"tags": "標籤", "latest": "最新文章"}),
    ("zh-CN", {"tags": "标签", "latest": "最新文章"}),
])
def test_language_comes_from_the_config(tmp_path: Path, lang: str,
                                        words: dict[str, str]) -> None:
    folder = site_folder(tmp_path / "site", config=CONFIG.replace("lang: zh-CN",
                                                                  f"lang: {lang}"))
    app = start(folder)
    try:
        doc = get_page(app.test_client(), f"{BASE}/")
        assert doc.get("lang") == lang
        assert text(one(doc, "//h2[@id='tags']")) == words["tags"]
        assert text(one(doc, "//h2[@id='latest']")) == words["latest"]
    finally:
        app.extensions["feeds"].stop()


@pytest.mark.parametrize("lang,expected", [
    ("zh", "zh-Hans"), ("zh-CN", "zh-Hans"), ("zh-Hans-SG", "zh-Hans"), ("zh_TW", "zh-Hant"),
    ("zh-Hant", "zh-Hant"), ("zh-HK", "zh-Hant"), ("en-US", "en"), ("fr", "en"), ("", "en"),
])
def test_labels_follow_the_language_tag(lang: str, expected: str) -> None:
    from feeds.pages import LABELS

    assert labels_for(lang) is LABELS[expected]


def test_an_empty_site_still_has_a_valid_index(tmp_path: Path) -> None:
    app = start(site_folder(tmp_path / "site", posts=[]))
    try:
        doc = get_page(app.test_client(), f"{BASE}/")
        assert listed(doc) == []
        assert text(one(doc, "//p[@class='empty']")) == "还没有文章。"
        assert alternates(doc)["application/atom+xml"] == f"{BASE}/feed.atom"
        assert doc.xpath("//h2[@id='tags']") == []
    finally:
        app.extensions["feeds"].stop()


# --- any title ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def one_post_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Flask]]:
    """A site whose one post each example rewrites (a new file each time, then refresh):
    one app for all of Hypothesis's examples."""
    folder = site_folder(tmp_path_factory.mktemp("any") / "site", posts=[])
    app = start(folder)
    yield folder, app
    app.extensions["feeds"].stop()


@settings(max_examples=25, deadline=None)
@given(title=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=40))
def test_any_title_is_shown_as_text_on_valid_pages(one_post_site: tuple[Path, Flask],
                                                   title: str) -> None:
    folder, app = one_post_site
    for old in (folder / "_posts").glob("*.md"):
        old.unlink()
    spec = Spec(f"any-{abs(hash(title))}", title, at(0), ("c",), ("t",))
    write_site(folder, {spec.path: spec.text()}, config=None)
    service = app.extensions["feeds"]
    service.refresh()
    posts = service.state().index.posts
    if not posts:  # a title the parser refuses leaves no post
        return
    assert posts[0].source == spec.path
    shown = " ".join(posts[0].title.split())
    client = app.test_client()
    for url in (f"{BASE}/", term_url("tag", "t")):
        assert [p["title"] for p in listed(get_page(client, url))] == [shown]
    doc = get_page(client, listed(get_page(client, f"{BASE}/"))[0]["url"])
    assert text(one(doc, "//article//h1")) == shown
