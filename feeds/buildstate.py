"""What ``feeds build`` made each file of OUT from, kept beside its manifest so that the
next build renders again only the URLs whose inputs changed (issue 13's incremental
export).

A URL's *fingerprint* is a digest of everything its bytes are made of: the build's
*context* (every setting, the base URL, the stylesheet a feed names, the bytes of this
package's code, templates and assets, so a new release renders everything again, and
what parsing reads with: Python, PyYAML, Unicode's tables, the zone's rules), what the
URL is and which list it belongs to, its list's size (the paging), and each post it
shows (its file's stamp, as the persisted index knows a file, and its ``updated``; for a
body with Liquid, the version of the site that Liquid sees). An index page also shows every
category and tag with its count. OPML, static files and the feeds ``feed:`` adds have
none: they are made every time (a handful of files).

The URLs are kept in the groups of ``buildgroups``, each with a fingerprint of its own
(of everything its URLs' fingerprints are made of): a group whose fingerprint is the
last build's is kept whole, its URLs not even listed, so one post edited costs its few
groups, not a look at each of 190,000 URLs.

The state is trusted only whole: a first line with the digest of the rest, a line with
the context it was made in, one with the key of each post shown (``Fingerprints``), then
a line for each group: its fingerprint ('-': never kept whole), its number of files, its
list's size and its key, then, after a tab, its URLs as JSON, each with its fingerprint
and the size, mtime_ns, inode and name of its file as written (parsed only for a group
that is looked at). A state that is foreign (another context),
truncated, edited or unreadable is ignored: the build is a full one.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import operator
import os
import stat
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from .buildgroups import OTHER, Group
from .links import Shown
from .model import Kind, Post
from .site import SiteIndex

logger = logging.getLogger(__name__)

STATE_FILE = ".feeds-build-state"
FORMAT = "feeds-build-state 4"
NEVER = "-"
"""The fingerprint of a group never kept whole (made every time, or not all kept)."""


def _digest(data: bytes) -> str:
    # SHA-256, cut to 128 bits: on CPUs with SHA extensions twice blake2b's speed, and
    # an export hashes every file it makes.
    return hashlib.sha256(data).hexdigest()[:32]


@lru_cache(maxsize=1)
def code_digest() -> str:
    """A digest of every file of this package (code, templates, shipped assets)."""
    root = Path(__file__).parent
    h = hashlib.blake2b(digest_size=16)
    for path in sorted(root.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts:
            h.update(path.relative_to(root).as_posix().encode() + b"\0")
            h.update(path.read_bytes() + b"\0")
    return h.hexdigest()


def context_digest(*parts: str) -> str:
    """The build's context from its parts (repr of the settings, base, ...) and the code."""
    return _digest("\0".join((FORMAT, code_digest(), *parts)).encode())


@dataclass(frozen=True, slots=True)
class Made:
    """One URL's file as the last build left it."""

    fingerprint: str
    """'' for a file that is never kept (made every time, or not to be kept)."""
    size: int
    mtime_ns: int
    inode: int
    """A rewrite is a new file renamed over the old: a new inode, even where mtimes
    are coarse."""
    rel: str
    """The file below OUT, as the manifest names it (a kept file is only looked at: its
    URL is not made a path again)."""


def as_left(root: Path | str, made: Made) -> bool:
    """Whether a URL's file is still as the last build left it (size, mtime_ns, inode;
    not a symlink), looked at by the name it was written under (never outside OUT)."""
    rel = made.rel
    if rel[:1] in ("", "/") or ".." in rel.split("/"):
        return False
    try:
        found = os.lstat(f"{root}/{rel}")
    except (OSError, ValueError):
        return False
    return not stat.S_ISLNK(found.st_mode) and (
        found.st_size, found.st_mtime_ns, found.st_ino) == (made.size, made.mtime_ns, made.inode)


@dataclass
class Kept:
    """One group as a build left it: its fingerprint, its number of files, and its URLs'
    ``Made`` as the JSON the state holds (parsed only when it is looked at)."""

    fingerprint: str
    count: int
    raw: bytes
    total: int = 0
    """A list's block: the list's size then."""

    @classmethod
    def of(cls, fingerprint: str, made: dict[str, Made], total: int = 0) -> Kept:
        raw = json.dumps([[url, m.fingerprint, m.size, m.mtime_ns, m.inode, m.rel]
                          for url, m in made.items()], separators=(",", ":")).encode()
        return cls(fingerprint, len(made), raw, total)

    def made(self) -> dict[str, Made]:
        """Its URLs, each with its file; ValueError (and its kin) when not well made."""
        found = {str(url): Made(str(f), int(size), int(mtime), int(inode), str(rel))
                 for url, f, size, mtime, inode, rel in json.loads(self.raw)}
        if len(found) != self.count:
            raise ValueError("a group's count does not match its URLs")
        return found


