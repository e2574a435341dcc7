"""A feed opened in a real browser: Debian's headless Chromium, driven by Playwright,
against a real waitress serving the Chinese site of test_browser.py.

- Opening /feed.atom and a tag's .rss, as a person following the Atom and RSS buttons
  does, should show the XSLT's page: the feed's title, the note with the address to copy
  into a reader, the entries' links. Chromium 156 does not: it shows any response typed
  application/atom+xml or application/rss+xml as plain text and never reads its
  xml-stylesheet instruction (checked by hand with application/xml, where it does apply
  the XSLT, under a red "this site uses XSLT ... being removed" banner). The content types
  stay as they are (issue 14), so this is marked xfail, strict: it fails loudly once
  Chromium or the service changes. Its screenshots show what a person sees today.
- Chromium's own XSLT engine (XSLTProcessor) turns the very bytes the service sends, feed
  and XSLT, into that page, in the site's style: CJK fonts, dark mode, a phone's width.

Screenshots go to tmp_path and are copied to $FEEDS_SCREENS (default /tmp/screens)."""


from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import feedparser
import pytest
import requests

from .conftest import LiveServer
from .test_browser import (
    CHROMIUM,
    CHROMIUM_ARGS,
    SCREENS,
    SITE_TITLE,
    STEP_TIMEOUT_MS,
    TAG,
    chromium_or_skip,
    luminance,
    server,
)

__all__ = ["server"]  # the fixture, shared with test_browser.py

NOTE = "这是一个订阅源"
TAG_RSS = f"/tag/{quote(TAG)}.rss"
# Long enough for the XSLT to run on a loaded machine; short enough that the xfail
# (where it never runs) costs little.
RENDER_TIMEOUT_MS = 15_000


@contextlib.contextmanager
def browser(tmp_path: Path, requested: list[str]) -> Iterator[Any]:
    sync_api = chromium_or_skip()
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1000, "height": 800}, locale="zh-CN")
        try:
            context.set_default_timeout(STEP_TIMEOUT_MS)
            context.on("request", lambda request: requested.append(request.url))
            yield context
        finally:
            context.close()


def keep(shots: Path) -> None:
    with contextlib.suppress(OSError):  # a copy for people; the test does not need it
        SCREENS.mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, SCREENS / shot.name)


def entry_links(server: LiveServer, path: str) -> list[str]:
    parsed = feedparser.parse(requests.get(server.url + path, timeout=60).content)
    return [e.link for e in parsed.entries]


def check_feed_page(page: Any, sync_api: Any, title: str, feed_url: str,
                    links: list[str]) -> None:
    """What the XSLT's page must show: title, note and address, the entries' links."""
    expect = sync_api.expect
    expect(page.locator("h1")).to_have_text(title)
    note = page.locator(".feed-note")
    expect(note).to_be_visible()
    expect(note).to_contain_text(NOTE)
    expect(note.locator(".feed-url")).to_have_text(feed_url)
    titles = page.locator("ol.posts a.title")
    expect(titles).to_have_count(len(links))
    assert [titles.nth(i).get_attribute("href") for i in range(len(links))] == links
    expect(page.locator("ol.posts time").first).to_have_text("2024-05-01")


@pytest.mark.xfail(strict=True, reason=(
    "Chromium 156 shows application/atom+xml and application/rss+xml as plain text and "
    "never applies their xml-stylesheet; the content types must stay (issue 14)"))
def test_a_feed_opened_in_chromium_shows_the_xslt_page(server: LiveServer,
                                                       tmp_path: Path) -> None:
    shots = tmp_path / "screens"
    shots.mkdir()
    requested: list[str] = []
    sync_api = chromium_or_skip()
    try:
        with browser(tmp_path, requested) as context:
            page = context.pages[0] if context.pages else context.new_page()
            for path, title, shot in [
                    ("/feed.atom", SITE_TITLE, "feed-atom-as-opened.png"),
                    (TAG_RSS, f"{SITE_TITLE} · {TAG}", "feed-tag-rss-as-opened.png")]:
                page.goto(server.url + path)
                # Either the XSLT's page, or Chromium's plain-text view of the XML.
                page.locator(".feed-note, body > pre").first.wait_for(
                    timeout=RENDER_TIMEOUT_MS)
                page.screenshot(path=str(shots / shot), full_page=True)
                check_feed_page(page, sync_api, title, server.url + path,
                                entry_links(server, path))
    finally:
        keep(shots)
    assert all(u.startswith(server.url + "/") for u in requested), requested


TRANSFORM = """async ([feedPath]) => {
    const parse = async (url) => new DOMParser().parseFromString(
        await (await fetch(url)).text(), "application/xml");
    const feed = await parse(feedPath);
    const pi = [...feed.childNodes].find(
        (n) => n.nodeType === Node.PROCESSING_INSTRUCTION_NODE
               && n.target === "xml-stylesheet");
    const href = /href="([^"]*)"/.exec(pi.data)[1];
    const processor = new XSLTProcessor();
    processor.importStylesheet(await parse(new URL(href).pathname + new URL(href).search));
    const result = processor.transformToDocument(feed);
    document.replaceChild(document.importNode(result.documentElement, true),
                          document.documentElement);
    return href;
}"""


def test_chromium_runs_the_xslt_on_the_served_feed_in_the_sites_style(
        server: LiveServer, tmp_path: Path) -> None:
    shots = tmp_path / "screens"
    shots.mkdir()
    requested: list[str] = []
    sync_api = chromium_or_skip()
    try:
        with browser(tmp_path, requested) as context:
            page = context.pages[0] if context.pages else context.new_page()
            for path, title, shot in [("/feed.atom", SITE_TITLE, "feed-atom-xslt.png"),
                                      (TAG_RSS, f"{SITE_TITLE} · {TAG}",
                                       "feed-tag-rss-xslt.png")]:
                # A page of the same origin, so fetch() reaches the feed and the XSLT.
                page.goto(server.url + "/healthz")
                href = page.evaluate(TRANSFORM, [path])
                assert href.startswith("http://127.0.0.1:")  # from the Host sent
                assert "/static/feed.xsl?v=" in href
                check_feed_page(page, sync_api, title,
                                server.url + path, entry_links(server, path))
                # The site's style: the page's own fonts and colours, light and dark.
                body = "getComputedStyle(document.body)"
                assert "Noto Sans CJK SC" in page.evaluate(f"{body}.fontFamily")
                assert luminance(page.evaluate(f"{body}.backgroundColor")) > 0.9
                page.screenshot(path=str(shots / shot), full_page=True)
            page.emulate_media(color_scheme="dark")
            assert luminance(page.evaluate(
                "getComputedStyle(document.body).backgroundColor")) < 0.1
            page.screenshot(path=str(shots / "feed-tag-rss-xslt-dark.png"), full_page=True)
            page.emulate_media(color_scheme="light")
            page.set_viewport_size({"width": 390, "height": 844})
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{overflow}px wider than a 390px screen"
            page.screenshot(path=str(shots / "feed-tag-rss-xslt-phone.png"), full_page=True)
    finally:
        keep(shots)
    assert all(u.startswith(server.url + "/") for u in requested), requested
    assert {p.name for p in shots.iterdir()} == {
        "feed-atom-xslt.png", "feed-tag-rss-xslt.png", "feed-tag-rss-xslt-dark.png",
        "feed-tag-rss-xslt-phone.png"}
