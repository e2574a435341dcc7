"""An incremental build's groups (``buildgroups``): together they are every URL of the
site, each once; a group whose fingerprint is the last build's is kept whole, never
listed, unless a file of it was changed by hand; and whatever is kept, the result is a
fresh build's, file for file, and the manifest names exactly the files there are."""

from __future__ import annotations

import copy
import os
import threading as real_threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from feeds import (
    assets,
    buildgroups,
    buildplan,
    buildstate,
    buildwork,
    create_app,
    export,
    links,
    loadstate,
    renderwork,
    statefile,
)
from feeds.config import Settings

from .conftest import make_settings, post_text
from .test_export import BASE, files
from .test_export_incremental import again, fresh, site
from .test_export_safety import manifest_lines


class threading:
    @staticmethod
    def enumerate_main() -> list[real_threading.Thread]:
        """No thread but the main one, as `feeds build` has: the check is forked."""
        return [real_threading.main_thread()]


@pytest.fixture
def small_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    """Blocks of one HTML page (20 posts, two feed pages) and runs of 4 post pages: a
    26-post site has several of each."""
    monkeypatch.setattr(buildgroups, "BLOCK", 20)
    monkeypatch.setattr(buildgroups, "POSTS", 4)


def _grouped(settings: Settings) -> tuple[dict[str, links.Shown], dict[str, links.Shown]]:
    """(every URL by ``links.site_pages``, every URL by the groups, each once)."""
    app = create_app(settings, watch=False)
    try:
        state = app.extensions["feeds"].state()
        statics = [f"/static/{name}" for name in assets.ASSETS]
        want = dict(links.site_pages(state.index, settings.page_size, settings.posts_limit,
                                     statics, settings))
        got: dict[str, links.Shown] = {}
        for group in buildgroups.groups(state.index, state.settings):
            assert group.key != buildgroups.OTHER
            for url, shown in buildgroups.pages(group, state.index, state.settings):
                assert url not in got, url
                got[url] = shown
        for url, shown in buildgroups.others(state.index, state.settings, statics):
            assert url not in got, url
            got[url] = shown
        return want, got
    finally:
        app.extensions["feeds"].stop()


