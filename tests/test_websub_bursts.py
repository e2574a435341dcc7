"""WebSub publish pings as a real hub needs them (``hub.topic``, and ``hub.url`` for older
hubs), and a hub that fails for a while: retried with back-off, logged once when the
failures start and once when the hub takes pings again, never once per feed."""

from __future__ import annotations

import logging
from collections.abc import Callable

import pytest

from feeds.metrics import Metrics
from feeds.websub import Publisher

from . import test_websub
from .test_websub import BASE, WAIT, Hub, pings

hub_factory = test_websub.hub_factory  # its recording hub on loopback, as a fixture here


def every_format(count: int) -> list[str]:
    """What one edit of a post with many tags pings: every format of ``count`` feeds."""
    return [f"{BASE}/tag/t{i}.{fmt}" for i in range(count) for fmt in ("atom", "rss", "json")]


def run(publisher: Publisher, hub: Hub, topics: list[str]) -> None:
    """Queue every topic before the thread starts (so the first failure sees them all
    pending), then wait until each was sent or given up."""
    for topic in topics:
        assert publisher.submit(hub.url, topic)
    publisher.start()
    try:
        assert publisher.wait_idle(WAIT)
    finally:
        publisher.stop()


def websub_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records
            if r.name == "feeds.websub" and r.levelno >= logging.INFO]


def test_a_ping_names_the_topic_as_hub_topic_and_hub_url(
        hub_factory: Callable[..., Hub]) -> None:
    hub = hub_factory()
    publisher = Publisher(Metrics(), lambda *_: [], backoff=0.01)
    run(publisher, hub, [f"{BASE}/feed.atom", f"{BASE}/tag/%E7%BA%A2.rss"])
    assert [(form["hub.mode"], form["hub.topic"], form["hub.url"]) for form in hub.pings] == [
        (["publish"], [f"{BASE}/feed.atom"], [f"{BASE}/feed.atom"]),
        (["publish"], [f"{BASE}/tag/%E7%BA%A2.rss"], [f"{BASE}/tag/%E7%BA%A2.rss"]),
    ]


def test_a_hub_down_for_a_while_is_logged_once_then_once_when_back(
        hub_factory: Callable[..., Hub], caplog: pytest.LogCaptureFixture) -> None:
    hub = hub_factory([503] * 5)  # five failures in a row, then it takes everything
    metrics = Metrics()
    publisher = Publisher(metrics, lambda *_: [], attempts=10, backoff=0.01,
                          max_backoff=0.05)
    topics = every_format(12)
    with caplog.at_level(logging.INFO, logger="feeds.websub"):
        run(publisher, hub, topics)
    assert sorted(hub.topics()) == sorted(topics)  # every one delivered, once
    assert hub.requests == len(topics) + 5
    assert pings(metrics, "retry") == 5 and pings(metrics, "ok") == len(topics)
    first, last = websub_records(caplog)  # two lines for 41 attempts at 36 topics
    assert first.levelno == logging.WARNING
    assert hub.url in first.getMessage() and "answered 503" in first.getMessage()
    assert f"{len(topics)} ping(s) pending" in first.getMessage()
    assert last.levelno == logging.INFO
    assert "takes pings again after 5 failed attempt(s)" in last.getMessage()
    assert "0 ping(s) were given up" in last.getMessage()


def test_a_hub_that_refuses_every_ping_is_logged_once(
        hub_factory: Callable[..., Hub], caplog: pytest.LogCaptureFixture) -> None:
    """As a hub that wants a parameter the pings lack would: 36 refusals, one line; the
    burst ends, with its count, when the hub takes a ping again."""
    topics = every_format(12)
    hub = hub_factory([400] * len(topics))
    metrics = Metrics()
    publisher = Publisher(metrics, lambda *_: [], backoff=0.01)
    with caplog.at_level(logging.INFO, logger="feeds.websub"):
        run(publisher, hub, topics)
        (refused,) = websub_records(caplog)
        assert refused.levelno == logging.WARNING
        assert "refused the ping with 400" in refused.getMessage()
        assert hub.requests == len(topics)  # a refusal is not retried
        assert pings(metrics, "failed") == len(topics)

        later = Publisher(metrics, lambda *_: [], backoff=0.01)
        run(later, hub, [f"{BASE}/feed.atom"])  # a new publisher starts with no burst
    assert hub.topics() == [f"{BASE}/feed.atom"]
    assert len(websub_records(caplog)) == 1


def test_refusals_then_recovery_in_one_publisher(
        hub_factory: Callable[..., Hub], caplog: pytest.LogCaptureFixture) -> None:
    hub = hub_factory([400, 400, 400])
    metrics = Metrics()
    publisher = Publisher(metrics, lambda *_: [], backoff=0.01)
    topics = every_format(2)  # six: three refused, then three taken
    with caplog.at_level(logging.INFO, logger="feeds.websub"):
        run(publisher, hub, topics)
    assert sorted(hub.topics()) == sorted(topics[3:])
    start, end = websub_records(caplog)
    assert "refused the ping with 400" in start.getMessage()
    assert "6 ping(s) pending" in start.getMessage()
    assert "after 3 failed attempt(s)" in end.getMessage()
    assert "3 ping(s) were given up" in end.getMessage()
