"""What a person sees, in a real browser: Debian's headless Chromium, driven by Playwright
for Python, against a real waitress serving a site this test writes. It opens the index,
follows a Chinese tag to its page and a post from there, and checks what is on screen:
title, date in the site's zone, content, the source link and the feed links (which
answer). Then the index on a phone-sized screen (nothing wider than the screen) and the
post in dark mode. Every request the browser makes must go to this server.

Screenshots go to pytest's tmp_path and are copied to $FEEDS_SCREENS (default
/tmp/screens) for a person to look at. Without /usr/bin/chromium (scripts/test.sh
installs it) the test skips."""

# ruff: noqa: RUF001  (Chinese text: full-width punctuation is meant)

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import pytest

from feeds import create_app

from .conftest import LiveServer, make_settings, post_text, write_site

CHROMIUM = "/usr/bin/chromium"
# What a headless browser running as root on a closed network needs.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update"]
# Generous: a loaded CI machine can take many seconds to start Chromium; never unbounded.
STEP_TIMEOUT_MS = 90_000
SCREENS = Path(os.environ.get("FEEDS_SCREENS", "/tmp/screens"))

SITE_TITLE = "茶歇笔记 Teabreak Notes"
BUS_TITLE = "“夜归人专线”开通首周：末班车之后的城市"
BUS_SOURCE = "https://example.com/jiangpan-evening/city/2021-12-28/night-bus-lines"
BUS_FIRST = "本月二十日起，市公交集团试行开通三条深夜线路，被市民叫作“夜归人专线”。"

CONFIG = f"""\
title: "{SITE_TITLE}"
description: "城市见闻、开源工具，以及一杯红茶的工夫。"
timezone: Asia/Shanghai
lang: zh-CN
author: 林小满
"""

POSTS = {
    # 00:07 in Shanghai is still the 27th in UTC: the page must show the 28th.
    "_posts/2021-12-28-night-bus-line.md": post_text(
        BUS_TITLE, "2021-12-27 16:07:58 +0000", "news", "[城市, 日常]",
        body=f"<p>{BUS_FIRST}</p>\n\n开通第一周，记者在凌晨的站台上等了三趟车。\n\n"
             "## 试运行\n\n试运行为期三个月，票价与普通线路一致。",
        extra=f"source_url: {BUS_SOURCE}\n"),
    "_posts/2022-02-15-lantern-walk.md": post_text(
        "元宵夜，沿着河走了一圈", "2022-02-15 20:30:00 +0800", "随笔", "[城市, 节日]",
        body="吃过汤圆，已经快八点了。"),
    "_posts/2023-01-15-winter-reading.md": post_text(
        "A Winter Reading List", "2023-01-15", "[life]", "[books]",
        body="Five short books for cold evenings.", extra="lang: en\n"),
    "_posts/2024-05-01-trains.md": post_text(
        "五一假期首日：火车站客流创新高", "2024-05-01T08:30:00+08:00", "news", "[铁路, 城市]",
        body="今天是“五一”假期第一天。"),
}
TAG = "城市"


def chromium_or_skip() -> Any:
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"{CHROMIUM} is not installed (scripts/test.sh installs Debian's chromium)")
    sync_api = pytest.importorskip("playwright.sync_api",
                                   reason="Playwright for Python is not installed")
    return sync_api


@pytest.fixture
def server(tmp_path: Path,
           live_server_factory: Callable[..., LiveServer]) -> Iterator[LiveServer]:
    # No `url` in the config: links are made from the Host the browser sends.
    folder = write_site(tmp_path / "site", POSTS, CONFIG)
    app = create_app(make_settings(folder), watch=False)
    try:
        yield live_server_factory(app)
    finally:
        app.extensions["feeds"].stop()


