"""WebSub: feeds announce the hub (Atom, RSS atom:link, JSON Feed hubs, HTTP Link), and
content changes send the hub publish pings from a background thread, with retries and
back-off, against a small hub server the tests start on loopback."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from feeds import create_app, links
from feeds.metrics import Metrics
from feeds.model import Format, Kind
from feeds.websub import Publisher

from .conftest import DEFAULT_CONFIG, make_settings, post_text, validate_atom, write_site
from .test_http import metric, rewrite

ATOM = "{http://www.w3.org/2005/Atom}"
BASE = "https://example.org"
WAIT = 60.0
"""Upper bound of every wait for the background thread (never reached when it works)."""


# --- a small hub ------------------------------------------------------------------------


class Hub:
    """A WebSub hub on 127.0.0.1 that records publish pings. ``statuses`` are answered in
    turn (then 204); while ``gate`` is clear, every request waits for it."""

    def __init__(self, statuses: list[int] | None = None) -> None:
        self.statuses = list(statuses or [])
        self.pings: list[dict[str, list[str]]] = []
        self.requests = 0
        self.content_types: set[str] = set()
        self.gate = threading.Event()
        self.gate.set()
        self.changed = threading.Condition()
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(length).decode("ascii"))
                hub.gate.wait(WAIT)
                with hub.changed:
                    hub.requests += 1
                    status = hub.statuses.pop(0) if hub.statuses else 204
                    hub.content_types.add(self.headers.get("Content-Type", ""))
                    if status < 300:
                        hub.pings.append(form)
                    hub.changed.notify_all()
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hub"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def topics(self) -> list[str]:
        with self.changed:
            return [url for form in self.pings for url in form["hub.url"]]

    def wait_for(self, count: int) -> bool:
        """Until ``count`` pings have arrived (at most WAIT seconds)."""
        with self.changed:
            return self.changed.wait_for(lambda: len(self.pings) >= count, WAIT)

    def close(self) -> None:
        self.gate.set()
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def hub_factory() -> Iterator[Callable[..., Hub]]:
    hubs: list[Hub] = []

    def start(statuses: list[int] | None = None) -> Hub:
        hubs.append(Hub(statuses))
        return hubs[-1]

    yield start
    for hub in hubs:
        hub.close()


@pytest.fixture
def hub(hub_factory: Callable[..., Hub]) -> Hub:
    return hub_factory()


def publisher_of(app: Flask) -> Publisher:
    for listener in app.extensions["feeds"].listeners:
        owner = getattr(listener, "__self__", None)
        if isinstance(owner, Publisher):
            return owner
    raise AssertionError("no WebSub publisher")


def pings(metrics: Metrics, result: str) -> float:
    value = metrics.registry.get_sample_value("feeds_websub_pings_total", {"result": result})
    return value or 0.0


def closed_port() -> int:
    """A loopback port nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def feed_urls(path: str) -> set[str]:
    return {f"{BASE}{path}.{fmt}" for fmt in ("atom", "rss", "json")}


SITE = {
    "_posts/2022-01-05-first.md": post_text("First", "2022-01-05 10:00:00 +0800", "[news]",
                                            "[python, 红网新闻]"),
    "_posts/2022-02-01-second.md": post_text("Second", "2022-02-01", "[tech]", "[rust]"),
    "_posts/2022-03-01-third.md": post_text("Third", "2022-03-01", "[news, tech]",
                                            "[python, 红网新闻]"),
}


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site", SITE)


# --- hub links in feeds -----------------------------------------------------------------


def hub_links(data: bytes, fmt: str) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    if fmt == "json":
        feed = json.loads(data)
        found["self"] = [feed["feed_url"]]
        found["hub"] = [h["url"] for h in feed.get("hubs", []) if h["type"] == "WebSub"]
        return found
    root = etree.fromstring(data)
    parent = root if fmt == "atom" else root.find("channel")
    assert parent is not None
    for link in parent.findall(f"{ATOM}link"):
        found.setdefault(link.get("rel", ""), []).append(link.get("href", ""))
    found.setdefault("hub", [])
    return found


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
@pytest.mark.parametrize("path", ["/feed", "/category/news", f"/tag/{quote('红网新闻')}"])
def test_feeds_announce_the_hub(site: Path, make_app: Callable[..., Flask], fmt: str,
                                path: str) -> None:
    hub_url = "https://hub.example.net/"
    client = make_app(site, websub_hub=hub_url).test_client()
    for query in ("", "?limit=1&page=2"):
        response = client.get(f"{path}.{fmt}{query}")
        assert response.status_code == 200
        links = hub_links(response.data, fmt)
        assert links["hub"] == [hub_url]
        (self_url,) = links["self"]
        assert self_url == f"{BASE}{path}.{fmt}{'?page=2&limit=1' if query else ''}"
        header = requests.utils.parse_header_links(response.headers["Link"])
        assert {(h["rel"], h["url"]) for h in header} == {("hub", hub_url),
                                                           ("self", self_url)}
        again = client.get(f"{path}.{fmt}{query}",
                           headers={"If-None-Match": response.headers["ETag"]})
        assert again.status_code == 304 and again.headers["Link"] == response.headers["Link"]


