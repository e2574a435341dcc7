"""Issue 15, findings 11 to 14 and the forged log line: a half-written or unreadable post
never cached as a success, a future ``updated`` capped, SIGHUP reloading a real
``feeds serve`` with no access-log line lost, /healthz saying ``degraded`` (still 200)
whenever the service serves the last good content instead of the folder's, and file
names that cannot forge a log line."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
import requests
from flask import Flask
from lxml import html as lxml_html

from feeds.service import FeedService
from feeds.settle import SETTLE

from .conftest import post_text, write_site
from .service_process import Services, wait_for

POSTS = {f"_posts/2021-01-{d:02d}-p{d}.md": post_text(f"P{d}", f"2021-01-{d:02d} 10:00:00",
                                                      body=f"Body of post {d}.")
         for d in range(1, 4)}
CONFIG = "title: Health\nurl: https://health.example\n"


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    yield running
    running.close()


def article_text(data: bytes) -> str:
    return " ".join(lxml_html.fromstring(data).xpath("//article//text()")).strip()


def renders(service: FeedService) -> float:
    return sum(sample.value for metric in service.metrics.renders.collect()
               for sample in metric.samples if sample.name.endswith("_total"))


# --- finding 11: half-written posts, unreadable bodies ------------------------------------


def test_a_body_that_cannot_be_read_is_never_cached_and_the_file_is_read_again(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    app = make_app(root, source_cache_bytes=1)  # no file kept as indexed: read from disk
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    url = service.state().snapshot.posts["_posts/2021-01-02-p2.md"].url
    # Edited in place and not re-indexed yet: the body read finds another file.
    (root / "_posts" / "2021-01-02-p2.md").write_text(
        post_text("P2", "2021-01-02 10:00:00", body="Second version, longer than the first."))
    first = client.get(url)
    assert first.status_code == 200
    assert "Body of post" not in article_text(first.data)
    assert first.headers["Cache-Control"] == "no-store"
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["status"] == "degraded"
    assert "bodies" in health.get_json()["problems"]
    made = renders(service)
    again = client.get(url)  # not answered from any cache: rendered again
    assert renders(service) == made + 1 and again.headers["Cache-Control"] == "no-store"
    entry = feedparser.parse(client.get("/feed.atom").data).entries
    assert client.get("/feed.atom").headers["Cache-Control"] == "no-store"
    assert [e.title for e in entry] == ["P3", "P2", "P1"]
    # The store was asked to read the file again; once it has, all is well.
    assert "_posts/2021-01-02-p2.md" in service.store.due()
    service.refresh()
    fixed = client.get(url)
    assert "Second version" in article_text(fixed.data)
    assert "no-store" not in fixed.headers["Cache-Control"]
    assert client.get("/healthz").get_json()["status"] == "ok"


def test_a_post_half_written_in_place_keeps_its_last_good_version(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    app = make_app(root)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    path = root / "_posts" / "2021-01-02-p2.md"
    with open(path, "w", encoding="utf-8") as f:  # a writer half-way through
        f.write("---\ntitle: [P2, still be")
        f.flush()
        service.refresh()
        titles = [e.title for e in feedparser.parse(client.get("/feed.atom").data).entries]
        assert titles == ["P3", "P2", "P1"]
        assert "_posts/2021-01-02-p2.md" not in service.state().snapshot.problems
        f.write("ing written]\n---\nDone.\n")
    # Settled: now it is read as Jekyll reads it, a title that is a list ignored with a
    # warning (the title comes from the file name), as any such file is.
    os.utime(path, (time.time() - 2 * SETTLE, time.time() - 2 * SETTLE))
    service.refresh()
    problems = service.state().snapshot.problems["_posts/2021-01-02-p2.md"]
    assert not any(p.rejected for p in problems)
    assert any("title" in p.message for p in problems)
    entries = feedparser.parse(client.get("/feed.atom").data).entries
    assert [e.title for e in entries] == ["P3", "P2", "P1"]
    assert "Done." in entries[1].content[0].value


def test_a_watcher_scan_leaves_a_file_being_written_for_later(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """The issue's fallback scan that published 2 of 8 paragraphs: a file written in the
    last SETTLE seconds is not read by the watcher's scans (its close, or a later scan,
    reads it whole)."""
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    app = make_app(root)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    path = root / "_posts" / "2021-01-02-p2.md"
    url = service.state().snapshot.posts["_posts/2021-01-02-p2.md"].url
    path.write_text(post_text("P2", "2021-01-02 10:00:00", body="Paragraph 1 of 8."))
    assert service.store.rescan(settle=True) is None  # still being written, perhaps
    assert "Paragraph 1" not in article_text(client.get(url).data)
    os.utime(path, (time.time() - 2 * SETTLE, time.time() - 2 * SETTLE))
    snapshot = service.store.rescan(settle=True)
    assert snapshot is not None
    assert snapshot.posts["_posts/2021-01-02-p2.md"].stamp[0] == path.stat().st_mtime_ns


# --- finding 12: a far-future updated ----------------------------------------------------


def test_a_future_updated_is_capped_so_if_modified_since_still_sees_changes(
        tmp_path: Path, make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture) -> None:
    posts = dict(POSTS)
    posts["_posts/2021-01-04-pinned.md"] = post_text(
        "Pinned", "2021-01-04 10:00:00", extra="last_modified_at: 9998-12-31\n")
    root = write_site(tmp_path / "site", posts, config=CONFIG)
    with caplog.at_level(logging.WARNING, logger="feeds.content"):
        app = make_app(root)
    assert any("pinned" in r.getMessage() and "future" in r.getMessage()
               for r in caplog.records)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    first = client.get("/feed.atom")
    last_modified = parsedate_to_datetime(first.headers["Last-Modified"])
    assert last_modified <= datetime.now(UTC)
    entry = next(e for e in feedparser.parse(first.data).entries if e.title == "Pinned")
    assert entry.updated_parsed.tm_year < 9998
    time.sleep(1.1)  # Last-Modified has one-second resolution
    edited = datetime.now(UTC).isoformat(timespec="seconds")
    (root / "_posts" / "2021-01-01-p1.md").write_text(post_text(
        "P1 edited", "2021-01-01 10:00:00", extra=f"last_modified_at: {edited}\n"))
    service.refresh()
    later = client.get("/feed.atom", headers={"If-Modified-Since": first.headers["Last-Modified"]})
    assert later.status_code == 200 and "P1 edited" in later.get_data(as_text=True)
    since = later.headers["Last-Modified"]
    assert client.get("/feed.atom", headers={"If-Modified-Since": since}).status_code == 304


# --- finding 14: health --------------------------------------------------------------------


def test_health_is_degraded_when_the_watcher_stops_delivering(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    app = make_app(root, watch=True)
    client = app.test_client()
    assert client.get("/healthz").get_json()["status"] == "ok"
    app.extensions["feeds"]._watcher.stop()  # what a dead reloader thread looks like
    health = client.get("/healthz")
    assert health.status_code == 200
    assert health.get_json()["status"] == "degraded"
    assert health.get_json()["problems"]["watch"] == "stopped"


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_health_is_ok_between_the_first_load_and_the_watcher_starting(
        tmp_path: Path) -> None:
    """The first load is installed (and /healthz answers) a moment before the reloader
    thread starts: that is no stalled watcher. One that started and died is."""
    from feeds.watch import Watcher

    def die() -> None:
        raise SystemExit  # past the reloader's own guard, which catches Exception

    watcher = Watcher(str(tmp_path), 5.0, on_paths=lambda paths: None, on_poll=lambda: None,
                      on_tick=die, use_events=False)
    try:
        assert watcher.stalled() is None
        watcher.start()
        watcher._thread.join(timeout=30)
        assert watcher.stalled() == "the reloader thread is not running"
    finally:
        watcher.stop()


# --- finding 13: SIGHUP, on a real feeds serve ------------------------------------------


def test_sighup_reloads_content_and_config_and_loses_no_access_log_line(
        tmp_path: Path, services: Services) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    svc = services.start(root, "--no-watch")
    session = requests.Session()
    sent = 0
    for _ in range(20):
        assert session.get(svc.url + "/feed.atom", timeout=10).status_code == 200
        sent += 1
    (root / "_config.yml").write_text(CONFIG.replace("Health", "Reloaded"))
    (root / "_posts" / "2021-02-01-new.md").write_text(post_text("New", "2021-02-01"))
    svc.proc.send_signal(signal.SIGHUP)

    def reloaded() -> bool:
        nonlocal sent
        sent += 1
        feed = feedparser.parse(session.get(svc.url + "/feed.atom", timeout=10).content)
        return feed.feed.get("title") == "Reloaded" and "New" in {
            e.title for e in feed.entries}

    wait_for(reloaded, 30, "the reload")
    assert svc.proc.poll() is None, "SIGHUP killed the service"
    health = session.get(svc.url + "/healthz", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert svc.stop() == 0
    log = svc.access_log()
    assert len([line for line in log if line["uri"] == "/feed.atom"]) == sent
    assert "SIGHUP" in svc.log()


# --- finding 15: a file name that would forge a log line -------------------------------


def test_a_newline_in_a_file_name_cannot_forge_a_service_log_line(
        tmp_path: Path, services: Services) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    forged = "2021-01-09-x\n2030-01-01 00:00:00,000 ERROR feeds: forged.md"
    (root / "_posts" / forged).write_text("no front matter\n")
    svc = services.start(root)
    wait_for(lambda: "rejected" in svc.log(), 30, "the rejection")
    lines = svc.log().splitlines()
    assert not [line for line in lines if line.startswith("2030-01-01")]
    assert any("2021-01-09-x\\n2030-01-01" in line for line in lines)
    assert svc.stop() == 0
