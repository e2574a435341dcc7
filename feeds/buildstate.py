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

The state is trusted only whole: a first line with the digest of the rest, the
context it was made in, and for each URL the size and mtime_ns of the file as written
(a file changed or removed since is made again). A state that is foreign (another
context), truncated, edited or unreadable is ignored: the build is a full one.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING

from . import assets
from .links import Shown
from .model import Kind, Post
from .postcache import identity
from .site import SiteIndex

if TYPE_CHECKING:
    from .service import FeedService

logger = logging.getLogger(__name__)

STATE_FILE = ".feeds-build-state"
FORMAT = "feeds-build-state 2"


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
    size: int
    mtime_ns: int
    inode: int
    """A rewrite is a new file renamed over the old: a new inode, even where mtimes
    are coarse."""
    rel: str
    """The file below OUT, as the manifest names it (a kept file is only looked at: its
    URL is not made a path again)."""


@dataclass
class BuildState:
    context: str
    liquid_version: str = ""
    """The version of the site Liquid saw (see ``LiquidSite.version``)."""
    liquid: dict[str, str] = field(default_factory=dict)
    """Posts whose body holds Liquid: source -> the digest of the post record."""
    made: dict[str, Made] = field(default_factory=dict)

    def to_bytes(self) -> bytes:
        body = b"".join(self.chunks())
        return _digest(body).encode() + b"\n" + body

    def chunks(self) -> Iterator[bytes]:
        """The state's JSON (keys sorted, no spaces), a thousand URLs a piece: made whole,
        as one dict, one str and its bytes, a state of 190,000 URLs held ~150 MB more at
        a build's end."""
        head = json.dumps({"context": self.context, "format": FORMAT,
                           "liquid": self.liquid, "liquid_version": self.liquid_version},
                          ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        yield (head[:-1] + ',"made":{').encode("utf-8")  # "made" sorts last
        urls = sorted(self.made)
        for start in range(0, len(urls), 1000):
            pieces = []
            for url in urls[start:start + 1000]:
                m = self.made[url]
                pieces.append(json.dumps(url, ensure_ascii=False) + ":" + json.dumps(
                    [m.fingerprint, m.size, m.mtime_ns, m.inode, m.rel],
                    ensure_ascii=False, separators=(",", ":")))
            yield (("," if start else "") + ",".join(pieces)).encode("utf-8")
        yield b"}}"


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
    not whole and this build's own kind (then the build is a full one)."""
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
        raw = json.loads(body)
        if raw["format"] != FORMAT:
            raise ValueError("another format")
        made = {str(url): Made(str(f), int(size), int(mtime), int(inode), str(rel))
                for url, (f, size, mtime, inode, rel) in raw["made"].items()}
        return BuildState(str(raw["context"]), str(raw["liquid_version"]),
                          {str(k): str(v) for k, v in raw["liquid"].items()}, made)
    except (ValueError, KeyError, TypeError, AttributeError, UnicodeDecodeError) as e:
        logger.warning("%s: not trusted, building everything: %s", path, e)
        return None


class Fingerprints:
    """The fingerprint of each URL of one state of the site (``Shown`` from
    ``links.site_pages``). ``liquid`` names the posts whose body holds Liquid and
    ``liquid_version`` the version of the site it sees."""

    def __init__(self, context: str, index: SiteIndex) -> None:
        self.context = context
        self._liquid: frozenset[str] = frozenset()
        self._liquid_version = ""
        self._posts: dict[int, str] = {}
        self._windows: dict[tuple[str, int, int], str] = {}
        terms = [(kind.value, t.name, len(t.posts))
                 for kind in (Kind.CATEGORY, Kind.TAG) for t in index.sorted_terms(kind)]
        self._terms = _digest(repr(terms).encode())

    def with_liquid(self, liquid: Iterable[str], version: str) -> Fingerprints:
        """These fingerprints, with ``liquid`` the posts whose body holds Liquid and
        ``version`` the version of the site it sees (post digests shared)."""
        other = object.__new__(Fingerprints)
        other.context, other._posts, other._terms = self.context, self._posts, self._terms
        other._liquid, other._liquid_version = frozenset(liquid), version
        other._windows = {}  # (they hold the Liquid version)
        return other

    def post(self, post: Post) -> str:
        """The digest of a post record (memoised for the build: the index holds them).
        A record is what its file's bytes parse to under the context's rules, code and
        parse identity, so it is known by the file's stamp, as the persisted index knows
        it; and by its ``updated``, which a load may cap to now (snapshot). (A repr of
        the whole record cost ten times as much: 5 s of a build of 100,000 posts.)"""
        found = self._posts.get(id(post))
        if found is None:
            mtime_ns, size, inode = post.stamp
            key = f"{post.source}\0{mtime_ns}\0{size}\0{inode}\0{post.updated.isoformat()}"
            found = self._posts[id(post)] = _digest(key.encode("utf-8", "surrogatepass"))
        return found

    def _shown(self, post: Post | None) -> str:
        if post is None:
            return "-"
        found = self.post(post)
        return found + self._liquid_version if post.source in self._liquid else found

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
            found = self._windows[key] = _digest("\0".join(map(self._shown, posts)).encode())
        return found

    def of(self, url: str, shown: Shown) -> str | None:
        """The URL's fingerprint; None for one made every time."""
        if shown.what == "other":
            return None
        parts = [self.context, url, shown.what, shown.name, str(shown.total),
                 self._window(shown)]
        if shown.what == "index":
            parts.append(self._terms)
        return _digest("\0".join(parts).encode())


class Memory:
    """This build's fingerprint of each URL, and what the last build made
    (``buildstate``): a URL whose fingerprint and file are as the last build left them
    is not rendered again."""

    def __init__(self, svc: FeedService, root: Path, pages: dict[str, Shown]) -> None:
        state = svc.state()
        settings = state.settings
        base = settings.site_base or "http://localhost"
        self.svc, self.root, self.pages = svc, root, pages
        # Every setting but the processes, cache bounds and the persisted index (and the
        # record of what was given, whose values are the fields): no byte depends on them.
        bytes_of = replace(settings, build_workers=1, overrides=(), cache_bytes=1,
                           body_cache_bytes=1, source_cache_bytes=1, index_dir="")
        parsing = identity(settings.content, settings.site_rules())
        context = context_digest(repr(bytes_of), base,
                                 assets.feed_stylesheet(settings.content, base),
                                 repr(sorted(parsing.items())))
        old = load(root)
        if old is not None and old.context != context:
            logger.info("%s: made with other settings or code: building everything",
                        root / STATE_FILE)
            old = None
        self.old = old
        self.by_source = {p.source: p for p in state.index.posts}
        self.base_prints = Fingerprints(context, state.index)
        # Posts whose body held Liquid when last rendered, and are the same posts now.
        self.liquid = {s for s, d in (old.liquid.items() if old else ())
                       if s in self.by_source and self.base_prints.post(self.by_source[s]) == d}
        self.version = self._liquid_version(self.liquid)
        self.prints = self.base_prints.with_liquid(self.liquid, self.version)
        self.made: dict[str, Made] = {}
        self.liquid_found: set[str] = set()
        """Bodies with Liquid that other processes of the build rendered."""

    def _liquid_version(self, liquid: set[str]) -> str:
        site = self.svc.liquid_site() if liquid else None
        return site.version if site is not None else ""

    def unchanged(self, url: str, shown: Shown) -> Made | None:
        """What the last build made of this URL, when nothing it is made of changed."""
        made = self.old.made.get(url) if self.old is not None else None
        if made is None or made.fingerprint != self.prints.of(url, shown):
            return None
        return made

    def record(self, url: str, stat: os.stat_result, rel: str) -> None:
        fingerprint = self.prints.of(url, self.pages[url])
        if fingerprint is not None:
            self.made[url] = Made(fingerprint, stat.st_size, stat.st_mtime_ns, stat.st_ino, rel)

    def state(self) -> BuildState:
        """The state to keep for the next build (written after the manifest). When this
        build found bodies with Liquid it did not know of, every fingerprint is taken
        again with them."""
        found = self.svc.cache.bodies.liquid_sources() | self.liquid_found
        liquid = self.liquid | (found & self.by_source.keys())
        version = self._liquid_version(liquid)
        made = self.made
        if liquid != self.liquid or version != self.version:
            prints = self.base_prints.with_liquid(liquid, version)
            made = {url: replace(m, fingerprint=prints.of(url, self.pages[url]) or "")
                    for url, m in made.items()}
        return BuildState(
            self.base_prints.context, version,
            {s: self.base_prints.post(self.by_source[s]) for s in sorted(liquid)}, made)
