"""``feeds build DIR OUT``: every feed (all formats, every page), every HTML page and the
OPML written as static files, byte for byte what the server answers for the same content
and base URL. Files are fetched through the app itself, so the two cannot drift apart.

Which URLs there are is ``links.site_urls``. On disk, paths are percent-decoded
('/tag/%E5%9F%8E.atom' -> OUT/tag/城.atom), as static hosts and object stores decode a
request path before they look it up. A URL ending in '/' is written as 'index.html' below
it. Page N (N > 1) of a feed or list keeps its query in the file name
('feed.atom?page=2'); deploy/nginx-static.conf serves those with ``try_files
$uri$is_args$args ...``, and a host that ignores queries serves page 1.

A run rewrites only files whose bytes changed (so their mtimes, and a sync tool's upload
list, show what changed) and removes the files a previous run wrote that no longer exist,
with the folders that leaves empty. The list of files written is kept in
OUT/.feeds-build-manifest (``MANIFEST``).
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import unquote, urlsplit

from flask import Flask

from . import assets, links
from .config import Settings

if TYPE_CHECKING:
    from .service import FeedService

logger = logging.getLogger(__name__)
MANIFEST = ".feeds-build-manifest"


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

    def summary(self) -> str:
        return (f"{self.posts} posts, {self.rejected} rejected, {self.files} files "
                f"({self.written} written, {self.removed} removed, {self.failed} failed) "
                f"in {self.seconds:.2f} s")


def urls(app: Flask) -> Iterator[str]:
    """Every URL of the site the app serves, as a path with its query, the shipped
    static files (and the site's own feed.xslt.xml) among them."""
    svc: FeedService = app.extensions["feeds"]
    state = svc.state()
    settings = state.settings
    statics = [f"/static/{name}" for name in assets.ASSETS]
    if os.path.isfile(assets.site_xslt_path(settings.content)):
        statics.append(f"/{assets.SITE_XSLT}")
    return links.site_urls(state.index, settings.page_size, settings.posts_limit, statics,
                           settings)


def target(out: Path, url: str) -> Path:
    """Where a URL's file goes below ``out`` (absolute); never outside it."""
    parts = urlsplit(url)
    path = unquote(parts.path)
    if path.endswith("/"):
        path += "index.html"
    name = path.lstrip("/")
    if parts.query:
        name += "?" + parts.query
    root = out.resolve()
    found = (root / name).resolve()
    if root not in found.parents:
        raise ValueError(f"refusing to write outside {out}: {url}")
    return found


def _write_if_changed(path: Path, data: bytes) -> bool:
    try:
        if path.stat().st_size == len(data) and path.read_bytes() == data:
            return False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)
    return True


def _remove(root: Path, stale: set[str]) -> int:
    """Remove the files a previous run wrote that this one did not, then the folders
    that leaves empty (never ``root`` itself)."""
    removed = 0
    folders: set[Path] = set()
    for rel in sorted(stale):
        path = root / rel
        if path.is_file() and root in path.resolve().parents:
            path.unlink()
            removed += 1
            folders.update(p for p in path.parents if root in p.parents)
    for folder in sorted(folders, key=lambda p: len(p.parts), reverse=True):
        with contextlib.suppress(OSError):  # not empty: something else lives there
            folder.rmdir()
    return removed


def run(settings: Settings, out_dir: str,
        progress: Callable[[int, int], None] | None = None) -> BuildResult:
    """Write the site under ``out_dir``, calling ``progress(done, total)`` per URL."""
    from . import create_app

    started = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    app = create_app(settings, watch=False)
    svc: FeedService = app.extensions["feeds"]
    try:
        base = settings.site_base or "http://localhost"
        split = urlsplit(base)
        client = app.test_client()
        manifest = root / MANIFEST
        previous = set(manifest.read_text("utf-8").splitlines()) if manifest.exists() else set()
        written: set[str] = set()
        all_urls = list(dict.fromkeys(urls(app)))
        changed = failed = 0
        for n, url in enumerate(all_urls, 1):
            # No Accept-Encoding: the identity body, as a static host stores it.
            with client.get(url, base_url=f"{split.scheme}://{split.netloc}") as response:
                status, data = response.status_code, response.get_data()
            if status != 200:
                logger.error("%s: answered %d, not written", url, status)
                failed += 1
                continue
            try:
                path = target(out, url)
                changed += _write_if_changed(path, data)
            except (OSError, ValueError) as e:
                logger.error("%s: cannot write: %s", url, e)
                failed += 1
                continue
            written.add(path.relative_to(root).as_posix())
            if progress is not None:
                progress(n, len(all_urls))
        removed = _remove(root, previous - written)
        manifest.write_text("".join(f"{rel}\n" for rel in sorted(written)), "utf-8")
        health = svc.health()
    finally:
        svc.stop()
    return BuildResult(
        posts=health["posts"], rejected=health["rejected"], files=len(written),
        written=changed, removed=removed, failed=failed,
        seconds=time.monotonic() - started)
