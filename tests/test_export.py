"""``feeds build``: the static export is, file by file, what a live waitress server
answers for the same content and base URL; it covers every URL a reader can reach from
the home page or a feed; a second run rewrites only what changed and removes what is
gone."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit

import pytest
import requests
from lxml import etree
from lxml import html as lxml_html

from feeds import buildstate, buildwork, create_app, export
from feeds.bodies import BodyCache
from feeds.config import Settings

from .conftest import LiveServer, make_settings, post_text, write_site

BASE = "https://feeds.example.org"
Factory = Callable[..., LiveServer]


def site(root: Path) -> Path:
    posts = {
        f"_posts/2022-01-{1 + i % 28:02d}-news-{i}.md": post_text(
            f"News {i}", f"2022-01-{1 + i % 28:02d} {i % 24:02d}:00:00 +0800", "[news]",
            "[python]" if i % 2 else "[红网新闻]")
        for i in range(45)  # more than a page (20) of the site, news and both tags
    }
    posts.update({
        "_posts/2022-03-01-slash.md": post_text(
            "Names that need escapes", "2022-03-01", "[随笔]", '["a/b", "C#", "open source"]'),
        "_posts/2022-03-02-pretty.md": post_text(
            "Pretty permalink", "2022-03-02", "[随笔]", "[pretty]",
            extra="permalink: /about/pretty/\n"),
        "_posts/2022-03-03-中文标题.md": post_text(
            "中文标题", "2022-03-03", "[随笔]", "[solo]"),
    })
    return write_site(root, posts)


OWN = (export.MANIFEST, buildstate.STATE_FILE)
"""The build's own files in OUT: its list of files and what it made them from."""


def files(out: Path) -> dict[str, bytes]:
    """Every file the build wrote (relative path on disk -> bytes), its own aside."""
    return {p.relative_to(out).as_posix(): p.read_bytes() for p in sorted(out.rglob("*"))
            if p.is_file() and p.name not in OWN}


def url_of(rel: str) -> str:
    """The URL a file stands for: its path percent-encoded again, its query kept."""
    path, _, query = rel.partition("?")
    if path.endswith("index.html"):
        path = path[: -len("index.html")]
    url = "/" + quote(path, safe="/~!$&'()*+,;=:@")
    return f"{url}?{query}" if query else url


def build(settings: Settings, out: Path) -> export.BuildResult:
    result = export.run(settings, str(out))
    assert result.failed == 0
    return result


def assert_matches_live(out: Path, settings: Settings, factory: Factory) -> dict[str, bytes]:
    """Fetch every file's URL from a live waitress server for the same content and base
    URL; the bytes must be the same."""
    app = create_app(settings, watch=False)
    try:
        live = factory(app)
        written = files(out)
        assert written
        with requests.Session() as http:
            for rel, data in written.items():
                response = http.get(live.url + url_of(rel), timeout=60,
                                    headers={"Accept-Encoding": "identity"})
                assert response.status_code == 200, rel
                assert response.content == data, rel
        return written
    finally:
        app.extensions["feeds"].stop()


def links(body: bytes, content_type: str) -> set[str]:
    """Every URL a reader or feed reader can follow from a response, parsed by type."""
    found: set[str] = set()
    if content_type.startswith("text/html"):
        doc = lxml_html.fromstring(body)
        found.update(doc.xpath("//a/@href | //link/@href"))
    elif "json" in content_type:
        feed = json.loads(body)
        found.update(feed.get(k, "") for k in ("home_page_url", "feed_url", "next_url"))
        found.update(item.get("url", "") for item in feed.get("items", []))
    elif "xml" in content_type or "opml" in content_type:
        root = etree.fromstring(body)
        for element in root.iter():
            if not isinstance(element.tag, str):
                continue
            found.update(v for k, v in element.attrib.items()
                         if k in ("href", "xmlUrl", "htmlUrl"))
            name = etree.QName(element).localname
            permalink = name == "guid" and element.get("isPermaLink") != "false"
            if (name == "link" or permalink) and element.text:
                found.add(element.text.strip())
    return {url for url in found if url}


