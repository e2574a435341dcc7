"""What post bodies' Liquid sees of one state: ``_config.yml`` with ``site.data``, every
post's and document's URL (for ``post_url`` and ``link``), ``site.posts`` and each
collection, ``site.time``, and the version that says when a body with Liquid must be
rendered again."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

from .bodies import BodyCache
from .config import Settings
from .config_file import NAME as CONFIG_NAME
from .config_file import ConfigError, liquid_files_stamp, read_config_file
from .model import Post
from .parse import (
    LiquidSite,
    PostError,
    PostVars,
    SiteVars,
    jekyll_relative,
    page_vars,
    parse_date,
    read_data,
    ruby_time,
)
from .site import State


def liquid_site_of(state: State, bodies: BodyCache,
                   read_body: Callable[[Post], str]) -> LiquidSite:
    """The Liquid site of ``state``; ``bodies`` renders a post another body's Liquid
    reads the ``content`` of, ``read_body`` reads one's text as written."""
    settings = state.settings
    cdir = settings.collections_dir
    try:
        config = read_config_file(Path(settings.content))
    except ConfigError:
        config = {}
    config = {**config, "data": read_data(Path(settings.content))}
    posts = state.index.posts
    documents = [d for docs in state.index.collections.values() for d in docs]
    base = (settings.url.rstrip("/") + settings.path_prefix) if settings.url \
        else settings.site_base
    version = _version(settings, config, [*posts, *documents], base)
    config["time"] = _site_time(settings)
    # Jekyll renders the posts, then each collection in the order _config.yml names them.
    order = {"posts": 0, **{c.label: n + 1 for n, c in enumerate(settings.collections)}}
    content = _content_of(bodies, read_body, base, order)
    for label, docs in state.index.collections.items():  # site.<name>: oldest first
        config[label] = [PostVars(page_vars(d, {}, cdir), d, content) for d in reversed(docs)]
    site_vars = SiteVars(config, lambda: [PostVars(page_vars(p, {}, cdir), p, content)
                                          for p in posts],
                         tuple(label for label in order if label in state.index.collections))
    return LiquidSite(root=Path(settings.content), config=site_vars, base=base,
                      baseurl=settings.path_prefix, post_urls=_post_names(posts),
                      file_urls={jekyll_relative(p.source, cdir): p.url
                                 for p in (*posts, *documents)},
                      tz=settings.tz, version=version, collections_dir=cdir)


def _post_names(posts: Sequence[Post]) -> dict[str, str]:
    """``post_url``'s names of each post: its file name without the extension, and its
    path below ``_posts/``."""
    names: dict[str, str] = {}
    for post in posts:
        name = post.source.rsplit(".", 1)[0]
        names[name.rsplit("/", 1)[-1]] = post.url
        names[name.split("_posts/", 1)[-1]] = post.url
    return names


def _version(settings: Settings, config: dict[str, Any], posts: Sequence[Post],
             base: str) -> str:
    """Any post's edit is a new version (site.posts shows every post's title and date),
    and so is any edit of ``_includes/`` (the files' stamps; ``_data/`` is in config)."""
    return hashlib.blake2b(json.dumps(
        [config, [(p.source, p.url, p.stamp) for p in posts], base, settings.timezone,
         liquid_files_stamp(Path(settings.content))],
        sort_keys=True, default=str).encode(), digest_size=12).hexdigest()


def _site_time(settings: Settings) -> datetime:
    """site.time: _config.yml's time, else when this state's site was first needed (the
    build time in Jekyll); not in the version, so no body is rendered again for it."""
    when = (parse_date(CONFIG_NAME, settings.time, settings.tz).astimezone(settings.tz)
            if settings.time else datetime.now(settings.tz))
    return ruby_time(when)


def _content_of(bodies: BodyCache, read_body: Callable[[Post], str], base: str,
                order: dict[str, int]) -> Callable[[Post, Post | None], str]:
    """``content`` of a post in ``site.posts`` (or a document of ``site.<name>``), as
    Jekyll's Liquid sees it while it renders ``reader``: Jekyll renders the posts oldest
    first, then each collection's documents (``order``), so one rendered before the
    reader is its rendered HTML, any other (the reader too) its text as written."""
    def rank(post: Post) -> tuple[int, datetime, str]:
        return order.get(post.collection, len(order)), post.date, post.source

    def content(post: Post, reader: Post | None) -> str:
        if reader is not None and rank(post) < rank(reader):
            return bodies.body(post, base).html
        try:
            return str(read_body(post))
        except PostError:
            return ""

    return content
