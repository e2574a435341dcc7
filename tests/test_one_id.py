"""One item, one id, in every format: a post's Atom id, RSS guid (not a permalink) and
JSON Feed id are the same string in the site's feeds and in every category and tag feed
it is in, so a reader that follows several of them shows it once. An author without an
email keeps the name in RSS, as Dublin Core's dc:creator. Over HTTP, parsed with
feedparser and lxml; the Atom documents checked against the RELAX NG schema."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import feedparser
import pytest
import requests
from flask import Flask
from lxml import etree

from feeds import create_app

from .conftest import (
    LiveServer,
    make_settings,
    post_text,
    validate_atom_many,
    validate_json_feed,
    write_site,
)

DC = "http://purl.org/dc/elements/1.1/"
CONFIG = """\
title: 同一篇 One Item
url: https://example.org
timezone: Asia/Shanghai
lang: zh-CN
author: 站长
"""
POSTS = {
    # The site's author (a name only).
    "_posts/2022-03-01-plain.md": post_text("没有作者字段", "2022-03-01 09:00:00 +0800",
                                            "[news]", "[城市]"),
    # A name only, in the post.
    "_posts/2022-03-02-named.md": post_text(
        "Named author", "2022-03-02 09:00:00 +0800", "[news]", "[城市, python]",
        extra="author: 林小满\n"),
    # A name and an email.
    "_posts/2022-03-03-mailed.md": post_text(
        "Mailed author", "2022-03-03 09:00:00 +0800", "[tech]", "[python]",
        extra="author:\n  name: Ada\n  email: ada@example.org\n"),
    # A permalink that is not the id's shape: the id stays Jekyll's post.id.
    "_posts/2022-03-04-pretty.md": post_text(
        "Pretty permalink", "2022-03-04 09:00:00 +0800", "[tech]", "[城市]",
        extra="permalink: /about/pretty/\n"),
}
# Each post's feeds: the site's and those of its categories and tags, in every format.
FEEDS = ["/feed", "/category/news", "/category/tech", "/tag/%E5%9F%8E%E5%B8%82",
         "/tag/python"]


@pytest.fixture
def server(tmp_path: Path,
           live_server_factory: Callable[..., LiveServer]) -> Iterator[LiveServer]:
    app: Flask = create_app(make_settings(write_site(tmp_path / "site", POSTS, CONFIG)),
                            watch=False)
    try:
        yield live_server_factory(app)
    finally:
        app.extensions["feeds"].stop()


def fetch(server: LiveServer, path: str) -> bytes:
    response = requests.get(server.url + path, timeout=60)
    assert response.status_code == 200, path
    return response.content


def test_a_post_has_one_id_in_every_format_and_feed(server: LiveServer,
                                                    tmp_path: Path) -> None:
    ids: dict[str, set[str]] = {}  # link -> every id any feed gave it
    seen_in: dict[str, set[str]] = {}
    atoms: dict[str, bytes] = {}
    for stem in FEEDS:
        atom = fetch(server, stem + ".atom")
        atoms[stem] = atom
        rss = fetch(server, stem + ".rss")
        feed_json = validate_json_feed(fetch(server, stem + ".json"))
        by_format = {
            "atom": {e.link: e.id for e in feedparser.parse(atom).entries},
            "rss": {e.link: e.id for e in feedparser.parse(rss).entries},
            "json": {i["url"]: i["id"] for i in feed_json["items"]},
        }
        assert by_format["atom"], stem
        assert by_format["atom"] == by_format["rss"] == by_format["json"], stem
        for link, entry_id in by_format["atom"].items():
            ids.setdefault(link, set()).add(entry_id)
            seen_in.setdefault(link, set()).add(stem)
        # lxml: every guid says it is not a permalink, and is not the link.
        for item in etree.fromstring(rss).iter("item"):
            guid = item.find("guid")
            assert guid is not None and guid.get("isPermaLink") == "false"
            assert guid.text != item.findtext("link")
    validate_atom_many(atoms, tmp_path)

    assert len(ids) == len(POSTS)
    for link, found in ids.items():
        assert len(found) == 1, (link, found)
        # Jekyll's post.id: the permalink's folder and slug, no extension.
        (entry_id,) = found
        assert entry_id.startswith("https://example.org/") and not entry_id.endswith(".html")
    pretty = "https://example.org/about/pretty/"
    assert ids[pretty] != {pretty}
    # The same post really was in several feeds.
    assert seen_in[pretty] == {"/feed", "/category/tech", "/tag/%E5%9F%8E%E5%B8%82"}


def test_rss_keeps_an_author_without_an_email_as_dc_creator(server: LiveServer) -> None:
    rss = fetch(server, "/feed.rss")
    items = {item.findtext("title"): item for item in etree.fromstring(rss).iter("item")}
    expected = {"没有作者字段": "站长", "Named author": "林小满", "Pretty permalink": "站长"}
    for title, name in expected.items():
        item = items[title]
        assert [c.text for c in item.iterfind(f"{{{DC}}}creator")] == [name], title
        assert item.find("author") is None, title  # RSS's <author> is an email address
    mailed = items["Mailed author"]
    assert mailed.findtext("author") == "ada@example.org (Ada)"
    assert mailed.find(f"{{{DC}}}creator") is None
    # Readers see the names.
    authors = {e.title: e.get("author") for e in feedparser.parse(rss).entries}
    assert authors["Named author"] == "林小满"
    assert authors["没有作者字段"] == "站长"
    # Atom is as it was: <author><name> (and email), never a Dublin Core element.
    atom = etree.fromstring(fetch(server, "/feed.atom"))
    assert not list(atom.iter(f"{{{DC}}}creator"))
    names = [e.text for e in atom.iterfind(
        "{http://www.w3.org/2005/Atom}entry/{http://www.w3.org/2005/Atom}author/"
        "{http://www.w3.org/2005/Atom}name")]
    assert sorted(names) == sorted(["站长", "林小满", "Ada", "站长"])
