"""The persisted index (``index_dir``): a warm start gives exactly what a cold one gives,
parsing only what changed while stopped; an index that is damaged, foreign or stale is
made again, never trusted; a folder it cannot be kept in is a warning, never a failure."""

from __future__ import annotations

import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from feeds import export, postcache
from feeds.buildstate import STATE_FILE
from feeds.config import Settings, load_settings
from feeds.content import ContentStore
from feeds.model import Author, Post
from feeds.parsed import Parse, decode, encode
from feeds.service import FeedService
from feeds.snapshot import Snapshot

from .conftest import FIXTURES, post_text, set_mtimes, write_site


def settings_for(content: Path, index: Path | None, **more: object) -> Settings:
    given: dict[str, object] = {"content": str(content), "watch": False, **more}
    if index is not None:
        given["index_dir"] = str(index)
    return load_settings(given, {})


def load(content: Path, index: Path | None, **more: object) -> tuple[ContentStore, Snapshot]:
    """A store's whole load, and its index written, as the service does after a swap."""
    store = ContentStore(settings_for(content, index, **more))
    snapshot = store.load(progress=False)
    store.save_index()
    return store, snapshot


def seen(snapshot: Snapshot) -> tuple[object, ...]:
    """Everything a snapshot holds, by repr: a date's zone and fold count, not only its
    instant (aware datetimes compare equal across zones)."""
    return (repr(sorted(snapshot.posts.items())), repr(sorted(snapshot.problems.items())),
            repr(sorted(snapshot.skipped.items())))


def surprises(snapshot: Snapshot) -> int:
    """Files rejected by an exception the parser did not expect: never kept, so parsed
    at every start (there is one among the hostile files)."""
    return sum(1 for problems in snapshot.problems.values()
               if any(p.message.startswith("cannot be read as a post") for p in problems))


