"""Unit tests of feeds/parse.py (one file -> Post, bodies -> HTML) and feeds/site.py (the
index and the rule for names in URLs), where a table of inputs is clearer than HTTP.

Dates follow Jekyll 4.3 in the site zone Asia/Shanghai (UTC+8, no DST)."""

from __future__ import annotations

import unicodedata
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import unquote

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feeds import links
from feeds.bodies import BodyCache
from feeds.config import Settings
from feeds.model import Author, Kind, Post
from feeds.parse import (
    BodyRules,
    PostError,
    SkipFile,
    build_permalink,
    escape_path,
    parse_post,
    render_body,
    site_rules,
    summary_of,
    wait_quiet,
)
from feeds.site import SiteIndex, name_to_segment, segment_to_name
from feeds.summaries import excerpt_source, plain_summary

SHANGHAI = site_rules("Asia/Shanghai", "date", 2_000_000)
CST = timezone(timedelta(hours=8))


def parse(text: str, source: str = "_posts/2020-01-02-hello-world.md",
          permalink: str = "date") -> Post:
    rules = SHANGHAI if permalink == "date" else site_rules("Asia/Shanghai", permalink,
                                                             2_000_000)
    return parse_post(source, text.encode("utf-8"), (0, len(text), 0), rules).post


def fm(*lines: str, body: str = "Body.") -> str:
    return "---\n" + "".join(line + "\n" for line in lines) + "---\n" + body + "\n"


# --- dates --------------------------------------------------------------------------------


@pytest.mark.parametrize(("line", "instant", "offset_hours", "url_day"), [
    # Psych reads an unquoted timestamp without offset as UTC; Jekyll shows it in the
    # site zone, so the URL's day is the next day.
    ("date: 2020-07-01 22:03:57", datetime(2020, 7, 1, 22, 3, 57, tzinfo=UTC), 8,
     "2020/07/02"),
    # Quoted: a string, parsed as site-zone wall clock.
    ('date: "2020-07-05 22:03:57"', datetime(2020, 7, 5, 22, 3, 57, tzinfo=CST), 8,
     "2020/07/05"),
    ("date: 2022-05-04", datetime(2022, 5, 4, tzinfo=CST), 8, "2022/05/04"),
    # '+0800' (no colon) is not a YAML timestamp: a string with an offset that is kept.
    ("date: 2021-12-28 00:07:58 +0800", datetime(2021, 12, 28, 0, 7, 58, tzinfo=CST), 8,
     "2021/12/28"),
    # Another offset: the instant is kept, the URL uses the site zone's day.
    ("date: 2021-03-01 23:30:00 -05:00",
     datetime(2021, 3, 2, 4, 30, tzinfo=UTC), -5, "2021/03/02"),
    ('date: "2021-03-02 20:15:00 +0000"', datetime(2021, 3, 2, 20, 15, tzinfo=UTC), 0,
     "2021/03/03"),
    ("date: 2022-01-15T18:00:00Z", datetime(2022, 1, 15, 18, tzinfo=UTC), 0, "2022/01/16"),
    ('date: "2022-01-15T18:00:00+09:00"', datetime(2022, 1, 15, 9, tzinfo=UTC), 9,
     "2022/01/15"),
])
def test_dates_read_as_jekyll_does(line: str, instant: datetime, offset_hours: int,
                                   url_day: str) -> None:
    post = parse(fm("title: t", line))
    assert post.date == instant
    assert post.date.utcoffset() == timedelta(hours=offset_hours)
    assert post.url == f"/{url_day}/hello-world.html"
    assert post.updated == post.date


def test_file_name_date_is_site_zone_midnight() -> None:
    post = parse(fm("title: t"), source="_posts/2022-06-10-apple.md")
    assert post.date == datetime(2022, 6, 10, tzinfo=CST)
    assert post.date.utcoffset() == timedelta(hours=8)
    assert post.url == "/2022/06/10/apple.html"


