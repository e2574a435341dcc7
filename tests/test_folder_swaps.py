"""Issue 15, findings 1, 2, 10 and the move from outside: the content folder followed by
what it resolves to, whatever an operator does to it (swap a link, delete and copy it
back, point --content at a link), changes during start-up never lost, and a
``_config.yml`` that is missing, broken or an alias bomb never costs the settings.

Each wait here is shorter than the watcher's full scan (watch.SAFETY_SCAN), so a change
that shows proves the events (or the rescan at start) delivered it."""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient

from feeds import create_app, watch
from feeds.config import OPTIONS_BY_NAME, ConfigError, load_settings
from feeds.service import FeedService
from feeds.watch import SAFETY_SCAN, Watcher

from .conftest import make_settings, post_text, write_site

SOON = 6.0
"""Longer than any event takes, shorter than a full scan: what 'at once' means here."""
assert SOON < SAFETY_SCAN

POSTS = {f"_posts/2021-01-{d:02d}-p{d}.md": post_text(f"P{d}", f"2021-01-{d:02d} 10:00:00")
         for d in range(1, 7)}
CONFIG = "title: Original\nurl: https://swap.example\ntimezone: Europe/Paris\n"

BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n"
    for i in range(8)) + "title: *i\n"
"""Nine by nine aliases: 9**9 strings once followed (the issue's 85 s, 5 GB)."""


def feed(client: FlaskClient) -> Any:
    response = client.get("/feed.atom?limit=100")
    assert response.status_code == 200
    parsed = feedparser.parse(response.data)
    assert not parsed.bozo, parsed.bozo_exception
    return parsed


def ids(client: FlaskClient) -> dict[str, str]:
    return {e.title: e.id for e in feed(client).entries}


def wait_until(predicate: Callable[[], bool], what: str, seconds: float = SOON) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {seconds:.0f} s still waiting for {what}")
        time.sleep(0.05)


def watched(make_app: Callable[..., Flask], root: Path) -> tuple[FlaskClient, FeedService]:
    app = make_app(root, watch=True)
    service: FeedService = app.extensions["feeds"]
    assert service.health()["watch"] == "inotify"
    return app.test_client(), service


def with_backup(tmp_path: Path, make_app: Callable[..., Flask],
                ) -> tuple[Path, Path, FlaskClient, FeedService]:
    """The site, a copy of it to swap back in, and the app following the site."""
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    backup = tmp_path / "backup"
    shutil.copytree(root, backup)
    return root, backup, *watched(make_app, root)


