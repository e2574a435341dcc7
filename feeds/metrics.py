"""Prometheus metrics, one registry per app so that several apps (tests, instances) never
share counters; and ``Accounting``, the outermost WSGI layer, which counts every answer
(by route and status), times it (by route) and writes its access-log line, whether the
replay or Flask gave it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import TYPE_CHECKING, Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from .logs import access_logger, log_access, request_target

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

ROUTE = "feeds.route"
"""The environ key under which the layer that answered names the route it answered for
(the label of its metrics); 'unknown' when none did."""


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter("feeds_requests", "HTTP requests by route kind and status",
                                ["route", "status"], registry=r)
        self.latency = Histogram("feeds_request_seconds", "Request latency by route kind",
                                 ["route"], buckets=LATENCY_BUCKETS, registry=r)
        self.cache = Counter("feeds_cache_lookups", "Response-cache lookups by result",
                             ["result"], registry=r)
        self.renders = Counter("feeds_renders", "Feeds and pages rendered", ["fmt"],
                               registry=r)
        self.posts = Gauge("feeds_posts", "Posts loaded and visible", registry=r)
        self.rejected = Gauge("feeds_posts_rejected", "Post files rejected", registry=r)
        self.reloads = Counter("feeds_reloads", "Content reloads", registry=r)
        self.reload_seconds = Histogram("feeds_reload_seconds", "Duration of content reloads",
                                        registry=r)
        self.helper_up = Gauge("feeds_render_helper_up", "1 while the render helper "
                               "renders bodies (render_workers), else 0", registry=r)
        self.helper_bodies = Gauge("feeds_render_helper_bodies", "Bodies the render helper "
                                   "has rendered since the start", registry=r)
        self.websub_pings = Counter("feeds_websub_pings", "WebSub publish pings by result",
                                    ["result"], registry=r)
        # Children resolved once: labels() costs a lock and a dict lookup per call.
        self.cache_hit = self.cache.labels("hit")
        self.cache_miss = self.cache.labels("miss")

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


class Accounting:
    """WSGI middleware around the whole app: each answer is counted under the route the
    inner layers named in ``environ[ROUTE]`` and its status, timed from the call to the
    return of the app, and logged with its Content-Length as its size (none: 0). The
    body is passed through untouched, unless the app starts its answer only once its
    body is iterated; then the answer is accounted for when the body is closed."""

    def __init__(self, app: WSGIApplication, metrics: Metrics, *, as_json: bool) -> None:
        self.app = app
        self.metrics = metrics
        self.as_json = as_json
        self._meters: dict[tuple[str, str], tuple[Counter, Histogram]] = {}
        """(route, status line) -> its labelled children: labels() costs a lock a call."""

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        started = time.perf_counter()
        # Taken now: an inner layer (the path prefix) may rewrite PATH_INFO.
        uri = environ.get("REQUEST_URI") or request_target(environ)
        status: str | None = None
        headers: list[tuple[str, str]] = []

        def observe(status_line: str, header_list: list[tuple[str, str]],
                    exc_info: Any = None) -> Any:
            nonlocal status, headers
            status, headers = status_line, header_list
            return start_response(status_line, header_list, exc_info)

        result = self.app(environ, observe)
        if status is None:  # PEP 3333: an app may start its answer with its first chunk
            return self._account_when_closed(result, environ, uri, lambda: (status, headers),
                                             started)
        self._account(environ, uri, status, headers, time.perf_counter() - started)
        return result

    def _account(self, environ: WSGIEnvironment, uri: str, status: str,
                 headers: list[tuple[str, str]], elapsed: float) -> None:
        route: str = environ.get(ROUTE, "unknown")
        meters = self._meters.get((route, status))
        if meters is None:
            meters = self._meters[(route, status)] = (
                self.metrics.requests.labels(route, status[:3]),
                self.metrics.latency.labels(route))
        meters[0].inc()
        meters[1].observe(elapsed)
        if access_logger.isEnabledFor(logging.INFO):
            log_access(environ, uri, int(status[:3]), _content_length(headers), elapsed,
                       self.as_json)

    def _account_when_closed(
            self, result: Iterable[bytes], environ: WSGIEnvironment, uri: str,
            answer: Callable[[], tuple[str | None, list[tuple[str, str]]]], started: float,
    ) -> Iterator[bytes]:
        try:
            # Not yield from: that closes what it iterates, and result is closed below.
            for chunk in result:  # noqa: UP028
                yield chunk
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
            status, headers = answer()
            if status is not None:
                self._account(environ, uri, status, headers, time.perf_counter() - started)


def _content_length(headers: list[tuple[str, str]]) -> int:
    """The Content-Length an app set (0 when none), as werkzeug's response reads it."""
    for name, value in headers:
        if name == "Content-Length" or (len(name) == 14 and name.lower() == "content-length"):
            try:
                return int(value)
            except ValueError:
                return 0
    return 0
