"""Following the content folder while the service runs: inotify through watchdog, with a
polling fallback. Changes are collected, debounced and handed to one callback on one
thread, so the reload never runs twice at once and requests never wait for it.

inotify can lose events (its queue overflows in a big git checkout) and cannot follow a
folder that is removed or replaced; so even with events the whole folder is scanned now
and then (at most SAFETY_SCAN apart), and at once when the folder itself changes
identity. The folder is followed by what it resolves to: a ``--content`` that is a link
(``ln -sfn other site``) is watched at its target, and watched afresh when it is
pointed elsewhere.

The observer can be started before the first load (``observe``), so that a change made
while the folder is read is not lost: its paths wait until the reloader runs.

A folder removed and made again (``rm -rf site; cp -r backup site``) is noticed even when
the new folder gets the old one's inode number, as it often does: by the folder's own
deletion event, and by the observer's emitter ending with it. Its new content is taken
in only once it has settled (the same files, by count and total size, for ROOT_QUIET,
or ROOT_QUIET_FEWER while it holds fewer files than at the last scan: a copy paused;
as soon as two looks find the last scan's count and bytes again: a copy back is done;
at most ROOT_SETTLE_MAX after it went): until then the last content is served, and
health says why. A burst of events that removes files is followed to its end (at most
REMOVALS_MAX), so a slow ``rm -rf`` is one change, not a folder half gone. What each
event says (and when a file written but never closed is read) is ``events``'s.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from typing import Any

from .events import OpenWrites, as_given, kind, observe
from .scan import Look, folder_look, litter

logger = logging.getLogger(__name__)

# After the first event, wait for this much quiet (at most MAX_DELAY) so that a burst
# (a git checkout, an editor's write-then-rename) becomes one reload.
QUIET = 0.05
MAX_DELAY = 0.5
# A burst that removed files (an rm -rf, which a busy machine pauses now and then) waits
# for this much quiet, at most REMOVALS_MAX: half a folder gone is not a state to serve.
REMOVALS_QUIET = 0.3
REMOVALS_MAX = 3.0
MASS_REMOVAL = 20
"""A burst that removed this many files (or half the folder's, at least 10) waits for
the folder to settle, as a folder replaced does."""
# A folder removed or replaced: looked at every ROOT_LOOK seconds (or four times as long
# as a look takes) until its files have stayed the same for ROOT_QUIET (a copy into it
# has finished), at most ROOT_SETTLE_MAX.
ROOT_LOOK = 0.1
ROOT_QUIET = 0.5
ROOT_QUIET_FEWER = 2.0
"""The quiet asked for while the folder holds fewer files than it did (a copy paused)."""
ROOT_SETTLE_MAX = 10.0
# How often the reloader wakes with nothing to do (on_tick, the folder's identity).
TICK = 1.0
# With events, a full scan as a safety net this often, spaced to take at most 1% of the
# time (at 100,000 posts a scan takes about half a second of the interpreter's one lock,
# during which requests wait their turn), but never further apart than SAFETY_SCAN: a
# change the events missed waits for it.
SAFETY_SCAN = 10.0
SAFETY_SHARE = 0.01
# The first full scan, right after the load, waits while readers' bodies render: looked at
# this often, for at most this long.
FIRST_SCAN_LOOK = 0.02
FIRST_SCAN_WAIT = 1.0
# The reloader counts as stalled (health: degraded) when it has not woken for this long.
STALL = 60.0

Identity = tuple[str, int, int] | None


def _alive(observer: Any) -> bool:
    """Whether the observer and its emitter still run (the emitter ends when the folder
    it watches is deleted, though the observer's thread goes on)."""
    return bool(observer.is_alive()) and all(e.is_alive() for e in list(observer.emitters))


class Watcher:
    """Calls ``on_paths(paths)`` with changed paths; ``on_poll()`` (a full scan) every
    ``interval`` seconds when inotify is not available, and now and then even when it is;
    ``on_tick()`` at every wake-up; ``on_undo()`` when the folder itself goes (or many
    files at once): files removed just before were the start of that, to be put back
    (see removals). ``look()`` is the folder's look (scan.folder_look) as settling
    compares it; ``scanned()`` the look the full scan just made took on its way, (look,)
    (None: it made none, and look() is asked)."""

    def __init__(
        self,
        root: str,
        interval: float,
        on_paths: Callable[[set[str]], None],
        on_poll: Callable[[], None],
        on_tick: Callable[[], None] = lambda: None,
        use_events: bool = True,
        safety_interval: float | None = None,
        on_undo: Callable[[], None] = lambda: None,
        busy: Callable[[], bool] = lambda: False,
        look: Callable[[], Look] | None = None,
        scanned: Callable[[], tuple[Look] | None] = lambda: None,
    ) -> None:
        self.root = root
        self.look = look or (lambda: folder_look(root))
        self.scanned = scanned
        self.interval = interval
        self.on_paths = on_paths
        self.on_poll = on_poll
        self.on_tick = on_tick
        self.on_undo = on_undo
        self.busy = busy
        """True while readers' renders are running: the first full scan waits for a
        moment without them (at most FIRST_SCAN_WAIT)."""
        self._first_scan_by: float | None = None
        self.use_events = use_events
        self.safety_interval = SAFETY_SCAN if safety_interval is None else safety_interval
        self._pending: set[str] = set()
        self._last_event = 0.0
        self.last_wake = time.monotonic()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._observer: Any = None
        self._thread = threading.Thread(target=self._run, name="feeds-reloader", daemon=True)
        self.mode = "poll"
        self._identity = self._root_identity()
        self._next_scan = 0.0
        self._scan_asked = False  # by scan_now: kept through a scan that is running
        self._observing = False
        self._lost = False
        """Set by the observer when the folder itself is deleted or moved away."""
        self._open_writes = OpenWrites()  # written, not closed: read once quiet
        self._settling: float | None = None
        """Since when (monotonic) the folder was removed or replaced, until it settles."""
        self._look: tuple[tuple[int, int] | None, float] | None = None
        self._look_every = ROOT_LOOK
        self._baseline: tuple[int, int] | None = None  # the folder's look at the last scan
        self.observe()

    def observe(self) -> None:
        """Start collecting events (done at once: they wait for start())."""
        if self.use_events and not self._observing:
            self._observing = True
            self._start_observer()

    # --- the event source -------------------------------------------------------------

    def _root_identity(self) -> Identity:
        """What the folder resolves to: its real path, device and inode."""
        try:
            real = os.path.realpath(self.root)
            st = os.stat(real)
        except (OSError, ValueError):
            return None
        return real, st.st_dev, st.st_ino

    def _start_observer(self) -> None:
        watched = self._identity[0] if self._identity else self.root
        try:
            observer = observe(watched, lambda paths: self.notify(
                {as_given(self.root, self._identity, p) for p in paths}),
                self._on_lost, self._open_writes)
        except Exception as e:  # inotify limits, odd file systems: fall back to polling
            logger.warning("cannot watch %s for changes (%s); polling every %.1f s",
                           self.root, e, self.interval)
            return
        self._observer = observer
        self.mode = kind(observer)

    def _on_lost(self) -> None:
        self._lost = True  # the folder itself: its watch ends here
        self._wake.set()

    def _stop_observer(self) -> None:
        observer, self._observer = self._observer, None
        self.mode = "poll"
        if observer is not None:
            observer.stop()
            if observer.is_alive() and observer is not threading.current_thread():
                observer.join(timeout=5)

    def _moved(self) -> bool:
        """Whether the folder was removed, replaced or came back (or the observer died)."""
        observer = self._observer
        return (self._lost or (observer is not None and not _alive(observer))
                or self._root_identity() != self._identity)

    def _begin_settling(self) -> None:
        self.on_undo()  # first, so that health says settling of a last content made whole
        logger.warning("%s was removed, replaced or came back; serving its last content "
                       "until it settles", self.root)
        self._lost = False
        self._stop_observer()
        self._settling = time.monotonic()
        self._look = None

    def settling(self) -> str | None:
        """For health: why the folder's content is not being taken in, or None."""
        if self._settling is None:
            return None
        if self._look is not None and self._look[0] is None:
            return "the content folder is missing; serving the last content it had"
        return "the content folder is being replaced or emptied; serving its last content " \
               "until it settles"

    def _settled(self) -> bool:
        """Whether the folder being replaced has settled (or waited for long enough)."""
        assert self._settling is not None
        started = time.monotonic()
        look = self.look()
        now = time.monotonic()
        self._look_every = max(ROOT_LOOK, 4 * (now - started))  # a big folder: < 20%
        if self._look is None or self._look[0] != look:
            self._look = (look, now)
        if now - self._settling >= ROOT_SETTLE_MAX:
            return True
        if look is not None and look == self._baseline and now - self._look[1] >= ROOT_LOOK:
            return True  # the very files (by count and bytes) the last scan saw: copied back
        whole = self._baseline is None or (look is not None and look[0] >= self._baseline[0])
        quiet = ROOT_QUIET if whole else ROOT_QUIET_FEWER
        return look is not None and now - self._look[1] >= quiet

    def _rewatch(self) -> None:
        """Watch the folder afresh, as it is now (a full scan follows)."""
        self._settling = None
        self._lost = False
        self._identity = self._root_identity()
        self._stop_observer()
        if self._observing and self._identity is not None:
            self._start_observer()

    # --- the reloader thread ----------------------------------------------------------

    def notify(self, paths: set[str]) -> None:
        with self._lock:
            self._pending |= paths
            self._last_event = time.monotonic()
        self._wake.set()

    def meanwhile(self) -> None:
        """A full scan's ``between`` (scan.survey): a burst of events that is over goes on
        now, not after the scan (~1 s at 100,000 posts); one that removed files, or a
        folder settling, waits for its end (_drain's rules for a mass removal)."""
        if (self._settling is not None or not self._wake.is_set() or self._moved()
                or time.monotonic() - self._last_event < QUIET or self._removed(1)):
            return
        self._wake.clear()  # (an event from here on wakes the reloader again)
        with self._lock:
            paths, self._pending = self._pending, set()
        if paths:
            self.on_paths(paths)

    def start(self, scan: bool = True) -> None:
        """Run the reloader: the events collected so far first, then (with ``scan``) a
        full scan at once, for what changed before the observer was watching."""
        self.observe()
        if scan:
            self._next_scan = 0.0
            self._first_scan_by = time.monotonic() + FIRST_SCAN_WAIT
        else:
            self._schedule_scan()
        self._thread.start()
        logger.info("following changes to %s (%s)", self.root, self.mode)

    def scan_now(self) -> None:
        """A full scan at the reloader's next turn (SIGHUP); asked during a scan, one more
        follows it (the running one may have walked past the change that asked)."""
        self._scan_asked = True
        self._wake.set()

    def stalled(self) -> str | None:
        """Why the watcher is not delivering changes, or None when it is."""
        if self._stop.is_set():
            return "stopped"
        if self._thread.ident is None:
            return None  # not started yet: the first load has just been installed
        if not self._thread.is_alive():
            return "the reloader thread is not running"
        quiet = time.monotonic() - self.last_wake
        if quiet > STALL:
            return f"the reloader has not woken for {quiet:.0f} s"
        return None

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        self._stop_observer()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)

    def _schedule_scan(self, took: float = 0.0) -> None:
        """When the next full scan is due; ``took``: how long the last one took."""
        every = (self.interval if self.mode == "poll"
                 else min(SAFETY_SCAN, max(self.safety_interval, took / SAFETY_SHARE)))
        self._next_scan = time.monotonic() + every

    def _run(self) -> None:
        while not self._stop.is_set():
            tick = TICK if self._settling is None else self._look_every
            wait = min(tick, max(0.0, self._next_scan - time.monotonic()))
            woke = self._wake.wait(timeout=wait)
            self.last_wake = time.monotonic()
            if self._stop.is_set():
                return
            try:
                self._step(woke)
            except Exception:  # the reloader must outlive any one bad change
                logger.exception("reload failed; serving the previous content")

    def _step(self, woke: bool) -> None:
        if self._settling is None and self._moved():
            self._begin_settling()
        if self._settling is not None:
            with self._lock:
                self._pending.clear()  # the scan after it settles sees what they said
            self._open_writes.clear()
            self._wake.clear()
            if not self._settled():
                return  # nothing taken in (due files, posts come due) meanwhile
            logger.warning("%s settled after %.1f s; reading it again", self.root,
                           time.monotonic() - self._settling)
            self._rewatch()
            self._next_scan = 0.0
        elif woke and self._drain():
            return  # the burst ended with the folder itself gone: settle first
        unclosed = self._open_writes.due()  # (cleared while settling: the scan reads them)
        if unclosed:
            self.on_paths({as_given(self.root, self._identity, path) for path in unclosed})
        due = self._scan_asked or time.monotonic() >= self._next_scan
        if due and not self._first_scan_waits():
            self._scan_asked = False
            with self._lock:
                self._pending.clear()  # the scan sees whatever they said
            started = time.monotonic()
            try:
                self.on_poll()
                took = self.scanned()  # what a copy back should reach
                self._baseline = took[0] if took is not None else self.look()
            finally:
                self._schedule_scan(time.monotonic() - started)
        self.on_tick()

    def _first_scan_waits(self) -> bool:
        """The first full scan comes right after the load, when a server's first
        readers render their feeds: it waits for a moment without renders (its stat of
        every file, holding the GIL, took half the processor from them), at most
        FIRST_SCAN_WAIT. Events are handled meanwhile."""
        by = self._first_scan_by
        if by is None:
            return False
        if self.busy() and time.monotonic() < by:
            self._next_scan = time.monotonic() + FIRST_SCAN_LOOK
            return True
        self._first_scan_by = None
        return False

    def _drain(self) -> bool:
        """Hand the paths of a burst of events on; True (and nothing handed on) when the
        folder itself went meanwhile."""
        first = time.monotonic()
        quiet, longest = QUIET, MAX_DELAY
        while not self._lost:
            self._wake.clear()
            if self._wake.wait(quiet) and time.monotonic() - first < longest:
                continue
            if quiet == QUIET and self._removed(1):
                quiet, longest = REMOVALS_QUIET, REMOVALS_MAX  # wait for the rm's end
                continue
            break
        # Many files gone at once (an rm -rf that paused, a swap under way): served only
        # once the folder has settled, as a replaced one is.
        baseline = self._baseline[0] if self._baseline else 0
        mass = self._removed(max(MASS_REMOVAL // 2, min(MASS_REMOVAL, baseline // 2)))
        with self._lock:
            paths, self._pending = self._pending, set()
        if mass or self._moved():
            self._begin_settling()
            return True
        if paths:
            self.on_paths(paths)
        return False

    def _removed(self, at_least: int) -> bool:
        """Whether the burst so far removed ``at_least`` files (their paths are gone),
        not counting an editor's litter (a temporary file renamed over a post)."""
        with self._lock:
            paths = list(self._pending)
        gone = 0
        for path in paths:
            gone += not litter(os.path.basename(path)) and not os.path.lexists(path)
            if gone >= at_least:
                return True
        return False

