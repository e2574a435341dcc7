"""Issue 15's soak (bench/soak.py), its three failures, each as a test that failed on
the code before the fix:

- torn: a post rewritten between its indexing and its body's read was served with its
  title and an empty body;
- stale 304s: a post rewritten continuously never "settled", and a folder made again
  with the old one's inode number was no longer followed, so a version replaced long ago
  was what 304s confirmed;
- wrong: after ``rm -rf site; cp -r backup site`` the feeds listed the folder half
  copied.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import feedparser
import pytest
from flask import Flask
from lxml import html as lxml_html

from feeds.content import ContentStore
from feeds.disk import stamp_of
from feeds.service import FeedService
from feeds.watch import ROOT_QUIET, ROOT_QUIET_FEWER, Watcher

from .conftest import make_settings, post_text, write_site
from .test_folder_swaps import CONFIG, SOON, feed, ids, wait_until, watched

POST = "_posts/2021-01-03-p3.md"
POSTS = {f"_posts/2021-01-{d:02d}-p{d}.md": post_text(f"P{d}", f"2021-01-{d:02d} 10:00:00",
                                                       body=f"Body of P{d}.")
         for d in range(1, 13)}


def version_text(n: int) -> str:
    body = "\n\n".join(f"Version {n}, paragraph {k}." for k in range(4))
    return post_text(f"Version {n}", "2021-01-03 10:00:00", body=body)


def article(data: bytes) -> str:
    return " ".join(lxml_html.fromstring(data).xpath("//article//text()"))


def whole_version(title: str, text: str) -> int:
    """The one version a page's or entry's title and every paragraph name."""
    n = int(title.rsplit(" ", 1)[-1])
    assert [f"Version {n}, paragraph {k}." in text for k in range(4)] == [True] * 4, text
    return n


# --- torn -------------------------------------------------------------------------------


def test_a_post_rewritten_before_its_body_is_read_is_served_whole(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """The body read after the file changed (and before it is indexed again) is the one
    read with the indexed front matter: kept from the indexing read, not nothing."""
    root = write_site(tmp_path / "site", {**POSTS, POST: version_text(1)}, config=CONFIG)
    app = make_app(root)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    url = service.state().snapshot.posts[POST].url
    (root / POST).write_text(version_text(2), "utf-8")  # in place, not indexed yet
    page = client.get(url)
    assert page.status_code == 200
    title = lxml_html.fromstring(page.data).findtext(".//title") or ""
    assert whole_version(title.split(" · ")[0].strip(), article(page.data)) == 1
    assert page.headers["Cache-Control"] != "no-store"  # a whole rendering, kept
    entry = feedparser.parse(client.get("/feed.atom").data).entries[9]
    assert whole_version(entry.title, entry.content[0].value) == 1
    assert service.health()["status"] == "ok"
    service.refresh()
    entry = feedparser.parse(client.get("/feed.atom").data).entries[9]
    assert whole_version(entry.title, entry.content[0].value) == 2


def test_a_body_that_can_no_longer_be_read_keeps_its_last_good_rendering(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """With nothing kept from the indexing (source_cache_bytes=1), a body whose file
    changed again is served as the post's last good body, never cached, and health says
    so; never an empty body."""
    root = write_site(tmp_path / "site", {**POSTS, POST: version_text(1)}, config=CONFIG)
    app = make_app(root, source_cache_bytes=1)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    url = service.state().snapshot.posts[POST].url
    assert "Version 1, paragraph 3." in article(client.get(url).data)
    (root / POST).write_text(version_text(2), "utf-8")
    service.refresh()  # indexed as version 2, its body not read yet
    (root / POST).write_text(version_text(3), "utf-8")  # and changed again
    page = client.get(url)
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    assert "Version 1, paragraph 3." in article(page.data)
    assert "bodies" in service.health()["problems"]


@pytest.mark.parametrize("half", ["empty", "nul"])
def test_a_post_caught_half_written_keeps_its_last_version(
        tmp_path: Path, make_app: Callable[..., Flask], half: str) -> None:
    """Read between the truncation and the write of an in-place save, a post is empty
    (or, its size grown before its data, ends in NUL bytes): both parse, as a post with
    no title and no body. Written a moment ago, it is held as a half-written edit is;
    settled, it is read as Jekyll reads it."""
    root = write_site(tmp_path / "site", {**POSTS, POST: version_text(1)}, config=CONFIG)
    app = make_app(root)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    path = root / POST
    path.write_bytes(b"" if half == "empty" else version_text(2).encode()[:-30] + b"\0" * 30)
    service.refresh()
    entry = feedparser.parse(client.get("/feed.atom").data).entries[9]
    assert whole_version(entry.title, entry.content[0].value) == 1
    settled = time.time() - 10
    os.utime(path, (settled, settled))
    service.refresh()
    entry = feedparser.parse(client.get("/feed.atom").data).entries[9]
    assert entry.title != "Version 1"


# --- stale ------------------------------------------------------------------------------


class NoInotify:
    """An observer that fails as inotify does when its watch limit is reached."""

    def schedule(self, *args: object, **kwargs: object) -> None:
        raise OSError(28, "inotify watch limit reached")


def test_a_post_rewritten_continuously_is_still_published(
        tmp_path: Path, make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> None:
    """Polling every 0.3 s while the post is rewritten in place every 0.1 s: it is never
    older than SETTLE, and each scan put its read off again, for ever. Now a version
    read whole (it parses, and holds still while read) is published SETTLE after the
    first scan that put it off."""
    import watchdog.observers

    monkeypatch.setattr(watchdog.observers, "Observer", NoInotify)
    root = write_site(tmp_path / "site", {**POSTS, POST: version_text(0)}, config=CONFIG)
    app = make_app(root, watch=True, reload_interval=0.3)
    client = app.test_client()
    seen = 0
    for n in range(1, 61):  # 6 s of edits: three times SETTLE
        (root / POST).write_text(version_text(n), "utf-8")
        time.sleep(0.1)
        entry = feedparser.parse(client.get("/feed.atom").data).entries[9]
        seen = max(seen, whole_version(entry.title, entry.content[0].value))
    assert seen > 0, "no version written after the start was ever published"


@pytest.mark.parametrize("how", ["atomically", "in place"])
def test_a_post_saved_again_and_again_is_published_as_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    """Each read found, by the time it looked again, another save over the file (the
    soak's writer catching up after a swap: saves a few ms apart), and was put off as
    "changing while read", for as long as the saves came. The read held still while it
    read (read_post checks) and parsed: it was whole, and is published; the save over
    it is read at its own event."""
    import feeds.parsed

    root = write_site(tmp_path / "site", {**POSTS, POST: version_text(1)}, config=CONFIG)
    store = ContentStore(make_settings(root))
    store.load(progress=False)
    real_read = feeds.parsed.read_post

    def save(n: int) -> None:
        if how == "in place":
            (root / POST).write_text(version_text(n), "utf-8")
            return
        temporary = root / "_posts" / ".p3.tmp"
        temporary.write_text(version_text(n), "utf-8")
        temporary.replace(root / POST)

    saves = iter([3])

    def read_then_saved_over(*args: object, **kwargs: object) -> tuple[bytes, object]:
        found = real_read(*args, **kwargs)  # type: ignore[arg-type]
        for n in saves:  # once: the next save lands just after the read
            save(n)
        return found

    monkeypatch.setattr(feeds.parsed, "read_post", read_then_saved_over)
    save(2)
    snapshot = store.rescan()
    assert snapshot is not None and snapshot.posts[POST].title == "Version 2"
    assert store.read_body(snapshot.posts[POST]).count("Version 2, paragraph") == 4
    again = store.apply([POST])  # the save over it, at its own event
    assert again is not None and again.posts[POST].title == "Version 3"


def test_a_folder_made_again_with_the_same_inode_is_followed(
        tmp_path: Path, make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> None:
    """``rm -rf site; cp -r backup site`` often gives the new folder the old one's inode
    number (as here, by construction): its watch ended with the old folder, and the
    changes after it went unseen until a full scan."""
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    real = os.path.realpath(root)
    monkeypatch.setattr(Watcher, "_root_identity", lambda self: (real, 1, 1))
    client, _service = watched(make_app, root)
    (root / "_posts" / "2021-02-01-new.md").write_text(post_text("New", "2021-02-01"))
    wait_until(lambda: "New" in ids(client), "a post, by its event")  # the watcher runs
    (backup / "_posts" / "2021-02-01-new.md").write_text(post_text("New", "2021-02-01"))
    (backup / "_posts" / "2021-02-02-copy.md").write_text(post_text("Copy", "2021-02-02"))
    before = ids(client)
    shutil.rmtree(root)
    shutil.copytree(backup, root)
    wait_until(lambda: "Copy" in ids(client), "the new folder's own post")
    (root / POST).write_text(post_text("P3 edited", "2021-01-03 10:00:00"), "utf-8")
    wait_until(lambda: "P3 edited" in ids(client), "the edit in the new folder")
    assert set(ids(client)) == set(before) - {"P3"} | {"P3 edited", "Copy"}


# --- wrong ------------------------------------------------------------------------------


def test_a_folder_copied_back_slowly_is_never_served_half_copied(
        tmp_path: Path, make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder removed a file every 0.1 s, then its files copied back one every
    0.15 s (longer than the watcher's tick), each with a pause half-way: the last
    content is served until the copy has settled, then the new content whole; never the
    entries left or copied so far. A removal burst's quiet is made 1 s here: with 0.3 s,
    a loaded CI machine stretched one 0.1 s sleep past it, and the rm's first deletion
    alone was (rightly) served as an edit."""
    import feeds.watch

    removals_quiet = 1.0
    monkeypatch.setattr(feeds.watch, "REMOVALS_QUIET", removals_quiet)
    monkeypatch.setattr(feeds.watch, "REMOVALS_MAX", 10 * removals_quiet)
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    client, service = watched(make_app, root)
    before = ids(client)
    # The watcher's first full scan (for what changed before it watched) done: one that
    # falls between the rm's first two deletions rightly publishes the one deletion.
    watcher = service._watcher
    assert watcher is not None
    wait_until(lambda: watcher._next_scan > 0, "the watcher's first scan", SOON)
    lists: list[frozenset[str]] = []
    done = threading.Event()

    def poll() -> None:
        reader = client.application.test_client()
        deadline = time.monotonic() + 30
        while not done.is_set() and time.monotonic() < deadline:
            lists.append(frozenset(e.title for e in feed(reader).entries))
            time.sleep(0.02)

    poller = threading.Thread(target=poll, daemon=True)
    poller.start()
    try:
        for n, path in enumerate(sorted((root / "_posts").iterdir())):
            path.unlink()  # an rm -rf that a busy machine pauses, once for longer than
            time.sleep(0.1 if n != 10 else 2 * removals_quiet)  # a burst's quiet
        shutil.rmtree(root)
        (root / "_posts").mkdir(parents=True)
        shutil.copy2(backup / "_config.yml", root / "_config.yml")
        degraded = False
        for n, path in enumerate(sorted((backup / "_posts").iterdir())):
            shutil.copy2(path, root / "_posts" / path.name)
            degraded |= service.health()["status"] == "degraded"
            # Half-way, a pause longer than ROOT_QUIET (a busy machine): the folder holds
            # fewer files than before, so it waits for ROOT_QUIET_FEWER.
            time.sleep(0.15 if n != 5 else (ROOT_QUIET + ROOT_QUIET_FEWER) / 2)
        assert degraded, "health never said the folder was being replaced"
        wait_until(lambda: service.health()["status"] == "ok", "the copy settled")
    finally:
        done.set()
        poller.join(10)
    assert lists and set(lists) == {frozenset(before)}, sorted(map(len, set(lists)))
    (root / POST).write_text(post_text("P3 again", "2021-01-03 10:00:00"), "utf-8")
    wait_until(lambda: "P3 again" in ids(client), "an edit after the swap", SOON)


def test_a_folder_copied_back_is_read_but_not_parsed_again(tmp_path: Path) -> None:
    """Every file of a folder copied back is another file (its inode), read again; the
    ones with the same bytes as the post they were are not parsed again, so the new
    folder is taken in at the cost of reading it (1,000 posts: a few ms, not 0.4 s)."""
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    (backup / POST).write_text(post_text("P3, edited", "2021-01-03 10:00:00"), "utf-8")
    store = ContentStore(make_settings(root))
    before = store.load(progress=False)
    parsed = store.parse_count
    shutil.rmtree(root)
    shutil.copytree(backup, root)
    after = store.rescan()
    assert after is not None and store.parse_count == parsed + 1  # the edited one
    assert set(after.posts) == set(before.posts)
    for rel, post in after.posts.items():
        assert post.stamp == stamp_of((root / rel).stat())  # the new file's
        if rel != POST:
            assert replace(post, stamp=before.posts[rel].stamp) == before.posts[rel]
    assert after.posts[POST].title == "P3, edited"
    assert store.read_body(after.posts["_posts/2021-01-05-p5.md"]).strip() == "Body of P5."
