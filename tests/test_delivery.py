"""A reader never misses a change (issue 14, items 1 to 3), black-box over HTTP.

- Delta polling (RFC 3229 + feed): every kind of edit a reader can see, made without a
  new ``last_modified_at``, comes back as a 226 holding the edited entry, or a 200; never
  as a 304, which would tell the client it holds the current bytes.
- If-Modified-Since alone: an edit, a deletion, a back-dated post and a post moving
  between tags each move Last-Modified forward; a restart, or a second instance over the
  same files, gives the same date, never an earlier one.
- A post dated a few seconds ahead is in every feed and page, cached or not, within a
  second of its date; the content version and the ETags move, and a WebSub listener
  that fetches the feed when it is told sees the post.
- Over any sequence of such changes (Hypothesis): Last-Modified never goes back and moves
  with the bytes; a delta laid over what the client held gives the feed as it is now.
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import feedparser
import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from werkzeug.test import TestResponse

from feeds.site import State

from .conftest import LiveServer, post_text, set_mtimes, write_site
from .test_http import OLD, refresh, rewrite

TARGET = "_posts/2022-06-01-target.md"


def target_text(title: str = "Target 目标", body: str = "Body before.",
                tags: str = "[python]", extra: str = "description: Summary before.\n") -> str:
    return post_text(title, "2022-06-01 10:00:00 +0800", "[news]", tags, body=body,
                     extra=extra)


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """Three posts in tags 'python' and 'rust', every file and folder dated long before
    them, as a copy that keeps times leaves them."""
    root = write_site(tmp_path / "site", {
        TARGET: target_text(),
        "_posts/2022-05-01-older.md": post_text(
            "Elder 长者", "2022-05-01 10:00:00 +0800", "[news]", "[python, rust]", body="Elder."),
        "_posts/2022-04-01-oldest.md": post_text(
            "Oldest", "2022-04-01 10:00:00 +0800", "[news]", "[rust]", body="Oldest."),
    })
    set_mtimes(root, OLD)
    return root


def entries(data: bytes, fmt: str) -> list[dict[str, Any]]:
    """Each entry as a reader stores it: id, title, link, content, summary, terms."""
    if fmt == "json":
        return [{"id": i["id"], "title": i["title"], "link": i["url"],
                 "content": i.get("content_html", ""), "summary": i.get("summary", ""),
                 "terms": sorted(i.get("tags", []))} for i in json.loads(data)["items"]]
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.bozo_exception
    return [{"id": e.id, "title": e.title, "link": e.link,
             "content": e.content[0].value if "content" in e else "",
             "summary": e.get("summary", ""), "terms": sorted(t.term for t in e.get("tags", []))}
            for e in parsed.entries]


def last_modified(response: TestResponse | requests.Response) -> datetime:
    return parsedate_to_datetime(response.headers["Last-Modified"])


# --- delta polling -------------------------------------------------------------------------

EDITS: dict[str, tuple[str, Callable[[dict[str, Any]], bool]]] = {
    "title": (target_text(title="Target, retitled 改题"),
              lambda e: e["title"] == "Target, retitled 改题"),
    "body": (target_text(body="Body after the edit."),
             lambda e: "Body after the edit." in e["content"]),
    "summary": (target_text(extra="description: Summary after.\n"),
                lambda e: e["summary"] == "Summary after."),
    "categories": (target_text(tags="[python, 新标签]"), lambda e: "新标签" in e["terms"]),
    "permalink": (target_text(extra="description: Summary before.\npermalink: /moved/:title/\n"),
                  lambda e: e["link"].endswith("/moved/target/")),
}


@pytest.mark.parametrize("fmt", ["atom", "rss", "json"])
@pytest.mark.parametrize("edit", list(EDITS))
def test_every_edit_reaches_a_delta_client(make_app: Callable[..., Flask], site: Path,
                                           fmt: str, edit: str) -> None:
    app = make_app(site)
    client = app.test_client()
    path = f"/tag/python.{fmt}"
    held = client.get(path)
    text, shows_edit = EDITS[edit]
    rewrite(site / TARGET, text)
    refresh(app)
    now = client.get(path)
    assert now.headers["ETag"] != held.headers["ETag"]

    answer = client.get(path, headers={"A-IM": "feed", "If-None-Match": held.headers["ETag"]})
    assert answer.status_code in (200, 226), answer.status_code
    got = entries(answer.data, fmt)
    assert any(shows_edit(e) for e in got), got
    if answer.status_code == 226:  # only what changed: the others are left out
        assert {e["title"] for e in got} <= {"Target 目标", "Target, retitled 改题"}
    else:
        assert answer.data == now.data
    assert answer.headers["ETag"] == now.headers["ETag"]
    # Holding what it was given, the client is now told nothing changed.
    again = client.get(path, headers={"A-IM": "feed", "If-None-Match": now.headers["ETag"]})
    assert again.status_code == 304


# --- If-Modified-Since alone -----------------------------------------------------------------


def _edit(site: Path) -> tuple[str, bool]:
    rewrite(site / TARGET, target_text(title="Target, edited 已改"))
    return "Target, edited 已改", True


def _delete(site: Path) -> tuple[str, bool]:
    (site / "_posts/2022-05-01-older.md").unlink()
    return "Elder 长者", False


def _back_date(site: Path) -> tuple[str, bool]:
    (site / "_posts/2020-01-01-back-dated.md").write_text(post_text(
        "Back-dated 补记", "2020-01-01 10:00:00 +0800", "[news]", "[python, rust]"),
        encoding="utf-8")
    return "Back-dated 补记", True


def _move(site: Path) -> tuple[str, bool]:
    # 'Elder' leaves rust (and stays in python): the rust feed loses it, python changes.
    path = site / "_posts/2022-05-01-older.md"
    path.write_text(path.read_text("utf-8").replace("[python, rust]", "[python]"),
                    encoding="utf-8")
    return "Elder 长者", False


CHANGES: dict[str, Callable[[Path], tuple[str, bool]]] = {
    "edit": _edit, "deletion": _delete, "back-dated post": _back_date,
    "post moving between tags": _move,
}
"""Each change to the site, and what it says of a feed or page it changed: a post's
title, and whether it must be there (False: gone, except from the feeds and pages
MOVED_FROM leaves out)."""
MOVED_FROM = {"post moving between tags": ("/tag/rust.atom", "/tag/rust.html")}
UNCHANGED = {"edit": ("/tag/rust.atom", "/tag/rust.html")}
"""The feeds and pages a change leaves as they were (the edited post is not in rust)."""


@pytest.mark.parametrize("path", ["/tag/rust.atom", "/feed.rss", "/tag/python.json",
                                  "/tag/rust.html", "/"])
@pytest.mark.parametrize("change", list(CHANGES))
def test_if_modified_since_alone_sees_every_change(make_app: Callable[..., Flask], site: Path,
                                                  path: str, change: str) -> None:
    app = make_app(site)
    client = app.test_client()
    first = client.get(path)
    since = first.headers["Last-Modified"]
    assert client.get(path, headers={"If-Modified-Since": since}).status_code == 304
    title, present = CHANGES[change](site)
    if change in MOVED_FROM and path not in MOVED_FROM[change]:
        present = True
    refresh(app)
    if client.get(path).data == first.data:  # a feed this change leaves as it was
        unchanged = client.get(path, headers={"If-None-Match": first.headers["ETag"]})
        assert unchanged.status_code == 304
        assert path in UNCHANGED.get(change, ()), f"{change} changed nothing at {path}"
        return
    again = client.get(path, headers={"If-Modified-Since": since})
    assert again.status_code == 200
    assert last_modified(again) > last_modified(first)
    text = again.get_data(as_text=True)
    if path.endswith((".atom", ".rss", ".json")):
        titles = [e["title"] for e in entries(again.data, path.rsplit(".", 1)[1])]
        assert (title in titles) == present, titles
    else:
        assert (title in text) == present
    assert client.get(path, headers={"If-Modified-Since": again.headers["Last-Modified"]}
                      ).status_code == 304


def test_a_restart_or_a_second_instance_gives_the_same_date(
        make_app: Callable[..., Flask], site: Path, tmp_path: Path) -> None:
    paths = ["/feed.atom", "/tag/rust.rss", "/", "/tag/python.html"]
    first = make_app(site).test_client()
    dates = {p: first.get(p).headers["Last-Modified"] for p in paths}
    # The same files: a restarted instance, and one over a copy that keeps times.
    copy = Path(shutil.copytree(site, tmp_path / "copy"))
    for root in (site, copy):
        other = make_app(root).test_client()
        for p in paths:
            response = other.get(p, headers={"If-Modified-Since": dates[p]})
            assert response.status_code == 304, (root, p)
            assert response.headers["Last-Modified"] == dates[p]
    # After a change, a restart dates it as the running instance does: never earlier.
    app = make_app(site)
    _edit(site)
    refresh(app)
    running = {p: last_modified(app.test_client().get(p)) for p in paths}
    restarted = make_app(site).test_client()
    for p in paths:
        assert running[p] > parsedate_to_datetime(dates[p])
        assert last_modified(restarted.get(p)) == running[p]


def test_last_modified_never_goes_back_when_a_file_does(make_app: Callable[..., Flask],
                                                       site: Path) -> None:
    """A file put back with an older mtime (``cp -p`` of a backup) changes the bytes but
    moves no date forward: the service still dates the new bytes later than the old."""
    app = make_app(site)
    client = app.test_client()
    _edit(site)
    refresh(app)
    edited = client.get("/feed.atom")
    backup = site / TARGET
    backup.write_text(target_text(), encoding="utf-8")
    set_mtimes(site, OLD)
    refresh(app)
    restored = client.get("/feed.atom", headers={
        "If-Modified-Since": edited.headers["Last-Modified"]})
    assert restored.status_code == 200
    assert "Target 目标" in [e["title"] for e in entries(restored.data, "atom")]
    assert last_modified(restored) > last_modified(edited)


def test_if_modified_since_is_ignored_beside_if_none_match(make_app: Callable[..., Flask],
                                                           site: Path) -> None:
    client = make_app(site).test_client()
    full = client.get("/feed.atom")
    stale = client.get("/feed.atom", headers={
        "If-None-Match": '"another-version"', "If-Modified-Since": full.headers["Last-Modified"]})
    assert stale.status_code == 200 and stale.data == full.data


# --- scheduled posts -------------------------------------------------------------------------

AHEAD = 3.0
"""Seconds ahead of now that a scheduled post is dated."""
URLS = ["/feed.atom", "/feed.rss", "/tag/python.json", "/tag/python.html", "/", "/feed.atom"]
"""Feeds and pages the scheduled post joins (the site feed twice: the replay's copy)."""


def schedule(site: Path) -> datetime:
    """A post dated AHEAD seconds from now (whole seconds, as front matter writes them);
    its date."""
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=AHEAD + 1)
    (site / f"_posts/{due:%Y-%m-%d}-scheduled.md").write_text(post_text(
        "Scheduled 定时", due.strftime("%Y-%m-%d %H:%M:%S +0000"), "[news]", "[python]",
        body="Out on time."), encoding="utf-8")
    return due


