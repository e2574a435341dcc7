"""What a post's Liquid may see of its site, and the error of a post's Liquid: light
records, so that start-up does not import the Liquid engine (``liquid`` does, when a body
with Liquid is first rendered)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, tzinfo
from pathlib import Path
from typing import Any


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
    version: str = ""
    """Changes whenever anything above does: a body rendered with Liquid is kept only
    for the version it was rendered with."""
