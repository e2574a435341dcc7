"""The built-in WebSub hub (``websub_hub: self``): the hub side of the W3C WebSub
Recommendation for the service's own feeds.

- ``POST <base>/websub`` takes subscription and unsubscription requests (``hubweb``),
  answers 202 and leaves the rest to a small worker pool (``hubwork``): verification of
  intent (a GET to the callback, which must echo ``hub.challenge``), or a denial when the
  topic is not one of the service's feeds.
- Leases: ``hub.lease_seconds`` within [1, ``websub_max_lease_seconds``], else
  ``websub_lease_seconds``; a renewal is a new subscription request; an ended lease
  removes the subscription (``hubstore``, SQLite).
- Distribution: a FeedService listener, called after the new content is being served,
  finds the feeds that changed; for each topic whose bytes moved, every subscriber gets a
  POST of the new body with its Content-Type, ``Link: <hub>; rel="hub", <topic>;
  rel="self"``, and ``X-Hub-Signature: sha256=...`` when it gave a secret. A failing
  callback is retried with back-off; one log line per burst of failures.
- Callbacks are called through ``hubnet``: no private addresses, one deadline per call.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import logging
import math
import secrets
import threading
import time
from typing import TYPE_CHECKING

from prometheus_client import Counter, Gauge

from .cache import NotFound
from .hubnet import (
    CallbackError,
    Caller,
    Feed,
    Intent,
    Refused,
    Reply,
    Resolver,
    Target,
    parse_callback,
    system_resolver,
)
from .hubstore import HubStore, StoreError, Subscription
from .hubwork import Pool, Task
from .model import FeedKey, Kind
from .rendered import Rendered
from .service import NotReady
from .site import normalize_name
from .websub import changed_feeds

if TYPE_CHECKING:
    from .service import FeedService
    from .site import State

logger = logging.getLogger(__name__)

HUB_PATH = "/websub"
WORKERS = 8
"""Threads that verify and deliver: each call waits on the network, not the CPU."""
TIMEOUT = 10.0
"""Seconds one call to a callback may take, all told."""
MAX_VERIFYING = 1_000
"""Subscription requests waiting for their verification at most."""
RETRY_FIRST = 5.0
RETRY_FACTOR = 3.0
ATTEMPTS = 8
"""Deliveries to a failing callback: after 5 s, 15 s, 45 s ... about 1.5 h in all."""
QUIET = 300.0
"""Seconds without a failure that end a burst of them (one log line per burst)."""


Changed = frozenset[tuple[Kind, str]]
"""(kind, case-folded name) of the feeds that changed."""


class HubError(Exception):
    """A request the hub cannot take: the HTTP status and a reason for the subscriber."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def _fold(name: str) -> str:
    return normalize_name(name).casefold()