def test_front_matter_date_wins_over_file_name() -> None:
    post = parse(fm("title: t", "date: 2021-01-01 12:00:00 +0800"),
                 source="_posts/2022-06-10-apple.md")
    assert post.url == "/2021/01/01/apple.html"


@pytest.mark.parametrize(("line", "expected"), [
    ("last_modified_at: 2023-03-01 10:00:00", datetime(2023, 3, 1, 10, tzinfo=UTC)),
    ('last_modified_at: "2023-04-02 10:00:00"', datetime(2023, 4, 2, 10, tzinfo=CST)),
    ("updated: 2023-05-01", datetime(2023, 5, 1, tzinfo=CST)),
])
def test_updated_from_last_modified_at_or_updated(line: str, expected: datetime) -> None:
    post = parse(fm("title: t", "date: 2020-01-02 08:00:00 +0800", line))
    assert post.updated == expected
    assert post.date == datetime(2020, 1, 2, 8, tzinfo=CST)


@pytest.mark.parametrize(("line", "reason"), [
    ("date: yesterday", "date is not a date"),
    ('date: "2020-02-30"', "not a valid date"),
    ('date: "2020-01-01 10:00:00 +2500"', "impossible offset"),
    ("date: 0999-01-01", "outside"),
])
def test_bad_dates_reject_the_post(line: str, reason: str) -> None:
    with pytest.raises(PostError) as caught:
        parse(fm("title: t", line))
    assert reason in caught.value.message
    assert str(caught.value).startswith("_posts/2020-01-02-hello-world.md: ")


def test_no_date_anywhere_is_an_error() -> None:
    with pytest.raises(PostError) as caught:
        parse(fm("title: t"), source="notes/undated.md")
    assert "no date" in caught.value.message


# --- front matter ---------------------------------------------------------------------


@pytest.mark.parametrize(("lines", "categories"), [
    (("categories: [news, tech]",), ("news", "tech")),
    (("categories: news world",), ("news", "world")),
    (("category: Open Source",), ("Open Source",)),
    (("category: [a, b]",), ("a", "b")),
    # Both given: Jekyll's populate_categories takes the list, then the singular key
    # (its URL is /x/y/one/...; test_jekyll_front checks it against jekyll build).
    (("category: one", "categories: [x, y]"), ("x", "y", "one")),
    (("categories: [news, news, 随笔]",), ("news", "随笔")),
    ((), ()),
])
def test_categories_list_string_and_singular(lines: tuple[str, ...],
                                             categories: tuple[str, ...]) -> None:
    assert parse(fm("title: t", *lines)).categories == categories


@pytest.mark.parametrize(("lines", "tags"), [
    (("tags: [alpha, two words]",), ("alpha", "two words")),
    (("tags: alpha beta",), ("alpha", "beta")),
    (("tag: two words",), ("two words",)),
    (("tags: 红网新闻",), ("红网新闻",)),
    (("tags: [2020, 3.5]",), ("2020", "3.5")),
])
def test_tags_list_string_and_singular(lines: tuple[str, ...], tags: tuple[str, ...]) -> None:
    assert parse(fm("title: t", *lines)).tags == tags


def test_folder_categories_come_first() -> None:
    post = parse(fm("title: t", "categories: [杂谈, b]"),
                 source="a/b/_posts/2023-06-01-folder.md")
    assert post.categories == ("a", "b", "杂谈")
    assert post.url == "/a/b/%E6%9D%82%E8%B0%88/2023/06/01/folder.html"


def test_nested_name_lists_are_flattened_as_jekyll_does() -> None:
    post = parse(fm("title: t", "categories: [[a, b], c]", "tags: [x, [y, [z, null]], true]"))
    assert post.categories == ("a", "b", "c")
    assert post.tags == ("x", "y", "z", "true")


