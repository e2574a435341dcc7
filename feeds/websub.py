"""WebSub publishing: after a content change, tell the hub which feeds changed.

``Publisher.on_change`` is a FeedService listener (called after every content swap). It
works out which feeds changed and queues their canonical URLs in every format (as
``links.feed_urls`` gives them); one daemon thread sends the hub a publish ping per URL
(``hub.mode=publish`` with the URL as both ``hub.topic`` and ``hub.url``), with retries and
exponential back-off. Nothing here runs on a request's path, and the queue is bounded: a
hub that is slow or down is counted (``feeds_websub_pings``) and logged once per failure
burst, but never slows or breaks serving.
"""

from __future__ import annotations

import contextlib
import http.client
import logging
import queue
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import urlencode

from . import links
from .metrics import Metrics
from .model import Format, Kind, Post

if TYPE_CHECKING:
    from .site import State

logger = logging.getLogger(__name__)

FeedLinks = Callable[[Kind, str, str], list[tuple[Format, str]]]
"""(kind, name, base) -> (format, URL) of that feed's formats: links.feed_urls."""

Job = tuple[str, str]
"""(hub URL, topic URL)."""

USER_AGENT = "feeds-websub/1"

ERROR_SNIPPET = 200
"""Most bytes of a hub's error answer quoted in the log (flask-websub says what it missed)."""


@dataclass
class Burst:
    """A run of failed pings to one hub, from the first failure to the next success. It
    is logged twice: when it starts and when the hub takes a ping again, never per feed
    (one edit pings every format of several feeds; a hub down for an hour would otherwise
    fill the log)."""

    started: float  # time.monotonic() of the first failure
    attempts: int = 0  # failed pings (each retry counts)
    given_up: int = 0  # jobs dropped after their last attempt or a refusal


def changed_feeds(old: State, new: State) -> list[tuple[Kind, str]]:
    """(kind, name) of the feeds that differ between two states: the site feed and every
    category and tag of a visible post added, removed or changed; every feed when the
    settings changed (titles, URLs and the like appear in all of them) or what Liquid
    reads did; the feeds of a collection (and of its listed categories) whose documents
    changed."""
    documents = _changed_collections(old, new)
    # A new snapshot with no post changed: _data/ or _includes/ changed, which any body
    # may read (content.ContentStore): every feed, as for the settings.
    if old.settings != new.settings or (
            new.snapshot is not old.snapshot and new.snapshot.changed == frozenset()):
        feeds = {(Kind.SITE, "")}
        for state in (old, new):
            feeds.update((t.kind, t.name) for t in state.index.categories.values())
            feeds.update((t.kind, t.name) for t in state.index.tags.values())
        return sorted(feeds | documents | _changed_collections(old, new, every=True))
    # The indexes, not the snapshots: a post dated in the future changes no feed until it
    # is revealed, and then the snapshot is the same but the index is not.
    before = {p.source: p for p in old.index.posts}
    after = {p.source: p for p in new.index.posts}
    changed: list[Post] = [p for s, p in before.items() if after.get(s) != p]
    changed += [p for s, p in after.items() if before.get(s) != p]
    if not changed:
        return sorted(documents)
    feeds = {(Kind.SITE, "")} | documents
    for post in changed:
        for kind, names in ((Kind.CATEGORY, post.categories), (Kind.TAG, post.tags)):
            for name in names:
                # The name as the index spells it (it matches names case-insensitively).
                term = new.index.term(kind, name) or old.index.term(kind, name)
                feeds.add((kind, term.name if term else name))
    return sorted(feeds)


def _changed_collections(old: State, new: State,
                         every: bool = False) -> set[tuple[Kind, str]]:
    """The feeds of ``feed.collections`` whose documents differ (``every``: all)."""
    feeds: set[tuple[Kind, str]] = set()
    for feed in new.settings.feed_collections:
        label = feed.label
        if label == "posts":
            continue  # the site feed's settings
        if every or old.index.collections.get(label) != new.index.collections.get(label):
            feeds.add((Kind.COLLECTION, label))
            feeds.update((Kind.COLLECTION, f"{label}/{c}") for c in feed.categories)
    return feeds


