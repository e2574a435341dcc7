"""One file's front matter -> one :class:`Post`: the file name's date and slug, Jekyll's
dates, names, permalink and id. The body stays on disk (see ``body``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from ..model import Author, Post, Stamp
from .dates import parse_date
from .frontmatter import CONTROL_WARNING, decode, holds_control, split_front_matter
from .text import XML_ILLEGAL, PostError, SkipFile, clean_text
from .urls import build_permalink, folder_categories, post_id, slugify_pretty, titleize_slug

POST_EXTENSIONS = frozenset({".md", ".markdown", ".html", ".htm", ".txt"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".txt"})

# Jekyll's DATE_FILENAME_MATCHER, for the base name only.
FILENAME_DATE = re.compile(r"^(\d{2,4}-\d{1,2}-\d{1,2})-(.*)(\.[^.]+)$")


@dataclass(frozen=True)
class SiteRules:
    """The site settings that decide how a post is read."""

    tz: tzinfo = UTC
    permalink: str = "date"
    max_post_bytes: int = 2_000_000


@dataclass
class Parsed:
    post: Post
    warnings: list[str] = field(default_factory=list)


def site_rules(tz_name: str, permalink: str, max_post_bytes: int) -> SiteRules:
    return SiteRules(tz=ZoneInfo(tz_name), permalink=permalink, max_post_bytes=max_post_bytes)


def parse_post(source: str, data: bytes, stamp: Stamp, rules: SiteRules) -> Parsed:
    """Read one post file. ``source`` is its path relative to the content folder, ``data``
    its bytes (within ``max_post_bytes``: the disk reader checks that)."""
    warnings: list[str] = []
    front, _body = split_front_matter(source, decode(source, data, warnings))
    if _unpublished(front):
        raise SkipFile(f"{source}: published: false")
    file_date, slug, markup = _file_name(source)
    when, updated = _dates(source, front, file_date, rules.tz)
    title = _title(source, front, slug, warnings)
    categories = folder_categories(source)
    categories = list(dict.fromkeys(
        [*categories, *_names(source, front, "category", "categories")]))
    tags = _names(source, front, "tag", "tags")
    categories, tags = _capped(categories, tags, warnings)
    url, entry_id = _address(source, front, rules, when, categories, slug)
    summary = _text(source, front, "description") or _text(source, front, "excerpt")
    source_url = _source_url(source, front)
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
        author=_author(source, front.get("author")),
        summary=summary,
        image=_text(source, front, "image"),
        lang=_text(source, front, "lang"),
        source_url=source_url,
    )
    if CONTROL_WARNING not in warnings and (holds_control(front)
                                            or XML_ILLEGAL.search(source)):
        warnings.append(CONTROL_WARNING)  # written as YAML escapes ("\x01"), not raw
    return Parsed(post, warnings)


def _unpublished(front: Mapping[str, Any]) -> bool:
    published = front.get("published", True)
    return published is False or (isinstance(published, str) and published.lower() == "false")


def _file_name(source: str) -> tuple[str | None, str, str]:
    """(the file name's date, its slug, the markup its extension means)."""
    name = source.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext.lower()}" if dot else ""
    markup = "markdown" if ext in MARKDOWN_EXTENSIONS else "html"
    match = FILENAME_DATE.match(name)
    if match:
        return match.group(1), clean_text(match.group(2)), markup
    return None, clean_text(stem or name), markup


def _dates(source: str, front: Mapping[str, Any], file_date: str | None,
           tz: tzinfo) -> tuple[datetime, datetime]:
    """(published, updated): the front matter's date, else the file name's."""
    if front.get("date") is not None:
        when = parse_date(source, front["date"], tz)
    elif file_date:
        when = parse_date(source, file_date, tz, key="file-name date")
    else:
        raise PostError(source, "no date: give 'date:' in the front matter or name the "
                        "file YYYY-MM-DD-slug")
    for key in ("last_modified_at", "updated"):
        if front.get(key) is not None:
            return when, parse_date(source, front[key], tz, key=key)
    return when, when


