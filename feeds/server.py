"""``feeds serve``: the app on waitress, stopped cleanly by SIGTERM or Ctrl-C (requests
already received are answered first), and kept alive after a 304."""

from __future__ import annotations

import logging
import signal
import time
from collections.abc import Iterator
from types import FrameType
from typing import Any

from .config import Settings
from .logs import flush_access_log

logger = logging.getLogger("feeds")

CONNECTION_LIMIT = 1000
"""Open client connections waitress accepts before it stops accepting (it needs poll(),
not select(), beyond ~1000 descriptors: see ``asyncore_use_poll`` below)."""
SHUTDOWN_GRACE = 10.0
"""Seconds a stopping server gives in-flight requests to finish before it closes them."""
POLL_SECONDS = 0.5
"""How long the main loop sleeps when idle: the latency of noticing SIGTERM or Ctrl-C."""


class _StopSignals:
    """SIGTERM and SIGINT (Ctrl-C) ask for a clean stop; a second one for a quick one.
    The handler only counts: the main loop notices within POLL_SECONDS and does the work
    outside the handler, where it cannot interrupt waitress half-way through a read."""

    def __init__(self) -> None:
        self.received: list[int] = []
        self._previous: dict[int, Any] = {}

    def __call__(self, signum: int, _frame: FrameType | None) -> None:
        self.received.append(signum)

    def install(self) -> None:
        for signum in (signal.SIGTERM, signal.SIGINT):
            self._previous[signum] = signal.signal(signum, self)

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def serve(settings: Settings) -> int:
    from waitress import wasyncore
    from waitress.server import create_server

    from . import create_app

    signals = _StopSignals()
    signals.install()  # before the first load: a stop while loading is clean too
    app = create_app(settings, background=True)
    svc = app.extensions["feeds"]
    socket_map: dict[int, Any] = {}
    try:
        server = create_server(
            app, map=socket_map, host=settings.host, port=settings.port,
            threads=settings.threads, ident="feeds", connection_limit=CONNECTION_LIMIT,
            channel_timeout=60, clear_untrusted_proxy_headers=True,
            # select() cannot watch descriptors above 1023; poll() has no such limit.
            asyncore_use_poll=True,
        )
    except OSError as e:
        svc.stop()
        signals.restore()
        logger.error("cannot listen on %s:%s: %s", settings.host, settings.port, e.strerror or e)
        return 1
    channel = keep_alive_channel()
    for listener in socket_map.values():
        if channel is not None and hasattr(listener, "channel_class"):
            listener.channel_class = channel
    for host, port in _listening(server):
        logger.info("serving %s on http://%s:%s/ with %d threads", settings.content,
                    f"[{host}]" if ":" in host else host, port, settings.threads)
    try:
        while not signals.received:
            wasyncore.loop(timeout=POLL_SECONDS, use_poll=True, map=socket_map, count=1)
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

    return KeepAliveChannel


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
