"""Operating one instance: /healthz, /metrics, the access log (combined and JSON), the
rate limit on waitress's queue warnings, clean stops on SIGTERM and Ctrl-C with requests
in flight, and progress bars that appear only on a terminal."""

from __future__ import annotations

import http.client
import io
import json
import logging
import os
import pty
import re
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

import feedparser
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from feeds import create_app, logs
from feeds.content import ContentStore

from .conftest import ROOT, make_settings, post_text, write_site
from .service_process import ACCESS_LINE, Services, clean_env, wait_for

BAD_POST = "_posts/2022-05-05-broken.md"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    try:
        yield running
    finally:
        running.close()


def site_with_bad_post(root: Path) -> Path:
    return write_site(root, {
        "_posts/2022-01-05-first.md": post_text("First", "2022-01-05 10:00:00 +0800",
                                                "[news]", "[红网新闻]"),
        "_posts/2022-02-01-second.md": post_text("Second", "2022-02-01", "[news]"),
        BAD_POST: "---\ntitle: Broken\ndate: not a date\n---\nNever shown.\n",
    })


# --- /healthz ---------------------------------------------------------------------------


def test_healthz_is_503_until_the_first_load_then_reports_the_content(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = site_with_bad_post(tmp_path / "site")
    gate = threading.Event()
    real_load = ContentStore.load

    def held_load(store: ContentStore, progress: bool = True) -> object:
        assert gate.wait(60), "the test never released the first load"
        return real_load(store, progress)

    monkeypatch.setattr(ContentStore, "load", held_load)
    app = create_app(make_settings(site), background=True)
    try:
        client = app.test_client()
        loading = client.get("/healthz")
        assert loading.status_code == 503
        assert loading.headers["Retry-After"] == "1"
        assert loading.headers["Cache-Control"] == "no-store"
        assert loading.get_json()["status"] == "loading"
        assert client.get("/feed.atom").status_code == 503
        gate.set()
        wait_for(lambda: client.get("/healthz").status_code == 200, 60, "the first load")
        health = client.get("/healthz").get_json()
        assert health["status"] == "ok"
        assert (health["posts"], health["rejected"]) == (2, 1)
        reload = health["last_reload"]
        assert datetime.fromisoformat(reload["time"]).tzinfo is not None
        assert isinstance(reload["seconds"], float) and reload["seconds"] >= 0
        assert health["version"] == reload["version"]

        (site / BAD_POST).write_text(post_text("Mended", "2022-05-05"), "utf-8")
        app.extensions["feeds"].refresh()
        after = client.get("/healthz").get_json()
        assert (after["posts"], after["rejected"]) == (3, 0)
        assert after["version"] > health["version"]
        assert after["last_reload"]["version"] == after["version"]
    finally:
        gate.set()
        app.extensions["feeds"].stop()


# --- /metrics ---------------------------------------------------------------------------


def scrape(client: FlaskClient) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed with prometheus-client's own parser."""
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["Content-Type"].startswith("text/plain; version=")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for s in family.samples:
            samples[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return samples


def value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str,
          **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_count_requests_latency_cache_and_content(app: Flask, site_dir: Path) -> None:
    client = app.test_client()
    before = scrape(client)
    first = client.get("/feed.atom")
    after_miss = scrape(client)
    assert client.get("/feed.atom").status_code == 200
    after_hit = scrape(client)
    assert value(after_miss, "feeds_cache_lookups_total", result="miss") == \
        value(before, "feeds_cache_lookups_total", result="miss") + 1
    assert value(after_hit, "feeds_cache_lookups_total", result="hit") == \
        value(after_miss, "feeds_cache_lookups_total", result="hit") + 1

    assert client.get("/feed.atom", headers={"If-None-Match": first.headers["ETag"]}
                      ).status_code == 304
    assert client.get("/feed.atom?page=x").status_code == 400
    assert client.get(f"/tag/{quote('红网新闻')}.rss").status_code == 200
    assert client.get("/no/such/post.html").status_code == 404
    samples = scrape(client)
    for status, count in (("200", 2), ("304", 1), ("400", 1)):
        assert value(samples, "feeds_requests_total", route="feed_site", status=status) == count
    assert value(samples, "feeds_requests_total", route="feed_tag", status="200") == 1
    assert value(samples, "feeds_requests_total", route="page_post", status="404") == 1
    # A scrape shows the scrapes before it: this is the fourth.
    assert value(samples, "feeds_requests_total", route="metrics", status="200") == 3

    # The latency histogram: one observation per request, cumulative buckets.
    assert value(samples, "feeds_request_seconds_count", route="feed_site") == 4
    buckets = sorted(
        (float(dict(labels)["le"]), v) for (name, labels), v in samples.items()
        if name == "feeds_request_seconds_bucket" and dict(labels)["route"] == "feed_site")
    counts = [v for _, v in buckets]
    assert counts == sorted(counts) and buckets[-1] == (float("inf"), 4)

    health = client.get("/healthz").get_json()
    assert value(samples, "feeds_posts") == health["posts"] == 4
    assert value(samples, "feeds_posts_rejected") == 0
    assert value(samples, "feeds_reloads_total") == 1
    assert value(samples, "feeds_reload_seconds_count") == 1

    (site_dir / BAD_POST).write_text("---\ndate: [\n---\n", "utf-8")
    app.extensions["feeds"].refresh()
    samples = scrape(client)
    assert value(samples, "feeds_posts_rejected") == 1
    assert value(samples, "feeds_reloads_total") == 2
    assert value(samples, "feeds_reload_seconds_count") == 2


def test_every_answer_is_counted_and_logged_once_whoever_gave_it(
        app: Flask, caplog: pytest.LogCaptureFixture) -> None:
    """One layer outside the replay and Flask counts and logs: Flask's answers, the
    replay's and those of the error handlers (404, 400, 405) alike, each once."""
    client = app.test_client()
    before = scrape(client)
    with caplog.at_level(logging.INFO, logger="feeds.access"):
        with client.get("/static/style.css") as static:  # a file: closed when done
            pass
        answers = [client.get("/feed.json").status_code,
                   client.get("/feed.json").status_code,  # replayed
                   client.head("/feed.json").status_code,  # replayed, no body
                   client.get("/tag/no-such-tag.atom").status_code,
                   client.get("/feed.json?limit=x").status_code,
                   client.post("/feed.json").status_code,
                   static.status_code]
    assert answers == [200, 200, 200, 404, 400, 405, 200]
    assert static.content_length
    samples = scrape(client)

    def counted(route: str, status: str) -> float:
        return (value(samples, "feeds_requests_total", route=route, status=status)
                - value(before, "feeds_requests_total", route=route, status=status))

    assert counted("feed_site", "200") == 3
    assert counted("feed_tag", "404") == 1
    assert counted("feed_site", "400") == 1
    assert counted("unknown", "405") == 1  # refused by the router: no view named it
    assert counted("static", "200") == 1
    lines = [r.getMessage() for r in caplog.records if r.name == "feeds.access"]
    assert [line.split('"')[1] for line in lines] == [
        "GET /static/style.css HTTP/1.1", "GET /feed.json HTTP/1.1",
        "GET /feed.json HTTP/1.1", "HEAD /feed.json HTTP/1.1",
        "GET /tag/no-such-tag.atom HTTP/1.1", "GET /feed.json?limit=x HTTP/1.1",
        "POST /feed.json HTTP/1.1"]
    sizes = [line.split('"')[2].split() for line in lines]
    assert sizes[0] == ["200", str(static.content_length)]
    assert sizes[1] == sizes[2] == sizes[3] == ["200", sizes[1][1]] and sizes[1][1] != "-"


def test_the_logged_uri_is_the_one_the_client_sent_behind_a_path_prefix(
        site_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
    app = create_app(make_settings(site_dir, baseurl="/blog"))
    try:
        client = app.test_client()
        with caplog.at_level(logging.INFO, logger="feeds.access"):
            for _ in range(2):  # Flask's answer, then the replay's
                # No REQUEST_URI or RAW_URI (a server that sets neither): rebuilt from
                # the path before the prefix is taken off it.
                assert client.get("/blog/feed.atom", environ_overrides={
                    "REQUEST_URI": "", "RAW_URI": ""}).status_code == 200
        lines = [r.getMessage() for r in caplog.records if r.name == "feeds.access"]
        assert len(lines) == 2
        assert all('"GET /blog/feed.atom HTTP/1.1" 200 ' in line for line in lines)
    finally:
        app.extensions["feeds"].stop()


def test_an_answer_started_with_its_first_chunk_is_counted_when_its_body_is_done(
        caplog: pytest.LogCaptureFixture) -> None:
    """PEP 3333 lets an app call start_response as late as its first chunk."""
    from feeds.metrics import ROUTE, Accounting, Metrics

    closed = []

    class Body:
        def __init__(self, environ: dict[str, object], start_response: Any) -> None:
            self.environ, self.start_response = environ, start_response

        def __iter__(self) -> Iterator[bytes]:
            self.environ[ROUTE] = "late"
            self.start_response("201 Created", [("Content-Type", "text/plain")])
            yield b"made"

        def close(self) -> None:
            closed.append(True)

    metrics = Metrics()
    accounting = Accounting(Body, metrics, as_json=True)  # type: ignore[arg-type]
    environ = {"REQUEST_METHOD": "PUT", "REQUEST_URI": "/x?y=1"}
    started: list[str] = []
    with caplog.at_level(logging.INFO, logger="feeds.access"):
        body = accounting(environ, lambda status, headers, exc_info=None: started.append(status))
        assert not closed and metrics.requests.labels("late", "201")._value.get() == 0
        assert list(body) == [b"made"]
        body.close()  # type: ignore[attr-defined]
    assert started == ["201 Created"] and closed == [True]
    assert metrics.requests.labels("late", "201")._value.get() == 1
    [line] = [json.loads(r.getMessage()) for r in caplog.records if r.name == "feeds.access"]
    assert (line["method"], line["uri"], line["status"], line["bytes"]) == ("PUT", "/x?y=1",
                                                                          201, 0)


# --- access log and service log ---------------------------------------------------------

def unescape(text: str) -> str:
    return re.sub(r"\\x([0-9a-f]{2})|\\(.)",
                  lambda m: chr(int(m.group(1), 16)) if m.group(1) else m.group(2), text)


def test_access_log_is_combined_format_and_a_bad_post_is_logged_by_name(
        tmp_path: Path, services: Services) -> None:
    site = site_with_bad_post(tmp_path / "site")
    svc = services.start(site, "--no-watch")
    agent = 'Reader "quoted" \\ 1.0 caf\xe9'  # sent as Latin-1, as HTTP allows
    tag_uri = f"/tag/{quote('红网新闻')}.atom"
    feed = requests.get(svc.url + tag_uri, timeout=30,
                        headers={"User-Agent": agent, "Referer": "https://ref.example/a b",
                                 "Accept-Encoding": "identity"})
    assert feed.status_code == 200
    again = requests.get(svc.url + tag_uri, timeout=30,
                         headers={"If-None-Match": feed.headers["ETag"],
                                  "Accept-Encoding": "identity"})
    assert again.status_code == 304
    assert requests.get(svc.url + "/no/such.html", timeout=30).status_code == 404
    assert svc.stop(signal.SIGTERM) == 0

    lines = svc.access_lines()
    parsed = [ACCESS_LINE.fullmatch(line) for line in lines]
    assert all(parsed), [line for line, m in zip(lines, parsed, strict=True) if not m]
    entries = [m.groupdict() for m in parsed if m]
    by_uri = [e for e in entries if e["uri"] == tag_uri]
    assert [e["status"] for e in by_uri] == ["200", "304"]
    first, second = by_uri
    assert first["bytes"] == str(len(feed.content)) and second["bytes"] == "-"
    assert unescape(first["agent"]) == agent
    assert unescape(first["referer"]) == "https://ref.example/a b"
    assert first["remote"] == "127.0.0.1" and first["protocol"] == "HTTP/1.1"
    datetime.strptime(first["time"], "%d/%b/%Y:%H:%M:%S %z")
    assert any(e["uri"] == "/no/such.html" and e["status"] == "404" for e in entries)

    log = svc.log().splitlines()
    rejected = [line for line in log if BAD_POST in line]
    assert len(rejected) == 1 and " ERROR " in rejected[0], log
    assert "date" in rejected[0]
    assert log[-1].endswith("stopped")


def test_json_logs_and_ctrl_c(tmp_path: Path, services: Services) -> None:
    site = site_with_bad_post(tmp_path / "site")
    svc = services.start(site, "--no-watch", "--log-format", "json")
    response = requests.get(svc.url + "/feed.json", timeout=30,
                            headers={"User-Agent": "json-test"})
    assert response.status_code == 200
    assert svc.stop(signal.SIGINT) == 0

    access = [json.loads(line) for line in svc.access_lines()]
    mine = [a for a in access if a["uri"] == "/feed.json"]
    assert len(mine) == 1
    entry = mine[0]
    assert (entry["method"], entry["status"], entry["agent"]) == ("GET", 200, "json-test")
    assert entry["bytes"] == int(response.headers["Content-Length"])
    assert isinstance(entry["seconds"], float) and entry["seconds"] >= 0
    datetime.strptime(entry["time"], "%Y-%m-%dT%H:%M:%S%z")

    records = [json.loads(line) for line in svc.log().splitlines()]
    assert {"time", "level", "logger", "message"} <= set(records[0])
    bad = [r for r in records if BAD_POST in r["message"]]
    assert len(bad) == 1 and bad[0]["level"] == "error"
    assert records[-1]["message"] == "stopped"


@pytest.fixture
def logging_state() -> Iterator[None]:
    """setup_logging changes process-wide logging; put it back for the other tests."""
    root = logging.getLogger()
    access = logging.getLogger("feeds.access")
    queue = logging.getLogger("waitress.queue")
    saved = (root.handlers[:], root.level, access.handlers[:], access.propagate,
             access.level, queue.filters[:])
    flags = (logging.logThreads, logging.logProcesses, logging.logMultiprocessing)
    try:
        yield
    finally:
        logging.logThreads, logging.logProcesses, logging.logMultiprocessing = flags
        (root.handlers[:], root.level, access.handlers[:], access.propagate,
         access.level, queue.filters[:]) = saved  # type: ignore[misc]
        root.setLevel(saved[1])
        access.setLevel(saved[4])


def test_waitress_queue_warnings_are_let_through_once_a_minute(
        logging_state: None, capsys: pytest.CaptureFixture[str]) -> None:
    from waitress.task import ThreadedTaskDispatcher

    logs.setup_logging("info", "text")
    dispatcher = ThreadedTaskDispatcher()  # no worker threads: every task has to wait
    for _ in range(200):
        dispatcher.add_task(object())  # type: ignore[arg-type]
    lines = capsys.readouterr().err.splitlines()
    assert [line for line in lines if "Task queue depth" in line] == [
        line for line in lines if line.endswith("waitress.queue: Task queue depth is 1")]
    assert len(lines) == 1


def test_every_minute_filter_counts_what_it_held_back() -> None:
    now = [1000.0]
    limit = logs.EveryMinute(clock=lambda: now[0])

    def record() -> logging.LogRecord:
        return logging.LogRecord("waitress.queue", logging.WARNING, __file__, 1,
                                 "Task queue depth is %d", (3,), None)

    assert limit.filter(record())
    passed = []
    for _ in range(5):
        now[0] += 10
        passed.append(limit.filter(record()))
    assert passed == [False] * 5
    now[0] += 11
    late = record()
    assert limit.filter(late)
    assert late.getMessage() == \
        "Task queue depth is 3 (5 more such warnings in the last 60 s)"
    now[0] += 1
    assert not limit.filter(record())


class _Recording(io.StringIO):
    """A stream that counts its writes, to see lines written in batches."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def write(self, text: str) -> int:
        self.writes += 1
        return super().write(text)


def test_batched_access_log_loses_no_line_and_keeps_each_threads_order() -> None:
    stream = _Recording()
    handler = logs.BatchedStream(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    log = logging.getLogger("test.batched")
    log.propagate = False
    log.handlers[:] = [handler]
    log.setLevel(logging.INFO)

    def work(worker: int) -> None:
        for i in range(2000):
            log.info("worker %d line %d", worker, i)

    threads = [threading.Thread(target=work, args=(w,)) for w in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    handler.close()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 16_000
    for w in range(8):
        mine = [int(line.rsplit(" ", 1)[1]) for line in lines if line.startswith(f"worker {w} ")]
        assert mine == list(range(2000))
    assert stream.writes < 16_000  # written in batches, not one write a line
    log.handlers[:] = []


def test_batched_access_log_writes_promptly_and_says_once_when_it_cannot(
        capsys: pytest.CaptureFixture[str]) -> None:
    stream = io.StringIO()
    handler = logs.BatchedStream(stream)
    record = logging.LogRecord("x", logging.INFO, __file__, 1, "one line", (), None)
    handler.handle(record)
    deadline = time.monotonic() + 10
    while "one line" not in stream.getvalue() and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stream.getvalue() == "one line\n"  # by the writer thread, without a flush
    stream.close()
    for _ in range(3):
        handler.handle(record)
        handler.flush()
    handler.close()
    assert capsys.readouterr().err.count("cannot write the log") == 1


def test_log_level_warning_silences_the_access_log(logging_state: None) -> None:
    logs.setup_logging("warning", "text")
    assert not logging.getLogger("feeds.access").isEnabledFor(logging.INFO)
    assert logging.getLogger("feeds.content").isEnabledFor(logging.WARNING)
    logs.setup_logging("debug", "json")
    assert logging.getLogger("feeds.access").isEnabledFor(logging.INFO)


# --- clean stops ------------------------------------------------------------------------


def _http_get_slowly(port: int, path: str) -> socket.socket:
    """A client with a tiny receive window: the response stays in flight, in the
    server's buffers, for as long as the client does not read."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(120)
    sock.connect(("127.0.0.1", port))
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
                 .encode())
    return sock


def _read_response(sock: socket.socket, head: bytes) -> tuple[dict[str, str], bytes]:
    data = head
    while True:
        chunk = sock.recv(1 << 16)
        if not chunk:
            break
        data += chunk
    header_block, _, body = data.partition(b"\r\n\r\n")
    lines = header_block.decode("latin-1").split("\r\n")
    assert lines[0].startswith("HTTP/1.1 200"), lines[0]
    headers = {k.lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    return headers, body


def _send_buffer_max() -> int:
    """The most the kernel may buffer on the server's side of one connection."""
    try:
        return int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2])
    except (OSError, IndexError, ValueError):
        return 4 << 20


def test_sigterm_finishes_the_response_in_flight_then_exits_0(
        tmp_path: Path, services: Services) -> None:
    # A feed larger than the kernel can buffer, so part of it waits in waitress while
    # the client does not read. HTML posts: no Markdown to render, the test stays quick.
    paragraph = "<p>" + "Lorem ipsum dolor sit amet, consectetur adipiscing. " * 20 + "</p>\n"
    body = paragraph * (1_500_000 // len(paragraph))
    count = (_send_buffer_max() + 2_000_000) // 1_500_000 + 1
    site = write_site(tmp_path / "site", {
        f"_posts/2022-01-{i:02d}-big.html": post_text(f"Big {i}", f"2022-01-{i:02d}",
                                                      body=body)
        for i in range(1, count + 1)})
    svc = services.start(site, "--no-watch")
    sock = _http_get_slowly(svc.port, f"/feed.atom?limit={count}")
    try:
        head = sock.recv(4096)  # the response has started: it is in flight
        assert head.startswith(b"HTTP/1.1 200")
        svc.proc.send_signal(signal.SIGTERM)

        def refused() -> bool:  # the listening socket closes at once ...
            try:
                socket.create_connection(("127.0.0.1", svc.port), timeout=5).close()
            except ConnectionRefusedError:
                return True
            return False

        wait_for(refused, 60, "the server to stop accepting")
        assert svc.proc.poll() is None  # ... but the server waits for our response
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 << 20)  # now read fast
        headers, received = _read_response(sock, head)
    finally:
        sock.close()
    assert len(received) == int(headers["content-length"]) > _send_buffer_max()
    parsed = feedparser.parse(received)
    assert not parsed.bozo and [e.title for e in parsed.entries] == [
        f"Big {i}" for i in range(count, 0, -1)]
    assert svc.proc.wait(timeout=60) == 0
    log = svc.log()
    assert "signal 15: finishing in-flight requests" in log and "still busy" not in log


def test_ctrl_c_on_an_idle_server_closes_keepalive_connections(
        tmp_path: Path, site_dir: Path, services: Services) -> None:
    svc = services.start(site_dir, "--no-watch")
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=60)
    conn.request("GET", "/feed.atom")
    first = conn.getresponse()
    first.read()
    assert first.status == 200 and not first.will_close  # kept alive, now idle
    assert svc.stop(signal.SIGINT) == 0
    assert conn.sock is not None and conn.sock.recv(1) == b""  # closed by the server
    conn.close()
    assert svc.log().splitlines()[-1].endswith("stopped")