def luminance(css_color: str) -> float:
    """Relative luminance (0 black .. 1 white) of an 'rgb(r, g, b)' computed colour."""
    inside = css_color[css_color.index("(") + 1:css_color.index(")")]
    r, g, b = (float(v) / 255 for v in inside.replace(",", " ").split()[:3])
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def test_a_reader_finds_a_post_through_a_chinese_tag(server: LiveServer,
                                                    tmp_path: Path) -> None:
    sync_api = chromium_or_skip()
    shots = tmp_path / "screens"
    shots.mkdir()
    requested: list[str] = []
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(
            str(tmp_path / "profile"), executable_path=CHROMIUM, args=CHROMIUM_ARGS,
            headless=True, viewport={"width": 1200, "height": 900}, locale="zh-CN",
            timezone_id="Europe/London")  # not the site's zone: the page must not care
        try:
            context.set_default_timeout(STEP_TIMEOUT_MS)
            context.on("request", lambda request: requested.append(request.url))
            page = context.pages[0] if context.pages else context.new_page()
            expect = sync_api.expect

            # The index: title, description, visible subscribe buttons, the tag list.
            page.goto(server.url + "/")
            expect(page).to_have_title(SITE_TITLE)
            expect(page.locator("h1")).to_have_text(SITE_TITLE)
            expect(page.locator(".tagline")).to_have_text("城市见闻、开源工具，以及一杯红茶的工夫。")
            subscribe = page.locator("header .subscribe a")
            expect(subscribe).to_have_text(["Atom", "RSS", "JSON Feed", "全部订阅（OPML）"])
            for i in range(4):
                expect(subscribe.nth(i)).to_be_visible()
            assert page.locator("script").count() == 0
            page.screenshot(path=str(shots / "index.png"), full_page=True)

            # A Chinese tag: its page lists its posts, newest first, and its feeds.
            tag_link = page.locator("section:has(#tags) a.term", has_text=TAG)
            expect(tag_link).to_have_count(1)
            expect(tag_link.locator("xpath=following-sibling::span[@class='count']")
                   ).to_have_text("3 篇")
            tag_link.click()
            page.wait_for_load_state()
            assert unquote(urlsplit(page.url).path) == f"/tag/{TAG}.html"
            expect(page.locator("h1")).to_have_text(f"标签 {TAG}")
            expect(page.locator("ol.posts a.title")).to_have_text(
                ["五一假期首日：火车站客流创新高", "元宵夜，沿着河走了一圈", BUS_TITLE])
            feeds = page.locator("main .subscribe a")
            expect(feeds).to_have_text(["Atom", "RSS", "JSON Feed"])
            hrefs = [unquote(urlsplit(feeds.nth(i).get_attribute("href") or "").path)
                     for i in range(3)]
            assert hrefs == [f"/tag/{TAG}.atom", f"/tag/{TAG}.rss", f"/tag/{TAG}.json"]
            page.screenshot(path=str(shots / "tag.png"), full_page=True)

            # The post: what a reader sees.
            page.locator("ol.posts a.title", has_text="夜归人专线").click()
            page.wait_for_load_state()
            article = page.locator("article")
            expect(article.locator("h1")).to_have_text(BUS_TITLE)
            expect(page).to_have_title(f"{BUS_TITLE} · {SITE_TITLE}")
            expect(article.locator("header time")).to_have_text("2021-12-28 00:07")
            expect(article.locator(".author")).to_have_text("作者：林小满")
            expect(article.locator(".content p").first).to_have_text(BUS_FIRST)
            expect(article.locator(".content h2")).to_have_text("试运行")
            expect(article.locator("header .chip")).to_have_text(["news", "#城市", "#日常"])
            origin = article.locator(".origin a")
            expect(origin).to_be_visible()
            assert origin.get_attribute("href") == BUS_SOURCE
            site_feeds = page.locator("footer .subscribe a")
            expect(site_feeds).to_have_text(["Atom", "RSS", "JSON Feed", "全部订阅（OPML）"])
            # Autodiscovery in the head, and every feed link answers with its type.
            discovered = page.eval_on_selector_all(
                "head link[rel=alternate]", "els => els.map(e => [e.type, e.href])")
            assert [t for t, _ in discovered] == [
                "application/atom+xml", "application/rss+xml", "application/feed+json"]
            for media_type, href in discovered:
                response = context.request.get(href)
                assert response.status == 200, href
                assert response.headers["content-type"].split(";")[0] == media_type
            page.screenshot(path=str(shots / "post.png"), full_page=True)

            # Dark mode: the same page on a dark background.
            page.emulate_media(color_scheme="dark")
            background = page.evaluate("getComputedStyle(document.body).backgroundColor")
            assert luminance(background) < 0.1, background
            page.screenshot(path=str(shots / "post-dark.png"), full_page=True)
            page.emulate_media(color_scheme="light")
            assert luminance(page.evaluate(
                "getComputedStyle(document.body).backgroundColor")) > 0.9

            # A phone: nothing is wider than the screen, the buttons are still there.
            page.set_viewport_size({"width": 390, "height": 844})
            page.goto(server.url + "/")
            overflow = page.evaluate(
                "document.documentElement.scrollWidth - window.innerWidth")
            assert overflow <= 0, f"{overflow}px wider than a 390px screen"
            expect(page.locator("header .subscribe a").first).to_be_in_viewport()
            page.screenshot(path=str(shots / "index-phone.png"), full_page=True)
        finally:
            context.close()

    assert requested, "the browser made no requests"
    outside = [u for u in requested if not u.startswith(server.url + "/")]
    assert outside == [], f"requests to elsewhere: {outside}"
    assert {p.name for p in shots.iterdir()} == {
        "index.png", "tag.png", "post.png", "post-dark.png", "index-phone.png"}
    with contextlib.suppress(OSError):  # a copy for people; the test does not need it
        SCREENS.mkdir(parents=True, exist_ok=True)
        for shot in shots.iterdir():
            shutil.copy(shot, SCREENS / shot.name)
