"""WebSub end to end with a hub nobody here wrote: flask-websub's hub (its tasks run by
Celery in eager mode, in the hub's request threads) and its subscriber, each served by
waitress on loopback, and the service as operators run it with ``--websub-hub``. The
subscriber finds the hub from the feed's Link header and subscribes; the hub verifies its
intent at the callback; a post is edited; the hub is pinged, fetches the feed and pushes
it, and the pushed body has the edit. A post dated a few seconds ahead is pushed once it is
due, in the feed the hub fetches then."""

from __future__ import annotations

import queue
import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import feedparser
import pytest
import requests
from flask import Flask

from .conftest import FIXTURES, LiveServer, post_text
from .service_process import Service, Services, free_port, wait_for
from .test_http import rewrite

FEED = "/feed.atom"
WAIT = 60.0
"""Bound of every wait for the hub, the subscriber or the service (never reached when it
works)."""
SCHEDULED_AHEAD = 6
"""Seconds ahead of now that a scheduled post is dated."""

websub_hub = pytest.importorskip("flask_websub.hub", reason="flask-websub is a test extra")
websub_subscriber = pytest.importorskip("flask_websub.subscriber")
celery = pytest.importorskip("celery")


@pytest.fixture
def hub(tmp_path: Path, live_server_factory: Callable[[Flask], LiveServer]) -> LiveServer:
    """flask-websub's hub at /hub. Publishing is on (PUBLISH_SUPPORTED: the hub takes a
    ping and fetches the topic itself), and Celery runs each task at once, in the request
    that queued it: no broker, no worker process."""
    tasks = celery.Celery("websub-hub-test", set_as_current=False)
    tasks.conf.task_always_eager = True
    app = Flask("websub_hub_test")
    app.config["PUBLISH_SUPPORTED"] = True
    the_hub = websub_hub.Hub(websub_hub.SQLite3HubStorage(str(tmp_path / "hub.sqlite")), tasks,
                             PUBLISH_SUPPORTED=True, REQUEST_TIMEOUT=30, MAX_ATTEMPTS=3,
                             BACKOFF_BASE=0.1)
    app.register_blueprint(the_hub.build_blueprint(url_prefix="/hub"))
    return live_server_factory(app)


class Subscriber:
    """flask-websub's subscriber, its callbacks under /callbacks on a server of its own;
    what it was told arrives in queues."""

    def __init__(self, folder: Path, start: Callable[[Flask], LiveServer]) -> None:
        db = str(folder / "subscriber.sqlite")
        self.client = websub_subscriber.Subscriber(
            websub_subscriber.SQLite3SubscriberStorage(db),
            websub_subscriber.SQLite3TempSubscriberStorage(db))
        self.app = Flask("websub_subscriber_test")
        self.app.register_blueprint(self.client.build_blueprint(url_prefix="/callbacks"))
        self.verified: queue.Queue[tuple[str, str]] = queue.Queue()
        self.pushes: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client.add_success_handler(
            lambda topic, _id, mode: self.verified.put((topic, mode)))
        self.client.add_listener(lambda topic, _id, body: self.pushes.put((topic, body)))
        self.server = start(self.app)
        # Its callback URLs are built from SERVER_NAME (url_for(..., _external=True)).
        self.app.config["SERVER_NAME"] = f"127.0.0.1:{self.server.port}"

    def subscribe(self, url: str) -> dict[str, str]:
        """Discover the hub and topic of ``url`` and subscribe; what was discovered."""
        with self.app.app_context():
            found: dict[str, str] = websub_subscriber.discover(url, timeout=30)
            self.client.subscribe(**found)
        return found


@pytest.fixture
def subscriber(tmp_path: Path,
               live_server_factory: Callable[[Flask], LiveServer]) -> Subscriber:
    return Subscriber(tmp_path, live_server_factory)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / "clients-site", tmp_path / "site"))


@pytest.fixture
def service(tmp_path: Path, site: Path, hub: LiveServer) -> Iterator[Service]:
    """The service, watching its folder, publishing to the hub. The hub fetches the
    feeds it is told about, so their URLs must be the service's own: the port is chosen
    first, and the base URL names it."""
    port = free_port()
    running = Services(tmp_path)
    try:
        yield running.start(site, "--port", str(port), "--base-url",
                            f"http://127.0.0.1:{port}", "--websub-hub", f"{hub.url}/hub")
    finally:
        running.close()


def version(service: Service) -> int:
    found: int = requests.get(service.url + "/healthz", timeout=30).json()["version"]
    return found


def test_an_edit_is_pushed_through_flask_websub(service: Service, hub: LiveServer,
                                                subscriber: Subscriber, site: Path) -> None:
    found = subscriber.subscribe(service.url + FEED)
    assert found == {"hub_url": f"{hub.url}/hub", "topic_url": service.url + FEED}
    # The hub verified the subscriber's intent at its callback before answering.
    assert subscriber.verified.get(timeout=WAIT) == (service.url + FEED, "subscribe")
    assert subscriber.pushes.empty()

    before = version(service)
    rewrite(site / "_posts/2024-05-20-newest-post.md",
            post_text("Newest post, edited 已修改", "2024-05-20 12:00:00 +0800", "[news]",
                      "[rust]", body="The body after the edit."))
    wait_for(lambda: version(service) > before, WAIT, "the service to load the edit")

    topic, body = subscriber.pushes.get(timeout=WAIT)
    assert topic == service.url + FEED
    pushed = feedparser.parse(body)
    assert not pushed.bozo, pushed.bozo_exception
    titles = [e.title for e in pushed.entries]
    assert "Newest post, edited 已修改" in titles and "Newest post" not in titles
    (entry,) = [e for e in pushed.entries if e.title == "Newest post, edited 已修改"]
    assert "The body after the edit." in entry.content[0].value
    # What was pushed is the feed the service serves now.
    served = feedparser.parse(requests.get(service.url + FEED, timeout=30).content)
    assert [(e.id, e.title) for e in pushed.entries] == [
        (e.id, e.title) for e in served.entries]


def test_a_scheduled_post_is_pushed_once_it_is_due(service: Service, hub: LiveServer,
                                                   subscriber: Subscriber, site: Path) -> None:
    subscriber.subscribe(service.url + FEED)
    assert subscriber.verified.get(timeout=WAIT) == (service.url + FEED, "subscribe")
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=SCHEDULED_AHEAD)
    before = version(service)
    rewrite(site / f"_posts/{due:%Y-%m-%d}-scheduled.md",
            post_text("Scheduled 定时", due.strftime("%Y-%m-%d %H:%M:%S +0000"), "[news]",
                      "[python]", body="Out on time."))
    wait_for(lambda: version(service) > before, WAIT, "the service to load the post")
    # Not due yet: not served (and the feed is now cached), and nothing pushed.
    hidden = feedparser.parse(requests.get(service.url + FEED, timeout=30).content)
    assert "Scheduled 定时" not in [e.title for e in hidden.entries]
    assert datetime.now(UTC) < due, "too slow to see the post hidden"

    # Once due, the hub is pinged; it fetches the feed, which must hold the post.
    topic, body = subscriber.pushes.get(timeout=WAIT + SCHEDULED_AHEAD)
    assert datetime.now(UTC) >= due
    assert topic == service.url + FEED
    pushed = feedparser.parse(body)
    assert not pushed.bozo, pushed.bozo_exception
    (entry,) = [e for e in pushed.entries if e.title == "Scheduled 定时"]
    assert "Out on time." in entry.content[0].value
    assert subscriber.pushes.empty()