def sleep_until(moment: datetime) -> None:
    time.sleep(max(0.0, moment.timestamp() - time.time()))


def shows_scheduled(body: bytes) -> bool:
    return "Scheduled 定时" in body.decode("utf-8")


def test_a_scheduled_post_is_everywhere_within_a_second(make_app: Callable[..., Flask],
                                                        site: Path) -> None:
    app = make_app(site)
    client: FlaskClient = app.test_client()
    due = schedule(site)
    refresh(app)
    before = {url: client.get(url) for url in URLS}  # cached, and replayed once
    version = client.get("/healthz").json["version"]  # type: ignore[index]
    assert datetime.now(UTC) < due, "too slow to see the post hidden"
    assert not any(shows_scheduled(r.data) for r in before.values())
    sleep_until(due + timedelta(seconds=1))
    # Revealed by the service itself, before any request asks for it.
    assert client.get("/healthz").json["version"] > version  # type: ignore[index]
    for url, old in before.items():
        now = client.get(url, headers={"If-None-Match": old.headers["ETag"]})
        assert now.status_code == 200, url
        assert shows_scheduled(now.data), url
        assert now.headers["ETag"] != old.headers["ETag"], url
        assert last_modified(now) >= due > last_modified(old), url


def test_a_scheduled_post_over_waitress_reaches_a_websub_listener(
        make_app: Callable[..., Flask], site: Path,
        live_server_factory: Callable[[Flask], LiveServer]) -> None:
    app = make_app(site)
    server = live_server_factory(app)
    told: list[tuple[float, bool]] = []
    done = threading.Event()

    def listener(_old: State | None, _new: State) -> None:
        # As a hub does when pinged: fetch the feed (on a thread of its own).
        def fetch() -> None:
            body = requests.get(server.url + "/feed.atom", timeout=30).content
            told.append((time.time(), shows_scheduled(body)))
            done.set()

        threading.Thread(target=fetch, daemon=True).start()

    app.extensions["feeds"].listeners.append(listener)
    due = schedule(site)
    refresh(app)
    assert done.wait(30)  # the new file is a new content version, the post still hidden
    done.clear()
    with requests.Session() as session:
        before = {url: session.get(server.url + url, timeout=30) for url in URLS}
        assert datetime.now(UTC) < due, "too slow to see the post hidden"
        assert not any(shows_scheduled(r.content) for r in before.values())
        assert told == [(told[0][0], False)]
        assert done.wait(AHEAD + 30)
        (when, saw), = told[1:]
        assert saw, "the listener was told before the post was served"
        assert when < due.timestamp() + 1.0
        for url, old in before.items():
            now = session.get(server.url + url, timeout=30,
                              headers={"If-None-Match": old.headers["ETag"]})
            assert now.status_code == 200 and shows_scheduled(now.content), url
            assert now.headers["ETag"] != old.headers["ETag"]


