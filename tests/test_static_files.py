"""Static files are answered like feeds and pages, over HTTP from a real waitress: gzip
when accepted, an ETag made from the bytes (the same from every instance, whatever the
files' mtimes), no Last-Modified, 304 on If-None-Match, HEAD with the headers of GET; a
year's immutable caching only under the URL whose ?v= is the current hash (the one the
pages and feeds link), the feeds' short max-age under any other. The site's own
feed.xslt.xml is served from its content folder and follows edits to it."""

from __future__ import annotations

import gzip
import hashlib
import os
import re
from collections.abc import Callable, Iterator
from importlib.resources import files
from pathlib import Path

import pytest
import requests
from flask import Flask
from lxml import etree
from lxml import html as lxml_html

from feeds import create_app

from .conftest import LiveServer, make_settings, post_text, write_site

Factory = Callable[..., LiveServer]
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT_AGE = 120
SHIPPED = files("feeds").joinpath("static")
POSTS = {"_posts/2022-01-01-hello.md": post_text("Hello", "2022-01-01 10:00:00 +0800")}
SITE_XSLT = b"""<?xml version="1.0" encoding="utf-8"?>
<xsl:stylesheet version="1.0" xmlns:xsl="http://www.w3.org/1999/XSL/Transform">
  <xsl:template match="/"><html><body><p>our own</p></body></html></xsl:template>
</xsl:stylesheet>
"""


def start(factory: Factory, folder: Path, apps: list[Flask]) -> LiveServer:
    app = create_app(make_settings(folder, cache_max_age=SHORT_AGE), watch=False)
    apps.append(app)
    return factory(app)


@pytest.fixture
def apps() -> Iterator[list[Flask]]:
    started: list[Flask] = []
    yield started
    for app in started:
        app.extensions["feeds"].stop()


@pytest.fixture
def server(tmp_path: Path, live_server_factory: Factory, apps: list[Flask]) -> LiveServer:
    return start(live_server_factory, write_site(tmp_path / "site", POSTS), apps)


def get(url: str, **headers: str) -> requests.Response:
    headers.setdefault("Accept-Encoding", "identity")
    return requests.get(url, headers=headers, timeout=60)


def linked_stylesheet(server: LiveServer) -> str:
    """The stylesheet URL the index page links, as a path with its query."""
    page = lxml_html.fromstring(get(server.url + "/").content)
    (href,) = page.xpath("//link[@rel='stylesheet']/@href")
    assert href.startswith("https://example.org/static/style.css?v=")
    return href.removeprefix("https://example.org")


def linked_xslt(server: LiveServer) -> str:
    """The XSLT URL the site's Atom feed names in its xml-stylesheet instruction."""
    root = etree.fromstring(get(server.url + "/feed.atom").content)
    pi = root.getprevious()
    assert isinstance(pi, etree._ProcessingInstruction) and pi.target == "xml-stylesheet"
    href = pi.get("href")
    assert href is not None
    return href.removeprefix("https://example.org")


def test_shipped_files_are_compressed_validated_and_cached_by_version(
        server: LiveServer) -> None:
    for path, name, media in [(linked_stylesheet(server), "style.css", "text/css"),
                              (linked_xslt(server), "feed.xsl", "application/xslt+xml")]:
        bare, _, query = path.partition("?")
        assert bare == f"/static/{name}" and re.fullmatch(r"v=[0-9a-f]{8}", query), path
        plain = get(server.url + path)
        assert plain.status_code == 200
        assert plain.headers["Content-Type"].split(";")[0] == media
        assert plain.headers["Cache-Control"] == IMMUTABLE
        assert "Last-Modified" not in plain.headers
        assert plain.headers["Vary"] == "Accept-Encoding"
        assert "Content-Encoding" not in plain.headers
        # The version is a hash of the bytes served.
        assert query == "v=" + hashlib.blake2b(plain.content, digest_size=4).hexdigest()
        if name == "style.css":
            assert plain.content == SHIPPED.joinpath(name).read_bytes()

        # gzip when accepted: the same bytes, its own ETag.
        zipped = requests.get(server.url + path, headers={"Accept-Encoding": "gzip"},
                              timeout=60, stream=True)
        raw = zipped.raw.read(decode_content=False)
        assert zipped.headers["Content-Encoding"] == "gzip"
        assert gzip.decompress(raw) == plain.content
        assert int(zipped.headers["Content-Length"]) == len(raw) < len(plain.content)
        assert zipped.headers["ETag"] != plain.headers["ETag"]

        # 304 on a matching ETag (either form), with the 200's validators; a stale one
        # gets the body.
        for response in (plain, zipped):
            etag = response.headers["ETag"]
            again = get(server.url + path, **{"If-None-Match": etag,
                                              "Accept-Encoding": response.headers.get(
                                                  "Content-Encoding", "identity")})
            assert again.status_code == 304 and again.content == b""
            assert again.headers["ETag"] == etag
            assert again.headers["Cache-Control"] == IMMUTABLE
        stale = get(server.url + path, **{"If-None-Match": '"0123456789abcdef01234567"'})
        assert stale.status_code == 200 and stale.content == plain.content

        # Any other URL of the file: the same bytes and ETag, the short max-age.
        for other in (bare, bare + "?v=00000000", bare + "?v="):
            response = get(server.url + other)
            assert response.status_code == 200 and response.content == plain.content
            assert response.headers["ETag"] == plain.headers["ETag"]
            assert response.headers["Cache-Control"] == f"public, max-age={SHORT_AGE}"

        # HEAD: the headers of GET, no body.
        head = requests.head(server.url + path, headers={"Accept-Encoding": "gzip"},
                             timeout=60)
        assert head.status_code == 200 and head.content == b""
        for header in ("ETag", "Cache-Control", "Content-Length", "Content-Encoding"):
            assert head.headers[header] == zipped.headers[header], header


