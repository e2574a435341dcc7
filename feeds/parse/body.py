"""A post's body, read lazily (when a feed or page first needs it): Markdown or HTML ->
sanitised HTML with absolute URLs, and its first paragraph as a plain-text summary."""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from ..config import DEFAULT_IFRAME_HOSTS
from ..model import Body
from .frontmatter import decode, split
from .kramdown import DEFAULT_SMART_QUOTES, kramdown
from .sanitise import sanitise
from .text import clean_text


@dataclass(frozen=True)
class BodyRules:
    """The site settings that decide how a body is rendered."""

    iframe_hosts: tuple[str, ...] = DEFAULT_IFRAME_HOSTS
    smart_quotes: str = DEFAULT_SMART_QUOTES
    """``kramdown.smart_quotes``: four entity names, single quotes first."""


DEFAULT_RULES = BodyRules()

_FIRST_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


def body_text(path: str, data: bytes) -> str:
    """The body of a post file (after its front matter), cleaned of XML-illegal text.
    The front matter itself was read when the post was indexed."""
    _front, body = split(path, decode(path, data, []))
    return clean_text(body)


def render_body(body: str, markup: str, page_url: str,
                rules: BodyRules = DEFAULT_RULES) -> Body:
    """Markdown (or HTML) -> sanitised HTML whose URLs are absolute against ``page_url``,
    plus the first paragraph as plain text for a summary."""
    raw = kramdown(body, rules.smart_quotes) if markup == "markdown" else body
    safe = clean_text(sanitise(raw, page_url, rules.iframe_hosts)).strip()
    return Body(html=safe, summary=summary_of(safe))


def summary_of(safe_html: str, limit: int = 400) -> str:
    """The text of the first paragraph (else of the start of the body)."""
    match = _FIRST_PARAGRAPH.search(safe_html)
    fragment = match.group(1) if match else safe_html
    text = " ".join(html.unescape(_TAG.sub("", fragment)).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return clean_text(text)
