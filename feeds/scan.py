"""The walk of a content folder and the two halves of a full scan that run without the
store's lock: the survey (walk and lstat every file) and its comparison with the files
known. Also the folder's *look* (how many files, how many bytes), by which the watcher
knows a copy or a removal in progress is over.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Mapping

from .disk import NO_COLLECTIONS, relative, stamp_of
from .model import Stamp
from .parse import Folders, enters

logger = logging.getLogger(__name__)


def _listed(listing: Iterator[os.DirEntry[str]], folder: str) -> Iterator[os.DirEntry[str]]:
    """A folder's entries as they are read. Listed whole first, every entry of a folder
    was held, with the stat a survey cached on it, until its last file was walked: a
    10,000-post survey peaked at 9.7 MiB, against the 3.1 MiB it keeps."""
    while True:
        try:
            entry = next(listing)
        except StopIteration:
            return
        except OSError as e:
            logger.warning("%s: cannot list folder: %s", folder, e)
            return
        yield entry


def walk(root: str, top: str, folders: list[str] | None = None,
         documents: Folders = NO_COLLECTIONS,
         ) -> Iterator[tuple[str, os.DirEntry[str]]]:
    """(path relative to ``root``, entry) of every file below ``top``, not following
    links to folders, skipping dot folders, ``_site``, ``_drafts`` and the like (but
    the collection folders of ``documents``). The
    relative path of each folder it lists is added to ``folders`` when given."""
    stack = [top]
    prefix = os.path.join(root, "")
    while stack:
        folder = stack.pop()
        try:
            listing = os.scandir(folder)
        except OSError as e:
            if folder == top and not os.path.exists(folder):
                continue
            logger.warning("%s: cannot list folder: %s", folder, e)
            continue
        if folders is not None:
            folders.append(relative(folder, prefix, root))
        with listing:  # (closed however the walk ends: one folder open at a time)
            for entry in _listed(listing, folder):
                rel = relative(entry.path, prefix, root)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if enters(rel, documents):
                            stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                        yield rel, entry
                except OSError:
                    continue


def litter(name: str) -> bool:  # an editor's temporary, backup or lock file
    return name.startswith((".", "#", "~")) or name.endswith("~")


Look = tuple[int, int] | None


SURVEY_EVERY = 500
"""A full scan's walk calls its ``between`` after this many files (~3 ms of stats)."""


Surveyed = list[tuple[str, Stamp | None, bool]]
"""What a full scan's walk found: (path, its lstat's stamp or None when that failed,
whether it is a link) of each file. Stamps, not the walk's entries: an entry with its
stat result held is ~1 KB, ~100 MB at 100,000 files for the length of a scan."""


def survey(root: str, folders: list[str], documents: Folders = NO_COLLECTIONS,
           between: Callable[[], None] | None = None) -> Surveyed:
    """A full scan's walk of ``root`` (see walk) with an lstat of each file: the slow
    half of a scan, made without the store's lock. ``between()`` is called every
    SURVEY_EVERY files, so that changes are taken in meanwhile."""
    files: Surveyed = []
    for n, (rel, entry) in enumerate(walk(root, root, folders, documents), 1):
        try:
            files.append((rel, stamp_of(entry.stat(follow_symlinks=False)),
                          entry.is_symlink()))
        except OSError:  # gone since it was listed: the scan's second half says so
            files.append((rel, None, False))
        if between is not None and n % SURVEY_EVERY == 0:
            between()
    return files


def compare(files: Surveyed, stamps: Mapping[str, Stamp], is_post: Callable[[str], bool],
            settle: float | None, between: Callable[[], None] | None = None,
            ) -> tuple[set[str], list[str], list[str]]:
    """A full scan's survey against the files known (``stamps``: path -> stamp), made
    unlocked too (a path ``between()`` changes meanwhile is read again, which is safe):
    the paths that may hold posts, those whose stat differs or that are links (where one
    leads may have changed: to read again), and those of them written in the last
    ``settle`` seconds (perhaps half done: to read once settled)."""
    found: set[str] = set()
    changed: list[str] = []
    young: list[str] = []
    for n, (rel, stamp, link) in enumerate(files, 1):
        if between is not None and n % SURVEY_EVERY == 0:
            between()
        if (known := stamps.get(rel)) is None and not is_post(rel):
            continue  # (a stamped path passed is_post_path, by the same rules)
        found.add(rel)
        if known is None or link or stamp != known:
            (young if settle is not None and stamp is not None
             and time.time_ns() - stamp[0] < settle * 1e9 else changed).append(rel)
    return found, changed, young


def surveyed_look(root: str, files: Surveyed) -> Look:
    """folder_look of the files a full scan surveyed (no second walk)."""
    if not os.path.isdir(root):
        return None
    count = size = 0
    for rel, stamp, _link in files:
        if stamp is not None and not litter(rel.rpartition("/")[2]):
            count, size = count + 1, size + stamp[1]
    return count, size


def folder_look(root: str, documents: Folders = NO_COLLECTIONS) -> Look:
    """How many files there are below ``root`` (not counting dot files and editors'
    backups) and their total size; None when it is no folder. Two equal looks some time
    apart: nothing is being copied in or removed. (Not the newest mtime: a post saved
    every moment would keep a folder from ever settling.)"""
    return look_of(root, walk(root, root, documents=documents))


def look_of(root: str, files: Iterable[tuple[str, os.DirEntry[str]]]) -> Look:
    """folder_look of the files a walk of ``root`` gave."""
    if not os.path.isdir(root):
        return None
    count = size = 0
    for _rel, entry in files:
        if litter(entry.name):
            continue
        try:
            size += entry.stat(follow_symlinks=False).st_size
        except OSError:
            continue
        count += 1
    return count, size
