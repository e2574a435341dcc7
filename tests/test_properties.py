"""Property tests: arbitrary Unicode titles, bodies, file names, category and tag names
and dates always give well-formed, schema-valid feeds, whose titles, names and dates
read back the same through feedparser once the characters XML cannot carry are dropped
and white space is folded (as the service documents it does)."""

from __future__ import annotations

import json
import re
import tempfile
import unicodedata
from calendar import timegm
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from urllib.parse import urlsplit

import feedparser
import pytest
from flask import Flask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from lxml import etree
from lxml import html as lxml_html

from feeds import create_app
from feeds.render import feed_title

from .conftest import make_settings, validate_atom_many, validate_json_feed, write_site

# What XML 1.0 cannot carry, plus the C1 controls YAML refuses: the service drops them.
UNCARRIED = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
ATOM = "{http://www.w3.org/2005/Atom}"
CONFIG = "title: Properties\nurl: https://prop.example\ntimezone: Asia/Kolkata\n"


def nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


def carried(text: str) -> str:
    """What of a text reaches a feed: uncarried characters dropped, white space folded."""
    return " ".join(UNCARRIED.sub("", text).split())


def as_feedparser_reads(text: str) -> str:
    """feedparser "repairs" some texts made only of Latin-1 characters that happen to
    spell valid UTF-8 ("Û£" can come back as "ۣ"), on the theory that they were
    double-encoded; it does so for some elements and not others. Both sides of a
    feedparser comparison go through the same repair; lxml checks the exact text."""
    try:
        return text.encode("iso-8859-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return text


unicode_text = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# The characters the service rewrites on purpose in feed titles, as jekyll-feed does:
# quotes and dashes (smartify) and tags (strip_html). Without them, exactly what was
# written must come back.
plain_title = st.text(st.characters(exclude_categories=("Cs",),
                                    exclude_characters="<>\"'-."), max_size=40)
names = st.lists(unicode_text.filter(lambda t: carried(t) != ""), max_size=3)
file_names = st.text(st.characters(exclude_categories=("Cs",), exclude_characters="/\x00"),
                     min_size=1, max_size=30).filter(lambda n: len(n.encode()) < 150)
dates = st.builds(
    lambda when, minutes: when.replace(tzinfo=timezone(timedelta(minutes=minutes))),
    st.datetimes(min_value=datetime(1000, 1, 3), max_value=datetime(9998, 12, 28)),
    st.integers(min_value=-(23 * 60 + 59), max_value=23 * 60 + 59),
).map(lambda d: d.replace(microsecond=0))


@dataclass(frozen=True)
class GivenPost:
    title: str
    body: str
    name: str
    when: datetime
    categories: list[str]
    tags: list[str]

    def text(self) -> str:
        offset = self.when.strftime("%z")
        return (f"---\ntitle: {json.dumps(self.title, ensure_ascii=False)}\n"
                f"date: {self.when.strftime('%Y-%m-%d %H:%M:%S')} {offset[:3]}:{offset[3:]}\n"
                f"categories: {json.dumps(self.categories, ensure_ascii=False)}\n"
                f"tags: {json.dumps(self.tags, ensure_ascii=False)}\n---\n{self.body}\n")

    @property
    def terms(self) -> set[str]:
        return {carried(n) for n in self.categories + self.tags}


def posts_of(titles: st.SearchStrategy[str]) -> st.SearchStrategy[list[GivenPost]]:
    post = st.builds(GivenPost, titles.filter(lambda t: carried(t) != ""),
                     st.text(st.characters(exclude_categories=("Cs",)), max_size=200),
                     file_names, dates, names, names)
    return st.lists(post, min_size=1, max_size=4)


class AtomDocuments:
    """The Atom documents of every example, kept for one jing run at the end (jing's
    start-up costs seconds). Its repr stays short: hypothesis prints the test's
    arguments with every falsifying example."""

    def __init__(self) -> None:
        self.docs: dict[str, bytes] = {}

    def add(self, data: bytes) -> None:
        self.docs[f"example {len(self.docs)}"] = data

    def __repr__(self) -> str:
        return f"<{len(self.docs)} Atom documents>"


@pytest.fixture(scope="module")
def atom_documents(tmp_path_factory: pytest.TempPathFactory) -> Iterator[AtomDocuments]:
    documents = AtomDocuments()
    yield documents
    if documents.docs:
        validate_atom_many(documents.docs, tmp_path_factory.mktemp("jing"))


def serve(posts: list[GivenPost], root: Path) -> Flask:
    """A site of these posts (named by arbitrary file names), loaded."""
    write_site(root, {}, config=CONFIG)
    (root / "_posts").mkdir()
    for i, post in enumerate(posts):
        (root / "_posts" / f"2000-01-01-{i}-{post.name}.md").write_text(post.text(), "utf-8")
    return create_app(make_settings(root, future=True), watch=False)


def check_feeds(posts: list[GivenPost], exact_titles: bool,
                atom_documents: AtomDocuments) -> None:
    with tempfile.TemporaryDirectory() as folder:
        app = serve(posts, Path(folder) / "site")
        service = app.extensions["feeds"]
        client = app.test_client()
        try:
            assert service.health()["rejected"] == 0, service.state().snapshot.problems
            atom = client.get("/feed.atom?limit=100")
            rss = client.get("/feed.rss?limit=100")
            jsonfeed = client.get("/feed.json?limit=100")
            for response in (atom, rss, jsonfeed):
                assert response.status_code == 200
            strict = etree.XMLParser(resolve_entities=False, no_network=True)
            etree.fromstring(atom.data, strict)
            etree.fromstring(rss.data, strict)
            items = validate_json_feed(jsonfeed.data)["items"]
            atom_documents.add(atom.data)

            def title_of(post: GivenPost) -> str:
                return carried(post.title) if exact_titles else feed_title(carried(post.title))

            expected = sorted((title_of(p), frozenset(p.terms), p.when.astimezone(UTC))
                              for p in posts)
            as_read = sorted((as_feedparser_reads(title),
                              frozenset(map(as_feedparser_reads, terms)), when)
                             for title, terms, when in expected)
            for data in (atom.data, rss.data):
                feed = feedparser.parse(data)
                assert not feed.bozo, feed.bozo_exception
                got = sorted((as_feedparser_reads(e.title),
                              frozenset(as_feedparser_reads(t.term) for t in e.get("tags", [])),
                              datetime.fromtimestamp(timegm(e.published_parsed), UTC))
                             for e in feed.entries)
                assert got == as_read
                # Newest first.
                stamps = [timegm(e.published_parsed) for e in feed.entries]
                assert stamps == sorted(stamps, reverse=True)
            # lxml reads the Atom text back exactly, without feedparser's repair.
            root = etree.fromstring(atom.data, strict)
            exact = sorted((entry.findtext(f"{ATOM}title"),
                            frozenset(c.get("term") for c in entry.iter(f"{ATOM}category")))
                           for entry in root.iter(f"{ATOM}entry"))
            assert exact == sorted((title, terms) for title, terms, _ in expected)
            channel = etree.fromstring(rss.data, strict)
            exact = sorted((item.findtext("title"),
                            frozenset(c.text for c in item.iter("category")))
                           for item in channel.iter("item"))
            assert exact == sorted((title, terms) for title, terms, _ in expected)
            assert sorted((i["title"], frozenset(i.get("tags", [])),
                           datetime.fromisoformat(i["date_published"]).astimezone(UTC))
                          for i in items) == expected

            # Every entry's link serves its page; every category and tag it links to
            # has a feed of exactly the posts that carry that name.
            for entry in feedparser.parse(atom.data).entries:
                page = client.get(urlsplit(entry.link).path)
                assert page.status_code == 200, entry.link
                doc = lxml_html.fromstring(page.data)
                assert doc.xpath("//script") == []
                for chip in doc.xpath("//a[contains(concat(' ', @class, ' '), ' chip ')]"):
                    href = urlsplit(chip.get("href")).path
                    kind = "tags" if href.startswith("/tag/") else "categories"
                    name = chip.text_content()
                    name = nfc(name.removeprefix("#") if kind == "tags" else name)
                    response = client.get(href[:href.rindex(".")] + ".atom?limit=100")
                    assert response.status_code == 200, href
                    members = feedparser.parse(response.data)
                    assert not members.bozo
                    wanted = sorted(as_feedparser_reads(title_of(q)) for q in posts
                                    if name in {nfc(carried(n)) for n in getattr(q, kind)})
                    assert sorted(e.title for e in members.entries) == wanted, (kind, name)
        finally:
            service.stop()


HYPOTHESIS = settings(max_examples=15, deadline=None, database=None,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
# Offsets past 14:00 are accepted when read, but no feed may carry one (xsd:dateTime).
FAR_OFFSET = GivenPost("Far offset", "x", "far", datetime(
    2020, 2, 29, 23, 59, 59, tzinfo=timezone(timedelta(hours=23, minutes=59))), ["a"], ["b"])


@HYPOTHESIS
@given(posts=posts_of(plain_title))
@example(posts=[FAR_OFFSET])
def test_titles_names_and_dates_read_back_exactly(posts: list[GivenPost],
                                                  atom_documents: AtomDocuments) -> None:
    check_feeds(posts, exact_titles=True, atom_documents=atom_documents)


@HYPOTHESIS
@given(posts=posts_of(unicode_text))
def test_any_unicode_gives_valid_feeds(posts: list[GivenPost],
                                       atom_documents: AtomDocuments) -> None:
    check_feeds(posts, exact_titles=False, atom_documents=atom_documents)
