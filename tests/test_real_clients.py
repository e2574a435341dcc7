"""Real feed readers against the service as operators run it (``python app.py``, waitress
on loopback, the content folder watched): newsboat and lemon24/reader poll its Atom feed
while posts are added, edited and scheduled, and what each stored is read back from the
client itself. The access log says what the service answered each poll.

Each case is what a subscriber must get: nothing new and only 304s when nothing changed,
a new post as one new item, an edit as the same item changed, a scheduled post once it is
due. A client that sends only If-Modified-Since must see a back-dated post."""

from __future__ import annotations

import shutil
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import feedparser
import pytest
import requests

from .conftest import FIXTURES, post_text
from .feed_clients import CLIENTS, FeedClient, Item
from .service_process import Service, Services, wait_for
from .test_http import rewrite

FEED = "/feed.atom"
CHANGE_SECONDS = 60.0
"""Bound of the wait for the watched service to load a change (never reached when it works)."""
SCHEDULED_AHEAD = 8
"""Seconds ahead of now that a scheduled post is dated: past the first poll, soon due."""


@pytest.fixture
def site(tmp_path: Path) -> Path:
    return Path(shutil.copytree(FIXTURES / "clients-site", tmp_path / "site"))


@pytest.fixture
def service(tmp_path: Path, site: Path) -> Iterator[Service]:
    running = Services(tmp_path)
    try:
        yield running.start(site)
    finally:
        running.close()


@pytest.fixture
def make_client(tmp_path: Path, service: Service) -> Iterator[Callable[[str], FeedClient]]:
    made: list[FeedClient] = []

    def make(kind: str) -> FeedClient:
        made.append(CLIENTS[kind](tmp_path / kind, service.url + FEED))
        return made[-1]

    yield make
    for client in made:
        client.close()


# --- helpers -------------------------------------------------------------------------------


def health(service: Service) -> dict[str, Any]:
    found: dict[str, Any] = requests.get(service.url + "/healthz", timeout=30).json()
    return found


def version(service: Service) -> int:
    found: int = health(service)["version"]
    return found


def change(service: Service, site: Path, rel: str, text: str) -> None:
    """Save a post file as an editor does, and wait until the service has loaded a new
    content version."""
    before = version(service)
    rewrite(site / rel, text)
    wait_for(lambda: version(service) > before, CHANGE_SECONDS, f"the service to load {rel}")


def logged_up_to_here(service: Service) -> list[dict[str, str]]:
    """The access log up to a request made now: its line comes after every line of the
    requests answered before it (the log is written a moment after each answer)."""
    marker = f"/healthz?mark={len(service.access_lines())}"
    assert requests.get(service.url + marker, timeout=30).status_code == 200
    found: list[list[dict[str, str]]] = []

    def marked() -> bool:
        entries = service.access_log()
        if not any(e["uri"] == marker for e in entries):
            return False
        found.append(entries[:[e["uri"] for e in entries].index(marker)])
        return True

    wait_for(marked, CHANGE_SECONDS, "the access log to show a request")
    return found[0]


def poll(client: FeedClient, service: Service) -> list[str]:
    """One poll; the statuses the service answered the client's requests for the feed."""
    seen = len(logged_up_to_here(service))
    client.poll()
    statuses = [e["status"] for e in logged_up_to_here(service)[seen:]
                if e["agent"].startswith(client.agent) and e["uri"] == FEED]
    assert statuses, f"{client.name} made no request for {FEED}"
    return statuses


def served_titles(service: Service) -> dict[str, str]:
    """Entry id -> title in the feed a client without validators gets now. With no url
    in _config.yml the ids are paths (as jekyll-feed writes them): reader resolves them
    against the feed's URL, newsboat keeps them as written, so both spellings are here."""
    response = requests.get(service.url + FEED, timeout=30)
    found: dict[str, str] = {}
    for headers in ({}, {"content-location": service.url + FEED,
                         "content-type": response.headers["Content-Type"]}):
        parsed = feedparser.parse(response.content, response_headers=headers)
        assert not parsed.bozo, parsed.bozo_exception
        found.update({e.id: e.title for e in parsed.entries})
    return found


def by_id(items: list[Item]) -> dict[str, Item]:
    found = {item.id: item for item in items}
    assert len(found) == len(items), f"duplicate items: {items}"
    return found


