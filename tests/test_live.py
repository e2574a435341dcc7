"""Following the content folder while the service runs: posts added, edited, renamed and
deleted, editors' atomic saves, a git checkout, folders coming and going, _config.yml
edited; with inotify (watchdog) and with the polling fallback. Every change must reach
every feed and page it affects, re-read only the files it touched, and never make a
request wait for it or show half of it.

Each wait is a bounded loop that polls the app until the change shows; the deadline is
generous (a busy two-core machine), and how long changes take is measured in bench/.
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import html as lxml_html

from feeds import create_app
from feeds.model import Post
from feeds.service import FeedService
from feeds.watch import Watcher

from .conftest import make_settings, post_text, validate_json_feed, write_site

DEADLINE = 60.0
"""Longest any change may take to show here (the target is reload_interval, 2 s)."""

CONFIG = "title: Live\nurl: https://live.example\ntimezone: UTC\n"


def wait_until(predicate: Callable[[], bool], what: str, seconds: float = DEADLINE) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"after {seconds:.0f} s still waiting for {what}")
        time.sleep(0.05)


def feed_entries(client: FlaskClient, path: str) -> dict[str, Any]:
    """Title -> feedparser entry of an Atom or RSS feed ({} when it is 404)."""
    response = client.get(path)
    if response.status_code == 404:
        return {}
    assert response.status_code == 200, (path, response.status_code)
    feed = feedparser.parse(response.data)
    assert not feed.bozo, (path, feed.bozo_exception)
    return {entry.title: entry for entry in feed.entries}


def titles(client: FlaskClient, path: str = "/feed.atom?limit=100") -> set[str]:
    return set(feed_entries(client, path))


def json_titles(client: FlaskClient, path: str) -> set[str]:
    response = client.get(path)
    if response.status_code == 404:
        return set()
    return {item["title"] for item in validate_json_feed(response.data)["items"]}


def save_atomically(path: Path, text: str) -> None:
    """What editors do: write a temporary file next to the target, rename it over."""
    temporary = path.parent / f".{path.name}.swp"
    temporary.write_text(text, encoding="utf-8")
    os.replace(temporary, path)


@dataclass
class Live:
    root: Path
    app: Flask
    client: FlaskClient
    service: FeedService

    @property
    def parses(self) -> int:
        return self.service.store.parse_count

    def posts(self) -> dict[str, Post]:
        return dict(self.service.state().snapshot.posts)

    def version(self) -> int:
        return self.service.state().snapshot.version


BASE_POSTS = {
    "_posts/2021-01-01-first.md": post_text("First", "2021-01-01 10:00:00", "[news]", "[a]"),
    "_posts/2021-01-02-second.md": post_text("Second", "2021-01-02 10:00:00", "[news]", "[b]"),
    "_posts/2021-01-03-third.md": post_text("Third", "2021-01-03 10:00:00", "[tech]", "[a]"),
    "world/_posts/2021-01-04-abroad.md": post_text("Abroad", "2021-01-04 10:00:00", "[]",
                                                   "[travel]"),
}


@pytest.fixture
def live_factory(tmp_path: Path, make_app: Callable[..., Flask]) -> Callable[..., Live]:
    made = 0

    def start(posts: dict[str, str] | None = None, config: str = CONFIG,
              **overrides: Any) -> Live:
        nonlocal made
        root = write_site(tmp_path / f"site{made}",
                          BASE_POSTS if posts is None else posts, config=config)
        made += 1
        app = make_app(root, watch=True, **overrides)
        return Live(root, app, app.test_client(), app.extensions["feeds"])

    return start


@pytest.fixture
def live(live_factory: Callable[..., Live]) -> Live:
    return live_factory()


# --- following changes ------------------------------------------------------------------


def test_an_added_post_shows_in_every_feed_and_page_it_belongs_to(live: Live) -> None:
    assert live.service.health()["watch"] == "inotify"
    (live.root / "_posts" / "2021-02-01-fresh.md").write_text(
        post_text("Fresh", "2021-02-01 09:00:00", "[tech]", "[b, new-tag]"), "utf-8")
    wait_until(lambda: "Fresh" in titles(live.client), "the new post in /feed.atom")
    assert "Fresh" in titles(live.client, "/category/tech.atom")
    assert "Fresh" in titles(live.client, "/tag/b.rss")
    assert json_titles(live.client, "/tag/new-tag.json") == {"Fresh"}
    page = live.client.get("/tech/2021/02/01/fresh.html")
    assert page.status_code == 200
    assert "Fresh" in lxml_html.fromstring(page.data).findtext(".//title")
    # Feeds it does not belong to are as they were.
    assert titles(live.client, "/category/news.atom") == {"First", "Second"}
    assert titles(live.client, "/tag/a.atom") == {"First", "Third"}


def test_an_edit_moves_a_post_between_tags_and_changes_its_title(live: Live) -> None:
    path = live.root / "_posts" / "2021-01-01-first.md"
    path.write_text(post_text("First, edited", "2021-01-01 10:00:00", "[news]", "[b]"),
                    "utf-8")
    wait_until(lambda: "First, edited" in titles(live.client), "the edited title")
    assert titles(live.client, "/tag/a.atom") == {"Third"}
    assert titles(live.client, "/tag/b.atom") == {"First, edited", "Second"}
    assert titles(live.client, "/category/news.atom") == {"First, edited", "Second"}
    assert "First" not in titles(live.client)


def test_an_editors_atomic_save_is_one_change_and_one_parse(live: Live) -> None:
    before = live.parses
    path = live.root / "_posts" / "2021-01-02-second.md"
    save_atomically(path, post_text("Second, saved", "2021-01-02 10:00:00", "[news]", "[b]"))
    wait_until(lambda: "Second, saved" in titles(live.client), "the saved title")
    assert live.parses == before + 1
    assert "Second" not in titles(live.client)
    # Editor litter (backups, swap files, lock files) is never a post.
    (live.root / "_posts" / "2021-01-02-second.md~").write_text(post_text("Backup", "2021-01-02"))
    (live.root / "_posts" / "#2021-01-02-second.md#").write_text(post_text("Lock", "2021-01-02"))
    save_atomically(live.root / "_posts" / "2021-03-03-marker.md",
                    post_text("Marker", "2021-03-03"))
    wait_until(lambda: "Marker" in titles(live.client), "the marker post")
    assert not {"Backup", "Lock"} & titles(live.client)
    assert live.parses == before + 2


def test_a_file_written_slowly_is_read_once_when_its_writer_closes_it(
        live: Live, caplog: pytest.LogCaptureFixture) -> None:
    """A writer that pauses half-way (longer than the reloader waits for quiet) is not
    read half written: with inotify the service reads a file when it is closed."""
    before = live.parses
    text = post_text("Slow", "2021-02-02 09:00:00", "[tech]", "[b]")
    path = live.root / "_posts" / "2021-02-02-slow.md"
    with caplog.at_level(logging.WARNING, logger="feeds.content"), \
            open(path, "w", encoding="utf-8") as f:
        f.write(text[:12])  # '---\ntitle: ' and no more
        f.flush()
        time.sleep(1.5)
        assert live.parses == before
        f.write(text[12:])
    wait_until(lambda: "Slow" in titles(live.client), "the slowly written post")
    assert live.parses == before + 1
    assert not [r for r in caplog.records if "2021-02-02-slow.md" in r.getMessage()]


def test_a_renamed_post_moves_to_its_new_url(live: Live) -> None:
    old = live.root / "_posts" / "2021-01-03-third.md"
    assert live.client.get("/tech/2021/01/03/third.html").status_code == 200
    old.rename(old.with_name("2021-01-03-third-renamed.md"))

    def moved() -> bool:
        links = [e.link for e in feed_entries(live.client, "/category/tech.atom").values()]
        return links == ["https://live.example/tech/2021/01/03/third-renamed.html"]

    wait_until(moved, "the new permalink in /category/tech.atom")
    assert live.client.get("/tech/2021/01/03/third.html").status_code == 404
    assert live.client.get("/tech/2021/01/03/third-renamed.html").status_code == 200
    assert sorted(titles(live.client)) == ["Abroad", "First", "Second", "Third"]


def test_a_deleted_post_leaves_every_feed_and_its_page(live: Live) -> None:
    (live.root / "_posts" / "2021-01-03-third.md").unlink()
    wait_until(lambda: "Third" not in titles(live.client), "the post to go")
    assert live.client.get("/tech/2021/01/03/third.html").status_code == 404
    assert live.client.get("/category/tech.atom").status_code == 404  # now empty
    assert titles(live.client, "/tag/a.atom") == {"First"}
    assert live.service.health()["posts"] == 3


def test_a_folder_removed_and_one_moved_in(live: Live, tmp_path: Path) -> None:
    shutil.rmtree(live.root / "world")
    wait_until(lambda: "Abroad" not in titles(live.client), "the folder's post to go")
    assert live.client.get("/tag/travel.atom").status_code == 404
    assert live.client.get("/world/2021/01/04/abroad.html").status_code == 404

    staging = write_site(tmp_path / "staging", {
        f"_posts/2021-05-{day:02d}-moved-{day}.md": post_text(f"Moved {day}", f"2021-05-{day:02d}")
        for day in range(1, 6)}, config=None)
    shutil.move(str(staging), str(live.root / "travel"))
    wanted = {f"Moved {day}" for day in range(1, 6)}
    wait_until(lambda: wanted <= titles(live.client), "the posts of the moved-in folder")
    assert titles(live.client, "/category/travel.atom") == wanted


def test_config_edits_apply_and_reread_posts_only_when_they_must(live: Live) -> None:
    posts = live.posts()
    before = live.parses
    save_atomically(live.root / "_config.yml", CONFIG.replace("title: Live", "title: Renamed"))

    def feed_title() -> str:
        return str(feedparser.parse(live.client.get("/feed.atom").data).feed.title)

    wait_until(lambda: feed_title() == "Renamed", "the new site title")
    assert live.parses == before  # the title shapes no post: nothing read again
    assert all(live.posts()[rel] is post for rel, post in posts.items())

    # A time zone shapes every post's URL: every post is read again.
    save_atomically(live.root / "_config.yml", CONFIG.replace("UTC", "Pacific/Kiritimati"))
    wait_until(lambda: live.client.get("/news/2021/01/01/first.html").status_code == 404,
               "the URLs of the new time zone")
    assert live.parses == before + len(posts)
    # 10:00 UTC is 00:00 the next day at +14:00.
    assert live.client.get("/news/2021/01/02/first.html").status_code == 200


def test_an_edited_authors_file_applies_without_reading_posts(
        live_factory: Callable[..., Live]) -> None:
    live = live_factory({"_posts/2021-01-01-by-key.md": post_text(
        "By key", "2021-01-01 10:00:00", extra="author: jdoe\n")})
    before = live.parses

    def author() -> str:
        return str(feedparser.parse(live.client.get("/feed.atom").data).entries[0].author)

    assert author() == "jdoe"  # no _data/authors.yml: the key is the name
    (live.root / "_data").mkdir()
    save_atomically(live.root / "_data" / "authors.yml", "jdoe:\n  name: Jane Doe\n")
    wait_until(lambda: author() == "Jane Doe", "the author of _data/authors.yml")
    save_atomically(live.root / "_data" / "authors.yml", "jdoe:\n  name: Jane Roe\n")
    wait_until(lambda: author() == "Jane Roe", "the edited author")
    assert live.parses == before  # authors shape no post: nothing read again


def test_an_authors_file_no_event_named_is_found_by_the_scan(
        live_factory: Callable[..., Live], monkeypatch: pytest.MonkeyPatch) -> None:
    """A folder made and a file saved into it before inotify watches the folder: no event
    names the file (CI saw this), and only the scan can find it."""
    import watchdog.observers

    monkeypatch.setattr(watchdog.observers, "Observer", NoInotify)
    live = live_factory({"_posts/2021-01-01-by-key.md": post_text(
        "By key", "2021-01-01 10:00:00", extra="author: jdoe\n")}, reload_interval=0.3)
    assert live.service.health()["watch"] == "poll"

    def author() -> str:
        return str(feedparser.parse(live.client.get("/feed.atom").data).entries[0].author)

    (live.root / "_data").mkdir()
    save_atomically(live.root / "_data" / "authors.yml", "jdoe:\n  name: Jane Doe\n")
    wait_until(lambda: author() == "Jane Doe", "the authors file, found by the scan")
    (live.root / "_data" / "authors.yml").unlink()
    wait_until(lambda: author() == "jdoe", "the authors file gone, found by the scan")


@pytest.mark.parametrize("watching", ["inotify", "poll"])
def test_an_edit_of_data_or_an_include_re_renders_the_bodies_that_use_them(
        live_factory: Callable[..., Live], monkeypatch: pytest.MonkeyPatch,
        watching: str) -> None:
    """site.data and {% include %} are read by bodies, not by the index: an edit of
    _data/ or _includes/ alone must still reach every body that reads them (before, it
    showed only after the next post edit), and no post is read again for it."""
    if watching == "poll":
        import watchdog.observers

        monkeypatch.setattr(watchdog.observers, "Observer", NoInotify)
    live = live_factory({
        "_posts/2021-01-01-team.md": post_text(
            "Team", "2021-01-01 10:00:00",
            body="Lead: {{ site.data.team.lead }}. {% include sign.html %}"),
        "_posts/2021-01-02-plain.md": post_text("Plain", "2021-01-02 10:00:00"),
        "_data/team.yml": "lead: Ann\n",
        "_includes/sign.html": "<em>Signed, the desk</em>",
    }, reload_interval=0.3)
    assert live.service.health()["watch"] == watching
    before = live.parses

    def body() -> str:
        entries = feed_entries(live.client, "/feed.atom")
        return str(entries["Team"].content[0].value)

    def etag() -> str:
        return str(live.client.get("/feed.atom").headers["ETag"])

    assert "Lead: Ann." in body() and "Signed, the desk" in body()
    first = etag()
    save_atomically(live.root / "_data" / "team.yml", "lead: Bob\n")
    wait_until(lambda: "Lead: Bob." in body(), "the edited _data/team.yml in the body")
    assert etag() != first
    revalidated = live.client.get("/feed.atom", headers={"If-None-Match": first})
    assert revalidated.status_code == 200  # the old version is not 'not modified'
    (live.root / "_data" / "team.yml").unlink()
    wait_until(lambda: "Lead: ." in body(), "_data/team.yml gone: site.data.team empty")
    save_atomically(live.root / "_includes" / "sign.html", "<em>Yours, the desk</em>")
    wait_until(lambda: "Yours, the desk" in body(), "the edited include in the body")
    (live.root / "_data" / "more").mkdir()
    (live.root / "_data" / "more" / "x.json").write_text('{"y": 1}', "utf-8")
    version = live.version()
    wait_until(lambda: live.version() > version, "a new file in a new _data folder")
    assert "Lead: ." in body()
    assert live.parses == before  # no post file was read again


@pytest.mark.parametrize("watching", ["inotify", "poll"])
def test_a_collections_documents_are_followed_like_posts(
        live_factory: Callable[..., Live], monkeypatch: pytest.MonkeyPatch,
        watching: str) -> None:
    if watching == "poll":
        import watchdog.observers

        monkeypatch.setattr(watchdog.observers, "Observer", NoInotify)
    config = CONFIG + ("collections:\n  recipes:\n    output: true\n"
                       "feed:\n  collections: [recipes]\n")
    live = live_factory({
        "_posts/2021-01-01-post.md": post_text("Post", "2021-01-01 10:00:00"),
        "_recipes/soup.md": post_text("Soup", "2021-02-01 10:00:00"),
    }, config=config, reload_interval=0.3)
    assert live.service.health()["watch"] == watching
    assert titles(live.client, "/feed/recipes.xml") == {"Soup"}
    save_atomically(live.root / "_recipes" / "soup.md",
                    post_text("Soup, edited", "2021-02-01 10:00:00"))
    wait_until(lambda: titles(live.client, "/feed/recipes.xml") == {"Soup, edited"},
               "the edited document")
    (live.root / "_recipes" / "stew").mkdir()
    (live.root / "_recipes" / "stew" / "beef.md").write_text(
        post_text("Beef", "2021-03-01 10:00:00"), "utf-8")
    wait_until(lambda: titles(live.client, "/feed/recipes.xml") == {"Soup, edited", "Beef"},
               "a document in a new folder of the collection")
    (live.root / "_recipes" / "soup.md").unlink()
    wait_until(lambda: titles(live.client, "/feed/recipes.xml") == {"Beef"},
               "the removed document gone")
    assert titles(live.client) == {"Post"}  # the site feed stays the posts'


def test_a_moved_feed_path_answers_at_once(live: Live) -> None:
    assert live.client.get("/atom.xml").status_code == 404
    save_atomically(live.root / "_config.yml", CONFIG + "feed:\n  path: /atom.xml\n")
    wait_until(lambda: live.client.get("/atom.xml").status_code == 200, "the new feed.path")
    assert live.client.get("/atom.xml").data == live.client.get("/feed.xml").data
    save_atomically(live.root / "_config.yml", CONFIG)
    wait_until(lambda: live.client.get("/atom.xml").status_code == 404, "feed.path gone")


def test_only_changed_files_are_read_again(live_factory: Callable[..., Live]) -> None:
    posts = {f"_posts/2020-03-{n % 28 + 1:02d}-post-{n}.md":
             post_text(f"Post {n}", f"2020-03-{n % 28 + 1:02d}", f"[c{n % 3}]", f"[t{n % 5}]")
             for n in range(60)}
    posts["README.md"] = "No front matter and outside _posts: not a post.\n"
    live = live_factory(posts)
    assert live.parses == 60
    kept = live.posts()
    for n in (7, 21, 42):
        save_atomically(live.root / f"_posts/2020-03-{n % 28 + 1:02d}-post-{n}.md",
                        post_text(f"Post {n} v2", f"2020-03-{n % 28 + 1:02d}", "[c0]"))
    # Files that are not posts change too: none of them is parsed.
    (live.root / "README.md").write_text("Still no front matter.\n")
    (live.root / ".git").mkdir()
    (live.root / ".git" / "HEAD.md").write_text(post_text("Git internals", "2020-01-01"))
    (live.root / "_drafts").mkdir()
    (live.root / "_drafts" / "2020-01-01-draft.md").write_text(post_text("Draft", "2020-01-01"))
    changed = {"Post 7 v2", "Post 21 v2", "Post 42 v2"}
    wait_until(lambda: changed <= titles(live.client), "the three edits")
    save_atomically(live.root / "_posts" / "2020-04-01-last.md", post_text("Last", "2020-04-01"))
    wait_until(lambda: "Last" in titles(live.client), "a last post, after the noise")
    assert live.parses == 60 + 3 + 1
    now = live.posts()
    same = [rel for rel in kept if "post-7." not in rel and "post-21." not in rel
            and "post-42." not in rel]
    assert len(same) == 57
    assert all(now[rel] is kept[rel] for rel in same)
    assert "Draft" not in titles(live.client) and "Git internals" not in titles(live.client)


def git(root: Path, *args: str) -> None:
    subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@example.org",
                    "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main", *args],
                   cwd=root, check=True, capture_output=True, timeout=120)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_a_git_checkout_of_hundreds_of_files(live_factory: Callable[..., Live]) -> None:
    def post(n: int, title: str) -> str:
        return post_text(title, f"2019-{n % 12 + 1:02d}-{n % 28 + 1:02d} 08:00:00", f"[c{n % 6}]")

    def name(n: int) -> str:
        return f"_posts/2019-{n % 12 + 1:02d}-{n % 28 + 1:02d}-post-{n}.md"

    live = live_factory({name(n): post(n, f"Post {n}") for n in range(300)})
    git(live.root, "init", "-q")
    git(live.root, "add", "-A")
    git(live.root, "commit", "-q", "-m", "three hundred posts")
    git(live.root, "checkout", "-q", "-b", "rewrite")
    for n in range(100):  # 100 deleted, 100 edited, 100 kept, 150 added
        (live.root / name(n)).unlink()
    for n in range(100, 200):
        (live.root / name(n)).write_text(post(n, f"Post {n} rewritten"), "utf-8")
    for n in range(300, 450):
        (live.root / name(n)).write_text(post(n, f"Post {n}"), "utf-8")
    git(live.root, "add", "-A")
    git(live.root, "commit", "-q", "-m", "rewrite")
    git(live.root, "checkout", "-q", "main")
    wait_until(lambda: live.service.health()["posts"] == 300 and
               "Post 100" in titles(live.client, "/category/c4.atom?limit=100"),
               "the main branch again")
    kept = {name(n): live.posts()[name(n)] for n in range(200, 300)}
    before = live.parses

    git(live.root, "checkout", "-q", "rewrite")
    expected = {f"c{k}": {f"Post {n}" + (" rewritten" if n < 200 else "")
                          for n in range(100, 450) if n % 6 == k} for k in range(6)}

    def checked_out() -> bool:
        return all(titles(live.client, f"/category/{c}.atom?limit=100") == want
                   for c, want in expected.items())

    wait_until(checked_out, "every category feed as the rewrite branch has it")
    assert live.service.health()["posts"] == 350
    assert live.service.health()["rejected"] == 0
    # The 100 files the checkout did not touch were not read again.
    now = live.posts()
    assert all(now[rel] is p for rel, p in kept.items())
    # 250 files were written; a file caught half-written is read again once it is whole
    # (on a loaded machine a fair share are: CI once saw 360). Every file read twice is
    # the bound; a whole reload would also have failed the identity check above.
    assert 250 <= live.parses - before <= 2 * 250


class NoInotify:
    """An observer that fails as inotify does when its watch limit is reached."""

    def schedule(self, *args: object, **kwargs: object) -> None:
        raise OSError(28, "inotify watch limit reached")


def test_polling_when_events_are_not_available(
        live_factory: Callable[..., Live], monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    import watchdog.observers

    monkeypatch.setattr(watchdog.observers, "Observer", NoInotify)
    caplog.set_level(logging.WARNING, "feeds.watch")
    live = live_factory(reload_interval=0.5)
    assert live.service.health()["watch"] == "poll"
    assert any("inotify watch limit reached" in r.getMessage() and "polling" in r.getMessage()
               for r in caplog.records)
    before = live.parses
    save_atomically(live.root / "_posts" / "2021-02-01-polled.md",
                    post_text("Polled", "2021-02-01"))
    save_atomically(live.root / "_posts" / "2021-01-01-first.md",
                    post_text("First, polled", "2021-01-01"))
    (live.root / "_posts" / "2021-01-02-second.md").unlink()
    wait_until(lambda: titles(live.client) == {"Polled", "First, polled", "Third", "Abroad"},
               "three changes found by polling")
    shutil.rmtree(live.root / "world")
    wait_until(lambda: "Abroad" not in titles(live.client), "a removed folder, polled")
    assert live.parses == before + 2


def test_the_content_folder_removed_and_put_back(live: Live, tmp_path: Path) -> None:
    aside = tmp_path / "aside"
    before = titles(live.client)
    live.root.rename(aside)
    # A missing folder is most likely an unmounted volume or a swap half done: the last
    # content is still served, and health says so (issue 15).
    # (For a moment the health may name only _config.yml, unreadable too: a scan finds
    # that before it finds the posts gone.)
    wait_until(lambda: "missing" in live.service.health()["problems"].get("content", ""),
               "a health that says the folder is missing")
    assert live.service.health()["status"] == "degraded"
    assert titles(live.client) == before
    write_site(live.root, {"_posts/2022-01-01-back.md": post_text("Back", "2022-01-01")},
               config=CONFIG)
    wait_until(lambda: titles(live.client) == {"Back"}, "the new folder's post")
    assert live.service.health()["watch"] == "inotify"
    (live.root / "_posts" / "2022-01-02-again.md").write_text(post_text("Again", "2022-01-02"))
    wait_until(lambda: titles(live.client) == {"Back", "Again"}, "events from the new folder")
    # The old folder, moved aside, is no longer followed.
    (aside / "_posts" / "2022-01-03-aside.md").write_text(post_text("Aside", "2022-01-03"))
    (live.root / "_posts" / "2022-01-04-marker.md").write_text(post_text("Marker", "2022-01-04"))
    wait_until(lambda: "Marker" in titles(live.client), "the marker post")
    assert "Aside" not in titles(live.client)


# --- requests and reloads ---------------------------------------------------------------


def test_requests_never_wait_for_a_reload_nor_see_half_of_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A reload held in the middle (one of its two files parsed, the other not yet):
    requests answer at once with the old content; then both changes show together."""
    import feeds.parsed

    root = write_site(tmp_path / "site", BASE_POSTS, config=CONFIG)
    app = create_app(make_settings(root), watch=False)
    service: FeedService = app.extensions["feeds"]
    client = app.test_client()
    try:
        parse = feeds.parsed.parse_post
        inside, release = threading.Event(), threading.Event()

        def held_parse(source: str, *args: Any, **kwargs: Any) -> Any:
            if source.endswith("second.md"):
                inside.set()
                assert release.wait(120), "the test never released the reload"
            return parse(source, *args, **kwargs)

        monkeypatch.setattr(feeds.parsed, "parse_post", held_parse)
        for rel, title in (("_posts/2021-01-01-first.md", "First v2"),
                           ("_posts/2021-01-02-second.md", "Second v2")):
            (root / rel).write_text(post_text(title, rel[7:17] + " 10:00:00", "[news]"))
        reload = threading.Thread(target=service.refresh)
        reload.start()
        try:
            assert inside.wait(120), "the reload never reached the second file"
            answers: list[set[str]] = []
            request = threading.Thread(target=lambda: answers.append(titles(client)))
            request.start()
            request.join(120)
            assert not request.is_alive(), "a request waited for the reload"
            assert answers == [{"First", "Second", "Third", "Abroad"}]
        finally:
            release.set()
            reload.join(120)
        assert titles(client) == {"First v2", "Second v2", "Third", "Abroad"}
    finally:
        service.stop()


