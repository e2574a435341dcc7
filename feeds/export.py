"""``feeds build DIR OUT``: every feed (all formats, every page), every HTML page and the
OPML written as static files, byte for byte what the server answers for the same content
and base URL. Files are fetched through the app itself, so the two cannot drift apart.

Which URLs there are is ``links.site_urls``. On disk, paths are percent-decoded
('/tag/%E5%9F%8E.atom' -> OUT/tag/城.atom), as static hosts and object stores decode a
request path before they look it up. A URL ending in '/' is written as 'index.html' below
it. Page N (N > 1) of a feed or list keeps its query in the file name
('feed.atom?page=2'); deploy/nginx-static.conf serves those with ``try_files
$uri$is_args$args ...``, and a host that ignores queries serves page 1.

A run renders only URLs whose inputs changed (``buildstate``; ``buildplan`` keeps whole
groups of them unlisted), rewrites only files whose bytes changed and removes those a
previous run wrote that no longer exist (and folders left empty); the list of files is
OUT/.feeds-build-manifest, replaced only when complete, and only when it changed.

An OUT that is, holds or is inside the content folder is refused before anything is
read, as is one that is a file or cannot be written. A write that would fail for every
file (a full disk, a read-only file system) stops the build; no temporary file is left.
Either way the result's ``error`` is the one line ``feeds build`` prints.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from . import buildplan, buildstate, buildwork
from .config import Settings
from .site import file_name

if TYPE_CHECKING:
    from .service import FeedService

logger = logging.getLogger(__name__)
MANIFEST = ".feeds-build-manifest"


class BuildError(Exception):
    """A build that cannot start or go on (an OUT it must not or cannot write)."""


# A write failing with one of these fails for every file after it: the build stops,
# rather than logging the same error for each of thousands of files.
_FATAL = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM,
                    errno.EIO})


@dataclass
class BuildResult:
    """What a build did; ``feeds build`` prints it as its one-line summary."""

    posts: int
    rejected: int
    files: int
    written: int
    removed: int
    failed: int
    seconds: float
    error: str = ""
    """Why the build stopped (or never started); then it is the summary."""
    kept: int = 0
    """Files not rendered again: nothing they are made of had changed."""

    def summary(self) -> str:
        if self.error:
            return f"feeds build: {self.error}"
        return (f"{self.posts} posts, {self.rejected} rejected, {self.files} files "
                f"({self.written} written, {self.removed} removed, {self.failed} failed) "
                f"in {self.seconds:.2f} s"
                + (f"; {self.kept} unchanged, not rendered again" if self.kept else ""))


def target(out: Path, url: str) -> Path:
    """Where a URL's file goes below ``out`` (absolute); never outside it."""
    root = out.resolve()
    found = (root / file_name(url)).resolve()
    if root not in found.parents:
        raise ValueError(f"refusing to write outside {out}: {url}")
    return found


