"""One file's front matter -> one :class:`Post`: the file name's date and slug, Jekyll's
dates, names, permalink and id. The body stays on disk (see ``body``)."""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from ..model import DefaultSet, Post, Stamp
from .dates import parse_date
from .entry_filter import DEFAULT_INCLUDES, Folders, folders
from .frontmatter import CONTROL_WARNING, decode, holds_control, split_front_matter
from .text import XML_ILLEGAL, PostError, SkipFile, clean_text
from .urls import (
    build_permalink,
    folder_categories,
    jekyll_relative,
    post_id,
    slugify_pretty,
    titleize_slug,
)
from .values import FrontMatter, with_defaults

POST_EXTENSIONS = frozenset({".md", ".markdown", ".html", ".htm", ".txt"})
# Jekyll converts only these (its markdown_ext); any other file, a .txt post too, is
# written as it is, under its own extension.
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown"})

# Jekyll's DATE_FILENAME_MATCHER, for the base name only.
FILENAME_DATE = re.compile(r"^(\d{2,4}-\d{1,2}-\d{1,2})-([^/]*)(\.[^.]+)$", re.M | re.A)
"""Jekyll's DATE_FILENAME_MATCHER as Ruby reads it: ASCII digits, ``^`` and ``$`` at any
line's ends, and a title that may hold a newline ('2000-01-01-a\n.md' is a post)."""


@dataclass(frozen=True)
class SiteRules:
    """The site settings that decide how a post is read."""

    tz: tzinfo = UTC
    permalink: str = "date"
    max_post_bytes: int = 2_000_000
    front_matter_ids: bool = False
    """Whether a front-matter ``id`` or ``guid`` replaces the entry id (jekyll-feed
    ignores both, so by default they are ignored here too)."""
    defaults: tuple[DefaultSet, ...] = ()
    """``_config.yml``'s front-matter defaults."""
    collections: tuple[tuple[str, str, str], ...] = ()
    """(label, folder, URL template) of the collections whose documents are read."""
    site_time: str = ""
    """``time:`` of _config.yml: the date of a collection's document without one."""
    collections_dir: str = ""
    """Jekyll's ``collections_dir``: the folder holding ``_posts`` and the collections'
    folders ('' for the content folder itself)."""
    exclude: tuple[str, ...] = ()
    include: tuple[str, ...] = DEFAULT_INCLUDES
    """_config.yml's ``exclude`` and ``include`` (see entry_filter)."""

    @functools.cached_property
    def collection_folders(self) -> Folders:
        return folders(frozenset(folder for _label, folder, _template in self.collections),
                       self.collections_dir, self.exclude, self.include)

    def relative(self, source: str) -> str:
        """Jekyll's ``relative_path`` of a post: its path below ``collections_dir``."""
        return jekyll_relative(source, self.collections_dir)


@dataclass
class Parsed:
    post: Post
    warnings: list[str] = field(default_factory=list)


def site_rules(tz_name: str, permalink: str, max_post_bytes: int,
               front_matter_ids: bool = False,
               defaults: tuple[DefaultSet, ...] = (),
               collections: tuple[tuple[str, str, str], ...] = (),
               site_time: str = "", collections_dir: str = "",
               exclude: tuple[str, ...] = (),
               include: tuple[str, ...] = DEFAULT_INCLUDES) -> SiteRules:
    # A scope's path is relative to the site; Jekyll strips collections_dir from it
    # (FrontmatterDefaults#strip_collections_dir) and matches what is left against the
    # post's path below collections_dir.
    scoped = tuple(replace(d, path=jekyll_relative(d.path, collections_dir))
                   for d in defaults) if collections_dir else defaults
    return SiteRules(tz=ZoneInfo(tz_name), permalink=permalink,
                     max_post_bytes=max_post_bytes, front_matter_ids=front_matter_ids,
                     defaults=scoped, collections=collections, site_time=site_time,
                     collections_dir=collections_dir, exclude=exclude, include=include)


def _collection_of(source: str, rules: SiteRules) -> tuple[str, str] | None:
    """(label, URL template) of the collection a document is in; None for a post."""
    for label, folder, template in rules.collections:
        if source.startswith(folder + "/"):
            return label, template
    return None


