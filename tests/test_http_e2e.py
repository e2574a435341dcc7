"""The HTTP rules end to end: a real waitress on loopback, plain HTTP clients (http.client
for the raw bytes, requests for following links). The site has no configured URL, so every
link in the feeds points back at the server under test and is followed as it stands."""

from __future__ import annotations

import gzip
import http.client
import json
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import quote, urlsplit

import feedparser
import pytest
import requests
from lxml import etree
from waitress import wasyncore
from waitress.server import create_server

from feeds import create_app

from .conftest import LiveServer, make_settings, write_site
from .test_http import ATOM, paging_posts, read_folder, rewrite

CONFIG = "title: E2E 站\ntimezone: Asia/Shanghai\nlang: zh-CN\n"
WALK_LIMIT = 100
"""Most pages any walk may visit (a loop that never ends is a failure, not a hang)."""


@pytest.fixture
def e2e_site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "e2e", paging_posts(), config=CONFIG)


@pytest.fixture
def server(e2e_site: Path) -> Iterator[LiveServer]:
    """A real waitress on 127.0.0.1:<ephemeral>, shut down in order: the workers first (one
    still finishing a kept-alive request would write to a closed trigger), then the sockets,
    closed by the loop thread itself (the fixtures in conftest close them from this thread,
    which can fail the loop's select() with EBADF)."""
    app = create_app(make_settings(e2e_site), watch=False)
    waitress = create_server(app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=waitress.run, daemon=True)
    thread.start()
    try:
        port = waitress.effective_port
        yield LiveServer(app, f"http://127.0.0.1:{port}", int(port))
    finally:
        waitress.task_dispatcher.shutdown()
        # Close every socket from the loop's own thread (a trigger thunk runs there), so
        # that select() never sees a descriptor closed under it; an empty map ends run().
        waitress.trigger.pull_trigger(lambda: wasyncore.close_all(waitress._map))
        thread.join(10)
        app.extensions["feeds"].stop()


@pytest.fixture
def conn(server: LiveServer) -> Iterator[http.client.HTTPConnection]:
    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
    try:
        yield connection
    finally:
        connection.close()


def fetch(conn: http.client.HTTPConnection, method: str, path: str,
          **headers: str) -> tuple[http.client.HTTPResponse, bytes]:
    """One request on a kept-alive connection: the response and its raw body bytes."""
    conn.request(method, path, headers={k.replace("_", "-"): v for k, v in headers.items()})
    response = conn.getresponse()
    return response, response.read()


def test_gzip_then_revalidate_gives_304(conn: http.client.HTTPConnection,
                                        server: LiveServer) -> None:
    first, raw = fetch(conn, "GET", "/category/news.atom", Accept_Encoding="gzip")
    assert first.status == 200
    assert first.getheader("Content-Encoding") == "gzip"
    assert int(first.getheader("Content-Length") or -1) == len(raw)
    parsed = feedparser.parse(gzip.decompress(raw))
    assert not parsed.bozo and len(parsed.entries) == 10
    etag = first.getheader("ETag")
    last_modified = first.getheader("Last-Modified")
    assert etag and last_modified
    again, body = fetch(conn, "GET", "/category/news.atom", Accept_Encoding="gzip",
                        If_None_Match=etag)
    assert again.status == 304 and body == b""
    assert again.getheader("ETag") == etag
    assert again.getheader("Last-Modified") == last_modified
    assert again.getheader("Content-Length") in (None, "0")
    # The same tag does not stand for the uncompressed bytes.
    plain, plain_raw = fetch(conn, "GET", "/category/news.atom", If_None_Match=etag)
    assert plain.status == 200 and plain_raw == gzip.decompress(raw)
    # requests, as an aggregator would use it.
    with requests.Session() as session:
        full = session.get(f"{server.url}/category/news.atom")
        assert full.headers["Content-Encoding"] == "gzip"  # requests asks for gzip itself
        assert full.content == plain_raw
        revalidated = session.get(f"{server.url}/category/news.atom",
                                  headers={"If-None-Match": full.headers["ETag"]})
        assert revalidated.status_code == 304 and revalidated.content == b""
        since = session.get(f"{server.url}/category/news.atom",
                            headers={"If-Modified-Since": full.headers["Last-Modified"]})
        assert since.status_code == 304


@pytest.mark.parametrize("path", ["/feed.rss", "/feed.json", "/", "/feeds.opml",
                                  f"/tag/{quote('随笔')}.atom?page=2&limit=3"])
@pytest.mark.parametrize("coding", ["identity", "gzip", "br"])
def test_head_over_the_wire(conn: http.client.HTTPConnection, path: str,
                            coding: str) -> None:
    get, raw = fetch(conn, "GET", path, Accept_Encoding=coding)
    head, body = fetch(conn, "HEAD", path, Accept_Encoding=coding)
    assert get.status == head.status == 200
    assert body == b""
    assert int(head.getheader("Content-Length") or -1) == len(raw) > 0
    for name in ("ETag", "Last-Modified", "Content-Type", "Content-Encoding", "Cache-Control",
                 "Vary", "Access-Control-Allow-Origin"):
        assert head.getheader(name) == get.getheader(name), name
    # The connection is still usable: the HEAD sent no body that would confuse it.
    after, _ = fetch(conn, "GET", "/healthz")
    assert after.status == 200