@pytest.mark.parametrize(("lines", "key"), [
    (("tags: 42",), "tags"),
    (("categories: 7",), "categories"),
    (("tags: [a, {b: c}]",), "tags"),
    (("title: [a, b]",), "title"),
    (("author: {twitter: benbalter}",), "author"),
    (("image: {alt: no path}",), "image"),
])
def test_a_value_of_an_unused_type_is_ignored_with_one_warning(lines: tuple[str, ...],
                                                                key: str) -> None:
    parsed = parse_post("_posts/2020-01-02-hello-world.md", fm(*lines).encode(), (0, 0, 0),
                        SHANGHAI)
    about_key = [w for w in parsed.warnings if f"'{key}'" in w]
    assert len(about_key) == 1 and "ignored" in about_key[0]


def test_title_falls_back_to_titleized_slug_with_a_warning() -> None:
    parsed = parse_post("_posts/2020-01-02-hello-big-world.md", fm("date: 2020-01-02").encode(),
                        (0, 0, 0), SHANGHAI)
    assert parsed.post.title == "Hello Big World"
    assert any("no title" in w for w in parsed.warnings)


def test_author_string_and_mapping() -> None:
    assert parse(fm("title: t", "author: 李雷")).author is not None
    assert parse(fm("title: t", "author: 李雷")).author.name == "李雷"  # type: ignore[union-attr]
    mapping = parse(fm("title: t", "author:", "  name: Meimei", "  email: m@example.org",
                       "  url: https://m.example.org/")).author
    assert mapping is not None
    assert (mapping.name, mapping.email, mapping.uri) == (
        "Meimei", "m@example.org", "https://m.example.org/")
    assert parse(fm("title: t")).author is None
    assert parse(fm("title: t", "author: {email: nobody@example.org}")).author is None
    login = parse(fm("title: t", "author: {display_name: Jane D, login: jane, email: j@x.org}"))
    assert login.author == Author("Jane D", "j@x.org")
    assert parse(fm("title: t", "authors: [Ann, Bob]")).author == Author("Ann")


def test_summary_image_lang_from_front_matter() -> None:
    post = parse(fm("title: t", "description: Desc.", "excerpt: Ex.", "image: /i.png",
                    "lang: en"))
    assert (post.summary, post.image, post.lang) == ("Desc.", "/i.png", "en")
    assert parse(fm("title: t", "excerpt: Ex.")).summary == "Ex."
    assert parse(fm("title: t")).summary is None


def test_published_is_read_as_jekyll_reads_it() -> None:
    """Jekyll's data.fetch("published", true): false and null hide a post; any other
    value, the string "false" and 0 among them, is true to Ruby."""
    for value in ("false", "False", "no", ""):
        with pytest.raises(SkipFile):
            parse(fm("title: t", f"published: {value}"))
    for value in ("true", '"false"', "0", "yes"):
        assert parse(fm("title: t", f"published: {value}")).title == "t"


@pytest.mark.parametrize(("text", "reason"), [
    ("---\ntitle: t\n", "not closed"),
    ("   \n", "no title"),
])
def test_an_unclosed_or_empty_file_is_a_post_only_in_posts(text: str, reason: str) -> None:
    """Jekyll publishes both from _posts (the whole text the body); elsewhere no post."""
    parsed = parse_post("_posts/2020-01-02-hello-world.md", text.encode(), (0, 0, 0), SHANGHAI)
    assert parsed.post.title == "Hello World"
    assert any(reason in w for w in parsed.warnings)
    with pytest.raises(PostError, match=r"not closed|empty file"):
        parse_post("notes/2020-01-02-hello-world.md", text.encode(), (0, 0, 0), SHANGHAI)


def test_a_posts_file_without_front_matter_is_a_post() -> None:
    parsed = parse_post("_posts/2020-01-02-plain-text.md", b"just text\n", (0, 0, 0),
                        SHANGHAI)
    assert (parsed.post.title, parsed.post.url) == ("Plain Text", "/2020/01/02/plain-text.html")
    with pytest.raises(PostError, match="no front matter"):
        parse_post("notes/2020-01-02-plain-text.md", b"just text\n", (0, 0, 0), SHANGHAI)