def crawl(live: LiveServer, limit: int = 3000) -> dict[str, bytes]:
    """Paths (with query) of the site reachable from '/', the site feeds and the OPML,
    each answered 200 by the live server, with the bytes it answered."""
    seen: set[str] = set()
    queue = ["/", "/feed.atom", "/feed.rss", "/feed.json", "/feeds.opml"]
    reached: dict[str, bytes] = {}
    with requests.Session() as http:
        while queue and len(seen) < limit:
            path = queue.pop()
            if path in seen:
                continue
            seen.add(path)
            response = http.get(live.url + path, timeout=60,
                                headers={"Accept-Encoding": "identity"})
            if response.status_code != 200:
                continue
            reached[path] = response.content
            for url in links(response.content, response.headers["Content-Type"]):
                parts = urlsplit(url)
                if url.startswith(BASE + "/") or (not parts.scheme and url.startswith("/")
                                                  and not url.startswith("//")):
                    local = parts.path + (f"?{parts.query}" if parts.query else "")
                    queue.append(local)
    assert len(seen) < limit
    return reached


def test_build_is_the_live_site_file_by_file(tmp_path: Path,
                                             live_server_factory: Factory) -> None:
    settings = make_settings(site(tmp_path / "site"), base_url=BASE)
    out = tmp_path / "out"
    result = build(settings, out)
    written = assert_matches_live(out, settings, live_server_factory)
    assert result.files == result.written == len(written)
    assert result.posts == 48 and result.rejected == 0

    # Paths on disk are percent-decoded; names with the service's escapes keep them.
    for rel in ["tag/红网新闻.atom", "tag/红网新闻.rss", "tag/红网新闻.json",
                "category/随笔.html", "tag/a~2Fb.atom", "tag/C~23.json",
                "tag/open source.rss", "feed.atom?page=2", "feed.atom?page=5",
                "category/news.html?page=3", "about/pretty/index.html", "feeds.opml",
                "feed.xml", "feed/news.xml", "feed/by_tag/python.xml", "static/style.css"]:
        assert rel in written, rel
    assert "feed.atom?page=6" not in written  # 48 posts, 10 a page

    # Nothing a reader can reach is missing.
    app = create_app(settings, watch=False)
    try:
        reachable = crawl(live_server_factory(app))
    finally:
        app.extensions["feeds"].stop()
    assert len(reachable) > 100
    for path, body in reachable.items():
        exact = export.target(out, path)
        if not exact.exists() and "?" in path:
            # A query the build does not keep (the stylesheet's '?v=' cache buster): a
            # static host answers with the file of the bare path, which must be the same.
            exact = export.target(out, path.partition("?")[0])
        assert exact.is_file() and exact.read_bytes() == body, path


def test_a_second_build_rewrites_only_what_changed_and_removes_what_is_gone(
        tmp_path: Path, live_server_factory: Factory) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    build(settings, out)

    def mtimes() -> dict[str, int]:
        return {p.relative_to(out).as_posix(): p.stat().st_mtime_ns
                for p in out.rglob("*") if p.is_file() and p.name not in OWN}

    first, stamps = files(out), mtimes()
    again = build(settings, out)
    assert (again.written, again.removed) == (0, 0)
    assert mtimes() == stamps

    # Edit one post: exactly the files whose bytes changed are rewritten.
    (root / "_posts/2022-03-01-slash.md").write_text(post_text(
        "Names that need escapes, edited", "2022-03-01", "[随笔]",
        '["a/b", "C#", "open source"]'), "utf-8")
    edited = build(settings, out)
    second, after = files(out), mtimes()
    changed = {rel for rel in second if second[rel] != first.get(rel)}
    assert edited.written == len(changed) and edited.removed == 0
    assert {rel for rel in after if after[rel] != stamps.get(rel)} == changed
    assert {"feed.atom", "tag/a~2Fb.atom", "category/随笔.rss"} <= changed
    assert not {"category/news.atom", "tag/python.json", "tag/solo.atom"} & changed
    assert_matches_live(out, settings, live_server_factory)

    # Delete a post: its page, its only tag's files and the folders left empty go.
    (root / "_posts/2022-03-03-中文标题.md").unlink()
    pruned = build(settings, out)
    third = files(out)
    gone = set(second) - set(third)
    assert pruned.removed == len(gone) and not set(third) - set(second)
    assert {"tag/solo.atom", "tag/solo.html", "feed/by_tag/solo.xml"} <= gone
    assert any(rel.endswith("中文标题.html") for rel in gone)
    assert not [p for p in out.rglob("*") if p.is_dir() and not any(p.iterdir())]
    manifest = (out / export.MANIFEST).read_text("utf-8").splitlines()
    assert sorted(manifest) == sorted(third)
    assert_matches_live(out, settings, live_server_factory)


