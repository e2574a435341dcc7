"""A first pass over the whole path: every feed of the test site parses and validates."""

from __future__ import annotations

from pathlib import Path

import feedparser
from flask.testing import FlaskClient

from .conftest import validate_atom, validate_json_feed


def test_site_feeds_parse_and_validate(client: FlaskClient, tmp_path: Path) -> None:
    atom = client.get("/feed.atom")
    assert atom.status_code == 200
    validate_atom(atom.data, tmp_path)
    parsed = feedparser.parse(atom.data)
    assert not parsed.bozo
    assert [e.title for e in parsed.entries] == [
        "Folder post", "Third & <last>", "Second post", "热线二十年"]
    feed = validate_json_feed(client.get("/feed.json").data)
    assert len(feed["items"]) == 4
    rss = feedparser.parse(client.get("/feed.rss").data)
    assert not rss.bozo and len(rss.entries) == 4
