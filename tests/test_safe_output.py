"""Safe output: post HTML sanitised before it reaches a feed or page, every text escaped
on HTML pages, no URL that reads outside the loaded posts, unknown methods refused, and
caches that stay inside their byte bounds whatever URLs arrive."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from lxml import etree
from lxml import html as lxml_html
from waitress import wasyncore
from waitress.server import create_server

from feeds import create_app
from feeds.render import feed_title
from feeds.service import FeedService

from .conftest import make_settings, post_text, validate_json_feed, write_site

SITE = "https://safe.example"
CONFIG = f"title: Safe\nurl: {SITE}\ntimezone: UTC\n"

ORDINARY_MARKDOWN = """\
Some *emphasis*, **strong**, `code` and a [link](https://example.com/page).

![A picture](https://example.com/pic.png "Picture title")

<img src="/images/local.png" alt="local image">

- one
- two

> quoted

| a | b |
|---|---|
| 1 | 2 |

"""
ORDINARY_HTML = """\
<p>Some <em>emphasis</em>, <strong>strong</strong>, <code>code</code> and a
<a href="https://example.com/page">link</a>.</p>
<p><img src="https://example.com/pic.png" alt="A picture" title="Picture title"></p>
<img src="/images/local.png" alt="local image">
<ul><li>one</li><li>two</li></ul>
<blockquote><p>quoted</p></blockquote>
<table><thead><tr><th>a</th><th>b</th></tr></thead><tbody><tr><td>1</td><td>2</td></tr>
</tbody></table>
"""
HOSTILE_BODY = """\
<script>alert("script")</script>
<SCRIPT SRC=//evil.example/x.js></SCRIPT>
<iframe src="https://evil.example/frame"></iframe>
<img src="https://example.com/x.png" onerror="alert('img')" alt="with handler">
<a href="javascript:alert(1)">js link</a>
<a href="JaVaScRiPt:alert(2)">mixed case</a>
<a href="  javascript:alert(3)">leading space</a>
<a href="java&#x09;script:alert(4)">entity tab</a>
<a href="&#106;avascript:alert(5)">entity j</a>
<a href="vbscript:msgbox(6)">vbscript</a>
<svg onload="alert(7)"><circle r="1"/></svg>
<div onmouseover="alert(8)" style="background:url(javascript:alert(9))">styled</div>
<object data="evil.swf"></object><embed src="evil.swf">
<form action="https://evil.example/post"><input name="x" onfocus="alert(10)"></form>
<math><mi xlink:href="javascript:alert(11)">m</mi></math>
<meta http-equiv="refresh" content="0;url=javascript:alert(12)">
<base href="https://evil.example/">
<link rel="stylesheet" href="https://evil.example/x.css">
<p onclick="alert(13)">para with handler</p>
<style>body { display: none }</style>

[markdown js](javascript:alert(14))
"""

DANGEROUS_ELEMENTS = {"script", "iframe", "object", "embed", "form", "input", "style",
                      "meta", "base", "link", "frame", "frameset", "applet"}
URL_ATTRIBUTES = {"href", "src", "action", "formaction", "data", "xlink:href", "poster",
                  "background", "srcset"}


def assert_safe_html(fragment: str, where: str) -> lxml_html.HtmlElement:
    """Parse post HTML as a browser would and assert nothing in it can run script."""
    root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    for element in root.iter():
        tag = element.tag if isinstance(element.tag, str) else ""
        assert tag.lower() not in DANGEROUS_ELEMENTS, (where, tag)
        for name, value in element.attrib.items():
            assert not name.lower().startswith("on"), (where, tag, name)
            if name.lower() in URL_ATTRIBUTES or name.lower().endswith("href"):
                squeezed = "".join(value.split()).lower()
                assert not squeezed.startswith(("javascript:", "vbscript:", "data:text")), \
                    (where, tag, name, value)
            assert "javascript" not in value.lower(), (where, tag, name, value)
    return root


def assert_ordinary_markup_kept(root: lxml_html.HtmlElement, where: str) -> None:
    assert root.xpath("//em/text()") == ["emphasis"], where
    assert root.xpath("//strong/text()") == ["strong"], where
    assert root.xpath("//code/text()") == ["code"], where
    assert "https://example.com/page" in root.xpath("//a/@href"), where
    images = {img.get("src"): img.get("alt") for img in root.iter("img")}
    assert images["https://example.com/pic.png"] == "A picture", where
    assert images[f"{SITE}/images/local.png"] == "local image", where
    assert images["https://example.com/x.png"] == "with handler", where
    assert root.xpath("//li/text()") == ["one", "two"], where
    assert root.xpath("normalize-space(//blockquote)") == "quoted", where
    assert root.xpath("//table//td/text()") == ["1", "2"], where
    # The links whose URL was removed keep their text.
    for text in ("js link", "mixed case", "entity tab", "vbscript", "para with handler"):
        assert text in root.text_content(), (where, text)


@pytest.fixture
def hostile_app(tmp_path: Path) -> Iterator[Flask]:
    root = write_site(tmp_path / "site", {
        "_posts/2021-05-01-zoo.md": post_text("Zoo", "2021-05-01 08:00:00", "[news]",
                                              "[xss]", ORDINARY_MARKDOWN + HOSTILE_BODY),
        "_posts/2021-05-02-html.html": post_text("Raw HTML post", "2021-05-02 08:00:00",
                                                 "[news]", "[xss]",
                                                 ORDINARY_HTML + HOSTILE_BODY),
    }, config=CONFIG)
    (tmp_path / "secret.txt").write_text("TOP-SECRET-OUTSIDE\n")
    (root / "secret.md").write_text("TOP-SECRET-INSIDE\n")
    app = create_app(make_settings(root), watch=False)
    yield app
    app.extensions["feeds"].stop()


def test_post_html_is_sanitised_in_every_feed_and_page(hostile_app: Flask) -> None:
    client = hostile_app.test_client()
    atom = feedparser.parse(client.get("/tag/xss.atom").data)
    assert not atom.bozo
    # Atom: the raw text of <content type="html">, as lxml reads it (not feedparser's own
    # sanitised copy, which would hide what the service sent).
    tree = etree.fromstring(client.get("/tag/xss.atom").data)
    contents = tree.findall(".//{http://www.w3.org/2005/Atom}content")
    assert len(contents) == 2
    fragments = {f"atom {i}": c.text or "" for i, c in enumerate(contents)}
    rss = etree.fromstring(client.get("/tag/xss.rss").data)
    for i, item in enumerate(rss.iter("item")):
        encoded = item.findtext("{http://purl.org/rss/1.0/modules/content/}encoded")
        fragments[f"rss {i}"] = encoded or item.findtext("description") or ""
    feed = validate_json_feed(client.get("/tag/xss.json").data)
    for item in feed["items"]:
        fragments[f"json {item['title']}"] = item["content_html"]
    for where, fragment in fragments.items():
        assert_ordinary_markup_kept(assert_safe_html(fragment, where), where)

    for url in ("/news/2021/05/01/zoo.html", "/news/2021/05/02/html.html"):
        page = client.get(url)
        assert page.status_code == 200
        doc = lxml_html.fromstring(page.data)
        assert doc.xpath("//script | //iframe | //object | //embed | //form") == []
        assert [a for e in doc.iter() if isinstance(e.tag, str)
                for a in e.attrib if a.lower().startswith("on")] == []
        assert not [v for v in doc.xpath("//@href | //@src")
                    if "".join(v.split()).lower().startswith("javascript:")]
        assert doc.xpath("//img[@alt='A picture']/@src") == ["https://example.com/pic.png"]


ESCAPE_TITLE = '<script>alert("t")</script> & <b>bold</b> "quoted"'
ESCAPE_TAG = "<img src=x onerror=alert(1)>"
ESCAPE_CATEGORY = '"><svg onload=alert(2)>'


@pytest.fixture
def escaping_app(tmp_path: Path) -> Iterator[Flask]:
    root = write_site(tmp_path / "site", {
        "_posts/2021-06-01-escape.md": post_text(
            ESCAPE_TITLE, "2021-06-01 08:00:00", json.dumps([ESCAPE_CATEGORY]),
            json.dumps([ESCAPE_TAG, "plain"]), "Body.",
            extra='author: "<i>Mallory</i>"\ndescription: "<em>desc</em> & more"\n'),
    }, config=CONFIG.replace("title: Safe", 'title: "<b>Safe</b> & sound"')
        + 'description: "<script>alert(3)</script>"\n')
    app = create_app(make_settings(root), watch=False)
    yield app
    app.extensions["feeds"].stop()


def test_every_text_on_an_html_page_is_escaped(escaping_app: Flask) -> None:
    client = escaping_app.test_client()
    feed = feedparser.parse(client.get("/feed.atom").data)
    (entry,) = feed.entries
    post_path = entry.link.removeprefix(SITE)
    tag_pages = [client.get(f"/tag/{name}.html") for name in ("plain",)]
    pages = {
        "index": client.get("/"),
        "post": client.get(post_path),
        "tag": tag_pages[0],
    }
    doc = lxml_html.fromstring(pages["post"].data)
    category_links = sorted({a.get("href") for a in doc.xpath("//a[@href]")
                             if "/category/" in a.get("href")})
    assert len(category_links) == 1
    pages["category"] = client.get(category_links[0].removeprefix(SITE))
    for name, response in pages.items():
        assert response.status_code == 200, name
        doc = lxml_html.fromstring(response.data)
        assert doc.xpath("//script | //svg | //b | //i") == [], name
        assert [a for e in doc.iter() if isinstance(e.tag, str)
                for a in e.attrib if a.lower().startswith("on")] == [], name
        # The hostile strings are there, as text.
        text = doc.text_content()
        assert "<b>Safe</b> & sound" in doc.findtext(".//title"), name
        if name in ("index", "post", "tag", "category"):
            assert ESCAPE_TITLE in text, name
    post = lxml_html.fromstring(pages["post"].data)
    assert ESCAPE_TAG in post.text_content()
    assert ESCAPE_CATEGORY in post.text_content()
    assert "<i>Mallory</i>" in post.text_content()
    # Feeds carry the same strings as text: the title as jekyll-feed writes titles
    # (smartified, inline tags stripped), the names exactly.
    assert entry.title == feed_title(ESCAPE_TITLE)
    assert "&" in entry.title and "alert" not in entry.title
    assert {t.term for t in entry.tags} == {ESCAPE_CATEGORY, ESCAPE_TAG, "plain"}
    opml = etree.fromstring(client.get("/feeds.opml").data)
    assert f"<b>Safe</b> & sound · {ESCAPE_TAG}" in opml.xpath("//outline/@title")


# --- URLs that must not read anything ----------------------------------------------------


@pytest.fixture
def server(hostile_app: Flask) -> Iterator[int]:
    """A real waitress; shut down from its own loop thread (see test_http_e2e)."""
    waitress = create_server(hostile_app, host="127.0.0.1", port=0, threads=4)
    thread = threading.Thread(target=waitress.run, daemon=True)
    thread.start()
    try:
        yield int(waitress.effective_port)
    finally:
        waitress.task_dispatcher.shutdown()
        waitress.trigger.pull_trigger(lambda: wasyncore.close_all(waitress._map))
        thread.join(10)


def raw_request(port: int, method: str, path: str) -> tuple[int, bytes, dict[str, str]]:
    """Send the path exactly as written (no client-side normalisation)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.putrequest(method, path, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read(), dict(response.getheaders())
    finally:
        connection.close()


TRAVERSALS = [
    "/../secret.txt", "/../../etc/passwd", "/%2e%2e/secret.txt", "/%2e%2e/%2e%2e/etc/passwd",
    "/static/../../secret.txt", "/static/..%2f..%2fsecret.txt", "/static/%2e%2e/app.py",
    "/static/..%5c..%5capp.py", "/category/..%2F..%2Fsecret.atom", "/tag/../../secret.md",
    "/feed/..%2F..%2Fsecret.xml", "/feed/by_tag/..%2F..%2Fsecret.xml", "/secret.md",
    "/secret", "/_config.yml", "/_posts/2021-05-01-zoo.md", "//etc/passwd",
    "/news/2021/05/01/zoo.md", "/static/style.css/../../../app.py", "/%00", "/static/%00",
    "/..%00/secret.txt", "/news/2021/05/01/..%2F..%2F..%2F..%2Fsecret.md",
]
LISTINGS = ["/static/", "/_posts/", "/category/", "/tag/", "/feed/", "/feed/by_tag/",
            "/news/", "/news/2021/", "/news/2021/05/01/"]


def test_no_url_reads_outside_the_loaded_posts(server: int) -> None:
    for path in TRAVERSALS + LISTINGS:
        status, body, _headers = raw_request(server, "GET", path)
        assert status in (400, 404), (path, status)
        assert b"TOP-SECRET" not in body and b"root:" not in body, path
        assert b"alert(" not in body, path  # no raw post source either
    # What is served is what was loaded.
    status, body, _ = raw_request(server, "GET", "/static/style.css")
    assert status == 200 and body


METHODS = ["POST", "PUT", "DELETE", "PATCH", "TRACE", "PROPFIND", "BREW"]
PATHS = ["/", "/feed.atom", "/feed.xml", "/category/news.rss", "/tag/xss.json",
         "/news/2021/05/01/zoo.html", "/feeds.opml", "/healthz", "/static/style.css",
         "/no/such/page.html"]


def test_unknown_methods_are_405(server: int) -> None:
    for path in PATHS:
        for method in METHODS:
            status, _body, headers = raw_request(server, method, path)
            assert status == 405, (method, path, status)
            allowed = {m.strip() for m in headers.get("Allow", "").split(",")}
            assert "GET" in allowed and method not in allowed, (method, path, allowed)
        status, body, _ = raw_request(server, "HEAD", path)
        assert status in (200, 404) and body == b"", path


# --- bounded caches ----------------------------------------------------------------------


def cache_sizes(service: FeedService) -> dict[str, tuple[float, float]]:
    kept = service.cache
    caches: dict[str, Any] = {"responses": kept._responses, "signatures": kept._signatures,
                              "bodies": kept.bodies._bodies, "history": kept._history}
    return {name: (cache.currsize, cache.maxsize) for name, cache in caches.items()}


def test_a_flood_of_distinct_urls_stays_inside_the_cache_bounds(tmp_path: Path) -> None:
    posts = {f"_posts/2021-07-{n % 28 + 1:02d}-post-{n}.md":
             post_text(f"Post {n}", f"2021-07-{n % 28 + 1:02d}", f"[c{n % 3}]",
                       f"[t{n % 4}, every]", f"Body {n}. " + "Lorem ipsum dolor. " * 60)
             for n in range(40)}
    # No url in the config: the base URL comes from the Host header, so distinct hosts
    # make distinct responses too.
    root = write_site(tmp_path / "site", posts, config="title: Flood\n")
    app = create_app(make_settings(root, cache_bytes=300_000, body_cache_bytes=60_000),
                     watch=False)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    served = 0
    try:
        for limit in range(1, 41):
            for path in ("/feed.atom", "/tag/every.rss", "/category/c1.json", "/tag/t2.atom"):
                response = client.get(f"{path}?limit={limit}")
                assert response.status_code == 200
                served += len(response.data)
        for host in range(60):
            response = client.get("/feed.json?limit=40", headers={"Host": f"h{host}.example"})
            assert response.status_code == 200
            assert json.loads(response.data)["items"][0]["url"].startswith(
                f"http://h{host}.example/")
            served += len(response.data)
            for name, (size, bound) in cache_sizes(service).items():
                assert size <= bound, (name, size, bound)
        assert served > 10 * 300_000  # the bounds were really put to the test
        for name, (size, bound) in cache_sizes(service).items():
            assert 0 < size <= bound, (name, size, bound)
        # Requests that find nothing cache nothing.
        entries = len(service.cache._responses)
        for n in range(300):
            assert client.get(f"/tag/no-such-tag-{n}.atom").status_code == 404
            assert client.get(f"/feed.atom?limit=x{n}").status_code == 400
            assert client.get(f"/no/such/page-{n}.html").status_code == 404
        assert len(service.cache._responses) == entries
    finally:
        service.stop()


def test_the_caches_count_their_keys_in_their_bounds(tmp_path: Path) -> None:
    """Issue 15, item 3: small answers under long keys (distinct 249-character Hosts,
    no --base-url) fill the caches; what they hold, keys and values, stays within each
    bound (the values alone did, and the keys came on top, as many as there were)."""
    from feeds.rendered import key_bytes

    posts = {f"_posts/2021-07-{n + 1:02d}-p{n}.md": post_text(f"P{n}", f"2021-07-{n + 1:02d}")
             for n in range(5)}
    root = write_site(tmp_path / "site", posts, config="title: Keys\n")
    app = create_app(make_settings(root, cache_bytes=60_000, body_cache_bytes=20_000),
                     watch=False)
    service: FeedService = app.extensions["feeds"]
    kept = service.cache
    client = app.test_client()
    try:
        for n in range(300):
            host = f"h{n:03d}." + ".".join(["x" * 60] * 4)  # 249 characters
            response = client.get("/feed.json?limit=1", headers={"Host": host})
            assert response.status_code == 200
            assert json.loads(response.data)["home_page_url"].startswith(f"http://{host}/")
        for name, cache in (("responses", kept._responses), ("signatures", kept._signatures),
                            ("bodies", kept.bodies._bodies)):
            held = sum(cache.getsizeof(value) + key_bytes(key) for key, value in cache.items())
            assert 3 < len(cache) < 300, name  # filled, and emptied as it went
            assert held <= cache.maxsize, (name, held, cache.maxsize)
    finally:
        service.stop()


def test_key_bytes_counts_every_field_of_a_record_and_nothing_of_a_type() -> None:
    """The byte bound's key sizes: a record (a post in a key) counts its fields, nested,
    each time; a class itself, or any other object, is a small constant."""
    from dataclasses import dataclass

    from feeds.rendered import key_bytes

    @dataclass(frozen=True)
    class Inner:
        name: str

    @dataclass(frozen=True)
    class Outer:
        title: str
        inner: Inner
        parts: tuple[str, ...]

    inner = key_bytes(Inner("x" * 100))
    assert inner == 56 + 49 + 100
    outer = key_bytes(Outer("t" * 10, Inner("x" * 100), ("a", "bb")))
    assert outer == 56 + (49 + 10) + inner + (56 + 8 * 2 + 50 + 51)
    assert key_bytes((Outer("", Inner(""), ()), "k")) == 56 + 16 + key_bytes(
        Outer("", Inner(""), ())) + 50
    assert key_bytes(Outer) == key_bytes(object()) == 32


def test_a_feed_signature_is_sized_as_key_bytes_sizes_it(tmp_path: Path) -> None:
    """The signatures cache sizes its keys by their known shape, without key_bytes' walk
    of every post's stamp; it must give key_bytes' figure for every signature made,
    Liquid versions and all."""
    from feeds.cache import _signature_bytes
    from feeds.rendered import key_bytes

    posts = {f"_posts/2021-09-{n + 1:02d}-s{n}.md":
             post_text(f"S{n}", f"2021-09-{n + 1:02d}", "[c]", "[t]",
                       "Site {{ site.title }}." if n % 2 else "Plain.") for n in range(6)}
    root = write_site(tmp_path / "site", posts, config=CONFIG)
    app = create_app(make_settings(root), watch=False)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    try:
        for path in ("/feed.atom", "/feed.rss", "/feed.json?limit=2", "/category/c.atom",
                     "/tag/t.json", "/feed.atom"):
            assert client.get(path).status_code == 200
        signatures = list(service.cache._signatures.keys())
        assert len(signatures) >= 5
        assert any(liquid for *_, posts_part in signatures for _, _, liquid in posts_part)
        for signature in signatures:
            assert _signature_bytes(signature) == key_bytes(signature)
        assert _signature_bytes(("not", "a", "signature")) == key_bytes(("not", "a", "signature"))
    finally:
        service.stop()


def test_a_response_bigger_than_the_whole_cache_is_served_not_cached(tmp_path: Path) -> None:
    posts = {f"_posts/2021-08-{n + 1:02d}-big-{n}.md":
             post_text(f"Big {n}", f"2021-08-{n + 1:02d}", "[big]", "[]",
                       "Long paragraph. " * 2000) for n in range(5)}
    root = write_site(tmp_path / "site", posts, config=CONFIG)
    app = create_app(make_settings(root, cache_bytes=20_000, body_cache_bytes=10_000),
                     watch=False)
    service: FeedService = app.extensions["feeds"]
    try:
        client = app.test_client()
        for path in ("/feed.atom", "/category/big.rss", "/feed.json",
                     "/big/2021/08/01/big-0.html"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert len(response.data) > 20_000
        assert len(feedparser.parse(client.get("/feed.atom").data).entries) == 5
        for name, (size, bound) in cache_sizes(service).items():
            assert size <= bound, (name, size, bound)
    finally:
        service.stop()


SHARED_CLEANER_CASES = [
    '<p>All absolute: <a href="https://e.example/a">a</a> <img src="https://e.example/i.png"></p>',
    '<p><a href="/root/page.html">root</a> and <a href="../up.html">up</a></p>',
    '<p>Footnote<sup><a href="#fn:1">1</a></sup></p><p id="fn:1">note</p>',
    '<p><a href="">empty</a> <a href=" https://e.example/">spaced</a></p>',
    '<p><a href="//cdn.example/x">scheme-relative</a> <img src="pic.png"></p>',
    '<video poster="poster.jpg" src="https://v.example/x.mp4"></video>',
    '<p>Text that reads href="nothing" and <a href="mailto:a@b.example">mail</a></p>',
    '<p><a href="javascript:alert(1)">no</a> <a href="1http://x">digit</a></p>',
]


@pytest.mark.parametrize("raw", SHARED_CLEANER_CASES)
def test_a_body_is_cleaned_as_with_its_own_pages_sanitiser(raw: str) -> None:
    """sanitise cleans with one shared sanitiser and again with the page's only when a
    URL may be relative: its result is what ammonia gives with the page's URL as base."""
    import nh3

    from feeds.parse import sanitise as module

    page = "https://safe.example/2024/05/06/post.html"
    own = nh3.Cleaner(
        tags=module._TAGS - {"iframe"}, clean_content_tags={"script", "style"},
        attributes=module._ATTRIBUTES, url_schemes=module._URL_SCHEMES, link_rel=None,
        url_relative=("rewrite_with_base", page),
        filter_style_properties=module.STYLE_PROPERTIES).clean(raw)
    got = module.sanitise(raw, page)
    assert got == own
    relative = lxml_html.fragment_fromstring(got, create_parent="div").xpath(
        "//@href[not(contains(., ':'))] | //@src[not(contains(., ':'))]")
    assert relative == []  # nothing left relative, whichever sanitiser cleaned it