def test_xml_illegal_characters_are_dropped_from_front_matter() -> None:
    parsed = parse_post("_posts/2020-01-02-x.md",
                        fm('title: "A\\x01B\\x1fC"', "tags: [\"t\\x0b1\"]").encode(), (0, 0, 0),
                        SHANGHAI)
    assert parsed.post.title == "ABC"
    assert parsed.post.tags == ("t1",)


@pytest.mark.parametrize(("text", "reason"), [
    ("---\ntitle: [unclosed\n---\nx\n", "not valid YAML"),
    ("---\n- a list\n---\nx\n", "must be a mapping"),
])
def test_unreadable_files_raise_post_error_with_path(text: str, reason: str) -> None:
    with pytest.raises(PostError) as caught:
        parse(text)
    assert reason in caught.value.message
    assert caught.value.path == "_posts/2020-01-02-hello-world.md"


# --- permalinks and ids ---------------------------------------------------------------


WHEN = datetime(2021, 2, 3, 4, 5, 6, tzinfo=CST)


@pytest.mark.parametrize(("template", "expected"), [
    ("date", "/news/2021/02/03/hello-world.html"),
    ("pretty", "/news/2021/02/03/hello-world/"),
    ("ordinal", "/news/2021/034/hello-world.html"),
    ("none", "/news/hello-world.html"),
    ("weekdate", "/news/2021/W05/Wed/hello-world.html"),
    ("/:year/:i_month/:i_day/:title:output_ext", "/2021/2/3/hello-world.html"),
    ("/blog/:short_year/:slug/", "/blog/21/hello-world/"),
    ("/:categories/:title", "/news/hello-world"),
])
def test_permalink_styles_and_patterns(template: str, expected: str) -> None:
    assert build_permalink("_posts/2021-02-03-hello-world.md", template, WHEN, ["News"],
                           "hello-world", "hello-world") == expected


def test_permalink_without_categories_and_unknown_placeholder() -> None:
    assert build_permalink("p.md", "date", WHEN, [], "x", "x") == "/2021/02/03/x.html"
    with pytest.raises(PostError):
        build_permalink("p.md", "/:nope/:title", WHEN, [], "x", "x")


def test_permalink_is_sanitised_and_percent_encoded() -> None:
    url = build_permalink("p.md", "date", WHEN, ["..", "随笔", "C#"], "冬日", "冬日")
    assert url == "/%E9%9A%8F%E7%AC%94/c%23/2021/02/03/%E5%86%AC%E6%97%A5.html"
    assert ".." not in url.split("/")


@pytest.mark.parametrize(("permalink", "url", "entry_id"), [
    ("date", "/news/2020/01/02/hello-world.html", "/news/2020/01/02/hello-world"),
    ("pretty", "/news/2020/01/02/hello-world/", "/news/2020/01/02/hello-world"),
    ("none", "/news/hello-world.html", "/news/hello-world"),
])
def test_entry_id_is_the_url_folder_plus_slug(permalink: str, url: str, entry_id: str) -> None:
    post = parse(fm("title: t", "date: 2020-01-02 10:00:00 +0800", "categories: news"),
                 permalink=permalink)
    assert (post.url, post.entry_id) == (url, entry_id)


def test_front_matter_permalink_and_its_entry_id() -> None:
    # Ruby's File.dirname('/notes/hello-again/') is '/notes': Jekyll's post.id drops the
    # permalink's last segment even when it ends with a slash.
    post = parse(fm("title: t", "date: 2023-04-01 08:00:00 +0800",
                    "permalink: /notes/hello-again/"), source="_posts/2023-04-01-custom.md")
    assert post.url == "/notes/hello-again/"
    assert post.entry_id == "/notes/custom"