def test_a_post_dated_centuries_ahead_waits_quietly(make_app: Callable[..., Flask],
                                                    site: Path) -> None:
    # Past the longest wait a timer can take: the service still waits for it, and no
    # thread dies of it (pytest would report the thread's exception).
    (site / "_posts/3000-01-01-far.md").write_text(post_text(
        "Far ahead", "3000-01-01 00:00:00 +0000", "[news]", "[python]"), encoding="utf-8")
    app = make_app(site)
    client = app.test_client()
    time.sleep(0.3)
    assert client.get("/healthz").json["posts"] == 3  # type: ignore[index]
    assert "Far ahead" not in [e["title"] for e in entries(client.get("/feed.atom").data,
                                                          "atom")]


# --- the invariants, over any sequence of changes ------------------------------------------

STEPS = ["edit title", "edit body", "retag", "delete", "back-date", "touch", "restore old"]
WATCHED = ["/feed.atom", "/tag/rust.json", "/tag/python.rss", "/", "/tag/rust.html"]


def _step(root: Path, step: str, n: int) -> None:
    """One change of the kind ``step`` (the n-th change of the sequence)."""
    target = root / TARGET
    if step == "edit title":
        rewrite(target, target_text(title=f"Target v{n}"))
    elif step == "edit body":
        rewrite(target, target_text(body=f"Body v{n}."))
    elif step == "retag":
        rewrite(target, target_text(tags="[rust]" if n % 2 else "[python, rust]"))
    elif step == "delete":
        (root / "_posts/2022-05-01-older.md").unlink(missing_ok=True)
    elif step == "back-date":
        (root / f"_posts/2019-01-{n + 1:02d}-late.md").write_text(post_text(
            f"Late {n}", f"2019-01-{n + 1:02d} 10:00:00 +0800", "[news]", "[rust, python]"),
            encoding="utf-8")
    elif step == "touch":
        stamp = time.time() + 1  # saved again, unchanged
        os.utime(target, (stamp, stamp))
    else:  # a backup put back, with its old times (cp -p)
        target.write_text(target_text(), encoding="utf-8")
        set_mtimes(root, OLD)


