"""Prometheus metrics, one registry per app so that several apps (tests, instances) never
share counters."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


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
        self.websub_pings = Counter("feeds_websub_pings", "WebSub publish pings by result",
                                    ["result"], registry=r)
        # Children resolved once: labels() costs a lock and a dict lookup per call.
        self.cache_hit = self.cache.labels("hit")
        self.cache_miss = self.cache.labels("miss")

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
