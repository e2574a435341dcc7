"""The Jekyll and jekyll-feed parts of a site's configuration, as typed values: the
``feed:`` mapping's paths and lists, front-matter ``defaults`` (``config`` declares the
settings with these parsers), and ``site.data.authors``, which jekyll-feed looks an
entry's author up in."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .config_file import AUTHORS_FILES
from .model import Author, DefaultSet

JEKYLL_EXCERPT_SEPARATOR = "\n\n"
"""Jekyll's default excerpt_separator: a blank line ends the excerpt."""


def _text(value: object) -> str:
    return "" if value is None else str(value)


def names(value: object) -> tuple[str, ...]:
    """A list of names (a lone name is a list of one); nothing is none."""
    if value is None or value is False:
        return ()
    if isinstance(value, str | int | float):
        return (str(value),)
    if isinstance(value, list | tuple):
        return tuple(str(item) for item in value if item is not None)
    raise ValueError(f"must be a name or a list of names, got {type(value).__name__}")


def feed_path(value: object) -> str:
    """A feed path as jekyll-feed's ``feed.path`` gives it ('atom.xml' -> '/atom.xml');
    '' for the default."""
    text = _text(value).strip()
    if not text:
        return ""
    if any(part in {".", ".."} for part in text.split("/")) or "?" in text or "#" in text:
        raise ValueError(f"not a path of the site: {value!r}")
    return "/" + text.lstrip("/")


def tag_feeds(value: object) -> TagFeeds:
    """jekyll-feed's ``feed.tags``: a mapping of only, except and path, or any other
    value but false for every tag."""
    if isinstance(value, TagFeeds):
        return value
    if value is None or value is False:
        return TagFeeds()
    if not isinstance(value, dict):
        return TagFeeds(enabled=True)  # any other value jekyll-feed reads as 'all tags'
    only = value.get("only")
    # The path is a prefix, as in jekyll-feed: '/tags' gives '/tagsrust.xml'.
    return TagFeeds(enabled=True, only=None if only is None else names(only),
                    exclude=names(value.get("except")),
                    path=feed_path(value.get("path")) or DEFAULT_TAG_PATH)


DEFAULT_TAG_PATH = "/feed/by_tag/"


@dataclass(frozen=True)
class TagFeeds:
    """``feed.tags``: whether jekyll-feed's tag feeds are asked for, which tags (``only``,
    None for all, less ``exclude``) and the folder of their paths."""

    enabled: bool = False
    only: tuple[str, ...] | None = None
    exclude: tuple[str, ...] = ()
    path: str = DEFAULT_TAG_PATH

    def listed(self, tag: str) -> bool:
        """Whether jekyll-feed's tag path serves this tag's feed."""
        if tag in self.exclude:
            return False
        return self.only is None or tag in self.only


def read_authors(content: Path) -> tuple[tuple[str, Author], ...]:
    """``site.data.authors`` as (key, author) pairs: an entry needs a ``name`` (email and
    uri as jekyll-feed reads them). A file that cannot be read is an error naming it."""
    for rel in AUTHORS_FILES:
        path = content / rel
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8-sig"))
        except FileNotFoundError:
            continue
        except (OSError, UnicodeError, yaml.YAMLError) as e:
            raise ValueError(f"{path}: cannot read the authors: {e}") from e
        if not isinstance(data, dict):
            raise ValueError(f"{path}: must be a mapping of author keys to authors")
        found = []
        for key, value in data.items():
            if isinstance(value, dict) and value.get("name"):
                found.append((str(key), Author(
                    name=str(value["name"]), email=_text(value.get("email")) or None,
                    uri=_text(value.get("uri")) or None)))
        return tuple(found)
    return ()


def front_matter_defaults(value: object) -> tuple[DefaultSet, ...] | None:
    """Jekyll's front-matter ``defaults``: a list of {scope: {path, type}, values}. A set
    Jekyll would skip as invalid (values not a mapping) is an error here, so a typo is
    seen rather than silently changing posts."""
    if value is None:
        return None
    if not isinstance(value, list):
        raise ValueError("must be a list of {scope, values} sets")
    sets = []
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("values"), dict):
            raise ValueError(f"each set needs a 'values' mapping, got {item!r}")
        scope = item.get("scope") or {}
        if not isinstance(scope, dict):
            raise ValueError(f"a set's 'scope' must be a mapping, got {scope!r}")
        path = scope.get("path")
        kind = scope.get("type")
        # Jekyll still reads the old singular types ('post' for 'posts').
        kind = {"post": "posts", "page": "pages", "draft": "drafts"}.get(
            str(kind), str(kind)) if kind is not None else None
        sets.append(DefaultSet(path.lstrip("/") if isinstance(path, str) else "", kind,
                               tuple(item["values"].items())))
    return tuple(sets)


