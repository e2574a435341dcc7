"""Issue 15, finding 8: clients that hold connections (trickling headers, idle
keep-alive) cannot deny service to the rest. A real waitress server with the service's
own channel and guard, in this process on a loopback port, with a small connection
limit so that every flood here is bounded (tens of sockets, seconds)."""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from feeds import server

LIMIT = 40


@dataclass
class Running:
    port: int
    guard: server.ConnectionGuard
    stop: threading.Event
    sockets: list[socket.socket] = field(default_factory=list)

    def connect(self) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        self.sockets.append(conn)
        return conn


@pytest.fixture
def running(make_app: Callable[..., Flask], site_dir: Path) -> Iterator[Running]:
    from waitress import wasyncore
    from waitress.server import create_server

    app = make_app(site_dir)
    socket_map: dict[int, Any] = {}
    srv = create_server(app, map=socket_map, host="127.0.0.1", port=0, threads=2,
                        connection_limit=LIMIT, channel_timeout=60, cleanup_interval=1,
                        asyncore_use_poll=True, backlog=256)
    guard = server.guard_connections(
        socket_map, LIMIT, server.ConnectionGuard(LIMIT, header_seconds=2.0))
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            wasyncore.loop(timeout=0.1, use_poll=True, map=socket_map, count=1)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    run = Running(srv.effective_port, guard, stop)  # type: ignore[union-attr]
    yield run
    for conn in run.sockets:
        conn.close()
    stop.set()
    thread.join(10)
    srv.task_dispatcher.shutdown(cancel_pending=True, timeout=1)
    wasyncore.close_all(socket_map)


def _get(run: Running, path: str = "/healthz", seconds: float = 15.0) -> int:
    """A well-behaved client's request: its status, or 0 when no answer in ``seconds``."""
    with socket.create_connection(("127.0.0.1", run.port), timeout=seconds) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
                     .encode())
        try:
            head = conn.recv(64)
        except TimeoutError:
            return 0
    return int(head.split(b" ", 2)[1]) if head else 0


def _closed_by_server(conn: socket.socket) -> bool:
    conn.settimeout(0.05)
    try:
        return conn.recv(1) == b""
    except TimeoutError:
        return False
    except OSError:
        return True


def test_a_client_trickling_its_headers_is_cut_off(running: Running) -> None:
    slow = [running.connect() for _ in range(10)]
    for conn in slow:
        conn.sendall(b"GET / HTTP/1.1\r\n")
    deadline = time.monotonic() + 12
    open_ = list(slow)
    n = 0
    while open_ and time.monotonic() < deadline:
        for conn in open_:
            with contextlib.suppress(OSError):  # a header well within any idle timeout
                conn.sendall(f"X-{n}: y\r\n".encode())
        time.sleep(0.3)
        n += 1
        open_ = [c for c in open_ if not _closed_by_server(c)]
    assert not open_, f"{len(open_)} slow clients still connected"


def test_idle_connections_at_the_limit_make_room_for_a_newcomer(running: Running) -> None:
    hogs = [running.connect() for _ in range(LIMIT + 20)]  # the last 20 wait in the backlog
    assert hogs
    started = time.monotonic()
    assert _get(running) == 200
    assert time.monotonic() - started < 10  # waitress alone: channel_timeout, 60 s


def test_slow_and_idle_clients_together_do_not_lock_others_out(running: Running) -> None:
    idle = [running.connect() for _ in range(LIMIT // 2)]
    slow = [running.connect() for _ in range(LIMIT)]
    for conn in slow:
        conn.sendall(b"GET / HTTP/1.1\r\nX-a: b\r\n")
    assert idle and slow
    answered = [_get(running, "/feed.atom") for _ in range(3)]
    assert answered == [200, 200, 200]


def test_a_flood_is_reported_once_a_minute(running: Running,
                                           caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO):
        for _ in range(3):
            batch = [running.connect() for _ in range(LIMIT + 5)]
            assert _get(running) == 200
            for conn in batch:
                conn.close()
            running.sockets.clear()
            time.sleep(1.2)
    ours = [r for r in caplog.records if r.name == "feeds" and "connections:" in r.message]
    theirs = [r for r in caplog.records
              if r.name == "waitress" and "reached the connection limit" in r.message]
    assert len(ours) == 1 and "near the limit" in ours[0].message
    assert len(theirs) <= 1


# --- the guard's choice, with fake channels (no sockets) ---------------------------------


@dataclass
class FakeChannel:
    addr: tuple[str, int]
    last_activity: float
    began: float | None = None
    requests: list[object] = field(default_factory=list)
    total_outbufs_len: int = 0
    will_close: bool = False


def test_near_the_limit_the_busiest_client_loses_first() -> None:
    guard = server.ConnectionGuard(100)
    idle = time.time() - 5
    hog = [FakeChannel(("10.0.0.1", i), idle) for i in range(80)]
    others = [FakeChannel((f"10.0.1.{i}", 1), idle - 10) for i in range(15)]
    busy = [FakeChannel(("10.0.0.1", 999), idle - 50, requests=[object()])]
    guard.round([*hog, *others, *busy], 96)
    assert sum(c.will_close for c in hog) == 96 - 80
    assert not any(c.will_close for c in others + busy)


def test_below_the_limit_nothing_young_is_closed() -> None:
    guard = server.ConnectionGuard(100)
    now = time.time()
    young = [FakeChannel(("10.0.0.1", i), now - 5) for i in range(50)]
    old = FakeChannel(("10.0.0.2", 1), now - 61)
    slow = FakeChannel(("10.0.0.3", 1), now, began=time.monotonic() - 11)
    guard.round([*young, old, slow], 52)
    assert old.will_close and slow.will_close
    assert not any(c.will_close for c in young)


# --- feeds serve itself ------------------------------------------------------------------


def test_feeds_serve_answers_past_a_thousand_idle_connections(tmp_path: Path,
                                                              site_dir: Path) -> None:
    """The wiring in ``feeds serve``: its 1,000-connection limit full of idle clients
    (and more in the backlog), a newcomer is still answered."""
    from .service_process import Services

    services = Services(tmp_path)
    hogs: list[socket.socket] = []
    try:
        svc = services.start(site_dir)
        for _ in range(server.CONNECTION_LIMIT + 100):
            hogs.append(socket.create_connection(("127.0.0.1", svc.port), timeout=10))
        started = time.monotonic()
        probe = Running(svc.port, server.ConnectionGuard(1), threading.Event())
        assert _get(probe, "/feed.atom", seconds=20) == 200
        assert time.monotonic() - started < 15
        for conn in hogs:
            conn.close()
        hogs.clear()
        assert svc.stop() == 0
        warnings = [line for line in svc.log().splitlines() if "connections:" in line]
        assert len(warnings) <= 1
    finally:
        for conn in hogs:
            conn.close()
        services.close()


def test_a_client_that_stops_reading_its_answer_is_closed_when_idle_long() -> None:
    guard = server.ConnectionGuard(100)
    now = time.time()
    reading = FakeChannel(("10.0.0.1", 1), now - 5, total_outbufs_len=1 << 20)
    stalled = FakeChannel(("10.0.0.2", 1), now - 61, total_outbufs_len=1 << 20)
    guard.round([reading, stalled], 99)  # near the limit too: still not shed while read
    assert stalled.will_close and not reading.will_close
