"""``feeds serve``: the app on waitress, stopped cleanly by SIGTERM or Ctrl-C (requests
already received are answered first), SIGHUP reading the content and ``_config.yml``
again (nothing drained, nothing dropped), kept alive after a 304, and guarded against
clients that hold connections (slow headers, idle keep-alive): see ConnectionGuard."""

from __future__ import annotations

import collections
import logging
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from .config import Settings
from .content import ContentStore
from .logs import EveryMinute, flush_access_log
from .parse.body import warm_engine, warm_lexers
from .renderwork import RenderHelper

logger = logging.getLogger("feeds")

CONNECTION_LIMIT = 1000
"""Open client connections waitress accepts before it stops accepting (it needs poll(),
not select(), beyond ~1000 descriptors: see ``asyncore_use_poll`` below)."""
SHUTDOWN_GRACE = 10.0
"""Seconds a stopping server gives in-flight requests to finish before it closes them."""
POLL_SECONDS = 0.5
"""How long the main loop sleeps when idle: the latency of noticing SIGTERM or Ctrl-C."""
HEADER_SECONDS = 10.0
"""A request's headers must be complete this long after its first byte: a client that
trickles them (slowloris) is closed, however often it sends a byte."""
IDLE_SECONDS = 60.0
"""An idle keep-alive connection is closed after this long (sooner near the limit)."""
SHED_AT = 0.9
"""Near the limit: with this share of CONNECTION_LIMIT open, idle and slow connections
are closed (the busiest client's first, then the longest idle) down to SHED_TO."""
SHED_TO = 0.8
GUARD_INTERVAL = 1.0
"""Seconds between the guard's rounds (waitress's cleanup_interval)."""
WARN_EVERY = 60.0
"""At most one warning about connections this often."""
SEND_BYTES = 1 << 20
"""A response is handed to the main loop whole, up to this size, to send as the socket
takes it. waitress's default (1) has the worker thread send each write itself: with
other connections waiting, the worker and the main loop then fought over each chunk, and
a crawl of a 1,000-post site on 4 connections cost the server 3.4x the CPU of the same
crawl on one (28.4 against 8.4 s; with this, 8.4 s, as on one), wrk 98 -> 3,055
cached feeds a second on 32 connections. Equal to waitress's outbuf_overflow: a
response under it stays in memory."""


