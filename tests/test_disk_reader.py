"""The one disk reader: every read of a post file, at load and for its body later, goes
through feeds.disk.read_post, which never blocks. A FIFO, a device, a socket or a folder
put where a post was (or behind a link to it), or another file swapped in, is a clear
PostError at once; and the store reports problems and progress to whoever asks."""

from __future__ import annotations

import os
import shutil
import socket
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pytest

from feeds.content import ContentStore
from feeds.disk import read_post
from feeds.model import Post, Problem
from feeds.parse import PostError, body_text

from .conftest import make_settings, post_text, write_site

T = TypeVar("T")
POST = "_posts/2021-01-01-first.md"
BODY = "The body of the first post."


def within(seconds: float, call: Callable[[], T]) -> T:
    """``call()`` in a thread of its own: its result, or what it raised; a call still
    running after ``seconds`` fails the test (the thread is left blocked, not pytest)."""
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            outcome["result"] = call()
        except BaseException as e:  # handed to the test's thread
            outcome["error"] = e

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        pytest.fail(f"still blocked after {seconds} s")
    if "error" in outcome:
        raise outcome["error"]  # type: ignore[misc]
    return outcome["result"]  # type: ignore[return-value]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return write_site(tmp_path / "site", {
        POST: post_text("First", "2021-01-01 08:00:00", body=BODY),
        "_posts/2021-01-02-second.md": post_text("Second", "2021-01-02 08:00:00"),
    })


def indexed(root: Path, rel: str = POST, keep: bool = False) -> tuple[ContentStore, Post]:
    """The store and its post ``rel``; without ``keep``, the store keeps no file as it
    read it (source_cache_bytes=1), so every body read goes to the disk."""
    store = ContentStore(make_settings(root, **({} if keep else {"source_cache_bytes": 1})))
    return store, store.load(progress=False).posts[rel]


def refused(store: ContentStore, post: Post) -> str:
    """The message read_body raises for this post (promptly, or the test fails)."""
    with pytest.raises(PostError) as caught:
        within(10, lambda: store.read_body(post))
    assert caught.value.path == post.source
    return caught.value.message


def test_read_body_is_the_body_after_the_front_matter(site: Path) -> None:
    store, post = indexed(site)
    text = store.read_body(post)
    assert text == body_text(POST, (site / POST).read_bytes())
    assert text.strip() == BODY
    assert post.stamp[2] == (site / POST).stat().st_ino


def test_a_post_replaced_by_a_fifo_is_refused_not_waited_on(site: Path) -> None:
    store, post = indexed(site)
    (site / POST).unlink()
    os.mkfifo(site / POST)
    assert refused(store, post) == "not a regular file"


def test_a_link_whose_target_became_a_fifo_is_refused(site: Path) -> None:
    target = site / "_posts" / "real" / "2021-01-03-target.md"
    target.parent.mkdir()
    target.write_text(post_text("Behind a link", "2021-01-03", body=BODY), "utf-8")
    link = "_posts/2021-01-03-linked.md"
    (site / link).symlink_to(target)
    store, post = indexed(site, link)
    assert store.read_body(post).strip() == BODY
    target.unlink()
    os.mkfifo(target)
    assert refused(store, post) == "not a regular file"


