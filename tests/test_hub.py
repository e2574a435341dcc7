"""The built-in WebSub hub (``websub_hub: self``), end to end: a real waitress instance on
127.0.0.1 and a real subscriber HTTP server on loopback. Subscription with verification
of intent, denial, leases, signed pushes of the new body after an edit, retries, SQLite
across a restart, SSRF refusals, bounds, and a hanging callback that holds no request
thread."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import feedparser
import pytest
import requests
from flask import Flask
from prometheus_client.parser import text_string_to_metric_families

from feeds import create_app
from feeds.hub import Hub
from feeds.hubnet import refusal
from feeds.hubstore import FILENAME
from feeds.service import FeedService

from .conftest import LiveServer, make_settings, post_text
from .service_process import Services, wait_for
from .test_http import rewrite

BASE = "https://example.org"
TOPIC = f"{BASE}/feed.atom"
WAIT = 60.0
"""Upper bound of every wait for the hub's workers (never reached when it works)."""
THIRD = "_posts/2022-02-01-third.md"


# --- a subscriber ------------------------------------------------------------------------


@dataclass
class Push:
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class Subscriber:
    """An HTTP server on 127.0.0.1 with any number of callback paths. A verification GET
    is answered as ``verify[path]`` says: 'echo' the challenge (the default), 'refuse'
    (404), 'wrong' (another body) or 'trickle' (a byte every 0.2 s until ``gate``). A
    push is answered with the next of ``answers[path]``, then 204."""

    verify: dict[str, str] = field(default_factory=dict)
    answers: dict[str, list[int]] = field(default_factory=dict)
    gets: list[tuple[str, dict[str, str], dict[str, str]]] = field(default_factory=list)
    pushes: list[Push] = field(default_factory=list)
    gate: threading.Event = field(default_factory=threading.Event)
    trickling: threading.Event = field(default_factory=threading.Event)
    changed: threading.Condition = field(default_factory=threading.Condition)
    port: int = 0

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def got(self, path: str) -> list[dict[str, str]]:
        with self.changed:
            return [query for p, query, _h in self.gets if p == path]

    def pushed(self, path: str) -> list[Push]:
        with self.changed:
            return [push for push in self.pushes if push.path == path]

    def wait(self, what: Callable[[], bool]) -> None:
        with self.changed:
            assert self.changed.wait_for(what, WAIT), "timed out waiting for the hub"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        sub = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                query = {k: v[0] for k, v in parse_qs(parts.query).items()}
                with sub.changed:
                    sub.gets.append((parts.path, query, dict(self.headers)))
                    sub.changed.notify_all()
                how = sub.verify.get(parts.path, "echo")
                if how == "trickle":
                    sub.trickling.set()
                    self.wfile.write(b"HTTP/1.1 200 OK\r\nX-Slow: ")
                    while not sub.gate.wait(0.2):
                        self.wfile.write(b"x")
                    return
                body = {"echo": query.get("hub.challenge", ""), "wrong": "nope",
                        "refuse": "no such subscription"}[how].encode()
                self._answer(404 if how == "refuse" else 200, body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                path = urlsplit(self.path).path
                with sub.changed:
                    sub.pushes.append(Push(path, dict(self.headers), body))
                    answers = sub.answers.get(path)
                    status = answers.pop(0) if answers else 204
                    sub.changed.notify_all()
                self._answer(status, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        return Handler


@pytest.fixture
def subscriber() -> Iterator[Subscriber]:
    sub = Subscriber()
    server = ThreadingHTTPServer(("127.0.0.1", 0), sub.handler())
    server.daemon_threads = True
    sub.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield sub
    sub.gate.set()
    server.shutdown()
    server.server_close()
    thread.join(10)


# --- the service -------------------------------------------------------------------------


@dataclass
class Site:
    app: Flask
    live: LiveServer
    root: Path

    @property
    def svc(self) -> FeedService:
        svc: FeedService = self.app.extensions["feeds"]
        return svc

    @property
    def hub(self) -> Hub:
        hub: Hub = self.app.extensions["feeds_hub"]
        return hub

    def request(self, callback: str, topic: str = TOPIC, mode: str = "subscribe",
                **fields: str) -> requests.Response:
        form = {"hub.mode": mode, "hub.topic": topic, "hub.callback": callback}
        form.update({f"hub.{k}": v for k, v in fields.items()})
        return requests.post(self.live.url + "/websub", data=form, timeout=WAIT)

    def subscribe(self, callback: str, topic: str = TOPIC, mode: str = "subscribe",
                  **fields: str) -> None:
        """A request the hub accepts, and its verification done."""
        response = self.request(callback, topic, mode, **fields)
        assert response.status_code == 202, response.text
        assert self.hub.wait_idle(WAIT)

    def subscriptions(self) -> set[tuple[str, str]]:
        return {s.key for s in self.hub.store.active(time.time())}

    def edit(self, title: str, rel: str = THIRD, categories: str = "[news]",
             tags: str = "[python]") -> None:
        """Change a post on disk, rescan (as the watcher would), and wait for the pushes."""
        rewrite(self.root / rel, post_text(title, "2022-02-01", categories, tags))
        self.svc.refresh()
        assert self.hub.wait_idle(WAIT)

    def metric(self, name: str, **labels: str) -> float:
        text = requests.get(self.live.url + "/metrics", timeout=WAIT).text
        return sum(sample.value for family in text_string_to_metric_families(text)
                   for sample in family.samples
                   if sample.name == name and all(sample.labels.get(k) == v
                                                  for k, v in labels.items()))


@pytest.fixture
def start_site(site_dir: Path, tmp_path: Path,
               live_server_factory: Callable[..., LiveServer]) -> Iterator[Callable[..., Site]]:
    apps: list[Flask] = []

    def start(**overrides: Any) -> Site:
        given: dict[str, Any] = {"websub_hub": "self", "websub_allow_private_callbacks": True,
                                 "state_dir": str(tmp_path / "state")}
        given.update(overrides)
        app = create_app(make_settings(site_dir, **given), watch=False)
        apps.append(app)
        site = Site(app, live_server_factory(app), site_dir)
        site.hub.retry_first = 0.2  # the back-off's shape, in tenths of the real delays
        return site

    yield start
    for app in apps:
        app.extensions["feeds"].stop()


@pytest.fixture
def site(start_site: Callable[..., Site]) -> Site:
    return start_site()


# --- announcing --------------------------------------------------------------------------


def test_feeds_announce_the_service_as_their_hub(site: Site) -> None:
    hub = f"{BASE}/websub"
    atom = requests.get(site.live.url + "/feed.atom", timeout=WAIT)
    parsed = feedparser.parse(atom.content)
    assert [link.href for link in parsed.feed.links if link.rel == "hub"] == [hub]
    assert atom.links["hub"]["url"] == hub and atom.links["self"]["url"] == TOPIC
    rss = feedparser.parse(requests.get(site.live.url + "/tag/python.rss", timeout=WAIT).content)
    assert [link.href for link in rss.feed.links if link.rel == "hub"] == [hub]
    feed = json.loads(requests.get(site.live.url + "/feed.json", timeout=WAIT).content)
    assert feed["hubs"] == [{"type": "WebSub", "url": hub}]


def test_app_py_is_its_own_hub_from_flags_and_config(site_dir: Path, tmp_path: Path,
                                                    subscriber: Subscriber) -> None:
    """As operators run it: ``app.py --websub-hub self --state-dir ...``, the private
    callbacks allowed by ``_config.yml``, the folder watched; a saved edit is pushed."""
    config = site_dir / "_config.yml"
    config.write_text(config.read_text("utf-8") + "websub_allow_private_callbacks: true\n",
                      encoding="utf-8")
    services = Services(tmp_path)
    try:
        service = services.start(site_dir, "--websub-hub", "self", "--state-dir",
                                 str(tmp_path / "state"), "--reload-interval", "0.2")
        form = {"hub.mode": "subscribe", "hub.topic": f"{BASE}/tag/python.atom",
                "hub.callback": subscriber.url("/cb")}
        answer = requests.post(service.url + "/websub", data=form, timeout=WAIT)
        assert answer.status_code == 202, answer.text
        subscriber.wait(lambda: bool(subscriber.gets))
        assert subscriber.gets[0][1]["hub.mode"] == "subscribe"

        def stored() -> bool:
            text = requests.get(service.url + "/metrics", timeout=WAIT).text
            return any(s.name == "feeds_hub_subscriptions" and s.value == 1
                       for family in text_string_to_metric_families(text)
                       for s in family.samples)

        wait_for(stored, WAIT, "the subscription to be stored")
        rewrite(site_dir / THIRD, post_text("Saved in an editor", "2022-02-01", "[news]",
                                            "[python]"))
        subscriber.wait(lambda: bool(subscriber.pushes))
        [push] = subscriber.pushes
        assert "Saved in an editor" in [e.title for e in feedparser.parse(push.body).entries]
        links = requests.utils.parse_header_links(push.headers["Link"])
        assert ("self", f"{BASE}/tag/python.atom") in {(x["rel"], x["url"]) for x in links}
        assert service.stop() == 0
    finally:
        services.close()


# --- subscribing and distribution --------------------------------------------------------


def test_verified_subscriber_gets_the_edited_feed_signed(site: Site, subscriber: Subscriber
                                                         ) -> None:
    secret = "s3cret-ünïcode"
    site.subscribe(subscriber.url("/atom"), secret=secret, lease_seconds="3600")
    site.subscribe(subscriber.url("/json"), topic=f"{BASE}/feed.json")
    site.subscribe(subscriber.url("/travel"), topic=f"{BASE}/tag/%E6%97%85%E8%A1%8C.atom")
    [check] = subscriber.got("/atom")
    assert check["hub.mode"] == "subscribe" and check["hub.topic"] == TOPIC
    assert check["hub.lease_seconds"] == "3600" and len(check["hub.challenge"]) >= 32
    assert len(site.subscriptions()) == 3
    assert not subscriber.pushes  # nothing changed yet

    site.edit("Third, edited")
    [push] = subscriber.pushed("/atom")
    parsed = feedparser.parse(push.body)
    assert not parsed.bozo
    assert "Third, edited" in [entry.title for entry in parsed.entries]
    assert "Third & <last>" not in [entry.title for entry in parsed.entries]
    assert push.headers["Content-Type"].startswith("application/atom+xml")
    links = requests.utils.parse_header_links(push.headers["Link"])
    assert {(link["rel"], link["url"]) for link in links} == {
        ("hub", f"{BASE}/websub"), ("self", TOPIC)}
    expected = hmac.new(secret.encode(), push.body, hashlib.sha256).hexdigest()
    assert push.headers["X-Hub-Signature"] == f"sha256={expected}"
    # The same bytes a reader gets now.
    assert push.body == requests.get(site.live.url + "/feed.atom", timeout=WAIT).content

    [json_push] = subscriber.pushed("/json")
    assert "X-Hub-Signature" not in json_push.headers
    titles = [item["title"] for item in json.loads(json_push.body)["items"]]
    assert "Third, edited" in titles
    assert not subscriber.pushed("/travel")  # that feed's bytes did not change

    site.edit("Third, edited")  # the same content again: nothing new to push
    site.svc.refresh()
    assert site.hub.wait_idle(WAIT)
    assert len(subscriber.pushed("/atom")) == 1


def test_unsubscribe_stops_pushes(site: Site, subscriber: Subscriber) -> None:
    site.subscribe(subscriber.url("/gone"))
    site.subscribe(subscriber.url("/witness"))
    site.subscribe(subscriber.url("/gone"), mode="unsubscribe")
    assert subscriber.got("/gone")[-1]["hub.mode"] == "unsubscribe"
    assert "hub.lease_seconds" not in subscriber.got("/gone")[-1]
    assert site.subscriptions() == {(TOPIC, subscriber.url("/witness"))}
    site.edit("After unsubscribing")
    assert len(subscriber.pushed("/witness")) == 1
    assert subscriber.pushed("/gone") == []


@pytest.mark.parametrize("how", ["refuse", "wrong"])
def test_failed_verification_creates_no_subscription(site: Site, subscriber: Subscriber,
                                                     how: str) -> None:
    subscriber.verify["/no"] = how
    site.subscribe(subscriber.url("/no"))
    assert len(subscriber.got("/no")) == 1
    site.subscribe(subscriber.url("/witness"))
    assert site.subscriptions() == {(TOPIC, subscriber.url("/witness"))}
    site.edit("After a refusal")
    assert len(subscriber.pushed("/witness")) == 1 and subscriber.pushed("/no") == []
    assert site.metric("feeds_hub_verifications_total", result="declined") == 1


@pytest.mark.parametrize("topic", [f"{BASE}/tag/no-such-tag.atom", "https://other.example/feed.atom",
                                   f"{BASE}/feed.atom?page=2", f"{BASE}/about.html"])
def test_a_topic_the_service_does_not_serve_is_denied(site: Site, subscriber: Subscriber,
                                                      topic: str) -> None:
    site.subscribe(subscriber.url("/cb"), topic=topic)
    [denial] = subscriber.got("/cb")
    assert denial["hub.mode"] == "denied" and denial["hub.topic"] == topic
    assert "not a feed" in denial["hub.reason"]
    assert "hub.challenge" not in denial
    assert site.subscriptions() == set()


def test_jekyll_feed_paths_are_topics(site: Site, subscriber: Subscriber) -> None:
    site.subscribe(subscriber.url("/xml"), topic=f"{BASE}/feed.xml")
    site.subscribe(subscriber.url("/tag"), topic=f"{BASE}/feed/by_tag/python.xml")
    assert len(site.subscriptions()) == 2
    site.edit("Seen through old paths")
    for path in ("/xml", "/tag"):
        [push] = subscriber.pushed(path)
        assert "Seen through old paths" in [e.title for e in feedparser.parse(push.body).entries]


def test_a_collections_feed_is_a_topic(site_dir: Path, start_site: Callable[..., Site],
                                       subscriber: Subscriber) -> None:
    """feed.collections: the collection's feed, at jekyll-feed's path, may be subscribed
    to; a document's edit is pushed to it."""
    config = site_dir / "_config.yml"
    config.write_text(config.read_text("utf-8") + "collections:\n  recipes:\n    output: true\n"
                      "feed:\n  collections:\n    recipes:\n      path: /recipes.atom\n",
                      "utf-8")
    (site_dir / "_recipes").mkdir()
    rewrite(site_dir / "_recipes/stew.md", post_text("Stew", "2022-01-01"))
    site = start_site()
    site.subscribe(subscriber.url("/recipes"), topic=f"{BASE}/recipes.atom")
    assert len(site.subscriptions()) == 1
    rewrite(site_dir / "_recipes/stew.md", post_text("Stew, edited", "2022-01-01"))
    site.svc.refresh()
    assert site.hub.wait_idle(WAIT)
    [push] = subscriber.pushed("/recipes")
    assert [e.title for e in feedparser.parse(push.body).entries] == ["Stew, edited"]


@pytest.mark.parametrize(("fields", "reason"), [
    ({"hub.mode": "publish"}, "hub.mode"),
    ({"hub.callback": ""}, "required"),
    ({"hub.callback": "ftp://example.net/x"}, "http"),
    ({"hub.callback": "/relative"}, "http"),
    ({"hub.callback": "http://user:pw@example.net/x"}, "password"),
    ({"hub.callback": "http://example.net/caf\u00e9"}, "ASCII"),
    ({"hub.callback": "http://example.net:99999/x"}, "URL"),
    ({"hub.lease_seconds": "-5"}, "lease_seconds"),
    ({"hub.lease_seconds": "soon"}, "lease_seconds"),
    ({"hub.secret": "x" * 200}, "secret"),
])
def test_a_bad_request_gets_a_4xx_with_its_reason(site: Site, subscriber: Subscriber,
                                                  fields: dict[str, str], reason: str) -> None:
    form = {"hub.mode": "subscribe", "hub.topic": TOPIC,
            "hub.callback": subscriber.url("/cb"), **fields}
    response = requests.post(site.live.url + "/websub", data=form, timeout=WAIT)
    assert response.status_code == 400
    assert reason in response.text
    assert site.hub.wait_idle(WAIT) and subscriber.gets == []


# --- leases ------------------------------------------------------------------------------


def test_lease_ends_and_renewal_extends_it(start_site: Callable[..., Site],
                                           subscriber: Subscriber) -> None:
    site = start_site(websub_max_lease_seconds=3600)
    site.subscribe(subscriber.url("/short"), lease_seconds="1")
    site.subscribe(subscriber.url("/renewed"), lease_seconds="1")
    site.subscribe(subscriber.url("/long"), lease_seconds="999999999")
    assert subscriber.got("/long")[0]["hub.lease_seconds"] == "3600"  # clamped
    site.subscribe(subscriber.url("/renewed"), lease_seconds="600")
    assert subscriber.got("/renewed")[-1]["hub.lease_seconds"] == "600"
    short_until = time.time() + 1
    time.sleep(max(0.0, short_until - time.time()) + 0.5)
    assert site.subscriptions() == {(TOPIC, subscriber.url("/renewed")),
                                    (TOPIC, subscriber.url("/long"))}
    site.edit("After the lease")
    assert len(subscriber.pushed("/long")) == 1 and len(subscriber.pushed("/renewed")) == 1
    assert subscriber.pushed("/short") == []
    with site.hub.store._sql() as db:  # the ended lease is gone from the file too
        assert db.execute("SELECT count(*) FROM subscriptions").fetchone()[0] == 2


def test_default_lease_is_granted_when_none_asked(start_site: Callable[..., Site],
                                                  subscriber: Subscriber) -> None:
    site = start_site(websub_lease_seconds=7200)
    site.subscribe(subscriber.url("/cb"))
    assert subscriber.got("/cb")[0]["hub.lease_seconds"] == "7200"
    [sub] = site.hub.store.active(time.time())
    assert 7100 < sub.expires - time.time() <= 7200


# --- retries -----------------------------------------------------------------------------


def test_failing_callback_is_retried_and_logged_once(site: Site, subscriber: Subscriber,
                                                     caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "feeds.hub")
    site.subscribe(subscriber.url("/flaky"))
    site.subscribe(subscriber.url("/down"))
    subscriber.answers["/flaky"] = [500, 503]
    subscriber.answers["/down"] = [500] * 20
    site.hub.attempts = 4
    site.edit("Retried")
    flaky = subscriber.pushed("/flaky")
    assert len(flaky) == 3 and len({p.body for p in flaky}) == 1
    assert len(subscriber.pushed("/down")) == 4  # then given up
    warnings = [r for r in caplog.records if r.name == "feeds.hub"
                and r.levelno >= logging.WARNING]
    assert len(warnings) == 1, [r.getMessage() for r in warnings]
    assert site.metric("feeds_hub_deliveries_total", result="ok") == 1
    assert site.metric("feeds_hub_deliveries_total", result="failed") == 1
    assert site.metric("feeds_hub_deliveries_total", result="retry") == 2 + 3


def test_gone_callback_is_unsubscribed(site: Site, subscriber: Subscriber) -> None:
    site.subscribe(subscriber.url("/gone"))
    subscriber.answers["/gone"] = [410]
    site.edit("First edit")
    assert site.subscriptions() == set()
    site.edit("Second edit")
    assert len(subscriber.pushed("/gone")) == 1


# --- persistence -------------------------------------------------------------------------


def test_restart_keeps_subscriptions_and_pushes_what_changed_meanwhile(
        start_site: Callable[..., Site], subscriber: Subscriber, tmp_path: Path) -> None:
    first = start_site()
    first.subscribe(subscriber.url("/cb"), secret="k")
    first.svc.stop()
    assert (tmp_path / "state" / FILENAME).is_file()
    # Edited while the service was down.
    rewrite(first.root / THIRD, post_text("Edited while down", "2022-02-01", "[news]",
                                          "[python]"))
    second = start_site()
    assert second.subscriptions() == {(TOPIC, subscriber.url("/cb"))}
    assert second.hub.wait_idle(WAIT)
    [push] = subscriber.pushed("/cb")
    assert "Edited while down" in [e.title for e in feedparser.parse(push.body).entries]
    digest = hmac.new(b"k", push.body, hashlib.sha256).hexdigest()
    assert push.headers["X-Hub-Signature"] == f"sha256={digest}"
    second.edit("Edited after the restart")
    assert len(subscriber.pushed("/cb")) == 2
    second.svc.stop()
    third = start_site()  # nothing changed while down this time: nothing pushed
    assert third.hub.wait_idle(WAIT) and len(subscriber.pushed("/cb")) == 2


def test_corrupt_database_is_reported_and_replaced(start_site: Callable[..., Site],
                                                   subscriber: Subscriber, tmp_path: Path,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    state = tmp_path / "state"
    state.mkdir()
    (state / FILENAME).write_bytes(b"this is not a database" * 100)
    site = start_site()
    assert any("not a sound database" in r.getMessage() for r in caplog.records)
    assert [p.name for p in state.glob(f"{FILENAME}.corrupt-*")]
    site.subscribe(subscriber.url("/cb"))
    assert site.subscriptions() == {(TOPIC, subscriber.url("/cb"))}
    site.edit("After the repair")
    assert len(subscriber.pushed("/cb")) == 1


# --- security ----------------------------------------------------------------------------


@pytest.mark.parametrize("address", [
    "127.0.0.1", "10.1.2.3", "172.16.0.1", "192.168.1.1", "169.254.169.254", "100.64.0.1",
    "0.0.0.0", "224.0.0.1", "239.255.255.250", "255.255.255.255", "240.0.0.1",
    "::1", "::", "fe80::1", "fc00::1", "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1",
    "2002:7f00:1::1", "2001:db8::1",
])
def test_non_global_addresses_are_refused(address: str) -> None:
    assert refusal(address) is not None


@pytest.mark.parametrize("address", ["93.184.216.34", "8.8.8.8", "2606:4700:4700::1111"])
def test_global_addresses_are_allowed(address: str) -> None:
    assert refusal(address) is None


def test_loopback_callbacks_are_refused_without_the_setting(
        start_site: Callable[..., Site], subscriber: Subscriber) -> None:
    site = start_site(websub_allow_private_callbacks=False)
    for callback in (subscriber.url("/ip"), f"http://localhost:{subscriber.port}/name",
                     f"http://[::1]:{subscriber.port}/v6"):
        response = site.request(callback)
        assert response.status_code == 403 and "refused" in response.text
    # A name resolving to a public and a loopback address (as DNS rebinding would make
    # it) is refused before any connection; the fake resolver keeps the test offline.
    site.hub.caller.resolver = lambda host, port: ["93.184.216.34", "127.0.0.1"]
    site.subscribe(f"http://rebind.test:{subscriber.port}/rebind")
    assert site.hub.wait_idle(WAIT)
    assert subscriber.gets == [] and site.subscriptions() == set()
    assert site.metric("feeds_hub_verifications_total", result="refused") == 1


def test_the_checked_address_is_the_one_connected_to(site: Site, subscriber: Subscriber
                                                     ) -> None:
    asked: list[str] = []

    def resolve(host: str, port: int) -> list[str]:
        asked.append(host)
        return ["127.0.0.1"]

    site.hub.caller.resolver = resolve
    site.subscribe(f"http://subscriber.test:{subscriber.port}/cb")
    [(path, query, headers)] = subscriber.gets
    assert path == "/cb" and query["hub.mode"] == "subscribe"
    assert headers["Host"] == f"subscriber.test:{subscriber.port}"
    assert asked == ["subscriber.test"]


def test_subscriptions_are_bounded(start_site: Callable[..., Site], subscriber: Subscriber
                                   ) -> None:
    site = start_site(websub_max_subscriptions_per_topic=2, websub_max_subscriptions=3)
    site.subscribe(subscriber.url("/a"))
    site.subscribe(subscriber.url("/b"))
    full = site.request(subscriber.url("/c"))
    assert full.status_code == 429 and "most subscriptions" in full.text
    site.subscribe(subscriber.url("/a"), lease_seconds="60")  # a renewal is no new one
    site.subscribe(subscriber.url("/d"), topic=f"{BASE}/feed.rss")
    total = site.request(subscriber.url("/e"), topic=f"{BASE}/feed.json")
    assert total.status_code == 429 and "at most 3" in total.text
    assert len(site.subscriptions()) == 3
    assert subscriber.got("/c") == [] and subscriber.got("/e") == []


def test_hanging_callback_holds_no_request_thread(start_site: Callable[..., Site],
                                                  subscriber: Subscriber) -> None:
    site = start_site()
    site.hub.caller.timeout = 3.0
    subscriber.verify["/slow"] = "trickle"
    assert site.request(subscriber.url("/slow")).status_code == 202
    assert subscriber.trickling.wait(WAIT)
    # While the callback trickles its answer, feeds and the hub's endpoint still answer,
    # and another subscriber is verified.
    for _ in range(20):
        assert requests.get(site.live.url + "/feed.atom", timeout=WAIT).status_code == 200
    site.request(subscriber.url("/quick"))
    subscriber.wait(lambda: any(p == "/quick" for p, _q, _h in subscriber.gets))
    assert not subscriber.gate.is_set()
    # The deadline ends the trickle: no subscription, and the worker is free again.
    assert site.hub.wait_idle(WAIT)
    assert not subscriber.gate.is_set()
    assert site.subscriptions() == {(TOPIC, subscriber.url("/quick"))}
    assert site.metric("feeds_hub_verifications_total", result="failed") == 1