def stamp(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M:%S +0000")


CLIENT_KINDS = list(CLIENTS)


# --- every client ---------------------------------------------------------------------------


def assert_quiet(client: FeedClient, service: Service, held: dict[str, Item]) -> None:
    """Nothing changed since the client's last poll: it gets only 304s, and keeps what
    it holds. After a change this says the client was left holding the current version
    (the ETag it was given moved with the change)."""
    statuses = poll(client, service)
    assert set(statuses) == {"304"}, statuses
    assert by_id(client.items()) == held


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_polling_with_nothing_changed_gives_only_304s(
        make_client: Callable[[str], FeedClient], service: Service, kind: str) -> None:
    client = make_client(kind)
    client.subscribe()
    held = by_id(client.items())
    assert sorted(i.title for i in held.values()) == sorted(set(served_titles(service).values()))
    assert len(held) == 3
    assert_quiet(client, service, held)
    assert_quiet(client, service, held)


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_a_new_post_is_exactly_one_new_item(
        make_client: Callable[[str], FeedClient], service: Service, site: Path,
        kind: str) -> None:
    client = make_client(kind)
    client.subscribe()
    before = by_id(client.items())
    now = datetime.now(UTC).replace(microsecond=0)
    change(service, site, f"_posts/{now:%Y-%m-%d}-fresh.md",
           post_text("A fresh post 新文章", stamp(now - timedelta(minutes=1)), "[news]",
                     "[python]", body="Fresh body text."))
    statuses = poll(client, service)
    after = by_id(client.items())
    new = [after[i] for i in after.keys() - before.keys()]
    assert [i.title for i in new] == ["A fresh post 新文章"], statuses
    assert "Fresh body text." in new[0].content
    assert {i: after[i] for i in before} == before  # the others untouched
    assert_quiet(client, service, after)


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_an_edited_title_and_body_reach_the_same_item(
        make_client: Callable[[str], FeedClient], service: Service, site: Path,
        kind: str) -> None:
    client = make_client(kind)
    client.subscribe()
    before = by_id(client.items())
    (newest,) = [i for i in before.values() if i.title == "Newest post"]
    change(service, site, "_posts/2024-05-20-newest-post.md",
           post_text("Newest post, edited 已修改", "2024-05-20 12:00:00 +0800", "[news]",
                     "[rust]", body="The body after the edit."))
    # The service serves the edit to a client without validators ...
    assert served_titles(service)[newest.id] == "Newest post, edited 已修改"
    # ... and the reader that held the old version must get it on its next poll.
    statuses = poll(client, service)
    after = by_id(client.items())
    assert after.keys() == before.keys(), statuses  # the same item, no duplicate
    edited = after[newest.id]
    assert edited.title == "Newest post, edited 已修改", statuses
    assert "The body after the edit." in edited.content, statuses
    assert "The newest post before" not in edited.content
    assert_quiet(client, service, after)


@pytest.mark.parametrize("kind", CLIENT_KINDS)
def test_a_scheduled_post_arrives_once_it_is_due(
        make_client: Callable[[str], FeedClient], service: Service, site: Path,
        kind: str) -> None:
    client = make_client(kind)
    client.subscribe()
    held = by_id(client.items())
    due = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=SCHEDULED_AHEAD)
    posts = health(service)["posts"]
    change(service, site, f"_posts/{due:%Y-%m-%d}-scheduled.md",
           post_text("Scheduled post 定时", stamp(due), "[news]", "[python]",
                     body="Out on time."))
    # Polled before it is due: the post is not there yet (and the feed is now cached).
    poll(client, service)
    assert by_id(client.items()) == held
    assert datetime.now(UTC) < due, "the poll took too long to see the post hidden"
    wait_for(lambda: health(service)["posts"] == posts + 1, SCHEDULED_AHEAD + CHANGE_SECONDS,
             "the service to count the scheduled post")
    statuses = poll(client, service)
    after = by_id(client.items())
    new = [after[i] for i in after.keys() - held.keys()]
    assert [i.title for i in new] == ["Scheduled post 定时"], statuses
    assert "Out on time." in new[0].content
    assert_quiet(client, service, after)


# --- If-Modified-Since only ----------------------------------------------------------------


def test_if_modified_since_alone_sees_a_back_dated_post(service: Service, site: Path) -> None:
    with requests.Session() as session:
        first = session.get(service.url + FEED, timeout=30)
        assert first.status_code == 200
        last_modified = first.headers["Last-Modified"]
        unchanged = session.get(service.url + FEED, timeout=30,
                                headers={"If-Modified-Since": last_modified})
        assert unchanged.status_code == 304  # nothing changed yet: the validator works
        change(service, site, "_posts/2024-04-20-back-dated.md",
               post_text("Back-dated post 补记", "2024-04-20 08:00:00 +0800", "[news]", "[]",
                         body="Written late, dated early."))
        again = session.get(service.url + FEED, timeout=30,
                            headers={"If-Modified-Since": last_modified})
        assert again.status_code == 200, (again.status_code, again.headers)
        parsed = feedparser.parse(again.content)
        assert not parsed.bozo
        assert "Back-dated post 补记" in [e.title for e in parsed.entries]
        assert again.headers["Last-Modified"] != last_modified
