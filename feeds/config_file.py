"""The content folder's ``_config.yml``: read with the same guard as front matter (no
alias bomb, no nesting that overflows libyaml's stack), and its stamp, by which the
service sees it appear, change or go."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import yaml

from .parse.frontmatter import TooDeep, _expansion_trouble, load_yaml

logger = logging.getLogger(__name__)

NAME = "_config.yml"
T = TypeVar("T")

ConfigStamp = tuple[int, int, int] | None


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the setting."""


def config_stamp(content: Path) -> ConfigStamp:
    """(mtime, size, inode) of the folder's ``_config.yml``; None when there is none."""
    return _stamp(content / NAME)


def _stamp(path: Path) -> ConfigStamp:
    try:
        st = os.stat(path)
    except (OSError, ValueError):
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


AUTHORS_FILES = ("_data/authors.yml", "_data/authors.yaml", "_data/authors.json")
"""Where Jekyll finds ``site.data.authors`` (the first that exists): read with the
settings, so followed with ``_config.yml``."""


def authors_stamp(content: Path) -> tuple[str, ConfigStamp] | None:
    """Which authors file the folder has, and its stamp; None when it has none."""
    for rel in AUTHORS_FILES:
        stamp = _stamp(content / rel)
        if stamp is not None:
            return rel, stamp
    return None


LIQUID_FOLDERS = ("_data", "_includes")
"""Folders whose files a post's Liquid reads (``site.data``, ``include``): a change to
any of them is a new content version, so bodies rendered with the old files are made
again."""
MAX_LIQUID_FILES = 20_000
"""Files (and folders) of LIQUID_FOLDERS stamped at most: a bound on each look."""


def liquid_files_stamp(content: Path) -> tuple[tuple[str, int, int, int], ...]:
    """(path, mtime, size, inode) of every file and folder below ``_data/`` and
    ``_includes/``, in order: which versions of them a post's Liquid would read. A
    folder's own stamp is in it, so a file removed changes it too."""
    found: list[tuple[str, int, int, int]] = []
    stack = list(reversed(LIQUID_FOLDERS))
    while stack and len(found) < MAX_LIQUID_FILES:
        rel = stack.pop()
        try:
            st = os.lstat(content / rel)
        except (OSError, ValueError):
            continue
        found.append((rel, st.st_mtime_ns, st.st_size, st.st_ino))
        if not os.path.isdir(content / rel) or os.path.islink(content / rel):
            continue
        try:
            names = sorted(os.listdir(content / rel), reverse=True)
        except OSError:
            continue
        stack.extend(f"{rel}/{name}" for name in names)
    return tuple(found)


class LiquidFiles:
    """The stamps of a folder's ``_data/`` and ``_includes/`` as last looked at."""

    def __init__(self, content: Path) -> None:
        self.content = content
        self.stamp = liquid_files_stamp(content)

    def changed(self) -> bool:
        """Whether any of them changed since the last look (the stamp is then the new)."""
        now = liquid_files_stamp(self.content)
        if now == self.stamp:
            return False
        self.stamp = now
        return True


def read_config_file(content: Path) -> dict[str, Any]:
    """The content folder's ``_config.yml`` as a mapping ({} when there is none);
    ConfigError, naming the file, when it cannot be read or used safely."""
    path = content / NAME
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    try:
        data = load_yaml(text)
    except TooDeep as e:
        raise ConfigError(f"{path}: {e}") from None
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {' '.join(str(e).split())}") from e
    except (RecursionError, ValueError, TypeError, OverflowError) as e:
        raise ConfigError(f"{path}: a value YAML cannot hold ({type(e).__name__})") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    trouble = _expansion_trouble(data)
    if trouble:
        raise ConfigError(f"{path}: {trouble}")
    return data


TRUNCATED_NS = 2_000_000_000
"""An emptied ``_config.yml`` younger than this is taken for one being rewritten in place
(as ``settle.SETTLE`` takes a young post file that does not parse)."""


class ConfigFollower:
    """One folder's ``_config.yml`` as the service follows it: whether it changed since
    last read, and the last good settings kept while it is missing (having been there)
    or cannot be used; ``problem`` says why (health)."""

    def __init__(self, content: Path) -> None:
        self.content = content
        self.stamp = config_stamp(content)
        self.authors = authors_stamp(content)
        self._had_file = self.stamp is not None
        self.problem: str | None = None

    def changed(self) -> bool:
        # The authors file too: its folder may be made and the file saved into it before
        # the observer watches the folder, so no event names it; the next scan must.
        return (config_stamp(self.content) != self.stamp
                or authors_stamp(self.content) != self.authors)

    def reread(self, read: Callable[[], T]) -> T | None:
        """``read()`` (settings from the file as it is now), or None to keep the ones in
        use: the file is gone, or ``read`` raised ValueError (logged)."""
        stamp = config_stamp(self.content)
        if (stamp is not None and stamp[1] == 0 and self._had_file
                and time.time_ns() - stamp[0] < TRUNCATED_NS):
            # Emptied a moment ago: a writer that truncates and then writes is half-way
            # through. Keep the settings; the stamp stays unread, so the next look (its
            # close event, or the next full scan) reads the file again.
            return None
        self.stamp = stamp
        self.authors = authors_stamp(self.content)
        if self.stamp is None and self._had_file:
            if self.problem is None:
                logger.warning("%s is gone; keeping the settings it gave",
                               self.content / NAME)
            self.problem = f"{NAME} is missing; using the settings it gave"
            return None
        try:
            value = read()
        except ValueError as e:
            logger.error("%s; keeping the previous settings", e)
            self.problem = f"{e}; using the previous settings"
            return None
        self.problem = None
        self._had_file = self.stamp is not None
        return value
