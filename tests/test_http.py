"""Aggregator-grade HTTP, black-box through the Flask test client: validators and 304s,
HEAD, caching headers, compression, CORS, paging (RFC 5005), bad parameters, delta polling
(RFC 3229 + feed), autodiscovery and content types.

The content folder is written here (``paging_site``) and read back independently
(``read_folder``) to know what every feed must hold."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import brotli
import feedparser
import html5lib
import pytest
import yaml
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

from feeds.rendered import DELTA_HISTORY

from .conftest import post_text, set_mtimes, validate_atom, validate_json_feed, write_site

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "https://example.org"
CONTENT_TYPES = {
    "atom": "application/atom+xml; charset=utf-8",
    "rss": "application/rss+xml; charset=utf-8",
    "json": "application/feed+json; charset=utf-8",
}
POSTS = 23

# --- the content folder ---------------------------------------------------------------


def paging_posts(count: int = POSTS) -> dict[str, str]:
    """``count`` posts, one a day from 2022-01-01, every one in category 'news', every third
    also in 'tech'; tags 'python' (even) and '随笔' (odd, and every fourth). Posts 7 and 8
    share one instant. Bodies long enough that a feed is worth compressing."""
    posts: dict[str, str] = {}
    for i in range(count):
        day = datetime(2022, 1, 1, 9, 30, tzinfo=UTC) + timedelta(days=i if i != 8 else 7)
        categories = "[news, tech]" if i % 3 == 0 else "[news]"
        tags = ["python"] if i % 2 == 0 else ["随笔"]
        if i % 4 == 0:
            tags.append("随笔")
        posts[f"_posts/{day:%Y-%m-%d}-post-{i:02d}.md"] = post_text(
            f"Post {i:02d} · 第{i}篇", day.strftime("%Y-%m-%d %H:%M:%S +0000"), categories,
            "[" + ", ".join(tags) + "]", body=f"Paragraph {i}. " * 30)
    return posts


@pytest.fixture
def paging_site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "paging", paging_posts())


def read_folder(root: Path) -> list[dict[str, Any]]:
    """The posts of a content folder, read back from the files: title, instant, categories,
    tags, path; newest first (posts of the same instant by path)."""
    found = []
    for path in sorted(root.rglob("_posts/*.md")):
        front = yaml.safe_load(path.read_text("utf-8").split("---\n")[1])
        when = front["date"]
        if isinstance(when, str):
            when = datetime.strptime(when, "%Y-%m-%d %H:%M:%S %z")
        found.append({"title": front["title"], "date": when, "path": path.relative_to(root),
                      "categories": front.get("categories") or [],
                      "tags": front.get("tags") or []})
    found.sort(key=lambda p: (-p["date"].timestamp(), str(p["path"])))
    return found


def rewrite(path: Path, text: str) -> None:
    """Write a file and move its mtime on, so a rescan surely sees a new version."""
    old = path.stat().st_mtime_ns if path.exists() else 0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    stamp = max(old + 1_000_000_000, path.stat().st_mtime_ns)
    os.utime(path, ns=(stamp, stamp))


@pytest.fixture
def paging_app(paging_site: Path, make_app: Callable[..., Flask]) -> Flask:
    return make_app(paging_site)


@pytest.fixture
def pclient(paging_app: Flask) -> FlaskClient:
    return paging_app.test_client()


def refresh(app: Flask) -> None:
    app.extensions["feeds"].refresh()


# --- reading responses ----------------------------------------------------------------


def path_of(url: str) -> str:
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE, url
    return parts.path + (f"?{parts.query}" if parts.query else "")


def feed_links(data: bytes, fmt: str) -> dict[str, str]:
    """rel -> href of the feed-level links (Atom link, RSS atom:link, JSON Feed next_url
    and hubs)."""
    if fmt == "json":
        feed = json.loads(data)
        links = {"self": feed["feed_url"]}
        if "next_url" in feed:
            links["next"] = feed["next_url"]
        for hub in feed.get("hubs", []):
            links["hub"] = hub["url"]
        return links
    root = etree.fromstring(data)
    parent = root if fmt == "atom" else root.find("channel")
    assert parent is not None
    links: dict[str, str] = {}
    for link in parent.findall(f"{ATOM}link"):
        rel = link.get("rel", "alternate")
        assert rel not in links, f"two links rel={rel}"
        links[rel] = link.get("href", "")
    return links


def entry_titles(data: bytes, fmt: str) -> list[str]:
    if fmt == "json":
        return [item["title"] for item in json.loads(data)["items"]]
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.bozo_exception
    return [e.title for e in parsed.entries]


def metric(client: FlaskClient, name: str, **labels: str) -> float:
    text = client.get("/metrics").get_data(as_text=True)
    total = 0.0
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v
                                           for k, v in labels.items()):
                total += sample.value
    return total


def validators(response: TestResponse) -> tuple[str | None, str | None]:
    return response.headers.get("ETag"), response.headers.get("Last-Modified")


def vary(response: TestResponse) -> set[str]:
    return {v.strip().lower() for h in response.headers.getlist("Vary") for v in h.split(",")}


# --- validators -------------------------------------------------------------------------


FEED_PATHS = ["/feed.atom", "/feed.rss", "/feed.json", "/category/news.atom",
              "/category/tech.rss", f"/tag/{quote('随笔')}.json", "/tag/python.atom",
              "/feed.xml", "/feed/news.xml", "/feed/by_tag/python.xml"]
PAGE_PATHS = ["/", "/category/news.html", f"/tag/{quote('随笔')}.html",
              "/news/2022/01/03/post-02.html", "/?page=2"]


@pytest.mark.parametrize("path", FEED_PATHS + PAGE_PATHS)
def test_strong_etag_and_last_modified_on_every_feed_and_page(
        pclient: FlaskClient, paging_site: Path, make_app: Callable[..., Flask],
        tmp_path: Path, path: str) -> None:
    first = pclient.get(path)
    assert first.status_code == 200
    etag, last_modified = validators(first)
    assert etag and re.fullmatch(r'"[^"]+"', etag), etag  # strong: no W/
    assert last_modified and parsedate_to_datetime(last_modified).tzinfo is not None
    # A second service over a copy of the folder says the same.
    copy = shutil.copytree(paging_site, tmp_path / "copy")
    twin = make_app(copy).test_client().get(path)
    assert (twin.data, validators(twin)) == (first.data, (etag, last_modified))


def test_etag_names_the_body(pclient: FlaskClient, paging_site: Path) -> None:
    """Same body, same tag; another body, another tag (the jekyll-feed paths serve the
    same bodies as their .atom twins)."""
    seen = {}
    for path in FEED_PATHS + PAGE_PATHS:
        response = pclient.get(path)
        seen[path] = (response.data, response.headers["ETag"])
    for a, (body_a, tag_a) in seen.items():
        for b, (body_b, tag_b) in seen.items():
            assert (body_a == body_b) == (tag_a == tag_b), (a, b)
    assert seen["/feed.xml"] == seen["/feed.atom"]
    before = seen["/feed.atom"][1]
    rewrite(next(paging_site.glob("_posts/*-post-22.md")),
            post_text("Renamed", "2022-01-23 09:30:00 +0000", "[news]", "[python]"))
    pclient.application.extensions["feeds"].refresh()
    assert pclient.get("/feed.atom").headers["ETag"] != before


OLD = datetime(2001, 1, 1, tzinfo=UTC).timestamp()
"""An mtime older than every post, for files copied with their times kept (cp -p)."""


@pytest.mark.parametrize("path", ["/feed.atom", "/category/tech.atom",
                                  "/tag/python.atom?limit=3", "/", "/category/tech.html"])
def test_last_modified_is_the_newest_change_of_the_content(
        make_app: Callable[..., Flask], path: str, paging_site: Path) -> None:
    # Files older than every post: the newest post's date of the site. Every feed and
    # page is dated by the state of the site it was made from (see the README).
    set_mtimes(paging_site, OLD)
    response = make_app(paging_site).test_client().get(path)
    newest = max(p["date"] for p in read_folder(paging_site))
    assert parsedate_to_datetime(response.headers["Last-Modified"]) == newest
    # A file saved later than that (an edit that leaves the post's dates) dates them all.
    saved = (newest + timedelta(days=3, seconds=7)).timestamp()
    os.utime(next(paging_site.glob("_posts/*-post-03.md")), (saved, saved))
    response = make_app(paging_site).test_client().get(path)
    assert parsedate_to_datetime(response.headers["Last-Modified"]).timestamp() == saved


@pytest.mark.parametrize("path", ["/feed.atom", "/tag/python.json", "/", "/feeds.opml"])
@pytest.mark.parametrize("form", ["one", "list", "star", "weak", "weak-list"])
def test_if_none_match_gives_304_with_same_validators(
        pclient: FlaskClient, path: str, form: str) -> None:
    full = pclient.get(path)
    etag = full.headers["ETag"]
    header = {"one": etag, "list": f'"nope", {etag} , "other"', "star": "*",
              "weak": f"W/{etag}", "weak-list": f'W/"nope",W/{etag}'}[form]
    response = pclient.get(path, headers={"If-None-Match": header})
    assert response.status_code == 304
    assert response.data == b""
    assert validators(response) == validators(full)
    for name in ("Cache-Control", "Access-Control-Allow-Origin"):
        assert response.headers.get(name) == full.headers.get(name)
    assert vary(response) == vary(full)


@pytest.mark.parametrize("header", ['"nope"', 'W/"nope"', '"a", "b"'])
def test_if_none_match_that_does_not_match_gives_the_body(pclient: FlaskClient,
                                                          header: str) -> None:
    response = pclient.get("/feed.atom", headers={"If-None-Match": header})
    assert response.status_code == 200
    assert entry_titles(response.data, "atom")


def test_if_none_match_wins_over_if_modified_since(pclient: FlaskClient) -> None:
    full = pclient.get("/feed.rss")
    etag, last_modified = validators(full)
    assert last_modified
    stale = pclient.get("/feed.rss", headers={"If-None-Match": '"old"',
                                              "If-Modified-Since": last_modified})
    assert stale.status_code == 200 and stale.data == full.data
    fresh = pclient.get("/feed.rss", headers={
        "If-None-Match": etag or "", "If-Modified-Since": "Mon, 01 Jan 1990 00:00:00 GMT"})
    assert fresh.status_code == 304


def test_if_modified_since_to_the_second(make_app: Callable[..., Flask],
                                         tmp_path: Path) -> None:
    # updated carries a fraction of a second; Last-Modified holds whole seconds.
    root = write_site(tmp_path / "s", {"_posts/2022-01-01-a.md": post_text(
        "A", "2022-01-01 10:00:00 +0800", "[news]", "[solo]",
        extra="updated: 2022-03-01 08:00:00.750 +0800\n")})
    set_mtimes(root, OLD)
    client = make_app(root).test_client()
    for path in ("/tag/solo.atom", "/category/news.json", "/"):
        full = client.get(path)
        last_modified = full.headers["Last-Modified"]
        when = parsedate_to_datetime(last_modified)
        assert when == datetime(2022, 3, 1, 0, 0, 0, tzinfo=UTC)

        def status(since: str, path: str = path) -> int:
            return client.get(path, headers={"If-Modified-Since": since}).status_code

        assert status(last_modified) == 304
        assert status(format_datetime(when + timedelta(seconds=1), usegmt=True)) == 304
        assert status(format_datetime(when - timedelta(seconds=1), usegmt=True)) == 200
        assert status(when.strftime("%a %b %e %H:%M:%S %Y")) == 304  # asctime, no zone
        assert status(when.strftime("%A, %d-%b-%y %H:%M:%S GMT")) == 304  # RFC 850
        assert status("Tue, 01 Mar 2022 00:00:00 -0000") == 304
        assert status("yesterday") == 200
        assert status("") == 200
        not_modified = client.get(path, headers={"If-Modified-Since": last_modified})
        assert validators(not_modified) == validators(full)
        assert not_modified.data == b""


@pytest.mark.parametrize("path", ["/feed.atom", "/category/news.json", "/", "/feeds.opml",
                                  "/tag/python.rss?page=2&limit=4"])
@pytest.mark.parametrize("coding", ["", "gzip", "br"])
def test_head_has_the_headers_of_get_and_no_body(pclient: FlaskClient, path: str,
                                                 coding: str) -> None:
    headers = {"Accept-Encoding": coding} if coding else {}
    get = pclient.get(path, headers=headers)
    head = pclient.head(path, headers=headers)
    assert get.status_code == head.status_code == 200
    assert head.data == b""
    assert int(head.headers["Content-Length"]) == len(get.data) > 0
    assert sorted(head.headers.items()) == sorted(get.headers.items())
    conditional = pclient.head(path, headers={**headers, "If-None-Match": get.headers["ETag"]})
    assert conditional.status_code == 304 and conditional.data == b""


# --- caching headers and the hot path --------------------------------------------------


@pytest.mark.parametrize("path", [*FEED_PATHS, *PAGE_PATHS, "/feeds.opml"])
def test_cache_control_and_vary(pclient: FlaskClient, path: str) -> None:
    for coding in ("", "gzip"):
        response = pclient.get(path, headers={"Accept-Encoding": coding})
        assert response.headers["Cache-Control"] == "public, max-age=300"
        assert "accept-encoding" in vary(response)


def test_cache_max_age_is_configured(paging_site: Path,
                                     make_app: Callable[..., Flask]) -> None:
    client = make_app(paging_site, cache_max_age=42).test_client()
    for path in ("/feed.json", "/", "/category/news.html", "/feeds.opml"):
        response = client.get(path)
        assert response.headers["Cache-Control"] == "public, max-age=42"
        etag = response.headers["ETag"]
        again = client.get(path, headers={"If-None-Match": etag})
        assert again.headers["Cache-Control"] == "public, max-age=42"


def test_a_304_or_a_cached_200_never_rebuilds_a_feed(pclient: FlaskClient) -> None:
    first = pclient.get("/category/news.atom", headers={"Accept-Encoding": "gzip"})
    renders = metric(pclient, "feeds_renders_total", fmt="atom")
    misses = metric(pclient, "feeds_cache_lookups_total", result="miss")
    hits = metric(pclient, "feeds_cache_lookups_total", result="hit")
    assert renders >= 1
    for headers in ({}, {"Accept-Encoding": "gzip"}, {"If-None-Match": first.headers["ETag"],
                                                      "Accept-Encoding": "gzip"},
                    {"If-Modified-Since": first.headers["Last-Modified"]}):
        for _ in range(3):
            assert pclient.get("/category/news.atom", headers=headers).status_code in (200, 304)
    assert metric(pclient, "feeds_renders_total", fmt="atom") == renders
    assert metric(pclient, "feeds_cache_lookups_total", result="miss") == misses
    assert metric(pclient, "feeds_cache_lookups_total", result="hit") == hits + 12


# --- compression ------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/feed.atom", "/feed.rss", "/feed.json", "/",
                                  "/category/news.html"])
def test_gzip_when_accepted(pclient: FlaskClient, path: str) -> None:
    plain = pclient.get(path)
    assert len(plain.data) > 1024
    assert "Content-Encoding" not in plain.headers
    zipped = pclient.get(path, headers={"Accept-Encoding": "gzip, deflate"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert gzip.decompress(zipped.data) == plain.data
    assert len(zipped.data) < len(plain.data)
    assert zipped.headers["Content-Type"] == plain.headers["Content-Type"]
    assert zipped.headers["ETag"] != plain.headers["ETag"]
    assert zipped.headers["Last-Modified"] == plain.headers["Last-Modified"]


@pytest.mark.parametrize("accept,coding", [
    ("gzip, br", "gzip"), ("br, gzip", "gzip"), ("br;q=1.0, gzip;q=0.8", "br"),
    ("br", "br"), ("gzip;q=0, br;q=0", None), ("gzip;q=0", None), ("identity", None),
    ("*", "gzip"), ("br;q=0, *;q=0.5", "gzip"), ("x-gzip", "gzip"), ("", None),
])
def test_content_coding_follows_the_clients_preference(pclient: FlaskClient, accept: str,
                                                        coding: str | None) -> None:
    plain = pclient.get("/feed.atom")
    response = pclient.get("/feed.atom", headers={"Accept-Encoding": accept})
    assert response.headers.get("Content-Encoding") == coding
    decode = {None: lambda b: b, "gzip": gzip.decompress, "br": brotli.decompress}[coding]
    assert decode(response.data) == plain.data


def test_small_bodies_are_not_compressed(make_app: Callable[..., Flask],
                                         tmp_path: Path) -> None:
    root = write_site(tmp_path / "s", {"_posts/2022-01-01-a.md": post_text(
        "A", "2022-01-01", "[news]", "[solo]", body="hi")})
    client = make_app(root).test_client()
    plain = client.get("/tag/solo.json")
    assert len(plain.data) <= 1024
    response = client.get("/tag/solo.json", headers={"Accept-Encoding": "gzip, br"})
    assert "Content-Encoding" not in response.headers
    assert response.data == plain.data and response.headers["ETag"] == plain.headers["ETag"]


def test_etags_do_not_match_across_encodings(pclient: FlaskClient) -> None:
    tags = {}
    for coding in ("identity", "gzip", "br"):
        tags[coding] = pclient.get("/feed.json", headers={"Accept-Encoding": coding}
                                   ).headers["ETag"]
    assert len(set(tags.values())) == 3
    for asked in tags:
        for held, tag in tags.items():
            response = pclient.get("/feed.json", headers={"Accept-Encoding": asked,
                                                          "If-None-Match": tag})
            assert response.status_code == (304 if held == asked else 200), (asked, held)
            if response.status_code == 200:
                assert response.headers["ETag"] == tags[asked]


def test_gzip_then_revalidate_gives_304(pclient: FlaskClient) -> None:
    zipped = pclient.get("/category/news.rss", headers={"Accept-Encoding": "gzip"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert entry_titles(gzip.decompress(zipped.data), "rss")
    again = pclient.get("/category/news.rss", headers={
        "Accept-Encoding": "gzip", "If-None-Match": zipped.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""
    assert validators(again) == validators(zipped)
    weak = pclient.get("/category/news.rss", headers={
        "Accept-Encoding": "gzip", "If-None-Match": "W/" + zipped.headers["ETag"]})
    assert weak.status_code == 304


# --- CORS and content types -------------------------------------------------------------


@pytest.mark.parametrize("path", [*FEED_PATHS, "/feeds.opml", "/healthz"])
def test_cors_on_feeds_opml_and_healthz(pclient: FlaskClient, path: str) -> None:
    response = pclient.get(path)
    assert response.headers["Access-Control-Allow-Origin"] == "*"
    if "ETag" in response.headers:
        again = pclient.get(path, headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304
        assert again.headers["Access-Control-Allow-Origin"] == "*"


@pytest.mark.parametrize("path,content_type", [
    ("/feed.atom", CONTENT_TYPES["atom"]), ("/feed.rss", CONTENT_TYPES["rss"]),
    ("/feed.json", CONTENT_TYPES["json"]), ("/feed.xml", CONTENT_TYPES["atom"]),
    ("/category/news.atom?page=2&limit=5", CONTENT_TYPES["atom"]),
    (f"/tag/{quote('随笔')}.rss", CONTENT_TYPES["rss"]),
    ("/tag/python.json", CONTENT_TYPES["json"]),
    ("/feed/by_tag/python.xml", CONTENT_TYPES["atom"]),
    ("/feeds.opml", "text/x-opml; charset=utf-8"),
    ("/", "text/html; charset=utf-8"), ("/category/tech.html", "text/html; charset=utf-8"),
    ("/news/2022/01/03/post-02.html", "text/html; charset=utf-8"),
])
def test_content_types(pclient: FlaskClient, path: str, content_type: str) -> None:
    for coding in ("", "gzip"):
        response = pclient.get(path, headers={"Accept-Encoding": coding})
        assert response.status_code == 200
        assert response.headers["Content-Type"] == content_type


# --- paging (RFC 5005) ------------------------------------------------------------------


def walk(client: FlaskClient, path: str, fmt: str) -> tuple[list[str], list[dict[str, str]]]:
    """Follow 'next' from ``path``: every entry title in order, and each page's links."""
    titles: list[str] = []
    pages: list[dict[str, str]] = []
    for _ in range(100):
        response = client.get(path)
        assert response.status_code == 200, path
        links = feed_links(response.data, fmt)
        titles += entry_titles(response.data, fmt)
        pages.append(links)
        if "next" not in links:
            return titles, pages
        path = path_of(links["next"])
    raise AssertionError("more than 100 pages")


