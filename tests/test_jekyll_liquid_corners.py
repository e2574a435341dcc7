"""Liquid's corners, proven against the real ``jekyll build`` (one post per case, named
for it; the ``both`` fixture of test_jekyll_bodies): ``site.time`` and times as Liquid
prints them, the ``sample`` filter, the ``content`` of the posts of ``site.posts`` (what
Jekyll has rendered so far), and ``markdownify`` inside a paragraph (a block-level tag in
a line of text is text, as kramdown writes it)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from flask import Flask

from .jekyll import atom_entries, needs_jekyll, write_tree
from .test_jekyll_bodies import CONFIG, Compare, both, post

__all__ = ["both"]  # the fixture, shared

pytestmark = needs_jekyll

CORNERS = {
    "_posts/2021-01-01-older-post.md": post("older-post", "Older *body* with [a link](/x).\n"),
    "_posts/2021-01-02-site-time.md": post("site-time", """\
        {{ site.time }}, {{ site.time | date_to_xmlschema }}, {{ site.time | date: "%Y" }}
        """),
    "_posts/2021-01-03-times-print-as-ruby-prints-them.md": post(
        "times-print-as-ruby-prints-them", "{{ page.date }} and {{ site.posts.first.date }}\n"),
    "_posts/2021-01-04-sample.md": post("sample", """\
        {{ "x" | split: "," | sample }} {{ "abc" | sample }} {{ site.five | sample: 3 | size }}
        {{ site.two | sample: 2 | sort | join: "-" }} {{ site.two | sample: 9 | size }}
        """),
    "_posts/2021-01-05-content-of-site-posts.md": post("content-of-site-posts", """\
        {% for p in site.posts %}[{{ p.title }}: {{ p.content | strip }}]
        {% endfor %}
        """),
    "_posts/2021-01-06-markdownify-in-a-paragraph.md": post(
        "markdownify-in-a-paragraph", "Text {{ '*em*' | markdownify }} more.\n"),
    "_posts/2021-01-07-block-tags-in-a-paragraph.md": post(
        "block-tags-in-a-paragraph",
        'Text <div class="x">in div</div> and <p>para</p>, <em>em</em> and <hr> here.\n'),
    "_posts/2021-01-08-newer-post.md": post("newer-post", "Newer *body*.\n"),
}
CORNERS_CONFIG = CONFIG + """\
time: 2024-05-01 12:00:00 +0800
feed:
  posts_limit: 50
five: [1, 2, 3, 4, 5]
two: [a, b]
"""


@pytest.mark.parametrize("case", sorted(
    path.split("-", 3)[3].removesuffix(".md") for path in CORNERS))
def test_liquid_corner(both: Compare, case: str) -> None:
    theirs, ours = both(CORNERS, CORNERS_CONFIG)
    assert ours[case] == theirs[case]


def test_site_time_without_time_is_when_the_site_was_read(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """Jekyll's site.time is the build's time; here, when the state's site is first
    needed (it is not a reason to render a body again)."""
    root = write_tree(tmp_path / "site", {
        "_config.yml": CONFIG,
        "_posts/2021-01-02-site-time.md": post("site-time", "{{ site.time | date_to_xmlschema }}"),
    })
    before = datetime.now(UTC).replace(microsecond=0)
    entries = atom_entries(make_app(root).test_client().get("/feed.xml").data)
    after = datetime.now(UTC)
    shown = datetime.fromisoformat(entries[0]["content"].removeprefix("<p>").removesuffix("</p>"))
    assert before <= shown <= after
