"""The built-in hub's HTTP client for subscriber callbacks, made safe to point at any URL
a stranger hands in.

- Every address the callback's host resolves to is checked: one loopback, private,
  link-local, multicast, reserved or unspecified address refuses the whole callback, so
  nobody can use the hub to reach into the operator's network (SSRF). The check is off
  only with ``websub_allow_private_callbacks``.
- The connection goes to an address that was checked, never to a second lookup of the
  name, so a name that answers differently a moment later (DNS rebinding) gains nothing.
  HTTPS still verifies the certificate against the name.
- One deadline covers connecting, sending and reading: a socket timeout bounds each
  read, not a reply that trickles in a byte at a time, so a watchdog thread shuts the
  socket of a call past its deadline. Redirects are not followed; replies are read up to
  a bound.
"""

from __future__ import annotations

import contextlib
import heapq
import http.client
import ipaddress
import itertools
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from urllib.parse import urlencode, urlsplit

from .model import Format, Kind

Resolver = Callable[[str, int], list[str]]
"""(host, port) -> the addresses it resolves to, as strings."""

USER_AGENT = "feeds-websub-hub/1"
MAX_REPLY_BYTES = 64 * 1024
MAX_URL_CHARS = 2048


class CallbackError(Exception):
    """A callback that cannot be called, or a call that failed; the message says why."""


class Refused(CallbackError):
    """The callback's host is, or resolves to, an address the hub may not call."""


def system_resolver(host: str, port: int) -> list[str]:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError) as e:
        raise CallbackError(f"cannot resolve {host}: {e}") from e
    return list(dict.fromkeys(str(info[4][0]) for info in infos))


_REFUSED = ("loopback", "private", "link_local", "multicast", "reserved", "unspecified")


def refusal(address: str) -> str | None:
    """Why the hub may not call ``address`` back, or None when it is a global unicast
    address. An IPv4 address inside IPv6 (mapped, 6to4) is judged as itself."""
    ip: ipaddress.IPv4Address | ipaddress.IPv6Address = ipaddress.ip_address(address)
    if isinstance(ip, ipaddress.IPv6Address):
        inner = ip.ipv4_mapped or ip.sixtofour
        if inner is not None:
            return refusal(str(inner))
    for quality in _REFUSED:
        if getattr(ip, f"is_{quality}"):
            return f"{address} is a {quality.replace('_', '-')} address"
    if not ip.is_global:  # shared address space (100.64/10) and the like
        return f"{address} is not a global address"
    return None


@dataclass(frozen=True)
class Target:
    """A callback URL taken apart for one request."""

    scheme: str
    host: str
    """The host name or address, without IPv6 brackets."""
    port: int
    target: str
    """The request target: path and query."""
    host_header: str

    def with_query(self, params: Mapping[str, str]) -> Target:
        joiner = "&" if "?" in self.target else "?"
        return Target(self.scheme, self.host, self.port,
                      self.target + joiner + urlencode(params), self.host_header)