def test_a_full_scan_still_runs_now_and_then_when_events_are_on(tmp_path: Path) -> None:
    """inotify can drop events (its queue overflows): the watcher scans anyway."""
    polls: list[float] = []
    scanned = threading.Event()

    def on_poll() -> None:
        polls.append(time.monotonic())
        if len(polls) >= 2:
            scanned.set()

    watcher = Watcher(str(tmp_path), 5.0, on_paths=lambda paths: None, on_poll=on_poll,
                      safety_interval=0.2)
    try:
        assert watcher.mode == "inotify"
        watcher.start()
        assert scanned.wait(60), "no full scan with events on"
    finally:
        watcher.stop()


def test_a_slow_full_scan_is_spaced_to_take_one_percent_of_the_time(tmp_path: Path) -> None:
    """At 100,000 posts a scan takes about half a second: with events on, the safety
    net runs at most 1% of the time, whatever safety_interval says."""
    polls: list[float] = []

    def on_poll() -> None:
        polls.append(time.monotonic())
        time.sleep(0.05)

    watcher = Watcher(str(tmp_path), 5.0, on_paths=lambda paths: None, on_poll=on_poll,
                      safety_interval=0.01)
    try:
        assert watcher.mode == "inotify"
        watcher.start()
        deadline = time.monotonic() + DEADLINE
        while not polls and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(1.5)  # with the 0.01 s asked for, a hundred scans would fit in here
    finally:
        watcher.stop()
    assert len(polls) == 1
    assert watcher._next_scan - polls[0] >= 0.05 / 0.01


