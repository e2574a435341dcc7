"""The thin HTTP layer: routes (built from kinds x formats), validators and 304s,
compression, caching headers, CORS, 404 and 400. Only this module knows HTTP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import UTC
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.datastructures import Headers

from .cache import Delta, FeedService, NotReady, Rendered
from .model import FEED_FORMATS, FeedKey, Format, Kind
from .site import segment_to_name

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("feeds.access")

bp = Blueprint("feeds", __name__)
COMPRESS_MIN = 1024


class BadRequest(Exception):
    """A query parameter that is not what it must be; the message says why."""


class NotFound(Exception):
    pass


def service() -> FeedService:
    svc: FeedService = current_app.extensions["feeds"]
    return svc


def base_url() -> str:
    settings = service().settings
    if settings.site_base:
        return settings.site_base
    # request.scheme and request.host are what request.host_url is made of, without
    # its IRI decoding, which cost more than the rest of a cached feed response.
    return f"{request.scheme}://{request.host}{settings.path_prefix}"


HUGE = 10**18
"""Stands for any larger number: clamped as a limit, past the end as a page."""


def _positive(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    # ASCII digits only: str.isdigit() also accepts '²' and other digits int() refuses.
    digits = raw.lstrip("0")
    if not raw.isascii() or not raw.isdigit() or not digits:
        raise BadRequest(f"{name} must be a positive integer, got {raw[:40]!r}")
    # int() refuses more than 4300 digits; anything past 18 is too many anyway.
    return int(digits) if len(digits) < 19 else HUGE


def _page() -> int:
    return _positive("page") or 1


def _limit() -> int:
    settings = service().settings
    limit = _positive("limit")
    return settings.posts_limit if limit is None else min(limit, settings.max_limit)


# --- content negotiation and validators ------------------------------------------------

_CODING_CACHE: dict[str, str] = {}


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
    if len(_CODING_CACHE) < 1000:
        _CODING_CACHE[header] = coding
    return coding


def _if_none_match_hits(header: str, etag: str) -> bool:
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


def _not_modified_since(header: str, rendered: Rendered) -> bool:
    """Whether the representation is no newer than an If-Modified-Since date. Both sides
    are whole seconds: Last-Modified is the newest 'updated' rounded down."""
    if rendered.last_modified_ts is None:
        return False
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    if since.tzinfo is None:  # asctime dates and '-0000' carry no zone: HTTP means GMT
        since = since.replace(tzinfo=UTC)
    return rendered.last_modified_ts <= since.timestamp()


def _not_modified(rendered: Rendered, etag: str) -> bool:
    """The conditional GET/HEAD rules of RFC 9110 13.2.2: If-None-Match when sent, else
    If-Modified-Since."""
    inm = request.headers.get("If-None-Match")
    if inm is not None:
        return _if_none_match_hits(inm, etag)
    ims = request.headers.get("If-Modified-Since")
    return ims is not None and _not_modified_since(ims, rendered)


class _NotModified(Response):
    """A 304 that keeps Last-Modified: werkzeug strips it with the representation
    headers, but a 304 carries the same validators as the 200 it stands for."""

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        headers = super().get_wsgi_headers(environ)
        last_modified = self.headers.get("Last-Modified")
        if last_modified and "Last-Modified" not in headers:
            headers["Last-Modified"] = last_modified
        return headers


def _coding(rendered: Rendered) -> str:
    if len(rendered.body) <= COMPRESS_MIN:
        return "identity"
    return choose_coding(request.headers.get("Accept-Encoding", ""))


def _headers(rendered: Rendered, etag: str, cors: bool, hub: str) -> list[tuple[str, str]]:
    headers = [("ETag", etag)]
    if rendered.last_modified:
        headers.append(("Last-Modified", rendered.last_modified))
    if cors:
        headers.append(("Access-Control-Allow-Origin", "*"))
    if hub and rendered.self_url:
        headers.append(("Link", f'<{hub}>; rel="hub", <{rendered.self_url}>; rel="self"'))
    return headers


def respond(rendered: Rendered, *, cors: bool = False, hub: str = "") -> Response:
    """200 (compressed when it pays), or 304 when the client's validators match. A 304
    and a HEAD carry the headers of the 200 (HEAD: werkzeug drops the body only)."""
    coding = _coding(rendered)
    body, etag = rendered.encoded(coding)
    headers = _headers(rendered, etag, cors, hub)
    headers += [("Cache-Control", f"public, max-age={service().settings.cache_max_age}"),
                ("Vary", "Accept-Encoding")]
    if _not_modified(rendered, etag):
        return _NotModified(status=304, headers=headers)
    if coding != "identity":
        headers.append(("Content-Encoding", coding))
    return Response(body, headers=headers, content_type=rendered.content_type)


# --- routes -----------------------------------------------------------------------------


def _feed(kind: Kind, name: str, fmt: Format) -> Response:
    g.route = f"feed_{kind.value}"
    key = FeedKey(kind, name, fmt, _page(), _limit())
    svc = service()
    base = base_url()
    hub = svc.settings.websub_hub
    inm = request.headers.get("If-None-Match")
    if inm and _wants_feed_delta():
        delta = svc.delta(key, base, inm.split(","))
        if delta is not None:
            return _delta_response(delta, hub)
    rendered = svc.feed(key, base)
    if rendered is None:
        raise NotFound
    # A full 200 is a right answer to a delta request too, so it may be shared as usual.
    return respond(rendered, cors=True, hub=hub)


def _wants_feed_delta() -> bool:
    """Whether A-IM lists the 'feed' instance manipulation (RFC 3229 + feed)."""
    codings = request.headers.get("A-IM", "").split(",")
    return any(c.partition(";")[0].strip().lower() == "feed" for c in codings)


def _delta_response(delta: Delta, hub: str) -> Response:
    """226 IM Used with a feed of the new and changed entries, or 304 when there are
    none. The ETag is the one the full feed has now (in the encoding a plain GET would
    get), so the client's next request names the version it then holds. Private: a
    shared cache must never hand one client's delta to another."""
    current = delta.current
    _body, etag = current.encoded(_coding(current))
    headers = _headers(current, etag, True, hub)
    headers += [("Cache-Control", "private, no-store"),
                ("Vary", "Accept-Encoding, A-IM, If-None-Match")]
    changes = delta.changes
    if changes is None:
        return _NotModified(status=304, headers=headers)
    coding = _coding(changes)
    body, _etag = changes.encoded(coding)
    headers.append(("IM", "feed"))
    if coding != "identity":
        headers.append(("Content-Encoding", coding))
    return Response(body, status=226, headers=headers, content_type=changes.content_type)


