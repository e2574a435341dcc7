"""The life of one content folder as the service serves it: the first load (now, or on a
thread while the server answers 503), following changes (the watcher), building each new
site index and swapping it in as one State, revealing posts dated in the future when
they come due, health, and the listeners told of each swap (the WebSub publisher).

What is rendered from a state, and kept, is ``cache``'s; ``feed``, ``page``, ``opml``
and ``delta`` here answer for the current state.
"""

from __future__ import annotations

import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from .cache import FeedCache
from .config import ConfigError, Settings, read_config_file
from .content import ContentStore, Snapshot
from .metrics import Metrics
from .model import FeedKey, Post
from .parse import LiquidSite, SiteVars, page_vars, read_data
from .rendered import Delta, Rendered
from .site import SiteIndex, State
from .watch import Watcher

logger = logging.getLogger(__name__)


class NotReady(Exception):
    """The first load has not finished."""


class FeedService:
    """Content, index and renderings of one content folder."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.store = ContentStore(settings)
        self.cache = FeedCache(settings, self.metrics, self.read_body, self.liquid_site)
        self._liquid: tuple[State, LiquidSite] | None = None
        self._state: State | None = None
        self.ready = threading.Event()
        self.last_reload: dict[str, Any] = {}
        self.load_error: str | None = None
        self.listeners: list[Callable[[State | None, State], None]] = []
        self.stoppers: list[Callable[[], None]] = []
        """Called by stop(): helpers started with the service (the WebSub publisher)."""
        self._watcher: Watcher | None = None
        self._reveal_at: float | None = None

    @property
    def settings(self) -> Settings:
        state = self._state
        return state.settings if state else self.store.settings

    def read_body(self, post: Post) -> str:
        """The text of a post's body, after its front matter, read from its file now
        through the one disk reader (never blocks; PostError when the file is not the
        one indexed)."""
        return self.store.read_body(post)

    def liquid_site(self) -> LiquidSite | None:
        """What post bodies' Liquid sees of the current state: ``_config.yml`` and every
        post's URL (for ``post_url`` and ``link``). Made when a body first needs it."""
        state = self._state
        if state is None:
            return None
        made = self._liquid
        if made is not None and made[0] is state:
            return made[1]
        settings = state.settings
        try:
            config = read_config_file(Path(settings.content))
        except ConfigError:
            config = {}
        config = {**config, "data": read_data(Path(settings.content))}
        names: dict[str, str] = {}
        for post in state.index.posts:
            name = post.source.rsplit(".", 1)[0]
            names[name.rsplit("/", 1)[-1]] = post.url
            names[name.split("_posts/", 1)[-1]] = post.url
        posts = state.index.posts
        files = {p.source: p.url for p in posts}
        base = (settings.url.rstrip("/") + settings.path_prefix) if settings.url \
            else settings.site_base
        # Any post's edit is a new version: site.posts shows every post's title and date.
        version = hashlib.blake2b(json.dumps(
            [config, [(p.source, p.url, p.stamp) for p in posts], base, settings.timezone],
            sort_keys=True, default=str).encode(), digest_size=12).hexdigest()
        site_vars = SiteVars(config, lambda: [page_vars(p, {}) for p in posts])
        site = LiquidSite(root=Path(settings.content), config=site_vars, base=base,
                          baseurl=settings.path_prefix, post_urls=names, file_urls=files,
                          tz=settings.tz, version=version)
        self._liquid = (state, site)
        return site

    # --- loading and following changes ------------------------------------------------

    def load(self) -> None:
        """The first load, in the calling thread."""
        started = time.monotonic()
        try:
            snapshot = self.store.load()
        except Exception as e:
            self.load_error = str(e)
            logger.exception("cannot load %s", self.store.root)
            raise
        self._install(snapshot, time.monotonic() - started)
        self.ready.set()

    def start(self, background: bool = False, watch: bool | None = None) -> None:
        """Load (now, or on a thread while the server already answers 503) and then
        follow changes when ``watch`` (default: the ``watch`` setting)."""
        watch = self.store.settings.watch if watch is None else watch

        def run() -> None:
            self.load()
            if watch:
                self._start_watcher()

        if background:
            threading.Thread(target=run, name="feeds-loader", daemon=True).start()
        else:
            run()

    def _start_watcher(self) -> None:
        self._watcher = Watcher(
            str(self.store.root), self.settings.reload_interval,
            on_paths=lambda paths: self._reload(self.store.apply, paths),
            on_poll=lambda: self._reload(lambda _: self.store.rescan(), set()),
            on_tick=self.reveal_due_posts,
        )
        self._watcher.start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        for stopper in self.stoppers:
            stopper()

    def _reload(self, step: Callable[[set[str]], Snapshot | None], paths: set[str]) -> None:
        started = time.monotonic()
        snapshot = step(paths)
        if snapshot is not None:
            self._install(snapshot, time.monotonic() - started)

    def refresh(self) -> None:
        """Poll once, now, as the watcher's polling does (tests: a change is seen without
        waiting for the watcher)."""
        self._reload(lambda _: self.store.rescan(), set())

    def _install(self, snapshot: Snapshot, seconds: float) -> None:
        old = self._state
        index = self._next_index(old, snapshot)
        new = State(snapshot, index)
        self._state = new  # one reference swap: readers see the old state or the new
        self._reveal_at = index.next_reveal
        self.last_reload = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 4),
            "version": snapshot.version,
        }
        self.metrics.reloads.inc()
        self.metrics.reload_seconds.observe(seconds)
        self.metrics.posts.set(len(index.posts))
        self.metrics.rejected.set(snapshot.rejected)
        if old is not None:
            logger.info("content version %d: %d posts, %d rejected (%.3f s)",
                        snapshot.version, len(index.posts), snapshot.rejected, seconds)
        for listener in self.listeners:
            try:
                listener(old, new)
            except Exception:
                logger.exception("content-change listener failed")

    @staticmethod
    def _next_index(old: State | None, snapshot: Snapshot) -> SiteIndex:
        """The index of this snapshot: the old one updated with the files that changed,
        when it is the very next version under the same settings; else built whole."""
        if (old is not None and snapshot.changed is not None
                and snapshot.version == old.snapshot.version + 1
                and snapshot.settings is old.snapshot.settings):
            before, after = old.snapshot.posts, snapshot.posts
            index = old.index.updated(
                [before[rel] for rel in snapshot.changed if rel in before],
                [after[rel] for rel in snapshot.changed if rel in after])
            if index is not None:
                return index
        return SiteIndex(snapshot.posts.values(), future=snapshot.settings.future)

    def reveal_due_posts(self) -> None:
        """Rebuild the index when a post dated in the future has come due."""
        reveal = self._reveal_at
        state = self._state
        if reveal is not None and state is not None and time.time() >= reveal:
            self._install(state.snapshot, 0.0)

    # --- the current state ------------------------------------------------------------

    def state(self) -> State:
        state = self._state
        if state is None:
            raise NotReady
        if self._reveal_at is not None and time.time() >= self._reveal_at:
            self.reveal_due_posts()
            state = self._state
            assert state is not None
        return state

    def replayable_version(self) -> int | None:
        """The content version a response made now would be made from; None while
        there is none yet, or when a future-dated post is due and the next request
        must rebuild the index (see state())."""
        state = self._state
        if state is None or (self._reveal_at is not None and time.time() >= self._reveal_at):
            return None
        return state.snapshot.version

    def health(self) -> dict[str, Any]:
        state = self._state
        if state is None:
            return {"status": "loading", "error": self.load_error}
        return {
            "status": "ok",
            "posts": len(state.index.posts),
            "rejected": state.snapshot.rejected,
            "categories": len(state.index.categories),
            "tags": len(state.index.tags),
            "version": state.snapshot.version,
            "last_reload": self.last_reload,
            "watch": self._watcher.mode if self._watcher else "off",
        }

    # --- renderings of the current state (cache.NotFound when there is none) ----------

    def feed(self, key: FeedKey, base: str) -> Rendered:
        return self.cache.feed(self.state(), key, base)

    def delta(self, key: FeedKey, base: str, etags: Sequence[str]) -> Delta | None:
        return self.cache.delta(self.state(), key, base, etags)

    def opml(self, base: str) -> Rendered:
        return self.cache.opml(self.state(), base)

    def page(self, what: tuple[str, ...], page: int, base: str) -> Rendered:
        """An HTML page: ('index',), ('category', name), ('tag', name) or ('post', path)."""
        return self.cache.page(self.state(), what, page, base)