class _StopSignals:
    """SIGTERM and SIGINT (Ctrl-C) ask for a clean stop; a second one for a quick one.
    The handler only counts: the main loop notices within POLL_SECONDS and does the work
    outside the handler, where it cannot interrupt waitress half-way through a read."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self.hangups = 0
        """SIGHUPs not yet acted on: each asks for the content and config read again."""
        self._previous: dict[int, Any] = {}

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        if signum == getattr(signal, "SIGHUP", None):
            self.hangups += 1
        else:
            self.received.append(signum)

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGHUP", None)):
            if signum is not None:
                self._previous[signum] = signal.signal(signum, self)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def _begun(settings: Settings) -> ContentStore:
    """The folder's content store, a cold start's first load begun: its helpers parse
    while the server imports its web stack (ContentStore.begin)."""
    store = ContentStore(settings)
    try:
        store.begin()
    except Exception:  # (the load proper meets it again, and tells what it is)
        logger.debug("the first load could not begin early", exc_info=True)
    return store


def _render_helper(settings: Settings, store: ContentStore) -> RenderHelper | None:
    """Forked before any thread of the server's own, once the engine is imported (every
    first feed needs it): the helper has it from the fork, and leaves the other core to
    the load's helpers, where its own import (warm_engine's ~70 ms) had taken some.
    So are the lexers the newest posts' code blocks likely name (5-85 ms each): made
    while the load's helper parses, not after the load, where the service made them
    before it said it was ready (FeedService._warm_newest then finds them made)."""
    warm_engine()
    warm_lexers(store.likely_newest(settings.posts_limit))
    if settings.render_workers < 2:
        return None
    return RenderHelper.fork()


def serve(settings: Settings) -> int:
    signals = _StopSignals()
    signals.install()  # before the first load: a stop while loading is clean too
    store = _begun(settings)

    from waitress import wasyncore
    from waitress.server import create_server

    from . import create_app

    app = create_app(settings, background=True, render_helper=_render_helper(settings, store),
                     store=store)
    svc = app.extensions["feeds"]
    socket_map: dict[int, Any] = {}
    try:
        server = create_server(
            app, map=socket_map, host=settings.host, port=settings.port,
            threads=settings.threads, ident="feeds", connection_limit=CONNECTION_LIMIT,
            channel_timeout=IDLE_SECONDS, cleanup_interval=GUARD_INTERVAL,
            send_bytes=SEND_BYTES,
            clear_untrusted_proxy_headers=True,
            # select() cannot watch descriptors above 1023; poll() has no such limit.
            asyncore_use_poll=True,
        )
    except OSError as e:
        svc.stop()
        signals.restore()
        logger.error("cannot listen on %s:%s: %s", settings.host, settings.port, e.strerror or e)
        return 1
    guard_connections(socket_map, CONNECTION_LIMIT)
    for host, port in _listening(server):
        logger.info("serving %s on http://%s:%s/ with %d threads", settings.content,
                    f"[{host}]" if ":" in host else host, port, settings.threads)
    try:
        while not signals.received:
            wasyncore.loop(timeout=POLL_SECONDS, use_poll=True, map=socket_map, count=1)
            if signals.hangups:  # as nginx does: read everything again, drop nothing
                signals.hangups = 0
                logger.info("SIGHUP: reading the content and _config.yml again")
                svc.reload()
        logger.info("signal %d: finishing in-flight requests and stopping",
                    signals.received[0])
        _drain(socket_map, server.task_dispatcher, signals)
    finally:
        server.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
        wasyncore.close_all(socket_map)
        svc.stop()
        signals.restore()
        flush_access_log()
    logger.info("stopped")
    return 0


def keep_alive_channel() -> type[Any] | None:
    """waitress's channel, but one that keeps an HTTP/1.1 connection open after a 304.

    waitress 3.0 decides keep-alive by Content-Length, which a 304 never carries (RFC
    9110 8.6), so it closes the connection after every 304: an aggregator whose polls
    end in 304 pays a new TCP handshake for each. Only that case changes: a client's
    ``Connection: close``, HTTP/1.0 and every error still close. None when waitress's
    classes are not the ones this was written for (then nothing changes)."""
    try:
        from waitress.channel import HTTPChannel
        from waitress.task import WSGITask
    except ImportError:  # pragma: no cover - another waitress
        return None
    if not callable(getattr(WSGITask, "set_close_on_finish", None)) or \
            getattr(HTTPChannel, "task_class", None) is not WSGITask:
        return None

    class KeepAliveTask(WSGITask):
        def set_close_on_finish(self) -> None:
            if (str(self.status).startswith("304") and self.version == "1.1"
                    and getattr(self.request, "headers", {}).get("CONNECTION", "").lower()
                    != "close"):
                return
            super().set_close_on_finish()

    class KeepAliveChannel(HTTPChannel):
        task_class = KeepAliveTask
        began: float | None = None
        """When the request being read sent its first byte; None between requests."""

        def received(self, data: bytes) -> bool:
            if self.request is None and self.began is None:
                self.began = time.monotonic()
            done: bool = super().received(data)
            if self.request is None:
                self.began = None
            return done

    return KeepAliveChannel


class ConnectionGuard:
    """waitress's channel cleanup (its ``maintenance``), made to keep a server answering
    when clients hold its connections.

    waitress stops accepting at ``connection_limit`` and closes only connections idle
    for ``channel_timeout``, so 1,000 clients that each send a header byte every few
    seconds, or 1,000 idle keep-alive connections, leave no room for anyone else. Each
    round (every GUARD_INTERVAL) this closes a connection whose request (headers and
    body) is not complete HEADER_SECONDS after its first byte, and one idle for
    IDLE_SECONDS. With
    SHED_AT of the limit open it also closes idle and slow connections that have been
    so for a second, the client holding the most connections first, then the longest
    idle, down to SHED_TO: a newcomer waits a second or two, not forever. A connection
    with a request being answered is never closed, nor one sending its answer unless
    the client has read none of it for IDLE_SECONDS. What it did is logged once a minute.
    """

    def __init__(self, limit: int, header_seconds: float = HEADER_SECONDS,
                 idle_seconds: float = IDLE_SECONDS) -> None:
        self.limit = limit
        self.header_seconds = header_seconds
        self.idle_seconds = idle_seconds
        self.closed = {"slow headers": 0, "idle": 0, "near the limit": 0}
        self._warned = -WARN_EVERY

    def round(self, channels: list[Any], open_count: int) -> None:
        now, wall = time.monotonic(), time.time()
        before = sum(self.closed.values())
        spare: list[tuple[Any, float]] = []  # (channel, how long it has sat) to shed
        for channel in channels:
            if channel.requests or channel.will_close:
                continue  # being answered, or going anyway
            if channel.total_outbufs_len:  # a response the client does not read
                if wall - channel.last_activity > self.idle_seconds:
                    self._close(channel, "idle")  # as waitress's own cleanup would
                continue
            began = getattr(channel, "began", None)
            waited = now - began if began is not None else wall - channel.last_activity
            if began is not None and waited > self.header_seconds:
                self._close(channel, "slow headers")
            elif began is None and waited > self.idle_seconds:
                self._close(channel, "idle")
            elif waited >= 1.0:
                spare.append((channel, waited))
        excess = open_count - (sum(self.closed.values()) - before) - int(self.limit * SHED_TO)
        if open_count >= self.limit * SHED_AT and excess > 0:
            per_client = collections.Counter(_client(c) for c, _ in spare)
            spare.sort(key=lambda cw: (-per_client[_client(cw[0])], -cw[1]))
            for channel, _waited in spare[:excess]:
                self._close(channel, "near the limit")
        self._report(open_count)

    def _close(self, channel: Any, why: str) -> None:
        channel.will_close = True  # closed by the loop's next turn
        self.closed[why] += 1

    def _report(self, open_count: int) -> None:
        if not any(self.closed.values()) or time.monotonic() - self._warned < WARN_EVERY:
            return
        self._warned = time.monotonic()
        logger.warning("connections: %d open (limit %d); closed in the last minute: %s",
                       open_count, self.limit,
                       ", ".join(f"{n} {why}" for why, n in self.closed.items() if n))
        self.closed = dict.fromkeys(self.closed, 0)


def _client(channel: Any) -> str:
    addr = getattr(channel, "addr", None)
    return str(addr[0]) if isinstance(addr, tuple) and addr else "?"


def guard_connections(socket_map: dict[int, Any], limit: int,
                      guard: ConnectionGuard | None = None) -> ConnectionGuard:
    """Give every listening server in ``socket_map`` the keep-alive channel and the
    ConnectionGuard as its maintenance, and quiet waitress's own line per overflow."""
    guard = guard or ConnectionGuard(limit)
    channel = keep_alive_channel()
    for listener in list(socket_map.values()):
        if not hasattr(listener, "active_channels"):
            continue
        if channel is not None:
            listener.channel_class = channel

        def maintenance(_now: float, listener: Any = listener) -> None:
            guard.round(list(listener.active_channels.values()), len(listener._map))

        listener.maintenance = maintenance
    waitress_logger = logging.getLogger("waitress")
    if not any(isinstance(f, EveryMinute) for f in waitress_logger.filters):
        waitress_logger.addFilter(EveryMinute(WARN_EVERY, only="connection limit"))
    return guard


