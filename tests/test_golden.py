"""Golden test: the feeds of tests/golden/site as the real Jekyll 4.3.1 + jekyll-feed 0.17.0
wrote them (tests/golden/expected/, see tests/golden/README.md) against this service's
Atom feeds for the same folder (url https://example.org, baseurl /blog).

For expected/feed.xml, every expected/feed/<category>.xml and every
expected/feed/by_tag/<tag>.xml, our /feed.xml, /feed/<category>.xml and
/feed/by_tag/<tag>.xml must list the same entries in the same order, each with the same
id, alternate link, title, published and updated instants, categories and summary.

Deliberate differences, handled here on purpose:

- Instants, not strings: our feeds write each post's own offset (-05:00, Z), Jekyll writes
  every date in the site zone (+08:00). Datetimes are compared as instants.
- Titles: jekyll-feed escapes the smartified title once more than XML needs, so its text
  reads 'Q&amp;A ... 1 &lt; 2'; we compare with that text unescaped once.
- Tag feeds: jekyll-feed makes them only for tags matching [A-Za-z0-9_]+; we make one for
  every tag. Only the tag feeds Jekyll made are compared; the extra ones (a tag with a
  space, a hyphen or Chinese) are only checked to exist.
- Feed-level metadata: Jekyll's feed <updated> is the build time (site.time), its <id> is
  the .xml URL and its title reads 'Site | Category'. Ours are the newest entry's
  updated, the canonical .atom URL and 'Site · category'; they are not compared.
"""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from feeds import create_app
from feeds.site import name_to_segment

from .conftest import make_settings, validate_atom_many

A = "{http://www.w3.org/2005/Atom}"
GOLDEN = Path(__file__).resolve().parent / "golden"
EXPECTED = GOLDEN / "expected"


def parse(data: bytes) -> etree._Element:
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    assert root.tag == f"{A}feed"
    return root


def entries(root: etree._Element, *, jekyll: bool) -> list[dict[str, Any]]:
    out = []
    for entry in root.findall(f"{A}entry"):
        title = entry.findtext(f"{A}title") or ""
        out.append({
            "id": entry.findtext(f"{A}id"),
            "link": [link.get("href") for link in entry.findall(f"{A}link")
                     if link.get("rel", "alternate") == "alternate"],
            "title": html.unescape(title) if jekyll else title,
            "published": datetime.fromisoformat(entry.findtext(f"{A}published") or ""),
            "updated": datetime.fromisoformat(entry.findtext(f"{A}updated") or ""),
            "categories": [c.get("term") for c in entry.findall(f"{A}category")],
            "summary": entry.findtext(f"{A}summary"),
        })
    return out


def expected_feeds() -> dict[str, Path]:
    """Our URL -> Jekyll's file, for every feed Jekyll wrote."""
    feeds = {"/feed.xml": EXPECTED / "feed.xml"}
    for path in sorted((EXPECTED / "feed").glob("*.xml")):
        feeds[f"/feed/{name_to_segment(path.stem)}.xml"] = path
    for path in sorted((EXPECTED / "feed" / "by_tag").glob("*.xml")):
        feeds[f"/feed/by_tag/{name_to_segment(path.stem)}.xml"] = path
    return feeds


@pytest.fixture(scope="module")
def golden_app() -> Iterator[Flask]:
    application = create_app(make_settings(GOLDEN / "site"), watch=False)
    yield application
    application.extensions["feeds"].stop()


@pytest.fixture
def client(golden_app: Flask) -> FlaskClient:
    return golden_app.test_client()


def ours(client: FlaskClient, url: str) -> bytes:
    response = client.get(url)
    assert response.status_code == 200, url
    return response.data


def test_golden_files_are_all_here() -> None:
    feeds = expected_feeds()
    assert set(feeds) == {
        "/feed.xml", "/feed/news.xml", "/feed/Tech.xml", "/feed/Open%20Source.xml",
        "/feed/%E9%9A%8F%E7%AC%94.xml", "/feed/a.xml", "/feed/by_tag/alpha.xml",
        "/feed/by_tag/beta.xml", "/feed/by_tag/gamma.xml", "/feed/by_tag/Rust_Lang.xml",
    }
    assert len(entries(parse(feeds["/feed.xml"].read_bytes()), jekyll=True)) == 14


@pytest.mark.parametrize("url", sorted(expected_feeds()))
def test_same_entries_as_jekyll(client: FlaskClient, url: str) -> None:
    expected = entries(parse(expected_feeds()[url].read_bytes()), jekyll=True)
    got = entries(parse(ours(client, url)), jekyll=False)
    assert expected, url
    assert [e["id"] for e in got] == [e["id"] for e in expected]
    for mine, theirs in zip(got, expected, strict=True):
        assert mine["link"] == theirs["link"], theirs["id"]
        assert mine["title"] == theirs["title"], theirs["id"]
        assert mine["published"] == theirs["published"], theirs["id"]
        assert mine["updated"] == theirs["updated"], theirs["id"]
        assert mine["categories"] == theirs["categories"], theirs["id"]
        assert mine["summary"] == theirs["summary"], theirs["id"]


def test_the_quirks_the_golden_feeds_pin(client: FlaskClient) -> None:
    """Spelled out, so a failure of the comparison above reads as a rule."""
    got = {e["title"]: e for e in entries(parse(ours(client, "/feed.xml")), jekyll=False)}
    unquoted = got["Unquoted timestamp"]
    assert unquoted["published"].isoformat() == "2020-07-02T06:03:57+08:00"
    assert unquoted["link"] == [
        "https://example.org/blog/news/world/2020/07/02/unquoted-timestamp.html"]
    # Jekyll's post.id for a permalink ending in '/' drops its last segment.
    assert got["Custom permalink"]["id"] == "https://example.org/blog/notes/custom-permalink"
    assert got["Slug from front matter"]["id"] == (
        "https://example.org/blog/2023/05/20/Moving%20Day")
    assert got["Q&A: markup in a title, 1 < 2"]["categories"] == ["alpha"]
    assert "Not published" not in got and "Far future" not in got


def test_tag_feeds_jekyll_does_not_make_exist_here(client: FlaskClient) -> None:
    for name in ("two words", "multi-part", "红网新闻"):
        got = entries(parse(ours(client, f"/feed/by_tag/{name_to_segment(name)}.xml")),
                      jekyll=False)
        assert got and all(name in e["categories"] for e in got), name


def test_our_golden_feeds_pass_the_schema(client: FlaskClient, tmp_path: Path) -> None:
    validate_atom_many({url: ours(client, url) for url in expected_feeds()}, tmp_path)