def index_file(index: Path) -> Path:
    (found,) = index.glob("posts-*.sqlite3")
    return found


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The core fixture site (odd dates, authors, ids, permalinks, extensions, a post not
    published, a far-future one) and the hostile files (rejections and warnings)."""
    root = tmp_path / "site"
    shutil.copytree(FIXTURES / "core-site", root, symlinks=True)
    for path in (FIXTURES / "hostile" / "_posts").iterdir():
        (root / "_posts" / "hostile").mkdir(exist_ok=True)
        shutil.copyfile(path, root / "_posts" / "hostile" / path.name)
    return root


def test_warm_load_is_the_cold_load_without_parsing(site: Path, tmp_path: Path) -> None:
    cold_store, cold = load(site, None)
    assert cold_store.index is None
    index = tmp_path / "index"
    first_store, first = load(site, index)
    assert first_store.parse_count == cold_store.parse_count > 20
    warm_store, warm = load(site, index)
    assert warm_store.parse_count == surprises(warm) == 1
    assert warm_store.index is not None and warm_store.index.hits > 20
    assert seen(cold) == seen(first) == seen(warm)
    assert cold.rejected > 0 and cold.skipped  # the hostile files are really in there
    assert index_file(index).stat().st_mode & 0o777 == 0o600


def test_warm_build_is_byte_identical_to_a_cold_one(site: Path, tmp_path: Path) -> None:
    """Every URL of the site, written by ``feeds build``: the same bytes from a cold
    start, the start that made the index and a start that took every post from it."""
    index = tmp_path / "index"
    builds = []
    for n, index_dir in enumerate([None, index, index]):
        out = tmp_path / f"out{n}"
        result = export.run(settings_for(site, index_dir, url="https://example.org"), str(out))
        builds.append((result.posts, result.rejected, result.failed, {
            p.relative_to(out).as_posix(): p.read_bytes()
            for p in sorted(out.rglob("*"))
            # The incremental build's own record holds each file's mtime and inode.
            if p.is_file() and p.name != STATE_FILE}))
    assert builds[0][3] and len(builds[0][3]) > 30
    assert builds[0] == builds[1] == builds[2]


def test_a_file_edited_while_stopped_is_read_again(tmp_path: Path) -> None:
    index = tmp_path / "index"
    site = write_site(tmp_path / "site", {
        "_posts/2024-01-01-edit.md": post_text("Before", "2024-01-01"),
        "_posts/2024-01-02-same.md": post_text("Unchanged", "2024-01-02")})
    set_mtimes(site, 1_700_000_000)
    load(site, index)
    edited = site / "_posts/2024-01-01-edit.md"
    edited.write_text(post_text("After, and longer", "2024-01-01"), encoding="utf-8")
    os.utime(edited, (1_700_000_000, 1_700_000_000))  # same mtime: the size tells
    store, snapshot = load(site, index)
    assert store.parse_count == 1
    assert snapshot.posts["_posts/2024-01-01-edit.md"].title == "After, and longer"
    # Same size and mtime, but another file (replaced by a rename): the inode tells.
    replacement = site / "new.tmp"
    replacement.write_text(post_text("Later, and longer", "2024-01-01"), encoding="utf-8")
    os.utime(replacement, (1_700_000_000, 1_700_000_000))
    os.replace(replacement, edited)
    store, snapshot = load(site, index)
    assert store.parse_count == 1
    assert snapshot.posts["_posts/2024-01-01-edit.md"].title == "Later, and longer"
    # Deleted while stopped: gone from the posts and from the index.
    edited.unlink()
    store, snapshot = load(site, index)
    assert store.parse_count == 0 and "_posts/2024-01-01-edit.md" not in snapshot.posts
    with sqlite3.connect(index_file(index)) as db:
        paths = {row[0] for row in db.execute("SELECT path FROM parsed")}
    assert "_posts/2024-01-01-edit.md" not in paths and paths


@pytest.mark.parametrize("damage", ["truncate", "garbage", "empty", "other-db"])
def test_a_damaged_index_is_made_again(damage: str, site: Path, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    index = tmp_path / "index"
    cold_store, cold = load(site, index)
    path = index_file(index)
    data = path.read_bytes()
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(data)))
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
        with sqlite3.connect(path) as db:
            db.execute("CREATE TABLE notes (x)")
    with caplog.at_level(logging.INFO, "feeds.postcache"):
        store, snapshot = load(site, index)
    assert seen(snapshot) == seen(cold)
    assert store.index is not None
    assert store.index.hits < cold_store.parse_count  # damaged rows were not trusted
    assert store.parse_count + store.index.hits == cold_store.parse_count
    assert caplog.records
    again, snapshot = load(site, index)  # made again: the next start trusts it
    assert again.parse_count == surprises(cold) and seen(snapshot) == seen(cold)


def test_a_tampered_row_is_not_trusted(site: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    _store, cold = load(site, index)
    rel = "_posts/2022-05-04-date-only.md"
    with sqlite3.connect(index_file(index)) as db:
        (payload,) = db.execute("SELECT payload FROM parsed WHERE path = ?", (rel,)).fetchone()
        assert b"Date only" in payload or b"date" in payload.lower()
        db.execute("UPDATE parsed SET payload = ? WHERE path = ?",
                   (payload.replace(b'"', b'"Forged ', 1), rel))
    store, snapshot = load(site, index)
    assert store.parse_count == 1 + surprises(cold)
    assert seen(snapshot) == seen(cold)


@pytest.mark.parametrize("change", [{"timezone": "America/New_York"}, {"permalink": "pretty"},
                                    {"max_post_bytes": "1000"}, {"front_matter_ids": "true"}])
def test_a_setting_that_changes_parsing_makes_the_index_again(
        change: dict[str, str], site: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    load(site, index)
    cold_store, cold = load(site, None, **change)
    store, snapshot = load(site, index, **change)
    assert store.index is not None and store.index.hits == 0
    assert store.parse_count == cold_store.parse_count
    assert seen(snapshot) == seen(cold)
    again, snapshot = load(site, index, **change)
    assert again.parse_count == surprises(snapshot)


def test_a_setting_that_does_not_change_parsing_keeps_the_index(site: Path,
                                                                 tmp_path: Path) -> None:
    index = tmp_path / "index"
    load(site, index)
    store, snapshot = load(site, index, title="Another title", posts_limit="3")
    assert store.parse_count == surprises(snapshot)


def test_a_swapped_folder_is_not_trusted_for_its_twin(tmp_path: Path) -> None:
    """Two folders with the same file names, sizes and mtimes: the index of one is never
    taken for the other, swapped into its place or sharing the index folder."""
    index = tmp_path / "index"
    one = write_site(tmp_path / "one", {"_posts/2024-01-01-a.md": post_text("One", "2024-01-01")})
    two = write_site(tmp_path / "two", {"_posts/2024-01-01-a.md": post_text("Two", "2024-01-01")})
    for root in (one, two):
        set_mtimes(root, 1_700_000_000)
    load(one, index)
    store, snapshot = load(two, index)  # its own index file in the same folder
    assert store.parse_count == 1 and snapshot.posts["_posts/2024-01-01-a.md"].title == "Two"
    assert len(list(index.glob("posts-*.sqlite3"))) == 2
    site = tmp_path / "site"
    one.rename(site)
    load(site, index)
    site.rename(tmp_path / "one-away")
    two.rename(site)  # the same path, another folder
    store, snapshot = load(site, index)
    assert store.parse_count == 1 and snapshot.posts["_posts/2024-01-01-a.md"].title == "Two"
    # An index file copied over from another folder's name is not trusted either.
    mine = postcache.index_path(str(index), str(site))
    shutil.copyfile(postcache.index_path(str(index), str(tmp_path / "two")), mine)
    store, _snapshot = load(site, index)
    assert store.parse_count == 1


def test_another_code_version_makes_the_index_again(site: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "index"
    cold_store, _cold = load(site, index)
    monkeypatch.setattr(postcache, "_CODE", ["another version"])
    store, _snapshot = load(site, index)
    assert store.parse_count == cold_store.parse_count


def test_an_index_folder_that_cannot_be_used_is_a_warning(
        site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _cold_store, cold = load(site, None)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with caplog.at_level(logging.WARNING, "feeds.postcache"):
        _store, snapshot = load(site, blocker / "index")
    assert seen(snapshot) == seen(cold)
    assert [r for r in caplog.records if "cannot write" in r.getMessage()]


def test_a_full_disk_is_a_warning_and_the_next_start_still_right(
        site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """SQLite's 'database or disk is full', as a full disk gives it (a page limit here)."""
    index = tmp_path / "index"
    _cold_store, cold = load(site, None)
    connect = sqlite3.connect

    def small(*args: Any, **kwargs: Any) -> sqlite3.Connection:
        db = connect(*args, **kwargs)
        db.execute("PRAGMA max_page_count = 3")
        return db

    monkeypatch.setattr(postcache.sqlite3, "connect", small)
    with caplog.at_level(logging.WARNING, "feeds.postcache"):
        _store, snapshot = load(site, index)
    assert seen(snapshot) == seen(cold)
    assert [r for r in caplog.records if "full" in r.getMessage()]
    monkeypatch.setattr(postcache.sqlite3, "connect", connect)
    store, snapshot = load(site, index)
    assert seen(snapshot) == seen(cold)
    store, snapshot = load(site, index)
    assert store.parse_count == surprises(cold) and seen(snapshot) == seen(cold)


