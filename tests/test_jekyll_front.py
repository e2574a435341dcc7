"""Front matter, dates, entry ids and links against the real Jekyll: each case is one post
of a fixture site that ``jekyll build`` (Debian's jekyll 4.3 + jekyll-feed 0.17) and this
service both publish; their feed.xml entries are compared field by field (tests/jekyll.py).

A site that moves here must lose no post Jekyll publishes, show none it hides, and keep
every entry's id and link, whatever URL the service itself is reached at.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from lxml import etree

from feeds import cli
from feeds.config import ConfigError
from tests.conftest import make_settings
from tests.jekyll import A, Built, atom_entries, jekyll_site, needs_jekyll

pytestmark = needs_jekyll

NEW_YORK = """\
title: Front
url: https://example.com
baseurl: /blog
timezone: America/New_York
plugins: [jekyll-feed]
feed:
  posts_limit: 100
"""


def post(title: str, *lines: str) -> str:
    return "---\n" + "".join(f"{line}\n" for line in (f"title: {title}", *lines)) + "---\nBody.\n"


# case name -> (file below _posts/, its text). One post a case, named for it.
CASES: dict[str, tuple[str, str]] = {
    "image-mapping": ("2021-01-01-image-mapping.md",
                      post("Image mapping", "image: {path: uploads/59.jpg}")),
    "tags-number": ("2021-01-02-tags-number.md", post("Tags number", "tags: 42")),
    "tags-nested": ("2021-01-03-tags-nested.md",
                    post("Tags nested", "tags: [a, [b, [c, null]], 7, true, {d: e}]")),
    "category-number": ("2021-01-04-category-number.md",
                        post("Category number", "category: 7")),
    "author-twitter": ("2021-01-05-author-twitter.md",
                       post("Author twitter", "author: {twitter: benbalter}")),
    "author-login": ("2021-01-06-author-login.md",
                     post("Author login", "author: {display_name: Jane D, login: jane, "
                          "email: jane@example.com}")),
    "no-front-matter": ("2021-01-07-no-front-matter.md", "Just text, no front matter.\n"),
    "published-string-false": ("2021-01-08-published-string-false.md",
                               post("Published string false", 'published: "false"')),
    "published-empty": ("2021-01-09-published-empty.md",
                        post("Published empty", "published:")),
    "published-false": ("2021-01-10-published-false.md",
                        post("Published false", "published: false")),
    "published-zero": ("2021-01-11-published-zero.md", post("Published zero", "published: 0")),
    "date-pm": ("2021-01-12-date-pm.md", post("Date PM", 'date: "2021-10-01 10:00 PM"')),
    "date-slashes": ("2021-01-13-date-slashes.md",
                     post("Date slashes", 'date: "2021/10/03 10:00:00"')),
    "date-words": ("2021-01-14-date-words.md", post("Date words", 'date: "October 4, 2021"')),
    "date-rfc2822": ("2021-01-15-date-rfc2822.md",
                     post("Date RFC 2822", 'date: "Tue, 05 Oct 2021 10:00:00 +0200"')),
    "date-zone-abbreviation": ("2021-01-16-date-zone-abbreviation.md",
                               post("Date zone", 'date: "2021-10-06 22:30:00 PST"')),
    "date-unknown-zone-word": ("2021-01-17-date-unknown-zone-word.md",
                               post("Date CEST", 'date: "2021-10-07 10:00:00 CEST"')),
    "date-dst-ambiguous": ("2021-01-18-date-dst-ambiguous.md",
                           post("Date DST ambiguous", 'date: "2021-11-07 01:30"')),
    "date-dst-gap": ("2021-01-19-date-dst-gap.md",
                     post("Date DST gap", 'date: "2021-03-14 02:30"')),
    "date-day-month-year": ("2021-01-20-date-day-month-year.md",
                            post("Date dmy", 'date: "04/10/2021"')),
    "front-matter-id": ("2021-01-21-front-matter-id.md",
                        post("Front matter id", "id: urn:custom:1")),
    "front-matter-guid": ("2021-01-22-front-matter-guid.md",
                          post("Front matter guid", "guid: tag:example.com,2021:x")),
    "permalink-pretty": ("2021-01-23-permalink-pretty.md",
                         post("Permalink pretty", "permalink: pretty")),
    "text-post": ("2021-01-24-text-post.txt", post("Text post")),
    "htm-post": ("2021-01-25-htm-post.htm", post("Htm post")),
    "folder-categories": ("2021-01-26-folder-categories.md",
                          post("Folder categories", "categories: [News, b]")),
    "front-matter-unclosed": ("2021-01-27-front-matter-unclosed.md",
                              "---\ntitle: Never closed\nBody.\n"),
    "empty-file": ("2021-01-28-empty-file.md", ""),
    "front-matter-empty": ("2021-01-29-front-matter-empty.md", "---\n---\nBody.\n"),
}
# Cases whose ids and links are compared, not their <category> terms: jekyll-feed writes
# the raw 'category' value alone when there is one, where this service writes every
# category (and Ruby's text of a list: '["p", "q"]').
URL_CASES: dict[str, tuple[str, str]] = {
    "category-and-categories": ("2021-02-01-category-and-categories.md",
                                post("Category and categories", "category: a",
                                     "categories: [b, c]")),
    "category-list": ("2021-02-02-category-list.md", post("Category list", "category: [p, q]")),
    "categories-string-in-folder": ("2021-02-03-categories-string-in-folder.md",
                                    post("Categories string", "category: A",
                                         "categories: b a", "tag: solo", "tags: t1 t2")),
}
URL_CASES |= {
    # 2021-01-03 is a Sunday of ISO week 53 of 2020.
    "permalink-iso-week": ("2021-01-03-permalink-iso-week.md", post(
        "Permalink ISO week", "permalink: /:w_year/:week/:w_day/:title.html")),
    "permalink-slugified-categories": ("2021-02-04-permalink-slugified-categories.md", post(
        "Permalink slugified categories", "categories: [Two Words, 中文, two words, A.B]",
        "permalink: /:slugified_categories/:title.html")),
}
FOLDERED = {"folder-categories": "Area/_posts", "categories-string-in-folder": "x/_posts"}


def site_files(config: str,
               cases: dict[str, tuple[str, str]] = CASES | URL_CASES) -> dict[str, str]:
    files = {"_config.yml": config}
    for case, (name, text) in cases.items():
        files[f"{FOLDERED.get(case, '_posts')}/{name}"] = text
    return files


@pytest.fixture(scope="module")
def new_york(tmp_path_factory: pytest.TempPathFactory) -> Built:
    return jekyll_site(tmp_path_factory.mktemp("jekyll") / "ny", site_files(NEW_YORK))


def by_link(entries: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {entry["link"][0].rsplit("/", 1)[-1].split(".")[0]: entry for entry in entries}


def slug_of(case: str) -> str:
    name = (CASES | URL_CASES)[case][0]
    return name[11:].rsplit(".", 1)[0]


def ours(app: Flask, path: str = "/feed.xml", **request: Any) -> list[dict[str, Any]]:
    response = app.test_client().get(path, **request)
    assert response.status_code == 200, path
    return atom_entries(response.data)


ADDRESS = ("id", "link", "published", "updated")


def jekyll_view(entry: dict[str, Any]) -> dict[str, Any]:
    """What of an entry this file compares. Deliberate difference: a mapping among the
    tags is ignored here, where jekyll-feed writes Ruby's text of it ('{"d"=>"e"}')."""
    view = {key: entry[key] for key in (*ADDRESS, "title")}
    view["categories"] = [c for c in entry["categories"] if not c.startswith("{")]
    return view


