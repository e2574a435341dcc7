"""Post files on disk: which paths may hold posts, their stamps, and the one door every
read of their bytes goes through.

A post file is opened without blocking and read only when it is a regular file, so a
FIFO, a device, a socket or a folder put in its place (or behind a link to it) is a
clear :class:`~feeds.parse.PostError`, never a hang. A read on behalf of an indexed post
also checks that the file is still the one indexed: same inode, size and mtime; the
bytes read when a file was indexed are kept (bounded) so that its body, read later, is
the one its indexed front matter goes with, even after the file changed again.
"""

from __future__ import annotations

import contextlib
import functools
import os
import stat
import threading
from collections.abc import Iterable, Mapping

from cachetools import LRUCache

from .model import Problem, Stamp
from .parse import (
    POST_EXTENSIONS,
    Folders,
    PostError,
    below,
    check_size,
    enters,
    is_jekyll_post,
)

# Folders a flat folder of posts (no _posts anywhere) reads no posts from, besides dot
# folders and '_'-folders; a Jekyll site has its exclude list instead (entry_filter).
SKIPPED_DIRS = frozenset({"node_modules", "vendor"})


NO_COLLECTIONS = Folders()  # a site without collections, collections_dir or exclude


def skipped_folder(name: str) -> bool:
    """Whether a flat folder of posts has none below a folder of this name."""
    return (name.startswith(".") or name in SKIPPED_DIRS
            or (name.startswith("_") and name != "_posts"))


def skipped_below(parts: list[str], documents: Folders = NO_COLLECTIONS) -> bool:
    """Whether Jekyll reads no post or document below these folders (a path's parts)."""
    return not enters("/".join(parts), documents)


def is_post_path(rel: str, jekyll_layout: bool, documents: Folders = NO_COLLECTIONS) -> bool:
    """Whether a path (relative, '/'-separated) may hold a post in this layout (in a
    Jekyll site: a file Jekyll reads from a ``_posts`` folder), or a document of a
    collection whose folder ('_recipes') is in ``documents``."""
    folder, _, name = rel.rpartition("/")
    dot = name.rfind(".")
    if dot < 0 or name[dot:].lower() not in POST_EXTENSIONS:
        return False
    if name.startswith((".", "_", "#", "~")) or name.endswith("~"):
        return False
    holds = _folder_holds_posts(folder, jekyll_layout, documents)
    if holds == "posts":
        return is_jekyll_post(rel, documents)
    return holds == "yes"


@functools.lru_cache(maxsize=4096)
def _folder_holds_posts(folder: str, jekyll_layout: bool, documents: Folders) -> str:
    """The folder half of is_post_path, asked once per folder rather than per file:
    'no', 'yes' (documents, or a flat folder's posts) or 'posts' (a Jekyll site's
    ``_posts`` folder: each file is asked too)."""
    parts = folder.split("/") if folder else []
    if documents.document_folder(folder) is not None:
        return "yes" if enters(folder, documents) else "no"
    if documents.collections_dir:
        # Jekyll reads _posts below collections_dir only (Reader#retrieve_posts).
        inside = below(folder, documents.collections_dir)
        if inside is None or "_posts" not in inside.split("/"):
            return "no"
    elif not jekyll_layout:
        return "no" if any(skipped_folder(part) for part in parts) else "yes"
    elif "_posts" not in parts:
        return "no"
    return "posts" if enters(folder, documents) else "no"


def relative(path: str, prefix: str, root: str) -> str:
    """``path`` relative to ``root`` ('/'-separated); ``prefix`` is root plus a separator."""
    rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
    return rel.replace(os.sep, "/") if os.sep != "/" else rel


def relative_paths(paths: Iterable[str], root: str) -> set[str]:
    """Absolute or relative paths as paths inside ``root`` ('/'-separated), leaving out
    the folder itself and anything outside it."""
    rels: set[str] = set()
    for raw in paths:
        rel = (os.path.relpath(raw, root) if os.path.isabs(raw) else raw).replace(os.sep, "/")
        if rel not in (".", "", "..") and not rel.startswith("../"):
            rels.add(rel)
    return rels


_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


def stamp_of(st: os.stat_result) -> Stamp:
    return st.st_mtime_ns, st.st_size, st.st_ino


def _join(root: str, rel: str) -> str:
    """os.path.join(root, rel), without its generic work for the usual pair, a folder and
    a path below it: this runs for every file of a load."""
    if root and rel and root[-1] != "/" and rel[0] != "/" and os.sep == "/":
        return f"{root}/{rel}"
    return os.path.join(root, rel)


def stat_post(root: str, rel: str) -> tuple[Stamp | None, Problem | None]:
    """The file's stamp (None when there is no regular file), and a problem when it must
    not be read: a link that leads out of the content folder ``root``."""
    path = _join(root, rel)
    try:
        st = os.lstat(path)
        if stat.S_ISLNK(st.st_mode):
            target = os.path.realpath(path)
            real_root = os.path.realpath(root)
            if os.path.commonpath([target, real_root]) != real_root:
                return (stamp_of(st),
                        Problem(rel, "symlink points outside the content folder; "
                                     "not followed"))
            st = os.stat(path)
        if not stat.S_ISREG(st.st_mode):
            return None, None
    except (OSError, ValueError):
        return None, None
    return stamp_of(st), None