KINDS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "site": ("/feed", lambda p: True),
    "news": ("/category/news", lambda p: "news" in p["categories"]),
    "tech": ("/category/tech", lambda p: "tech" in p["categories"]),
    "python": ("/tag/python", lambda p: "python" in p["tags"]),
    "随笔": (f"/tag/{quote('随笔')}", lambda p: "随笔" in p["tags"]),
}


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
@pytest.mark.parametrize("kind,limit", [
    *((kind, 5) for kind in KINDS), *((kind, 10) for kind in KINDS), ("tech", 1), ("site", 4),
])
def test_walking_next_visits_every_post_once_newest_first(
        pclient: FlaskClient, paging_site: Path, fmt: str, kind: str, limit: int) -> None:
    prefix, selects = KINDS[kind]
    expected = [p["title"] for p in read_folder(paging_site) if selects(p)]
    start = f"{prefix}.{fmt}" + ("" if limit == 10 else f"?limit={limit}")
    titles, pages = walk(pclient, start, fmt)
    assert titles == expected
    assert len(pages) == -(-len(expected) // limit)
    if fmt == "json":
        return  # JSON Feed has next_url only
    for number, links in enumerate(pages, start=1):
        rels = set(links) - {"self", "alternate"}
        if len(pages) == 1:
            assert rels == set()
            continue
        expect = {"first", "last"}
        expect |= {"previous"} if number > 1 else set()
        expect |= {"next"} if number < len(pages) else set()
        assert rels == expect, number
        assert links["first"] == pages[0]["self"]
        assert links["last"] == pages[-1]["self"]
        if number > 1:
            assert links["previous"] == pages[number - 2]["self"]
        assert pclient.get(path_of(links["self"])).status_code == 200


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_page_past_the_end_is_404(pclient: FlaskClient, fmt: str) -> None:
    assert pclient.get(f"/category/tech.{fmt}?limit=4&page=2").status_code == 200
    assert pclient.get(f"/category/tech.{fmt}?limit=4&page=3").status_code == 404
    assert pclient.get(f"/feed.{fmt}?page=3").status_code == 200  # 10 a page by default
    for page in ("4", "99", "9" * 5000):
        response = pclient.get(f"/feed.{fmt}?page={page}")
        assert response.status_code == 404
    assert pclient.get(f"/tag/nosuchtag.{fmt}").status_code == 404


def test_every_page_of_a_feed_is_valid(pclient: FlaskClient, tmp_path: Path) -> None:
    middle = pclient.get("/category/news.atom?page=2&limit=5")
    validate_atom(middle.data, tmp_path)
    feed = validate_json_feed(pclient.get("/category/news.json?page=2&limit=5").data)
    assert feed["next_url"] == f"{BASE}/category/news.json?page=3&limit=5"
    last = validate_json_feed(pclient.get("/category/news.json?page=5&limit=5").data)
    assert "next_url" not in last and len(last["items"]) == POSTS - 20


# --- bad parameters ---------------------------------------------------------------------


@pytest.mark.parametrize("name", ["limit", "page"])
@pytest.mark.parametrize("value", ["0", "00", "-1", "abc", "1.5", "", "²", "\u0661", " 1", "1 ",
                                   "1e3", "0x10", "+3", "%00"])
@pytest.mark.parametrize("path", ["/tag/python.json", "/feed/news.xml"])
def test_bad_parameters_are_400_with_a_reason(pclient: FlaskClient, name: str, value: str,
                                              path: str) -> None:
    response = pclient.get(path, query_string={name: value})
    assert response.status_code == 400
    assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
    text = response.get_data(as_text=True)
    assert name in text and "positive integer" in text and len(text) < 200


def test_bad_page_on_html_pages_is_400(pclient: FlaskClient) -> None:
    assert pclient.get("/?page=x").status_code == 400
    assert pclient.get("/category/news.html?page=0").status_code == 400


def test_limit_above_the_maximum_is_clamped(paging_site: Path,
                                            make_app: Callable[..., Flask]) -> None:
    client = make_app(paging_site, max_limit=7).test_client()
    for limit in ("8", "100", "9" * 5000):
        response = client.get(f"/feed.atom?limit={limit}")
        assert response.status_code == 200
        assert len(entry_titles(response.data, "atom")) == 7
        assert feed_links(response.data, "atom")["next"] == f"{BASE}/feed.atom?page=2&limit=7"
    at_max = client.get("/feed.atom?limit=7")
    assert at_max.headers["ETag"] == client.get("/feed.atom?limit=1000").headers["ETag"]
    default = make_app(paging_site).test_client()  # max_limit 100 by default
    assert len(entry_titles(default.get("/feed.json?limit=101").data, "json")) == POSTS


def test_unknown_parameters_are_ignored_and_share_the_cache_entry(
        pclient: FlaskClient) -> None:
    first = pclient.get("/tag/python.atom")
    misses = metric(pclient, "feeds_cache_lookups_total", result="miss")
    renders = metric(pclient, "feeds_renders_total", fmt="atom")
    for query in ("?utm_source=x", "?page=1", "?foo=1&bar=2&page=1", "?limit=10&x=%FF",
                  "?page=01"):
        response = pclient.get("/tag/python.atom" + query)
        assert response.status_code == 200
        assert response.data == first.data and response.headers["ETag"] == first.headers["ETag"]
    assert metric(pclient, "feeds_cache_lookups_total", result="miss") == misses
    assert metric(pclient, "feeds_renders_total", fmt="atom") == renders


# --- autodiscovery ----------------------------------------------------------------------


def alternates(html: bytes) -> set[tuple[str, str]]:
    doc = html5lib.parse(html, namespaceHTMLElements=False)
    return {(link.get("type"), link.get("href")) for link in doc.iter("link")
            if link.get("rel") == "alternate"}


@pytest.mark.parametrize("page,feeds", [
    ("/", "/feed"), ("/?page=2", "/feed"), ("/category/tech.html", "/category/tech"),
    (f"/tag/{quote('随笔')}.html", f"/tag/{quote('随笔')}"),
])
def test_autodiscovery_links(pclient: FlaskClient, page: str, feeds: str) -> None:
    found = alternates(pclient.get(page).data)
    assert found == {
        ("application/atom+xml", f"{BASE}{feeds}.atom"),
        ("application/rss+xml", f"{BASE}{feeds}.rss"),
        ("application/feed+json", f"{BASE}{feeds}.json"),
    }
    for media_type, href in found:
        response = pclient.get(path_of(href))
        assert response.status_code == 200
        assert response.headers["Content-Type"].split(";")[0] == media_type


# --- delta polling (RFC 3229 + feed) ----------------------------------------------------


def delta_get(client: FlaskClient, path: str, etag: str, **headers: str) -> TestResponse:
    return client.get(path, headers={"A-IM": "feed", "If-None-Match": etag, **headers})


def add_post(root: Path, i: int, title: str, **kw: str) -> None:
    day = datetime(2023, 1, 1, tzinfo=UTC) + timedelta(days=i)
    rewrite(root / f"_posts/{day:%Y-%m-%d}-new-{i}.md",
            post_text(title, day.strftime("%Y-%m-%d %H:%M:%S +0000"),
                      kw.get("categories", "[news]"), kw.get("tags", "[python]"),
                      body=f"New post {i}. " * 40))


def touch_updated(root: Path, number: int, updated: str) -> str:
    """Give post ``number`` of the folder a new 'updated'; its title."""
    path = next(root.glob(f"_posts/*-post-{number:02d}.md"))
    text = path.read_text("utf-8").replace("---\n", f"---\nupdated: {updated}\n", 1)
    rewrite(path, text)
    return str(yaml.safe_load(text.split("---\n")[1])["title"])


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
def test_delta_holds_only_new_and_changed_entries(paging_app: Flask, paging_site: Path,
                                                  fmt: str, tmp_path: Path) -> None:
    client = paging_app.test_client()
    path = f"/category/news.{fmt}"
    before = client.get(path)
    held = before.headers["ETag"]
    add_post(paging_site, 1, "全新 Brand new")
    changed = touch_updated(paging_site, 20, "2024-05-05 12:00:00 +0000")
    touch_updated(paging_site, 1, "2024-05-06 12:00:00 +0000")  # on no first page
    refresh(paging_app)
    now = client.get(path)
    assert now.headers["ETag"] != held

    delta = delta_get(client, path, held)
    assert delta.status_code == 226
    assert delta.headers["IM"] == "feed"
    assert delta.headers["Content-Type"] == CONTENT_TYPES[fmt]
    assert sorted(entry_titles(delta.data, fmt)) == sorted(["全新 Brand new", changed])
    assert validators(delta) == validators(now)  # the version the client now holds
    assert "private" in delta.headers["Cache-Control"]
    assert "public" not in delta.headers["Cache-Control"]
    assert {"a-im", "if-none-match"} <= vary(delta)
    assert delta.headers["Access-Control-Allow-Origin"] == "*"
    links = feed_links(delta.data, fmt)
    assert "next" not in links and "last" not in links
    if fmt == "atom":
        validate_atom(delta.data, tmp_path)
    elif fmt == "json":
        validate_json_feed(delta.data)
    else:
        assert not feedparser.parse(delta.data).bozo
    # Holding the current version: nothing new.
    again = delta_get(client, path, now.headers["ETag"])
    assert again.status_code == 304 and again.data == b""
    assert validators(again) == validators(now)


def test_delta_after_a_deletion_is_a_full_200(paging_app: Flask, paging_site: Path) -> None:
    # No entry is new or changed, but the feed is: a delta cannot say an entry is gone,
    # and a 304 would tell the client it holds the current bytes.
    client = paging_app.test_client()
    path = "/category/tech.json"
    before = client.get(path)
    assert len(entry_titles(before.data, "json")) == 8  # all of them: one page
    next(paging_site.glob("_posts/*-post-03.md")).unlink()
    refresh(paging_app)
    now = client.get(path)
    assert now.headers["ETag"] != before.headers["ETag"]
    delta = delta_get(client, path, before.headers["ETag"])
    assert delta.status_code == 200 and delta.data == now.data
    assert "Post 03 · 第3篇" not in entry_titles(delta.data, "json")
    assert validators(delta) == validators(now)
    # Holding that version, the client is told nothing changed.
    again = delta_get(client, path, delta.headers["ETag"])
    assert again.status_code == 304 and again.data == b""


def test_delta_with_unknown_or_missing_version_is_a_full_200(paging_app: Flask,
                                                             paging_site: Path) -> None:
    client = paging_app.test_client()
    held = client.get("/feed.atom").headers["ETag"]
    add_post(paging_site, 1, "Newer")
    refresh(paging_app)
    full = client.get("/feed.atom")
    for headers in ({"A-IM": "feed", "If-None-Match": '"never-served"'},
                    {"A-IM": "feed"},
                    {"If-None-Match": held},
                    {"A-IM": "gzip", "If-None-Match": held},
                    {"A-IM": "feed", "If-None-Match": held + "x"}):
        response = client.get("/feed.atom", headers=headers)
        assert response.status_code == 200, headers
        assert response.data == full.data
        assert response.headers["Cache-Control"] == "public, max-age=300"
    # Page 2 has no delta; held version of page 1 means nothing there.
    page2 = delta_get(client, "/feed.atom?page=2", held)
    assert page2.status_code == 200
    assert page2.data == client.get("/feed.atom?page=2").data


@pytest.mark.parametrize("a_im", ["feed", "FEED", "gzip, feed", "feed;q=1.0, diffe"])
@pytest.mark.parametrize("weak", [False, True])
def test_delta_request_forms(paging_app: Flask, paging_site: Path, a_im: str,
                             weak: bool) -> None:
    client = paging_app.test_client()
    held = client.get("/tag/python.rss").headers["ETag"]
    add_post(paging_site, 2, "Fresh")
    refresh(paging_app)
    delta = client.get("/tag/python.rss", headers={
        "A-IM": a_im, "If-None-Match": f'"other", {"W/" if weak else ""}{held}'})
    assert delta.status_code == 226
    assert entry_titles(delta.data, "rss") == ["Fresh"]


def test_delta_of_a_compressed_version(paging_app: Flask, paging_site: Path) -> None:
    client = paging_app.test_client()
    gz = {"Accept-Encoding": "gzip"}
    held = client.get("/feed.json", headers=gz)
    assert held.headers["Content-Encoding"] == "gzip"
    for i in range(3):
        add_post(paging_site, 10 + i, f"Batch {i}")
    refresh(paging_app)
    delta = delta_get(client, "/feed.json", held.headers["ETag"], **gz)
    assert delta.status_code == 226
    assert delta.headers["Content-Encoding"] == "gzip"
    items = validate_json_feed(gzip.decompress(delta.data))["items"]
    assert [i["title"] for i in items] == ["Batch 2", "Batch 1", "Batch 0"]
    now = client.get("/feed.json", headers=gz)
    assert delta.headers["ETag"] == now.headers["ETag"]  # the gzip tag a GET gets now
    assert client.get("/feed.json", headers={**gz, "If-None-Match": delta.headers["ETag"]}
                      ).status_code == 304
    # The identity tag of the same version names it too.
    identity = client.get("/feed.json").headers["ETag"]
    assert delta_get(client, "/feed.json", identity, **gz).status_code == 304


def test_delta_history_is_bounded(paging_app: Flask, paging_site: Path) -> None:
    client = paging_app.test_client()
    path = "/category/news.atom?limit=20"  # a page holds all the versions
    tags = [client.get(path).headers["ETag"]]
    for i in range(DELTA_HISTORY):
        add_post(paging_site, 100 + i, f"Version {i}")
        refresh(paging_app)
        tags.append(client.get(path).headers["ETag"])
    assert len(set(tags)) == DELTA_HISTORY + 1
    oldest = delta_get(client, path, tags[0])
    assert oldest.status_code == 200  # too old: forgotten
    assert len(entry_titles(oldest.data, "atom")) == 20
    for age in (1, 5, DELTA_HISTORY - 1):
        delta = delta_get(client, path, tags[-1 - age])
        assert delta.status_code == 226
        assert entry_titles(delta.data, "atom") == [
            f"Version {i}" for i in reversed(range(DELTA_HISTORY - age, DELTA_HISTORY))]