def test_the_hub_link_keeps_atom_valid(site: Path, make_app: Callable[..., Flask],
                                       tmp_path: Path) -> None:
    client = make_app(site, websub_hub="https://hub.example.net/").test_client()
    validate_atom(client.get("/category/news.atom").data, tmp_path)


@pytest.mark.parametrize("path", ["/feed.atom", "/feed.rss", "/feed.json", "/tag/rust.rss"])
def test_no_hub_no_hub_links(site: Path, make_app: Callable[..., Flask], path: str) -> None:
    response = make_app(site).test_client().get(path)
    fmt = path.rsplit(".", 1)[1]
    assert hub_links(response.data, fmt)["hub"] == []
    assert "Link" not in response.headers


def test_no_publisher_without_a_hub(site: Path, make_app: Callable[..., Flask]) -> None:
    app = make_app(site)
    with pytest.raises(AssertionError):
        publisher_of(app)


# --- publish pings ----------------------------------------------------------------------


def settle(app: Flask) -> None:
    assert publisher_of(app).wait_idle(WAIT)


def test_pings_name_every_changed_feed(site: Path, hub: Hub,
                                       make_app: Callable[..., Flask]) -> None:
    app = make_app(site, websub_hub=hub.url)
    svc = app.extensions["feeds"]
    settle(app)
    assert hub.pings == []  # the first load is no change

    # A new post: the site, its category and its tags.
    rewrite(site / "_posts/2022-04-01-fourth.md",
            post_text("Fourth", "2022-04-01", "[travel]", "[python, 新标签]"))
    svc.refresh()
    settle(app)
    expected = (feed_urls("/feed") | feed_urls("/category/travel") | feed_urls("/tag/python")
                | feed_urls(f"/tag/{quote('新标签')}"))
    assert sorted(hub.topics()) == sorted(expected)  # each once, nothing else
    assert all(form["hub.mode"] == ["publish"] for form in hub.pings)
    assert hub.content_types == {"application/x-www-form-urlencoded"}
    client = app.test_client()
    assert metric(client, "feeds_websub_pings_total", result="ok") == len(expected)
    for url in expected:  # every topic is a feed the service serves
        assert client.get(url.removeprefix(BASE)).status_code == 200

    # A post moves from tag rust to tag go: both tags, its category, the site.
    hub.pings.clear()
    rewrite(site / "_posts/2022-02-01-second.md",
            post_text("Second", "2022-02-01", "[tech]", "[go]"))
    svc.refresh()
    settle(app)
    assert sorted(hub.topics()) == sorted(feed_urls("/feed") | feed_urls("/category/tech")
                                          | feed_urls("/tag/rust") | feed_urls("/tag/go"))

    # A post goes away.
    hub.pings.clear()
    (site / "_posts/2022-01-05-first.md").unlink()
    svc.refresh()
    settle(app)
    assert sorted(hub.topics()) == sorted(
        feed_urls("/feed") | feed_urls("/category/news") | feed_urls("/tag/python")
        | feed_urls(f"/tag/{quote('红网新闻')}"))


def test_a_future_post_pings_nothing_until_it_is_visible(
        site: Path, hub: Hub, make_app: Callable[..., Flask]) -> None:
    app = make_app(site, websub_hub=hub.url)
    rewrite(site / "_posts/2099-01-01-later.md",
            post_text("Later", "2099-01-01", "[future]", "[someday]"))
    app.extensions["feeds"].refresh()
    settle(app)
    assert app.test_client().get("/category/future.atom").status_code == 404
    assert hub.pings == []


def test_an_edit_of_data_alone_pings_every_feed(
        site: Path, hub: Hub, make_app: Callable[..., Flask]) -> None:
    """site.data is read by bodies, any of them: an edit of _data/ alone is a new
    version of every feed (their bodies may differ), so every feed is pinged."""
    (site / "_data").mkdir()
    (site / "_data" / "x.yml").write_text("a: 1\n", "utf-8")
    app = make_app(site, websub_hub=hub.url)
    settle(app)
    assert hub.pings == []
    rewrite(site / "_data" / "x.yml", "a: 2\n")
    app.extensions["feeds"].refresh()
    settle(app)
    expected = (feed_urls("/feed") | feed_urls("/category/news") | feed_urls("/category/tech")
                | feed_urls("/tag/python") | feed_urls("/tag/rust")
                | feed_urls(f"/tag/{quote('红网新闻')}"))
    assert sorted(hub.topics()) == sorted(expected)