@dataclass
class BuildState:
    context: str
    liquid_version: str = ""
    """The version of the site Liquid saw (see ``LiquidSite.version``)."""
    liquid: dict[str, str] = field(default_factory=dict)
    """Posts whose body holds Liquid: source -> the digest of the post record."""
    groups: dict[str, Kept] = field(default_factory=dict)
    keys: list[str] = field(default_factory=list)
    """The key of each post the build showed, in the site's order (``Fingerprints``)."""

    def made(self) -> dict[str, Made]:
        """Every URL of every group (a test's view: a build parses only what it needs)."""
        return {url: m for kept in self.groups.values() for url, m in kept.made().items()}

    def to_bytes(self) -> bytes:
        body = b"".join(self.chunks())
        return _digest(body).encode() + b"\n" + body

    def chunks(self) -> Iterator[bytes]:
        """The state's lines after its digest's, a group a line (its records as they came:
        a kept group's line is the last state's bytes)."""
        yield json.dumps({"context": self.context, "format": FORMAT, "liquid": self.liquid,
                          "liquid_version": self.liquid_version},
                         separators=(",", ":"), sort_keys=True).encode() + b"\n"
        yield json.dumps(self.keys, separators=(",", ":")).encode() + b"\n"
        for key, kept in self.groups.items():
            yield f"{kept.fingerprint} {kept.count} {kept.total} {json.dumps(key)}\t".encode()
            yield kept.raw
            yield b"\n"


def write(state: BuildState, path: Path) -> None:
    """Write the state file whole or not at all (a temporary file renamed over it), its
    digest hashed as the pieces are written; left as it was when its bytes are."""
    tmp = path.with_name(f".{path.name}.tmp")  # the name buildwork sweeps after a kill
    digest = hashlib.sha256()
    try:
        with open(tmp, "wb") as f:
            f.write(b" " * 32 + b"\n")
            for chunk in state.chunks():
                digest.update(chunk)
                f.write(chunk)
            check = digest.hexdigest()[:32].encode()
            f.seek(0)
            f.write(check)
            size = f.seek(0, os.SEEK_END)
        try:
            with open(path, "rb") as old:
                same = os.fstat(old.fileno()).st_size == size and old.read(33) == check + b"\n"
        except OSError:
            same = False
        if same:
            tmp.unlink()
        else:
            os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def load(root: Path) -> BuildState | None:
    """The state a previous build left in ``root``; None when there is none, or it is
    not whole and this build's own kind (then the build is a full one). Each group's
    URLs stay unparsed (``Kept.made``)."""
    path = root / STATE_FILE
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    except OSError as e:
        logger.warning("%s: cannot read, building everything: %s", path, e)
        return None
    check, _, body = data.partition(b"\n")
    try:
        if check.decode("ascii") != _digest(body):
            raise ValueError("its digest does not match")
        header, keys, *lines = body.split(b"\n")
        raw = json.loads(header)
        if raw["format"] != FORMAT:
            raise ValueError("another format")
        if lines.pop() != b"":
            raise ValueError("its last line is not whole")
        groups = {}
        for line in lines:
            head, tab, records = line.partition(b"\t")
            fingerprint, count, total, key = head.decode("ascii").split(" ", 3)
            if not tab or int(count) < 0:
                raise ValueError("a group's line is not well made")
            groups[str(json.loads(key))] = Kept(fingerprint, int(count), records, int(total))
        posts = json.loads(keys)
        if not isinstance(posts, list) or not all(isinstance(k, str) for k in posts):
            raise ValueError("its posts' keys are not a list of keys")
        return BuildState(str(raw["context"]), str(raw["liquid_version"]),
                          {str(k): str(v) for k, v in raw["liquid"].items()}, groups, posts)
    except (ValueError, KeyError, TypeError, AttributeError, IndexError,
            UnicodeDecodeError) as e:
        logger.warning("%s: not trusted, building everything: %s", path, e)
        return None


_KEY = "{0.source}\0{0.stamp}".format
_UPDATED = operator.attrgetter("updated")
_DATE = operator.attrgetter("date")


def _encoded(text: str) -> bytes:
    return text.encode("utf-8", "surrogatepass")  # (a file name may not be UTF-8)