@pytest.mark.parametrize("case", list(CASES))
def test_post_is_published_as_jekyll_publishes_it(case: str, new_york: Built,
                                                  make_app: Callable[..., Flask]) -> None:
    theirs = by_link(atom_entries(new_york.read("feed.xml")))
    mine = by_link(ours(make_app(new_york.source)))
    # Per-post permalink 'pretty' is the literal path /pretty: found by that name.
    key = "pretty" if case == "permalink-pretty" else slug_of(case)
    assert (key in mine) == (key in theirs), case
    if key in theirs:
        assert jekyll_view(mine[key]) == jekyll_view(theirs[key])


@pytest.mark.parametrize("case", list(URL_CASES))
def test_categories_in_the_url_as_jekyll_makes_them(case: str, new_york: Built,
                                                    make_app: Callable[..., Flask]) -> None:
    theirs = by_link(atom_entries(new_york.read("feed.xml")))[slug_of(case)]
    mine = by_link(ours(make_app(new_york.source)))[slug_of(case)]
    assert {k: mine[k] for k in ADDRESS} == {k: theirs[k] for k in ADDRESS}


def test_hidden_and_shown_posts_are_jekylls(new_york: Built,
                                            make_app: Callable[..., Flask]) -> None:
    theirs = {e["id"] for e in atom_entries(new_york.read("feed.xml"))}
    mine = {e["id"] for e in ours(make_app(new_york.source))}
    assert mine == theirs
    hidden = {f"https://example.com/blog/2021/01/{n}" for n in
              ("09/published-empty", "10/published-false")}
    assert not hidden & mine
    assert "https://example.com/blog/2021/01/08/published-string-false" in mine