def _term_route(kind: Kind) -> Callable[[str, str], Response]:
    def view(name: str, fmt: str) -> Response:
        decoded = segment_to_name(name)
        if fmt == Format.HTML.value:
            return _page_response((kind.value, decoded))
        return _feed(kind, decoded, Format(fmt))

    view.__name__ = f"{kind.value}_view"
    return view


def _page_response(what: tuple[str, ...]) -> Response:
    g.route = f"page_{what[0]}"
    rendered = service().page(what, _page(), base_url())
    if rendered is None:
        raise NotFound
    return respond(rendered)


FORMATS_RE = "any(" + ",".join(f.value for f in (*FEED_FORMATS, Format.HTML)) + ")"
for _kind in (Kind.CATEGORY, Kind.TAG):
    bp.add_url_rule(f"/{_kind.value}/<path:name>.<{FORMATS_RE}:fmt>",
                    view_func=_term_route(_kind), methods=["GET"])


@bp.get("/feed.<any(atom,rss,json):fmt>")
def site_feed(fmt: str) -> Response:
    return _feed(Kind.SITE, "", Format(fmt))


# jekyll-feed's paths, so subscribers of a former Jekyll site keep working.
@bp.get("/feed.xml")
def jekyll_site_feed() -> Response:
    return _feed(Kind.SITE, "", Format.ATOM)


@bp.get("/feed/by_tag/<path:name>.xml")
def jekyll_tag_feed(name: str) -> Response:
    return _feed(Kind.TAG, segment_to_name(name), Format.ATOM)