def parse_callback(url: str) -> Target:
    """The parts of an absolute http(s) URL; CallbackError when it is not one."""
    if len(url) > MAX_URL_CHARS:
        raise CallbackError(f"longer than {MAX_URL_CHARS} characters")
    if not url.isprintable() or " " in url:
        raise CallbackError("contains spaces or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as e:
        raise CallbackError(f"not a URL: {e}") from e
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise CallbackError("must be an absolute http or https URL")
    if parts.username is not None or parts.password is not None:
        raise CallbackError("must not carry a user name or password")
    if not (parts.path + parts.query).isascii():
        raise CallbackError("path and query must be ASCII (percent-encoded)")
    try:
        host = parts.hostname.encode("idna").decode("ascii") if not parts.hostname.isascii() \
            else parts.hostname
    except UnicodeError as e:
        raise CallbackError(f"bad host name: {e}") from e
    default = 443 if parts.scheme == "https" else 80
    shown = f"[{host}]" if ":" in host else host
    host_header = shown if port in (None, default) else f"{shown}:{port}"
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return Target(parts.scheme, host, port or default, target, host_header)


def literal_refusal(target: Target) -> str | None:
    """What can be refused without a lookup: an address written in the URL, and the
    names that always mean this machine (RFC 6761)."""
    host = target.host.lower().rstrip(".")
    if host == "localhost" or host.endswith(".localhost"):
        return f"{target.host} is this machine"
    with contextlib.suppress(ValueError):
        return refusal(host)
    return None


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes


class _Guard:
    """One call's socket, for the watchdog to shut once the deadline has passed."""

    __slots__ = ("done", "expired", "sock")

    def __init__(self) -> None:
        self.sock: socket.socket | None = None
        self.done = False
        self.expired = False


class Watchdog:
    """One thread that shuts the sockets of calls past their deadline."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._heap: list[tuple[float, int, _Guard]] = []
        self._order = itertools.count()
        self._thread: threading.Thread | None = None
        self._stopped = False

    @contextlib.contextmanager
    def watch(self, deadline: float) -> Iterator[_Guard]:
        guard = _Guard()
        with self._cond:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, daemon=True,
                                                name="feeds-hub-watchdog")
                self._thread.start()
            heapq.heappush(self._heap, (deadline, next(self._order), guard))
            self._cond.notify()
        try:
            yield guard
        finally:
            with self._cond:
                guard.done = True

    def _run(self) -> None:
        with self._cond:
            while not self._stopped:
                now = time.monotonic()
                while self._heap and self._heap[0][0] <= now:
                    guard = heapq.heappop(self._heap)[2]
                    if not guard.done and guard.sock is not None:
                        guard.expired = True
                        with contextlib.suppress(OSError):
                            guard.sock.shutdown(socket.SHUT_RDWR)
                wait = self._heap[0][0] - now if self._heap else None
                self._cond.wait(wait)

    def stop(self) -> None:
        with self._cond:
            self._stopped = True
            self._cond.notify()


class _Connection(http.client.HTTPConnection):
    """An HTTPConnection over a socket already connected (to a checked address)."""

    def __init__(self, sock: socket.socket, host: str, port: int, timeout: float) -> None:
        super().__init__(host, port, timeout=timeout)
        self.sock = sock

    def connect(self) -> None:  # the socket is given; never look the name up again
        if self.sock is None:
            raise CallbackError("connection closed")


class Caller:
    """Calls callbacks: checks, connects to the checked address, one deadline."""

    def __init__(self, timeout: float, resolver: Resolver = system_resolver) -> None:
        self.timeout = timeout
        self.resolver = resolver
        self.watchdog = Watchdog()
        self._tls = ssl.create_default_context()

    def addresses(self, target: Target, allow_private: bool) -> list[str]:
        """The addresses to try; Refused when any of them may not be called."""
        try:
            ipaddress.ip_address(target.host)
            found = [target.host]
        except ValueError:
            found = self.resolver(target.host, target.port)
        if not found:
            raise CallbackError(f"{target.host} has no address")
        if not allow_private:
            for address in found:
                why = refusal(address)
                if why:
                    raise Refused(f"{target.host}: {why}")
        return found

    def call(self, method: str, target: Target, *, allow_private: bool, body: bytes = b"",
             headers: Mapping[str, str] | None = None) -> Reply:
        """One request; CallbackError (Refused for an address) when it cannot be made or
        no reply came before the deadline."""
        deadline = time.monotonic() + self.timeout
        addresses = self.addresses(target, allow_private)
        with self.watchdog.watch(deadline) as guard:
            try:
                sock = self._connect(addresses, target.port, deadline)
                guard.sock = sock
                if target.scheme == "https":
                    # The handshake after the guard holds the TLS socket: wrapping
                    # detaches the plain one, which the watchdog could no longer shut.
                    sock = self._tls.wrap_socket(sock, server_hostname=target.host,
                                                 do_handshake_on_connect=False)
                    guard.sock = sock
                    sock.do_handshake()
                connection = _Connection(sock, target.host, target.port, self.timeout)
                try:
                    connection.request(method, target.target, body=body, headers={
                        "Host": target.host_header, "User-Agent": USER_AGENT,
                        "Connection": "close", **(headers or {})})
                    response = connection.getresponse()
                    data = response.read(MAX_REPLY_BYTES)
                    if guard.expired:  # cut short: whatever was parsed is not the reply
                        raise TimeoutError
                    return Reply(response.status, data)
                finally:
                    connection.close()
            except (OSError, http.client.HTTPException, ValueError) as e:
                late = time.monotonic() >= deadline
                raise CallbackError(f"no reply within {self.timeout:g} s" if late
                                    else f"{type(e).__name__}: {e}") from e

    def _connect(self, addresses: list[str], port: int, deadline: float) -> socket.socket:
        error: OSError | None = None
        for address in addresses:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                sock = socket.create_connection((address, port), timeout=remaining)
            except OSError as e:
                error = e
                continue
            sock.settimeout(min(self.timeout, max(0.1, deadline - time.monotonic())))
            return sock
        raise error or TimeoutError("connect timed out")

    def stop(self) -> None:
        self.watchdog.stop()


Feed = tuple[Kind, str, Format]
"""(kind, name, format) of a feed."""

@dataclass(frozen=True)
class Intent:
    """A subscription or unsubscription request that passed the checks."""

    mode: str
    topic: str
    callback: str
    target: Target
    lease: int
    """Seconds granted (subscribe); 0 for unsubscribe."""
    secret: str
    base: str
    feed: Feed | None
    """What the topic names; None when it is not one of the service's feed URLs."""