def test_the_watcher_hands_over_changed_paths_and_survives_a_failing_reload(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    seen: list[set[str]] = []
    got = threading.Event()

    def on_paths(paths: set[str]) -> None:
        seen.append(paths)
        if len(seen) == 1:
            raise RuntimeError("a reload that fails")
        got.set()

    watcher = Watcher(str(tmp_path), 5.0, on_paths=on_paths, on_poll=lambda: None)
    try:
        watcher.start()
        (tmp_path / "a.md").write_text("x")
        deadline = time.monotonic() + DEADLINE
        while not seen and time.monotonic() < deadline:
            time.sleep(0.05)
        (tmp_path / "b.md").write_text("y")
        assert got.wait(DEADLINE), "the watcher stopped after a failing reload"
    finally:
        watcher.stop()
    assert str(tmp_path / "a.md") in seen[0]
    assert any(str(tmp_path / "b.md") in paths for paths in seen[1:])
    assert any("reload failed" in r.getMessage() for r in caplog.records)


def test_a_file_renamed_into_place_costs_no_look_through_every_known_post(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An editor's or a script's temporary file, renamed over a post, leaves an event for
    a path that is gone and was never a post. It can be a folder of posts only where the
    walk goes: a dot name never is, nor a path that no known file was below, so the store
    does not look through every path it knows for ones below it (15 ms a change at
    100,000 posts). A folder of posts removed still takes its posts with it."""
    from feeds.content import ContentStore

    posts = {f"_posts/sub/2022-03-{d:02d}-s{d}.md": post_text(f"S{d}", f"2022-03-{d:02d}")
             for d in range(1, 4)}
    root = write_site(tmp_path / "site", posts)
    store = ContentStore(make_settings(root))
    store.load(progress=False)
    looked: list[str] = []
    real = ContentStore._forget_below

    def counted(self: ContentStore, rel: str, *args: Any) -> bool:
        looked.append(rel)
        return real(self, rel, *args)

    monkeypatch.setattr(ContentStore, "_forget_below", counted)
    temporary = root / ".new-post.md.tmp"
    final = root / "_posts" / "2022-03-09-new.md"
    temporary.write_text(post_text("New", "2022-03-09"), encoding="utf-8")
    os.replace(temporary, final)
    snapshot = store.apply({str(temporary), str(final)})
    assert snapshot is not None and "_posts/2022-03-09-new.md" in snapshot.posts
    assert looked == []
    # vim's check that it may write in a folder: a file '4913' made and removed at once.
    probe = root / "_posts" / "4913"
    probe.write_bytes(b"")
    probe.unlink()
    assert store.apply({str(probe)}) is None
    assert looked == []  # no known file was ever below '_posts/4913'
    shutil.rmtree(root / "_posts" / "sub")
    snapshot = store.apply({str(root / "_posts" / "sub")})
    assert looked == ["_posts/sub"]
    assert snapshot is not None and set(snapshot.posts) == {"_posts/2022-03-09-new.md"}