def test_changes_while_running_are_kept_for_the_next_start(site: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    svc = FeedService(settings_for(site, index))
    svc.start(watch=False)
    new = site / "_posts/2024-02-02-live.md"
    new.write_text(post_text("Written while running", "2024-02-02"), encoding="utf-8")
    os.utime(new, (1_700_000_000, 1_700_000_000))  # settled: not 'being written'
    edited = site / "_posts/2022-05-04-date-only.md"
    edited.write_text(post_text("Edited while running", "2022-05-04"), encoding="utf-8")
    os.utime(edited, (1_700_000_000, 1_700_000_000))
    gone = site / "_posts/2022-06-10-file-name-date.md"
    gone.unlink()
    svc.refresh()
    assert "_posts/2024-02-02-live.md" in svc.state().snapshot.posts
    svc.stop()
    store, snapshot = load(site, index)
    # The first load's state, with the files changed since taken from their rows.
    assert store.states.taken == 1 and store.parse_count == 0
    assert store.index is not None and store.index.hits == 2
    assert snapshot.posts["_posts/2024-02-02-live.md"].title == "Written while running"
    assert snapshot.posts["_posts/2022-05-04-date-only.md"].title == "Edited while running"
    assert "_posts/2022-06-10-file-name-date.md" not in snapshot.posts
    _cold_store, cold = load(site, None)
    assert seen(snapshot) == seen(cold)


def test_no_index_folder_writes_nothing(site: Path, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    store, _snapshot = load(site, None)
    assert store.index is None and sorted(tmp_path.rglob("*")) == before


def test_every_post_field_survives_the_payload() -> None:
    shanghai = ZoneInfo("Asia/Shanghai")
    new_york = ZoneInfo("America/New_York")
    twice = datetime(2021, 11, 7, 6, 30, tzinfo=UTC).astimezone(new_york)  # 01:30, fold 1
    assert twice.fold == 1
    post = Post(
        source="a/_posts/x.md", stamp=(1, 2, 3), markup="markdown", slug="x", title="T\ud800",
        date=datetime(2021, 1, 2, 3, 4, 5, 6, tzinfo=shanghai), updated=twice,
        categories=("a", "b"), tags=("中",), url="/a/x.html", entry_id="/a/x",
        author=Author("N", "n@example.org", "https://example.org"), summary="s",
        image="/i.png", lang="zh", source_url="https://example.org/x",
        excerpt_separator="<!--more-->", excerpt_only=True)
    parse = Parse(post=post, warnings=("w",))
    back = decode(post.source, post.stamp, encode(parse))
    assert repr(back) == repr(parse)
    for when in (datetime(2020, 1, 1, tzinfo=UTC),
                 datetime(2020, 1, 1, tzinfo=timezone(timedelta(hours=-5)))):
        dated = Parse(post=Post(**{**{f: getattr(post, f) for f in post.__slots__},
                                   "date": when, "author": None}))
        assert repr(decode(post.source, post.stamp, encode(dated))) == repr(dated)
    for other in (Parse(error="bad"), Parse(skipped="published: false")):
        assert decode("x.md", (1, 2, 3), encode(other)) == other


def test_build_and_check_take_the_index_folder(site: Path, tmp_path: Path) -> None:
    index = tmp_path / "index"
    env = {k: v for k, v in os.environ.items() if k != "FEEDS_INDEX_DIR"}
    for command in (["build", str(site), str(tmp_path / "out")], ["check", str(site)]):
        subprocess.run([sys.executable, "-m", "feeds", *command, "--index-dir", str(index)],
                       capture_output=True, text=True, timeout=120, env=env, check=False)
    store, _snapshot = load(site, index)
    assert store.states.taken == 1  # the whole load, as the build and the check kept it
    with sqlite3.connect(index_file(index)) as db:
        (rows,) = db.execute("SELECT count(*) FROM parsed").fetchone()
    assert rows > 20


def test_posts_from_the_index_share_their_zones_and_names(tmp_path: Path) -> None:
    """Decoded posts hold one zone object an offset and one tuple a list of names, as
    parsed ones do: each had had its own (+8 MiB at 10,000 posts)."""
    index = tmp_path / "index"
    site = write_site(tmp_path / "site", {
        f"_posts/2024-01-{d:02d}-p{d}.md": post_text(
            f"P{d}", f"2024-01-{d:02d} 10:00:00 {'+0800' if d % 2 else '-0500'}",
            "[news, 新闻]", "[a]") for d in range(1, 21)})
    load(site, index)
    store, warm = load(site, index)
    assert store.parse_count == 0
    posts = list(warm.posts.values())
    assert len({id(p.date.tzinfo) for p in posts}) == 2  # +08:00 and -05:00
    assert len({id(p.categories) for p in posts}) == 1
    assert len({id(name) for p in posts for name in (*p.categories, *p.tags)}) == 3