def test_author_mappings_without_name_keep_the_post(new_york: Built,
                                                    make_app: Callable[..., Flask]) -> None:
    """jekyll-feed writes a nameless author mapping as Ruby's text of it; here the
    mapping's display_name or login names the author, or the site's author stands."""
    mine = by_link(ours(make_app(new_york.source)))
    theirs = by_link(atom_entries(new_york.read("feed.xml")))
    assert mine["author-login"]["author"]["name"] == "Jane D"
    assert mine["author-login"]["author"]["email"] == theirs["author-login"]["author"]["email"]
    assert "author-twitter" in mine


def test_feeds_check_warns_once_per_ignored_value_and_exits_0(
        new_york: Built, capsys: pytest.CaptureFixture[str]) -> None:
    status = cli.check(make_settings(new_york.source))
    lines = capsys.readouterr().out.splitlines()
    assert status == 0
    problems = {line.split(": ", 1)[0]: line.split(": ", 1)[1] for line in lines
                if line.startswith("_posts/")}
    for case, key in (("tags-number", "tags"), ("tags-nested", "tags"),
                      ("author-twitter", "author")):
        message = problems[f"_posts/{CASES[case][0]}"]
        assert message.startswith("warning: ") and f"'{key}'" in message, message
    assert f"_posts/{CASES['image-mapping'][0]}" not in problems


# --- ids and links: url + baseurl, whatever the service's own URL ------------------------


def addresses(entries: list[dict[str, Any]]) -> dict[str, tuple[Any, ...]]:
    return {e["title"]: (e["id"], e["link"]) for e in entries}


def test_base_url_never_moves_an_entry(new_york: Built, make_app: Callable[..., Flask]) -> None:
    theirs = addresses(atom_entries(new_york.read("feed.xml")))
    app = make_app(new_york.source, base_url="https://feeds.example.org")
    assert addresses(ours(app)) == theirs
    assert addresses(ours(app, base_url="http://other.test:8080")) == theirs
    # ... while the feed itself is where the service is reached.
    feed = etree.fromstring(app.test_client().get("/feed.xml").data)
    own = {link.get("rel"): link.get("href") for link in feed.findall(f"{A}link")}
    assert own["self"].startswith("https://feeds.example.org/")
    assert feed.findtext(f"{A}id", "").startswith("https://feeds.example.org/")


def test_without_url_base_url_serves_both_roles(tmp_path: Path,
                                                make_app: Callable[..., Flask]) -> None:
    """No url in _config.yml: --base-url stands in for it, in ids and links too (Jekyll,
    given that url, writes the same)."""
    cases = {k: CASES[k] for k in ("date-pm", "permalink-pretty", "folder-categories")}
    without = NEW_YORK.replace("url: https://example.com\n", "")
    with_it = NEW_YORK.replace("https://example.com", "https://feeds.example.org")
    theirs = jekyll_site(tmp_path / "with", site_files(with_it, cases))
    root = jekyll_site(tmp_path / "without", site_files(without, cases)).source
    app = make_app(root, base_url="https://feeds.example.org/blog")
    assert addresses(ours(app)) == addresses(atom_entries(theirs.read("feed.xml")))


