"""Following the content folder while the service runs: inotify through watchdog, with a
polling fallback. Changes are collected, debounced and handed to one callback on one
thread, so the reload never runs twice at once and requests never wait for it."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# After the first event, wait for this much quiet (at most MAX_DELAY) so that a burst
# (a git checkout, an editor's write-then-rename) becomes one reload.
QUIET = 0.05
MAX_DELAY = 0.5


class Watcher:
    """Calls ``on_paths(paths)`` with changed paths, or ``on_poll()`` every ``interval``
    seconds when inotify is not available. ``on_tick()`` runs at every wake-up."""

    def __init__(
        self,
        root: str,
        interval: float,
        on_paths: Callable[[set[str]], None],
        on_poll: Callable[[], None],
        on_tick: Callable[[], None] = lambda: None,
        use_events: bool = True,
    ) -> None:
        self.root = root
        self.interval = interval
        self.on_paths = on_paths
        self.on_poll = on_poll
        self.on_tick = on_tick
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer: Any = None
        self._thread = threading.Thread(target=self._run, name="feeds-reloader", daemon=True)
        self.mode = "poll"
        if use_events:
            self._start_observer()

    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return

        watcher = self

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                if event.event_type in ("opened", "closed_no_write"):
                    return
                paths = {str(event.src_path)}
                dest = getattr(event, "dest_path", "")
                if dest:
                    paths.add(str(dest))
                watcher.notify(paths)

        try:
            observer = Observer()
            observer.schedule(Handler(), self.root, recursive=True)
            observer.daemon = True
            observer.start()
        except Exception as e:  # inotify limits, odd file systems: fall back to polling
            logger.warning("cannot watch %s for changes (%s); polling every %.1f s",
                           self.root, e, self.interval)
            return
        self._observer = observer
        self.mode = "inotify"

    def notify(self, paths: set[str]) -> None:
        with self._lock:
            self._pending |= paths
        self._wake.set()

    def start(self) -> None:
        self._thread.start()
        logger.info("following changes to %s (%s)", self.root, self.mode)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._observer is not None:
            self._observer.stop()
        if self._thread.is_alive():
            self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stop.is_set():
            woke = self._wake.wait(timeout=self.interval if self.mode == "poll" else 1.0)
            if self._stop.is_set():
                return
            try:
                if woke:
                    self._drain()
                elif self.mode == "poll":
                    self.on_poll()
                self.on_tick()
            except Exception:  # the reloader must outlive any one bad change
                logger.exception("reload failed; serving the previous content")

    def _drain(self) -> None:
        first = time.monotonic()
        while True:
            self._wake.clear()
            if self._wake.wait(QUIET) and time.monotonic() - first < MAX_DELAY:
                continue
            break
        with self._lock:
            paths, self._pending = self._pending, set()
        if paths:
            self.on_paths(paths)
