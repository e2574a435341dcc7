"""What watchdog's events say about the content folder: the paths a change touched, the
folder itself gone, and the files written but not closed yet.

With inotify every write ends in a close, and a file is read at its close, not at its
'created' or 'modified' (it would be read half written, and again at the close). A
writer that keeps its file open (a script appending with flushes, a tool that holds its
output open) has no close to wait for: such a file is handed on once its writes have
been quiet for SETTLE, as a full scan reads a file it finds just written, instead of
waiting for the next full scan (watch.SAFETY_SCAN). A writer that pauses for less than
that half-way is not read half written.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .settle import SETTLE

OPEN_MAX_FILES = 10_000
"""At most this many open files are followed; beyond, the full scan finds the rest."""


class OpenWrites:
    """Files written and not closed since, by path: when last written (monotonic).
    Thread-safe: the observer's thread tells, the reloader asks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._files: dict[str, float] = {}

    def wrote(self, path: str) -> None:
        with self._lock:
            if path in self._files or len(self._files) < OPEN_MAX_FILES:
                self._files[path] = time.monotonic()

    def closed(self, path: str) -> None:
        with self._lock:
            self._files.pop(path, None)

    def clear(self) -> None:
        with self._lock:
            self._files.clear()

    def due(self) -> set[str]:
        """The files to read now (each handed out once: a write after it asks again)."""
        now = time.monotonic()
        with self._lock:
            due = {path for path, last in self._files.items() if now - last >= SETTLE}
            for path in due:
                del self._files[path]
        return due


def observe(watched: str, on_paths: Callable[[set[str]], None], on_lost: Callable[[], None],
            open_writes: OpenWrites) -> Any:
    """watchdog's observer of ``watched`` (a real path), started: ``on_paths`` is told
    the paths each event touched, ``on_lost`` that the folder itself was deleted or
    moved away (its watch ends there). Raises what watchdog raises (inotify's limits)."""
    from watchdog import events as ev
    from watchdog.events import FileSystemEvent, FileSystemEventHandler
    from watchdog.observers import Observer

    # Not opens nor closes without a write: every file a load reads gave two of them,
    # each made into objects on watchdog's threads, which took the load's processor
    # (a 10k-post start 1.5x as long). Asking for what is used keeps them in the kernel.
    wanted: list[type[FileSystemEvent]] = [
        ev.FileCreatedEvent, ev.DirCreatedEvent, ev.FileModifiedEvent, ev.DirModifiedEvent,
        ev.FileDeletedEvent, ev.DirDeletedEvent, ev.FileMovedEvent, ev.DirMovedEvent,
        ev.FileClosedEvent]

    closes: list[bool] = [False]  # whether the observer reports a write's close

    class Handler(FileSystemEventHandler):
        def on_any_event(self, event: FileSystemEvent) -> None:
            kind = event.event_type  # (never an open nor a no-write close: see wanted)
            # A folder's own 'modified' only says its listing changed; the events of
            # the files that changed it come as well.
            if event.is_directory and kind == "modified":
                return
            src = os.fsdecode(event.src_path)
            if event.is_directory and kind in ("deleted", "moved") and src == watched:
                on_lost()
                return
            # A file is read at its close (see the module's docstring); a link is
            # created whole, and has no close. A file moved in from outside the folder
            # has no close either: with 'full events' it comes as a move from '' (and
            # one moved out, to '').
            if closes[0] and not event.is_directory and (
                    kind == "modified" or (kind == "created" and not os.path.islink(src))):
                if kind == "modified":
                    open_writes.wrote(src)
                return
            if kind == "closed":
                open_writes.closed(src)
            ends = (src, os.fsdecode(getattr(event, "dest_path", "")))
            on_paths({path for path in ends if path})

    observer = _observer(Observer)
    closes[0] = _reports_closes(observer)
    observer.schedule(Handler(), watched, recursive=True, event_filter=wanted)
    observer.daemon = True
    observer.start()
    return observer


def kind(observer: Any) -> str:
    """What health calls an observer: 'inotify', else watchdog's name for it ('polling'
    where it falls back to listing the folder, 'fsevents', 'kqueue', ...)."""
    if _reports_closes(observer):
        return "inotify"
    return type(observer).__name__.removesuffix("Observer").lower() or "events"


def _observer(make: Any) -> Any:
    """watchdog's observer; inotify's with 'full events', so that a file moved in from
    outside the folder (no close follows it) is told from one being created."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        return make()
    return InotifyObserver(generate_full_events=True) if make is InotifyObserver else make()


def _reports_closes(observer: Any) -> bool:
    """Whether ``observer`` reports a file's close after writing (inotify does; macOS's
    FSEvents and Windows' ReadDirectoryChangesW do not)."""
    try:
        from watchdog.observers.inotify import InotifyObserver
    except ImportError:  # not Linux
        return False
    return isinstance(observer, InotifyObserver)


def as_given(root: str, identity: tuple[str, int, int] | None, path: str) -> str:
    """A path the observer reported (below the folder's real path, ``identity[0]``) as a
    path below the folder as it was named, ``root``, which is how the store knows it."""
    if identity is not None:
        real = os.path.join(identity[0], "")
        if path.startswith(real):
            return os.path.join(root, path[len(real):])
        if path == identity[0]:
            return root
    return path
