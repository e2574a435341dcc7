"""A post's body, read lazily (when a feed or page first needs it): Markdown or HTML ->
sanitised HTML with absolute URLs, and its first paragraph as a plain-text summary."""

from __future__ import annotations

import html
import re

import nh3
from markdown_it import MarkdownIt

from ..model import Body
from .frontmatter import decode, split
from .text import clean_text

# kramdown-like: raw HTML passes through, autolinks <http://...>, tables, strikethrough.
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "picture", "source",
                                         "video", "audio", "track"}
_ALLOWED_TAGS -= {"script", "style", "iframe", "object", "embed", "form", "input"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ALLOWED_ATTRIBUTES.setdefault("*", set()).update({"class", "title", "lang", "dir"})
_ALLOWED_ATTRIBUTES.setdefault("img", set()).update({"src", "alt", "width", "height",
                                                     "loading"})
for _media in ("video", "audio", "source", "track"):
    _ALLOWED_ATTRIBUTES.setdefault(_media, set()).update({"src", "controls", "poster", "type"})
_URL_SCHEMES = {"http", "https", "mailto", "ftp", "tel", "data"}
_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|webp|avif);", re.IGNORECASE)


def _no_data_documents(tag: str, attribute: str, value: str) -> str | None:
    """data: URLs only as an image's pixels: ``<a href="data:text/html,...">`` opens a
    document of the author's choosing (scripts included) wherever a reader follows it."""
    if value[:5].lower() == "data:" and not (attribute == "src" and tag in ("img", "source")
                                              and _DATA_IMAGE.match(value)):
        return None
    return value

_FIRST_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


def body_text(path: str, data: bytes) -> str:
    """The body of a post file (after its front matter), cleaned of XML-illegal text.
    The front matter itself was read when the post was indexed."""
    _front, body = split(path, decode(path, data, []))
    return clean_text(body)


def render_body(body: str, markup: str, page_url: str) -> Body:
    """Markdown (or HTML) -> sanitised HTML whose URLs are absolute against ``page_url``,
    plus the first paragraph as plain text for a summary."""
    raw = _MARKDOWN.render(body) if markup == "markdown" else body
    safe = nh3.clean(
        raw,
        tags=_ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel=None,
        attribute_filter=_no_data_documents,
        url_relative=("rewrite_with_base", page_url) if page_url else None,
    )
    safe = clean_text(safe).strip()
    return Body(html=safe, summary=summary_of(safe))


def summary_of(safe_html: str, limit: int = 400) -> str:
    """The text of the first paragraph (else of the start of the body)."""
    match = _FIRST_PARAGRAPH.search(safe_html)
    fragment = match.group(1) if match else safe_html
    text = " ".join(html.unescape(_TAG.sub("", fragment)).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return clean_text(text)
