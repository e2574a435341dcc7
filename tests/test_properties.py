"""Property tests: arbitrary Unicode titles, bodies, file names, category and tag names
and dates always give well-formed, schema-valid feeds, whose titles, names and dates
read back the same through feedparser once the characters XML cannot carry are dropped
and white space is folded (as the service documents it does)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import tempfile
import unicodedata
from calendar import timegm
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import feedparser
import pytest
import yaml
from flask import Flask
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st
from lxml import etree
from lxml import html as lxml_html

from feeds import create_app
from feeds.parse import LOADER, PostError, split_front_matter
from feeds.parse.simple_yaml import simple_yaml
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


def in_order(rows: Iterable[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows sorted with each set as its sorted names: sets themselves are only partly
    ordered (neither {'0'} < {'00'} nor the reverse), so sorted() of rows that differ
    only there keeps their input order, and two lists of the same rows could differ."""
    return sorted(rows, key=lambda row: tuple(sorted(x) if isinstance(x, frozenset) else x
                                              for x in row))


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

            expected = in_order((title_of(p), frozenset(p.terms), p.when.astimezone(UTC))
                              for p in posts)
            as_read = in_order((as_feedparser_reads(title),
                              frozenset(map(as_feedparser_reads, terms)), when)
                             for title, terms, when in expected)
            for data in (atom.data, rss.data):
                feed = feedparser.parse(data)
                assert not feed.bozo, feed.bozo_exception
                got = in_order((as_feedparser_reads(e.title),
                              frozenset(as_feedparser_reads(t.term) for t in e.get("tags", [])),
                              datetime.fromtimestamp(timegm(e.published_parsed), UTC))
                             for e in feed.entries)
                assert got == as_read
                # Newest first.
                stamps = [timegm(e.published_parsed) for e in feed.entries]
                assert stamps == sorted(stamps, reverse=True)
            # lxml reads the Atom text back exactly, without feedparser's repair.
            root = etree.fromstring(atom.data, strict)
            exact = in_order((entry.findtext(f"{ATOM}title"),
                            frozenset(c.get("term") for c in entry.iter(f"{ATOM}category")))
                           for entry in root.iter(f"{ATOM}entry"))
            assert exact == in_order((title, terms) for title, terms, _ in expected)
            channel = etree.fromstring(rss.data, strict)
            exact = in_order((item.findtext("title"),
                            frozenset(c.text for c in item.iter("category")))
                           for item in channel.iter("item"))
            assert exact == in_order((title, terms) for title, terms, _ in expected)
            assert in_order((i["title"], frozenset(i.get("tags", [])),
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
@example(posts=[  # rows that differ only in sets no sorted() can order
    GivenPost("0", "", "0", datetime(1999, 1, 1, tzinfo=UTC), [], ["00"]),
    GivenPost("0", "", "0", datetime(2000, 1, 1, tzinfo=UTC), [], ["0"])])
def test_any_unicode_gives_valid_feeds(posts: list[GivenPost],
                                       atom_documents: AtomDocuments) -> None:
    check_feeds(posts, exact_titles=False, atom_documents=atom_documents)


# --- front matter: the service's YAML reader against PyYAML's own ------------------------

# The pieces front matter is written with, and the characters that trip YAML up: its
# indicators, tabs, quotes, escapes, its other line breaks (NEL, U+2028, U+2029), a BOM.
_YAML_CHARS = list("abcXYZ019._/+=~ ") + list(":#-[]{},&*!|>'\"%@`?\t\\") + [
    "\x85", "\u2028", "\u2029", "\ufeff", "\xa0", "é", "ß", "中", "😀"]
_SPECIAL_SCALARS = [
    "true", "False", "yes", "NO", "on", "Off", "y", "~", "null", "Null", "", "1", "-1",
    "+1", "0x1F", "0o17", "017", "0b101", "1_000", "1.5", "-1.5e+3", "1e3", ".inf",
    "-.Inf", ".nan", "1:20", "190:20:30.15", "2020-01-02", "2020-1-2",
    "2020-01-02 10:00:00", "2020-01-02T10:00:00Z", "2020-01-02 10:00:00 +08:00",
    "2020-01-02 10:00:00 +0800", "2001-12-14t21:59:43.10-05:00", "=", "<<", "-", "- a",
    "a: b", "a #b", "a# b", "[]", "{}", "&x a", "*x", "!!str 1", "!!int 1", "|", ">",
]
_plain = st.one_of(st.sampled_from(_SPECIAL_SCALARS), st.text(st.sampled_from(_YAML_CHARS),
                                                              max_size=10))
_scalar = st.one_of(
    _plain,
    st.builds(lambda a, b: a + b, st.sampled_from(_SPECIAL_SCALARS), _plain),
    _plain.map(lambda s: json.dumps(s, ensure_ascii=False)),
    _plain.map(lambda s: json.dumps(s)),
    _plain.map(lambda s: "'" + s.replace("'", "''") + "'"),
    _plain.map(lambda s: '"' + s + '"'),
    _plain.map(lambda s: "'" + s + "'"),
)
_key = st.one_of(st.sampled_from(["title", "date", "tags", "categories", "slug", "a_b",
                                  "x-y", "_k", "K9", "y", "no", "null", "1", "2020-01-02",
                                  "<<", "? k", "-", '"q"', "'s'"]), _plain)
_sep = st.sampled_from([" ", "  ", "\t", " \t", ""])


def _flow(items: list[str], spaced: bool) -> str:
    return "[" + (", " if spaced else ",").join(items) + "]"


_flow_list = st.builds(_flow, st.lists(_scalar, max_size=4), st.booleans())
_value = st.one_of(_scalar, _flow_list,
                   st.builds(lambda items: "".join(f"\n  - {i}" for i in items),
                             st.lists(_scalar, min_size=1, max_size=3)),
                   st.builds(lambda pairs: "".join(f"\n  {k}: {v}" for k, v in pairs),
                             st.lists(st.tuples(_key, _scalar), min_size=1, max_size=3)))
_line = st.one_of(
    st.builds(lambda k, sep, v, tail: f"{k}:{sep}{v}{tail}", _key, _sep, _value,
              st.sampled_from(["", " ", "\t", " # note", "#no"])),
    st.text(st.sampled_from(_YAML_CHARS), max_size=20),  # anything at all
    st.sampled_from(["", "  ", "# a comment"]),
)
_front_matter = st.lists(_line, min_size=1, max_size=6).map("\n".join).filter(
    # A line '---' or '...' would end the front matter (and the YAML document) there.
    lambda fm: not re.search(r"^(?:---|\.\.\.)[ \t]*$", fm, re.MULTILINE))

# Where libyaml, which Jekyll reads front matter with (Ruby's Psych) as the service does,
# and PyYAML's pure Python are known to part: PyYAML refuses a tab in many places libyaml
# takes it as white space ('a:\t1', 'a: 1 \t', '[b,\tc]', a line ' \t'); an empty node
# with the bare tag '!' is '' to libyaml, None to PyYAML; libyaml drops a byte-order
# mark at the start of the YAML, PyYAML reads it as text, and they part on one elsewhere;
# libyaml takes a comment right after a block scalar's '|' or '>' ('|#'), and refuses a
# surrogate written as an escape ("\ud83d"), which PyYAML keeps, a lone surrogate.
# In a flow collection, a '?' or ':' that ends an item ('[?]', '[0?]', '[a:]', '[0 :]')
# is an empty key or value to PyYAML; libyaml (and Psych) read '0?' as text and refuse
# a lone '?' or an ending ':' (test_where_the_two_part_the_service_reads_as_psych_does).
_KNOWN_APART = re.compile(r"\t|\ufeff|!(?=[ ]*(?:$|[,\]}#\x85\u2028\u2029]))"
                          r"|[|>][-+0-9]*#|\\u[dD][89a-fA-F]|[?:][ ]*[,\]}]", re.MULTILINE)


def _same(a: object, b: object) -> bool:
    """Equal, and of the same types all the way down (1 == True, nan != nan otherwise)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, float):
        return a == b or (a != a and b != b)
    if isinstance(a, dict):
        assert isinstance(b, dict)
        return len(a) == len(b) and all(
            _same(ka, kb) and _same(va, vb)
            for (ka, va), (kb, vb) in zip(a.items(), b.items(), strict=True))
    if isinstance(a, list):
        assert isinstance(b, list)
        return len(a) == len(b) and all(map(_same, a, b))
    return a == b


# How the service tells refusals apart: not YAML at all, or a value YAML cannot hold.
# (libyaml and PyYAML can name one syntax error differently: ScannerError, ParserError.)
_FAMILIES = (yaml.YAMLError, ValueError, TypeError, OverflowError, RecursionError)


def _family(error: BaseException) -> type[BaseException]:
    return next(f for f in _FAMILIES if isinstance(error, f))


def _reference(fm: str) -> tuple[str, object]:
    try:
        return "value", yaml.load(fm, Loader=yaml.SafeLoader)
    except _FAMILIES as e:
        return "error", _family(e)


def test_the_service_reads_yaml_with_libyaml() -> None:
    assert yaml.__with_libyaml__ and LOADER is yaml.CSafeLoader


# FRONT_MATTER_EXAMPLES=20000 searches harder by hand; CI runs 500 a test.
_FM_SETTINGS = settings(max_examples=int(os.environ.get("FRONT_MATTER_EXAMPLES", "500")),
                        deadline=None, database=None)


@_FM_SETTINGS
@given(fm=_front_matter)
@example(fm="title: [\xa0]")  # U+00A0 is text to YAML, no space to strip
def test_the_fast_path_reads_what_the_loader_reads(fm: str) -> None:
    """simple_yaml either declines or gives exactly what the service's loader gives (an
    empty document, None to the loader, is an empty mapping to both of the service's)."""
    fast = simple_yaml(fm)
    if fast is not None:
        loaded = yaml.load(fm, Loader=LOADER)
        assert _same(fast, {} if loaded is None else loaded), loaded


@_FM_SETTINGS
@given(fm=_front_matter)
@example(fm="title: [\xa0]")
@example(fm="title: [a, \u3000 ]")
def test_front_matter_reads_as_pure_python_safeloader_reads_it(fm: str) -> None:
    """The front matter the service reads (its fast path, else libyaml's CSafeLoader)
    holds what PyYAML's pure-Python SafeLoader reads from it, or both refuse it with the
    same class of error."""
    assume(not _KNOWN_APART.search(fm))
    text = "---\n" + fm + "\n---\nbody\n"
    outcome, expected = _reference(fm + "\n")
    try:
        data, body = split_front_matter("p.md", text)
    except PostError as e:
        if outcome == "value":  # read, but no mapping, or one that aliases run away in
            refused = ("contains itself", "grows past", "nests collections more than")
            assert expected is not None and (not isinstance(expected, dict) or any(
                why in e.message for why in refused)), (e, expected)
        else:  # the loader's error is kept as the cause (a depth refusal is ours)
            assert _family(e.__cause__ or RecursionError()) is expected, (e, expected)
        return
    except _FAMILIES as e:  # the fast path lets a constructor's own error out as it is
        assert (outcome, _family(e)) == ("error", expected), (e, expected)
        return
    assert body == "body\n"
    assert outcome == "value", (data, expected)
    assert _same(data, {} if expected is None else expected), (data, expected)


_RUBY = shutil.which("ruby")
_PSYCH = ("require 'yaml'; require 'json'; begin; "
          "puts JSON.generate(YAML.safe_load(STDIN.read)); rescue Psych::SyntaxError; "
          "puts 'refused'; end")


@pytest.mark.skipif(_RUBY is None, reason="ruby is not installed (scripts/test.sh "
                    "installs Debian's jekyll, and Ruby with it)")
@pytest.mark.parametrize("fm", ["title: [?]", "title: [0?]", "title: [a?, b]",
                                "title: [0:]", "title: [a:]", "title: [0 :]",
                                "title: [\xa0]", "title: [\u3000a ]", "title: [a,\tb]"])
def test_where_the_two_part_the_service_reads_as_psych_does(fm: str) -> None:
    """Where PyYAML's pure Python and libyaml part, the service reads front matter as
    Jekyll does: Ruby's Psych, run here, is the oracle."""
    assert _RUBY is not None
    psych = subprocess.run([_RUBY, "-e", _PSYCH], input=fm, capture_output=True,
                           text=True, timeout=60, check=True).stdout.strip()
    try:
        data: object = split_front_matter("p.md", f"---\n{fm}\n---\nbody\n")[0]
    except PostError:
        data = "refused"
    assert data == ("refused" if psych == "refused" else json.loads(psych))