def test_slug_override_shapes_title_slug_and_id() -> None:
    post = parse(fm("title: t", "date: 2023-05-20 15:45:00 +0800", "slug: Moving Day"),
                 source="_posts/2023-05-20-slug-override.md")
    assert post.url == "/2023/05/20/Moving-Day.html"
    assert post.entry_id == "/2023/05/20/Moving%20Day"
    pattern = parse(fm("title: t", "date: 2023-05-20 15:45:00 +0800", "slug: Moving Day",
                       "permalink: /:slug/"), source="_posts/2023-05-20-slug-override.md")
    assert pattern.url == "/moving-day/"


def test_id_and_guid_are_ignored_unless_the_setting_opts_in() -> None:
    assert parse(fm("title: t", "id: urn:uuid:1234")).entry_id == "/2020/01/02/hello-world"
    opted = site_rules("Asia/Shanghai", "date", 2_000_000, front_matter_ids=True)
    for line, found in (("id: urn:uuid:1234", "urn:uuid:1234"),
                        ("guid: tag:x,2020:1", "tag:x,2020:1")):
        parsed = parse_post("_posts/2020-01-02-hello-world.md", fm("title: t", line).encode(),
                            (0, 0, 0), opted)
        assert parsed.post.entry_id == found


def test_a_posts_own_permalink_is_literal_and_a_txt_post_keeps_its_extension() -> None:
    assert parse(fm("title: t", "permalink: pretty")).url == "/pretty"
    txt = parse_post("_posts/2020-01-02-notes.txt", fm("title: t").encode(), (0, 0, 0),
                     SHANGHAI).post
    assert (txt.url, txt.markup) == ("/2020/01/02/notes.txt", "html")


def test_escape_path_matches_jekyll() -> None:
    assert escape_path("a b/c?d#e%f~g:h@i+j") == "a%20b/c%3Fd%23e%25f~g:h@i+j"
    assert escape_path("随笔") == "%E9%9A%8F%E7%AC%94"


# --- bodies ---------------------------------------------------------------------------


def test_body_urls_are_made_absolute() -> None:
    from lxml import html as lxml_html

    body = render_body(
        "[a](b.html) [r](/root.html) [p](//cdn.example.net/x.js) ![i](img/c.png) "
        "[q](?page=2) [f](#top) [u](../up.html) [abs](https://other.example/y)",
        "markdown", "https://example.org/blog/2020/01/02/post.html")
    doc = lxml_html.fragment_fromstring(body.html, create_parent="div")
    urls = [el.get("href") or el.get("src") for el in doc.iter("a", "img")]
    assert urls == [
        "https://example.org/blog/2020/01/02/b.html",
        "https://example.org/root.html",
        "https://cdn.example.net/x.js",
        "https://example.org/blog/2020/01/02/img/c.png",
        "https://example.org/blog/2020/01/02/post.html?page=2",
        "https://example.org/blog/2020/01/02/post.html#top",
        "https://example.org/blog/2020/01/up.html",
        "https://other.example/y",
    ]


def test_each_page_resolves_its_own_urls_and_keeps_its_own_embeds() -> None:
    """The sanitiser is made once a page (its body and excerpt share it): many pages, in
    turn and back again, each resolve against their own URL, and the iframe hosts a
    render is given are the ones it keeps."""
    text = '[a](b.html) [f](#top)\n\n<iframe src="https://player.vimeo.com/video/1"></iframe>'
    pages = [f"https://example.org/{n}/post.html" for n in range(50)]
    for url in [*pages, *reversed(pages)]:
        body = render_body(text, "markdown", url, BodyRules(iframe_hosts=("vimeo.com",)))
        assert f'href="{url[:-9]}b.html"' in body.html
        assert f'href="{url}#top"' in body.html
        assert 'src="https://player.vimeo.com/video/1"' in body.html
        assert "<iframe" not in render_body(text, "markdown", url,
                                            BodyRules(iframe_hosts=("youtube.com",))).html


