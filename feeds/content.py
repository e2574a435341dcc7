"""Folder -> posts. Finds the post files of a Jekyll site source, parses each once, keeps
them, and re-reads only the files a change touched. A bad file is logged once (per change
of that file) with its path and the reason, and left out; nothing else is lost.

Every change is applied to the store's own tables and then handed out as a new, frozen
:class:`Snapshot`: readers keep the snapshot they hold, so they see the state before a
change or after it, never half of one.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import replace
from pathlib import Path

from .config import Settings
from .config_file import AUTHORS_FILES, ConfigFollower
from .config_file import NAME as CONFIG_NAME
from .disk import (
    ChangeClock,
    KeptFiles,
    is_post_path,
    read_post,
    same_file,
    skipped_folder,
    stat_post,
    walk,
    written_within,
)
from .model import Post, Problem, Stamp
from .parse import (
    Parsed,
    PostError,
    SiteRules,
    SkipFile,
    body_text,
    parse_post,
    site_rules,
)
from .parse.frontmatter import CONTROL_WARNING, UNCLOSED_WARNING
from .snapshot import Snapshot, capped_updated, gc_paused

logger = logging.getLogger(__name__)

SETTLE = 2.0
"""Seconds after its last write that a file may be half written (see _settling)."""


class ContentStore:
    """Parsed posts of one content folder, kept and updated file by file.

    The public methods take a lock, so a poll (``rescan``) and a change (``apply``) never
    interleave; readers only ever see the immutable :class:`Snapshot` objects handed out.

    ``on_problem`` is told each problem found (a post rejected, or accepted with a
    warning), once per change of its file, instead of the store logging it;
    ``on_progress(done, total)`` is told, as ``load`` parses the ``total`` candidate
    files, how many it has done: (0, total) first, then after each file. Both are called
    from the thread that loads, with the store's lock held.
    """

    def __init__(self, settings: Settings, *,
                 on_problem: Callable[[Problem], None] | None = None,
                 on_progress: Callable[[int, int], None] | None = None) -> None:
        self.settings = settings
        self._on_problem = on_problem
        self._on_progress = on_progress
        self.root = Path(settings.content)
        self.parse_count = 0  # how many times a file was parsed (what the tests count)
        self._version = 0
        self._touched: set[str] = set()
        self._stamps: dict[str, Stamp] = {}  # every path known (post, rejected, skipped)
        self._clock = ChangeClock(str(self.root))  # what Snapshot.modified_ns says
        self._kept = KeptFiles(settings.source_cache_bytes)  # the bodies read_body gives
        self._posts: dict[str, Post] = {}
        self._problems: dict[str, tuple[Problem, ...]] = {}
        self._skipped: dict[str, str] = {}
        self._jekyll_layout = True
        self._rules: SiteRules = self._make_rules(settings)
        self._lock = threading.RLock()
        self.config = ConfigFollower(self.root)
        self.held: str | None = None  # why the folder now is not handed out (no posts)
        self._had_posts = False
        self._retry: dict[str, float] = {}
        """Files to read again (monotonic time when due): changing while read, or not
        settled. ``_asked``: by a failed body read (no lock: a request never waits)."""
        self._asked: list[str] = []

    @staticmethod
    def _make_rules(s: Settings) -> SiteRules:
        return site_rules(s.timezone, s.permalink, s.max_post_bytes, s.front_matter_ids,
                          s.defaults or ())

    # --- scanning ---------------------------------------------------------------------

    def _walk(self, top: str, folders: list[str] | None = None,
              ) -> Iterator[tuple[str, os.DirEntry[str]]]:
        """Every file below ``top`` (see disk.walk)."""
        return walk(str(self.root), top, folders)

    def _posts_folder_among(self, folders: list[str]) -> bool:
        """Whether a Jekyll ``_posts`` folder is among these (relative) folders."""
        return self.root.name == "_posts" or any(
            f == "_posts" or f.endswith("/_posts") for f in folders)

    def _report(self, problem: Problem) -> None:
        """Tell ``on_problem`` of a problem found, else log it: once per change of a file."""
        if self._on_problem is not None:
            self._on_problem(problem)
        elif problem.rejected:
            logger.error("post rejected: %s", problem)
        else:
            logger.warning("post accepted with a problem: %s", problem)

    def _read(self, rel: str, stamp: Stamp) -> tuple[Post | None, tuple[Problem, ...],
                                                      str | None, Stamp]:
        """Parse one file: (post, problems, why skipped, stamp of what was read). The
        same bytes as the post's (a folder copied back, a touch) are not parsed again."""
        problems: list[Problem] = []
        post: Post | None = None
        skipped: str | None = None
        try:
            data, stamp = read_post(str(self.root), rel, self._rules.max_post_bytes)
            known = self._posts.get(rel)
            if known is not None and self._kept.get(rel, known.stamp) == data:
                self._kept.keep(rel, stamp, data)
                return replace(known, stamp=stamp), self._problems.get(rel, ()), None, stamp
            self.parse_count += 1
            parsed: Parsed = parse_post(rel, data, stamp, self._rules)
        except SkipFile as e:
            skipped = str(e).removeprefix(f"{rel}: ")
        except PostError as e:
            if not self._jekyll_layout and e.message.startswith("no front matter"):
                logger.debug("%s: no front matter, so not a post", rel)
            else:
                problems.append(Problem(rel, e.message))
        except Exception as e:  # a file must never stop the load: any surprise rejects it
            logger.debug("%s: unexpected error", rel, exc_info=True)
            problems.append(Problem(rel, f"cannot be read as a post "
                                         f"({type(e).__name__}: {str(e)[:200]})"))
        else:
            self._kept.keep(rel, stamp, data)
            post = capped_updated(parsed.post, problems)
            problems.extend(Problem(rel, w, rejected=False) for w in parsed.warnings)
        return post, tuple(problems), skipped, stamp

    def _settling(self, rel: str, broken: bool, stamp: Stamp) -> bool:
        """Whether what is known of ``rel`` stays (read again soon): it reads ``broken``
        (changed while read_post read it, say) and has changed since, or was written
        less than SETTLE ago. A read that parses was whole: read_post saw it hold still
        (whatever was saved over it since is read at its own event)."""
        now, _ = stat_post(str(self.root), rel)
        young = time.time_ns() - stamp[0] < SETTLE * 1e9
        if not broken or (now == stamp and not (young and rel in self._posts)):
            self._retry.pop(rel, None)
            return False
        logger.debug("%s is being written; keeping what was read before, for now", rel)
        self._retry[rel] = time.monotonic() + (0.1 if now != stamp else SETTLE)
        return True

    def due(self) -> set[str]:
        """The files due to be read again (see ``_settling`` and ``recheck``)."""
        with self._lock:
            now, (asked, self._asked) = time.monotonic(), (self._asked, [])
            due = {rel for rel, when in self._retry.items() if when <= now}
            for rel in due:
                del self._retry[rel]  # read again now; _settling asks again if need be
            return due | set(asked)

    def recheck(self, rel: str) -> None:
        self._asked.append(rel)  # at the next chance: its body could not be read

    def _update(self, rel: str) -> bool:
        """Bring one path up to date; True when anything changed."""
        if not is_post_path(rel, self._jekyll_layout):
            return self._forget(rel)
        stamp, link_problem = stat_post(str(self.root), rel)
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
        # What a writer half-way leaves: no post, an open front matter, the file empty
        # (truncated, not yet written) or NUL bytes (its size grown, its data not in).
        broken = (post is None and skipped is None) or stamp[1] == 0 or any(
            p.message in (UNCLOSED_WARNING, CONTROL_WARNING) for p in problems)
        if self._settling(rel, broken, stamp):
            return False
        for problem in problems:
            self._report(problem)
        if skipped is not None:
            logger.info("post skipped: %s: %s", rel, skipped)
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
        self._retry.pop(rel, None)
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
        modified = self._clock.after(self._stamps, self._touched)
        changed = None if whole else frozenset(self._touched)
        self._touched.clear()
        return Snapshot(
            version=self._version, settings=self.settings, posts=dict(self._posts),
            problems=dict(self._problems),
            skipped=dict(self._skipped),
            duration=time.monotonic() - started,
            changed=changed, modified_ns=modified,
        )

    def _hold(self, snapshot: Snapshot | None) -> Snapshot | None:
        """The snapshot to hand out, or None: a folder that had posts and has none now
        (unmounted, being swapped) keeps the last content served; ``held`` says why."""
        if snapshot is None:
            return None
        if not snapshot.posts and self._had_posts:
            why = "has no posts" if self.root.is_dir() else "is missing"
            if self.held is None:
                logger.warning("%s %s; serving its last content until posts come back",
                               self.root, why)
            self.held = f"the content folder {why}; serving the last content it had"
            return None
        if self.held is not None:
            logger.info("%s has posts again", self.root)
        self.held = None
        self._had_posts = self._had_posts or bool(snapshot.posts)
        return snapshot

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
            on_progress = self._on_progress
            if on_progress is not None:
                on_progress(0, len(rels))
            with gc_paused():
                for rel in rels:
                    self._update(rel)
                    seen += 1
                    if on_progress is not None:
                        on_progress(seen, len(rels))
                    now = time.monotonic()
                    if progress and now - last_report >= 2.0:
                        last_report = now
                        logger.info("loading %s: %d of %d files read, %.0f files/s",
                                    self.root, seen, len(rels), seen / (now - started))
                snapshot = self._snapshot(started, whole=True)
            self._had_posts = self._had_posts or bool(snapshot.posts)
            logger.info(
                "loaded %s: %d posts, %d rejected, in %.2f s",
                self.root, len(snapshot.posts), snapshot.rejected, snapshot.duration,
            )
            return snapshot

    def read_body(self, post: Post) -> str:
        """The body text of an indexed post (after its front matter): of the bytes read
        when it was indexed while they are kept, else read again from its file. PostError,
        at once, when the file cannot be read, is no regular file (a FIFO cannot hang the
        caller), has changed since it was indexed or is over max_post_bytes."""
        data = self._kept.get(post.source, post.stamp)
        if data is None:
            data, _ = read_post(str(self.root), post.source, self._rules.max_post_bytes,
                                expected=post.stamp)
        return body_text(post.source, data)

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
            changed = self.held is not None
            if CONFIG_NAME in rels or rels & set(AUTHORS_FILES):
                rels.discard(CONFIG_NAME)
                rels -= set(AUTHORS_FILES)
                outcome = self._read_config()
                if outcome == "posts":
                    return self._hold(self.load(progress=False))
                changed |= outcome == "settings"
            for rel in sorted(rels):
                parts = rel.split("/")
                if any(skipped_folder(part) for part in parts[:-1]):
                    continue  # below .git, _site, _drafts ...: never a post
                if "_posts" in parts and not self._jekyll_layout:
                    return self._hold(self.load(progress=False))
                full = os.path.join(root, rel)
                if os.path.isdir(full) and not os.path.islink(full):
                    changed |= self._rescan_folder(rel)
                elif rel in self._stamps or os.path.lexists(full):
                    changed |= self._update(rel)
                else:
                    # Gone, and not a file we knew: perhaps a folder (its files with it).
                    changed |= self._forget_below(rel)
            return self._hold(self._snapshot(started)) if changed else None

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

    def rescan(self, settle: bool = False) -> Snapshot | None:
        """Polling: stat every file (one walk, one lstat a file) and re-read the changed
        ones. With ``settle`` (the watcher's scans), a file written in the last SETTLE
        seconds is left for SETTLE (or its close event): it may be half written."""
        with self._lock:
            started = time.monotonic()
            outcome = self._read_config() if self.config.changed() else "same"
            folders: list[str] = []
            files = list(self._walk(str(self.root), folders))
            if outcome == "posts" or (
                    self._posts_folder_among(folders) != self._jekyll_layout):
                return self._hold(self.load(progress=False))
            changed = outcome == "settings" or self.held is not None
            found: set[str] = set()
            stamps = self._stamps
            for rel, entry in files:
                if not is_post_path(rel, self._jekyll_layout):
                    continue
                found.add(rel)
                known = stamps.get(rel)
                if known is not None and same_file(entry, known):
                    continue
                if settle and written_within(entry, SETTLE):  # read once settled, or
                    self._retry.setdefault(rel, time.monotonic() + SETTLE)  # SETTLE on
                    continue
                changed |= self._update(rel)
            for known_rel in [k for k in stamps if k not in found]:
                changed |= self._forget(known_rel)
            return self._hold(self._snapshot(started)) if changed else None

    def _read_config(self) -> str:
        """Read the settings again: 'same', 'settings' (changed, posts unaffected) or
        'posts' (changed in a way that needs every post read again)."""
        settings = self.config.reread(self.settings.reload_config)
        if settings is None or settings == self.settings:
            return "same"
        logger.info("%s changed; settings read again", self.root / CONFIG_NAME)
        rules_changed = self._make_rules(settings) != self._rules
        self.settings = settings
        return "posts" if rules_changed else "settings"
