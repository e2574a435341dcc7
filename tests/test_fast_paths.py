"""Start-up's fast paths read what the general rules read: each is held to the general
code it skips (issue 12, 'no slower'), on generated input and on the usual forms."""

from __future__ import annotations

import posixpath
from datetime import UTC
from urllib.parse import quote
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from feeds.parse import PostError
from feeds.parse.dates import _time_parse, _usual
from feeds.parse.urls import _SLUG_KEEP, _slugify, _slugify_chars, escape_path, post_id
from feeds.parse.values import FrontMatter

ZONES = [UTC, ZoneInfo("America/New_York"), ZoneInfo("Asia/Shanghai")]


def _digits(top: int) -> st.SearchStrategy[str]:
    """Two digits up to ``top``: one past the largest valid value (a month's 13)."""
    return st.integers(min_value=0, max_value=top).map(lambda n: f"{n:02d}")


_usual_dates = st.builds(
    lambda y, mo, d, h, mi, s, sign, oh, om: f"{y:04d}-{mo}-{d} {h}:{mi}:{s} {sign}{oh}{om}",
    st.integers(min_value=0, max_value=9999), _digits(13), _digits(32), _digits(24),
    _digits(60), _digits(61), st.sampled_from("+-"), _digits(24), _digits(60))


def _general(text: str) -> object:
    try:
        return [(value, value.utcoffset()) for value in
                [_time_parse("p", text, zone, "date") for zone in ZONES]]
    except PostError as e:
        return e.message


@given(text=_usual_dates)
@example(text="2021-10-05 22:03:57 +0800")
@example(text="2021-02-29 10:00:00 +0000")
@example(text="2020-02-29 23:59:59 -2359")
@example(text="2021-10-05 23:59:60 +0800")
@example(text="2021-10-05 24:00:00 +0800")
@example(text="2021-10-05 10:00:00 +2400")
def test_a_date_in_the_usual_form_is_read_as_time_parse_reads_it(text: str) -> None:
    """The usual form is read alike in any site zone (it carries its offset), or left to
    the general reading, which then says why it is no date."""
    usual = _usual(text)
    if usual is not None:
        assert _general(text) == [(usual, usual.utcoffset())] * len(ZONES)


@pytest.mark.parametrize("text", ["2021-10-05 10:00:00", "2021-10-05 10:00 +0800",
                                  "2021-10-05T10:00:00+08:00", "2021-10-05 10:00:00 +08:00",
                                  "2021-10-05 10:00:00 +0800 PM", "2021-10-05  10:00:00 +0800",
                                  "2021-10-05 10:00:00 PST", "2021-1-5 10:00:00 +0800"])
def test_other_forms_are_left_to_the_general_reading(text: str) -> None:
    assert _usual(text) is None


_names = st.lists(st.text(alphabet=st.characters(codec="utf-8"), max_size=8), max_size=6)


@given(names=_names)
@example(names=["a", "a", " b  c ", "", "\x0bx\x0c", "Café", "\u3000"])
def test_a_list_of_names_reads_as_any_list_reads(names: list[str]) -> None:
    fast = FrontMatter("p", {"tags": names})
    general = FrontMatter("p", {"tags": names})
    assert fast.listed("tags") == general._flattened_names("tags", names)
    assert fast.warnings == general.warnings == []


@given(text=st.text(alphabet=st.characters(max_codepoint=127), max_size=30))
@example(text="--a__b..c--")
@example(text="Mixed Case! (2) & more")
def test_an_ascii_slug_is_made_as_any_slug_is(text: str) -> None:
    for keep in (_SLUG_KEEP, frozenset()):
        assert _slugify(text, keep) == _slugify_chars(text, keep)


@given(text=st.text(max_size=20))
@example(text="a b/c?d#e%f")
@example(text="hello-world_1.2~")
def test_a_path_is_escaped_as_quote_escapes_it(text: str) -> None:
    assert escape_path(text) == quote(text, safe="!$&'()*+,;=:@/")


_url = st.text(alphabet="/ab.", max_size=12)


@given(url=_url, slug=st.text(alphabet="/ab%é", max_size=6))
@example(url="/notes/hello/", slug="hello")
@example(url="//", slug="x")
@example(url="a", slug="/b")
def test_the_entry_id_joins_as_posixpath_joins(url: str, slug: str) -> None:
    expected = posixpath.join(posixpath.dirname(url.rstrip("/") or "/"), escape_path(slug))
    assert post_id(url, slug) == expected