def test_excerpt_and_body_are_those_of_fresh_renders() -> None:
    """A post's body as its entry shows it is the render of its text, and its summary
    the plain text of its excerpt rendered as a document of its own (Jekyll's), with
    the link definitions the excerpt uses, whatever was rendered before."""
    text = ('Lead with a [ref] and a note[^1], "quoted".\n\n```python\nx = 1\n```\n\n'
            "*[HTML]: Hyper Text\n\nHTML [ref]\n\n[ref]: ../x.html\n[^1]: The note.\n")
    post = parse("---\ntitle: T\n---\n" + text)
    cache = BodyCache(Settings(), read_body=lambda _post: text)
    for _ in range(2):  # the second time from the cache
        body = cache.body(post, "https://example.org")
        url = "https://example.org" + post.url
        assert body.html == render_body(text, "markdown", url).html
        excerpt = render_body(excerpt_source(text, "\n\n"), "markdown", url)
        assert body.summary == plain_summary(excerpt.html)
    assert body.summary == "Lead with a ref and a note1, “quoted”. The note. ↩"


def test_body_is_sanitised_and_summary_is_first_paragraph() -> None:
    from lxml import html as lxml_html

    body = render_body('<p onclick="x()">One &amp; <b>two</b></p><script>alert(1)</script>'
                       "<p>Second</p>", "html", "https://example.org/p.html")
    doc = lxml_html.fragment_fromstring(body.html, create_parent="div")
    assert doc.xpath("//script") == []
    assert doc.xpath("//@onclick") == []
    assert body.summary == "One & two"
    assert summary_of("<p>" + "x" * 500 + "</p>", limit=10) == "x" * 9 + "…"


# --- the index and names in URLs ----------------------------------------------------------


ODD_NAMES = ["a/b", "why?", "C#", "100%", "..", ".", "../etc", ".hidden", "back\\slash",
             "ti~lde", "~41", "sp ace", "随笔", "Café", "한국어", "x.atom"]


@pytest.mark.parametrize("name", ODD_NAMES)
def test_name_segments_round_trip_and_are_safe(name: str) -> None:
    segment = name_to_segment(name)
    assert segment.isascii()
    assert "/" not in segment and "?" not in segment and "#" not in segment
    assert unquote(segment) not in {".", ".."}
    assert not unquote(segment).startswith(".")
    assert segment_to_name(unquote(segment)) == unicodedata.normalize("NFC", name)


def test_documented_escapes() -> None:
    assert name_to_segment("a/b") == "a~2Fb"
    assert name_to_segment("../x") == "~2E.~2Fx"
    assert name_to_segment("C#") == "C~23"
    assert name_to_segment("100%") == "100~25"
    assert name_to_segment("随笔") == "%E9%9A%8F%E7%AC%94"
    # A raw name without our escapes comes back as itself.
    assert segment_to_name("随笔") == "随笔"
    assert segment_to_name("100%") == "100%"


@settings(max_examples=60, deadline=None)
@given(st.text(min_size=1, max_size=12).filter(lambda s: not s.isspace()))
def test_any_name_round_trips(name: str) -> None:
    segment = name_to_segment(name)
    assert segment.isascii() and "/" not in unquote(segment)
    assert segment_to_name(unquote(segment)) == unicodedata.normalize("NFC", name)


def _post(source: str, when: datetime, cats: tuple[str, ...] = (),
          tags: tuple[str, ...] = ()) -> Post:
    slug = source.rsplit("/", 1)[-1].removesuffix(".md")
    return Post(source=source, stamp=(0, 0, 0), markup="markdown", slug=slug, title=slug,
                date=when, updated=when, categories=cats, tags=tags, url=f"/{slug}.html",
                entry_id=f"/{slug}")


