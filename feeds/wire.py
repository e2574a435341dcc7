"""What goes on the wire for a rendered feed or page, and the replay that answers a
repeated request with it before Flask is involved.

``web.respond`` turns a ``Rendered`` into a ``Prepared``: the exact header lists of its
200 and its 304 in one encoding. It answers with them, and leaves the ``Prepared`` in the
WSGI environ. ``Replay`` (a WSGI layer in front of Flask) keeps it under everything the
answer was made from: the content version, path, query string, scheme, host and the
encoding the client accepts. The next such request is answered from there: a dict
lookup, the validators compared, and no routing, no request object, no response object.
A poll of a cached feed costs less than the least a Flask app can do; a new content
version empties it. metrics.Accounting, outside both, counts and logs either's answers.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any

from cachetools import LRUCache

from .metrics import ROUTE

if TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIApplication, WSGIEnvironment

    from .rendered import Rendered
    from .service import FeedService

PREPARED = "feeds.prepared"
"""The environ key under which web.respond leaves the Prepared it answered with."""

COMPRESS_MIN = 1024
"""Bodies up to this size go out uncompressed: gzip would save too little to pay."""


# --- content coding -------------------------------------------------------------------

_CODING_CACHE: dict[str, str] = {}
_CODING_CACHE_ENTRIES = 1000
_CODING_CACHE_KEY = 200
"""Only headers up to this many characters are remembered (browsers send ~30): the
cache holds at most 1,000 x 200 characters, whatever clients send."""


def choose_coding(header: str) -> str:
    """gzip when accepted; br only where the client prefers it (a higher q) to gzip."""
    found = _CODING_CACHE.get(header)
    if found is not None:
        return found
    q: dict[str, float] = {}
    for part in header.split(","):
        name, _, params = part.strip().partition(";")
        name = name.strip().lower()
        weight = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                weight = float(params[2:])
            except ValueError:
                weight = 0.0
        if name:
            q[name] = weight
    star = q.get("*", 0.0)
    gz = q.get("gzip", q.get("x-gzip", star))
    br = q.get("br", star)
    coding = "identity"
    if br > 0 and br > gz:
        coding = "br"
    elif gz > 0:
        coding = "gzip"
    if len(_CODING_CACHE) < _CODING_CACHE_ENTRIES and len(header) <= _CODING_CACHE_KEY:
        _CODING_CACHE[header] = coding
    return coding


def coding_for(rendered: Rendered, accept_encoding: str) -> str:
    if len(rendered.body) <= COMPRESS_MIN:
        return "identity"
    return choose_coding(accept_encoding)


# --- validators -----------------------------------------------------------------------


def if_none_match_hits(header: str, etag: str) -> bool:
    """RFC 9110 13.1.2: weak comparison; '*' matches any current representation."""
    if header.strip() == "*":
        return True
    bare = etag[2:] if etag.startswith("W/") else etag
    for tag in header.split(","):
        tag = tag.strip()
        if tag.startswith("W/"):
            tag = tag[2:]
        if tag == bare:
            return True
    return False


def not_modified_since(header: str, last_modified_ts: int | None) -> bool:
    """Whether a representation last modified at ``last_modified_ts`` (whole seconds)
    is no newer than an If-Modified-Since date."""
    if last_modified_ts is None:
        return False
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    if since.tzinfo is None:  # asctime dates and '-0000' carry no zone: HTTP means GMT
        since = since.replace(tzinfo=UTC)
    return last_modified_ts <= since.timestamp()


# --- prepared responses ---------------------------------------------------------------


def validators(rendered: Rendered, etag: str, *, cors: bool = False,
               hub: str = "") -> list[tuple[str, str]]:
    """The headers every answer about a rendering carries, 200, 304 or 226: its ETag (in
    the answer's encoding), Last-Modified, CORS and the WebSub Link."""
    headers = [("ETag", etag)]
    if rendered.last_modified:
        headers.append(("Last-Modified", rendered.last_modified))
    if cors:
        headers.append(("Access-Control-Allow-Origin", "*"))
    if hub and rendered.self_url:
        headers.append(("Link", f'<{hub}>; rel="hub", <{rendered.self_url}>; rel="self"'))
    return headers


class Prepared:
    """A rendering in one content coding, with the header lists of its 200 and its 304.
    The 304 carries the validators and caching headers of the 200 it stands for (RFC
    9110 15.4.5), but no Content-Type, Content-Length or Content-Encoding."""

    __slots__ = ("body", "etag", "headers_200", "headers_304", "last_modified_ts",
                 "route")

    def __init__(self, rendered: Rendered, coding: str, *, max_age: int, route: str,
                 cors: bool = False, hub: str = "", cache_control: str | None = None) -> None:
        body, etag = rendered.encoded(coding)
        self.body = body
        self.etag = etag
        self.last_modified_ts = rendered.last_modified_ts
        self.route = route
        common = validators(rendered, etag, cors=cors, hub=hub)
        common += [("Cache-Control", cache_control or f"public, max-age={max_age}"),
                   ("Vary", "Accept-Encoding")]
        self.headers_304 = common
        self.headers_200 = [("Content-Type", rendered.content_type),
                            ("Content-Length", str(len(body))), *common]
        if coding != "identity":
            self.headers_200.append(("Content-Encoding", coding))

    def not_modified(self, environ: WSGIEnvironment) -> bool:
        """The conditional GET/HEAD rules of RFC 9110 13.2.2: If-None-Match when sent,
        else If-Modified-Since."""
        inm = environ.get("HTTP_IF_NONE_MATCH")
        if inm is not None:
            return if_none_match_hits(inm, self.etag)
        ims = environ.get("HTTP_IF_MODIFIED_SINCE")
        return ims is not None and not_modified_since(ims, self.last_modified_ts)

    @property
    def size(self) -> int:
        return len(self.body) + 600


# --- replay ---------------------------------------------------------------------------


class Replay:
    """WSGI middleware: answers a GET or HEAD that Flask answered before, for the same
    content version and the same inputs, from the Prepared that Flask answered with.
    It only answers: metrics.Accounting, outside it, counts and logs every answer."""

    def __init__(self, app: WSGIApplication, svc: FeedService, max_bytes: int) -> None:
        self.app = app
        self.svc = svc
        self._lock = threading.Lock()
        # (bytes of the key, Prepared): the bound counts what a request chose, too.
        self._entries: LRUCache[tuple[Any, ...], tuple[int, Prepared]] = LRUCache(
            maxsize=max_bytes, getsizeof=lambda kept: kept[0] + kept[1].size)
        self._max_limit = svc.settings.max_limit
        self._by_host = not svc.settings.site_base
        self._version: int | None = None

    def _key(self, environ: WSGIEnvironment, version: int) -> tuple[Any, ...] | None:
        """What the answer depends on, and nothing a client may vary freely: the query's
        page, limit and v as the app reads them (unknown parameters, padding and zeros
        ignored), the coding chosen (not the header's spelling), and the scheme and
        Host only when links are made from them (no --base-url). None: not replayed."""
        query = _query_key(environ.get("QUERY_STRING", ""), self._max_limit)
        if query is None:
            return None
        origin: Any = None
        if self._by_host:
            host = environ.get("HTTP_HOST")  # as sent: the links repeat its spelling
            if host is None:
                host = (environ.get("SERVER_NAME"), environ.get("SERVER_PORT"))
            origin = (environ.get("wsgi.url_scheme"), host)
        return (version, environ.get("PATH_INFO", ""), query, origin,
                choose_coding(environ.get("HTTP_ACCEPT_ENCODING", "")))

    def __call__(self, environ: WSGIEnvironment,
                 start_response: StartResponse) -> Iterable[bytes]:
        key = None
        # Only plain GET and HEAD: an RFC 3229 delta request is answered per client.
        if environ.get("REQUEST_METHOD") in ("GET", "HEAD") and "HTTP_A_IM" not in environ:
            version = self.svc.replayable_version()
            key = None if version is None else self._key(environ, version)
            if key is not None:
                with self._lock:
                    if version != self._version:
                        self._entries.clear()
                        self._version = version
                    kept = self._entries.get(key)
                prepared = kept[1] if kept is not None else None
                if prepared is not None:
                    return self._replay(prepared, environ, start_response)
        result = self.app(environ, start_response)
        prepared = environ.get(PREPARED)
        if key is not None and isinstance(prepared, Prepared):
            self._keep(key, prepared)
        return result

    def _keep(self, key: tuple[Any, ...], prepared: Prepared) -> None:
        kept = (_key_size(key), prepared)
        with self._lock:
            if key[0] == self._version and kept[0] + prepared.size <= self._entries.maxsize:
                self._entries[key] = kept

    def _replay(self, prepared: Prepared, environ: WSGIEnvironment,
                start_response: StartResponse) -> Iterable[bytes]:
        self.svc.metrics.cache_hit.inc()
        environ[ROUTE] = prepared.route
        if prepared.not_modified(environ):
            start_response("304 Not Modified", prepared.headers_304)
            return (b"",)
        start_response("200 OK", prepared.headers_200)
        return (b"" if environ["REQUEST_METHOD"] == "HEAD" else prepared.body,)


_QUERY_VALUE_CHARS = frozenset("0123456789abcdefghijklmnopqrstuvwxyz"
                               "ABCDEFGHIJKLMNOPQRSTUVWXYZ._-")


def _query_key(query: str, max_limit: int) -> tuple[Any, ...] | None:
    """(page, limit, v) as the app would read them from ``query``, or None when the
    query is one this cannot read exactly as werkzeug does (an encoded or repeated name,
    an unusual value): such a request is answered by the app and not kept."""
    found: dict[str, str] = {}
    for part in query.split("&") if query else ():
        name, _, value = part.partition("=")
        if "%" in name or "+" in name:
            return None  # might decode to 'page'
        if name not in ("page", "limit", "v"):
            continue  # the app never reads it
        if name in found or not value or len(value) > 64 or \
                not _QUERY_VALUE_CHARS.issuperset(value):
            return None
        found[name] = value
    page, limit = found.get("page"), found.get("limit")
    if page is not None:
        page = page.lstrip("0")[:19]  # '007' is page 7; past 18 digits, past the end
    if limit is not None and limit.isdigit() and limit.lstrip("0"):
        digits = limit.lstrip("0")  # clamped to max_limit, as web._limit does
        limit = str(max_limit if len(digits) > 18 else min(int(digits), max_limit))
    return (page, limit, found.get("v"))


def _key_size(key: tuple[Any, ...]) -> int:
    """Roughly the bytes a key holds: its strings' lengths plus the tuples' overhead."""
    return 200 + sum(len(str(part)) for part in key)
