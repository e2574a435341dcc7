"""A full scan walks the folder, and compares it with the files known, without the
store's lock, and takes in the events of a burst that is over as it goes (``between``,
the watcher's ``meanwhile``): an edit is not kept waiting for a scan of every file. What
changed while the walk went on is neither lost nor forgotten: the scan's outcome is the
folder as it is at its end."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from feeds import scan
from feeds.content import ContentStore
from feeds.service import FeedService
from feeds.watch import QUIET, Watcher

from .conftest import make_settings, post_text, write_site

POSTS = 30


def site_of(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site", {
        f"_posts/2023-05-{1 + n % 28:02d}-p{n}.md": post_text(f"P{n}", "2023-05-01")
        for n in range(POSTS)})


def as_loaded(root: Path) -> tuple[object, ...]:
    """What a fresh whole load of the folder gives, by repr (dates' zones too)."""
    snapshot = ContentStore(make_settings(root)).load(progress=False)
    return (repr(sorted(snapshot.posts.items())), repr(sorted(snapshot.problems.items())))


def test_changes_taken_in_during_the_walk_are_kept(tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    root = site_of(tmp_path)
    store = ContentStore(make_settings(root))
    store.load(progress=False)
    monkeypatch.setattr(scan, "SURVEY_EVERY", 3)
    posts = root / "_posts"
    made, edited, removed = (posts / "2023-06-01-new.md", posts / "2023-05-02-p1.md",
                             posts / "2023-05-03-p2.md")
    calls: list[int] = []

    def between() -> None:
        """As events would be handed on mid-scan: a post made (after the walk passed
        its folder), one edited and one removed, each taken in at once."""
        calls.append(len(calls))
        if len(calls) == 1:
            made.write_text(post_text("Made meanwhile", "2023-06-01"), encoding="utf-8")
            edited.write_text(post_text("Edited meanwhile", "2023-05-02"), encoding="utf-8")
            removed.unlink()
            assert store.apply({str(made), str(edited), str(removed)}) is not None

    store.rescan(between=between)
    assert len(calls) >= POSTS // 3 - 1  # called as it walked, not once at the end
    # The new post was not there when its folder was listed: not forgotten for that.
    assert store.rescan() is None  # and nothing left for a second scan to find
    posts = store._posts
    assert posts["_posts/2023-06-01-new.md"].title == "Made meanwhile"
    assert posts["_posts/2023-05-02-p1.md"].title == "Edited meanwhile"
    assert "_posts/2023-05-03-p2.md" not in posts
    assert repr(sorted(posts.items())) == as_loaded(root)[0]


def test_a_file_gone_after_the_walk_is_forgotten_by_the_scan(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Removed mid-walk with no event taken in: the scan itself finds it gone."""
    root = site_of(tmp_path)
    store = ContentStore(make_settings(root))
    store.load(progress=False)
    monkeypatch.setattr(scan, "SURVEY_EVERY", 1)
    late = sorted((root / "_posts").iterdir())[-1]
    late.write_text(post_text("Rewritten", "2023-05-28"), encoding="utf-8")
    gone = sorted((root / "_posts").iterdir())[0]

    def between() -> None:
        if gone.exists():
            gone.unlink()  # after the walk listed it (one folder: listed at once)

    snapshot = store.rescan(between=between)
    assert snapshot is not None
    rel = gone.relative_to(root).as_posix()
    assert rel not in snapshot.posts
    assert snapshot.posts[late.relative_to(root).as_posix()].title == "Rewritten"


def test_meanwhile_hands_on_a_quiet_burst_and_keeps_removals(tmp_path: Path) -> None:
    root = site_of(tmp_path)
    handed: list[set[str]] = []
    watcher = Watcher(str(root), 5.0, on_paths=handed.append, on_poll=lambda: None,
                      use_events=False)
    edited = str(root / "_posts" / "2023-05-02-p1.md")
    watcher.meanwhile()
    assert handed == []  # no event: nothing to do
    watcher.notify({edited})
    watcher.meanwhile()
    assert handed == []  # the burst may go on: not yet
    time.sleep(QUIET * 2)
    watcher.meanwhile()
    assert handed == [{edited}]
    # A burst that removed a file waits for the scan's end (its mass-removal rules).
    gone = root / "_posts" / "2023-05-03-p2.md"
    os.unlink(gone)
    watcher.notify({str(gone), edited})
    time.sleep(QUIET * 2)
    watcher.meanwhile()
    assert handed == [{edited}] and watcher._pending == {str(gone), edited}


def test_an_edit_during_a_slow_full_scan_shows_before_the_scan_ends(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The service as a server runs it (inotify, the reloader thread): a full scan made
    slow on purpose (~1.5 s), an edit made as it starts is served well before its end."""
    root = site_of(tmp_path)
    monkeypatch.setattr(scan, "SURVEY_EVERY", 1)
    real_survey = scan.survey
    scans: list[tuple[float, float]] = []
    starts: list[float] = []

    def slow_survey(*args: object, **kwargs: object) -> object:
        started = time.monotonic()
        starts.append(started)
        between = kwargs.get("between") or (args[3] if len(args) > 3 else None)

        def slowly() -> None:
            time.sleep(0.05)
            if callable(between):
                between()

        files = real_survey(args[0], args[1], args[2], slowly)  # type: ignore[arg-type]
        scans.append((started, time.monotonic()))
        return files

    import feeds.content

    monkeypatch.setattr(feeds.content, "survey", slow_survey)
    service = FeedService(make_settings(root, watch=True))
    service.start()
    try:
        deadline = time.monotonic() + 30
        while not scans and time.monotonic() < deadline:  # the first scan, after the load
            time.sleep(0.01)
        assert scans, "no full scan ran"
        service._watcher.scan_now()  # type: ignore[union-attr]
        while len(starts) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.1)  # the scan is walking now
        edited = root / "_posts" / "2023-05-02-p1.md"
        edited.write_text(post_text("Edited during a scan", "2023-05-02"), encoding="utf-8")
        written = time.monotonic()
        title = ""
        while time.monotonic() < deadline:
            post = service.state().snapshot.posts.get("_posts/2023-05-02-p1.md")
            title = post.title if post else ""
            if title == "Edited during a scan":
                break
            time.sleep(0.01)
        shown = time.monotonic()
        assert title == "Edited during a scan"
        while len(scans) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(scans) >= 2
        assert scans[1][0] < written < shown < scans[1][1] - 0.3, (scans, written, shown)
    finally:
        service.stop()


def test_a_scan_asked_for_during_a_scan_follows_it(tmp_path: Path) -> None:
    """SIGHUP while a full scan runs: the running scan may have walked past what the
    operator changed, so one more scan follows at once (not at the next interval)."""
    root = site_of(tmp_path)
    polls: list[float] = []
    watcher: Watcher | None = None

    def on_poll() -> None:
        polls.append(time.monotonic())
        if len(polls) == 1:
            assert watcher is not None
            watcher.scan_now()  # asked for while this scan runs

    watcher = Watcher(str(root), 60.0, on_paths=lambda paths: None, on_poll=on_poll,
                      use_events=False)
    watcher.start()
    try:
        deadline = time.monotonic() + 10
        while len(polls) < 2 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert len(polls) == 2 and polls[1] - polls[0] < 5, polls
        time.sleep(0.3)
        assert len(polls) == 2  # and only one more: the next is the interval's
    finally:
        watcher.stop()


def test_the_walk_and_the_comparison_leave_the_lock_free(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each ``between`` (in the walk, then in the comparison with what is known) comes
    while another thread may take the store's lock: a reader of a body, an apply."""
    root = site_of(tmp_path)
    store = ContentStore(make_settings(root))
    store.load(progress=False)
    monkeypatch.setattr(scan, "SURVEY_EVERY", 4)
    free: list[bool] = []

    def between() -> None:
        def take() -> None:
            got = store._lock.acquire(timeout=0)
            free.append(got)
            if got:
                store._lock.release()

        other = threading.Thread(target=take)
        other.start()
        other.join(timeout=10)

    assert store.rescan(between=between) is None
    files = POSTS + 1  # and _config.yml
    assert len(free) == 2 * (files // 4) and all(free)
