"""Which files of a site Jekyll reads as posts and documents: its ``EntryFilter``
(``exclude``, ``include``, the special leading characters) as the reader applies it on
the way down to a ``_posts`` folder and inside it, plus ``collections_dir`` and the
collections' folders. Pure functions on '/'-separated paths relative to the site.

Jekyll walks the site folder by folder: a folder whose name starts with ``.``, ``_``,
``#`` or ``~``, or that ``exclude`` names (and ``include`` does not), is not entered. In
a ``_posts`` folder it lists every file below (not below dot folders) and filters each by
its path inside ``_posts``: one whose path or name starts with a special character, or
that ``exclude`` names, is no post, so ``_posts/a/_b/2021-01-01-x.md`` is one and
``_posts/_b/2021-01-01-x.md`` is not. A post's file name must hold its date.
"""

from __future__ import annotations

import fnmatch
import functools
import re
from dataclasses import dataclass, field

# Configuration::DEFAULT_EXCLUDES, added to every site's exclude list.
DEFAULT_EXCLUDES = (".sass-cache", ".jekyll-cache", "gemfiles", "Gemfile", "Gemfile.lock",
                    "node_modules", "vendor/bundle/", "vendor/cache/", "vendor/gems/",
                    "vendor/ruby/")
DEFAULT_INCLUDES = (".htaccess",)
_SPECIAL = (".", "_", "#", "~")


class _Patterns:
    """EntryFilter#glob_include? for one list of patterns, compiled once: a path matches
    a pattern that fnmatch's it (Ruby's, without FNM_PATHNAME: '*' crosses '/'), that it
    starts with, or, for a folder, that is the folder with a trailing '/'."""

    def __init__(self, patterns: tuple[str, ...]) -> None:
        cleaned = tuple(p.lstrip("/") for p in patterns if p)
        self._prefixes = cleaned
        self._folders = frozenset(p for p in cleaned if p.endswith("/"))
        self._glob = re.compile("|".join(fnmatch.translate(p) for p in cleaned)) \
            if cleaned else None

    def match(self, path: str, folder: bool = False) -> bool:
        return bool(self._prefixes) and (
            path.startswith(self._prefixes)
            or (self._glob is not None and self._glob.match(path) is not None)
            or (folder and path + "/" in self._folders))


@dataclass(frozen=True)
class Folders:
    """Where Jekyll reads posts and documents: the collections' folders ('_recipes', or
    'stuff/_recipes' below a ``collections_dir`` of 'stuff'), ``collections_dir`` itself
    ('' for the site), below which alone ``_posts`` folders are read when it is set, and
    ``exclude`` and ``include`` as _config.yml gives them (Jekyll's defaults added)."""

    documents: frozenset[str] = frozenset()
    collections_dir: str = ""
    exclude: tuple[str, ...] = DEFAULT_EXCLUDES
    include: tuple[str, ...] = DEFAULT_INCLUDES
    excluded: _Patterns = field(init=False, compare=False, repr=False)
    included: _Patterns = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:  # compiled once, not once a file
        object.__setattr__(self, "excluded", _Patterns(self.exclude))
        object.__setattr__(self, "included", _Patterns(self.include))

    def document_folder(self, path: str) -> str | None:
        """The collection folder that ``path`` is (or is below), if any."""
        for folder in self.documents:
            if path == folder or path.startswith(folder + "/"):
                return folder
        return None

    def leads_to_documents(self, folder: str) -> bool:
        """Whether a folder is a collection's, or holds one (a walk must go in)."""
        return any(d == folder or d.startswith(folder + "/") for d in self.documents)


def folders(documents: frozenset[str], collections_dir: str, exclude: tuple[str, ...],
            include: tuple[str, ...]) -> Folders:
    """A site's :class:`Folders`: ``exclude`` with Jekyll's defaults, less ``include``
    (Site#exclude - Site#include, as EntryFilter#excluded? takes it)."""
    excluded = tuple(p for p in dict.fromkeys((*exclude, *DEFAULT_EXCLUDES)) if p not in include)
    return Folders(documents, collections_dir, excluded, include)


def rejected(entry: str, path: str, site: Folders, folder: bool = False) -> bool:
    """EntryFilter#filter for one entry: ``entry`` as the reader lists it (a folder's
    name, or a file's path inside ``_posts``), ``path`` the same relative to the site."""
    if entry.endswith("."):
        return True
    name = entry.rsplit("/", 1)[-1]
    included = site.included.match(entry) or site.included.match(name)
    if not included and site.excluded.match(path, folder):
        return True
    if included:
        return False
    return entry.startswith(_SPECIAL) or name.startswith(_SPECIAL) or entry.endswith("~")


@functools.lru_cache(maxsize=4096)
def enters(folder: str, site: Folders) -> bool:
    """Whether Jekyll may read a post or document below ``folder`` ('' for the site)."""
    if not folder or site.leads_to_documents(folder):
        return True
    parts = folder.split("/")
    doc = site.document_folder(folder)
    if doc is not None:
        return not any(p.startswith(".") for p in parts[doc.count("/") + 1:])
    above, within = parts, []
    if "_posts" in parts:
        at = parts.index("_posts")
        above, within = parts[:at], parts[at + 1:]
    for n, name in enumerate(above):
        if rejected(name, "/".join(parts[: n + 1]), site, folder=True):
            return False
    # Below _posts the reader lists with Dir['**/*']: no dot folder, and a path that
    # starts with a special character is filtered out.
    return not within or not (within[0].startswith(_SPECIAL)
                              or any(p.startswith(".") for p in within))


def is_jekyll_post(rel: str, site: Folders) -> bool:
    """Whether a file below a ``_posts`` folder may be a post Jekyll reads (its folder
    passed :func:`enters`): its path inside ``_posts`` not filtered out. (Its name must
    also hold a date: the parser skips, with a line in ``feeds check``, one that does not.)"""
    parts = rel.split("/")
    # (The content folder may itself be a _posts folder: then it holds the posts.)
    inside = "/".join(parts[parts.index("_posts") + 1:]) if "_posts" in parts else rel
    return not rejected(inside, rel, site)