def _front(source: str, data: bytes, document: bool,
           warnings: list[str]) -> tuple[dict[str, Any], str]:
    """The front matter, and the decoded text. A collection's file without it is no
    document (Jekyll copies it as a static file), where a ``_posts`` file without it is a
    post."""
    text = decode(source, data, warnings)
    if document and not text.startswith("---"):
        raise SkipFile(f"{source}: no front matter, so a static file of its collection")
    return split_front_matter(source, text, warnings)[0], text


def parse_post(source: str, data: bytes, stamp: Stamp, rules: SiteRules) -> Parsed:
    """Read one post file. ``source`` is its path relative to the content folder, ``data``
    its bytes (within ``max_post_bytes``: the disk reader checks that)."""
    warnings: list[str] = []
    collection = _collection_of(source, rules)
    data_front, text = _front(source, data, collection is not None, warnings)
    # Decoding dropped every raw character XML cannot carry: only a YAML escape ("\x01")
    # in the file, or a default from _config.yml, can bring one back.
    escapes = bool(rules.defaults) or "\\" in text
    relative = rules.relative(source)
    if rules.defaults:
        data_front = with_defaults(relative, data_front, rules.defaults)
    if _unpublished(data_front):
        shown = "false" if data_front["published"] is False else "null"
        raise SkipFile(f"{source}: published: {shown}")
    front = FrontMatter(source, data_front, warnings)
    file_date, slug, markup = _file_name(source)
    if file_date is None and collection is None and "_posts" in source.split("/"):
        # Jekyll's PostReader reads only names that match DATE_FILENAME_MATCHER.
        raise SkipFile(f"{source}: not a post: a file of _posts/ is one only when its "
                       "name starts with its date (YYYY-MM-DD-title.md), as in Jekyll")
    when, updated = _dates(source, data_front, file_date, rules.tz,
                           None if collection is None else rules.site_time or stamp[0])
    title = _title(front, slug)
    categories = folder_categories(
        relative, "_posts" if collection is None else relative.split("/", 1)[0])
    categories = list(dict.fromkeys([*categories, *_categories(front)]))
    tags = front.names("tag", "tags")
    categories, tags = _capped(categories, tags, warnings)
    url, entry_id = _address(front, rules, when, categories, slug, relative, collection)
    summary = front.text("description") or front.text("excerpt")
    source_url = _source_url(front)
    post = Post(
        source=source,
        stamp=stamp,
        markup=markup,
        slug=slug,
        title=title,
        date=when,
        updated=updated,
        categories=tuple(categories),
        tags=tuple(tags),
        url=url,
        entry_id=entry_id,
        author=front.author(),
        summary=summary,
        image=front.image(),
        lang=front.text("lang"),
        source_url=source_url,
        excerpt_separator=_separator(data_front.get("excerpt_separator")),
        excerpt_only=_excerpt_only(data_front.get("feed")),
        collection="posts" if collection is None else collection[0],
    )
    if CONTROL_WARNING not in warnings and ((escapes and holds_control(data_front))
                                            or XML_ILLEGAL.search(source)):
        warnings.append(CONTROL_WARNING)  # written as YAML escapes ("\x01"), not raw
    return Parsed(post, warnings)


def _separator(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _excerpt_only(feed: object) -> bool:
    """jekyll-feed's ``post.feed.excerpt_only | default: site...``: any value Liquid
    does not count as empty turns it on for this post."""
    if not isinstance(feed, dict):
        return False
    value = feed.get("excerpt_only")
    return value not in (None, False, "", [], {})


def _unpublished(front: Mapping[str, Any]) -> bool:
    """Jekyll's ``data.fetch("published", true)``: hidden when the key is there and false
    or empty (null); any other value, the string "false" and 0 among them, publishes."""
    value = front.get("published", True)
    return value is None or value is False


def _file_name(source: str) -> tuple[str | None, str, str]:
    """(the file name's date, its slug, the markup its extension means)."""
    name = source.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext.lower()}" if dot else ""
    markup = "markdown" if ext in MARKDOWN_EXTENSIONS else "html"
    match = FILENAME_DATE.search(name)
    if match:
        return match.group(1), clean_text(match.group(2)), markup
    return None, clean_text(stem or name), markup