def test_with_neither_ids_are_jekylls_paths_whatever_the_host(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """No url, no --base-url: ids are what jekyll-feed writes then (paths), and the same
    for every Host a request names; links follow the request's host."""
    cases = {k: CASES[k] for k in ("date-words", "permalink-pretty", "folder-categories")}
    built = jekyll_site(tmp_path / "s", site_files(
        NEW_YORK.replace("url: https://example.com\n", ""), cases))
    theirs = atom_entries(built.read("feed.xml"))
    app = make_app(built.source)
    for host in ("http://a.test", "https://b.test:8443"):
        mine = ours(app, base_url=host)
        assert sorted(e["id"] for e in mine) == sorted(e["id"] for e in theirs)
        assert sorted(e["link"][0] for e in mine) == sorted(
            host + e["link"][0] for e in theirs)


def test_url_with_a_path_and_baseurl(tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    cases = {k: CASES[k] for k in ("date-slashes", "text-post", "folder-categories")}
    config = NEW_YORK.replace("https://example.com", "https://example.com/mirror")
    built = jekyll_site(tmp_path / "s", site_files(config, cases))
    theirs = addresses(atom_entries(built.read("feed.xml")))
    assert all(i.startswith("https://example.com/mirror/blog/") for i, _ in theirs.values())
    assert addresses(ours(make_app(built.source, base_url="https://feeds.test"))) == theirs


# --- time zones across DST changes ---------------------------------------------------------

DST = {
    # Sydney: clocks back 2021-04-04 03:00 -> 02:00, forward 2021-10-03 02:00 -> 03:00.
    "Australia/Sydney": ("2021-04-04 02:30", "2021-10-03 02:30", "2021-04-03 23:30"),
    # London: forward 2021-03-28 01:00 -> 02:00, back 2021-10-31 02:00 -> 01:00.
    "Europe/London": ("2021-10-31 01:30", "2021-03-28 01:30", "2021-10-30 23:59:59"),
    "America/New_York": ("2021-11-07 01:59:59", "2021-03-14 02:00", "2021-11-06 23:30"),
}


@pytest.mark.parametrize("zone", list(DST))
def test_time_zones_across_dst_changes(zone: str, tmp_path: Path,
                                       make_app: Callable[..., Flask]) -> None:
    files = {"_config.yml": NEW_YORK.replace("America/New_York", zone)}
    for n, when in enumerate(DST[zone]):
        files[f"_posts/2021-01-0{n + 1}-dst-{n}.md"] = post(f"DST {n}", f'date: "{when}"')
        files[f"_posts/2021-02-0{n + 1}-unquoted-{n}.md"] = post(
            f"Unquoted {n}", f"date: {when if when.count(':') == 2 else when + ':00'}")
    built = jekyll_site(tmp_path / "s", files)
    theirs = {e["title"]: jekyll_view(e) for e in atom_entries(built.read("feed.xml"))}
    mine = {e["title"]: jekyll_view(e) for e in ours(make_app(built.source))}
    assert mine == theirs
    assert len(mine) == 2 * len(DST[zone])


def test_with_neither_no_feed_format_names_the_host_in_an_id(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """RSS guids and JSON Feed ids are the same paths as the Atom ids, on every host."""
    cases = {k: CASES[k] for k in ("date-words", "folder-categories")}
    built = jekyll_site(tmp_path / "s", site_files(
        NEW_YORK.replace("url: https://example.com\n", ""), cases))
    expected = sorted(e["id"] for e in atom_entries(built.read("feed.xml")))
    client = make_app(built.source).test_client()
    for host in ("http://a.test", "https://b.test:8443"):
        rss = etree.fromstring(client.get("/feed.rss", base_url=host).data)
        guids = [(g.text, g.get("isPermaLink")) for g in rss.iter("guid")]
        assert sorted(guids) == [(i, "false") for i in expected]
        items = client.get("/feed.json", base_url=host).get_json()["items"]
        assert sorted(item["id"] for item in items) == expected
        assert all(item["url"].startswith(host + "/blog/") for item in items)


# --- front-matter defaults ----------------------------------------------------------------

DEFAULTS = NEW_YORK + """\
defaults:
  - scope: {path: "", type: posts}
    values: {tags: [from-default], categories: [dc]}
  - scope: {path: "_posts", type: posts}
    values: {permalink: "/articles/:title/", author: {name: Desk}}
  - scope: {path: "Area/_posts"}
    values: {published: false}
  - scope: {path: "*/_posts/*-globbed*"}
    values: {published: true, tags: [globbed]}
  - scope: {type: drafts}
    values: {permalink: /drafts-only/}
"""
DEFAULTED = {
    "_posts/2021-03-01-default-permalink.md": post("Default permalink"),
    "_posts/2021-03-02-own-permalink.md": post("Own permalink",
                                               "permalink: /own/:title.html"),
    "_posts/2021-03-03-categories-joined.md": post("Categories joined",
                                                   "categories: [own, dc]"),
    "Area/_posts/2021-03-04-hidden-by-default.md": post("Hidden by default"),
    "Area/_posts/2021-03-05-shown-anyway.md": post("Shown anyway", "published: true"),
    "Area/_posts/2021-03-06-globbed-in.md": post("Globbed in"),
}


def test_front_matter_defaults_as_jekyll_applies_them(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    built = jekyll_site(tmp_path / "s", {"_config.yml": DEFAULTS, **DEFAULTED})
    theirs = {e["title"]: jekyll_view(e) for e in atom_entries(built.read("feed.xml"))}
    mine = {e["title"]: jekyll_view(e) for e in ours(make_app(built.source))}
    assert mine == theirs
    assert "Hidden by default" not in mine and "Globbed in" in mine
    assert mine["Default permalink"]["link"] == [
        "https://example.com/blog/articles/default-permalink/"]


def test_a_defaults_set_without_values_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "_config.yml").write_text("defaults:\n  - scope: {path: ''}\n    value: {}\n",
                                          encoding="utf-8")
    with pytest.raises(ConfigError, match=r"'defaults'.*'values' mapping"):
        make_settings(tmp_path)
