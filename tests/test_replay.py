"""The replay in front of Flask (feeds/wire.py): a repeated request gets, without Flask,
exactly the answer Flask gave (status, headers, body, metrics, access log), and nothing
that depends on a changed input is ever replayed: a new content version, another host,
another encoding, validators, HEAD, delta requests."""

from __future__ import annotations

import gzip
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import TestResponse

from feeds.wire import Replay

from .conftest import post_text, write_site

GZIP = {"Accept-Encoding": "gzip"}
BROTLI = {"Accept-Encoding": "br;q=1.0, gzip;q=0.5"}


class Counting:
    """Stands between Replay and Flask and counts the requests that reach Flask."""

    def __init__(self, replay: Replay) -> None:
        self.inner = replay.app
        self.calls = 0
        replay.app = self  # type: ignore[assignment]

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        self.calls += 1
        return self.inner(environ, start_response)


@pytest.fixture
def long_site(tmp_path: Path) -> Path:
    body = "<p>" + "足够长的正文值得压缩。" * 60 + "</p>"
    return write_site(tmp_path / "site", {
        f"_posts/2023-0{i + 1}-01-post-{i}.md": post_text(
            f"第{i}篇 post {i}", f"2023-0{i + 1}-01 08:00:00 +0800", "[新闻, tech]",
            "[红网, python]", body)
        for i in range(5)
    })


@pytest.fixture
def replay_app(long_site: Path, make_app: Callable[..., Flask]) -> Flask:
    return make_app(long_site)


@pytest.fixture
def flask_calls(replay_app: Flask) -> Counting:
    return Counting(replay_of(replay_app))


def replay_of(application: Flask) -> Replay:
    """The Replay among the app's WSGI layers (metrics.Accounting is outside it)."""
    layer: Any = application.wsgi_app
    while not isinstance(layer, Replay):
        assert hasattr(layer, "app"), f"no Replay in front of Flask: {layer!r}"
        layer = layer.app
    return layer


def answer(response: TestResponse) -> tuple[int, list[tuple[str, str]], bytes]:
    return response.status_code, sorted(response.headers.items()), response.get_data()


URLS = ["/feed.atom", "/feed.rss", "/feed.json", "/category/%E6%96%B0%E9%97%BB.atom",
        "/tag/python.json", "/feed.atom?page=1", "/feeds.opml", "/", "/tag/%E7%BA%A2%E7%BD%91.html"]


@pytest.mark.parametrize(("headers", "coding"), [({}, None), (GZIP, "gzip"), (BROTLI, "br")],
                         ids=["identity", "gzip", "br"])
@pytest.mark.parametrize("url", URLS)
def test_a_repeated_request_gets_flasks_answer_without_flask(
        replay_app: Flask, flask_calls: Counting, url: str, headers: dict[str, str],
        coding: str | None) -> None:
    client = replay_app.test_client()
    first = client.get(url, headers=headers)
    assert first.status_code == 200
    assert flask_calls.calls == 1
    again = client.get(url, headers=headers)
    assert flask_calls.calls == 1, "the second request reached Flask"
    assert answer(again) == answer(first)
    assert first.headers.get("Content-Encoding") == coding


