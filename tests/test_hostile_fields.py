"""Issue 15, findings 4, 5 and 6: what a post or the site's settings hold reaches readers
as text, escaped once, or sanitised, in every format; characters XML cannot carry are
dropped from every name; and one post cannot make the work grow faster than it does.

Every document is parsed (lxml, feedparser-free: the point is what a reader's HTML
engine would see), never grepped."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree
from lxml import html as lxml_html

from feeds import create_app
from feeds.parse.post import MAX_TERMS, MAX_TITLE

from .conftest import ROOT, make_settings, post_text, write_site

ATOM = "{http://www.w3.org/2005/Atom}"
CONTENT_ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"
FORMATS = ("atom", "rss", "json")

PAYLOADS = (
    "<script>alert(1)</script>",
    "`&lt;script&gt;alert(1)&lt;/script&gt;`",
    "<img src=x onerror=alert(1)>",
    '<a href="javascript:alert(1)">x</a>',
    '<a href="data:text/html,<script>alert(1)</script>">x</a>',
    "javascript:alert(1)",
    "data:text/html,<script>alert(1)</script>",
    "&lt;script&gt;alert(1)&lt;/script&gt;",
    "plain words",
)
FIELDS = ("title", "description", "tag", "category", "author", "author_uri", "image",
          "source_url", "body")


def _post(field: str, payload: str) -> str:
    values = {"title": "A post", "description": None, "tags": ["safe"],
              "categories": ["news"], "author": {"name": "Ann"}, "body": "Hello."}
    if field in ("title", "description", "image", "source_url"):
        values[field] = payload
    elif field == "tag":
        values["tags"] = [payload]
    elif field == "category":
        values["categories"] = [payload]
    elif field == "author":
        values["author"] = {"name": payload}
    elif field == "author_uri":
        values["author"] = {"name": "Ann", "uri": payload}
    else:
        values["body"] = f"First {payload} paragraph.\n\nSecond."
    body = values.pop("body")
    lines = [f"{key}: {json.dumps(value)}" for key, value in values.items()
             if value is not None]
    return "---\ndate: 2022-01-05 10:00:00\n" + "\n".join(lines) + f"\n---\n{body}\n"


def _live_html(fragment: str, where: str) -> None:
    """Nothing in ``fragment`` (HTML, as a reader renders it) can run or open a document."""
    if not fragment.strip():
        return
    root = lxml_html.fragment_fromstring(fragment, create_parent="div")
    for el in root.iter():
        if not isinstance(el.tag, str):
            continue
        assert el.tag not in ("script", "iframe", "object", "embed", "style"), (where, fragment)
        for name, value in el.attrib.items():
            assert not name.lower().startswith("on"), (where, fragment)
            if name in ("href", "src", "action", "formaction", "poster"):
                _safe_link(value, where, image=el.tag in ("img", "source") and name == "src")


def _safe_link(url: str, where: str, image: bool = False) -> None:
    scheme = urlsplit(url.strip()).scheme.lower()
    if image and url.lower().startswith("data:image/"):
        return
    assert scheme in ("http", "https", "mailto", "ftp", "tel", ""), (where, url)


def _check_atom(data: bytes) -> None:
    doc = etree.fromstring(data)
    for el in doc.iter(f"{ATOM}summary", f"{ATOM}content", f"{ATOM}title", f"{ATOM}subtitle"):
        if el.get("type") == "html":
            _live_html(el.text or "", f"atom {el.tag}")
        else:
            assert el.get("type") in (None, "text"), el.get("type")
    for el in doc.iter(f"{ATOM}uri"):
        assert urlsplit(el.text or "").scheme in ("http", "https"), el.text
    for el in doc.iter(f"{ATOM}link"):
        _safe_link(el.get("href", ""), "atom link")


def _check_rss(data: bytes) -> None:
    doc = etree.fromstring(data)
    for el in doc.iter("description", CONTENT_ENCODED):
        _live_html(el.text or "", f"rss {el.tag}")  # readers render both as HTML
    for el in doc.iter("link"):
        _safe_link(el.text or "", "rss link")


def _check_json(data: bytes) -> None:
    feed = json.loads(data)
    for item in feed["items"]:
        _live_html(item.get("content_html", ""), "json content_html")
        for url in [item.get("image"), item.get("external_url"), item.get("url"),
                    *(a.get("url") for a in item.get("authors", []))]:
            if url is not None:
                assert urlsplit(url).scheme in ("http", "https"), url


CHECKS = {"atom": _check_atom, "rss": _check_rss, "json": _check_json}


def _client(root: Path) -> Iterator[FlaskClient]:
    application = create_app(make_settings(root), watch=False)
    try:
        yield application.test_client()
    finally:
        application.extensions["feeds"].stop()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(FIELDS), payload=st.sampled_from(PAYLOADS),
       fmt=st.sampled_from(FORMATS), where=st.sampled_from(("site", "tag")))
def test_no_field_reaches_a_reader_as_live_markup(field: str, payload: str, fmt: str,
                                                  where: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = write_site(Path(tmp) / "site",
                          {"_posts/2022-01-05-hostile.md": _post(field, payload)})
        for client in _client(root):
            path = "/feed" if where == "site" else "/tag/safe"
            if where == "tag" and field == "tag":
                path = "/feed"  # the tag's own feed: its name is the payload
            response = client.get(f"{path}.{fmt}")
            assert response.status_code == 200, response.data[:300]
            CHECKS[fmt](response.data)


def test_a_tag_name_in_the_channel_description_is_text(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {
        "_posts/2022-01-05-a.md": post_text("A", "2022-01-05", "[news]", '["<b>bold</b>"]')},
        config="title: Site\nurl: https://example.org\n")  # no description: the title's
    for client in _client(root):
        opml = etree.fromstring(client.get("/feeds.opml").data)
        tag_feed = next(o.get("xmlUrl") for o in opml.iter("outline")
                        if o.get("title") and "<b>" in o.get("title", ""))
        rss = client.get(urlsplit(tag_feed).path.replace(".atom", ".rss"))
        assert rss.status_code == 200
        description = etree.fromstring(rss.data).find("channel/description").text
        # Rendered as HTML by a reader, it shows the name's characters, not a <b> element.
        shown = lxml_html.fragment_fromstring(description, create_parent="div")
        assert shown.find(".//b") is None and "<b>bold</b>" in shown.text_content()


def test_an_escaped_script_in_a_code_span_stays_text(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {"_posts/2022-01-05-a.md": post_text(
        "Tutorial", "2022-01-05", body="Write `&lt;script&gt;` to escape it.")})
    for client in _client(root):
        item = etree.fromstring(client.get("/feed.rss").data).find("channel/item")
        shown = lxml_html.fragment_fromstring(item.find("description").text,
                                              create_parent="div")
        assert shown.find(".//script") is None
        assert "&lt;script&gt;" in shown.text_content()
        summary = json.loads(client.get("/feed.json").data)["items"][0]["summary"]
        assert "&lt;script&gt;" in summary  # JSON Feed's summary is plain text


def test_data_documents_do_not_survive_sanitising(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {"_posts/2022-01-05-a.md": post_text(
        "Data", "2022-01-05", body='<a href="data:text/html,x">a</a> '
        '<img src="data:image/png;base64,iVBORw0KGgo=" alt="dot">')})
    for client in _client(root):
        html = json.loads(client.get("/feed.json").data)["items"][0]["content_html"]
        root_el = lxml_html.fragment_fromstring(html, create_parent="div")
        assert root_el.find(".//a").get("href") is None
        assert root_el.find(".//img").get("src").startswith("data:image/png")


def test_relative_front_matter_urls_are_made_absolute(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {"_posts/2022-01-05-a.md": post_text(
        "Rel", "2022-01-05", extra='image: /img/a.png\nauthor: {name: Ann, uri: /about/}\n')})
    for client in _client(root):
        item = json.loads(client.get("/feed.json").data)["items"][0]
        assert item["image"] == "https://example.org/img/a.png"
        assert item["authors"][0]["url"] == "https://example.org/about/"
        uri = etree.fromstring(client.get("/feed.atom").data).find(f".//{ATOM}entry//{ATOM}uri")
        assert uri.text == "https://example.org/about/"


# --- finding 5: names XML cannot carry ------------------------------------------------


EVIL_CONFIG = ('title: "Evil\\x01 Site"\nurl: https://example.org\nlang: "en\\x02"\n'
               'author: {name: "Ann\\x03", uri: "https://example.org/ann"}\n')


def test_xml_illegal_names_are_dropped_everywhere(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {
        "ev\x01il/_posts/2022-01-05-a.md": post_text("A", "2022-01-05", "[]", "[ok]"),
        "_posts/2022-01-06-b.md": post_text("B", "2022-01-06")}, config=EVIL_CONFIG)
    for client in _client(root):
        for path in ("/feed.atom", "/feed.rss", "/feeds.opml"):
            response = client.get(path)
            assert response.status_code == 200, path
            doc = etree.fromstring(response.data)  # well-formed, or this raises
            texts = " ".join(doc.itertext()) + " ".join(
                v for el in doc.iter() for v in el.attrib.values())
            assert "\x01" not in texts
        atom = etree.fromstring(client.get("/feed.atom").data)
        assert atom.find(f"{ATOM}title").text == "Evil Site"
        terms = {c.get("term") for c in atom.iter(f"{ATOM}category")}
        assert "evil" in terms
        feed = json.loads(client.get("/feed.json").data)
        assert feed["title"] == "Evil Site"
    checked = subprocess.run([sys.executable, "-m", "feeds", "check", str(root)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert checked.returncode == 0
    warned = checked.stdout.splitlines()
    assert any(line.startswith("_config.yml: title:") for line in warned), warned
    assert any("ev\x01il/_posts/2022-01-05-a.md" in line or "evil/_posts" in line
               for line in warned if "XML" in line), warned


# --- finding 6: one post with a great many terms ----------------------------------------


def test_a_post_with_many_tags_is_capped_with_a_warning(tmp_path: Path) -> None:
    tags = json.dumps([f"t{i}" for i in range(3 * MAX_TERMS)])
    root = write_site(tmp_path / "site", {
        "_posts/2022-01-05-a.md": post_text("Many", "2022-01-05", "[news]", tags)})
    for client in _client(root):
        atom = etree.fromstring(client.get("/feed.atom").data)
        terms = [c.get("term") for c in atom.iter(f"{ATOM}category")]
        assert len(terms) == MAX_TERMS and terms[:2] == ["news", "t0"]
        assert client.get(f"/tag/t{MAX_TERMS - 2}.atom").status_code == 200
        assert client.get(f"/tag/t{MAX_TERMS}.atom").status_code == 404
        rss = etree.fromstring(client.get("/feed.rss").data)
        assert len(rss.findall("channel/item/category")) == MAX_TERMS
    checked = subprocess.run([sys.executable, "-m", "feeds", "check", str(root)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert f"keeping the first {MAX_TERMS}" in checked.stdout


def test_a_huge_title_is_cut_with_a_warning(tmp_path: Path) -> None:
    title = "<!-- " + "\"q\" <!-- " * 5000  # unclosed comments and quotes: no regex feast
    root = write_site(tmp_path / "site", {
        "_posts/2022-01-05-a.md": post_text(title, "2022-01-05")})
    for client in _client(root):
        item = json.loads(client.get("/feed.json").data)["items"][0]
        assert 0 < len(item["title"]) <= MAX_TITLE
        assert client.get("/feed.atom").status_code == 200
    checked = subprocess.run([sys.executable, "-m", "feeds", "check", str(root)],
                             capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert f"keeping the first {MAX_TITLE}" in checked.stdout