@dataclass(frozen=True)
class CollectionFeed:
    """One collection of jekyll-feed's ``feed.collections``: its documents' feed (at
    ``path``, '' for /feed/<label>.xml) and one feed per listed category
    (/feed/<label>/<category>.xml)."""

    label: str
    path: str = ""
    categories: tuple[str, ...] = ()

    @property
    def feed_path(self) -> str:
        return self.path or f"/feed/{self.label}.xml"

    def category_path(self, category: str) -> str:
        return f"/feed/{self.label}/{category}.xml"


def _label(value: object) -> str:
    label = _text(value).strip()
    if not label or "/" in label or label.startswith((".", "_")):
        raise ValueError(f"not a collection name: {value!r}")
    return label


def collection_feeds(value: object) -> tuple[CollectionFeed, ...]:
    """jekyll-feed's ``feed.collections``: a list of names, or a mapping of names to
    {path, categories}. 'posts' is the posts' own feed (see ``posts_feed``)."""
    if value is None or value is False:
        return ()
    if isinstance(value, list | tuple):
        return tuple(CollectionFeed(_label(item)) for item in value)
    if not isinstance(value, dict):
        raise ValueError("must be a list of collections or a mapping of them to "
                         "{path, categories}")
    found = []
    for key, meta in value.items():
        meta = meta if isinstance(meta, dict) else {}
        found.append(CollectionFeed(_label(key), feed_path(meta.get("path")),
                                    names(meta.get("categories"))))
    return tuple(found)


@dataclass(frozen=True)
class Collection:
    """One collection of Jekyll's ``collections:``: whether Jekyll writes its documents
    (``output``) and the template of their URLs (None: Jekyll's default)."""

    label: str
    output: bool = False
    permalink: str | None = None


def collections(value: object) -> tuple[Collection, ...]:
    """Jekyll's ``collections:``: a list of names, or a mapping of names to metadata
    (``output``, ``permalink``)."""
    if value is None or value is False:
        return ()
    if isinstance(value, list | tuple):
        return tuple(Collection(_label(item)) for item in value)
    if not isinstance(value, dict):
        raise ValueError("must be a list of collections or a mapping of them to settings")
    found = []
    for key, meta in value.items():
        meta = meta if isinstance(meta, dict) else {}
        permalink = meta.get("permalink")
        found.append(Collection(_label(key), bool(meta.get("output", False)),
                                permalink if isinstance(permalink, str) else None))
    return tuple(found)


def collection_template(permalink_style: str) -> str:
    """Jekyll's URL template of a collection without its own ``permalink``:
    '/:collection/:path' with the suffix of the site's permalink style
    (Utils.add_permalink_suffix)."""
    if permalink_style == "pretty" or (permalink_style not in {"date", "ordinal", "none"}
                                       and permalink_style.endswith("/")):
        return "/:collection/:path/"
    if permalink_style in {"date", "ordinal", "none"} or permalink_style.endswith(
            ":output_ext"):
        return "/:collection/:path:output_ext"
    return "/:collection/:path"


def document_folders(feeds: tuple[CollectionFeed, ...], known: tuple[Collection, ...],
                     permalink_style: str, collections_dir: str = "",
                     ) -> tuple[tuple[str, str, str], ...]:
    """(label, folder, URL template) of every collection whose documents have a feed:
    those of ``feed.collections`` but 'posts' that ``collections:`` declares. A folder
    is '_label', below ``collections_dir`` when that is set."""
    meta = {c.label: c for c in known}
    out = []
    for feed in feeds:
        if feed.label == "posts":
            continue
        own = meta.get(feed.label)
        if own is None:
            continue  # Jekyll reads no such collection: its feed is empty
        template = own.permalink or collection_template(permalink_style)
        folder = f"{collections_dir}/_{feed.label}" if collections_dir else f"_{feed.label}"
        out.append((feed.label, folder, template))
    return tuple(out)
