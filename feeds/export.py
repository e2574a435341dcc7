"""``feeds build DIR OUT``: every feed (all formats, every page), every HTML page and the
OPML written as static files, byte for byte what the server answers for the same content
and base URL. Files are fetched through the app itself, so the two cannot drift apart.

On disk, paths are percent-decoded ('/tag/城市.atom' -> OUT/tag/城市.atom); a URL ending
in '/' is written as 'index.html' below it; page N (N > 1) of a feed or list is written
with its query in the file name ('news.atom?page=2'), which nginx serves with
``try_files $uri$is_args$args $uri =404``. A run rewrites only files whose bytes changed
and removes the files a previous run wrote that no longer exist.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import unquote, urlsplit

from .config import Settings

logger = logging.getLogger(__name__)
MANIFEST = ".feeds-build-manifest"


def urls(app: object) -> Iterator[str]:
    """Every URL the site answers, as paths with their query."""
    from .cache import FeedService
    from .model import FEED_FORMATS, Kind
    from .pages import term_url

    svc: FeedService = app.extensions["feeds"]  # type: ignore[attr-defined]
    state = svc.state()
    settings = state.settings
    index = state.index
    limit = settings.posts_limit

    def paged(path: str, total: int, size: int) -> Iterator[str]:
        yield path
        for page in range(2, max(1, math.ceil(total / size)) + 1):
            yield f"{path}?page={page}"

    yield from paged("/", len(index.posts), settings.page_size)
    yield "/feeds.opml"
    yield "/static/style.css"
    for fmt in FEED_FORMATS:
        yield from paged(f"/feed.{fmt.value}", len(index.posts), limit)
    for kind in (Kind.CATEGORY, Kind.TAG):
        for term in index.sorted_terms(kind):
            path = term_url("", kind, term.name, "html")
            yield from paged(path, len(term.posts), settings.page_size)
            for fmt in FEED_FORMATS:
                yield from paged(path[: -len("html")] + fmt.value, len(term.posts), limit)
    for post in index.posts:
        yield post.url


def _target(out: Path, url: str) -> Path:
    parts = urlsplit(url)
    path = unquote(parts.path)
    if path.endswith("/"):
        path += "index.html"
    name = path.lstrip("/")
    if parts.query:
        name += "?" + parts.query
    target = (out / name).resolve()
    if out.resolve() not in target.parents:
        raise ValueError(f"refusing to write outside {out}: {url}")
    return target


def build(settings: Settings, out_dir: str) -> int:
    from . import create_app

    started = time.monotonic()
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    app = create_app(settings, watch=False)
    base = settings.site_base or "http://localhost"
    split = urlsplit(base)
    client = app.test_client()
    manifest = out / MANIFEST
    previous = set(manifest.read_text("utf-8").splitlines()) if manifest.exists() else set()
    written: set[str] = set()
    all_urls = list(dict.fromkeys(urls(app)))
    show_progress = sys.stderr.isatty()
    changed = failed = 0
    for n, url in enumerate(all_urls, 1):
        response = client.get(url, base_url=f"{split.scheme}://{split.netloc}")
        if response.status_code != 200:
            logger.error("%s: answered %d, not written", url, response.status_code)
            failed += 1
            continue
        target = _target(out, url)
        rel = target.relative_to(out.resolve()).as_posix()
        written.add(rel)
        data = response.get_data()
        if not target.exists() or target.read_bytes() != data:
            target.parent.mkdir(parents=True, exist_ok=True)
            tmp = target.with_name(f".{target.name}.tmp")
            tmp.write_bytes(data)
            os.replace(tmp, target)
            changed += 1
        if show_progress and (n % 50 == 0 or n == len(all_urls)):
            width = 30
            done = int(width * n / len(all_urls))
            print(f"\r[{'#' * done}{'.' * (width - done)}] {n}/{len(all_urls)}",
                  end="", file=sys.stderr, flush=True)
    if show_progress:
        print(file=sys.stderr)
    removed = 0
    for rel in sorted(previous - written):
        stale = out / rel
        if stale.is_file():
            stale.unlink()
            removed += 1
    manifest.write_text("".join(f"{rel}\n" for rel in sorted(written)), "utf-8")
    health = app.extensions["feeds"].health()
    print(f"{health['posts']} posts, {health['rejected']} rejected, {len(written)} files "
          f"({changed} written, {removed} removed, {failed} failed) in "
          f"{time.monotonic() - started:.2f} s", file=sys.stderr)
    return 1 if failed else 0
