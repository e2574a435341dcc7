"""Folder -> posts. Finds the post files of a Jekyll site source, parses each once, keeps
them, and re-reads only the files a change touched. A bad file is logged once (per change
of that file) with its path and the reason, and left out; nothing else is lost. Each
change is handed out as a new, frozen :class:`Snapshot`: readers see the state before a
change or after it, never half of one."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import replace

from .config_file import AUTHORS_FILES, LIQUID_FOLDERS
from .config_file import NAME as CONFIG_NAME
from .disk import (
    is_post_path,
    relative_paths,
    skipped_below,
    stat_post,
)
from .loadstate import files_of
from .loadwork import Shared, each_file, share
from .model import Stamp
from .parse.frontmatter import CONTROL_WARNING, UNCLOSED_WARNING
from .parsed import Parse, outcome, read_file
from .scan import compare, survey, surveyed_look, walk
from .settle import SETTLE
from .snapshot import Snapshot, gc_paused
from .statefile import Outcome
from .storebase import Begun, StoreBase

logger = logging.getLogger(__name__)


class ContentStore(StoreBase):
    """Parsed posts of one content folder, kept and updated file by file. The public
    methods take a lock, so a poll (``rescan``) and a change (``apply``) never interleave.
    ``on_problem`` is told each problem found (a post rejected, or accepted with a
    warning), once per change of its file, instead of the store logging it;
    ``on_progress(done, total)``, as ``load`` parses the ``total`` candidate files, how
    many it has done: (0, total), then after each file. Both are called from the thread
    that loads, with the store's lock held."""

    def _read(self, rel: str, stamp: Stamp) -> tuple[Parse, Stamp, bool]:
        """Read and parse one file (see parsed.read_file): (what it gave, the stamp read,
        whether the index may keep it). The post's own bytes (copied back) are not parsed."""
        known = self._posts.get(rel)
        same = self._kept.get(rel, known.stamp) if known is not None else None
        parse, stamp, keep, data = read_file(str(self.root), rel, stamp, self._rules, same)
        if parse is None:  # the post as it was, at the new stamp (and not in the index)
            assert known is not None
            warnings = tuple(p.message for p in self._problems.get(rel, ()) if not p.rejected)
            parse = Parse(post=replace(known, stamp=stamp), warnings=warnings)
        else:
            self.parse_count += 1
        if parse.post is not None:
            self._kept.keep(rel, stamp, data)
        return parse, stamp, keep

    def _update(self, rel: str, whole: bool = False) -> bool:
        """Bring one path up to date; True when anything changed. In a ``whole`` load,
        a file the index holds with this very stamp is taken from it, unread."""
        if not whole and not is_post_path(  # load: asked
                rel, self._jekyll_layout, self._rules.collection_folders):
            return self._forget(rel)
        # A helper's parse of a whole load is taken as the file was when it read it,
        # not looked at again here: one changed since is read again by the full scan that
        # follows the load, as one changed since the load's walk is.
        helped = self._shared.take(rel) if whole else None
        stamp, link_problem = (helped[0], None) if helped else stat_post(str(self.root), rel)
        if stamp is None:
            return self._forget(rel)
        self._folders.add(rel)
        if self._stamps.get(rel) == stamp:
            return False
        if link_problem is not None:
            self._forget(rel)
            self._touched.add(rel)
            self._report(link_problem)
            self._stamps[rel] = stamp
            self._problems[rel] = (link_problem,)
            return True
        kept = self.index.get(rel, stamp) if self.index is not None and whole else None
        keep = False  # a parse the index holds already, or one it must not hold
        if kept is not None:
            parse = kept  # the file is the one parsed before: nothing to settle
        else:
            if helped:
                parse, keep = helped[1], True
                self.parse_count += 1
            else:
                parse, stamp, keep = self._read(rel, stamp)
            # What a writer half-way leaves: no post, an open front matter, the file empty
            # (truncated, not yet written) or NUL bytes (its size grown, its data not in).
            broken = (parse.post is None and parse.skipped is None) or stamp[1] == 0 or any(
                w in (UNCLOSED_WARNING, CONTROL_WARNING) for w in parse.warnings)
            if self._retries.settling(rel, broken, stamp, rel in self._posts):
                return False
        post, problems = outcome(rel, parse, self._jekyll_layout)
        skipped = parse.skipped
        for problem in problems:
            self._report(problem)
        if skipped is not None:
            logger.info("post skipped: %s: %s", rel, skipped)
        self._forget(rel, gone=False)  # (drops its row from the index: put again below)
        if keep and self.index is not None:
            self.index.put(rel, stamp, parse)
        self._touched.add(rel)
        self._stamps[rel] = stamp
        if post is not None:
            self._posts[rel] = post
        if problems:
            self._problems[rel] = problems
        if skipped is not None:
            self._skipped[rel] = skipped
        return True

    def _forget(self, rel: str, gone: bool = True) -> bool:  # gone: not about to be put again
        self._retries.forget(rel)
        known = rel in self._stamps
        if known and gone:
            self._removals.note(rel, self._stamps, self._posts, self._problems, self._skipped)
        if known:
            self._touched.add(rel)
            if self.index is not None:
                self.index.drop(rel)
        for table in (self._stamps, self._posts, self._problems, self._skipped):
            table.pop(rel, None)
        return known

    def _forget_below(self, rel: str, keep: set[str] | frozenset[str] = frozenset()) -> bool:
        prefix = rel + "/"
        gone = [k for k in self._stamps if k.startswith(prefix) and k not in keep]
        for known in gone:
            self._forget(known)
        return bool(gone)

    def _snapshot(self, started: float, whole: bool = False) -> Snapshot:
        self._version += 1
        modified = self._clock.after(self._stamps, self._touched, every=whole)
        changed = None if whole else frozenset(self._touched)
        self._touched.clear()
        return Snapshot(
            version=self._version, settings=self.settings, posts=dict(self._posts),
            problems=dict(self._problems),
            skipped=dict(self._skipped),
            duration=time.monotonic() - started,
            changed=changed, modified_ns=modified,
        )

    def begin(self) -> None:
        """Begin the first load of a cold start (no load state kept) as a server starts:
        its helpers parse while this process imports the web stack (~0.3 s). What changes
        meanwhile, the full scan after the load takes in."""
        if not self.states.kept():
            with self._lock:
                self._begun = self._begin()

    def _begin(self) -> Begun:
        """A whole load's walk, and its helpers forked: when it began, the files that may
        be posts, the load state taken (else None) and its files to read again."""
        started, self._loads = time.monotonic(), self._loads + 1
        self._rules = self.settings.site_rules()
        for table in (self._stamps, self._posts, self._problems, self._skipped,
                      self._folders):
            table.clear()
        folders: list[str] = []
        files, links = files_of(walk(str(self.root), str(self.root), folders,
                                     self._rules.collection_folders))
        self._liquid_files.changed()
        # With a _posts folder anywhere, only files in _posts folders are posts.
        self._jekyll_layout = self._layout(folders)
        documents = self._rules.collection_folders
        rels, kept, stale = self.states.find(files, self._jekyll_layout, links, lambda rel: (
            is_post_path(rel, self._jekyll_layout, documents)))
        self.index = self._open_index(rows=None if kept is None else stale)
        if kept is None:
            index = self.index
            self._shared = Shared(share(str(self.root), rels, self._rules,
                                        self.settings.load_workers,
                                        lambda rel: index is not None and index.has(rel)))
        return started, rels, kept, stale

    def load(self, progress: bool = True) -> Snapshot:
        """Read the whole folder (first load, or after ``_config.yml`` changed)."""
        with self._lock:
            begun, self._begun = self._begun, None
            started, rels, kept, stale = begun or self._begin()
            with gc_paused():
                if kept is not None:
                    self._take(kept, stale)
                else:  # from the index, else parsed (shared with the helpers forked)
                    try:
                        for rel in each_file(rels, str(self.root), self._on_progress,
                                             progress):
                            self._update(rel, whole=True)
                    finally:
                        self._shared.close()
                snapshot = self._snapshot(started, whole=True)
            if self.index is not None and kept is None:
                self.index.loaded()
            self.states.made(rels, self._stamps, snapshot, self._jekyll_layout,
                             self._retries.pending())
            self._hold.had_posts = self._hold.had_posts or bool(snapshot.posts)
            logger.info("loaded %s: %d posts, %d rejected, in %.2f s", self.root,
                        len(snapshot.posts), snapshot.rejected, snapshot.duration)
            return snapshot

    def _take(self, kept: Outcome, stale: list[str]) -> None:
        """A whole load's outcome as the load state keeps it, its problems told again, and
        the ``stale`` files (changed since) read again."""
        self._stamps.update(kept.files.stamps)
        self._posts.update(kept.posts)
        self._problems.update(kept.problems)
        self._skipped.update(kept.skipped)
        self._folders.update(kept.files.stamps)
        self._touched.update(kept.files.stamps)
        kept.tell(self._report, lambda rel, why: logger.info("post skipped: %s: %s", rel, why),
                  stale)
        for rel in stale:  # (its row in the index, when the service wrote one for it)
            self._update(rel, whole=is_post_path(rel, self._jekyll_layout,
                                                 self._rules.collection_folders))

    def apply(self, paths: Iterable[str]) -> Snapshot | None:
        """Re-read what changed at these absolute or relative paths (files or folders,
        present or gone); a new snapshot when anything changed, else None."""
        with self._lock:
            started = time.monotonic()
            root = str(self.root)
            rels = relative_paths(paths, root)
            changed = self.held is not None
            if any(rel.split("/", 1)[0] in LIQUID_FOLDERS for rel in rels):
                changed |= self._liquid_files.changed()
            if CONFIG_NAME in rels or rels & set(AUTHORS_FILES):
                rels -= {CONFIG_NAME, *AUTHORS_FILES}
                outcome = self._read_config()
                if outcome == "posts":
                    return self._hold(self.load(progress=False))
                changed |= outcome == "settings"
            for rel in sorted(rels):
                parts = rel.split("/")
                if skipped_below(parts[:-1], self._rules.collection_folders):
                    continue  # below .git, _site, _drafts ...: never a post
                if "_posts" in parts and not self._jekyll_layout:
                    return self._hold(self.load(progress=False))
                full = os.path.join(root, rel)
                if os.path.isdir(full) and not os.path.islink(full):
                    changed |= self._rescan_folder(rel)
                elif rel in self._stamps or os.path.lexists(full):
                    changed |= self._update(rel)
                elif rel in self._folders:  # (else no known file was below it)
                    changed |= self._forget_below(rel)  # gone, unknown: a folder of posts?
            return self._hold(self._snapshot(started)) if changed else None

    def undo_removals(self) -> Snapshot | None:
        """Put back the files just forgotten that are still gone (see removals)."""
        with self._lock:
            started = time.monotonic()
            back = self._removals.put_back(self._stamps, self._posts, self._problems, self._skipped)
            if not back:
                return None
            logger.warning("%s went just after %d of its files were removed: putting them "
                           "back, as the start of its removal", self.root, len(back))
            self._touched |= back
            self._folders.update(back)
            return self._hold(self._snapshot(started))

    def _rescan_folder(self, rel: str) -> bool:
        if skipped_below(rel.split("/"), self._rules.collection_folders):
            return self._forget_below(rel)
        changed = self._forget(rel)  # a post's path now a folder: the post is gone
        found: set[str] = set()
        for child, _entry in walk(str(self.root), os.path.join(str(self.root), rel),
                                  documents=self._rules.collection_folders):
            found.add(child)
            changed |= self._update(child)
        changed |= self._forget_below(rel, found)
        return changed

    def rescan(self, settle: bool = False,
               between: Callable[[], None] | None = None) -> Snapshot | None:
        """Polling: stat every file (unlocked, with ``between`` now and then: see scan.survey),
        then, locked, re-read the changed ones. With ``settle`` (the watcher's scans), a file
        written in the last SETTLE seconds is left for SETTLE: it may be half written."""
        loads, folders, root = self._loads, list[str](), str(self.root)
        files = survey(root, folders, self._rules.collection_folders, between)
        found, stale, young = compare(files, self._stamps, lambda rel: is_post_path(
            rel, self._jekyll_layout, self._rules.collection_folders),
            SETTLE if settle else None, between)
        look = surveyed_look(root, files)
        with self._lock:
            if self._loads != loads:
                return None  # a whole load (_config.yml changed) read it all meanwhile
            started, self.scan_look = time.monotonic(), None
            outcome = self._read_config() if self.config.changed() else "same"
            if outcome == "posts" or self._layout(folders) != self._jekyll_layout:
                return self._hold(self.load(progress=False))
            changed = self._liquid_files.changed() | (outcome == "settings") | (
                self.held is not None)
            for rel in young:
                self._retries.later(rel)  # once settled (put off once, not each scan)
            for rel in stale:
                changed |= self._update(rel)
            for known_rel in [k for k in self._stamps if k not in found]:
                changed |= self._update(known_rel)  # gone, or made since the walk passed
            self.scan_look = (look,)
            return self._hold(self._snapshot(started)) if changed else None

    def _read_config(self) -> str:
        """Read the settings again: 'same', 'settings' (changed, posts unaffected) or
        'posts' (changed in a way that needs every post read again)."""
        settings = self.config.reread(self.settings.reload_config)
        if settings is None or settings == self.settings:
            return "same"
        logger.info("%s changed; settings read again", self.root / CONFIG_NAME)
        rules_changed = settings.site_rules() != self._rules
        self.settings = settings
        return "posts" if rules_changed else "settings"
