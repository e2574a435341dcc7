"""Issue 15's soak, what its second round found, each as a test that failed on the code
before the fix:

- RSS: a post saved ten times a second left every old version's body and feed entries
  in the caches until their byte bounds (64 MB each) evicted them, 20 minutes into the
  soak, so RSS grew for most of the run;
- ``mv _posts x``: the events saw a site without posts (the last content served, health
  degraded), the next full scan a flat folder in which every page was a post;
- a writer that never closes its file was seen only by the full scan (10 s);
- a post whose path became a folder stayed until the full scan; and with watchdog's own
  polling fallback, health said 'inotify'.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient

from feeds.content import ContentStore
from feeds.service import FeedService

from .conftest import make_settings, post_text, set_mtimes, write_site
from .test_folder_swaps import CONFIG, SOON, ids, wait_until, watched

POST = "_posts/2021-01-03-p3.md"
POSTS = {f"_posts/2021-01-{d:02d}-p{d}.md": post_text(f"P{d}", f"2021-01-{d:02d} 10:00:00",
                                                       body=f"Body of P{d}.")
         for d in range(1, 13)}


def first_scan_done(service: FeedService) -> None:
    """Wait for the watcher's scan at its start: what shows after it came by events."""
    wait_until(lambda: service._watcher is not None and service._watcher._next_scan > 0,
               "the watcher's first scan")


def events_only(make_app: Callable[..., Flask], root: Path,
                monkeypatch: pytest.MonkeyPatch) -> tuple[FlaskClient, FeedService]:
    """A watched app whose full scans (after the first) are ten minutes apart."""
    import feeds.watch

    monkeypatch.setattr(feeds.watch, "SAFETY_SCAN", 600.0)
    client, service = watched(make_app, root)
    first_scan_done(service)
    return client, service


# --- RSS: one version of each post kept --------------------------------------------------