def test_a_documents_edit_pings_its_collections_feeds_only(
        tmp_path: Path, hub: Hub, make_app: Callable[..., Flask]) -> None:
    """feed.collections: a document changed is a change of its collection's feed (at
    jekyll-feed's path) and of its listed categories', not of the site feed."""
    config = DEFAULT_CONFIG + ("collections:\n  recipes:\n    output: true\n"
                               "feed:\n  collections:\n    recipes:\n"
                               "      path: /recipes.atom\n      categories: [soup]\n")
    root = write_site(tmp_path / "s", {**SITE, "_recipes/stew.md": post_text(
        "Stew", "2022-01-01", "[soup]")}, config=config)
    app = make_app(root, websub_hub=hub.url)
    settle(app)
    rewrite(root / "_recipes/stew.md", post_text("Stew, edited", "2022-01-01", "[soup]"))
    app.extensions["feeds"].refresh()
    settle(app)
    assert sorted(hub.topics()) == [f"{BASE}/feed/recipes/soup.xml", f"{BASE}/recipes.atom"]
    client = app.test_client()
    for url in hub.topics():
        assert client.get(url.removeprefix(BASE)).status_code == 200


def test_retries_with_back_off_until_the_hub_takes_it(hub_factory: Callable[..., Hub]) -> None:
    hub = hub_factory([503, 500, 429, 204])
    metrics = Metrics()
    publisher = Publisher(metrics, lambda *_: [], backoff=0.01, max_backoff=0.05)
    publisher.start()
    try:
        assert publisher.submit(hub.url, f"{BASE}/feed.atom")
        assert publisher.wait_idle(WAIT)
    finally:
        publisher.stop()
    assert hub.requests == 4
    assert hub.topics() == [f"{BASE}/feed.atom"]
    assert pings(metrics, "retry") == 3
    assert pings(metrics, "ok") == 1
    assert not publisher.running


def test_a_refused_ping_is_not_retried(hub_factory: Callable[..., Hub]) -> None:
    hub = hub_factory([400])
    metrics = Metrics()
    publisher = Publisher(metrics, lambda *_: [], backoff=0.01)
    publisher.start()
    try:
        publisher.submit(hub.url, f"{BASE}/feed.rss")
        publisher.submit(hub.url, f"{BASE}/feed.json")
        assert publisher.wait_idle(WAIT)
    finally:
        publisher.stop()
    assert hub.requests == 2
    assert hub.topics() == [f"{BASE}/feed.json"]
    assert pings(metrics, "failed") == 1


def test_a_hub_that_is_down_is_logged_and_given_up(caplog: pytest.LogCaptureFixture) -> None:
    metrics = Metrics()
    publisher = Publisher(metrics, lambda *_: [], attempts=3, backoff=0.01, max_backoff=0.02,
                          timeout=2.0)
    publisher.start()
    url = f"http://127.0.0.1:{closed_port()}/hub"
    with caplog.at_level(logging.WARNING, logger="feeds.websub"):
        try:
            publisher.submit(url, f"{BASE}/feed.atom")
            assert publisher.wait_idle(WAIT)
        finally:
            publisher.stop()
    assert pings(metrics, "retry") == 3
    assert pings(metrics, "failed") == 1
    # One line for the whole burst of failures, naming the hub and why.
    messages = [r.getMessage() for r in caplog.records if r.name == "feeds.websub"]
    assert len(messages) == 1
    assert "unreachable" in messages[0] and url in messages[0]


def test_a_down_hub_never_breaks_serving(site: Path, make_app: Callable[..., Flask],
                                         caplog: pytest.LogCaptureFixture) -> None:
    app = make_app(site, websub_hub=f"http://127.0.0.1:{closed_port()}/hub")
    client = app.test_client()
    with caplog.at_level(logging.WARNING, logger="feeds.websub"):
        for i in range(3):
            rewrite(site / f"_posts/2022-05-0{i + 1}-new.md",
                    post_text(f"New {i}", f"2022-05-0{i + 1}", "[news]", "[python]"))
            app.extensions["feeds"].refresh()
            response = client.get("/category/news.json")
            assert response.status_code == 200
            assert json.loads(response.data)["items"][0]["title"] == f"New {i}"
        assert client.get("/healthz").status_code == 200
        # The publisher's thread says so once its first ping has failed, a moment later.
        deadline = time.monotonic() + WAIT
        while (not any("unreachable" in r.getMessage() for r in caplog.records)
               and time.monotonic() < deadline):
            time.sleep(0.02)
    assert any("unreachable" in r.getMessage() for r in caplog.records)


