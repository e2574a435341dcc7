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


def test_no_collection_walks_a_server_start_s_first_load(tmp_path: Path) -> None:
    """Made with the collector paused, what the first load made is frozen before it runs
    again: the collections that followed the load at once had walked every post (0.3 s
    at 100,000) before the first answer."""
    root = write_site(tmp_path / "site", {
        f"_posts/2022-01-{1 + n % 28:02d}-p{n}.md": post_text(f"P{n}", "2022-01-01")
        for n in range(200)})
    service = create_app(make_settings(root)).extensions["feeds"]  # (its imports made)
    service.stop()
    gc.unfreeze()
    service = type(service)(make_settings(root))
    collections: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "start":
            collections.append(info["generation"])

    gc.callbacks.append(seen)
    try:
        service.load(warm=True)
        assert service.ready.is_set() and len(service.state().index.posts) == 200
        assert collections == [] and gc.get_freeze_count() > 0
    finally:
        gc.callbacks.remove(seen)
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


def test_a_full_scan_walks_the_folder_once_and_its_look_is_the_watchers_baseline(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The look a copy back must reach (count and bytes of the folder's files) is taken
    from the scan's own walk, not by a second walk of every folder (~70 ms at 10,000
    posts, with events waiting meanwhile); it counts what the scan walks, a
    collection's documents included, and leaves editors' litter out."""
    import feeds.content
    import feeds.scan
    from feeds.content import ContentStore
    from feeds.scan import Look, folder_look

    posts = {f"_posts/2022-02-{d:02d}-p{d}.md": post_text(f"P{d}", f"2022-02-{d:02d}")
             for d in range(1, 4)}
    posts["_recipes/soup.md"] = "---\ntitle: Soup\n---\nHot.\n"
    posts["_posts/2022-02-01-p1.md~"] = "an editor's backup"
    root = write_site(tmp_path / "site", posts,
                      config="title: Looks\ncollections:\n  recipes:\n    output: true\n"
                      "feed:\n  collections:\n    recipes: {}\n")
    store = ContentStore(make_settings(root))
    store.load(progress=False)
    walks: list[str] = []
    real_walk = feeds.scan.walk

    def counted(*args: object, **kwargs: object) -> object:
        walks.append(str(args[1]))
        return real_walk(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(feeds.content, "walk", counted)
    monkeypatch.setattr(feeds.scan, "walk", counted)  # the scan's survey, the looks
    looks: list[Look] = []

    def look() -> Look:
        looks.append(store.look())
        return looks[-1]

    scans: list[float] = []

    def scan() -> None:
        store.rescan(settle=True)
        scans.append(time.monotonic())

    watcher = Watcher(str(root), 5.0, on_paths=lambda _: None, on_poll=scan,
                      safety_interval=60.0, use_events=False, look=look,
                      scanned=lambda: store.scan_look)
    try:
        watcher.start()
        _wait(lambda: scans, "the first scan")
    finally:
        watcher.stop()
    assert walks == [str(root)]  # the scan's walk, and no other
    assert looks == []  # the baseline came with the scan
    expected = sum(1 for p in root.rglob("*") if p.is_file() and not p.name.endswith("~"))
    assert store.scan_look == (store.look(),) and store.look() is not None
    assert store.look()[0] == expected  # _config.yml, 3 posts, the recipe
    assert folder_look(str(root)) != store.look()  # a walk without collections skips it
    assert watcher._baseline == store.look()