def test_a_304_keeps_the_connection_open_for_the_next_poll(
        site_dir: Path, services: Services) -> None:
    """An aggregator polls over one connection: 200, then 304s, without reconnecting.
    A client that asks to close, and HTTP/1.0, still get the connection closed."""
    svc = services.start(site_dir, "--no-watch")
    conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=60)
    conn.request("GET", "/feed.atom", headers={"Accept-Encoding": "gzip"})
    first = conn.getresponse()
    first.read()
    sock = conn.sock
    etag = first.getheader("ETag")
    assert first.status == 200 and etag and not first.will_close
    for _ in range(3):  # Flask's answer first, then the replay's
        conn.request("GET", "/feed.atom",
                     headers={"Accept-Encoding": "gzip", "If-None-Match": etag})
        again = conn.getresponse()
        assert again.read() == b""
        assert again.status == 304 and again.getheader("ETag") == etag
        assert not again.will_close and again.getheader("Connection") is None
        assert conn.sock is sock  # the same connection, still open
    conn.request("GET", "/feed.atom", headers={"If-None-Match": etag, "Connection": "close",
                                               "Accept-Encoding": "gzip"})
    closing = conn.getresponse()
    closing.read()
    assert closing.status == 304 and closing.will_close
    conn.close()

    with socket.create_connection(("127.0.0.1", svc.port), timeout=60) as raw:
        raw.sendall(f"GET /feed.atom HTTP/1.0\r\nAccept-Encoding: gzip\r\n"
                    f"If-None-Match: {etag}\r\nConnection: keep-alive\r\n\r\n".encode())
        answer = b""
        while chunk := raw.recv(65536):  # ends: the server closes after a 1.0 304
            answer += chunk
    assert answer.startswith(b"HTTP/1.0 304 ")


