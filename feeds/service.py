"""The life of one content folder as the service serves it: the first load (now, or on a
thread while the server answers 503), following changes (the watcher), building each new
site index and swapping it in as one State with its content version and Last-Modified,
revealing posts dated in the future when they come due (a timer), health, and the
listeners told of each swap (the WebSub publisher), once it is being served. What is
rendered from a state, and kept, is ``cache``'s; ``feed``, ``page``, ``opml`` and
``delta`` here answer for the current state."""

from __future__ import annotations

import contextlib
import gc
import logging
import threading
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from . import links
from .cache import FeedCache
from .config import Settings
from .content import ContentStore
from .liquid_state import liquid_site_of
from .metrics import Metrics
from .model import FeedKey, Post
from .parse import (
    LiquidSite,
    PostError,
    hold_background,
    rendering,
    wait_quiet,
    warm_engine,
    warm_up,
)
from .rendered import Delta, Rendered, last_modified
from .site import SiteIndex, State
from .snapshot import Snapshot, gc_paused
from .watch import Watcher

logger = logging.getLogger(__name__)


REVEAL_WAIT_MAX = 86400.0
"""The longest the timer that reveals a future post waits before it looks again."""


INDEX_STOP_WAIT = 10.0
"""At a stop, the longest wait for the persisted index's write (the socket is closed)."""


class NotReady(Exception):
    """The first load has not finished."""