class Hub:
    def __init__(self, svc: FeedService, *, workers: int = WORKERS, timeout: float = TIMEOUT,
                 resolver: Resolver = system_resolver) -> None:
        settings = svc.settings
        self.svc = svc
        self.store = HubStore(settings.state_dir)
        self.caller = Caller(timeout, resolver)
        self.pool = Pool(workers, settings.websub_max_subscriptions + MAX_VERIFYING + 16)
        self.retry_first, self.retry_factor, self.attempts = RETRY_FIRST, RETRY_FACTOR, ATTEMPTS
        self._lock = threading.Lock()
        """Verification's and distribution's updates of one topic, one at a time."""
        self._last_failure = -math.inf
        self._log_lock = threading.Lock()
        registry = svc.metrics.registry
        self.verifications = Counter("feeds_hub_verifications",
                                     "Built-in hub: subscription requests by outcome",
                                     ["result"], registry=registry)
        self.deliveries = Counter("feeds_hub_deliveries",
                                  "Built-in hub: content distributions by outcome",
                                  ["result"], registry=registry)
        gauge = Gauge("feeds_hub_subscriptions", "Built-in hub: subscriptions",
                      registry=registry)
        gauge.set_function(self._count)

    def start(self) -> None:
        with contextlib.suppress(StoreError):  # logged; the hub still answers
            self.store.expire(time.time())
        self.pool.start()

    def stop(self) -> None:
        self.pool.stop(self.caller.timeout + 1.0)
        self.caller.stop()
        self.store.close()

    def _count(self) -> float:
        try:
            return float(self.store.count(time.time()))
        except StoreError:
            return math.nan

    # --- requests (on a request thread: checks and a queue, never the network) --------

    def accept(self, intent: Intent) -> None:
        """Queue the verification (or the denial) of a request; HubError when full."""
        if not self.svc.ready.is_set():
            raise HubError(503, "the service is still loading its content; try again")
        try:
            if intent.mode == "subscribe" and intent.feed is not None:
                now = time.time()
                if self.store.get(intent.topic, intent.callback, now) is None:
                    full = self._full(intent.topic, now)
                    if full:
                        raise HubError(429, full)
        except StoreError as e:
            raise HubError(503, "the subscription store failed; try again later") from e
        if self.pool.count("verify") >= MAX_VERIFYING:
            raise HubError(503, "too many requests are waiting for verification; try again")
        task = Verify(self, intent)
        if not self.pool.put(("intent", intent.topic, intent.callback), task):
            raise HubError(503, "the hub is busy; try again later")

    def _full(self, topic: str, now: float) -> str | None:
        settings = self.svc.settings
        per_topic = settings.websub_max_subscriptions_per_topic
        if self.store.count(now, topic) >= per_topic:
            return f"this topic has the most subscriptions this hub keeps ({per_topic})"
        total = settings.websub_max_subscriptions
        if self.store.count(now) >= total:
            return f"this hub keeps at most {total} subscriptions"
        return None

    # --- verification of intent (on a worker) --------------------------------------------

    def verify(self, intent: Intent) -> None:
        try:
            self._verify(intent)
        except StoreError:
            self.verifications.labels("failed").inc()

    def _verify(self, intent: Intent) -> None:
        feed = intent.feed
        if intent.mode == "subscribe" and (feed is None or self._render(intent.base, feed)
                                           is None):
            self._deny(intent, "the topic is not a feed this hub serves")
            return
        challenge = secrets.token_urlsafe(32)
        params = {"hub.mode": intent.mode, "hub.topic": intent.topic,
                  "hub.challenge": challenge}
        if intent.mode == "subscribe":
            params["hub.lease_seconds"] = str(intent.lease)
        try:
            reply = self._call("GET", intent.target.with_query(params))
        except CallbackError as e:
            self.verifications.labels("refused" if isinstance(e, Refused) else "failed").inc()
            self._failure(f"verifying {intent.callback}", str(e))
            return
        if not (200 <= reply.status < 300 and reply.body.strip() == challenge.encode()):
            self.verifications.labels("declined").inc()
            logger.info("WebSub hub: %s did not confirm its %s to %s (HTTP %d)",
                        intent.callback, intent.mode, intent.topic, reply.status)
            return
        if intent.mode == "unsubscribe":
            self.store.remove(intent.topic, intent.callback)
            self.verifications.labels("unsubscribed").inc()
            logger.info("WebSub hub: %s unsubscribed from %s", intent.callback, intent.topic)
            return
        assert feed is not None
        if not self._subscribe(intent, feed):
            return
        self.verifications.labels("subscribed").inc()
        logger.info("WebSub hub: %s subscribed to %s for %d s", intent.callback,
                    intent.topic, intent.lease)

    def _subscribe(self, intent: Intent, feed: Feed) -> bool:
        with self._lock:
            now = time.time()
            self.store.expire(now)
            full = None
            if self.store.get(intent.topic, intent.callback, now) is None:
                full = self._full(intent.topic, now)
            if full is None:
                self.store.put(Subscription(intent.topic, intent.callback, intent.secret,
                                            intent.base, *feed, now + intent.lease))
                # The body the subscriber can fetch now: the next change is pushed.
                rendered = self._render(intent.base, feed)
                if rendered is not None and self.store.etag(intent.topic) is None:
                    self.store.set_etag(intent.topic, rendered.etag)
        if full is not None:
            self._deny(intent, full)
            return False
        return True

    def _deny(self, intent: Intent, reason: str) -> None:
        self.verifications.labels("denied").inc()
        logger.info("WebSub hub: denied %s to %s: %s", intent.callback, intent.topic, reason)
        params = {"hub.mode": "denied", "hub.topic": intent.topic, "hub.reason": reason}
        try:
            self._call("GET", intent.target.with_query(params))
        except CallbackError as e:
            self._failure(f"telling {intent.callback} of a denial", str(e))

    # --- distribution ------------------------------------------------------------------

    def on_change(self, old: State | None, new: State) -> None:
        """FeedService listener, called once the new content is being served. The first
        load checks every topic: a change made while the service was down is pushed."""
        feeds = None if old is None else frozenset(
            (kind, _fold(name)) for kind, name in changed_feeds(old, new))
        if feeds == frozenset():
            return
        if not self.pool.put("distribute", Distribute(self, feeds)):
            self.deliveries.labels("dropped").inc()
            self._failure("queueing a distribution", "the hub's queue is full")

    def distribute(self, feeds: Changed | None) -> None:
        """Queue a push of each changed topic's new body to each of its subscribers."""
        with contextlib.suppress(StoreError):  # logged by the store
            self._distribute(feeds)

    def _distribute(self, feeds: Changed | None) -> None:
        by_topic: dict[str, list[Subscription]] = {}
        with self._lock:
            now = time.time()
            self.store.expire(now)
            for sub in self.store.active(now):
                if feeds is None or (sub.kind, _fold(sub.name)) in feeds:
                    by_topic.setdefault(sub.topic, []).append(sub)
            pushes: list[tuple[Subscription, Rendered]] = []
            for topic, subs in by_topic.items():
                first = subs[0]
                rendered = self._render(first.base, (first.kind, first.name, first.fmt))
                # Pushed once per change of the bytes: an unrelated edit moves no ETag.
                if rendered is None or self.store.etag(topic) == rendered.etag:
                    continue
                self.store.set_etag(topic, rendered.etag)
                pushes += [(sub, rendered) for sub in subs]
        for sub, rendered in pushes:
            if not self.pool.put(("push", *sub.key), Deliver(self, sub, rendered)):
                self.deliveries.labels("dropped").inc()
                self._failure(f"queueing a push to {sub.callback}", "the hub's queue is full")

    def deliver(self, task: Deliver) -> float | None:
        """One push; seconds until the next attempt, or None when done."""
        sub, rendered = task.sub, task.rendered
        try:
            current = self.store.get(sub.topic, sub.callback, time.time())
        except StoreError:
            return None
        if current is None:  # unsubscribed, or the lease ended, since it was queued
            return None
        headers = {"Content-Type": rendered.content_type,
                   "Link": f'<{sub.base}{HUB_PATH}>; rel="hub", <{sub.topic}>; rel="self"'}
        if current.secret:
            digest = hmac.new(current.secret.encode(), rendered.body, hashlib.sha256)
            headers["X-Hub-Signature"] = f"sha256={digest.hexdigest()}"
        try:
            reply = self._call("POST", parse_callback(sub.callback), rendered.body, headers)
        except Refused as e:
            self.deliveries.labels("refused").inc()
            self._failure(f"pushing to {sub.callback}", str(e))
            return None
        except CallbackError as e:
            why = str(e)
        else:
            if 200 <= reply.status < 300:
                self.deliveries.labels("ok").inc()
                return None
            if reply.status == 410:  # Gone: the subscriber says it is over
                self.store.remove(sub.topic, sub.callback)
                self.deliveries.labels("gone").inc()
                logger.info("WebSub hub: %s is gone (410): unsubscribed", sub.callback)
                return None
            why = f"HTTP {reply.status}"
        task.attempts += 1
        self._failure(f"pushing {sub.topic} to {sub.callback}", why)
        if task.attempts >= self.attempts:
            self.deliveries.labels("failed").inc()
            return None
        self.deliveries.labels("retry").inc()
        return float(self.retry_first * self.retry_factor ** (task.attempts - 1))

    # --- helpers -----------------------------------------------------------------------

    def _render(self, base: str, feed: Feed) -> Rendered | None:
        kind, name, fmt = feed
        try:
            return self.svc.feed(FeedKey(kind, name, fmt, 1, self.svc.settings.posts_limit),
                                 base)
        except (NotReady, NotFound):
            return None

    def _call(self, method: str, target: Target, body: bytes = b"",
              headers: dict[str, str] | None = None) -> Reply:
        allow = self.svc.settings.websub_allow_private_callbacks
        return self.caller.call(method, target, allow_private=allow, body=body,
                                headers=headers)

    def _failure(self, what: str, why: str) -> None:
        """Log the first failure of a burst; the rest are counted in the metrics."""
        now = time.monotonic()
        with self._log_lock:
            first = now - self._last_failure >= QUIET
            self._last_failure = now
        if first:
            logger.warning("WebSub hub: %s failed (%s); pushes are retried %d times with "
                           "back-off, and further failures are only counted "
                           "(feeds_hub_*_total) until %d s pass without one",
                           what, why, self.attempts, QUIET)

    def wait_idle(self, timeout: float) -> bool:
        """Whether every verification and push queued so far is done (tests, bench)."""
        return self.pool.wait_idle(timeout)


class Verify(Task):
    kind = "verify"

    def __init__(self, hub: Hub, intent: Intent) -> None:
        self.hub = hub
        self.intent = intent

    def run(self) -> None:
        self.hub.verify(self.intent)


class Distribute(Task):
    kind = "distribute"

    def __init__(self, hub: Hub, feeds: Changed | None) -> None:
        self.hub = hub
        self.feeds = feeds

    def run(self) -> None:
        self.hub.distribute(self.feeds)

    def merged(self, newer: Task) -> Task:
        assert isinstance(newer, Distribute)
        if self.feeds is None or newer.feeds is None:
            return Distribute(self.hub, None)
        return Distribute(self.hub, self.feeds | newer.feeds)


class Deliver(Task):
    kind = "deliver"

    def __init__(self, hub: Hub, sub: Subscription, rendered: Rendered) -> None:
        self.hub = hub
        self.sub = sub
        self.rendered = rendered
        self.attempts = 0

    def run(self) -> float | None:
        return self.hub.deliver(self)

    def merged(self, newer: Task) -> Task:
        """The newer body, keeping the count (and the back-off) of failed attempts."""
        assert isinstance(newer, Deliver)
        newer.attempts = self.attempts
        return newer