def _dates(source: str, front: Mapping[str, Any], file_date: str | None,
           tz: tzinfo, undated: str | int | None = None) -> tuple[datetime, datetime]:
    """(published, updated): the front matter's date, else the file name's, else (a
    collection's document: ``undated``) site.time, or the file's mtime in ns."""
    if front.get("date") is not None:
        when = parse_date(source, front["date"], tz)
    elif file_date:
        when = parse_date(source, file_date, tz, key="file-name date")
    elif isinstance(undated, str):
        when = parse_date(source, undated, tz, key="site.time")
    elif undated is not None:
        when = datetime.fromtimestamp(undated // 1_000_000_000, tz)
    else:
        raise PostError(source, "no date: give 'date:' in the front matter or name the "
                        "file YYYY-MM-DD-slug")
    for key in ("last_modified_at", "updated"):
        if front.get(key) is not None:
            return when, parse_date(source, front[key], tz, key=key)
    return when, when


def _title(front: FrontMatter, slug: str) -> str:
    title = front.text("title")
    if title is None:
        title = titleize_slug(slug) or slug
        front.warnings.append(f"no title; using {title!r} from the file name")
    title = " ".join(title.split())
    if len(title) > MAX_TITLE:  # the title's markup is stripped by regular expressions
        front.warnings.append(f"title of {len(title)} characters; keeping the first "
                              f"{MAX_TITLE}")
        title = title[:MAX_TITLE]
    return title


def _categories(front: FrontMatter) -> list[str]:
    """The front matter's categories as Jekyll's populate_categories makes them: the
    'categories' list, then 'category' (else 'categories' again), each name once. A
    'categories' value that is neither a list nor a string (a number) makes Jekyll fail
    to read the file; it is ignored here."""
    # A dict: ordered, and a linear check for repeats (a post may list very many).
    listed = front.listed("categories")
    if front.data.get("category") is None:
        return listed  # names() would read 'categories' again: the same names, in order
    found = dict.fromkeys((*listed, *front.names("category", "categories")))
    return list(found)


def _address(front: FrontMatter, rules: SiteRules, when: datetime,
             categories: list[str], slug: str, relative: str,
             collection: tuple[str, str] | None = None) -> tuple[str, str]:
    """(the post's URL path, its entry id); ``relative`` is the post's path below
    ``collections_dir``."""
    source, data = front.source, front.data
    front_slug = data.get("slug")
    if front_slug is not None and not isinstance(front_slug, list | dict):
        title_slug = slugify_pretty(clean_text(str(front_slug)))
    else:
        title_slug = slugify_pretty(slug)
    # A post's own permalink is a template, taken literally ('pretty' is the path
    # /pretty); only the site's permalink setting may name a style.
    own = front.text("permalink")
    # data["slug"] in Jekyll: the front matter's slug, else the file name's. Both ':slug'
    # and the entry id use it.
    raw_slug = clean_text(front_slug) if isinstance(front_slug, str) else slug
    # Jekyll shows every date in the site zone before it builds the URL, so the URL's
    # day is the site zone's day, whatever offset the date was written with.
    label, template = collection or ("posts", rules.permalink)
    try:
        url = build_permalink(relative, own or template,
                              when.astimezone(rules.tz), categories, raw_slug, title_slug,
                              style=own is None and collection is None, collection=label)
    except PostError as e:
        raise PostError(source, e.message) from None  # named by its path in the site
    entry_id = post_id(url, raw_slug)
    if rules.front_matter_ids:
        entry_id = front.text("id") or front.text("guid") or entry_id
    return url, entry_id


def _source_url(front: FrontMatter) -> str | None:
    """Where the article was first published: an http(s) URL, or nothing."""
    for key in ("source_url", "source", "canonical_url"):
        value = front.text(key)
        if value:
            return value if re.match(r"^(https?:)?//", value) else None
    return None


MAX_TITLE = 1000
"""Characters of a title kept (with a warning past it): what reads as a title is far
shorter, and it bounds the work of stripping a title's markup for a feed."""

MAX_TERMS = 1000
"""Categories plus tags one post may name; past it the rest are dropped with a warning,
so no post can make the index, a page or a feed entry arbitrarily large."""


def _capped(categories: list[str], tags: list[str],
            warnings: list[str]) -> tuple[list[str], list[str]]:
    if len(categories) + len(tags) <= MAX_TERMS:
        return categories, tags
    warnings.append(f"{len(categories) + len(tags)} categories and tags; keeping the "
                    f"first {MAX_TERMS}")
    categories = categories[:MAX_TERMS]
    return categories, tags[:MAX_TERMS - len(categories)]