def next_link(data: bytes, fmt: str) -> str | None:
    if fmt == "json":
        found: str | None = json.loads(data).get("next_url")
        return found
    root = etree.fromstring(data)
    parent = root if fmt == "atom" else root.find("channel")
    assert parent is not None
    hrefs = [link.get("href") for link in parent.findall(f"{ATOM}link")
             if link.get("rel") == "next"]
    assert len(hrefs) <= 1
    return hrefs[0] if hrefs else None


def titles_of(data: bytes, fmt: str) -> list[str]:
    if fmt == "json":
        return [item["title"] for item in json.loads(data)["items"]]
    parsed = feedparser.parse(data)
    assert not parsed.bozo
    return [entry.title for entry in parsed.entries]


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
@pytest.mark.parametrize("feed,wanted", [
    ("/feed", lambda p: True),
    ("/category/news", lambda p: "news" in p["categories"]),
    ("/category/tech", lambda p: "tech" in p["categories"]),
    (f"/tag/{quote('随笔')}", lambda p: "随笔" in p["tags"]),
])
def test_paging_walk_against_the_content_folder(
        server: LiveServer, e2e_site: Path, fmt: str, feed: str,
        wanted: Callable[[dict[str, object]], bool]) -> None:
    expected = [p["title"] for p in read_folder(e2e_site) if wanted(p)]
    seen: list[str] = []
    url: str | None = f"{server.url}{feed}.{fmt}?limit=4"
    pages = 0
    with requests.Session() as session:
        while url is not None:
            pages += 1
            assert pages <= WALK_LIMIT
            parts = urlsplit(url)
            assert f"{parts.scheme}://{parts.netloc}" == server.url  # links lead back here
            response = session.get(url)
            assert response.status_code == 200, url
            assert response.headers["Access-Control-Allow-Origin"] == "*"
            seen += titles_of(response.content, fmt)
            url = next_link(response.content, fmt)
        assert seen == expected  # every post once, newest first
        assert pages == -(-len(expected) // 4)
        past = session.get(f"{server.url}{feed}.{fmt}?limit=4&page={pages + 1}")
        assert past.status_code == 404


def test_bad_parameters_over_the_wire(server: LiveServer) -> None:
    with requests.Session() as session:
        for query in ("limit=0", "limit=abc", "page=-2", "page=1.0", "limit=" + "9" * 5000):
            response = session.get(f"{server.url}/feed.atom?{query}")
            if query.startswith("limit=9"):
                assert response.status_code == 200  # clamped to max_limit
                assert len(titles_of(response.content, "atom")) == 23
                continue
            assert response.status_code == 400, query
            assert response.headers["Content-Type"] == "text/plain; charset=utf-8"
            assert "positive integer" in response.text
        ignored = session.get(f"{server.url}/feed.json?utm_campaign=x&limit=10")
        assert ignored.headers["ETag"] == session.get(f"{server.url}/feed.json").headers["ETag"]


def test_headers_over_the_wire(server: LiveServer) -> None:
    expected = {
        "/feed.atom": "application/atom+xml; charset=utf-8",
        "/category/news.rss": "application/rss+xml; charset=utf-8",
        "/tag/python.json": "application/feed+json; charset=utf-8",
        "/feeds.opml": "text/x-opml; charset=utf-8",
        "/": "text/html; charset=utf-8",
    }
    with requests.Session() as session:
        for path, content_type in expected.items():
            response = session.get(server.url + path)
            assert response.headers["Content-Type"] == content_type
            assert response.headers["Cache-Control"] == "public, max-age=300"
            assert "Accept-Encoding" in response.headers["Vary"]
            if path != "/":
                assert response.headers["Access-Control-Allow-Origin"] == "*"
        health = session.get(server.url + "/healthz")
        assert health.headers["Access-Control-Allow-Origin"] == "*"


def test_delta_polling_over_the_wire(server: LiveServer, e2e_site: Path,
                                     conn: http.client.HTTPConnection) -> None:
    first, _ = fetch(conn, "GET", "/feed.atom", Accept_Encoding="gzip")
    held = first.getheader("ETag") or ""
    rewrite(e2e_site / "_posts/2023-05-01-wire.md",
            "---\ntitle: Over the wire\ndate: 2023-05-01\ncategories: [news]\n---\n"
            + "Body. " * 300 + "\n")
    server.app.extensions["feeds"].refresh()
    delta, body = fetch(conn, "GET", "/feed.atom", Accept_Encoding="gzip", A_IM="feed",
                        If_None_Match=held)
    assert delta.status == 226
    assert delta.getheader("IM") == "feed"
    assert "private" in (delta.getheader("Cache-Control") or "")
    if delta.getheader("Content-Encoding") == "gzip":
        body = gzip.decompress(body)
    assert titles_of(body, "atom") == ["Over the wire"]
    now, _ = fetch(conn, "GET", "/feed.atom", Accept_Encoding="gzip")
    assert delta.getheader("ETag") == now.getheader("ETag") != held
    same, empty = fetch(conn, "GET", "/feed.atom", Accept_Encoding="gzip", A_IM="feed",
                        If_None_Match=now.getheader("ETag") or "")
    assert same.status == 304 and empty == b""