def test_a_hung_hub_never_blocks_content_changes(site: Path, hub: Hub,
                                                 make_app: Callable[..., Flask]) -> None:
    hub.gate.clear()  # the hub takes requests and does not answer
    app = make_app(site, websub_hub=hub.url)
    client = app.test_client()
    svc = app.extensions["feeds"]
    for i in range(3):
        rewrite(site / f"_posts/2022-06-0{i + 1}-hung.md",
                post_text(f"Hung {i}", f"2022-06-0{i + 1}", "[news]", "[]"))
        changer = threading.Thread(target=svc.refresh)
        changer.start()
        changer.join(WAIT)  # a guard against a hang, not a measurement
        assert not changer.is_alive()
        response = client.get("/feed.json")
        assert json.loads(response.data)["items"][0]["title"] == f"Hung {i}"
    hub.gate.set()
    settle(app)
    assert set(hub.topics()) == feed_urls("/feed") | feed_urls("/category/news")


def test_no_absolute_base_url_warns_once_and_pings_nothing(
        tmp_path: Path, hub: Hub, make_app: Callable[..., Flask],
        caplog: pytest.LogCaptureFixture) -> None:
    root = write_site(tmp_path / "s", SITE, config="title: No URL\n")
    with caplog.at_level(logging.WARNING, logger="feeds.websub"):
        app = make_app(root, websub_hub=hub.url)
        for i in range(2):
            rewrite(root / f"_posts/2022-07-0{i + 1}-x.md",
                    post_text(f"X {i}", f"2022-07-0{i + 1}", "[news]", "[]"))
            app.extensions["feeds"].refresh()
        settle(app)
    warnings = [r for r in caplog.records if "no absolute URL" in r.getMessage()]
    assert len(warnings) == 1
    assert hub.requests == 0


def test_a_full_queue_drops_instead_of_waiting() -> None:
    metrics = Metrics()
    publisher = Publisher(metrics, lambda *_: [], max_pending=2)  # not started: nothing drains
    results = [publisher.submit("http://127.0.0.1:9/hub", f"{BASE}/{i}.atom") for i in range(4)]
    assert results == [True, True, False, False]
    assert pings(metrics, "dropped") == 2


def test_the_same_topic_queued_twice_is_pinged_once(hub: Hub) -> None:
    metrics = Metrics()
    hub.gate.clear()  # hold the first ping so that the others queue up behind it
    publisher = Publisher(metrics, lambda *_: [], backoff=0.01, timeout=WAIT)
    publisher.start()
    try:
        publisher.submit(hub.url, f"{BASE}/first.atom")
        for _ in range(5):
            publisher.submit(hub.url, f"{BASE}/again.atom")
        hub.gate.set()
        assert publisher.wait_idle(WAIT)
    finally:
        publisher.stop()
    assert sorted(hub.topics()) == [f"{BASE}/again.atom", f"{BASE}/first.atom"]


def test_stopping_the_service_stops_the_publisher(site: Path, hub: Hub) -> None:
    app = create_app(make_settings(site, websub_hub=hub.url), watch=False)
    publisher = publisher_of(app)
    assert publisher.running
    app.extensions["feeds"].stop()
    assert not publisher.running


def test_topics_use_the_feed_url_rule(site: Path, hub: Hub,
                                      make_app: Callable[..., Flask]) -> None:
    """Names that need the '~XX' escape are pinged as the service serves them."""
    app = make_app(site, websub_hub=hub.url)
    rewrite(site / "_posts/2022-08-01-odd.md",
            post_text("Odd", "2022-08-01", '["C#"]', '[".hidden", "a/b"]'))
    app.extensions["feeds"].refresh()
    settle(app)
    expected = {url for kind, name in ((Kind.SITE, ""), (Kind.CATEGORY, "C#"),
                                       (Kind.TAG, ".hidden"), (Kind.TAG, "a/b"))
                for _fmt, url in links.feed_urls(kind, name, BASE)}
    assert set(hub.topics()) == expected
    client: FlaskClient = app.test_client()
    for url in expected:
        assert client.get(url.removeprefix(BASE)).status_code == 200, url
    assert {f"{BASE}/category/C~23.{f.value}" for f in (Format.ATOM, Format.RSS,
                                                        Format.JSON)} <= expected