def test_a_repeated_request_gets_the_same_answer(server: LiveServer) -> None:
    """The second request is answered by the replay layer: same headers, same bytes."""
    for path in (linked_stylesheet(server), "/static/style.css"):
        first, second = get(server.url + path), get(server.url + path)
        assert first.content == second.content
        assert first.headers["Cache-Control"] == second.headers["Cache-Control"]
        assert first.headers["ETag"] == second.headers["ETag"]
    assert get(server.url + "/static/style.css").headers["Cache-Control"] != IMMUTABLE


def test_the_etag_is_the_same_on_every_instance(tmp_path: Path, live_server_factory: Factory,
                                               apps: list[Flask]) -> None:
    one = start(live_server_factory, write_site(tmp_path / "one", POSTS), apps)
    other_posts = {**POSTS, "_posts/2022-02-02-more.md": post_text("More", "2022-02-02")}
    two = start(live_server_factory, write_site(tmp_path / "two", other_posts), apps)
    # The site's own XSLT, written at different times on the two: same bytes, same ETag.
    for number, name in enumerate(("one", "two")):
        path = tmp_path / name / "feed.xslt.xml"
        path.write_bytes(SITE_XSLT)
        os.utime(path, (1_000_000_000 + number * 86_400,) * 2)
    for path in ("/static/style.css", "/static/feed.xsl", "/feed.xslt.xml"):
        for coding in ("identity", "gzip"):
            answers = [get(s.url + path, **{"Accept-Encoding": coding}) for s in (one, two)]
            assert [a.status_code for a in answers] == [200, 200], path
            assert answers[0].headers["ETag"] == answers[1].headers["ETag"], (path, coding)
            assert "Last-Modified" not in answers[0].headers


def test_the_sites_own_xslt_is_served_and_follows_edits(tmp_path: Path,
                                                       live_server_factory: Factory,
                                                       apps: list[Flask]) -> None:
    folder = write_site(tmp_path / "site", POSTS)
    server = start(live_server_factory, folder, apps)
    assert get(server.url + "/feed.xslt.xml").status_code == 404

    own = folder / "feed.xslt.xml"
    own.write_bytes(SITE_XSLT)
    first = get(server.url + "/feed.xslt.xml")
    assert first.status_code == 200 and first.content == SITE_XSLT
    assert first.headers["Content-Type"] == "application/xslt+xml"
    assert first.headers["Cache-Control"] == f"public, max-age={SHORT_AGE}"
    assert "Last-Modified" not in first.headers
    assert get(server.url + "/feed.xslt.xml",
               **{"If-None-Match": first.headers["ETag"]}).status_code == 304

    # An edit is served at once, with a new ETag: the old one no longer gives a 304,
    # neither on the first request after the edit nor on a repeated one.
    edited = SITE_XSLT.replace(b"our own", b"our own, edited")
    own.write_bytes(edited)
    for _ in range(2):
        answer = get(server.url + "/feed.xslt.xml", **{"If-None-Match": first.headers["ETag"]})
        assert answer.status_code == 200 and answer.content == edited
        assert answer.headers["ETag"] != first.headers["ETag"]

    own.unlink()
    assert get(server.url + "/feed.xslt.xml").status_code == 404


def test_nothing_else_is_served_from_the_static_folders(server: LiveServer) -> None:
    for path in ("/static/", "/static/nothing.css", "/static/style.css/x",
                 "/static/../feeds/__init__.py", "/static/%2e%2e/__init__.py",
                 "/static/__init__.py", "/static/feed.xsl.bak"):
        assert get(server.url + path).status_code == 404, path
    assert requests.post(server.url + "/static/style.css", timeout=60).status_code == 405