class Fingerprints:
    """The fingerprint of each URL of one state of the site (``Shown`` from
    ``links.site_pages``) and of each group (``buildgroups``). ``liquid`` names the
    posts whose body holds Liquid and ``liquid_version`` the version of the site it
    sees.

    A post is known by its *key*: a record is what its file's bytes parse to under the
    context's rules, code and parse identity, so it is known by its source and its
    file's stamp, as the persisted index knows it; and by its ``updated`` where a load
    may have capped that to now (after its date: snapshot.capped_updated). The keys are
    made once, each with one call in C (a digest a post, from Python, was 0.4 s of an
    incremental build at 100,000 posts, and a memoised look-up a list's post 0.6 s)."""

    def __init__(self, context: str, index: SiteIndex) -> None:
        self.context = context
        posts = index.posts
        self.keys = list(map(_KEY, posts))
        """Each post's key, in the site's order."""
        later = map(operator.gt, map(_UPDATED, posts), map(_DATE, posts))
        for i in itertools.compress(range(len(posts)), later):  # (few: may be capped)
            self.keys[i] += f"\0{posts[i].updated.isoformat()}"
        self._keys = dict(zip(map(id, posts), self.keys, strict=True))
        self._keys[id(None)] = "-"
        self._shown = self._keys
        """The key a post is shown by: a body with Liquid's with the site's version."""
        self._windows: dict[tuple[str, int, int], str] = {}
        terms = [(kind.value, t.name, len(t.posts))
                 for kind in (Kind.CATEGORY, Kind.TAG) for t in index.sorted_terms(kind)]
        self._terms = _digest(_encoded(repr(terms)))

    def with_liquid(self, liquid: Iterable[Post], version: str) -> Fingerprints:
        """These fingerprints, with ``liquid`` the posts whose body holds Liquid and
        ``version`` the version of the site it sees (the keys shared)."""
        other = object.__new__(Fingerprints)
        other.context, other._keys, other._terms = self.context, self._keys, self._terms
        other.keys = self.keys
        other._shown = self._keys
        liquid = list(liquid)
        if liquid:
            other._shown = dict(self._keys)
            for post in liquid:
                other._shown[id(post)] = self.key(post) + "\0" + version
        other._windows = {}  # (they hold the Liquid version)
        return other

    @property
    def plain(self) -> bool:
        """No post is shown with a Liquid version (each by its key alone)."""
        return self._shown is self._keys

    def key(self, post: Post) -> str:
        found = self._keys.get(id(post))
        return _KEY(post) + f"\0{post.updated.isoformat()}" if found is None else found

    def post(self, post: Post) -> str:
        """The digest of a post record (what a state keeps for a body with Liquid)."""
        return _digest(_encoded(self.key(post)))

    def _window(self, shown: Shown) -> str:
        """The digest of the posts a URL shows, taken once for the URLs that show the
        same (a feed's page in every format): in one list a run of posts is known by
        its first post and its length."""
        posts = shown.posts
        if not posts:
            return ""
        key = (shown.name, id(posts[0]), len(posts))
        found = self._windows.get(key)
        if found is None:
            found = self._windows[key] = _digest(_encoded("\0".join(
                map(self._shown.__getitem__, map(id, posts)))))
        return found

    def group(self, group: Group) -> str:
        """A group's fingerprint: of all its URLs' fingerprints are made of (its posts,
        its list's size; the categories and tags for the site's), so the same when each
        of theirs is. NEVER for the URLs made every time."""
        if group.what == OTHER:
            return NEVER
        parts = [self.context, group.key, group.what, str(group.total)]
        site = group.term is None or group.term.kind is Kind.SITE
        if group.term is not None and site:
            parts.append(self._terms)
        if site and self.plain:  # a run of the site's posts: from its keys
            keys, start, stop = self.keys, group.start, min(group.stop, len(self.keys))
            if group.what == "posts":
                parts.append(keys[start - 1] if start else "-")
            parts += keys[start:stop]
            if group.what == "posts":
                parts.append(keys[stop] if stop < len(keys) else "-")
        else:
            parts += map(self._shown.__getitem__, map(id, group.posts))
        return _digest(_encoded("\0".join(parts)))

    def of(self, url: str, shown: Shown) -> str | None:
        """The URL's fingerprint; None for one made every time."""
        if shown.what == "other":
            return None
        parts = [self.context, url, shown.what, shown.name, str(shown.total),
                 self._window(shown)]
        if shown.what == "index":
            parts.append(self._terms)
        return _digest(_encoded("\0".join(parts)))
