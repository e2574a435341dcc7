"""Post bodies as Jekyll renders them, proven against the real ``jekyll build``: each test
writes one post per case (named for it), builds the site with Jekyll and with us, and
compares the entry's content as normalised HTML.

One deliberate difference is undone before comparing: our bodies carry absolute URLs
(a feed reader has no page to resolve them against), Jekyll's keep them as written, so
Jekyll's are made absolute against the post's link first.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest
from flask import Flask
from lxml import etree
from lxml import html as lxml_html

from .jekyll import A, atom_entries, jekyll_site, needs_jekyll, normalise_html

pytestmark = needs_jekyll

CONFIG = """\
title: Bodies
url: https://example.org
baseurl: /blog
timezone: UTC
plugins: [jekyll-feed]
"""


def post(title: str, body: str, extra: str = "") -> str:
    return f"---\ntitle: {title}\n{extra}---\n{textwrap.dedent(body).lstrip()}"


def _absolute(content: str, base: str) -> str:
    root = lxml_html.fragment_fromstring(content, create_parent="div")
    root.make_links_absolute(base, resolve_base_href=False)
    inner = (root.text or "") + "".join(
        lxml_html.tostring(child, encoding="unicode") for child in root)
    return normalise_html(inner)


def jekyll_contents(data: bytes) -> dict[str, str]:
    """Title -> Jekyll's entry content, its URLs made absolute against the entry link."""
    root = etree.fromstring(data, etree.XMLParser(resolve_entities=False, no_network=True))
    out = {}
    for entry in root.findall(f"{A}entry"):
        link = next(link.get("href") for link in entry.findall(f"{A}link"))
        out[entry.findtext(f"{A}title") or ""] = _absolute(
            entry.findtext(f"{A}content") or "", link)
    return out


Compare = Callable[..., tuple[dict[str, str], dict[str, str]]]


@pytest.fixture
def both(tmp_path: Path, make_app: Callable[..., Flask]) -> Compare:
    """Build the posts with Jekyll and with us: (theirs, ours), title -> content."""

    def build(files: Mapping[str, str], config: str = CONFIG
              ) -> tuple[dict[str, str], dict[str, str]]:
        root = tmp_path / "site"
        site = jekyll_site(root, {"_config.yml": config, **files})
        theirs = jekyll_contents(site.read("feed.xml"))
        data = make_app(root).test_client().get("/feed.xml").data
        ours = {e["title"]: e["content"] for e in atom_entries(data)}
        assert set(ours) == set(theirs)
        return theirs, ours

    return build


# --- sanitising: what a news site embeds stays ----------------------------------------

def test_iframe_from_a_video_host_is_kept(both: Compare) -> None:
    theirs, ours = both({
        "_posts/2021-01-01-youtube.md": post("youtube", """\
            <iframe width="560" height="315" src="https://www.youtube.com/embed/abc"
              frameborder="0" allowfullscreen></iframe>
            """),
        "_posts/2021-01-02-bilibili.md": post("bilibili", """\
            <iframe src="//player.bilibili.com/player.html?bvid=BV1x" scrolling="no"
              allowfullscreen="true"></iframe>
            """),
    })
    assert ours["youtube"] == theirs["youtube"]
    assert "<iframe" in ours["youtube"]
    # Protocol-relative: made https, like every relative URL (the page is https).
    assert ours["bilibili"] == theirs["bilibili"]


def test_inline_style_keeps_a_safe_subset(both: Compare) -> None:
    theirs, ours = both({
        "_posts/2021-01-01-style-safe.md": post("style-safe", """\
            <p style="text-align: center; color: #333">Centred</p>
            """),
        "_posts/2021-01-02-style-overlay.md": post("style-overlay", """\
            <p style="text-align: center; position: fixed; color: #333; z-index: 9">Centred</p>
            """),
    })
    assert ours["style-safe"] == theirs["style-safe"]
    assert ours["style-overlay"] == theirs["style-safe"]  # position and z-index gone


