"""The persisted index: what parsing each post file gave, kept in SQLite in the
``index_dir`` folder, so that a restart parses only the files changed while it was
stopped.

A row is trusted only for the very file it was made from (its path, size, mtime_ns and
inode) and only when the whole index was made for this content folder (its real path and
inode), under the same parse rules (:class:`~feeds.parse.SiteRules`) and by the same code
(the parsing modules' bytes, the libraries and data they read with, the row format).
Anything else is thrown away and made again: an index for another folder or other
rules, a file that is no SQLite database or is damaged (SQLite's errors, and a digest
on every row), a row whose file has changed. A folder that cannot be read or written (read
only, full, missing) is one warning: posts are then parsed as if there were no index.

What is kept is :class:`Parse`, the outcome of ``parse_post`` alone; what depends on the
moment (a future ``updated`` capped to now) or on the folder's layout is worked out from
it again at every load, the same way for a fresh parse and a kept one (see ``content``).
Reads of the bytes that fail (a file that cannot be opened, or is over the size limit)
are never kept.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import sqlite3
import sys
import threading
import unicodedata
import zlib
import zoneinfo
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import yaml

from .model import Stamp
from .parse import SiteRules
from .parsed import Parse, decode, encode

logger = logging.getLogger(__name__)

FORMAT = "2"
"""The layout of the tables and of a row's payload; a change makes every index anew."""

BUSY_SECONDS = 2.0
"""How long a read or write waits for another process holding the index (then: warning)."""


def _digest(payload: bytes) -> int:
    """A payload's CRC-32: a row damaged on disk is caught (SQLite checks no row's
    bytes); a row whose file changed is caught by its stamp."""
    return zlib.crc32(payload)


# --- what an index is made for -----------------------------------------------------------


def _code_version() -> str:
    """The bytes of the code that decides what a file parses to, and the versions of
    what it reads with (YAML, Unicode's tables for slugs, Python itself)."""
    here = Path(__file__).parent
    h = hashlib.blake2b(digest_size=16)
    for path in sorted([*(here / "parse").glob("*.py"), here / "model.py", here / "parsed.py",
                        here / "postcache.py"]):
        h.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    h.update(f"{FORMAT} {sys.version} {yaml.__version__} {yaml.__with_libyaml__} "
             f"{unicodedata.unidata_version}".encode())
    return h.hexdigest()


_CODE: list[str] = []


def _zone_data(key: str) -> str:
    """A digest of the time zone's rules as read (dates in the site's zone depend on it)."""
    for folder in zoneinfo.TZPATH:
        try:
            return hashlib.blake2b(Path(folder, key).read_bytes(), digest_size=8).hexdigest()
        except (OSError, ValueError):
            continue
    try:
        return str(getattr(importlib.import_module("tzdata"), "IANA_VERSION", "tzdata"))
    except ImportError:
        return "none"


def identity(root: str, rules: SiteRules) -> dict[str, str]:
    """What an index must have been made for to be trusted."""
    if not _CODE:
        _CODE.append(_code_version())
    real = os.path.realpath(root)
    try:
        st = os.stat(real)
        folder_id = f"{st.st_dev}:{st.st_ino}"
    except OSError:
        folder_id = "missing"
    zone = getattr(rules.tz, "key", None)
    settings = repr((rules, _zone_data(zone) if zone else None))
    return {"format": FORMAT, "code": _CODE[0], "folder": real, "folder_id": folder_id,
            "rules": hashlib.blake2b(settings.encode("utf-8", "surrogatepass"),
                                     digest_size=16).hexdigest()}


def index_path(folder: str, root: str) -> Path:
    """The index file of this content folder in the ``index_dir`` folder: one a content
    folder, so services of several folders can share one ``index_dir``."""
    name = hashlib.blake2b(os.path.realpath(root).encode("utf-8", "surrogatepass"),
                           digest_size=8).hexdigest()
    return Path(folder) / f"posts-{name}.sqlite3"


_SCHEMA = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    "CREATE TABLE parsed (path TEXT PRIMARY KEY, mtime_ns INTEGER NOT NULL, "
    "size INTEGER NOT NULL, inode INTEGER NOT NULL, payload BLOB NOT NULL, "
    "digest INTEGER NOT NULL)",
)
_DAMAGED = frozenset({1, 11, 26})
"""SQLite's codes for a file that is not our index: SQLITE_ERROR (no such table: another
program's database, or an empty file), SQLITE_CORRUPT, SQLITE_NOTADB. Any other code
(busy, read only, full, cannot open) is the folder's trouble, not the file's."""


def _damaged(error: sqlite3.Error) -> bool:
    return (getattr(error, "sqlite_errorcode", 1) & 0xFF) in _DAMAGED


class Lock(Protocol):
    def acquire(self, blocking: bool = ..., timeout: float = ...) -> bool: ...
    def release(self) -> None: ...


Row = tuple[str, int, int, int, bytes, int]
"""path, mtime_ns, size, inode, payload, digest: as the table holds them."""
Pending = dict[str, tuple[Stamp, bytes] | None]