def test_index_orders_newest_first_ties_by_path_and_hides_future() -> None:
    base = datetime(2022, 6, 10, tzinfo=CST)
    posts = [
        _post("_posts/zebra.md", base, ("news",)),
        _post("_posts/apple.md", base, ("news",)),
        _post("_posts/old.md", base - timedelta(days=1), ("news",)),
        _post("_posts/future.md", base + timedelta(days=1), ("news",)),
    ]
    index = SiteIndex(posts, now=base.timestamp())
    assert [p.slug for p in index.posts] == ["apple", "zebra", "old"]
    assert index.next_reveal == (base + timedelta(days=1)).timestamp()
    shown = SiteIndex(posts, now=base.timestamp(), future=True)
    assert [p.slug for p in shown.posts] == ["future", "apple", "zebra", "old"]
    category = index.term(Kind.CATEGORY, "news")
    assert category is not None and len(category.posts) == 3


def test_index_terms_nfc_nfd_and_case() -> None:
    when = datetime(2022, 1, 1, tzinfo=CST)
    nfd = unicodedata.normalize("NFD", "Café")
    posts = [_post("_posts/a.md", when, tags=(nfd, "Tech")),
             _post("_posts/b.md", when, tags=("Café", "tech"))]
    index = SiteIndex(posts, now=when.timestamp())
    term = index.term(Kind.TAG, "Café")
    assert term is not None and len(term.posts) == 2
    assert index.term(Kind.TAG, nfd) is term
    # 'Tech' and 'tech' are two tags (Jekyll's are case-sensitive); each exact name wins.
    tech = index.term(Kind.TAG, "Tech")
    assert tech is not None and [p.slug for p in tech.posts] == ["a"]
    assert index.term(Kind.TAG, "nope") is None
    assert links.select(index, Kind.CATEGORY, "anything") is None


def _index_view(index: SiteIndex) -> tuple[object, ...]:
    """Everything a request can read from an index."""
    def terms(kind: Kind) -> dict[str, tuple[str, tuple[str, ...]]]:
        table = index.categories if kind is Kind.CATEGORY else index.tags
        return {k: (t.name, tuple(p.source for p in t.posts)) for k, t in table.items()}
    return (tuple(p.source for p in index.posts), terms(Kind.CATEGORY), terms(Kind.TAG),
            {url: p.source for url, p in index.by_url.items()}, index.next_reveal,
            [index.term(Kind.TAG, n) is not None for n in ("tech", "TECH", "Café")])


_names = st.lists(st.sampled_from(["news", "Tech", "tech", "Café",
                                   unicodedata.normalize("NFD", "Café"), "日记"]),
                  max_size=3, unique=True).map(tuple)
_edits = st.lists(st.tuples(st.integers(0, 11), st.booleans(), st.integers(0, 3), _names,
                            _names), min_size=1, max_size=8)


@settings(max_examples=150, deadline=None)
@given(_edits, _edits)
def test_an_updated_index_is_the_index_built_whole(first: list[tuple[int, bool, int, tuple[
        str, ...], tuple[str, ...]]], then: list[tuple[int, bool, int, tuple[str, ...],
                                                     tuple[str, ...]]]) -> None:
    """Any sequence of adds, edits and deletes applied to an index gives what a whole
    build of the same posts gives: same order, terms, term names, URLs."""
    base = datetime(2022, 6, 10, tzinfo=CST)
    now = base.timestamp()

    def apply(posts: dict[str, Post], edits: list[tuple[int, bool, int, tuple[str, ...],
                                                        tuple[str, ...]]]) -> dict[str, Post]:
        out = dict(posts)
        for n, keep, day, cats, tags in edits:
            source = f"_posts/p{n}.md"
            if keep:
                out[source] = _post(source, base - timedelta(days=day), cats, tags)
            else:
                out.pop(source, None)
        return out

    before = apply({}, first)
    after = apply(before, then)
    index = SiteIndex(before.values(), now=now)
    changed = {s for s in before.keys() | after.keys() if before.get(s) is not after.get(s)}
    updated = index.updated([before[s] for s in changed if s in before],
                            [after[s] for s in changed if s in after], now=now)
    assert updated is not None
    assert _index_view(updated) == _index_view(SiteIndex(after.values(), now=now))
    # The old index is untouched.
    assert _index_view(index) == _index_view(SiteIndex(before.values(), now=now))


