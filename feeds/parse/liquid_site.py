"""What a post's Liquid may see of its site, and the error of a post's Liquid: light
records, so that start-up does not import the Liquid engine (``liquid`` does, when a body
with Liquid is first rendered)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import Any

import yaml

logger = logging.getLogger(__name__)


class LiquidError(Exception):
    """The post's Liquid cannot be rendered; the message says why."""


@dataclass(frozen=True, eq=False)
class LiquidSite:
    """What a post's Liquid may see of its site."""

    root: Path
    """The content folder: no file outside it is read."""
    config: Mapping[str, Any]
    """``_config.yml``, as ``site.*``."""
    base: str = ""
    """url + baseurl, absolute ('' when unknown)."""
    baseurl: str = ""
    post_urls: Mapping[str, str] = field(default_factory=dict)
    """A post's name ('2021-01-01-x', or 'folder/2021-01-01-x') -> its URL path."""
    file_urls: Mapping[str, str] = field(default_factory=dict)
    """A file's path in the content folder ('_posts/2021-01-01-x.md') -> its URL path."""
    tz: tzinfo = UTC
    """The site's zone, for the date filters."""
    collections_dir: str = ""
    """Where posts and collections live: a ``page.path`` of one is below it."""
    version: str = ""
    """Changes whenever anything above does: a body rendered with Liquid is kept only
    for the version it was rendered with."""


class SiteVars(Mapping[str, Any]):
    """``site.*``: the ``_config.yml`` (with ``data``), and ``posts``, ``categories`` and
    ``tags`` made when a template first reads them (newest first, as Jekyll lists
    them), and ``documents``."""

    def __init__(self, config: Mapping[str, Any],
                 posts: Callable[[], list[dict[str, Any]]],
                 collections: tuple[str, ...] = ()) -> None:
        self._config = dict(config)
        self._posts = posts
        self._collections = collections
        """The labels of the collections whose documents ``config`` lists (oldest first),
        in _config.yml's order: ``site.documents`` is the posts', then theirs."""
        self._made: dict[str, Any] = {}

    def _lists(self) -> dict[str, Any]:
        if not self._made:
            posts = self._posts()
            made: dict[str, Any] = {"posts": posts, "categories": {}, "tags": {}}
            # Site#documents: every collection's documents, posts first, each collection
            # in the order Jekyll sorts it (oldest first).
            made["documents"] = [*reversed(posts), *(
                doc for label in self._collections for doc in self._config.get(label, ()))]
            for post in posts:
                for kind in ("categories", "tags"):
                    for name in post[kind]:
                        made[kind].setdefault(name, []).append(post)
            self._made = made
        return self._made

    def __getitem__(self, key: str) -> Any:
        if key in self._config:
            return self._config[key]
        if key in _MADE:
            return self._lists()[key]
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(_MADE), **self._config})

    def __len__(self) -> int:
        return len(set(self._config) | set(_MADE))


_MADE = ("posts", "categories", "tags", "documents")  # the lists SiteVars makes


class RubyTime(datetime):
    """A time as Liquid prints it in Jekyll: Ruby's Time#to_s ('2021-01-02 10:00:00
    +0800'), where Python's would write '+08:00'."""

    def __str__(self) -> str:
        return self.strftime("%Y-%m-%d %H:%M:%S %z")


def ruby_time(when: datetime) -> RubyTime:
    return RubyTime(when.year, when.month, when.day, when.hour, when.minute, when.second,
                    when.microsecond, tzinfo=when.tzinfo, fold=when.fold)


READER: ContextVar[Any] = ContextVar("feeds_liquid_reader", default=None)
"""The post whose body's Liquid is being rendered (body.with_liquid sets it): what the
``content`` of another post in ``site.posts`` is depends on it."""


class PostVars(dict[str, Any]):
    """One post of ``site.posts``: its ``page.*`` values, and ``content`` made when a
    template reads it, as the reader being rendered sees it (see ``content``)."""

    def __init__(self, values: Mapping[str, Any], post: Any,
                 content: Callable[[Any, Any], str]) -> None:
        super().__init__(values)
        self._post = post
        self._content = content

    def __missing__(self, key: str) -> Any:
        if key == "content":
            return self._content(self._post, READER.get())
        raise KeyError(key)


MAX_DATA_BYTES = 2_000_000
_DATA_SUFFIXES = (".yml", ".yaml", ".json")


def read_data(root: Path) -> dict[str, Any]:
    """``site.data``: the ``_data/`` folder's YAML and JSON files by name (folders
    nested), as Jekyll reads them. A file that cannot be read is left out, with a
    warning; nothing outside the content folder is read (no symbolic links)."""
    import json

    from .frontmatter import load_yaml

    def walk(folder: Path, depth: int) -> dict[str, Any]:
        data: dict[str, Any] = {}
        for path in sorted(folder.iterdir()) if depth < 8 else ():
            if path.is_symlink() or path.name.startswith((".", "_")):
                continue
            if path.is_dir():
                data[path.name] = walk(path, depth + 1)
            elif path.suffix.lower() in _DATA_SUFFIXES and \
                    path.stat().st_size <= MAX_DATA_BYTES:
                try:
                    text = path.read_text(encoding="utf-8-sig")
                    data[path.stem] = json.loads(text) if path.suffix.lower() == ".json" \
                        else load_yaml(text)
                except (OSError, ValueError, yaml.YAMLError) as e:
                    logger.warning("%s: cannot read as site.data: %s", path, e)
        return data

    folder = root / "_data"
    return walk(folder, 0) if folder.is_dir() and not folder.is_symlink() else {}