def test_a_busy_port_is_a_one_line_error(tmp_path: Path, site_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = subprocess.run(
            [sys.executable, str(ROOT / "app.py"), "--content", str(site_dir),
             "--port", str(port), "--no-watch"],
            capture_output=True, text=True, timeout=120, env=clean_env(), cwd=ROOT)
    assert result.returncode == 1
    errors = [line for line in result.stderr.splitlines() if " ERROR " in line]
    assert len(errors) == 1 and f"cannot listen on 127.0.0.1:{port}" in errors[0]
    assert "Traceback" not in result.stderr


# --- progress on a terminal -------------------------------------------------------------


def run_feeds(args: list[str], tty: bool) -> tuple[int, str, str]:
    """Run ``python -m feeds ARGS`` with stderr on a pseudo-terminal or on a pipe;
    (status, stdout, stderr)."""
    if not tty:
        done = subprocess.run([sys.executable, "-m", "feeds", *args], capture_output=True,
                              text=True, timeout=300, env=clean_env(), cwd=ROOT)
        return done.returncode, done.stdout, done.stderr
    leader, follower = pty.openpty()
    proc = subprocess.Popen([sys.executable, "-m", "feeds", *args], stdout=subprocess.PIPE,
                            stderr=follower, stdin=subprocess.DEVNULL, env=clean_env(),
                            cwd=ROOT)
    os.close(follower)
    err = b""
    deadline = time.monotonic() + 300
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(leader, 65536)
                except OSError:  # EIO: the terminal's other side is closed
                    break
                if not chunk:
                    break
                err += chunk
            elif proc.poll() is not None:
                break
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        status = proc.wait(timeout=60)
    finally:
        os.close(leader)
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    return status, out, err.decode()


def many_posts(root: Path, n: int) -> Path:
    return write_site(root, {
        f"_posts/2022-01-{1 + i % 28:02d}-post-{i}.md": post_text(
            f"Post {i}", f"2022-01-{1 + i % 28:02d}", "[news]", f"[t{i % 3}]")
        for i in range(n)})


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_check_and_build_show_a_bar_only_on_a_terminal(tmp_path: Path, tty: bool) -> None:
    site = many_posts(tmp_path / "site", 60)
    status, out, err = run_feeds(["check", str(site)], tty)
    assert status == 0 and out == ""
    summary = re.compile(r"60 posts, 0 rejected, 0 warnings, \d+\.\d\d s")
    assert summary.search(err.splitlines()[-1])
    bars = re.findall(r"\rcheck \[[#.]+\] (\d+)/(\d+)", err)
    if tty:
        done, total = bars[-1]
        assert done == total and int(total) >= 60
    else:
        assert bars == [] and "\r" not in err

    out_dir = tmp_path / "out"
    status, out, err = run_feeds(["build", str(site), str(out_dir),
                                  "--base-url", "https://example.org"], tty)
    assert status == 0
    last = err.splitlines()[-1]
    found = re.search(r"60 posts, 0 rejected, (\d+) files \((\d+) written, 0 removed, "
                      r"0 failed\) in \d+\.\d\d s", last)
    assert found and found.group(1) == found.group(2), last
    bars = re.findall(r"\rbuild \[[#.]+\] (\d+)/(\d+)", err)
    if tty:
        assert bars[-1] == (found.group(1), found.group(1))
    else:
        assert bars == [] and "\r" not in err


# --- responses handed to the main loop whole --------------------------------------------


def test_responses_below_and_above_send_bytes_arrive_whole_on_concurrent_connections(
        tmp_path: Path, services: Services) -> None:
    """The server hands a response of up to SEND_BYTES to waitress's main loop whole
    (its worker threads no longer send each write themselves): small and large answers,
    on several keep-alive connections at once, arrive byte for byte as on one."""
    from feeds.server import SEND_BYTES

    words = " ".join(f"word{n}" for n in range(SEND_BYTES // 8))  # a body > SEND_BYTES
    site = write_site(tmp_path / "site", {
        "_posts/2022-06-01-big.md": post_text("Big", "2022-06-01", body=words),
        "_posts/2022-06-02-small.md": post_text("Small", "2022-06-02", body="Short.")})
    svc = services.start(site)
    small = requests.get(svc.url + "/feed.json", timeout=60).json()["items"][0]["url"]
    paths = ["/feed.atom", urlsplit(small).path, "/feed.json"]
    alone = {}
    for path in paths:
        response = requests.get(svc.url + path, timeout=60)
        assert response.status_code == 200, path
        alone[path] = response.content
    assert len(alone["/feed.atom"]) > SEND_BYTES > len(alone[paths[1]])
    got: list[tuple[str, int, bytes]] = []
    lock = threading.Lock()

    def reader() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", svc.port, timeout=60)
        try:
            for _ in range(5):
                for path in paths:
                    conn.request("GET", path)
                    response = conn.getresponse()
                    body = response.read()
                    with lock:
                        got.append((path, response.status, body))
        finally:
            conn.close()

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(got) == 4 * 5 * len(paths)
    for path, status, body in got:
        assert (status, body) == (200, alone[path]), path
    entries = feedparser.parse(alone["/feed.atom"]).entries
    assert [e.title for e in entries] == ["Small", "Big"]
    assert entries[1].content[0].value.count("word") == SEND_BYTES // 8