def read_post(root: str, rel: str, limit: int,
              expected: Stamp | None = None) -> tuple[bytes, Stamp]:
    """The bytes of the post file ``rel`` below ``root`` and the stamp of what was read.

    PostError when it cannot be read, is not a regular file, is not the file
    ``expected`` stamps (when given), or is over ``limit`` bytes (max_post_bytes).
    """
    try:
        fd = os.open(_join(root, rel), _OPEN_FLAGS)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise PostError(rel, "not a regular file")
            stamp = stamp_of(st)
            if expected is not None and stamp != expected:
                raise PostError(rel, "changed since it was indexed")
            data = b""
            if st.st_size <= limit:
                data = _read_up_to(fd, st.st_size + 1)
                if stamp_of(os.fstat(fd)) != stamp:  # written to as it was read
                    raise PostError(rel, "changed while it was read")
        finally:
            os.close(fd)
    except OSError as e:
        raise PostError(rel, f"cannot read: {e.strerror or e}") from e
    check_size(rel, max(st.st_size, len(data)), limit)
    return data, stamp


def _read_up_to(fd: int, size: int) -> bytes:
    """At most ``size`` bytes of the file: its size as stat gave it, and one more byte to
    see that it grew since (its stamp then differs, and the caller reads it again).
    Sized to the file, not to max_post_bytes: a buffer of that size for every post was
    a third of a cold load's reading (measured, #13)."""
    chunks: list[bytes] = []
    left = size
    while left > 0:
        chunk = os.read(fd, left)
        if not chunk:
            break
        chunks.append(chunk)
        left -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)  # none: an empty file


def _kept_size(data: bytes) -> int:
    return len(data) + 150  # the key (path, stamp) and the entry's own overhead


class KeptFiles:
    """The bytes of post files as they were read when indexed, by (path, stamp), at most
    ``limit`` bytes of them (the most recently read or asked for). A body is rendered
    from these while they are kept: a file rewritten between its indexing and the
    body's read (an editor saving every keystroke) still gives the body that goes with
    the title and dates served, not an empty one. Thread-safe: requests ask, the
    reloader keeps."""

    def __init__(self, limit: int) -> None:
        self._lock = threading.Lock()
        self._data: LRUCache[tuple[str, Stamp], bytes] = LRUCache(
            maxsize=limit, getsizeof=_kept_size)

    def keep(self, rel: str, stamp: Stamp, data: bytes) -> None:
        with self._lock, contextlib.suppress(ValueError):  # larger than the whole bound
            self._data[(rel, stamp)] = data

    def get(self, rel: str, stamp: Stamp) -> bytes | None:
        with self._lock:
            return self._data.get((rel, stamp))

    @property
    def size(self) -> int:
        return int(self._data.currsize)


class ChangeClock:
    """The newest mtime (ns) of the post files, of the folders they lie in, up to the
    content folder (a file deleted or renamed moves its folder's mtime), and of
    ``_config.yml``: a moment every copy of the same files agrees on, after every change
    they show. Kept up to date from the paths each change touched, so a change costs
    the files it touched and a stat of each folder, not a look at every file."""

    def __init__(self, root: str) -> None:
        self.root = root
        self._folders: set[str] = {""}
        self._files_ns = 0
        """The newest mtime of a file seen (a file gone since moved its folder's mtime)."""

    def after(self, stamps: Mapping[str, Stamp], touched: Iterable[str],
              every: bool = False) -> int:
        """The moment, once ``touched`` paths changed (``stamps``: path -> stamp now;
        ``every``: each of them among the touched, as after a whole load)."""
        folders = self._folders
        if every:  # (looking each up again took 1.1 s of a million-post start)
            self._files_ns = max(self._files_ns, max(
                (stamp[0] for stamp in stamps.values()), default=0))
            parents = {rel.rpartition("/")[0] for rel in touched}
        else:
            parents = set()
            for rel in touched:
                stamp = stamps.get(rel)
                if stamp is not None and stamp[0] > self._files_ns:
                    self._files_ns = stamp[0]
                parents.add(rel.rpartition("/")[0])
        for parent in parents - folders:
            while parent not in folders:
                folders.add(parent)
                parent = parent.rpartition("/")[0]
        newest = self._files_ns
        for rel in (*folders, "_config.yml"):
            try:
                newest = max(newest, os.stat(os.path.join(self.root, rel)).st_mtime_ns)
            except OSError:  # gone since (its folder's mtime says so)
                continue
        return newest


class KnownFolders:
    """The folders above every file the store has known since its last whole load (a
    folder whose files all went stays: it only costs a look). A path that is gone and is
    none of them held no known file: nothing below it to forget, and no look through
    every known path for it (vim's '4913', 'post.md~': ~15 ms a save at 100,000 posts)."""

    def __init__(self) -> None:
        self._folders: set[str] = set()

    def add(self, rel: str) -> None:
        folder = rel.rpartition("/")[0]
        while folder and folder not in self._folders:
            self._folders.add(folder)
            folder = folder.rpartition("/")[0]

    def update(self, rels: Iterable[str]) -> None:
        for rel in rels:
            self.add(rel)

    def __contains__(self, rel: str) -> bool:
        return rel in self._folders

    def clear(self) -> None:
        self._folders.clear()