class PostCache:
    """The index of one content folder under one set of rules: ``get`` during a load,
    ``put`` and ``drop`` as files are read or forgotten, then ``take`` and ``flush`` to
    write those in one transaction (off the request path: the service flushes after
    each swap)."""

    def __init__(self, folder: str, root: str, rules: SiteRules,
                 rows: Sequence[str] | None = None) -> None:
        """``rows``: the files whose rows ``get`` may give (None: all; a load taken from
        its load state asks only for those changed since, and must not call ``loaded``)."""
        self.path = index_path(folder, root)
        self._identity = identity(root, rules)
        self._rows: dict[str, Row] = {}
        self._pending: Pending = {}
        self._lock = threading.Lock()
        self._damaged = False
        self._warned: str | None = None
        self.hits = 0
        """Files whose parse was taken from the index (what the tests count)."""
        if rows is None or rows:
            self._read_rows(rows)

    def _warn(self, doing: str, error: Exception) -> None:
        message = (f"post index {self.path}: cannot {doing} ({error}); posts are parsed "
                   "without it")
        if message != self._warned:
            logger.warning("%s", message)
            self._warned = message

    def _read_rows(self, only: Sequence[str] | None) -> None:
        if not self.path.exists():
            return
        try:
            db = sqlite3.connect(self.path, timeout=BUSY_SECONDS)
            try:
                meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
                if meta != self._identity:
                    logger.info("post index %s: made %s; made again", self.path,
                                _differs(meta, self._identity))
                    return
                wanted = "SELECT path, mtime_ns, size, inode, payload, digest FROM parsed"
                rows = db.execute(wanted) if only is None else db.execute(
                    f"{wanted} WHERE path IN ({', '.join('?' * len(only))})", tuple(only))
                self._rows = {row[0]: row for row in rows}
            finally:
                db.close()
        except sqlite3.Error as e:
            self._rows = {}
            if not _damaged(e):
                self._warn("read it", e)
                return
            logger.warning("post index %s: damaged or not an index (%s); made again",
                           self.path, e)
            self._damaged = True

    def get(self, rel: str, stamp: Stamp) -> Parse | None:
        """The kept Parse of this file when the index has one for exactly this stamp."""
        row = self._rows.pop(rel, None)
        if row is None:
            return None
        _path, mtime_ns, size, inode, payload, digest = row
        if (mtime_ns, size, inode) != stamp or not isinstance(payload, bytes) \
                or _digest(payload) != digest:
            self._pending[rel] = None  # stale or damaged: dropped, unless read again
            return None
        try:
            parse = decode(rel, stamp, payload)
        except (ValueError, TypeError, KeyError, IndexError, AttributeError):
            self._pending[rel] = None
            return None
        self.hits += 1
        return parse

    def has(self, rel: str) -> bool:
        """Whether the index has a row of this file not asked for yet (of any stamp)."""
        return rel in self._rows

    def put(self, rel: str, stamp: Stamp, parse: Parse) -> None:
        self._pending[rel] = (stamp, encode(parse))

    def drop(self, rel: str) -> None:
        self._pending[rel] = None

    def loaded(self) -> None:
        """A whole load is done: rows of files not met (gone, or no longer posts) go."""
        for rel in self._rows:
            self._pending.setdefault(rel, None)
        self._rows = {}

    def flush(self, store_lock: Lock, wait: float | None = None) -> None:
        """Write what is pending (None: delete) in one transaction, into an index made
        for this folder and these rules (else made anew first); a failure is a warning.
        ``store_lock`` serialises ``put`` and ``drop``; ``wait``: give up after this many
        seconds for a write already under way (None: wait for it)."""
        timeout = -1.0 if wait is None else wait
        if not self._lock.acquire(timeout=timeout):
            return
        try:
            if not store_lock.acquire(timeout=timeout):
                return
            try:
                pending, self._pending = self._pending, {}
            finally:
                store_lock.release()
            if not pending and not self._damaged:
                return
            try:
                try:
                    self._write(pending)
                except sqlite3.Error as e:
                    if not _damaged(e):
                        raise
                    self._damaged = True
                    self._write(pending)
            except (sqlite3.Error, OSError) as e:
                self._warn("write it", e)
            else:
                self._warned = None
        finally:
            self._lock.release()

    def _write(self, pending: Pending) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if self._damaged:
            for suffix in ("", "-wal", "-shm", "-journal"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)
            self._damaged = False
        # Made 0600 (SQLite gives its -wal and -shm files the same): it holds what the
        # posts say, as the content folder does.
        os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        db = sqlite3.connect(self.path, timeout=BUSY_SECONDS, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("BEGIN IMMEDIATE")
            try:
                _made_for(db, self._identity)
                db.executemany("DELETE FROM parsed WHERE path = ?",
                               [(rel,) for rel, row in pending.items() if row is None])
                db.executemany(
                    "INSERT OR REPLACE INTO parsed VALUES (?, ?, ?, ?, ?, ?)",
                    [(rel, *row[0], row[1], _digest(row[1]))
                     for rel, row in pending.items() if row is not None])
                db.execute("COMMIT")
            except BaseException:
                db.execute("ROLLBACK")
                raise
        finally:
            db.close()


def _made_for(db: sqlite3.Connection, wanted: dict[str, str]) -> None:
    """Within the write's transaction: the index is made for ``wanted``, else emptied and
    marked so (another process may have made it for other rules since it was read)."""
    try:
        found = dict(db.execute("SELECT key, value FROM meta").fetchall())
    except sqlite3.OperationalError:
        found = {}
    if found == wanted:
        return
    db.execute("DROP TABLE IF EXISTS parsed")
    db.execute("DROP TABLE IF EXISTS meta")
    for statement in _SCHEMA:
        db.execute(statement)
    db.executemany("INSERT INTO meta VALUES (?, ?)", sorted(wanted.items()))


def _differs(found: dict[str, str], wanted: dict[str, str]) -> str:
    """Why an index is not trusted, in words."""
    words = {"format": "in another format", "code": "by another version",
             "folder": "for another content folder", "folder_id": "for another content folder",
             "rules": "under other settings"}
    why = [words.get(key, key) for key in wanted if found.get(key) != wanted[key]]
    return ", ".join(dict.fromkeys(why)) or "differently"
