"""Folder -> posts. Finds the post files of a Jekyll site source, parses each once, keeps
them, and re-reads only the files a change touched. A bad file is logged once (per change
of that file) with its path and the reason, and left out; nothing else is lost.

Every change is applied to the store's own tables and then handed out as a new, frozen
:class:`Snapshot`: readers keep the snapshot they hold, so they see the state before a
change or after it, never half of one.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import logging
import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .model import Post, Problem
from .parse import POST_EXTENSIONS, Parsed, PostError, SiteRules, SkipFile, parse_post, site_rules

logger = logging.getLogger(__name__)

# Folders Jekyll never reads posts from (besides dot folders and '_'-folders).
SKIPPED_DIRS = frozenset({"node_modules", "vendor"})
Stamp = tuple[int, int, int]  # mtime_ns, size, inode
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a bulk of objects that live on is built.

    Posts hold no reference cycles; without this, every few hundred posts the
    collector walks every object made so far, which made a first load of 1,000 posts
    three times slower (measured, #5). Reference counting still frees as usual.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


@dataclass(frozen=True)
class Snapshot:
    """One consistent state of the content folder."""

    version: int
    settings: Settings
    posts: Mapping[str, Post]
    problems: Mapping[str, tuple[Problem, ...]]
    skipped: Mapping[str, str] = field(default_factory=dict)
    """Files deliberately not posts (``published: false``): path -> why."""
    loaded_at: float = field(default_factory=time.time)
    duration: float = 0.0
    changed: frozenset[str] | None = None
    """The files whose post changed since the snapshot of the version before (None: a
    whole load). Lets the site index be updated rather than built again."""

    @property
    def rejected(self) -> int:
        return sum(1 for ps in self.problems.values() if any(p.rejected for p in ps))


def skipped_folder(name: str) -> bool:
    """Whether Jekyll reads no posts below a folder of this name."""
    return (name.startswith(".") or name in SKIPPED_DIRS
            or (name.startswith("_") and name != "_posts"))


def is_post_path(rel: str, jekyll_layout: bool) -> bool:
    """Whether a path (relative, '/'-separated) may hold a post in this layout."""
    folder, _, name = rel.rpartition("/")
    dot = name.rfind(".")
    if dot < 0 or name[dot:].lower() not in POST_EXTENSIONS:
        return False
    if name.startswith((".", "_", "#", "~")) or name.endswith("~"):
        return False
    return _folder_holds_posts(folder, jekyll_layout)


@functools.lru_cache(maxsize=4096)
def _folder_holds_posts(folder: str, jekyll_layout: bool) -> bool:
    """The folder half of is_post_path, asked once per folder rather than per file."""
    parts = folder.split("/") if folder else []
    if any(skipped_folder(part) for part in parts):
        return False
    return "_posts" in parts if jekyll_layout else True


def _relative(path: str, prefix: str, root: str) -> str:
    """``path`` relative to ``root`` ('/'-separated); ``prefix`` is root plus a separator."""
    rel = path[len(prefix):] if path.startswith(prefix) else os.path.relpath(path, root)
    return rel.replace(os.sep, "/") if os.sep != "/" else rel


def _same_file(entry: os.DirEntry[str], stamp: Stamp) -> bool:
    """Whether a regular file (not a link) still has the stamp it had."""
    try:
        if entry.is_symlink():
            return False  # where it leads may have changed: _update looks again
        st = entry.stat(follow_symlinks=False)
    except OSError:
        return False
    return (st.st_mtime_ns, st.st_size, st.st_ino) == stamp


class ContentStore:
    """Parsed posts of one content folder, kept and updated file by file.

    The public methods take a lock, so a poll (``rescan``) and a change (``apply``) never
    interleave; readers only ever see the immutable :class:`Snapshot` objects handed out.
    """

    def __init__(self, settings: Settings, *,
                 on_problem: Callable[[Problem], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self.settings = settings
        self._on_problem = on_problem
        self._on_progress = on_progress
        self.root = Path(settings.content)
        self.parse_count = 0
        """How many times a file was read and parsed (what the tests count)."""
        self._version = 0
        self._touched: set[str] = set()
        self._stamps: dict[str, Stamp] = {}
        """Every path the store knows about (post, rejected, skipped), as last seen."""
        self._posts: dict[str, Post] = {}
        self._problems: dict[str, tuple[Problem, ...]] = {}
        self._skipped: dict[str, str] = {}
        self._jekyll_layout = True
        self._rules: SiteRules = self._make_rules(settings)
        self._lock = threading.RLock()

    @staticmethod
    def _make_rules(settings: Settings) -> SiteRules:
        return site_rules(settings.timezone, settings.permalink, settings.max_post_bytes)

    # --- scanning ---------------------------------------------------------------------

    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _walk(self, top: str, folders: list[str] | None = None,
              ) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(relative path, entry) of every file below ``top``, not following links to
        folders, skipping dot folders, ``_site``, ``_drafts`` and the like. The relative
        path of each folder it lists is added to ``folders`` when given."""
        stack = [top]
        root = str(self.root)
        prefix = os.path.join(root, "")
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as e:
                if folder == top and not os.path.exists(folder):
                    continue
                logger.warning("%s: cannot list folder: %s", folder, e)
                continue
            if folders is not None:
                folders.append(_relative(folder, prefix, root))
            for entry in entries:
                rel = _relative(entry.path, prefix, root)
                try:
                    if entry.is_dir(follow_symlinks=False):
                        if not skipped_folder(entry.name):
                            stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                        yield rel, entry
                except OSError:
                    continue

    def _posts_folder_among(self, folders: list[str]) -> bool:
        """Whether a Jekyll ``_posts`` folder is among these (relative) folders."""
        return self.root.name == "_posts" or any(
            f == "_posts" or f.endswith("/_posts") for f in folders)

    def _stat(self, rel: str) -> tuple[Stamp | None, Problem | None]:
        """The file's stamp (None when there is no regular file), and a problem when it
        must not be read: a link that leads out of the content folder."""
        path = os.path.join(self.root, rel)
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(path)
                real_root = self._real_root()
                if os.path.commonpath([target, real_root]) != real_root:
                    return ((st.st_mtime_ns, st.st_size, st.st_ino),
                            Problem(rel, "symlink points outside the content folder; "
                                         "not followed"))
                st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                return None, None
        except (OSError, ValueError):
            return None, None
        return (st.st_mtime_ns, st.st_size, st.st_ino), None

    def _read_bytes(self, rel: str) -> tuple[bytes, Stamp]:
        """The file's bytes (at most max_post_bytes + 1) and the stamp of what was read.
        Non-blocking open: a FIFO put in place of a post cannot hang the reader."""
        fd = os.open(self.root / rel, _OPEN_FLAGS)
        with open(fd, "rb") as f:
            st = os.fstat(fd)
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
            if not stat.S_ISREG(st.st_mode):
                raise PostError(rel, "not a regular file")
            if st.st_size > self.settings.max_post_bytes:
                raise PostError(rel, f"file is {st.st_size} bytes, over max_post_bytes "
                                f"({self.settings.max_post_bytes})")
            return f.read(self.settings.max_post_bytes + 1), stamp

    def _read(self, rel: str, stamp: Stamp) -> tuple[Post | None, tuple[Problem, ...],
                                                      str | None, Stamp]:
        """Parse one file: (post, problems, why skipped, stamp of what was read). Logs
        what it finds; it runs once per change of the file."""
        self.parse_count += 1
        problems: list[Problem] = []
        post: Post | None = None
        skipped: str | None = None
        try:
            if stamp[1] > self.settings.max_post_bytes:
                raise PostError(rel, f"file is {stamp[1]} bytes, over max_post_bytes "
                                f"({self.settings.max_post_bytes})")
            data, stamp = self._read_bytes(rel)
            parsed: Parsed = parse_post(rel, data, (stamp[0], stamp[1]), self._rules)
        except SkipFile as e:
            skipped = str(e).removeprefix(f"{rel}: ")
        except PostError as e:
            if not self._jekyll_layout and e.message.startswith("no front matter"):
                logger.debug("%s: no front matter, so not a post", rel)
            else:
                problems.append(Problem(rel, e.message))
        except OSError as e:
            problems.append(Problem(rel, f"cannot read: {e.strerror or e}"))
        except Exception as e:  # a file must never stop the load: any surprise rejects it
            logger.debug("%s: unexpected error", rel, exc_info=True)
            problems.append(Problem(rel, f"cannot be read as a post "
                                         f"({type(e).__name__}: {str(e)[:200]})"))
        else:
            post = parsed.post
            problems.extend(Problem(rel, w, rejected=False) for w in parsed.warnings)
        for problem in problems:
            self._report(problem)
        if skipped is not None:
            logger.info("post skipped: %s: %s", rel, skipped)
        return post, tuple(problems), skipped, stamp

    def _report(self, problem: Problem) -> None:
        if self._on_problem is not None:
            self._on_problem(problem)
        elif problem.rejected:
            logger.error("post rejected: %s", problem)
        else:
            logger.warning("post accepted with a problem: %s", problem)

    def _update(self, rel: str) -> bool:
        """Bring one path up to date; True when anything changed."""
        if not is_post_path(rel, self._jekyll_layout):
            return self._forget(rel)
        stamp, link_problem = self._stat(rel)
        if stamp is None:
            return self._forget(rel)
        if self._stamps.get(rel) == stamp:
            return False
        if link_problem is not None:
            self._forget(rel)
            self._touched.add(rel)
            self._report(link_problem)
            self._stamps[rel] = stamp
            self._problems[rel] = (link_problem,)
            return True
        post, problems, skipped, stamp = self._read(rel, stamp)
        self._forget(rel)
        self._touched.add(rel)
        self._stamps[rel] = stamp
        if post is not None:
            self._posts[rel] = post
        if problems:
            self._problems[rel] = problems
        if skipped is not None:
            self._skipped[rel] = skipped
        return True

    def _forget(self, rel: str) -> bool:
        known = rel in self._stamps
        if known:
            self._touched.add(rel)
        self._stamps.pop(rel, None)
        self._posts.pop(rel, None)
        self._problems.pop(rel, None)
        self._skipped.pop(rel, None)
        return known

    def _forget_below(self, rel: str, keep: set[str] | frozenset[str] = frozenset()) -> bool:
        prefix = rel + "/"
        gone = [k for k in self._stamps if k.startswith(prefix) and k not in keep]
        for known in gone:
            self._forget(known)
        return bool(gone)

    def _snapshot(self, started: float, whole: bool = False) -> Snapshot:
        self._version += 1
        changed = None if whole else frozenset(self._touched)
        self._touched.clear()
        return Snapshot(
            version=self._version,
            settings=self.settings,
            posts=dict(self._posts),
            problems=dict(self._problems),
            skipped=dict(self._skipped),
            duration=time.monotonic() - started,
            changed=changed,
        )

    # --- public -----------------------------------------------------------------------

    def load(self, progress: bool = True) -> Snapshot:
        """Read the whole folder (first load, or after ``_config.yml`` changed)."""
        with self._lock:
            started = time.monotonic()
            self._rules = self._make_rules(self.settings)
            for table in (self._stamps, self._posts, self._problems, self._skipped):
                table.clear()
            seen = 0
            last_report = started
            folders: list[str] = []
            files = [rel for rel, _entry in self._walk(str(self.root), folders)]
            # With a _posts folder anywhere, only files in _posts folders are posts.
            self._jekyll_layout = self._posts_folder_among(folders)
            rels = [rel for rel in files if is_post_path(rel, self._jekyll_layout)]
            with gc_paused():
                for rel in rels:
                    self._update(rel)
                    seen += 1
                    if self._on_progress is not None:
                        self._on_progress(seen, len(rels))
                    now = time.monotonic()
                    if progress and now - last_report >= 2.0:
                        last_report = now
                        logger.info("loading %s: %d of %d files read, %.0f files/s",
                                    self.root, seen, len(rels), seen / (now - started))
                snapshot = self._snapshot(started, whole=True)
            logger.info(
                "loaded %s: %d posts, %d rejected, in %.2f s",
                self.root, len(snapshot.posts), snapshot.rejected, snapshot.duration,
            )
            return snapshot

    def apply(self, paths: Iterable[str]) -> Snapshot | None:
        """Re-read what changed at these absolute or relative paths (files or folders,
        present or gone); a new snapshot when anything changed, else None."""
        with self._lock:
            started = time.monotonic()
            root = str(self.root)
            rels: set[str] = set()
            for raw in paths:
                rel = os.path.relpath(raw, root) if os.path.isabs(raw) else raw
                rel = rel.replace(os.sep, "/")
                if rel not in (".", "", "..") and not rel.startswith("../"):
                    rels.add(rel)
            changed = False
            if "_config.yml" in rels:
                rels.discard("_config.yml")
                outcome = self._read_config()
                if outcome == "posts":
                    return self.load(progress=False)
                changed = outcome == "settings"
            for rel in sorted(rels):
                parts = rel.split("/")
                if any(skipped_folder(part) for part in parts[:-1]):
                    continue  # below .git, _site, _drafts ...: never a post
                if "_posts" in parts and not self._jekyll_layout:
                    return self.load(progress=False)
                full = os.path.join(root, rel)
                if os.path.isdir(full) and not os.path.islink(full):
                    changed |= self._rescan_folder(rel)
                elif rel in self._stamps or os.path.lexists(full):
                    changed |= self._update(rel)
                else:
                    # Gone, and not a file we knew: perhaps a folder (its files with it).
                    changed |= self._forget_below(rel)
            return self._snapshot(started) if changed else None

    def _rescan_folder(self, rel: str) -> bool:
        if any(skipped_folder(part) for part in rel.split("/")):
            return self._forget_below(rel)
        changed = False
        found: set[str] = set()
        for child, _entry in self._walk(os.path.join(str(self.root), rel)):
            found.add(child)
            changed |= self._update(child)
        changed |= self._forget_below(rel, found)
        return changed

    def rescan(self) -> Snapshot | None:
        """Polling: stat every file and re-read the changed ones. One walk of the folder
        and one lstat a file; a file whose stamp is unchanged costs nothing more."""
        with self._lock:
            started = time.monotonic()
            folders: list[str] = []
            files = list(self._walk(str(self.root), folders))
            if self._posts_folder_among(folders) != self._jekyll_layout:
                return self.load(progress=False)
            changed = False
            found: set[str] = set()
            stamps = self._stamps
            for rel, entry in files:
                if not is_post_path(rel, self._jekyll_layout):
                    continue
                found.add(rel)
                known = stamps.get(rel)
                if known is not None and _same_file(entry, known):
                    continue
                changed |= self._update(rel)
            for known_rel in [k for k in stamps if k not in found]:
                changed |= self._forget(known_rel)
            return self._snapshot(started) if changed else None

    def reload_config(self) -> Snapshot | None:
        """``_config.yml`` changed: settings again (flags still win). Every post is read
        again only when a setting that shapes posts changed (time zone, permalink, size
        limit); None when no setting changed at all."""
        with self._lock:
            started = time.monotonic()
            outcome = self._read_config()
            if outcome == "posts":
                return self.load(progress=False)
            return self._snapshot(started) if outcome == "settings" else None

    def _read_config(self) -> str:
        """Read the settings again: 'same', 'settings' (changed, posts unaffected) or
        'posts' (changed in a way that needs every post read again)."""
        try:
            settings = self.settings.reload_config()
        except ValueError as e:
            logger.error("%s; keeping the previous settings", e)
            return "same"
        if settings == self.settings:
            return "same"
        logger.info("%s changed; settings read again", self.root / "_config.yml")
        rules_changed = self._make_rules(settings) != self._rules
        self.settings = settings
        return "posts" if rules_changed else "settings"
