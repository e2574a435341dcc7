"""A post's excerpt and summary as jekyll-feed writes them, and a body finished from its
HTML (sanitised, its summary): the same functions whether the server or its render
helper (renderwork) made the HTML."""

from __future__ import annotations

import html
import re
from dataclasses import replace

from .model import Body
from .parse import BodyRules, finish_body, markup_body

_LINK_DEFINITION = re.compile(r"^ {0,3}(\[[^\]]+\])(:.+)$", re.MULTILINE)
_HTML_BLOCKS = re.compile(r"<script.*?</script>|<!--.*?-->|<style.*?</style>", re.DOTALL)
_HTML_TAG = re.compile(r"<.*?>", re.DOTALL)


def excerpt_source(text: str, separator: str) -> str:
    """Jekyll's excerpt of a body, before rendering: the text up to the separator, with
    the tail's link definitions that it uses (Jekyll::Excerpt#extract_excerpt)."""
    head, _sep, tail = text.partition(separator)
    if not tail:
        return head
    used = [label + rest for label, rest in _LINK_DEFINITION.findall(tail) if label in head]
    return head + "\n\n" + "\n".join(used) if used else head


def plain_summary(fragment: str) -> str:
    """``strip_html | normalize_whitespace`` (Liquid's), read as the HTML it is."""
    text = _HTML_TAG.sub("", _HTML_BLOCKS.sub("", fragment))
    return " ".join(html.unescape(text).split())


def finished_body(raw: str, raw_excerpt: str | None, url: str, summary: str | None,
                  rules: BodyRules) -> Body:
    """A body from its HTML and its excerpt's (None: the body's own), sanitised for
    ``url``; its summary the post's description when it has one, else its excerpt's
    text."""
    body = finish_body(raw, url, rules)
    if summary:  # the description is the summary: no excerpt to render
        return replace(body, summary=plain_summary(summary))
    excerpt = body if raw_excerpt is None else finish_body(raw_excerpt, url, rules)
    return replace(body, summary=plain_summary(excerpt.html))


HelperJob = tuple[str, str | None, str, str | None, BodyRules]
"""What the render helper is sent for a body: its text and its excerpt's (None: the
body's own), its URL, the post's description and the rules."""


def made_body(job: HelperJob) -> tuple[tuple[str, str | None], Body]:
    """In the render helper: a body without Liquid, as BodyCache renders it here (its
    Markdown, then sanitised), and the HTML it was made from."""
    text, head, url, summary, rules = job
    raw = markup_body(text, "markdown", rules)
    raw_head = None if head is None else markup_body(head, "markdown", rules)
    return (raw, raw_head), finished_body(raw, raw_head, url, summary, rules)
