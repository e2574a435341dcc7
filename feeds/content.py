"""Folder -> posts. Finds the post files of a Jekyll site source, parses each once, keeps
them, and re-reads only the files a change touched. A bad file is logged once (per change
of that file) with its path and the reason, and left out; nothing else is lost.
"""

from __future__ import annotations

import logging
import os
import stat
import time
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .config import Settings
from .model import Post, Problem
from .parse import POST_EXTENSIONS, Parsed, PostError, SiteRules, SkipFile, parse_post, site_rules

logger = logging.getLogger(__name__)

# Folders Jekyll never reads posts from (besides dot folders and '_'-folders).
SKIPPED_DIRS = frozenset({"node_modules", "vendor"})
Stamp = tuple[int, int, int]  # mtime_ns, size, inode


@dataclass(frozen=True)
class Snapshot:
    """One consistent state of the content folder."""

    version: int
    settings: Settings
    posts: Mapping[str, Post]
    problems: Mapping[str, tuple[Problem, ...]]
    loaded_at: float = field(default_factory=time.time)
    duration: float = 0.0

    @property
    def rejected(self) -> int:
        return sum(1 for ps in self.problems.values() if any(p.rejected for p in ps))


def is_post_path(rel: str, jekyll_layout: bool) -> bool:
    """Whether a path (relative, '/'-separated) may hold a post in this layout."""
    parts = rel.split("/")
    name = parts[-1]
    if os.path.splitext(name)[1].lower() not in POST_EXTENSIONS:
        return False
    for part in parts[:-1]:
        if part.startswith(".") or part in SKIPPED_DIRS:
            return False
        if part.startswith("_") and part != "_posts":
            return False
    if name.startswith((".", "_", "#", "~")) or name.endswith("~"):
        return False
    return "_posts" in parts[:-1] if jekyll_layout else True