def test_an_update_touching_a_future_post_or_a_shared_url_asks_for_a_whole_build() -> None:
    base = datetime(2022, 6, 10, tzinfo=CST)
    index = SiteIndex([_post("_posts/a.md", base)], now=base.timestamp())
    future = _post("_posts/f.md", base + timedelta(days=1))
    assert index.updated([], [future], now=base.timestamp()) is None
    twin = _post("_posts/elsewhere/a.md", base)  # the same URL, /a.html
    assert index.updated([], [twin], now=base.timestamp()) is None


def test_an_index_with_a_post_left_out_keeps_its_order_through_an_update() -> None:
    """A post left out for a URL another has (its sort key dropped with it) leaves the
    index's order as a whole build makes it, and an update after it too."""
    base = datetime(2022, 6, 10, tzinfo=CST)
    now = base.timestamp()
    posts = [_post(f"_posts/p{n}.md", base - timedelta(days=n), ("news",), ()) for n in range(5)]
    twin = _post("_posts/elsewhere/p2.md", base - timedelta(hours=1), ("news",), ())
    index = SiteIndex([*posts, twin], now=now)
    assert posts[2].source in index.left_out and len(index.posts) == 5  # (the newer keeps it)
    assert index._keys == sorted(p.sort_key for p in index.posts)
    moved = _post("_posts/p4.md", base - timedelta(hours=2), ("news",), ())
    updated = index.updated([posts[4]], [moved], now=now)
    assert updated is not None
    assert _index_view(updated) == _index_view(SiteIndex([*posts[:4], moved, twin], now=now))


@pytest.mark.parametrize("line, source, utc, url_day", [
    # Asia/Shanghai kept local mean time, +08:05:43, until 1901.
    ('date: "1800-01-01 10:00:00"', "_posts/1800-01-01-old.md",
     datetime(1800, 1, 1, 1, 54, 17, tzinfo=UTC), "/1800/01/01/"),
    ("title: From the file name", "_posts/1700-01-01-older.md",
     datetime(1699, 12, 31, 15, 54, 17, tzinfo=UTC), "/1700/01/01/"),
    # No zone is behind -12:00 (and jing rejects xsd:dateTime offsets past -13:00).
    ("date: 2020-04-15 00:48:08 -13:50", "_posts/2020-04-15-far-west.md",
     datetime(2020, 4, 15, 14, 38, 8, tzinfo=UTC), "/2020/04/15/"),
])
def test_an_offset_no_zone_uses_is_shown_in_utc(line: str, source: str, utc: datetime,
                                                url_day: str) -> None:
    """An offset with seconds (a zone's local mean time) or outside -12:00..+14:00 keeps
    its instant, in UTC, and the URL keeps the site zone's day."""
    post = parse(fm(line), source)
    assert post.date == utc and post.date.utcoffset() == timedelta(0)
    assert url_day in post.url


def test_background_work_waits_while_a_body_is_rendered() -> None:
    """A server's background work (warm_up, the index's write) steps aside while a
    reader's feed renders bodies, and goes on once none has been for a moment."""
    pauses: list[float] = []

    def liquid(text: str) -> str:  # runs inside the body's rendering
        wait_quiet(quiet=0.1, at_most=1.0, sleep=pauses.append)
        return text

    assert render_body("Hello", "markdown", "https://example.org/a.html",
                       liquid=liquid).html == "<p>Hello</p>"
    assert sum(pauses) >= 1.0  # all it may wait: the body was being rendered throughout
    pauses.clear()
    wait_quiet(quiet=0.0, sleep=pauses.append)
    assert pauses == []