class FeedService:
    """Content, index and renderings of one content folder."""

    def __init__(self, settings: Settings, metrics: Metrics | None = None,
                 store: ContentStore | None = None) -> None:
        self.metrics = metrics or Metrics()
        self.store = store or ContentStore(settings)
        self.cache = FeedCache(settings, self.metrics, self.read_body,
                               on_body_failure=lambda post: self.store.recheck(post.source),
                               liquid_site=self.liquid_site)
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
        self._reveal_timer: threading.Timer | None = None
        self._stopped = False
        self._warm_first = False
        self._first: State | None = None  # the first load's state, until it is kept
        self._no_timer = False
        self._install_lock = threading.RLock()
        """One swap at a time: the watcher's, and a post coming due (timer or request)."""

    @property
    def settings(self) -> Settings:
        state = self._state
        return state.settings if state else self.store.settings

    def read_body(self, post: Post) -> str:
        """A post's body text, read from its file now through the one disk reader (never
        blocks; PostError when the file is not the one indexed)."""
        return self.store.read_body(post)

    def liquid_site(self) -> LiquidSite | None:
        """What post bodies' Liquid sees of the current state (see liquid_state). Made
        when a body first needs it, once per state."""
        state = self._state
        if state is None:
            return None
        made = self._liquid
        if made is not None and made[0] is state:
            return made[1]
        site = liquid_site_of(state, self.cache.bodies, self.read_body)
        self._liquid = (state, site)
        return site

    # --- loading and following changes ------------------------------------------------

    def load(self, warm: bool = False) -> None:
        """The first load, in the calling thread; with ``warm`` (a server), the newest
        posts' code lexers are made ready before the first state is published (see
        _warm_newest), and what the load made is kept out of the collector's walks."""
        started = time.monotonic()
        with gc_paused():  # until the index is made too (and, with warm, all frozen)
            try:
                snapshot = self.store.load()
            except Exception as e:
                self.load_error = str(e)
                logger.exception("cannot load %s", self.store.root)
                raise
            self._warm_first = warm
            self._install(snapshot, time.monotonic() - started)
            self._first = self._state
            if warm:
                # The posts hold no cycles (a load of 10,000 leaves 5 objects of cyclic
                # garbage) and live on: frozen before the collector runs again, no
                # collection walks them, neither the three that followed the load at
                # once (0.3 s at 100,000 posts, before the first answer) nor each full
                # one later, on whichever thread allocated at the time (a reader's).
                gc.freeze()
        if warm:
            hold_background()
        self.ready.set()

    def _warm_newest(self, state: State) -> None:
        """Compile the lexers named by the code blocks of the site feed's first page:
        its bodies are what a server's first reader renders, and a lexer's first use
        (5-85 ms each) was most of that first feed's time. Their bodies stay unrendered."""
        texts = []
        for post in state.index.posts[:state.settings.posts_limit]:
            with contextlib.suppress(PostError):
                texts.append(self.read_body(post))
        self.cache.bodies.warm(texts)

    def start(self, background: bool = False, watch: bool | None = None) -> None:
        """Load (now, or on a thread while the server already answers 503) and then
        follow changes when ``watch`` (default: the ``watch`` setting)."""
        watch = self.store.settings.watch if watch is None else watch
        if watch:
            # Events are collected from before the first load, and a full scan follows
            # it: a change made while the folder is read is never lost (issue 15).
            self._watcher = self._make_watcher(busy=rendering if background else None)

        def run() -> None:
            if background:  # every first feed needs the Markdown engine: imported first
                warm_engine()
            self.load(warm=background)
            if self._watcher is not None:
                self._watcher.start()
            if background:  # a server: its first readers need not wait for the imports
                warm_up()
                wait_quiet()  # nor share the processor with the index's write
            # Once served and followed: neither the first answers nor the watcher wait
            # for it (a row the watcher writes meanwhile is keyed by its own stamp).
            self.store.save_index()
            first, self._first = self._first, None
            if first is not None:  # and the load's outcome, for the next start
                self.store.states.keep(first.snapshot, first.index)

        if background:
            threading.Thread(target=run, name="feeds-loader", daemon=True).start()
        else:
            run()

    def _make_watcher(self, busy: Callable[[], bool] | None = None) -> Watcher:
        """``busy``: while readers' bodies render, the first full scan waits (a server)."""
        return Watcher(
            str(self.store.root), self.settings.reload_interval,
            on_paths=lambda paths: self._reload(self.store.apply, paths),
            on_poll=lambda: self._reload(lambda _: self.store.rescan(
                settle=True, between=self._watcher.meanwhile if self._watcher else None), set()),
            on_tick=self._tick,
            on_undo=lambda: self._reload(self._put_back, set()),
            busy=busy or (lambda: False),
            look=self.store.look, scanned=lambda: self.store.scan_look,
        )

    def _put_back(self, _paths: set[str]) -> Snapshot | None:
        """The files just forgotten put back (see removals); nothing to install when what
        is served holds them still (a full scan forgot them, its snapshot held back)."""
        snapshot, state = self.store.undo_removals(), self._state
        if snapshot is None or state is None:
            return snapshot
        served = state.snapshot
        return None if (snapshot.posts, snapshot.problems, snapshot.skipped) == (
            served.posts, served.problems, served.skipped) else snapshot

    def _tick(self) -> None:
        """At each wake of the reloader: files due to be read again, posts come due."""
        due = self.store.due()
        if due:
            self._reload(self.store.apply, due)
        self.reveal_due_posts()

    def reload(self) -> None:
        """Read the content and ``_config.yml`` again (SIGHUP), on the reloader thread
        when there is one, so the caller (the server's loop) never waits for it."""
        self.store.config.stamp = None  # read again even if it looks the same
        if self._watcher is not None:
            self._watcher.scan_now()
        else:
            threading.Thread(target=self.refresh, name="feeds-reload", daemon=True).start()

    def stop(self) -> None:
        if self._watcher is not None:
            self._watcher.stop()
        if self.ready.is_set():  # what the index lacks, not lost with the process
            self.store.save_index(wait=INDEX_STOP_WAIT)
        with self._install_lock:
            self._stopped = True
            self._schedule_reveal(None)
        for stopper in self.stoppers:
            stopper()

    def _reload(self, step: Callable[[set[str]], Snapshot | None], paths: set[str]) -> None:
        started = time.monotonic()
        snapshot = step(paths)
        if snapshot is not None:
            self._install(snapshot, time.monotonic() - started)
            self.store.save_index()

    def refresh(self) -> None:
        """Poll once, now, as the watcher's polling does (tests: no wait for the watcher)."""
        self._reload(lambda _: self.store.rescan(), set())

    def _install(self, snapshot: Snapshot, seconds: float) -> None:
        with self._install_lock:
            self._swap(snapshot, seconds)

    def _swap(self, snapshot: Snapshot, seconds: float) -> None:
        old = self._state
        if old is not None and snapshot.version < old.snapshot.version:
            return  # a slower reload (SIGHUP's, say) finished after a newer one
        kept = self.store.states.index_of(snapshot)  # (a whole load taken from its state)
        index = kept if isinstance(kept, SiteIndex) else self._next_index(old, snapshot)
        if kept is not None:
            index.report()
        new = State(snapshot, index, version=old.version + 1 if old else 1,
                    modified=last_modified(snapshot, index, old.modified if old else None))
        if old is None and self._warm_first:  # (load freezes it all after, unwalked)
            self._warm_newest(new)  # before any reader can see it
        self._state = new  # one reference swap: readers see the old state or the new
        self._schedule_reveal(index.next_reveal)
        self.last_reload = {
            "time": datetime.now(UTC).isoformat(timespec="seconds"),
            "seconds": round(seconds, 4),
            "version": new.version,
        }
        self.metrics.reloads.inc()
        self.metrics.reload_seconds.observe(seconds)
        self.metrics.posts.set(len(index.posts))
        self.metrics.rejected.set(snapshot.rejected)
        self.cache.forget_failures(snapshot)
        if old is not None:
            logger.info("content version %d: %d posts, %d rejected (%.3f s)",
                        new.version, len(index.posts), snapshot.rejected, seconds)
        # Told after the swap: whatever a listener fetches now is the new bytes.
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
        with gc_paused():  # as for the load: a whole index is a bulk of objects that live on
            return SiteIndex(snapshot.posts.values(), future=snapshot.settings.future,
                             reserved=links.reserved)

    def _schedule_reveal(self, when: float | None) -> None:
        """A post dated in the future is revealed at its date (by a timer, so it needs
        neither a request nor the watcher), or by the first request after it."""
        self._reveal_at = when
        if self._reveal_timer is not None:
            self._reveal_timer.cancel()
            self._reveal_timer = None
        if when is not None and not self._stopped and not self._no_timer:
            # A little late rather than early: SiteIndex shows posts dated up to now. At
            # most a day at a time (a wait has a bound; a post may be dated in 3000).
            delay = min(max(0.0, when - time.time()) + 0.02, REVEAL_WAIT_MAX)
            self._reveal_timer = threading.Timer(delay, self._on_reveal_timer)
            self._reveal_timer.daemon = True
            self._reveal_timer.start()

    def without_timer(self) -> None:
        """No reveal timer from now on: the process stays one thread (``feeds build``
        may fork). A post that comes due is still revealed, by the next request."""
        with self._install_lock:
            self._no_timer = True
            timer, self._reveal_timer = self._reveal_timer, None
        if timer is not None:
            timer.cancel()
            timer.join(5)

    def _on_reveal_timer(self) -> None:
        with self._install_lock:
            if self._reveal_at is not None and time.time() < self._reveal_at:
                self._schedule_reveal(self._reveal_at)  # woken early: wait on
                return
        self.reveal_due_posts()

    def reveal_due_posts(self) -> None:
        """Rebuild the index when a post dated in the future has come due: a new content
        version, so every cached feed and page (and the replay's copy) is made again."""
        with self._install_lock:
            reveal = self._reveal_at
            state = self._state
            if reveal is not None and state is not None and time.time() >= reveal:
                self._swap(state.snapshot, 0.0)

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
        return state.version

    def problems(self) -> dict[str, str]:
        """What is wrong while the last good content is served: the folder missing or
        emptied, ``_config.yml`` unusable, bodies that cannot be read, the watcher
        stopped. Empty when all is well."""
        watcher = self._watcher
        found = {"content": self.store.held or (watcher.settling() if watcher else None),
                 "config": self.store.config.problem,
                 "bodies": self.cache.body_failures(),
                 "watch": watcher.stalled() if watcher else None}
        return {what: why for what, why in found.items() if why}

    def health(self) -> dict[str, Any]:
        state = self._state
        if state is None:
            return {"status": "loading", "error": self.load_error}
        problems = self.problems()
        return {
            "status": "degraded" if problems else "ok",
            "problems": problems,
            "posts": len(state.index.posts),
            "rejected": state.snapshot.rejected,
            "categories": len(state.index.categories),
            "tags": len(state.index.tags),
            "version": state.version,
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