def _title(source: str, front: Mapping[str, Any], slug: str, warnings: list[str]) -> str:
    title = _text(source, front, "title")
    if title is None:
        title = titleize_slug(slug) or slug
        warnings.append(f"no title; using {title!r} from the file name")
    title = " ".join(title.split())
    if len(title) > MAX_TITLE:  # the title's markup is stripped by regular expressions
        warnings.append(f"title of {len(title)} characters; keeping the first {MAX_TITLE}")
        title = title[:MAX_TITLE]
    return title


def _address(source: str, front: Mapping[str, Any], rules: SiteRules, when: datetime,
             categories: list[str], slug: str) -> tuple[str, str]:
    """(the post's URL path, its entry id)."""
    front_slug = front.get("slug")
    if front_slug is not None and not isinstance(front_slug, list):
        title_slug = slugify_pretty(clean_text(str(front_slug)))
    else:
        title_slug = slugify_pretty(slug)
    template = _text(source, front, "permalink") or rules.permalink
    # data["slug"] in Jekyll: the front matter's slug, else the file name's. Both ':slug'
    # and the entry id use it.
    raw_slug = clean_text(front_slug) if isinstance(front_slug, str) else slug
    # Jekyll shows every date in the site zone before it builds the URL, so the URL's
    # day is the site zone's day, whatever offset the date was written with.
    url = build_permalink(source, template, when.astimezone(rules.tz), categories, raw_slug,
                          title_slug)
    entry_id = (_text(source, front, "id") or _text(source, front, "guid")
                or post_id(url, raw_slug))
    return url, entry_id


def _source_url(source: str, front: Mapping[str, Any]) -> str | None:
    """Where the article was first published: an http(s) URL, or nothing."""
    for key in ("source_url", "source", "canonical_url"):
        value = _text(source, front, key)
        if value:
            return value if re.match(r"^(https?:)?//", value) else None
    return None


def _names(path: str, data: Mapping[str, Any], singular: str, plural: str) -> list[str]:
    """Jekyll's pluralized_array_from_hash: the singular key as one name (or a list), else
    the plural key as a list or a whitespace-separated string."""
    if singular in data and data[singular] is not None:
        value = data[singular]
        items = value if isinstance(value, list) else [value]
    elif plural in data and data[plural] is not None:
        value = data[plural]
        if isinstance(value, str):
            items = value.split()
        elif isinstance(value, list):
            items = value
        else:
            raise PostError(
                path, f"{plural} must be a list or a space-separated string, "
                f"not {type(value).__name__}"
            )
    else:
        return []
    names: dict[str, None] = {}  # a dict: ordered, and a linear check for repeats
    for item in items:
        if item is None:
            continue
        if isinstance(item, list | dict):
            key = singular if singular in data else plural
            raise PostError(path, f"{key} must hold names, not nested {type(item).__name__}s")
        name = " ".join(clean_text(str(item)).split())
        if name:
            names[name] = None
    return list(names)


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


def _author(path: str, value: object) -> Author | None:
    if value is None or value == "":
        return None
    if isinstance(value, str | int | float):
        return Author(name=clean_text(str(value)))
    if isinstance(value, dict):
        name = value.get("name")
        if not isinstance(name, str) or not name.strip():
            raise PostError(path, "author mapping needs a 'name'")

        def opt(key: str) -> str | None:
            item = value.get(key)
            return clean_text(str(item)) if item else None

        return Author(name=clean_text(name), email=opt("email"), uri=opt("uri") or opt("url"))
    if isinstance(value, list) and value and isinstance(value[0], str | dict):
        return _author(path, value[0])
    raise PostError(path, "author must be a name or a mapping with name, email, uri")


def _text(path: str, data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, list | dict):
        raise PostError(path, f"{key} must be text, not a {type(value).__name__}")
    text = clean_text(str(value)).strip()
    return text or None