def _by_id(data: bytes, fmt: str) -> dict[str, tuple[str, str, str]]:
    return {e["id"]: (e["title"], e["content"], e["link"]) for e in entries(data, fmt)}


@settings(max_examples=12, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps=st.lists(st.sampled_from(STEPS), min_size=1, max_size=5))
def test_any_sequence_of_changes_reaches_every_client(
        make_app: Callable[..., Flask], site: Path, tmp_path_factory: pytest.TempPathFactory,
        steps: list[str]) -> None:
    """After each change: Last-Modified never goes back and moves whenever the bytes
    change, so If-Modified-Since alone gets them; a delta client holding the version
    before gets a 304 only for the same bytes, and a 226 that, laid over what it held,
    gives every entry of the feed as it is now."""
    root = Path(shutil.copytree(site, tmp_path_factory.mktemp("steps") / "site"))
    app = make_app(root)
    client = app.test_client()
    held = {url: client.get(url) for url in WATCHED}
    for n, step in enumerate(steps):
        _step(root, step, n)
        refresh(app)
        for url, old in held.items():
            now = client.get(url)
            if now.status_code == 404 or old.status_code == 404:  # no post has the tag
                held[url] = now
                continue
            assert last_modified(now) >= last_modified(old), (step, url)
            since = client.get(url, headers={"If-Modified-Since": old.headers["Last-Modified"]})
            if now.data != old.data:
                assert last_modified(now) > last_modified(old), (step, url)
                assert since.status_code == 200 and since.data == now.data, (step, url)
            if url.endswith((".atom", ".json", ".rss")):
                fmt = url.rsplit(".", 1)[1]
                delta = client.get(url, headers={"A-IM": "feed",
                                                 "If-None-Match": old.headers["ETag"]})
                assert (delta.status_code == 304) == (now.data == old.data), (step, url)
                if delta.status_code == 226:
                    merged = {**_by_id(old.data, fmt), **_by_id(delta.data, fmt)}
                    current = _by_id(now.data, fmt)
                    assert {i: merged.get(i) for i in current} == current, (step, url)
                elif delta.status_code == 200:
                    assert delta.data == now.data
            held[url] = now