def test_a_post_saved_again_and_again_keeps_one_body_and_one_entry_per_format(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    app = make_app(root)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    bodies = service.cache.bodies

    def poll(n: int) -> None:
        for path in ("/feed.atom", "/feed.rss", "/feed.json"):
            response = client.get(path)
            assert response.status_code == 200 and f"P3 v{n}".encode() in response.data
        assert client.get(service.state().snapshot.posts[POST].url).status_code == 200

    (root / POST).write_text(post_text("P3 v0", "2021-01-03 10:00:00"), "utf-8")
    service.refresh()
    poll(0)
    held = len(bodies._bodies), len(bodies._fragments)
    for n in range(1, 31):
        (root / POST).write_text(post_text(f"P3 v{n}", "2021-01-03 10:00:00",
                                           body=f"Version {n}."), "utf-8")
        service.refresh()
        poll(n)
    # Thirty versions later the caches hold as many entries as after the first: the
    # live version of each post, not a trail of old ones waiting for the byte bound.
    assert (len(bodies._bodies), len(bodies._fragments)) == held


# --- mv _posts x -------------------------------------------------------------------------


def test_posts_folder_moved_away_is_a_site_without_posts_to_events_and_scans_alike(
        tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {
        **POSTS, "about.md": "---\ntitle: About\n---\nAbout us.\n",
        "2021-02-01-loose.md": post_text("Loose", "2021-02-01 10:00:00")}, config=CONFIG)
    set_mtimes(root, time.time() - 60)  # long settled: a scan reads every file at once
    by_events, by_scans = (ContentStore(make_settings(root)) for _ in range(2))
    first = by_events.load(progress=False)
    assert set(by_scans.load(progress=False).posts) == set(first.posts) == set(POSTS)
    os.rename(root / "_posts", root / "x")
    moved = {str(root / "_posts"), str(root / "x")}
    assert by_events.apply(moved) is None  # what the events of the move say
    assert by_events.rescan(settle=True) is None  # the full scan after them
    assert by_scans.rescan(settle=True) is None  # polling: the scan alone
    for store in (by_events, by_scans):
        assert store.held is not None and "no posts" in store.held
    os.rename(root / "x", root / "_posts")
    back = by_events.apply(moved)
    again = by_scans.rescan(settle=True)
    assert back is not None and again is not None
    assert set(back.posts) == set(again.posts) == set(POSTS)
    assert by_events.held is None and by_scans.held is None


def test_posts_folder_moved_away_stays_degraded_through_full_scans(
        tmp_path: Path, make_app: Callable[..., Flask],
        monkeypatch: pytest.MonkeyPatch) -> None:
    import feeds.watch

    monkeypatch.setattr(feeds.watch, "SAFETY_SCAN", 0.3)  # many full scans in the wait
    root = write_site(tmp_path / "site", {
        **POSTS, "2021-02-01-loose.md": post_text("Loose", "2021-02-01 10:00:00")},
        config=CONFIG)
    client, service = watched(make_app, root)
    before = ids(client)
    os.rename(root / "_posts", root / "x")
    wait_until(lambda: service.health()["status"] == "degraded", "a degraded health")
    scans = service.metrics.reloads._value.get()
    time.sleep(2.0)
    assert "no posts" in service.health()["problems"]["content"]
    assert ids(client) == before  # not Loose, not x/'s posts under new URLs
    assert service.metrics.reloads._value.get() == scans  # nothing installed meanwhile
    os.rename(root / "x", root / "_posts")
    wait_until(lambda: service.health()["status"] == "ok", "posts back")
    assert ids(client) == before


def test_files_put_back_that_are_still_served_install_nothing(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """The race behind the test above's one flaky CI run: a full scan ran between the
    rename and the end of its burst of events, forgot every post (its snapshot held
    back: no posts) and the burst, taken for a mass removal, then put them back. What
    is served held them all along: putting them back installs nothing. A removal that
    was installed is still undone."""
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    app = make_app(root, watch=False)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    before = ids(client)
    os.rename(root / "_posts", root / "x")
    service.refresh()  # the scan: every post forgotten, the postless folder held back
    assert "no posts" in service.health()["problems"]["content"]
    served = service.state()
    service._reload(service._put_back, set())
    assert service.state() is served and ids(client) == before

    os.rename(root / "x", root / "_posts")
    service.refresh()
    (root / POST).unlink()
    service.refresh()  # one post gone, and served so
    assert "P3" not in ids(client)
    service._reload(service._put_back, set())
    assert ids(client) == before  # put back: the folder went just after (see removals)


# --- a writer that never closes its file -------------------------------------------------


def test_a_post_written_by_a_writer_that_keeps_it_open_shows_before_a_full_scan(
        tmp_path: Path, make_app: Callable[..., Flask],
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    client, _service = events_only(make_app, root, monkeypatch)
    with open(root / "_posts" / "2021-02-01-open.md", "w", encoding="utf-8") as f:
        f.write(post_text("Kept open", "2021-02-01 10:00:00"))
        f.flush()  # on disk, and the file still open: no close event
        wait_until(lambda: "Kept open" in ids(client), "the post of an open file", SOON)
        f.write("More, appended.\n")
        f.flush()
        wait_until(lambda: "More, appended." in client.get("/feed.atom").get_data(True),
                   "what was appended to it", SOON)
    entries = feedparser.parse(client.get("/feed.atom").data).entries
    assert entries[0].title == "Kept open"


# --- deletions -----------------------------------------------------------------------------


def test_a_post_replaced_by_a_folder_of_its_name_is_gone_before_a_full_scan(
        tmp_path: Path, make_app: Callable[..., Flask],
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    client, _service = events_only(make_app, root, monkeypatch)
    (root / POST).unlink()
    (root / POST).mkdir()
    wait_until(lambda: "P3" not in ids(client), "the post gone", SOON)
    assert len(ids(client)) == len(POSTS) - 1


def test_watchdogs_polling_fallback_is_named_and_sees_deletions(
        tmp_path: Path, make_app: Callable[..., Flask],
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Where watchdog finds no native API it polls the folder itself: deletions come as
    its events (a post deleted, one moved out, a folder of posts removed)."""
    import watchdog.observers
    from watchdog.observers.polling import PollingObserver

    monkeypatch.setattr(watchdog.observers, "Observer", PollingObserver)
    root = write_site(tmp_path / "site", {
        **POSTS, "_posts/sub/2021-02-01-s1.md": post_text("S1", "2021-02-01 10:00:00")},
        config=CONFIG)
    app = make_app(root, watch=True)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    assert service.health()["watch"] == "polling"
    first_scan_done(service)
    (root / POST).unlink()
    os.rename(root / "_posts" / "2021-01-04-p4.md", tmp_path / "moved-out.md")
    shutil.rmtree(root / "_posts" / "sub")
    wait_until(lambda: not {"P3", "P4", "S1"} & set(ids(client)), "three deletions", SOON)
    assert len(ids(client)) == len(POSTS) - 2
