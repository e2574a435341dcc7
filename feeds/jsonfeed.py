"""What every feed format is made of, as records: FeedMeta (what a feed says about itself)
and Entry (a post as an entry); and JSON Feed 1.1, written from them with the standard
library (Atom and RSS are render's, through feedgen). Pure: the same input gives the same
bytes."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from .model import Author, Body, Post
from .parse import clean_text
from .safety import safe_author, safe_url

JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"


@dataclass(frozen=True)
class FeedMeta:
    """What a feed says about itself. All URLs absolute and percent-encoded."""

    title: str
    subtitle: str
    feed_id: str
    """The canonical URL of the feed (its first page)."""
    self_url: str
    """This document's URL (differs from feed_id on page 2 and later)."""
    html_url: str
    """The HTML page the feed mirrors."""
    lang: str
    author: Author | None
    updated: datetime | None
    """Newest entry's ``updated``; None for an empty feed."""
    paging: tuple[tuple[str, str], ...] = ()
    """(rel, url) pairs: first, previous, next, last, as they apply."""
    hub: str = ""
    stylesheet: str = ""
    """The XSLT a browser shows an Atom or RSS feed with (an xml-stylesheet PI); ''
    for none."""


@dataclass(frozen=True)
class Entry:
    post: Post
    link: str
    entry_id: str
    title: str
    body: Body
    author: Author | None
    summary: str = ""
    """Plain text: the description without its HTML, else the excerpt (Jekyll's)."""
    image: str | None = None
    """The post's image as an absolute URL (media:thumbnail, media:content)."""
    excerpt_only: bool = False
    """The entry carries its summary only, no content (jekyll-feed's excerpt_only)."""

    @property
    def content(self) -> str:
        return "" if self.excerpt_only else self.body.html

    @property
    def terms(self) -> tuple[str, ...]:
        seen: dict[str, None] = dict.fromkeys(self.post.categories)
        seen.update(dict.fromkeys(self.post.tags))
        return tuple(seen)


def safe_meta(meta: FeedMeta) -> FeedMeta:
    """A feed's own texts (site title, description, term names) without the characters
    XML cannot carry: they come from _config.yml and folder names, not only from posts."""
    return replace(meta, title=clean_text(meta.title), subtitle=clean_text(meta.subtitle),
                   lang=clean_text(meta.lang), hub=clean_text(meta.hub),
                   author=safe_author(meta.author, meta.html_url))


# --- JSON Feed ------------------------------------------------------------------------


def _json_author(author: Author) -> dict[str, str]:
    out = {"name": author.name}
    if author.uri:
        out["url"] = author.uri
    elif author.email:
        out["url"] = f"mailto:{author.email}"
    return out


def json_feed(meta: FeedMeta, items: Sequence[bytes]) -> bytes:
    meta = safe_meta(meta)
    feed: dict[str, Any] = {
        "version": JSON_FEED_VERSION,
        "title": meta.title,
        "home_page_url": meta.html_url,
        "feed_url": meta.self_url,
    }
    if meta.subtitle:
        feed["description"] = meta.subtitle
    if meta.lang:
        feed["language"] = meta.lang
    if meta.author:
        feed["authors"] = [_json_author(meta.author)]
    next_url = dict(meta.paging).get("next")
    if next_url:
        feed["next_url"] = next_url
    if meta.hub:
        feed["hubs"] = [{"type": "WebSub", "url": meta.hub}]
    feed["items"] = []
    # json.dumps writes a dict in order: "items" last, its list the closing '[]}'.
    head = _json_bytes(feed)
    return head[:-2] + b",".join(items) + b"]}"


def json_item(entry: Entry) -> bytes:
    post = entry.post
    item: dict[str, Any] = {
        "id": entry.entry_id,
        "url": entry.link,
        "title": entry.title,
        "summary": entry.summary,
        "date_published": post.date.isoformat(),
        "date_modified": post.updated.isoformat(),
    }
    if entry.content or not entry.summary:
        item["content_html"] = entry.content
    else:
        item["content_text"] = entry.summary  # excerpt_only: the summary is all
    # JSON Feed wants a URL; front matter often gives '/img/x.png'.
    image = safe_url(entry.image, entry.link)
    if image:
        item["image"] = image
    if entry.terms:
        item["tags"] = list(entry.terms)
    author = safe_author(entry.author, entry.link)
    if author:
        item["authors"] = [_json_author(author)]
    if post.lang:
        item["language"] = post.lang
    external = safe_url(post.source_url, entry.link)
    if external:
        item["external_url"] = external
    return _json_bytes(item)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