def output_folder(content: str, out_dir: str) -> Path:
    """OUT made ready and resolved; BuildError when it is, holds or is inside the content
    folder (symlinks followed: the build would write over the posts it reads), or is
    not a folder, or cannot be made."""
    source = Path(content).resolve()
    out = Path(out_dir).resolve()
    if out == source or source in out.parents or out in source.parents:
        where = ("is" if out == source else
                 "is inside" if source in out.parents else "contains")
        raise BuildError(f"{out_dir}: the output folder {where} the content folder "
                         f"{content}; give a folder outside it")
    if out.exists() and not out.is_dir():
        raise BuildError(f"{out_dir}: not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):  # read-only, full: say so before the load
            pass
    except OSError as e:
        raise BuildError(f"{out_dir}: cannot write in the output folder: {e.strerror}") from e
    return out


def _replace(path: Path, data: bytes | Iterable[bytes]) -> None:
    """Write ``path`` whole or not at all (``data`` may come in pieces): a temporary
    file renamed over it, removed again when the write fails (a full disk leaves no
    half files behind)."""
    tmp = buildwork.tmp_path(path)
    try:
        with open(tmp, "wb") as f:
            for piece in [data] if isinstance(data, bytes) else data:
                f.write(piece)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _write_if_changed(path: Path, data: bytes, folders: set[Path] | None = None) -> bool:
    """Write ``path`` unless it holds ``data`` already; ``folders``: those made so far."""
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    if folders is None or path.parent not in folders:
        path.parent.mkdir(parents=True, exist_ok=True)
        if folders is not None:
            folders.add(path.parent)
    _replace(path, data)
    return True


@dataclass
class _Run:
    """One build's files: what the last run wrote, what this one wrote so far."""

    root: Path
    written: set[str]
    changed: int = 0
    failed: int = 0
    kept: int = 0  # files left as they were, unrendered: their inputs had not changed
    _previous: set[str] | None = None
    _parents: dict[str, Path] = field(default_factory=dict)
    """A file's folder (relative) -> resolved, and found inside ``root``."""
    _folders: set[Path] = field(default_factory=set)

    @property
    def previous(self) -> set[str]:
        """The files the last run wrote (its manifest; read when first asked)."""
        if self._previous is None:
            try:
                self._previous = set((self.root / MANIFEST).read_text("utf-8").splitlines())
            except FileNotFoundError:
                self._previous = set()
            except (OSError, UnicodeDecodeError) as e:
                raise BuildError(f"{self.root / MANIFEST}: cannot read: {e}") from e
        return self._previous

    def _parent(self, head: str, url: str) -> Path:
        """Resolved from its own parent's (a site has a folder a post): one lstat each."""
        found = self._parents.get(head)
        if found is None:
            up, _, name = head.rpartition("/")
            found = self._parent(up, url) / name if head else self.root
            if head and (name in ("", ".", "..") or found.is_symlink()):
                found = found.resolve()
                if found != self.root and self.root not in found.parents:
                    raise ValueError(f"refusing to write outside {self.root}: {url}")
            self._parents[head] = found
        return found

    def path(self, url: str) -> Path:
        """``target``, each folder resolved once (a symlinked file whole, as target)."""
        head, _, name = file_name(url).rpartition("/")
        if name in ("", ".", ".."):
            return target(self.root, url)
        found = self._parent(head, url) / name
        return target(self.root, url) if found.is_symlink() else found

    def write(self, url: str, data: bytes) -> tuple[os.stat_result, str] | None:
        """Write one URL's file, give its stat and its name below ``root``; a fatal error
        (full disk, read-only) raises BuildError, any other is logged and counted (None)."""
        try:
            path = self.path(url)
            self.changed += _write_if_changed(path, data, self._folders)
            found = path.stat()
        except (OSError, ValueError) as e:
            if isinstance(e, OSError) and e.errno in _FATAL:
                raise BuildError(f"{self.root}: cannot write {url}: {e.strerror}") from e
            logger.error("%s: cannot write: %s", url, e)
            self.failed += 1
            return None
        rel = path.relative_to(self.root).as_posix()
        self.written.add(rel)
        return found, rel

    def keep(self, made: buildstate.Made) -> bool:
        """Keep a URL's file the last build made, when it is still as that build left
        it (``buildstate.as_left``); False: make it again."""
        if not buildstate.as_left(self.root, made):
            return False
        self.written.add(made.rel)
        self.kept += 1
        return True

    def manifest(self, names: set[str]) -> None:
        """The list of files, replaced whole: the old one stays until the new is complete.
        Written in pieces: made whole, at 190,000 files, it was the build's peak."""
        rels = sorted(names)
        _replace(self.root / MANIFEST, ("".join(f"{rel}\n" for rel in rels[i:i + 1000]).encode()
                                        for i in range(0, len(rels), 1000)))


def run(settings: Settings, out_dir: str, progress: Callable[[int, int], None] | None = None,
        detach: bool = False) -> BuildResult:
    """Write the site under ``out_dir``, calling ``progress(done, total)`` per URL. A
    build that cannot start or go on returns with ``error`` set (and ``failed``).
    ``detach`` (``feeds build``, whose process then ends): the load state of
    ``--index-dir`` may still be being written, by a forked process, when this returns."""
    started = time.monotonic()
    try:
        root = output_folder(settings.content, out_dir)
        job = _Run(root, set())
    except BuildError as e:
        return BuildResult(0, 0, 0, 0, 0, 1, time.monotonic() - started, str(e))
    return _build(settings, job, started, progress, detach)


def _build(settings: Settings, job: _Run, started: float,
           progress: Callable[[int, int], None] | None, detach: bool) -> BuildResult:
    bounded = buildwork.bounded(settings)
    context = buildplan.context_of(bounded)
    old = buildstate.load(job.root) if (job.root / MANIFEST).is_file() else None
    old = buildplan.usable(old, context, job.root)
    check = buildplan.Check(job.root, old)  # forked: looks at OUT while the content loads
    app = buildplan.app_for(bounded, old)
    svc: FeedService = app.extensions["feeds"]
    error, removed = "", 0
    killed = buildwork.begin(job.root)
    try:
        get = buildwork.getter(app, settings.site_base or "http://localhost")
        memory = buildplan.Memory(svc, job.root, old, context)
        old = None  # (Memory keeps it)
        try:
            todo = memory.plan(job.keep, check)
            check.close()
            _render_all(job, memory, get, todo, settings.build_workers, progress)
            removed = _tidy(job, memory)
            buildstate.write(memory.state(), job.root / buildstate.STATE_FILE)
        except BuildError as e:
            error = _stopped(job, e)
        except OSError as e:  # removing a stale file, or writing the manifest
            error = _stopped(job, BuildError(f"{e.filename or job.root}: {e.strerror}"))
        # A process of this run that died may have left some too; a full build also
        # sweeps what a release that made no RUNNING mark left.
        buildwork.end(job.root, (lambda: job.previous | job.written)
                      if killed or error or memory.old is None else None)
        health = svc.health()
    finally:
        check.close()
        svc.stop()
        if not detach:
            svc.store.states.finish()
    return BuildResult(
        posts=health["posts"], rejected=health["rejected"],
        files=len(job.written) + memory.trusted, written=job.changed, removed=removed,
        failed=job.failed + bool(error), seconds=time.monotonic() - started, error=error,
        kept=job.kept + memory.trusted)


def _tidy(job: _Run, memory: buildplan.Memory) -> int:
    """Remove what the last build wrote and this one did not (a full build: looked for
    in the whole manifest), write the manifest when it changed; the number removed."""
    if memory.old is None:
        removed = buildwork.remove_stale(job.root, job.previous - job.written)
        job.manifest(job.written)
        return removed
    stale, new = memory.leftovers(job.written)
    removed = buildwork.remove_stale(job.root, stale)
    if stale or new:
        job.manifest((job.previous - stale) | new)
    return removed


@dataclass
class _Part:
    """What one process of the build did (sent back by a forked one)."""

    written: set[str]
    changed: int
    failed: int
    made: list[buildstate.Made | None]
    """What it made of each URL of its part, in order (its URLs are the parent's too)."""
    liquid: frozenset[str]
    error: str = ""


def _render_all(job: _Run, memory: buildplan.Memory, get: Getter, todo: list[str],
                workers: int, progress: Callable[[int, int], None] | None) -> None:
    """Make the URLs ``todo`` in ``workers`` processes (buildwork; a small change here,
    unforked), what each did merged into ``job`` and ``memory``; BuildError: one stopped."""
    total = memory.trusted + len(memory.pages)
    kept = total - len(todo)
    if progress is not None:
        progress(kept, total)
    parts = buildwork.chunks(todo, workers)
    if len(parts) > 1:  # (the render helper serves one process)
        memory.svc.cache.bodies.helper = None
    counter = buildwork.Counter(len(parts))
    logger.info("%d URLs, %d to make, in %d processes", total, len(todo), len(parts))

    # Made once, before the fork: each process goes down the history with its own copy.
    sweep = buildwork.Sweep(memory.index.posts, memory.svc.cache.bodies.retire) \
        if len(todo) > buildwork.Sweep.STEP else None

    def work(part: Sequence[str], slot: int) -> _Part:
        before = (job.changed, job.failed)
        if slot:  # a forked copy: only what it makes goes back
            job.written, memory.made = set(), {}
        try:
            for n, url in enumerate(part, 1):
                if sweep is not None:
                    sweep.at(memory.pages[url].posts)
                _make(job, memory, get, url)
                counter.set(slot, n)
                if progress is not None and slot == 0:
                    progress(kept + counter.total(), total)
            error = ""
        except BuildError as e:
            error = str(e)
        if slot == 0:  # this process: job and memory are the build's own; its caches
            memory.svc.cache.drop()  # go before the others' results come in (the peak)
            return _Part(set(), 0, 0, [], frozenset(), error)
        # A forked process: what it did, from the copies it started with.
        made = [memory.made.get(url) for url in part]
        return _Part(job.written, job.changed - before[0], job.failed - before[1], made,
                     memory.svc.cache.bodies.liquid_sources(), error)

    errors = []
    for part, result in zip(parts, buildwork.in_parallel(parts, work), strict=True):
        if isinstance(result, buildwork.WorkerDied):
            result = _Part(set(), 0, 1, [], frozenset(), str(result).strip().splitlines()[-1])
        job.written |= result.written
        job.changed, job.failed = job.changed + result.changed, job.failed + result.failed
        memory.made.update((url, m) for url, m in zip(part, result.made, strict=False)
                           if m is not None)  # (the parent's own is [])
        memory.liquid_found |= result.liquid
        errors += [result.error] if result.error else []
    if progress is not None:
        progress(kept + counter.total(), total)
    if errors:
        raise BuildError(errors[0])


Getter = Callable[[str], tuple[int, bytes, bool]]


def _make(job: _Run, memory: buildplan.Memory, get: Getter, url: str) -> None:
    """Render one URL through the app and write it; remember what it was made from
    (and never keep it when the answer may not be kept: a post body that could not be
    read)."""
    status, data, keepable = get(url)
    if status != 200:
        logger.error("%s: answered %d, not written", url, status)
        job.failed += 1
        return
    written = job.write(url, data)
    if written is not None:
        memory.record(url, *written, keepable)


def _stopped(job: _Run, e: BuildError) -> str:
    """The line for a build stopped part way. Nothing is removed; the manifest names
    the files of both runs (so the next run still removes what is stale), or, when even
    that cannot be written, stays the old one. The state goes: the next build is full."""
    with contextlib.suppress(OSError):
        (job.root / buildstate.STATE_FILE).unlink(missing_ok=True)
    try:
        job.manifest(job.previous | job.written)
        kept = "the manifest lists both runs' files"
    except (OSError, BuildError):
        kept = "the old manifest is kept"
    return f"{e}; stopped after {len(job.written)} files, {kept}"