@bp.get("/feed/<path:name>.xml")
def jekyll_category_feed(name: str) -> Response:
    return _feed(Kind.CATEGORY, segment_to_name(name), Format.ATOM)


@bp.get("/feeds.opml")
def opml() -> Response:
    g.route = "opml"
    return respond(service().opml(base_url()), cors=True)


@bp.get("/")
def index() -> Response:
    return _page_response(("index",))


@bp.get("/healthz")
def healthz() -> Response:
    g.route = "healthz"
    health = service().health()
    status = 200 if health["status"] == "ok" else 503
    response = Response(json.dumps(health, ensure_ascii=False), status=status,
                        content_type="application/json; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    response.headers["Access-Control-Allow-Origin"] = "*"
    if status == 503:
        response.headers["Retry-After"] = "1"
    return response


@bp.get("/metrics")
def metrics() -> Response:
    g.route = "metrics"
    from prometheus_client import CONTENT_TYPE_LATEST

    return Response(service().metrics.exposition(), content_type=CONTENT_TYPE_LATEST)


@bp.get("/<path:path>")
def post_page(path: str) -> Response:
    return _page_response(("post", "/" + path))


# --- errors -----------------------------------------------------------------------------


def _plain(status: int, text: str) -> Response:
    response = Response(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    response.headers["Cache-Control"] = "no-store" if status >= 500 else "public, max-age=60"
    return response


@bp.app_errorhandler(NotFound)
def not_found(_e: NotFound) -> Response:
    return _plain(404, "not found")


@bp.app_errorhandler(BadRequest)
def bad_request(e: BadRequest) -> Response:
    return _plain(400, str(e))


@bp.app_errorhandler(NotReady)
def not_ready(_e: NotReady) -> Response:
    response = _plain(503, "loading content, try again in a moment")
    response.headers["Retry-After"] = "1"
    return response


# --- access log and metrics -------------------------------------------------------------


@bp.before_app_request
def _start_timer() -> None:
    g.started = time.perf_counter()


@bp.after_app_request
def _account(response: Response) -> Response:
    elapsed = time.perf_counter() - g.get("started", time.perf_counter())
    route = g.get("route") or (request.url_rule.endpoint if request.url_rule else "unknown")
    svc: FeedService = current_app.extensions["feeds"]
    svc.metrics.requests.labels(route, str(response.status_code)).inc()
    svc.metrics.latency.labels(route).observe(elapsed)
    if access_logger.isEnabledFor(logging.INFO):
        _log_access(response, elapsed)
    return response


def _log_access(response: Response, elapsed: float) -> None:
    """One line per request: the combined log format (as Apache and nginx write it), or
    with --log-format json one JSON object with the same facts and the duration."""
    env = request.environ
    size = response.content_length or 0
    # REQUEST_URI (waitress) is the target as the client sent it, still percent-encoded.
    uri = env.get("REQUEST_URI") or env.get("RAW_URI") or request.full_path.rstrip("?")
    protocol = env.get("SERVER_PROTOCOL", "HTTP/1.1")
    remote = request.remote_addr or "-"
    referer = request.headers.get("Referer", "-")
    agent = request.headers.get("User-Agent", "-")
    if current_app.config.get("FEEDS_LOG_JSON"):
        access_logger.info(json.dumps({
            "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "remote": remote,
            "method": request.method, "uri": uri, "protocol": protocol,
            "status": response.status_code, "bytes": size, "referer": referer,
            "agent": agent, "seconds": round(elapsed, 6),
        }, ensure_ascii=False))
    else:
        access_logger.info('%s - - [%s] "%s %s %s" %d %s "%s" "%s"', remote,
                           time.strftime("%d/%b/%Y:%H:%M:%S %z"), request.method,
                           _escape(uri), protocol, response.status_code, size or "-",
                           _escape(referer), _escape(agent))


def _escape(text: str) -> str:
    """Quotes, backslashes and unprintable characters as escapes, as Apache writes them,
    so a client cannot break a log line apart or forge one."""
    return "".join(
        "\\" + ch if ch in '"\\' else f"\\x{ord(ch):02x}" if not " " <= ch <= "~" else ch
        for ch in text)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
