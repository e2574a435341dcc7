"""A rendered feed or page as HTTP sends it: the body with its validators (a strong ETag
from its bytes, Last-Modified), its compressed forms, and the versions of a feed that
delta polling (RFC 3229 with A-IM: feed) compares a client's copy with.

Everything here is made once per rendering and then only read, so a cached response
costs no hashing, compressing or date formatting. ``KeyedLRU`` is the cache renderings
(and bodies) are kept in: its byte bound counts each key as well as its value.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import gzip
import hashlib
import math
import time
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import TypeVar

import brotli
from cachetools import LRUCache

from .model import Post
from .render import Entry
from .site import SiteIndex
from .snapshot import Snapshot

V = TypeVar("V")


def key_bytes(key: object, depth: int = 0) -> int:
    """Roughly the bytes a cache key holds: its strings, tuples and records (a Host's
    spelling, a feed's title and URLs, the stamps of its posts). Shared objects count as
    if they were not: a bound errs on the safe side."""
    if type(key) in _SCALARS:  # first: most parts of a key are a stamp's numbers
        return 32
    if isinstance(key, str | bytes):
        return 49 + len(key)
    if depth > 6:
        return 16
    if isinstance(key, tuple | frozenset | list):
        return 56 + 8 * len(key) + sum(key_bytes(part, depth + 1) for part in key)
    names = _field_names(type(key))  # type: ignore[arg-type]  # (a type is hashable)
    if names is None:
        return 32
    return 56 + sum(key_bytes(getattr(key, name), depth + 1) for name in names)


_SCALARS = frozenset({int, float, bool, type(None)})


@functools.cache
def _field_names(kind: type) -> tuple[str, ...] | None:
    """The fields of a dataclass type (None for any other type), looked up once a type:
    is_dataclass and fields were a third of key_bytes, itself a sixth of a feed page's
    rendering from kept bodies."""
    if dataclasses.is_dataclass(kind):
        return tuple(f.name for f in dataclasses.fields(kind))
    return None


class KeyedLRU(LRUCache[Hashable, V]):
    """An LRU cache bounded in bytes, counting each entry's key (``key_bytes``) with its
    value (``value_size``): keys that requests choose cannot grow it past its bound.
    ``key_size`` may be a faster key_bytes for keys of one known shape.
    Not thread-safe, like any cachetools cache: used under its owner's lock."""

    def __init__(self, maxsize: int, value_size: Callable[[V], int],
                 key_size: Callable[[Hashable], int] = key_bytes) -> None:
        super().__init__(maxsize=maxsize)
        self._value_size = value_size
        self._size_key = key_size
        self._key_size = 0

    def __setitem__(self, key: Hashable, value: V) -> None:
        self._key_size = self._size_key(key)
        try:
            super().__setitem__(key, value)
        finally:
            self._key_size = 0

    def getsizeof(self, value: V) -> int:  # type: ignore[override]  # (a static one there)
        return self._value_size(value) + self._key_size


class LatestLRU(KeyedLRU[tuple[Hashable, V]]):
    """A KeyedLRU that keeps one version of each slot (a post's path, say): ``put``
    replaces the version kept before. A cache asked for each new version of a file (one
    saved every moment) then holds the live versions, not every one superseded until
    the byte bound evicts it: issue 15's soak, a post saved ten times a second, filled
    64 MB of bodies and as much of feed entries with its old versions over 20 minutes.
    A request still on the previous state renders its version again. Not thread-safe:
    used under its owner's lock."""

    def __init__(self, maxsize: int, value_size: Callable[[V], int]) -> None:
        super().__init__(maxsize, lambda kept: value_size(kept[1]))

    def latest(self, slot: Hashable, version: Hashable) -> V | None:
        """The value kept for ``slot`` if it is of this ``version``."""
        found = self.get(slot)
        return found[1] if found is not None and found[0] == version else None

    def put(self, slot: Hashable, version: Hashable, value: V) -> None:
        with contextlib.suppress(ValueError):  # larger than the whole bound: not kept
            self[slot] = (version, value)


GZIP_LEVEL = 6
BROTLI_QUALITY = 5
DELTA_HISTORY = 16
"""How many versions of a feed's first page delta polling remembers."""


def http_date(when: datetime | None) -> str | None:
    if when is None:
        return None
    return format_datetime(when.astimezone(UTC), usegmt=True)


class Rendered:
    """A response body with its validators; compressed forms made once, on demand."""

    __slots__ = ("_encoded", "body", "content_type", "etag", "last_modified",
                 "last_modified_ts", "marks", "partial", "self_url")

    def __init__(self, body: bytes, content_type: str, updated: datetime | None = None,
                 marks: tuple[tuple[str, str], ...] = (), self_url: str = "",
                 partial: bool = False) -> None:
        self.body = body
        self.partial = partial
        """Made with a post body that could not be read: served, never kept or replayed."""
        self.content_type = content_type
        # SHA-256 (cut to 96 bits) over blake2b: CPUs with SHA extensions hash a feed
        # page's ~120 KB in 85 us against 190 (a sixth of a page made from kept bodies).
        digest = hashlib.sha256(body).hexdigest()[:24]
        self.etag = f'"{digest}"'
        self.last_modified = http_date(updated)
        self.last_modified_ts = math.floor(updated.timestamp()) if updated else None
        self.marks = marks
        """(entry id, digest of the entry as served) of each entry, in order: what
        delta polling compares (see entry_mark)."""
        self.self_url = self_url
        """A feed's rel=self URL (for the HTTP Link header); '' for pages."""
        self._encoded: dict[str, tuple[bytes, str]] = {}

    def dated(self, modified: datetime) -> Rendered:
        """The same rendering (bytes, ETag, compressed forms shared) with this
        Last-Modified: the date belongs to the content state, not to the bytes."""
        if self.last_modified_ts == math.floor(modified.timestamp()):
            return self
        same = object.__new__(Rendered)
        for name in self.__slots__:
            setattr(same, name, getattr(self, name))
        same.last_modified = http_date(modified)
        same.last_modified_ts = math.floor(modified.timestamp())
        return same

    def encoded(self, coding: str) -> tuple[bytes, str]:
        """(body, ETag) in 'identity', 'gzip' or 'br'. The ETag names the encoding, so a
        validator never matches a representation it does not describe."""
        if coding == "identity":
            return self.body, self.etag
        found = self._encoded.get(coding)
        if found is None:
            if coding == "gzip":
                data = gzip.compress(self.body, GZIP_LEVEL, mtime=0)
            else:
                data = brotli.compress(self.body, quality=BROTLI_QUALITY)
            found = (data, f'{self.etag[:-1]}-{"gz" if coding == "gzip" else coding}"')
            self._encoded[coding] = found
        return found

    @property
    def size(self) -> int:
        # Room for the compressed copies too, so the byte bound holds once they exist.
        return len(self.body) * 2 + 512


def bare_etag(tag: str) -> str:
    """An ETag as the history keeps it: weak comparison (RFC 9110 8.8.3.2) drops 'W/',
    and an encoding's suffix ('-gz', '-br', see Rendered.encoded) names the same version."""
    tag = tag.strip()
    if tag.startswith("W/"):
        tag = tag[2:]
    for suffix in ('-gz"', '-br"'):
        if tag.endswith(suffix):
            return tag[:-len(suffix)] + '"'
    return tag


# --- delta polling (RFC 3229 + feed) ------------------------------------------------------


def entry_id(post: Post, base: str) -> str:
    """A post's entry id as a feed writes it: a path id is made absolute."""
    found = post.entry_id
    return base + found if found.startswith("/") else found


def entry_mark(entry: Entry) -> tuple[str, str]:
    """What delta polling compares: an entry's id and a digest of everything its served
    form is made of in any format (title, link, body, summary, dates, categories, tags,
    author, image, ...), so that any edit a reader could see marks it changed. The file's
    stamp is left out: a file saved again unchanged is no change."""
    post = replace(entry.post, stamp=(0, 0, 0))
    made_of = repr((entry.link, entry.title, entry.body, entry.author, post))
    return entry.entry_id, hashlib.blake2b(made_of.encode(), digest_size=12).hexdigest()


@dataclass(frozen=True, slots=True)
class Version:
    """One version of a feed's first page, as delta polling remembers it."""

    etag: str
    marks: frozenset[tuple[str, str]]

    @property
    def size(self) -> int:
        return 100 + sum(len(i) + len(u) + 120 for i, u in self.marks)


History = tuple[Version, ...]
"""The versions of a feed's first page last served, oldest first."""


def history_size(versions: History) -> int:
    return sum(v.size for v in versions) + 100


def remember(versions: History, rendered: Rendered) -> History | None:
    """``versions`` with ``rendered`` as the newest, keeping the last DELTA_HISTORY; None
    when it already is the newest."""
    if versions and versions[-1].etag == rendered.etag:
        return None
    kept = tuple(v for v in versions if v.etag != rendered.etag)
    return (*kept[-(DELTA_HISTORY - 1):], Version(rendered.etag, frozenset(rendered.marks)))


def held(versions: History, etags: Sequence[str]) -> Version | None:
    """The newest of ``versions`` that one of a client's ``etags`` names (any encoding's
    ETag, weak or strong); None when none does."""
    wanted = {bare_etag(tag) for tag in etags}
    return next((v for v in reversed(versions) if v.etag in wanted), None)


@dataclass(frozen=True)
class Delta:
    """The answer to a delta request (RFC 3229 with A-IM: feed)."""

    current: Rendered
    """The feed now: its validators name the version the client will hold."""
    changes: Rendered | None
    """A complete feed of the entries new or changed since the client's version; None
    when there are none."""


def last_modified(snapshot: Snapshot, index: SiteIndex, floor: datetime | None,
                  now: float | None = None) -> datetime:
    """Last-Modified of every feed and page made from this snapshot and index, in whole
    seconds: the newest of the snapshot's files, their folders and _config.yml (see
    disk.ChangeClock), and of the visible posts' updated and dates (a post coming due),
    never later than now. It is the same on every instance with the same files, after a
    restart too. ``floor`` is the previous state's: this one is at least a second later,
    so a change always moves it forward (see the README)."""
    now = time.time() if now is None else now
    newest = max(snapshot.modified_ns / 1e9, index.newest_change)
    second = math.floor(min(newest, now))
    if floor is not None:
        second = max(second, math.floor(floor.timestamp()) + 1)
    return datetime.fromtimestamp(second, UTC)
