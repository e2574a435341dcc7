"""A server's first readers: what a start does so that the first feed pages, asked for
the moment /healthz turns 200, are not slowed by its own background work.

- the lexers the site feed's first page needs are compiled before any reader can see
  the content (a lexer's first use compiles its rules, 5-85 ms), the bodies are not;
- the watcher's first full scan waits while bodies are being rendered (at most
  FIRST_SCAN_WAIT), and events are handed on meanwhile;
- what the first load made is kept out of the cyclic collector's walks.
"""

from __future__ import annotations

import gc
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import feeds.watch
from feeds import create_app
from feeds.parse import highlight
from feeds.watch import Watcher

from .conftest import make_settings, post_text, write_site

DEADLINE = 30.0


def _fenced(lang: str) -> str:
    return f"Some code:\n\n```{lang}\nx = 1\n```\n"


@pytest.fixture
def cold_lexers() -> Iterator[None]:
    """No lexer made yet in this process's cache (other tests made some)."""
    highlight._lexer.cache_clear()
    yield
    highlight._lexer.cache_clear()


def _made(lang: str) -> bool:
    """Whether ``lang``'s lexer was in the cache (asking puts it there)."""
    before = highlight._lexer.cache_info().hits
    highlight._lexer(lang)
    return highlight._lexer.cache_info().hits > before


def test_a_server_start_makes_the_newest_pages_lexers_ready_before_it_serves(
        tmp_path: Path, cold_lexers: None, marked_up: list[str]) -> None:
    rendered = marked_up
    posts = {f"_posts/2022-01-{day:02d}-p{day}.md": post_text(
        f"Post {day}", f"2022-01-{day:02d}", body=_fenced("ruby")) for day in range(2, 5)}
    posts["_posts/2022-01-01-old.md"] = post_text("Old", "2022-01-01", body=_fenced("sql"))
    posts["_posts/2022-01-05-tag.md"] = post_text(
        "Tag", "2022-01-05", body="{% highlight go %}\nx := 1\n{% endhighlight %}\n")
    root = write_site(tmp_path / "site", posts)
    app = create_app(make_settings(root, posts_limit=4), background=True)
    service = app.extensions["feeds"]
    try:
        assert service.ready.wait(DEADLINE)
        assert _made("ruby") and _made("go")  # the four newest posts' code
        assert not _made("sql")  # the fifth post is on the second page
        assert rendered == []  # lexers only: the bodies wait for a reader
        feed = app.test_client().get("/feed.atom")
        assert feed.status_code == 200
        assert len(rendered) >= 4
    finally:
        service.stop()


def test_a_server_start_freezes_what_the_first_load_made(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {
        "_posts/2022-01-01-a.md": post_text("A", "2022-01-01")})
    gc.unfreeze()
    app = create_app(make_settings(root), background=True)
    service = app.extensions["feeds"]
    try:
        assert service.ready.wait(DEADLINE)
        post = service.state().index.posts[0]
        assert gc.get_freeze_count() > 0
        assert not any(post is obj for obj in gc.get_objects())  # not walked any more
    finally:
        service.stop()
        gc.unfreeze()


def test_an_in_process_load_leaves_the_collector_as_it_was(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {
        "_posts/2022-01-01-a.md": post_text("A", "2022-01-01")})
    gc.unfreeze()
    app = create_app(make_settings(root))
    try:
        assert gc.get_freeze_count() == 0
    finally:
        app.extensions["feeds"].stop()


# --- the watcher's first full scan -------------------------------------------------------


def _watcher(root: Path, busy: threading.Event, scans: list[float],
             paths: list[set[str]]) -> Watcher:
    return Watcher(str(root), 5.0, on_paths=paths.append,
                   on_poll=lambda: scans.append(time.monotonic()), busy=busy.is_set,
                   safety_interval=60.0)


def _wait(what: object, why: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not what() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.01)
    assert what(), why  # type: ignore[operator]


def test_the_first_full_scan_waits_while_bodies_render_and_events_go_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds.watch, "FIRST_SCAN_WAIT", 60.0)
    busy = threading.Event()
    busy.set()
    scans: list[float] = []
    paths: list[set[str]] = []
    watcher = _watcher(tmp_path, busy, scans, paths)
    try:
        assert watcher.mode == "inotify"
        watcher.start()
        (tmp_path / "a.md").write_text("x")
        _wait(lambda: any(str(tmp_path / "a.md") in p for p in paths), "the event")
        time.sleep(0.5)
        assert scans == []  # renders still running: the scan waits
        busy.clear()
        quiet = time.monotonic()
        _wait(lambda: scans, "the first scan once renders stopped")
        assert scans[0] >= quiet
    finally:
        watcher.stop()


def test_the_first_full_scan_waits_at_most_first_scan_wait(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(feeds.watch, "FIRST_SCAN_WAIT", 0.5)
    busy = threading.Event()
    busy.set()  # and never cleared: a crawl that never pauses
    scans: list[float] = []
    watcher = _watcher(tmp_path, busy, scans, [])
    started = time.monotonic()
    try:
        watcher.start()
        _wait(lambda: scans, "the first scan despite the renders")
        assert scans[0] - started >= 0.5
        time.sleep(0.3)
        assert len(scans) == 1  # later scans keep their own spacing
    finally:
        watcher.stop()


def test_without_renders_the_first_full_scan_comes_at_once(tmp_path: Path) -> None:
    scans: list[float] = []
    watcher = _watcher(tmp_path, threading.Event(), scans, [])
    started = time.monotonic()
    try:
        watcher.start()
        _wait(lambda: scans, "the first scan")
        assert scans[0] - started < 0.5
    finally:
        watcher.stop()
