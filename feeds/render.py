"""A selection of posts -> Atom 1.0, RSS 2.0, JSON Feed 1.1 or OPML 2.0 bytes.

The only module that imports feedgen. Every function here is pure: the same input gives
the same bytes (no clock is read), which is what makes strong ETags stable.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from html import escape
from typing import Any
from xml.sax.saxutils import quoteattr

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from .model import Author, Body, Format, Post
from .parse import clean_text
from .safety import safe_author, safe_url
from .titles import feed_title, smartify

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
JSON_FEED_VERSION = "https://jsonfeed.org/version/1.1"
__all__ = ["Entry", "FeedMeta", "Outline", "feed_title", "render_feed", "render_opml",
           "smartify"]

GENERATOR = "feeds"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


# --- Atom and RSS via feedgen ---------------------------------------------------------


class _LinksExtension(BaseExtension):  # type: ignore[misc]
    """Adds atom:link elements that feedgen's RSS writer leaves out (paging, hub)."""

    def __init__(self) -> None:
        self.links: list[tuple[str, str]] = []

    def extend_ns(self) -> dict[str, str]:
        return {"atom": ATOM_NS}

    def extend_rss(self, rss_feed: Any) -> Any:
        channel = rss_feed[0]
        for rel, href in self.links:
            etree.SubElement(channel, f"{{{ATOM_NS}}}link", href=href, rel=rel)
        return rss_feed

    def extend_atom(self, atom_feed: Any) -> Any:
        return atom_feed


class _NoFeedPart(BaseExtension):  # type: ignore[misc]
    """feedgen wants a feed part for every extension; _EntryParts has none."""

    def extend_ns(self) -> dict[str, str]:
        return {}


class _EntryParts(BaseEntryExtension):  # type: ignore[misc]
    """What jekyll-feed writes in an entry that feedgen cannot: the post's ``xml:lang``
    and its image as media:thumbnail and media:content (Media RSS, declared on each
    element as jekyll-feed does, so a feed without images names no media namespace)."""

    def __init__(self) -> None:
        self.lang: str | None = None
        self.image: str | None = None

    def _media(self, element: Any) -> None:
        if self.image:
            etree.SubElement(element, f"{{{MEDIA_NS}}}thumbnail", url=self.image,
                             nsmap={"media": MEDIA_NS})
            etree.SubElement(element, f"{{{MEDIA_NS}}}content", medium="image",
                             url=self.image, nsmap={"media": MEDIA_NS})

    def extend_atom(self, entry: Any) -> Any:
        if self.lang:
            entry.set(XML_LANG, self.lang)
        self._media(entry)
        return entry

    def extend_rss(self, item: Any) -> Any:
        self._media(item)
        return item


def _author_dict(author: Author) -> dict[str, str]:
    out = {"name": author.name}
    if author.email:
        out["email"] = author.email
    if author.uri:
        out["uri"] = author.uri
    return out


def _entry_author(fe: Any, author: Author, fmt: Format) -> None:
    fe.author(_author_dict(author))
    if fmt is Format.RSS and not author.email:
        # RSS's <author> is an email address: feedgen drops a name without one, so the
        # name goes in Dublin Core's dc:creator, as WordPress writes it.
        fe.dc.dc_creator(author.name)


def _add_entry(fg: FeedGenerator, entry: Entry, fmt: Format) -> None:
    post = entry.post
    # feedgen prepends entries by default; 'append' keeps newest first.
    fe = fg.add_entry(order="append")
    # One id in every format (Jekyll's post.id), so a reader following the RSS of
    # a site and the Atom of a tag shows a post once: id() sets Atom's id and RSS's
    # guid isPermaLink="false" (JSON Feed's id is the same, see render_json).
    fe.id(entry.entry_id)
    fe.title(entry.title)
    fe.link(href=entry.link, rel="alternate", type="text/html")
    fe.published(post.date)
    fe.pubDate(post.date)
    fe.updated(post.updated)
    author = safe_author(entry.author, entry.link)
    if author is not None:
        _entry_author(fe, author, fmt)
    if entry.terms:
        # One call: feedgen rebuilds its whole RSS list on each, quadratic per term.
        fe.category([{"term": term} for term in entry.terms])
    # The summary is plain text (Atom's type text); RSS's <description> is HTML: escaped.
    if entry.summary:
        fe.summary(entry.summary) if fmt is Format.ATOM else fe.description(
            escape(entry.summary, quote=False))
    elif fmt is Format.RSS:
        fe.description(entry.content or escape(entry.title, quote=False))
    if entry.content:
        # type="html": escaped text, never CDATA, so ']]>' in a post cannot break out.
        fe.content(entry.content, type="html" if fmt is Format.ATOM else None)
    fe.jekyll.lang = post.lang
    fe.jekyll.image = safe_url(entry.image, entry.link)