def test_validators_are_answered_from_the_replay_as_flask_answers_them(
        replay_app: Flask, flask_calls: Counting) -> None:
    client = replay_app.test_client()
    url = "/category/%E6%96%B0%E9%97%BB.atom"
    etag = client.get(url, headers=GZIP).headers["ETag"]
    plain_etag = client.get(url).headers["ETag"]
    assert etag != plain_etag and flask_calls.calls == 2
    # What Flask answers for each conditional request, with the replay out of the way ...
    cases: list[dict[str, str]] = [
        {**GZIP, "If-None-Match": etag},
        {**GZIP, "If-None-Match": f'"nope", W/{etag}'},
        {**GZIP, "If-None-Match": "*"},
        {"If-None-Match": etag},  # the gzip tag does not describe the plain body
        {**GZIP, "If-None-Match": '"other"'},
        {**GZIP, "If-Modified-Since": "Sat, 01 Jan 2000 00:00:00 GMT"},
        {**GZIP, "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},
        {**GZIP, "If-Modified-Since": "not a date"},
        {**GZIP, "If-None-Match": '"other"',
         "If-Modified-Since": "Fri, 01 Jan 2100 00:00:00 GMT"},  # INM wins
    ]
    expected = [answer(replay_app.test_client().get(
        url, headers=h, environ_overrides={"HTTP_A_IM": ""})) for h in cases]
    calls = flask_calls.calls
    assert calls == 2 + len(cases)  # an A-IM header, even empty, is never replayed
    got = [answer(client.get(url, headers=h)) for h in cases]
    assert flask_calls.calls == calls, "a conditional request reached Flask"
    assert got == expected
    assert [status for status, _h, _b in got] == [304, 304, 304, 200, 200, 200, 304, 200, 200]
    not_modified = dict(got[0][1])
    assert not_modified["ETag"] == etag and "Last-Modified" in not_modified
    assert "Content-Type" not in not_modified and got[0][2] == b""


def test_head_is_replayed_with_the_headers_of_the_get_and_no_body(
        replay_app: Flask, flask_calls: Counting) -> None:
    client = replay_app.test_client()
    get = client.get("/feed.json", headers=GZIP)
    head = client.head("/feed.json", headers=GZIP)
    assert flask_calls.calls == 1
    assert head.status_code == 200 and head.get_data() == b""
    assert sorted(head.headers.items()) == sorted(get.headers.items())
    assert int(head.headers["Content-Length"]) == len(get.get_data())
    assert json.loads(gzip.decompress(get.get_data()))["version"].endswith("/1.1")


def test_another_host_or_scheme_is_its_own_answer(
        long_site: Path, make_app: Callable[..., Flask]) -> None:
    # No url in _config.yml: links are made from the request's scheme and Host.
    (long_site / "_config.yml").write_text("title: Hosts\n", encoding="utf-8")
    application = make_app(long_site)
    calls = Counting(replay_of(application))
    client = application.test_client()
    links = []
    for base in ["http://a.test", "http://b.test", "https://a.test", "http://a.test"]:
        feed = feedparser.parse(client.get("/feed.atom", base_url=base).get_data())
        links.append(feed.entries[0].link.split("/")[:3])
    assert links == [["http:", "", "a.test"], ["http:", "", "b.test"],
                     ["https:", "", "a.test"], ["http:", "", "a.test"]]
    assert calls.calls == 3


def test_a_new_content_version_is_never_answered_from_the_replay(
        replay_app: Flask, flask_calls: Counting, long_site: Path) -> None:
    client = replay_app.test_client()
    before = client.get("/tag/python.atom")
    assert client.get("/tag/python.atom").get_data() == before.get_data()
    assert flask_calls.calls == 1
    (long_site / "_posts/2023-09-09-new.md").write_text(
        post_text("最新的一篇", "2023-09-09 08:00:00 +0800", "[tech]", "[python]"),
        encoding="utf-8")
    replay_app.extensions["feeds"].refresh()
    after = client.get("/tag/python.atom", headers={"If-None-Match": before.headers["ETag"]})
    assert after.status_code == 200 and flask_calls.calls == 2
    titles = [e.title for e in feedparser.parse(after.get_data()).entries]
    assert titles[0] == "最新的一篇"
    assert client.get("/tag/python.atom").get_data() == after.get_data()
    assert flask_calls.calls == 2


def test_only_answers_flask_gave_with_a_rendering_are_replayed(
        replay_app: Flask, flask_calls: Counting) -> None:
    client = replay_app.test_client()
    for _ in range(2):
        assert client.get("/tag/no-such-tag.atom").status_code == 404
        assert client.get("/feed.atom?page=x").status_code == 400
        assert client.get("/healthz").status_code == 200
        assert client.post("/feed.atom").status_code == 405
    assert flask_calls.calls == 8


def test_replayed_requests_are_counted_and_logged_as_flask_does(
        replay_app: Flask, flask_calls: Counting, caplog: pytest.LogCaptureFixture) -> None:
    client = replay_app.test_client()
    headers = {"User-Agent": 'poller "quoted"', "Referer": "http://ref.test/ü"}
    with caplog.at_level(logging.INFO, logger="feeds.access"):
        first = client.get("/feed.rss", headers=headers)
        client.get("/feed.rss", headers=headers)
        client.get("/feed.rss", headers={**headers, "If-None-Match": first.headers["ETag"]})
    assert flask_calls.calls == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "feeds.access"]
    assert len(lines) == 3
    # The same line but for the time, from Flask's path and from the replay.
    strip = [line.split("[", 1)[0] + line.split("]", 1)[1] for line in lines]
    assert strip[0] == strip[1]
    size = len(first.get_data())
    assert f'"GET /feed.rss HTTP/1.1" 200 {size} ' in strip[0]
    assert '"GET /feed.rss HTTP/1.1" 304 - ' in strip[2]
    assert strip[0].endswith('"http://ref.test/\\xfc" "poller \\"quoted\\""')

    metrics = client.get("/metrics").get_data(as_text=True)
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(metrics) for s in family.samples}
    assert samples[("feeds_requests_total", (("route", "feed_site"), ("status", "200")))] == 2
    assert samples[("feeds_requests_total", (("route", "feed_site"), ("status", "304")))] == 1
    assert samples[("feeds_request_seconds_count", (("route", "feed_site"),))] == 3
    assert samples[("feeds_cache_lookups_total", (("result", "hit"),))] >= 2


def test_a_flood_of_distinct_queries_stays_within_the_byte_bound(
        long_site: Path, make_app: Callable[..., Flask]) -> None:
    application = make_app(long_site, cache_bytes=200_000)
    replay = replay_of(application)
    client: FlaskClient = application.test_client()
    body = client.get("/feed.atom").get_data()
    for i in range(300):  # unknown parameters are ignored: the same feed each time
        assert client.get(f"/feed.atom?x={i}").get_data() == body
    assert replay._entries.currsize <= 200_000
    assert 0 < len(replay._entries) < 300