def test_a_body_shown_at_two_bases_is_marked_up_once(tmp_path: Path,
                                                     marked_up: list[str]) -> None:
    """Entries are made at the site's url (https://example.org), the post's own page where
    the service is reached (BASE): the Liquid and Markdown of a body, its excerpt's too,
    are made once and each base gets its own URLs, exactly as a fresh rendering gives."""
    from feeds.parse import render_body

    text = "First, see ![a map](map.png).\n\nMore in [the notes](notes.html).\n"
    root = write_site(tmp_path / "site", {
        "_posts/2022-05-01-two.md": post_text("Two bases", "2022-05-01", body=text)})
    app = create_app(make_settings(root, base_url=BASE), watch=False)
    client = app.test_client()
    try:
        feed = client.get("/feed.atom")
        entry = etree.fromstring(feed.data).find("{http://www.w3.org/2005/Atom}entry")
        assert entry is not None
        link = entry.find("{http://www.w3.org/2005/Atom}link").get("href")
        path = urlsplit(link).path
        page = client.get(path)
        again = client.get("/feed.json")
    finally:
        app.extensions["feeds"].stop()
    assert link == "https://example.org" + path
    assert feed.status_code == page.status_code == again.status_code == 200
    assert len(marked_up) == 2  # the body and its excerpt (the first paragraph), once each
    content = entry.findtext("{http://www.w3.org/2005/Atom}content")
    at_site = render_body(text, "markdown", link)
    here = render_body(text, "markdown", BASE + path)
    assert content == at_site.html != here.html
    folder = path.rsplit("/", 1)[0]
    assert lxml_html.fromstring(content).xpath("//img/@src") == [
        f"https://example.org{folder}/map.png"]
    shown = lxml_html.fromstring(page.data).xpath("//article//img/@src")
    assert shown == [f"{BASE}{folder}/map.png"]
    summary = json.loads(again.data)["items"][0]["summary"]
    assert summary == "First, see ."  # the excerpt's text (the image has none)


def test_a_build_retires_each_body_once_past_it_and_never_makes_one_twice(
        tmp_path: Path, marked_up: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A build drops the bodies and entries of the posts its URLs have gone past
    (buildwork.Sweep): here after every post, not every 500. Its files are a build's
    that drops none, each body is still made once, and every post but the oldest (on
    the last URLs) is retired."""
    # (No render helper: each body counted is made here.)
    settings = make_settings(site(tmp_path / "site"), base_url=BASE, render_workers=1)
    kept_all = build(settings, tmp_path / "kept")  # 48 posts: no step of 500 is reached
    made_once = len(marked_up)
    assert kept_all.posts == 48 and made_once >= 48

    retired: list[set[str]] = []
    real_retire = BodyCache.retire

    def retire(self: BodyCache, sources: set[str]) -> None:
        retired.append(set(sources))
        real_retire(self, sources)

    monkeypatch.setattr(BodyCache, "retire", retire)
    monkeypatch.setattr(buildwork.Sweep, "STEP", 1)
    marked_up.clear()
    build(settings, tmp_path / "swept")
    assert files(tmp_path / "swept") == files(tmp_path / "kept")
    assert len(marked_up) == made_once
    app = create_app(settings, watch=False)
    try:
        posts = app.extensions["feeds"].state().index.posts
    finally:
        app.extensions["feeds"].stop()
    every = [p.source for p in posts]
    assert len(retired) > 10
    assert set().union(*retired) == set(every[:-1])
    assert sum(map(len, retired)) == len(every) - 1  # each once


def test_a_retired_body_is_made_again_when_it_is_asked_for(
        tmp_path: Path, marked_up: list[str]) -> None:
    settings = make_settings(site(tmp_path / "site"), base_url=BASE)
    app = create_app(settings, watch=False)
    client = app.test_client()
    svc = app.extensions["feeds"]
    try:
        assert client.get("/feed.atom").status_code == 200
        first = len(marked_up)
        assert first >= 10
        newest = {p.source for p in svc.state().index.posts[:3]}
        svc.cache.bodies.retire(newest)
        rss = client.get("/feed.rss")  # its entries: the bodies kept, three made again
        assert rss.status_code == 200 and len(marked_up) == first + 3
        assert client.get("/feed.json").status_code == 200
        assert len(marked_up) == first + 3
        fresh = create_app(settings, watch=False)
        try:
            assert fresh.test_client().get("/feed.rss").data == rss.data
        finally:
            fresh.extensions["feeds"].stop()
    finally:
        svc.stop()
