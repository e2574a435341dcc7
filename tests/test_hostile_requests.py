"""Issue 15, finding 3: what clients may vary freely (unknown parameters, padding, the
spelling of Accept-Encoding, the Host) cannot grow memory without bound or split the
cache, and a Host no real client sends gets 400 over a real waitress instance."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from flask import Flask
from lxml import etree

from feeds import wire

from .conftest import ROOT
from .service_process import Services
from .test_replay import replay_of


def test_unknown_parameters_and_padding_share_one_entry(
        make_app: Callable[..., Flask], site_dir: Path) -> None:
    app = make_app(site_dir)
    client = app.test_client()
    first = client.get("/feed.json?limit=1")
    assert first.status_code == 200
    replay = replay_of(app)
    for n in range(200):
        padded = client.get(f"/feed.json?limit=0001&x={n}&pad={'p' * 2000}",
                            headers={"Accept-Encoding": f"gzip{' ' * n}"})
        assert padded.status_code == 200
        assert padded.headers["ETag"] == first.headers["ETag"] or \
            padded.headers.get("Content-Encoding") == "gzip"
    kinds = {key[2] for key in replay._entries}
    assert kinds == {(None, "1", None)}, kinds
    assert len(replay._entries) <= 2  # identity and gzip at most


def test_a_query_the_replay_cannot_read_exactly_is_not_kept(
        make_app: Callable[..., Flask], site_dir: Path) -> None:
    app = make_app(site_dir)
    client = app.test_client()
    # 'p%61ge' is 'page' to werkzeug: kept under the wrong key it would hide page 2.
    one = client.get("/feed.atom?limit=1")
    two = client.get("/feed.atom?limit=1&p%61ge=2")
    assert one.status_code == two.status_code == 200
    assert one.data != two.data
    assert client.get("/feed.atom?limit=1&p%61ge=2").data == two.data
    assert len(replay_of(app)._entries) == 1


def test_the_replay_bound_counts_its_keys(make_app: Callable[..., Flask],
                                          site_dir: Path) -> None:
    bound = 200_000
    app = make_app(site_dir, cache_bytes=bound)
    client = app.test_client()
    for n in range(300):  # 300 distinct valid hosts of 250 characters, no --base-url
        host = f"h{n}." + ".".join(["a" * 60] * 4)
        assert client.get("/feed.json?limit=1", headers={"Host": host}).status_code == 200
    replay = replay_of(app)
    assert replay._entries.currsize <= bound
    counted = sum(size + prepared.size for size, prepared in replay._entries.values())
    keys = sum(len(str(part)) for key in replay._entries for part in key)
    assert counted == replay._entries.currsize and counted > keys


def test_the_coding_cache_holds_only_short_headers() -> None:
    for n in range(1500):
        assert wire.choose_coding(f"gzip;q=0.{n % 9 + 1}, x{n}" + "y" * 10_000) == "gzip"
    assert len(wire._CODING_CACHE) <= 1000
    assert sum(map(len, wire._CODING_CACHE)) <= 1000 * 200


def test_with_a_base_url_the_host_does_not_split_the_cache(
        make_app: Callable[..., Flask], site_dir: Path) -> None:
    app = make_app(site_dir, base_url="https://feeds.example.org")
    client = app.test_client()
    for n in range(50):
        assert client.get("/feed.atom", headers={"Host": f"h{n}.example"}).status_code == 200
    assert len(replay_of(app)._entries) == 1


# --- over a real waitress instance -------------------------------------------------------


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    started = Services(tmp_path)
    yield started
    started.close()


def _raw_get(port: int, host: str) -> tuple[int, bytes]:
    with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
        conn.sendall(f"GET /feed.atom HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
                     .encode("latin-1"))
        data = b""
        while chunk := conn.recv(65536):
            data += chunk
    status = int(data.split(b" ", 2)[1])
    return status, data.partition(b"\r\n\r\n")[2]


def test_an_invalid_host_gets_400(services: Services, site_dir: Path) -> None:
    svc = services.start(site_dir)
    for host in ("a b<x>", "user@evil", ":99999", "example.org:99999", "", "ex ample.org",
                 "[::1", "a/b"):
        status, body = _raw_get(svc.port, host)
        assert status == 400, (host, status, body[:200])
    for host in ("localhost", "127.0.0.1:8080", "[::1]:80", "Feeds.Example.ORG"):
        status, body = _raw_get(svc.port, host)
        assert status == 200, (host, status)
        assert etree.fromstring(body).tag == "{http://www.w3.org/2005/Atom}feed"


def test_nginx_sends_only_the_forwarded_headers_the_service_honours() -> None:
    """waitress drops X-Forwarded-* from an untrusted peer (clear_untrusted_proxy_headers
    and no trusted_proxy), so a header the config sends would only mislead its reader."""
    conf = (ROOT / "deploy" / "nginx.conf").read_text("utf-8")
    sent = {m.group(1).lower() for m in re.finditer(
        r"^\s*proxy_set_header\s+(\S+)", conf, re.MULTILINE)}
    assert "host" in sent
    assert not {h for h in sent if h.startswith("x-forwarded")}, sent