def _listening(server: Any) -> list[tuple[str, int]]:
    """(host, port) of each listening socket; the port is the real one when 0 was asked."""
    if hasattr(server, "effective_listen"):
        return [(str(host), int(port)) for host, port in server.effective_listen]
    return [(str(server.effective_host), int(server.effective_port))]


def _drain(socket_map: dict[int, Any], dispatcher: Any, signals: _StopSignals) -> None:
    """Stop accepting, then keep the loop turning until every request already received
    has been answered and its response sent (or SHUTDOWN_GRACE passes, or a second
    signal comes). Idle keep-alive connections are closed as soon as they are idle."""
    from waitress import wasyncore
    from waitress.channel import HTTPChannel
    from waitress.server import BaseWSGIServer

    for listener in [d for d in socket_map.values() if isinstance(d, BaseWSGIServer)]:
        # The dispatcher's own close, not the server's: that would also close the
        # trigger that worker threads pull when a response is ready to send.
        wasyncore.dispatcher.close(listener)
    deadline = time.monotonic() + SHUTDOWN_GRACE
    first = len(signals.received)
    while True:
        busy = 0
        for channel in _channels(socket_map, HTTPChannel):
            if channel.requests or channel.total_outbufs_len or channel.request is not None:
                busy += 1
            else:
                channel.will_close = True  # handled (closed) by the next loop turn
        idle_workers = not dispatcher.queue and dispatcher.active_count == 0
        if (busy == 0 and idle_workers) or len(signals.received) > first:
            break
        if time.monotonic() >= deadline:
            logger.warning("%d connection(s) still busy after %.0f s; closing them",
                           busy, SHUTDOWN_GRACE)
            break
        wasyncore.loop(timeout=0.05, use_poll=True, map=socket_map, count=1)
    # One more turn closes the channels just marked.
    wasyncore.loop(timeout=0.0, use_poll=True, map=socket_map, count=1)


def _channels(socket_map: dict[int, Any], kind: type[Any]) -> Iterator[Any]:
    return (d for d in list(socket_map.values()) if isinstance(d, kind))
