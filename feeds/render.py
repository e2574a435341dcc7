"""A selection of posts -> Atom 1.0, RSS 2.0, JSON Feed 1.1 or OPML 2.0 bytes; each
entry's bytes made on their own (``render_entries``), so that a feed is its own part
with its entries' bytes spliced in (``assemble``) and an entry shown in many feeds is
rendered once per format.

The only module that imports feedgen. Every function here is pure: the same input gives
the same bytes (no clock is read), which is what makes strong ETags stable.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from html import escape
from typing import Any
from xml.sax.saxutils import quoteattr

from feedgen.ext.base import BaseEntryExtension, BaseExtension
from feedgen.feed import FeedGenerator
from lxml import etree

from .jsonfeed import Entry, FeedMeta, json_feed, json_item, safe_meta
from .model import Author, Format
from .parse import clean_text
from .safety import safe_author, safe_url
from .titles import feed_title, smartify

ATOM_NS = "http://www.w3.org/2005/Atom"
MEDIA_NS = "http://search.yahoo.com/mrss/"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
__all__ = ["Entry", "FeedMeta", "Outline", "assemble", "feed_title", "render_entries",
           "render_feed", "render_opml", "smartify"]

GENERATOR = "feeds"
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


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


def _add_entry(fg: FeedGenerator, entry: Entry, fmt: Format) -> Any:
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
    return fe


def _bare(fmt: Format) -> FeedGenerator:
    """A generator with the extensions every feed of ``fmt`` has (entries made by it
    carry theirs)."""
    fg = FeedGenerator()
    fg.register_extension("paging", _LinksExtension, None, atom=False, rss=True)
    fg.register_extension("jekyll", _NoFeedPart, _EntryParts)
    if fmt is Format.RSS:
        # load_extension("dc") would look for a feedgen.ext.dc_entry module on every
        # call (there is none): a tenth of an RSS page made from kept entries. (Imported
        # here: feedgen.ext.dc needs the lxml.etree that feedgen.feed imports.)
        from feedgen.ext.dc import DcEntryExtension, DcExtension

        fg.register_extension("dc", DcExtension, DcEntryExtension, atom=False, rss=True)
    return fg


def _generator(meta: FeedMeta, fmt: Format) -> FeedGenerator:
    """The feed's own part, without entries (see render_entries and _assemble)."""
    meta = safe_meta(meta)
    fg = _bare(fmt)
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
    return fg


# An entry's bytes depend on the entry and the format only, so each is made once and
# spliced into every feed that shows it. feedgen appends entries as the last children
# of <feed> (Atom) and <channel> (RSS), after every part of the feed's own; an element
# serialises the same wherever it stands below a root declaring the same namespaces,
# so the feed made without entries, with the entries' bytes put before its closing
# tag, is byte for byte the feed feedgen writes with them.
_CLOSE = {Format.ATOM: b"</feed>", Format.RSS: b"</channel>"}


def _context(fmt: Format) -> Any:
    """Where an entry is serialised: the element feedgen appends it to, below a root
    declaring what feedgen's root of ``fmt`` declares (an empty feed of its own parsed:
    RSS declares atom, content and dc; Atom's root has only its xmlns attribute)."""
    if fmt is Format.ATOM:
        return etree.Element("feed", xmlns=ATOM_NS)
    fg = _bare(fmt)
    fg.title("x")
    fg.description("x")
    fg.link(href="urn:x", rel="alternate")
    root = etree.fromstring(fg.rss_str())
    channel = root[0]
    for child in list(channel):
        channel.remove(child)
    return channel


def _xml_entries(fmt: Format, entries: Sequence[Entry]) -> list[bytes]:
    if not entries:
        return []
    fg = _bare(fmt)
    fes = [_add_entry(fg, entry, fmt) for entry in entries]
    parent = _context(fmt)
    root = parent.getroottree().getroot()
    open_tag = b"<channel>" if fmt is Format.RSS else b">"
    out = []
    for fe in fes:
        element = fe.atom_entry() if fmt is Format.ATOM else fe.rss_entry()
        parent.append(element)
        data: bytes = etree.tostring(root, encoding="utf-8", xml_declaration=False)
        out.append(data[data.index(open_tag) + len(open_tag):data.rindex(_CLOSE[fmt])])
        parent.remove(element)
    return out


def render_entries(fmt: Format, entries: Sequence[Entry]) -> list[bytes]:
    """The bytes of each entry as it stands in a feed of ``fmt`` (for assemble)."""
    if fmt is Format.JSON:
        return [json_item(entry) for entry in entries]
    return _xml_entries(fmt, entries)


def assemble(fmt: Format, meta: FeedMeta, entries: Sequence[bytes]) -> bytes:
    """A feed of ``fmt`` from its meta and its entries' bytes (render_entries)."""
    if fmt is Format.JSON:
        return json_feed(meta, entries)
    fg = _generator(meta, fmt)
    data: bytes = (fg.atom_str if fmt is Format.ATOM else fg.rss_str)(
        pretty=False, encoding="utf-8")
    end = data.rindex(_CLOSE[fmt])
    return _styled(data[:end] + b"".join(entries) + data[end:], meta.stylesheet)


def render_atom(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    return assemble(Format.ATOM, meta, render_entries(Format.ATOM, entries))


def render_rss(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    return assemble(Format.RSS, meta, render_entries(Format.RSS, entries))


def render_json(meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    return assemble(Format.JSON, meta, render_entries(Format.JSON, entries))


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


def render_feed(fmt: Format, meta: FeedMeta, entries: Sequence[Entry]) -> bytes:
    return assemble(fmt, meta, render_entries(fmt, entries))


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