def test_a_post_swapped_for_another_file_is_refused(site: Path) -> None:
    """Same bytes, same mtime, another inode: not the file that was indexed."""
    store, post = indexed(site)
    path = site / POST
    stat = path.stat()
    copy = path.with_name(".swap.tmp")
    shutil.copyfile(path, copy)
    os.utime(copy, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    os.replace(copy, path)
    assert path.stat().st_size == stat.st_size
    assert refused(store, post) == "changed since it was indexed"
    # Read again, it is a post like any other.
    assert ContentStore(make_settings(site)).read_body(indexed(site)[1]).strip() == BODY


def test_a_post_edited_in_place_is_refused_until_read_again(site: Path) -> None:
    store, post = indexed(site)
    with open(site / POST, "a", encoding="utf-8") as f:
        f.write("More.\n")
    assert refused(store, post) == "changed since it was indexed"


@pytest.mark.parametrize("change", ["edited", "fifo", "gone"])
def test_the_body_indexed_with_the_front_matter_is_kept_whatever_the_file_became(
        site: Path, change: str) -> None:
    """The bytes read when the post was indexed are kept: its body, read after the file
    changed (and before it is indexed again), is still the one that goes with the
    indexed title, never nothing (issue 15: the soak's torn pages)."""
    store, post = indexed(site, keep=True)
    path = site / POST
    if change == "edited":
        path.write_text(post_text("First, again", "2021-01-01 08:00:00", body="New."), "utf-8")
    else:
        path.unlink()
        if change == "fifo":
            os.mkfifo(path)
    assert within(10, lambda: store.read_body(post)).strip() == BODY
    # Indexed again, the new file is what is read (or it is gone).
    again = store.rescan()
    assert again is not None
    if change == "edited":
        assert store.read_body(again.posts[POST]).strip() == "New."
    else:
        assert POST not in again.posts


@pytest.mark.parametrize("kind", ["folder", "device", "socket", "gone"])
def test_other_things_in_a_posts_place_are_refused(
        site: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    store, post = indexed(site)
    path = site / POST
    path.unlink()
    if kind == "folder":
        path.mkdir()
        expected = "not a regular file"
    elif kind == "device":
        path.symlink_to("/dev/zero")
        expected = "not a regular file"
    elif kind == "socket":
        monkeypatch.chdir(path.parent)  # a socket's path is limited to ~100 bytes
        server = socket.socket(socket.AF_UNIX)
        server.bind(path.name)
        server.listen()
        expected = "cannot read: No such device or address"
    else:
        expected = "cannot read: No such file or directory"
    try:
        assert refused(store, post) == expected
    finally:
        if kind == "socket":
            server.close()


def test_the_size_limit_is_checked_on_every_read(site: Path) -> None:
    size = (site / POST).stat().st_size
    data, stamp = read_post(str(site), POST, size)
    assert len(data) == size and stamp[1] == size
    with pytest.raises(PostError, match=rf"file is {size} bytes, over max_post_bytes "
                                        rf"\({size - 1}\)"):
        read_post(str(site), POST, size - 1)


def test_a_fifo_in_the_folder_at_load_is_no_post_and_no_hang(site: Path) -> None:
    os.mkfifo(site / "_posts" / "2021-01-04-fifo.md")
    (site / "_posts" / "2021-01-05-link-to-fifo.md").symlink_to(
        site / "_posts" / "2021-01-04-fifo.md")
    snapshot = within(30, lambda: ContentStore(make_settings(site)).load(progress=False))
    assert set(snapshot.posts) == {POST, "_posts/2021-01-02-second.md"}
    assert snapshot.rejected == 0


def test_the_page_of_a_post_that_became_a_fifo_still_has_what_it_can(site: Path) -> None:
    """What the service does with a body it cannot read: serve the post without it, from
    the index (this is the store's half; test_disk_reader_http.py has the HTTP half)."""
    store, post = indexed(site)
    (site / POST).unlink()
    os.mkfifo(site / POST)
    assert "not a regular file" in refused(store, post)
    assert store.load(progress=False).posts.keys() == {"_posts/2021-01-02-second.md"}


# --- what the store tells its caller ----------------------------------------------------


def test_problems_go_to_on_problem_instead_of_the_log(
        site: Path, caplog: pytest.LogCaptureFixture) -> None:
    (site / "_posts" / "2021-02-01-broken.md").write_text("---\ntitle: [broken\n---\nx\n")
    (site / "_posts" / "2021-02-02-untitled.md").write_text("---\ndate: 2021-02-02\n---\nx\n")
    outside = site.parent / "outside.md"
    outside.write_text(post_text("Outside", "2021-02-03"))
    (site / "_posts" / "2021-02-03-outside.md").symlink_to(outside)
    (site / "_posts" / "2021-02-04-draft.md").write_text(
        post_text("Draft", "2021-02-04", extra="published: false\n"))
    found: list[Problem] = []
    store = ContentStore(make_settings(site), on_problem=found.append)
    with caplog.at_level("INFO", logger="feeds.content"):
        snapshot = store.load(progress=False)
    assert sorted(found, key=lambda p: p.path) == sorted(
        (p for ps in snapshot.problems.values() for p in ps), key=lambda p: p.path)
    assert [(p.path, p.rejected) for p in sorted(found, key=lambda p: p.path)] == [
        ("_posts/2021-02-01-broken.md", True), ("_posts/2021-02-02-untitled.md", False),
        ("_posts/2021-02-03-outside.md", True)]
    assert not [r for r in caplog.records if "post rejected" in r.getMessage()
                or "accepted with a problem" in r.getMessage()]
    assert snapshot.skipped == {"_posts/2021-02-04-draft.md": "published: false"}
    # Once per change of a file: a rescan with nothing changed tells nothing.
    assert store.rescan() is None and len(found) == 3


def test_without_on_problem_the_store_logs_each_problem(
        site: Path, caplog: pytest.LogCaptureFixture) -> None:
    (site / "_posts" / "2021-02-01-broken.md").write_text("---\ntitle: [broken\n---\nx\n")
    with caplog.at_level("INFO", logger="feeds.content"):
        ContentStore(make_settings(site)).load(progress=False)
    assert [r.getMessage().split(": ")[:2] for r in caplog.records
            if r.getMessage().startswith("post rejected")] == [
        ["post rejected", "_posts/2021-02-01-broken.md"]]


def test_on_progress_counts_the_candidate_files(site: Path) -> None:
    (site / "_posts" / "notes.txt~").write_text("a backup: no candidate")
    (site / "image.png").write_bytes(b"\x89PNG")
    calls: list[tuple[int, int]] = []
    ContentStore(make_settings(site), on_progress=lambda d, t: calls.append((d, t))).load()
    assert calls == [(0, 2), (1, 2), (2, 2)]


def test_on_progress_on_an_empty_folder(tmp_path: Path) -> None:
    calls: list[tuple[int, int]] = []
    root = write_site(tmp_path / "empty", {})
    ContentStore(make_settings(root), on_progress=lambda d, t: calls.append((d, t))).load()
    assert calls == [(0, 0)]


def test_a_whole_loads_moment_is_the_newest_of_every_file_and_folder(tmp_path: Path) -> None:
    """ChangeClock.after with ``every`` (a whole load: each known file touched) gives the
    moment a path-by-path look gives, and without it only the touched files count."""
    from feeds.disk import ChangeClock

    for rel in ("_posts/a.md", "life/_posts/b.md", "life/_posts/c.md"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text("x", encoding="utf-8")
    far = 4_000_000_000 * 10**9  # a file's mtime after every folder's
    stamps = {"_posts/a.md": (far, 1, 1), "life/_posts/b.md": (5, 1, 2),
              "life/_posts/c.md": (far + 7, 1, 3)}
    whole = ChangeClock(str(tmp_path)).after(stamps, set(stamps), every=True)
    each = ChangeClock(str(tmp_path)).after(stamps, set(stamps))
    assert whole == each == far + 7
    one = ChangeClock(str(tmp_path))
    assert one.after(stamps, {"_posts/a.md"}) == far
    assert one._folders == {"", "_posts"}
    assert one.after(stamps, {"life/_posts/b.md"}) == far  # (its folders' mtimes: now)
    assert one._folders == {"", "_posts", "life", "life/_posts"}