@pytest.mark.parametrize("small", [False, True])
def test_the_groups_hold_every_url_of_the_site_once(
        tmp_path: Path, small: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    if small:
        monkeypatch.setattr(buildgroups, "BLOCK", 20)
        monkeypatch.setattr(buildgroups, "POSTS", 4)
    root = site(tmp_path / "site", liquid=True)
    (root / "_config.yml").write_text(
        "title: Groups\nurl: https://feeds.example.org\nfeed:\n  path: atom.xml\n"
        "  categories: [news, empty]\n", "utf-8")
    want, got = _grouped(make_settings(root, base_url=BASE))
    assert got == want
    assert "/atom.xml" in got and "/feed/empty.xml" in got  # feed: adds these
    assert len([u for u in got if u.startswith("/feed.atom")]) == 3  # 27 posts, 10 a page


def test_a_run_of_the_sites_posts_is_fingerprinted_from_its_keys_as_any_list_is(
        tmp_path: Path, small_groups: None) -> None:
    """The site's blocks and the runs of post pages take their fingerprints from the
    posts' keys in the site's order; a category's, post by post: the same digests."""
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    app = create_app(settings, watch=False)
    try:
        index = app.extensions["feeds"].state().index
        prints = buildstate.Fingerprints("context", index)
        general = copy.copy(prints)
        general._shown = dict(prints._keys)  # (no longer plain: post by post)
        assert prints.plain and not general.plain
        found = [(g.key, prints.group(g), general.group(g))
                 for g in buildgroups.groups(index, settings)]
        assert len({fp for _key, fp, _other in found}) == len(found)
        assert [(key, fp) for key, fp, _other in found] == [
            (key, other) for key, _fp, other in found]
    finally:
        app.extensions["feeds"].stop()


def _counting(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The key of each group a build lists the URLs of."""
    listed: list[str] = []
    real = buildgroups.pages

    def pages(group: buildgroups.Group, *args: object) -> Iterator[tuple[str, links.Shown]]:
        listed.append(group.key)
        return real(group, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(buildgroups, "pages", pages)
    return listed


def _listing(settings: Settings, out: Path, tmp_path: Path, listed: list[str]) -> tuple[
        export.BuildResult, set[str]]:
    """An incremental build of ``out`` (a fresh build's files exactly), and the groups
    it listed."""
    listed.clear()
    result = export.run(settings, str(out))
    seen = set(listed)
    assert result.failed == 0, result.summary()
    assert files(out) == fresh(settings, tmp_path)
    return result, seen


def test_an_edit_lists_only_the_groups_that_show_the_post(
        tmp_path: Path, small_groups: None, monkeypatch: pytest.MonkeyPatch) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    first = export.run(settings, str(out))
    assert first.failed == 0
    listed = _counting(monkeypatch)
    same, seen = _listing(settings, out, tmp_path, listed)
    assert same.written == 0 and seen == set()  # nothing changed: no group is listed

    # Post 10 is the 16th newest: the site's and its lists' first blocks, one run of
    # post pages (and that run's neighbour holds its older neighbour's page).
    (root / "_posts/2022-01-11-post-10.md").write_text(post_text(
        "Post 10", "2022-01-11 10:00:00 +0800", "[news]", "[红网新闻, rare]",
        body="An edited body."), "utf-8")
    edited, seen = _listing(settings, out, tmp_path, listed)
    assert edited.written > 0
    assert sorted(seen) == sorted(
        ["site:#0", "category:news#0", "tag:红网新闻#0", "tag:rare#0", "posts#3", "posts#4"])
    assert edited.files == first.files and edited.kept > first.files // 2
    assert set(manifest_lines(out)) == set(files(out))

    # Post 10 moved from one tag to another: the tag it left (one post shorter) and the
    # one it joined are listed too; a post renamed (same stamp, another source) is new.
    (root / "_posts/2022-01-11-post-10.md").write_text(post_text(
        "Post 10", "2022-01-11 10:00:00 +0800", "[news]", "[红网新闻, moved]",
        body="An edited body."), "utf-8")
    _moved, seen = _listing(settings, out, tmp_path, listed)
    assert {"tag:rare#0", "tag:moved#0", "tag:红网新闻#0"} <= seen
    assert "tag:python#0" not in seen and "category:life#0" not in seen
    (root / "_posts/2022-01-07-post-6.md").rename(root / "_posts/2022-01-07-renamed.md")
    renamed, seen = _listing(settings, out, tmp_path, listed)
    assert {"category:life#0", "tag:红网新闻#0"} <= seen and renamed.removed > 0

    # Two posts gone: one run of post pages fewer, stale files removed, the manifest
    # as the folder is.
    for name in ("2022-01-02-post-1.md", "2022-01-03-post-2.md"):
        (root / "_posts" / name).unlink()
    removed, seen = _listing(settings, out, tmp_path, listed)
    assert removed.removed > 0 and "posts#5" in seen and "posts#6" not in seen
    assert set(manifest_lines(out)) == set(files(out))
    # A post added.
    (root / "_posts/2022-01-30-new.md").write_text(post_text(
        "New", "2022-01-30 10:00:00 +0800", "[life]", "[brand-new]"), "utf-8")
    again(settings, out, tmp_path)
    assert set(manifest_lines(out)) == set(files(out))


@pytest.mark.parametrize("fork", [True, False])
def test_a_file_changed_by_hand_in_a_group_kept_whole_is_made_again(
        tmp_path: Path, small_groups: None, fork: bool,
        monkeypatch: pytest.MonkeyPatch) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(settings, str(out))
    if fork:  # (as in `feeds build`: no thread but the main one)
        monkeypatch.setattr(buildwork.threading, "enumerate", threading.enumerate_main)
    else:  # the files are looked at here, and only those of groups to keep
        monkeypatch.delattr(os, "fork")
    (out / "feed.atom?page=3").write_bytes(b"edited by hand")  # the site's second block
    (out / "tag/python.json").unlink()
    result = again(settings, out, tmp_path)
    assert result.written == 2 and result.kept >= result.files - 8  # (OPML, statics)


def test_a_check_that_dies_keeps_no_group_whole(
        tmp_path: Path, small_groups: None, monkeypatch: pytest.MonkeyPatch) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(settings, str(out))
    parent, real = os.getpid(), buildplan._bad

    def dies_in_the_child(*args: object) -> set[str]:
        if os.getpid() != parent:
            os._exit(3)
        return real(*args)  # type: ignore[arg-type]

    monkeypatch.setattr(buildplan, "_bad", dies_in_the_child)
    monkeypatch.setattr(buildwork.threading, "enumerate", threading.enumerate_main)
    listed = _counting(monkeypatch)
    (out / "category/news.rss").write_bytes(b"edited by hand")
    state = buildstate.load(out)
    assert state is not None
    result, seen = _listing(settings, out, tmp_path, listed)
    assert result.written == 1 and result.kept > 0  # kept URL by URL, each looked at
    assert seen == set(state.groups) - {buildgroups.OTHER}


def test_a_stopped_build_leaves_no_state_to_trust(tmp_path: Path) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(settings, str(out))
    job = export._Run(out.resolve(), set())
    export._stopped(job, export.BuildError("disk full"))
    result = again(settings, out, tmp_path)
    assert result.kept == 0
    assert set(manifest_lines(out)) == set(files(out))


def test_a_small_changes_build_shares_its_load_and_bodies_with_a_render_helper(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A build forks a server's render helper before its load: a warm load's stat of
    every file is done there, and so are some of a small change's new bodies; the
    output is a fresh build's all the same."""
    monkeypatch.setattr(buildwork.threading, "enumerate", threading.enumerate_main)
    monkeypatch.setattr(statefile, "HELPED", 1)  # (a server's helper stats from 5,000)
    helpers: list[renderwork.RenderHelper] = []
    sent: list[str] = []
    fork, start = renderwork.RenderHelper.fork, renderwork.RenderHelper.start

    def forked() -> renderwork.RenderHelper | None:
        helper = fork()
        helpers.extend([helper] if helper is not None else [])
        return helper

    def started(self: renderwork.RenderHelper, work: Callable[[Any], Any],
                items: Sequence[Any]) -> bool:
        sent.append(work.__name__)
        return start(self, work, items)

    monkeypatch.setattr(renderwork.RenderHelper, "fork", staticmethod(forked))
    monkeypatch.setattr(renderwork.RenderHelper, "start", started)
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE, index_dir=str(tmp_path / "index"))
    out = tmp_path / "out"
    export.run(settings, str(out))
    helpers.clear()
    sent.clear()
    (root / "_posts/2022-01-26-post-25.md").write_text(post_text(
        "Post 25", "2022-01-26 10:00:00 +0800", "[news]", "[python]",
        body="*New* body."), "utf-8")
    result = export.run(settings, str(out))
    assert result.failed == 0 and result.kept > 0
    assert sent[0] == "stamps_of" and "made_body" in sent
    assert len(helpers) == 1 and helpers[0].done > 0 and not helpers[0].alive
    assert files(out) == fresh(settings, tmp_path)


def test_a_build_with_a_persisted_index_leaves_its_load_state_written(
        tmp_path: Path) -> None:
    """A build does not wait for the load state's writer while it renders, but does
    before it returns (unless told to leave it: ``feeds build``, whose process ends)."""
    root = site(tmp_path / "site")
    index = tmp_path / "index"
    settings = make_settings(root, base_url=BASE, index_dir=str(index))
    before = _children()
    assert export.run(settings, str(tmp_path / "out")).failed == 0
    assert _children() <= before  # each process it forked was waited for
    assert [p.suffix for p in index.iterdir() if p.suffix == ".state"] == [".state"]
    assert not list(index.glob(".*.tmp"))


def _children() -> set[str]:
    """This process's children, running or not yet waited for (Linux)."""
    return {pid for path in Path(f"/proc/{os.getpid()}/task").glob("*/children")
            for pid in path.read_text().split()}


@pytest.mark.parametrize("kept", [True, False])
def test_a_build_leaves_a_load_state_with_a_few_files_to_read_again_as_it_is(
        tmp_path: Path, kept: bool, monkeypatch: pytest.MonkeyPatch) -> None:
    """An incremental build takes the persisted index's load state with the posts edited
    since read again, and leaves it as it is while they are few (``loadstate.STALE_KEPT``);
    more, and it writes it anew (as a full build does). Its output is a fresh build's."""
    if not kept:
        monkeypatch.setattr(loadstate, "STALE_KEPT", 0)
    root = site(tmp_path / "site")
    index = tmp_path / "index"
    settings = make_settings(root, base_url=BASE, index_dir=str(index))
    out = tmp_path / "out"
    assert export.run(settings, str(out)).failed == 0
    (state,) = index.glob("*.state")
    before = state.stat()
    (root / "_posts/2022-01-11-post-10.md").write_text(post_text(
        "Post 10, edited", "2022-01-11 10:00:00 +0800", "[news]", "[红网新闻, rare]"), "utf-8")
    assert export.run(settings, str(out)).kept > 0
    after = state.stat()
    assert ((after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)) is kept
    (root / "_posts/2022-01-12-post-11.md").unlink()  # and again, on the state as left
    assert export.run(settings, str(out)).kept > 0
    assert files(out) == fresh(settings, tmp_path)