def test_scripts_handlers_and_other_iframes_stay_out(both: Compare) -> None:
    theirs, ours = both({
        "_posts/2021-01-01-hostile.md": post("hostile", """\
            <p>Before</p>
            <iframe src="https://evil.example/x"></iframe>
            <iframe srcdoc="<script>alert(1)</script>" src="https://www.youtube.com/embed/a"></iframe>
            <script>alert(1)</script>
            <p><a href="/x" onclick="evil()">x</a><input type="text" name="q"></p>
            <form action="/steal"><input type="password"></form>
            """),
        "_posts/2021-01-02-clean.md": post("clean", """\
            <p>Before</p>
            <iframe src="https://www.youtube.com/embed/a"></iframe>
            <p><a href="/x">x</a></p>
            """),
    })
    assert "evil" not in ours["hostile"] and "script" not in ours["hostile"]
    assert "srcdoc" not in ours["hostile"]
    assert ours["hostile"] == theirs["clean"]


def test_iframe_hosts_is_a_setting(tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    files = {"_config.yml": CONFIG, "_posts/2021-01-01-own.md": post("own", """\
        <iframe src="https://video.example.net/embed/1"></iframe>
        <iframe src="https://www.youtube.com/embed/abc"></iframe>
        """)}
    site = jekyll_site(tmp_path / "site", files)
    theirs = jekyll_contents(site.read("feed.xml"))["own"]
    app = make_app(tmp_path / "site", iframe_hosts="video.example.net")
    [ours] = atom_entries(app.test_client().get("/feed.xml").data)
    assert ours["content"] == normalise_html(
        theirs.replace('<iframe src="https://www.youtube.com/embed/abc"></iframe>', ""))
    assert "video.example.net" in ours["content"] and "youtube" not in ours["content"]


# --- Markdown as kramdown writes it ---------------------------------------------------

KRAMDOWN_CASES = {
    "footnotes": """\
        A claim[^1] and another[^note].

        [^1]: The first note.
        [^note]: The second, *named*.
        """,
    "header-ids": """\
        ## A "quoted" heading -- with dashes...

        ### Same heading

        ### Same heading

        ## Ünïcode and `code` 2021!
        """,
    "typography": """\
        It's "quoted" -- and --- dashes... 'single' and << spaced >> guillemets.
        """,
    "table-alignment": """\
        | left | centre | right | none |
        |:-----|:------:|------:|------|
        | a    | b      | c     | d    |
        """,
    "block-ial": """\
        A para with class.
        {: .lead #intro}

        ## Heading
        {: #custom-id}

        > quoted
        {: .pull}
        """,
    "span-ial": """\
        This is *span*{: .hl} and [a link](https://example.com/){: title="T" .ext} text.
        """,
    "toc": """\
        * toc
        {:toc}

        ## First

        ### Inner

        ## Second
        """,
    "markdown-in-html": """\
        <div class="box" markdown="1">
        Inside **bold** and a [link](https://example.com/).
        </div>
        """,
    "definition-list": """\
        Term
        : Definition one

        Other term
        : Definition two
        """,
    "abbreviations": """\
        HTML and CSS are here, HTMLX is not.

        *[HTML]: Hyper Text Markup Language
        *[CSS]: Cascading Style Sheets
        """,
    "math": """\
        $$ x^2 + 1 $$

        Inline $$a+b < c$$ math.
        """,
    "fenced-code": """\
        ```python
        def f(x):
            return x + 1  # note
        ```

        ```
        plain <text>
        ```
        """,
    "nested-lists": "* a\n  * b\n  * c\n* d\n\n1. one\n2. two\n",
    "blockquotes": "> quoted *text*\n> more\n\n> # Heading in quote\n",
    "cjk-header-id": "## 中文 标题\uff1a测试\n\n正文。\n",
    "apostrophes": "The '90s and James' book, \"it's\" ok.\n",
    "line-breaks": "line one\nline two  \nline three\n",
    "autolinks": "See https://example.com/x and <https://example.com/y>.\n",
    "html-block": "<div class=\"x\">\n<p>raw</p>\n</div>\n\nAfter.\n",
    "image-with-title": "![alt text](/img/a.png \"Title\")\n",
    "entities": "&copy; 2021 &mdash; AT&T < 5\n",
    "emphasis-and-strikethrough": "snake_case_word and *em* **strong** ~~del~~\n",
    "table-without-outer-pipes": "a | b\n--|--\n1 | 2\n",
    "setext-headers": "Title\n=====\n\nSub\n---\n",
    "horizontal-rule": "a\n\n---\n\nb\n",
    "code-span": "Use `a < b` here.\n",
    "indented-code": "Para\n\n    code line\n    more\n",
    "header-with-link": "## A [link](http://x.com) heading\n",
    "footnote-referenced-twice": "One[^a] two[^a].\n\n[^a]: Note.\n",
    "backslash-escapes": "\\*not em\\* and 1\\. x\n",
    "math-block-on-its-lines": "$$\nx = 1\n$$\n\nText.\n",
    "block-ial-before": "{: .before}\nA para.\n",
    "header-explicit-id": "## Head {#my-id}\n\n### Other ###\n",
    "nomarkdown": "{::nomarkdown}\n<b>raw *x*</b>\n{:/nomarkdown}\n",
    "span-markdown-in-html": "<span markdown=\"1\">*em*</span> text\n",
    "list-ial": "* a\n* b\n{: .list}\n",
    "table-ial": "| a | b |\n|---|---|\n| 1 | 2 |\n{: .tbl}\n",
    "footnote-in-list": "* item[^n]\n\n[^n]: Note *x*.\n",
    "inline-html-and-markdown": "<em>raw</em> and **md**\n",
    "email-autolink": "<me@example.com>\n",
    "task-list": "- [ ] todo\n- [x] done\n",
    "attribute-list-definitions": "{:myref: .special title=\"T\"}\n\nPara.\n{: myref #p1}\n",
    # kramdown's HTML block ends with its element: the next line is Markdown again.
    "html-block-ends-at-its-closing-tag": """\
        <figure><img src="/a.png" alt="A"></figure>
        Caption *here*.

        <div class="note">
        <p>nested</p>
        </div>
        Tail **bold**.

        <div>one line</div> trailing *text*

        <iframe src="https://www.youtube.com/embed/x"></iframe>
        After the *embed*.

        > <div>
        > in a quote
        > </div>
        > After *it*.
        """,
    # kramdown's tables need no |---| line: a block of lines with pipes is one.
    "pipe-lines-without-separator": """\
        Intro.

        Photo: Reuters | John Doe

        a | *b* | `c|d`
        e | f

        Text line first
        then a | pipe.

        * item | cell
        """,
    # kramdown curls each quote where it stands, paired or not (kramdown_quotes).
    "smart-quote-corners": """\
        'Twas 'tis, 5'10" and 6" tall, a lone " quote, the '80s-'90s, "Start

        "[link](https://example.com/)" and "*em*" and *"in em"* and "`code`" end "

        He said, "'Quoted' words." x"y"z ("a") -"b" '99s "a."b 中文"引号" \\"esc\\"
        """,
    # kramdown writes a plain <ol>, whatever the first number (a reader shows 1.) ...
    "ordered-list-from-three": "3. starts at three\n4. four\n",
    # ... but an attribute list's start stays.
    "ordered-list-start-from-ial": "1. five\n2. six\n{: start=\"5\"}\n",
    # CommonMark's '1)' items are no list in kramdown.
    "paren-numbers-are-text": "2) paren\n3) two\n",
    "strong-around-em": "***both*** and ***more***\n",
}


@pytest.mark.parametrize("case", sorted(KRAMDOWN_CASES))
def test_kramdown_case(both: Compare, case: str) -> None:
    theirs, ours = both({f"_posts/2021-01-01-{case}.md": post(case, KRAMDOWN_CASES[case])})
    assert ours[case] == theirs[case]


def test_kramdown_comment_extension(both: Compare) -> None:
    """{::comment} is written as an HTML comment by Jekyll; the sanitiser drops comments."""
    theirs, ours = both({"_posts/2021-01-01-comment.md": post(
        "comment", "{::comment}\nhidden\n{:/comment}\n\nShown.\n")})
    assert ours["comment"] == theirs["comment"].replace("<!-- hidden -->", "")
    assert "hidden" not in ours["comment"]


def test_smart_quotes_setting(both: Compare) -> None:
    theirs, ours = both({"_posts/2021-01-01-smart-quotes.md": post("smart-quotes", """\
        It's "quoted" and 'single', in guillemets.
        """)}, CONFIG + "kramdown:\n  smart_quotes: lsaquo,rsaquo,laquo,raquo\n")
    assert ours["smart-quotes"] == theirs["smart-quotes"]
    assert "\u00ab" in ours["smart-quotes"]


# --- Liquid first ---------------------------------------------------------------------

LIQUID_FILES = {
    "_includes/note.html": '<aside class="note">{{ include.text }} in {{ site.title }}</aside>\n',
    "_posts/2021-01-01-target.md": post("target", "The target.\n"),
    "_posts/2021-01-02-site-and-page.md": post("site-and-page", """\
        Base {{ site.baseurl }}, title {{ site.title }}; page {{ page.title }}, {{ page.url }},
        {{ page.video }}.
        """, "video: abc123\n"),
    "_posts/2021-01-03-post-url-and-link.md": post("post-url-and-link", """\
        [one]({% post_url 2021-01-01-target %}) and [two]({% link _posts/2021-01-01-target.md %}).
        """),
    "_posts/2021-01-04-include.md": post("include", """\
        {% include note.html text="Hi" %}
        """),
    "_posts/2021-01-05-highlight.md": post("highlight", """\
        {% highlight python %}
        def f(x):
            return x + 1
        {% endhighlight %}
        """),
    "_posts/2021-01-06-raw.md": post("raw", """\
        {% raw %}{{ not rendered }} and {% if %}{% endraw %}
        """),
    "_posts/2021-01-07-url-filters.md": post("url-filters", """\
        ![img]({{ "/img/x.png" | relative_url }}) {{ "/a" | absolute_url }}
        """),
    "_posts/2021-01-08-text-filters.md": post("text-filters", """\
        {{ "a & b <c>" | xml_escape }} {{ "Hello World!" | slugify }} `{{ page.tags | jsonify }}`
        {{ page.date | date_to_xmlschema }} {{ page.date | date_to_string }}
        {{ page.tags | array_to_sentence_string }}

        {{ "**md**" | markdownify }}
        """, "tags: [x, y, z]\n"),
    "_posts/2021-01-09-render-with-liquid-false.md": post("render-with-liquid-false", """\
        Kept {{ site.baseurl }} as is.
        """, "render_with_liquid: false\n"),
    "_data/people.yml": "ann: {name: Ann}\n",
    "_data/list.json": "[1, 2]\n",
    "_posts/2021-01-11-include-with-variables.md": post(
        "include-with-variables", "{% include {{ page.inc }} text=page.title %}\n",
        "inc: note.html\n"),
    "_posts/2021-01-12-date-filters.md": post("date-filters", """\
        {{ page.date | date: "%Y-%m-%d" }} {{ page.date | date_to_long_string: "ordinal", "US" }}
        """),
    "_posts/2021-01-13-site-data.md": post("site-data", """\
        {{ site.data.people.ann.name }} {% for p in site.data.list %}{{ p }},{% endfor %}
        """),
    "_posts/2021-01-14-assign-and-capture.md": post("assign-and-capture", """\
        {% assign x = "a" | upcase %}{% capture y %}b{{ x }}{% endcapture %}{{ y }} {{ site.url }}
        """),
    "_posts/2021-01-15-highlight-linenos.md": post("highlight-linenos", """\
        {% highlight ruby linenos %}
        puts 1
        puts 2
        {% endhighlight %}
        """),
    "_posts/2021-01-16-link-with-variables.md": post(
        "link-with-variables", "[x]({% link {{ page.target }} %})\n",
        "target: _posts/2021-01-01-target.md\n"),
    "_posts/2021-01-17-unless-and-case.md": post("unless-and-case", """\
        {% unless page.missing %}shown{% endunless %} {% case 2 %}{% when 2 %}two{% endcase %}
        """),
    "_posts/2021-01-18-where-exp-and-group-by.md": post("where-exp-and-group-by", """\
        {% assign eds = site.people | where_exp: "p", "p.role == 'editor'" -%}
        {% for p in eds %}{{ p.name }} {% endfor %}
        {% assign groups = site.people | group_by: "role" -%}
        {% for g in groups %}{{ g.name }}={{ g.size }} {% endfor %}
        {{ site.people | size | to_integer | plus: 1 }}
        """),
    "_posts/2021-01-19-site-posts.md": post("site-posts", """\
        {% for p in site.posts limit: 3 %}[{{ p.title }}]({{ p.url | relative_url }}) {% endfor %}
        {{ site.categories.news | size }} {{ site.tags.x.first.title }} {{ site.posts.size }}
        """, "categories: [news]\ntags: [x]\n"),
    "_posts/2021-01-10-where.md": post("where", """\
        {% assign found = site.people | where: "role", "editor" -%}
        {% for p in found %}{{ p.name }} {% endfor %}
        """),
}
LIQUID_CONFIG = CONFIG + """\
feed:
  posts_limit: 50
people:
  - {name: Ann, role: editor}
  - {name: Bob, role: writer}
  - {name: Cy, role: editor}
"""


@pytest.mark.parametrize("case", sorted(
    path.split("-", 3)[3].removesuffix(".md") for path in LIQUID_FILES
    if path.startswith("_posts/") and "target" not in path))
def test_liquid_case(both: Compare, case: str) -> None:
    theirs, ours = both(LIQUID_FILES, LIQUID_CONFIG)
    assert ours[case] == theirs[case]


def test_liquid_error_shows_the_text_as_written(both: Compare,
                                                caplog: pytest.LogCaptureFixture) -> None:
    broken = 'Before {{ "\\"hi\\"" }} after, and {{ site.title }}.\n'
    theirs, ours = both({
        "_posts/2021-01-01-liquid-error.md": post("liquid-error", broken),
        "_posts/2021-01-02-as-written.md": post("as-written", broken,
                                                "render_with_liquid: false\n"),
    })
    assert ours["liquid-error"] == theirs["as-written"]
    assert "{{ site.title }}" in ours["liquid-error"]
    assert any("2021-01-01-liquid-error.md" in r.getMessage() and "Liquid" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")


@pytest.mark.parametrize("tag", [
    "{% include ../secret.txt %}",
    "{% include /etc/hostname %}",
    "{% include link.html %}",
    "{% include_relative ../../secret.txt %}",
    "{% include_relative ../../../secret.txt %}",
])
def test_a_template_reads_nothing_outside_the_content_folder(
        tmp_path: Path, make_app: Callable[..., Flask], tag: str) -> None:
    (tmp_path / "secret.txt").write_text("SECRET", encoding="utf-8")
    root = tmp_path / "site"
    (root / "_includes").mkdir(parents=True)
    (root / "_includes" / "link.html").symlink_to(tmp_path / "secret.txt")
    (root / "_posts").mkdir()
    (root / "_config.yml").write_text(CONFIG, encoding="utf-8")
    (root / "_posts" / "2021-01-01-escape.md").write_text(
        post("escape", f"Try {tag} here.\n"), encoding="utf-8")
    [entry] = atom_entries(make_app(root).test_client().get("/feed.xml").data)
    assert "SECRET" not in entry["content"]
    assert tag.replace('"', "&quot;") in entry["content"]  # shown as written


def test_a_moved_post_url_reaches_the_posts_that_link_to_it(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    """A body's Liquid reads other posts and _config.yml: when they change, the cached
    body and feed must not hide it."""
    root = tmp_path / "site"
    files = {
        "_posts/2021-01-01-target.md": post("target", "The target.\n"),
        "_posts/2021-01-02-linking.md": post(
            "linking", "[t]({% post_url 2021-01-01-target %}) in {{ site.title }}\n"),
    }
    jekyll_site(root, {"_config.yml": CONFIG, **files})
    app = make_app(root)
    client = app.test_client()
    client.get("/feed.xml")
    client.get("/feed.xml")  # the second rendering keys the body by the site's version
    moved = {"_config.yml": CONFIG.replace("title: Bodies", "title: Renamed"),
             "_posts/2021-01-01-target.md": post("target", "The target.\n",
                                                 "permalink: /moved/\n")}
    site = jekyll_site(root, moved)  # the same folder, edited, built again
    app.extensions["feeds"].refresh()
    ours = {e["title"]: e["content"] for e in atom_entries(client.get("/feed.xml").data)}
    theirs = jekyll_contents(site.read("feed.xml"))
    assert ours["linking"] == theirs["linking"]
    assert "/blog/moved/" in ours["linking"] and "Renamed" in ours["linking"]


@pytest.mark.parametrize("case", ["footnotes", "toc", "span-ial"])
def test_post_page_article_is_jekylls_page(tmp_path: Path, make_app: Callable[..., Flask],
                                           case: str) -> None:
    """The post page's article: Jekyll's page for a post without a layout is its body."""
    root = tmp_path / "site"
    rel = f"2021/01/01/{case}.html"
    site = jekyll_site(root, {"_config.yml": CONFIG, "_includes/note.html": "",
                              f"_posts/2021-01-01-{case}.md": post(case,
                                                                   KRAMDOWN_CASES[case])})
    theirs = _absolute(site.read(rel).decode("utf-8"), f"https://example.org/blog/{rel}")
    response = make_app(root).test_client().get(f"/{rel}")
    assert response.status_code == 200
    page = lxml_html.document_fromstring(response.data)
    [content] = page.xpath("//article/div[@class='content']")
    inner = (content.text or "") + "".join(
        lxml_html.tostring(child, encoding="unicode") for child in content)
    assert normalise_html(inner) == theirs


@pytest.mark.parametrize("body", [
    "{% for i in (1..1000000000) %}x{% endfor %}",
    "{% for i in (1..5000) %}{% for j in (1..5000) %}x{% endfor %}{% endfor %}",
    "{% include loop.html %}",
])
def test_liquid_that_would_not_end_is_an_error(tmp_path: Path, make_app: Callable[..., Flask],
                                                body: str) -> None:
    """Bounded: a runaway loop or an include of itself is a Liquid error, and the post is
    shown as written (Jekyll would run on, or stop at its own nesting bound)."""
    root = tmp_path / "site"
    (root / "_includes").mkdir(parents=True)
    (root / "_includes" / "loop.html").write_text("{% include loop.html %}", encoding="utf-8")
    (root / "_posts").mkdir()
    (root / "_config.yml").write_text(CONFIG, encoding="utf-8")
    (root / "_posts" / "2021-01-01-runaway.md").write_text(post("runaway", body + "\n"),
                                                           encoding="utf-8")
    [entry] = atom_entries(make_app(root).test_client().get("/feed.xml").data)
    assert entry["content"] == normalise_html(f"<p>{body}</p>")