class ContentStore:
    """Parsed posts of one content folder, kept and updated file by file.

    Not thread-safe by itself: one reloader thread calls ``load`` and ``apply``; readers
    only ever see the immutable :class:`Snapshot` objects it hands out.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = Path(settings.content)
        self.parse_count = 0
        self._version = 0
        self._stamps: dict[str, Stamp] = {}
        self._posts: dict[str, Post] = {}
        self._problems: dict[str, tuple[Problem, ...]] = {}
        self._jekyll_layout = True
        self._rules: SiteRules = self._make_rules(settings)

    @staticmethod
    def _make_rules(settings: Settings) -> SiteRules:
        return site_rules(settings.timezone, settings.permalink, settings.max_post_bytes)

    # --- scanning ---------------------------------------------------------------------

    def _real_root(self) -> str:
        return os.path.realpath(self.root)

    def _walk(self, top: str) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """(relative path, entry) of every file below ``top``, not following links to
        folders, skipping dot folders, ``_site``, ``_drafts`` and the like."""
        stack = [top]
        root = str(self.root)
        while stack:
            folder = stack.pop()
            try:
                entries = list(os.scandir(folder))
            except OSError as e:
                if folder == top and not os.path.exists(folder):
                    continue
                logger.warning("%s: cannot list folder: %s", folder, e)
                continue
            for entry in entries:
                rel = os.path.relpath(entry.path, root).replace(os.sep, "/")
                try:
                    if entry.is_dir(follow_symlinks=False):
                        name = entry.name
                        if name.startswith(".") or name in SKIPPED_DIRS:
                            continue
                        if name.startswith("_") and name != "_posts":
                            continue
                        stack.append(entry.path)
                    elif entry.is_file(follow_symlinks=False) or entry.is_symlink():
                        yield rel, entry
                except OSError:
                    continue

    def _has_posts_folder(self) -> bool:
        for folder, dirs, _files in os.walk(self.root):
            dirs[:] = [d for d in dirs if not d.startswith(".") and d not in SKIPPED_DIRS
                       and (d == "_posts" or not d.startswith("_"))]
            if "_posts" in dirs or os.path.basename(folder) == "_posts":
                return True
        return False

    def _stat(self, rel: str) -> tuple[Stamp | None, Problem | None]:
        """The file's stamp, or a problem when it must not be read (a link leading out)."""
        path = self.root / rel
        try:
            st = os.lstat(path)
            if stat.S_ISLNK(st.st_mode):
                target = os.path.realpath(path)
                real_root = self._real_root()
                if os.path.commonpath([target, real_root]) != real_root:
                    return None, Problem(rel, "symlink points outside the content folder; "
                                              "not followed")
                st = os.stat(path)
            if not stat.S_ISREG(st.st_mode):
                return None, None
        except (OSError, ValueError):
            return None, None
        return (st.st_mtime_ns, st.st_size, st.st_ino), None

    def _read(self, rel: str, stamp: Stamp) -> tuple[Post | None, tuple[Problem, ...]]:
        """Parse one file; log its problems (this runs once per change of the file)."""
        self.parse_count += 1
        path = self.root / rel
        problems: list[Problem] = []
        post: Post | None = None
        try:
            if stamp[1] > self.settings.max_post_bytes:
                raise PostError(rel, f"file is {stamp[1]} bytes, over max_post_bytes "
                                f"({self.settings.max_post_bytes})")
            with open(path, "rb") as f:
                data = f.read(self.settings.max_post_bytes + 1)
            parsed: Parsed = parse_post(rel, data, (stamp[0], stamp[1]), self._rules)
        except SkipFile as e:
            logger.debug("%s", e)
        except PostError as e:
            if not self._jekyll_layout and e.message.startswith("no front matter"):
                logger.debug("%s: no front matter, so not a post", rel)
            else:
                problems.append(Problem(rel, e.message))
        except OSError as e:
            problems.append(Problem(rel, f"cannot read: {e.strerror or e}"))
        else:
            post = parsed.post
            problems.extend(Problem(rel, w, rejected=False) for w in parsed.warnings)
        for problem in problems:
            if problem.rejected:
                logger.error("post rejected: %s", problem)
            else:
                logger.warning("post accepted with a problem: %s", problem)
        return post, tuple(problems)

    def _update(self, rel: str) -> bool:
        """Bring one path up to date; True when anything changed."""
        if not is_post_path(rel, self._jekyll_layout):
            return self._forget(rel)
        stamp, link_problem = self._stat(rel)
        if link_problem is not None:
            if self._problems.get(rel) != (link_problem,):
                logger.error("post rejected: %s", link_problem)
                self._posts.pop(rel, None)
                self._stamps.pop(rel, None)
                self._problems[rel] = (link_problem,)
                return True
            return False
        if stamp is None:
            return self._forget(rel)
        if self._stamps.get(rel) == stamp:
            return False
        post, problems = self._read(rel, stamp)
        self._stamps[rel] = stamp
        if post is None:
            self._posts.pop(rel, None)
        else:
            self._posts[rel] = post
        if problems:
            self._problems[rel] = problems
        else:
            self._problems.pop(rel, None)
        return True

    def _forget(self, rel: str) -> bool:
        known = rel in self._stamps or rel in self._problems
        self._stamps.pop(rel, None)
        self._posts.pop(rel, None)
        self._problems.pop(rel, None)
        return known

    def _snapshot(self, started: float) -> Snapshot:
        self._version += 1
        return Snapshot(
            version=self._version,
            settings=self.settings,
            posts=dict(self._posts),
            problems=dict(self._problems),
            duration=time.monotonic() - started,
        )

    # --- public -----------------------------------------------------------------------

    def load(self, progress: bool = True) -> Snapshot:
        """Read the whole folder (first load, or after ``_config.yml`` changed)."""
        started = time.monotonic()
        self._jekyll_layout = self._has_posts_folder()
        self._rules = self._make_rules(self.settings)
        self._stamps.clear()
        self._posts.clear()
        self._problems.clear()
        seen = 0
        last_report = started
        for rel, _entry in self._walk(str(self.root)):
            if not is_post_path(rel, self._jekyll_layout):
                continue
            self._update(rel)
            seen += 1
            now = time.monotonic()
            if progress and now - last_report >= 2.0:
                last_report = now
                logger.info("loading %s: %d files read, %.0f files/s", self.root, seen,
                            seen / (now - started))
        snapshot = self._snapshot(started)
        logger.info(
            "loaded %s: %d posts, %d rejected, in %.2f s",
            self.root, len(snapshot.posts), snapshot.rejected, snapshot.duration,
        )
        return snapshot

    def apply(self, paths: Iterable[str]) -> Snapshot | None:
        """Re-read what changed at these absolute or relative paths (files or folders);
        a new snapshot when anything changed, else None."""
        started = time.monotonic()
        root = str(self.root)
        changed = False
        for raw in set(paths):
            rel = os.path.relpath(raw, root) if os.path.isabs(raw) else raw
            rel = rel.replace(os.sep, "/")
            if rel == "." or rel.startswith("../"):
                continue
            if rel == "_config.yml":
                return self.reload_config()
            if "_posts" in rel.split("/") and not self._jekyll_layout:
                return self.load()
            full = os.path.join(root, rel)
            if os.path.isdir(full) and not os.path.islink(full):
                changed |= self._rescan_folder(rel)
            else:
                changed |= self._update(rel)
                prefix = rel + "/"
                for known in [k for k in self._stamps if k.startswith(prefix)]:
                    changed |= self._update(known)
        return self._snapshot(started) if changed else None

    def _rescan_folder(self, rel: str) -> bool:
        changed = False
        found: set[str] = set()
        for child, _entry in self._walk(os.path.join(str(self.root), rel)):
            found.add(child)
            changed |= self._update(child)
        prefix = rel + "/"
        for known in [k for k in self._stamps if k.startswith(prefix) and k not in found]:
            changed |= self._forget(known)
        return changed

    def rescan(self) -> Snapshot | None:
        """Polling: stat every file and re-read the changed ones."""
        started = time.monotonic()
        if self._has_posts_folder() != self._jekyll_layout:
            return self.load(progress=False)
        changed = False
        found: set[str] = set()
        for rel, _entry in self._walk(str(self.root)):
            if is_post_path(rel, self._jekyll_layout):
                found.add(rel)
                changed |= self._update(rel)
        for known in [k for k in self._stamps if k not in found]:
            changed |= self._forget(known)
        for known in [k for k in self._problems if k not in found]:
            changed |= self._forget(known)
        return self._snapshot(started) if changed else None

    def reload_config(self) -> Snapshot:
        """``_config.yml`` changed: settings again (flags still win), every post again."""
        try:
            self.settings = self.settings.reload_config()
        except ValueError as e:
            logger.error("%s; keeping the previous settings", e)
        return self.load(progress=False)