class Publisher:
    """Sends publish pings from one background thread.

    Jobs wait in a bounded queue, then in a bounded set of pending jobs (a topic queued
    twice is pinged once). A failed ping is retried after a delay that doubles with each
    consecutive failure (``backoff`` .. ``max_backoff``), and the delay holds back every
    job, so a hub that is down sees one request per delay, not one per topic. A job is
    given up after ``attempts`` tries, or at once when the hub rejects it with a 4xx.
    Failures are logged per hub and burst (see :class:`Burst`), not per ping.
    """

    def __init__(self, metrics: Metrics, feed_links: FeedLinks, *, timeout: float = 5.0,
                 attempts: int = 5, backoff: float = 1.0, max_backoff: float = 300.0,
                 max_pending: int = 10_000) -> None:
        self.metrics, self.feed_links = metrics, feed_links
        self.timeout, self.attempts, self.max_pending = timeout, attempts, max_pending
        self.backoff, self.max_backoff = backoff, max_backoff
        self._queue: queue.Queue[Job | None] = queue.Queue(maxsize=max_pending)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned_base = False
        self._warned_full = False
        self._bursts: dict[str, Burst] = {}  # hub -> its failure burst; the worker's only
        self._count_lock = threading.Lock()
        self._outstanding = 0  # jobs submitted and not yet sent, merged or given up
        self._idle = threading.Event()
        self._idle.set()

    # --- the producer side (content-change listener) ----------------------------------

    def on_change(self, old: State | None, new: State) -> None:
        """FeedService listener. The first load is no change: nothing is pinged."""
        hub = new.settings.websub_hub
        if old is None or not hub or new.settings.self_hub:  # 'self': feeds.hub pushes
            return
        base = new.settings.site_base
        if not base:
            if not self._warned_base:
                self._warned_base = True
                logger.warning("websub_hub is set but the site has no absolute URL (set "
                               "url or base_url): the hub is not pinged")
            return
        for kind, name in changed_feeds(old, new):
            if kind is Kind.COLLECTION:  # Atom only, at jekyll-feed's path
                self.submit(hub, base + links.feed_path(kind, name, Format.ATOM, new.settings))
                continue
            for _fmt, url in self.feed_links(kind, name, base):
                self.submit(hub, url)

    def submit(self, hub: str, topic: str) -> bool:
        """Queue one ping without waiting; False (logged, counted) when the queue is full."""
        with self._count_lock:
            self._outstanding += 1
            self._idle.clear()
        try:
            self._queue.put_nowait((hub, topic))
        except queue.Full:
            self._drop(topic)
            self._done()
            return False
        return True

    def _done(self) -> None:
        with self._count_lock:
            self._outstanding -= 1
            if self._outstanding == 0:
                self._idle.set()

    def _drop(self, topic: str) -> None:
        self.metrics.websub_pings.labels("dropped").inc()
        if not self._warned_full:
            self._warned_full = True
            logger.warning("WebSub queue full (%d jobs): not pinging %s and others",
                           self.max_pending, topic)

    # --- lifecycle --------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="feeds-websub", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end and wait for it a little (a ping under way may hold it
        for up to ``timeout``); pings still pending are dropped."""
        self._stopping.set()
        # When the queue is full the thread is not blocked on it, and sees _stopping.
        with contextlib.suppress(queue.Full):
            self._queue.put_nowait(None)
        if self._thread is not None:
            self._thread.join(self.timeout + 1.0)

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def wait_idle(self, timeout: float) -> bool:
        """Whether every job queued so far was sent or given up within ``timeout``
        seconds (tests; a running service never needs it)."""
        return self._idle.wait(timeout)

    # --- the worker thread ------------------------------------------------------------

    def _run(self) -> None:
        pending: dict[Job, int] = {}  # job -> failed attempts; insertion order is FIFO
        retry_at = 0.0
        delay = 0.0
        while not self._stopping.is_set():
            if not self._collect(pending, retry_at):
                return
            if not pending or time.monotonic() < retry_at:
                continue
            job = next(iter(pending))
            failures = pending.pop(job)
            outcome, reason = self._send(*job)
            if outcome == "ok":
                delay = 0.0
                self._recovered(job[0])
                self._done()
                continue
            failures += 1
            gave_up = outcome == "rejected" or failures >= self.attempts
            self._failed(job, reason, len(pending) + 1, gave_up)
            if gave_up:
                self.metrics.websub_pings.labels("failed").inc()
                self._done()
            else:
                pending[job] = failures  # to the back: other topics get their turn
            if outcome == "retry":
                delay = min(self.max_backoff, delay * 2 if delay else self.backoff)
                retry_at = time.monotonic() + delay

    def _failed(self, job: Job, reason: str, pending: int, gave_up: bool) -> None:
        """Count a failed ping in its hub's burst; the first one of a burst is logged."""
        hub, topic = job
        burst = self._bursts.get(hub)
        if burst is None:
            burst = self._bursts[hub] = Burst(time.monotonic())
            logger.warning("WebSub hub %s %s (pinging %s); %d ping(s) pending, retried with "
                           "back-off, logged again when the hub takes one", hub, reason,
                           topic, pending)
        burst.attempts += 1
        burst.given_up += int(gave_up)
        logger.debug("WebSub hub %s: %s for %s%s", hub, reason, topic,
                     " (given up)" if gave_up else "")

    def _recovered(self, hub: str) -> None:
        burst = self._bursts.pop(hub, None)
        if burst is not None:
            logger.info("WebSub hub %s takes pings again after %d failed attempt(s) over "
                           "%.0f s; %d ping(s) were given up", hub, burst.attempts,
                           time.monotonic() - burst.started, burst.given_up)

    def _collect(self, pending: dict[Job, int], retry_at: float) -> bool:
        """Move queued jobs into ``pending``: wait for the first one when there is nothing
        to do, or until ``retry_at`` when the hub is backed off. False on stop."""
        timeout: float | None = None
        if pending:
            timeout = max(0.0, retry_at - time.monotonic())
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return True
        while True:
            if item is None or self._stopping.is_set():
                return False
            if item in pending:
                self._done()  # pinged once for both
            elif len(pending) < self.max_pending:
                pending[item] = 0
            else:
                self._drop(item[1])
                self._done()
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return True

    def _send(self, hub: str, topic: str) -> tuple[str, str]:
        """One ping: 'ok', 'retry' (network trouble, 5xx, 408, 429) or 'rejected' (4xx),
        with what went wrong. The topic goes as hub.topic (the WebSub Recommendation's
        name, which flask-websub requires) and as hub.url (what older hubs read)."""
        data = urlencode({"hub.mode": "publish", "hub.topic": topic,
                          "hub.url": topic}).encode("ascii")
        request = urllib.request.Request(hub, data=data, method="POST", headers={
            "Content-Type": "application/x-www-form-urlencoded",
            "User-Agent": USER_AGENT,
        })
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                status = int(response.status)
            detail = ""
        except urllib.error.HTTPError as e:
            status = e.code
            detail = _error_text(e)
        except (OSError, ValueError, http.client.HTTPException) as e:
            self.metrics.websub_pings.labels("retry").inc()
            return "retry", f"unreachable ({e})"
        if 200 <= status < 300:
            self.metrics.websub_pings.labels("ok").inc()
            logger.debug("WebSub hub %s: published %s (%d)", hub, topic, status)
            return "ok", ""
        if 400 <= status < 500 and status not in (408, 429):
            return "rejected", f"refused the ping with {status}{detail}"
        self.metrics.websub_pings.labels("retry").inc()
        return "retry", f"answered {status}{detail}"


def _error_text(error: urllib.error.HTTPError) -> str:
    """': <the start of the hub's error answer>', or '' when it has none."""
    with error:
        try:
            text = error.read(ERROR_SNIPPET).decode("utf-8", "replace")
        except (OSError, http.client.HTTPException):
            text = ""
    text = " ".join(text.split())
    return f": {text}" if text else ""