def test_a_folder_deleted_and_copied_back_keeps_its_settings_and_ids(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root, backup, client, service = with_backup(tmp_path, make_app)
    before = ids(client)
    shutil.rmtree(root)
    # Missing: the last content and settings stay, and health says why.
    wait_until(lambda: service.health()["status"] == "degraded", "a degraded health")
    assert ids(client) == before and feed(client).feed.title == "Original"
    shutil.copytree(backup, root)
    wait_until(lambda: service.health()["status"] == "ok", "the folder back")
    # A copy that stalls longer than the settle looks (CI under load) is published as
    # far as it had come; the rest follow by their events, with the same ids.
    wait_until(lambda: ids(client) == before, "every post back with its id")
    assert feed(client).feed.title == "Original"
    # The recreated _config.yml is the one followed now: an edit applies at once.
    (root / "_config.yml").write_text(CONFIG.replace("Original", "Edited"))
    wait_until(lambda: feed(client).feed.title == "Edited", "the edited config")
    assert ids(client) == before


def test_an_rm_rf_that_pauses_part_way_never_leaves_the_folder_half_gone(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """A busy machine pauses an ``rm -rf`` after its first files, long enough for their
    removal to be served; when the folder itself goes just after, those files were the
    start of its removal, and the last content is the whole folder again."""
    root, backup, client, service = with_backup(tmp_path, make_app)
    before = ids(client)
    for name in ("2021-01-01-p1.md", "2021-01-02-p2.md"):
        (root / "_posts" / name).unlink()  # the rm's first files, then a pause...
    wait_until(lambda: "P1" not in ids(client) and "P2" not in ids(client), "the removals")
    shutil.rmtree(root)  # ...and the rest, the folder itself last
    wait_until(lambda: service.health()["status"] == "degraded", "a degraded health")
    assert ids(client) == before
    body = client.get("/feed.json?limit=100").get_json()
    assert all(item["content_html"] for item in body["items"])  # bodies, not blanks
    shutil.copytree(backup, root)
    wait_until(lambda: service.health()["status"] == "ok", "the folder back")
    assert ids(client) == before


def test_a_folder_copied_back_whole_is_taken_in_without_waiting_for_quiet(
        tmp_path: Path, make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch,
        ) -> None:
    """Once the folder holds the very files the last scan saw (by count and bytes), the
    copy back is done: no quiet spell is waited for (here a long one), so a swap costs
    readers no more than the copy."""
    monkeypatch.setattr(watch, "ROOT_QUIET", 60.0)
    monkeypatch.setattr(watch, "ROOT_QUIET_FEWER", 60.0)
    root, backup, client, service = with_backup(tmp_path, make_app)
    before = ids(client)
    watcher = service._watcher
    assert watcher is not None  # what a copy back must reach: the first scan's look
    wait_until(lambda: watcher._baseline is not None, "the watcher's first scan")
    shutil.rmtree(root)
    wait_until(lambda: service.health()["status"] == "degraded", "a degraded health")
    shutil.copytree(backup, root)
    wait_until(lambda: service.health()["status"] == "ok", "the folder back")
    (root / "_posts" / "2021-01-03-p3.md").write_text(post_text("P3 edited", "2021-01-03"))
    wait_until(lambda: "P3 edited" in ids(client), "an edit in the folder copied back")
    assert {k: v for k, v in ids(client).items() if k != "P3 edited"} == {
        k: v for k, v in before.items() if k != "P3"}


def test_a_config_deleted_keeps_the_last_settings_until_it_is_back(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    client, service = watched(make_app, root)
    before = ids(client)
    (root / "_config.yml").unlink()
    wait_until(lambda: "config" in service.health()["problems"], "the config problem")
    assert service.health()["status"] == "degraded"
    assert feed(client).feed.title == "Original" and ids(client) == before
    (root / "_config.yml").write_text(CONFIG.replace("Original", "Back"))
    wait_until(lambda: feed(client).feed.title == "Back", "the config back")
    assert service.health()["status"] == "ok"


def test_a_link_swapped_to_another_folder_brings_its_config_too(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    first = write_site(tmp_path / "a", POSTS, config=CONFIG)
    other = write_site(tmp_path / "b", {"_posts/2022-02-02-other.md": post_text(
        "Other", "2022-02-02 10:00:00")}, config=CONFIG.replace("Original", "Other site"))
    site = tmp_path / "site"
    site.symlink_to(first)
    client, _service = watched(make_app, site)
    assert feed(client).feed.title == "Original"
    swap = tmp_path / "site.new"
    swap.symlink_to(other)
    os.replace(swap, site)  # what ln -sfn does
    wait_until(lambda: set(ids(client)) == {"Other"}, "the other folder's posts")
    assert feed(client).feed.title == "Other site"
    # And events now come from the folder the link leads to.
    (other / "_posts" / "2022-02-03-more.md").write_text(post_text("More", "2022-02-03"))
    wait_until(lambda: set(ids(client)) == {"Other", "More"}, "a post in the new target")


def test_a_linked_content_root_gets_events_for_its_own_files(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    target = write_site(tmp_path / "real", POSTS, config=CONFIG)
    site = tmp_path / "site"
    site.symlink_to(target)
    client, _service = watched(make_app, site)
    (target / "_config.yml").write_text(CONFIG.replace("Original", "Renamed"))
    wait_until(lambda: feed(client).feed.title == "Renamed", "the config edit")
    (target / "_posts" / "2021-02-01-new.md").write_text(post_text("New", "2021-02-01"))
    wait_until(lambda: "New" in ids(client), "a new post")
    (target / "_posts").rename(target / "x")
    # No posts left: the last content is served (degraded), never posts with no bodies.
    wait_until(lambda: _service.health()["status"] == "degraded", "the emptied folder")
    assert "no posts" in _service.health()["problems"]["content"]
    (target / "x").rename(target / "_posts")
    wait_until(lambda: _service.health()["status"] == "ok", "the posts back")
    assert "New" in ids(client)


def test_the_full_scan_is_never_further_apart_than_safety_scan(tmp_path: Path) -> None:
    """However long the last scan took (0.5 s at 100,000 posts would space them 50 s),
    the next one is at most SAFETY_SCAN away: a missed event waits no longer."""
    polls: list[float] = []

    def on_poll() -> None:
        polls.append(time.monotonic())
        time.sleep(0.3)  # 0.3 s / 1% = 30 s

    watcher = Watcher(str(tmp_path), 5.0, on_paths=lambda paths: None, on_poll=on_poll,
                      safety_interval=0.01)
    try:
        assert watcher.mode == "inotify"
        watcher.start()
        wait_until(lambda: bool(polls), "the first scan")
        time.sleep(0.5)
    finally:
        watcher.stop()
    assert 0 < watcher._next_scan - polls[0] <= SAFETY_SCAN + 0.5


def test_a_file_moved_in_from_outside_shows_at_once(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    client, _service = watched(make_app, root)
    draft = tmp_path / "draft.md"
    draft.write_text(post_text("Drafted", "2021-03-01 10:00:00"))
    os.rename(draft, root / "_posts" / "2021-03-01-drafted.md")  # mv ~/draft.md site/_posts/
    wait_until(lambda: "Drafted" in ids(client), "the post moved in")
    folder = tmp_path / "batch" / "_posts"
    folder.mkdir(parents=True)
    (folder / "2021-03-02-batch.md").write_text(post_text("Batch", "2021-03-02"))
    os.rename(tmp_path / "batch", root / "batch")  # a whole folder moved in
    wait_until(lambda: "Batch" in ids(client), "the folder moved in")
    os.rename(root / "_posts" / "2021-03-01-drafted.md", tmp_path / "out.md")
    wait_until(lambda: "Drafted" not in ids(client), "the post moved out")


def test_posts_added_during_and_just_after_the_first_load_are_never_lost(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The load is held half-way; a post saved then, and one saved the moment /healthz
    first says ok, both show without waiting for a full scan."""
    import feeds.parsed

    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    parse = feeds.parsed.parse_post
    inside, release = threading.Event(), threading.Event()

    def held_parse(source: str, *args: Any, **kwargs: Any) -> Any:
        if source.endswith("p3.md"):
            inside.set()
            assert release.wait(60), "the test never released the load"
        return parse(source, *args, **kwargs)

    monkeypatch.setattr(feeds.parsed, "parse_post", held_parse)
    app = create_app(make_settings(root), background=True, watch=True)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    try:
        assert inside.wait(60), "the load never started"
        assert client.get("/healthz").status_code == 503
        during = root / "_posts" / ".during.tmp"
        during.write_text(post_text("During", "2021-04-01 10:00:00"))
        os.replace(during, root / "_posts" / "2021-04-01-during.md")
        (root / "_posts" / "2021-01-01-p1.md").unlink()
        release.set()
        wait_until(lambda: client.get("/healthz").status_code == 200, "the load", 60)
        after = root / "_posts" / ".after.tmp"
        after.write_text(post_text("After", "2021-04-02 10:00:00"))
        os.replace(after, root / "_posts" / "2021-04-02-after.md")
        wait_until(lambda: {"During", "After"} <= set(ids(client)), "both posts")
        assert "P1" not in ids(client)
    finally:
        release.set()
        service.stop()


# --- _config.yml: the YAML guard of front matter (finding 10) ----------------------------


@pytest.mark.parametrize("text, why", [
    (BOMB, "alias bomb"),
    ("title: " + "[" * 20_000 + "]" * 20_000 + "\n", "too many"),
    ("title: &a [*a]\n", "itself"),
])
def test_a_hostile_config_is_refused_at_start_up_naming_the_file(
        tmp_path: Path, text: str, why: str) -> None:
    root = write_site(tmp_path / "site", POSTS, config=text)
    started = time.monotonic()
    with pytest.raises(ConfigError, match=why) as caught:
        load_settings({"content": str(root)}, environ={})
    assert "_config.yml" in str(caught.value)
    assert time.monotonic() - started < 30  # not the 85 s


def test_a_config_turned_into_an_alias_bomb_keeps_the_old_settings(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    client, service = watched(make_app, root)
    (root / "_config.yml").write_text(BOMB)
    wait_until(lambda: "config" in service.health()["problems"], "the config refused")
    assert "alias bomb" in service.health()["problems"]["config"]
    assert feed(client).feed.title == "Original"
    health = client.get("/healthz")
    assert health.status_code == 200 and health.get_json()["status"] == "degraded"
    (root / "_config.yml").write_text(CONFIG.replace("Original", "Mended"))
    wait_until(lambda: feed(client).feed.title == "Mended", "the mended config")
    assert client.get("/healthz").get_json()["status"] == "ok"


@pytest.mark.parametrize("setting, value", [
    ("websub_hub", "https://hub.example/\r\nX-Injected: 1"),
    ("base_url", "https://feeds.example/\nX"),
    ("url", "javascript:alert(1)"),
    ("base_url", "feeds.example"),
    ("websub_hub", "https://hub.example:99999/"),
])
def test_every_url_setting_is_checked_at_start_up(
        tmp_path: Path, setting: str, value: str) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    with pytest.raises(ConfigError, match=setting):
        load_settings({"content": str(root), setting: value}, environ={})
    if OPTIONS_BY_NAME[setting].config_key is None:
        return  # a flag and environment variable only
    (root / "_config.yml").write_text(CONFIG + f"{setting}: {value!r}\n".replace("'", '"'))
    with pytest.raises(ConfigError, match=setting):
        load_settings({"content": str(root)}, environ={})


def test_good_url_settings_still_pass(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", POSTS, config=CONFIG)
    settings = load_settings({"content": str(root), "websub_hub": " self ",
                              "base_url": "http://[::1]:8080/blog"}, environ={})
    assert settings.self_hub and settings.site_base == "http://[::1]:8080/blog"
