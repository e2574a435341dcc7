"""Following the content folder while the service runs: inotify through watchdog, with a
polling fallback. Changes are collected, debounced and handed to one callback on one
thread, so the reload never runs twice at once and requests never wait for it.

inotify can lose events (its queue overflows in a big git checkout) and cannot follow a
folder that is removed or replaced; so even with events the whole folder is scanned now
and then, and at once when the folder itself changes identity.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

# After the first event, wait for this much quiet (at most MAX_DELAY) so that a burst
# (a git checkout, an editor's write-then-rename) becomes one reload.
QUIET = 0.05
MAX_DELAY = 0.5
# How often the reloader wakes with nothing to do (on_tick, the folder's identity).
TICK = 1.0
# With events, a full scan as a safety net at least this often (or 15 poll intervals),
# and never more than 1% of the time: at 100,000 posts a scan takes about half a second
# of the interpreter's one lock, during which requests wait their turn.
SAFETY_SCAN = 30.0
SAFETY_SHARE = 0.01

Identity = tuple[int, int] | None


class Watcher:
    """Calls ``on_paths(paths)`` with changed paths; ``on_poll()`` (a full scan) every
    ``interval`` seconds when inotify is not available, and now and then even when it is;
    ``on_tick()`` at every wake-up."""

    def __init__(
        self,
        root: str,
        interval: float,
        on_paths: Callable[[set[str]], None],
        on_poll: Callable[[], None],
        on_tick: Callable[[], None] = lambda: None,
        use_events: bool = True,
        safety_interval: float | None = None,
    ) -> None:
        self.root = root
        self.interval = interval
        self.on_paths = on_paths
        self.on_poll = on_poll
        self.on_tick = on_tick
        self.use_events = use_events
        self.safety_interval = (max(SAFETY_SCAN, 15 * interval) if safety_interval is None
                                else safety_interval)
        self._pending: set[str] = set()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer: Any = None
        self._thread = threading.Thread(target=self._run, name="feeds-reloader", daemon=True)
        self.mode = "poll"
        self._identity = self._root_identity()
        self._next_scan = 0.0
        if use_events:
            self._start_observer()
        self._schedule_scan()

    # --- the event source -------------------------------------------------------------

    def _root_identity(self) -> Identity:
        try:
            st = os.stat(self.root)
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _start_observer(self) -> None:
        try:
            from watchdog.events import FileSystemEvent, FileSystemEventHandler
            from watchdog.observers import Observer
        except ImportError:  # pragma: no cover - watchdog is a dependency
            return

        watcher = self
        closes: list[bool] = [False]  # whether the observer reports a write's close

        class Handler(FileSystemEventHandler):
            def on_any_event(self, event: FileSystemEvent) -> None:
                kind = event.event_type
                if kind in ("opened", "closed_no_write"):
                    return
                # A folder's own 'modified' only says its listing changed; the events of
                # the files that changed it come as well.
                if event.is_directory and kind == "modified":
                    return
                # With inotify, every write ends in a 'closed': reading a file at its
                # 'created' or 'modified' would read it half written (and again at the
                # close) when a burst, a git checkout say, is cut into two reloads. A
                # link is created whole, and has no close.
                if closes[0] and not event.is_directory and (
                        kind == "modified" or (kind == "created" and not os.path.islink(
                            os.fsdecode(event.src_path)))):
                    return
                paths = {os.fsdecode(event.src_path)}
                dest = getattr(event, "dest_path", "")
                if dest:
                    paths.add(os.fsdecode(dest))
                watcher.notify(paths)

        try:
            observer = Observer()
            closes[0] = _reports_closes(observer)
            observer.schedule(Handler(), self.root, recursive=True)
            observer.daemon = True
            observer.start()
        except Exception as e:  # inotify limits, odd file systems: fall back to polling
            logger.warning("cannot watch %s for changes (%s); polling every %.1f s",
                           self.root, e, self.interval)
            return
        self._observer = observer
        self.mode = "inotify"

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        self.mode = "poll"
        if observer is not None:
            observer.stop()
            if observer.is_alive() and observer is not threading.current_thread():
                observer.join(timeout=5)

    def _rewatch_if_moved(self) -> bool:
        """When the folder was removed, replaced or came back (or the observer died),
        watch it afresh; True when that happened (and a full scan is due)."""
        identity = self._root_identity()
        observer_died = self._observer is not None and not self._observer.is_alive()
        if identity == self._identity and not observer_died:
            return False
        logger.warning("%s was removed, replaced or came back; reading it again", self.root)
        self._identity = identity
        self._stop_observer()
        if self.use_events and identity is not None:
            self._start_observer()
        return True

    # --- the reloader thread ----------------------------------------------------------

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
        self._stop_observer()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _schedule_scan(self, took: float = 0.0) -> None:
        """When the next full scan is due; ``took``: how long the last one took."""
        every = (self.interval if self.mode == "poll"
                 else max(self.safety_interval, took / SAFETY_SHARE))
        self._next_scan = time.monotonic() + every

    def _run(self) -> None:
        while not self._stop.is_set():
            wait = min(TICK, max(0.0, self._next_scan - time.monotonic()))
            woke = self._wake.wait(timeout=wait)
            if self._stop.is_set():
                return
            try:
                self._step(woke)
            except Exception:  # the reloader must outlive any one bad change
                logger.exception("reload failed; serving the previous content")

    def _step(self, woke: bool) -> None:
        if woke:
            self._drain()
        if self._rewatch_if_moved() or time.monotonic() >= self._next_scan:
            with self._lock:
                self._pending.clear()  # the scan sees whatever they said
            started = time.monotonic()
            try:
                self.on_poll()
            finally:
                self._schedule_scan(time.monotonic() - started)
        self.on_tick()

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


def _reports_closes(observer: Any) -> bool:
    """Whether ``observer`` reports a file's close after writing (inotify does; macOS's
    FSEvents and Windows' ReadDirectoryChangesW do not)."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        return False
    return isinstance(observer, InotifyObserver)