def _generator(meta: FeedMeta, entries: Sequence[Entry], fmt: Format) -> FeedGenerator:
    meta = safe_meta(meta)
    fg = FeedGenerator()
    fg.register_extension("paging", _LinksExtension, None, atom=False, rss=True)
    fg.register_extension("jekyll", _NoFeedPart, _EntryParts)
    if fmt is Format.RSS:
        fg.load_extension("dc", atom=False, rss=True)
    fg.id(meta.feed_id)
    fg.title(meta.title)
    if meta.subtitle:
        fg.subtitle(meta.subtitle)
    fg.description(escape(meta.subtitle or meta.title, quote=False))
    fg.link(href=meta.self_url, rel="self",
            type="application/atom+xml" if fmt is Format.ATOM else "application/rss+xml")
    if fmt is Format.ATOM:
        for rel, href in meta.paging:
            fg.link(href=href, rel=rel)
        if meta.hub:
            fg.link(href=meta.hub, rel="hub")
    else:
        fg.paging.links = [*meta.paging, *([("hub", meta.hub)] if meta.hub else [])]
    # Last: feedgen writes the last link it was given as RSS's <link>.
    fg.link(href=meta.html_url, rel="alternate", type="text/html")
    if meta.lang:
        fg.language(meta.lang)
    fg.author(_author_dict(meta.author) if meta.author else {"name": meta.title})
    fg.generator(GENERATOR)
    # feedgen stamps 'now' into <updated> and <lastBuildDate> unless told otherwise,
    # which would change the bytes (and the ETag) on every render.
    if meta.updated is not None:
        fg.updated(meta.updated)
        fg.lastBuildDate(meta.updated)
    else:
        fg.updated(EPOCH)
        fg.lastBuildDate(EPOCH)
    for entry in entries:
        _add_entry(fg, entry, fmt)
    return fg


def render_atom(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    data: bytes = _generator(meta, entries, Format.ATOM).atom_str(pretty=False,
                                                                  encoding="utf-8")
    return _styled(data, meta.stylesheet)


def render_rss(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    data: bytes = _generator(meta, entries, Format.RSS).rss_str(pretty=False,
                                                                encoding="utf-8")
    return _styled(data, meta.stylesheet)


# Percent-encoded rather than escaped: not every reader of a PI decodes '&amp;'. Our
# URLs carry no '&' of their own (the base has none, the query is only ?v=).
_PI_UNSAFE = {ord("&"): "%26", ord('"'): "%22", ord("<"): "%3C", ord(">"): "%3E"}


def _styled(data: bytes, href: str) -> bytes:
    """The document with an xml-stylesheet processing instruction right after its XML
    declaration (feedgen has no option for one). Readers skip it; a browser shows the
    feed through the XSLT. '>' is percent-encoded, so the URL cannot end the PI."""
    if not href:
        return data
    end = data.index(b"?>") + 2 if data.startswith(b"<?xml") else 0
    pi = f'\n<?xml-stylesheet type="text/xsl" href="{href.translate(_PI_UNSAFE)}"?>'
    return data[:end] + pi.encode("utf-8") + data[end:]


# --- JSON Feed ------------------------------------------------------------------------


def _json_author(author: Author) -> dict[str, str]:
    out = {"name": author.name}
    if author.uri:
        out["url"] = author.uri
    elif author.email:
        out["url"] = f"mailto:{author.email}"
    return out


def render_json(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
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
    items = []
    for entry in entries:
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
        items.append(item)
    feed["items"] = items
    return json.dumps(feed, ensure_ascii=False, separators=(",", ":")).encode("utf-8")


RENDERERS: dict[Format, Callable[[FeedMeta, Sequence[Entry]], bytes]] = {
    Format.ATOM: render_atom,
    Format.RSS: render_rss,
    Format.JSON: render_json,
}


def render_feed(fmt: Format, meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    return RENDERERS[fmt](meta, entries)


# --- OPML -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Outline:
    title: str
    xml_url: str
    html_url: str


def render_opml(title: str, groups: Sequence[tuple[str, Sequence[Outline]]],
                updated: datetime | None) -> bytes:
    """OPML 2.0 listing every feed, grouped ('Site', 'Categories', 'Tags')."""
    lines = ['<?xml version="1.0" encoding="UTF-8"?>', '<opml version="2.0">', "<head>",
             f"<title>{escape(clean_text(title), quote=False)}</title>"]
    if updated is not None:
        lines.append(f"<dateModified>{_rfc822(updated)}</dateModified>")
    lines += ["</head>", "<body>"]
    for group, outlines in groups:
        lines.append(f"<outline text={quoteattr(group)} title={quoteattr(group)}>")
        for o in outlines:
            text = quoteattr(clean_text(o.title))
            lines.append(
                f'<outline type="rss" text={text} title={text} '
                f"xmlUrl={quoteattr(o.xml_url)} htmlUrl={quoteattr(o.html_url)}/>"
            )
        lines.append("</outline>")
    lines += ["</body>", "</opml>", ""]
    return "\n".join(lines).encode("utf-8")


def _rfc822(when: datetime) -> str:
    days = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
    months = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov",
              "Dec")
    return (f"{days[when.weekday()]}, {when.day:02d} {months[when.month - 1]} {when.year} "
            f"{when:%H:%M:%S %z}")
