"""The thin HTTP layer: routes (built from kinds x formats), validators and 304s,
compression, caching headers, CORS, 404 and 400. Only this module knows HTTP."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from email.utils import parsedate_to_datetime
from typing import Any

from flask import Blueprint, Flask, Response, current_app, g, request

from .cache import FeedService, NotReady, Rendered
from .model import FEED_FORMATS, FeedKey, Format, Kind
from .site import segment_to_name

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
    return settings.site_base or request.host_url.rstrip("/") + settings.path_prefix


def _positive(name: str) -> int | None:
    raw = request.args.get(name)
    if raw is None:
        return None
    if not raw.isdigit() or int(raw) < 1:
        raise BadRequest(f"{name} must be a positive integer, got {raw[:40]!r}")
    return int(raw)


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
    if rendered.last_modified_ts is None:
        return False
    try:
        since = parsedate_to_datetime(header).timestamp()
    except (TypeError, ValueError, IndexError, OverflowError):
        return False
    return rendered.last_modified_ts <= since


def respond(rendered: Rendered, *, cors: bool = False, feed_url: str = "",
            private: bool = False, status: int = 200) -> Response:
    """200 (compressed when it pays), or 304 when the client's validators match."""
    settings = service().settings
    coding = "identity"
    if len(rendered.body) > COMPRESS_MIN:
        coding = choose_coding(request.headers.get("Accept-Encoding", ""))
    body, etag = rendered.encoded(coding)
    headers: list[tuple[str, str]] = [
        ("ETag", etag),
        ("Cache-Control", "private, no-store" if private
         else f"public, max-age={settings.cache_max_age}"),
        ("Vary", "Accept-Encoding"),
    ]
    if rendered.last_modified:
        headers.append(("Last-Modified", rendered.last_modified))
    if coding != "identity":
        headers.append(("Content-Encoding", coding))
    if cors:
        headers.append(("Access-Control-Allow-Origin", "*"))
    if feed_url and settings.websub_hub:
        headers.append(("Link", f'<{settings.websub_hub}>; rel="hub"'))
        headers.append(("Link", f'<{feed_url}>; rel="self"'))
    if status == 200:
        inm = request.headers.get("If-None-Match")
        if inm is not None:
            not_modified = _if_none_match_hits(inm, etag)
        else:
            ims = request.headers.get("If-Modified-Since")
            not_modified = ims is not None and _not_modified_since(ims, rendered)
        if not_modified:
            return Response(status=304, headers=headers)
    response = Response(body, status=status, headers=headers,
                        content_type=rendered.content_type)
    return response


# --- routes -----------------------------------------------------------------------------


def _feed(kind: Kind, name: str, fmt: Format) -> Response:
    g.route = f"feed_{kind.value}"
    key = FeedKey(kind, name, fmt, _page(), _limit())
    svc = service()
    base = base_url()
    if request.headers.get("A-IM", "").strip().lower().startswith("feed") and \
            request.headers.get("If-None-Match"):
        delta = svc.delta(key, base, request.headers["If-None-Match"].split(","))
        if delta is not None:
            return _delta_response(delta)
    rendered = svc.feed(key, base)
    if rendered is None:
        raise NotFound
    response = respond(rendered, cors=True, feed_url=base + request.full_path.rstrip("?"))
    response.headers.add("Vary", "A-IM, If-None-Match")
    return response


def _delta_response(delta: Rendered) -> Response:
    if not delta.body:
        response = Response(status=304)
    else:
        response = Response(delta.body, status=226, content_type=delta.content_type)
        response.headers["IM"] = "feed"
        response.headers["ETag"] = delta.etag
    response.headers["Cache-Control"] = "private, no-store"
    response.headers["Vary"] = "A-IM, If-None-Match, Accept-Encoding"
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


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
    env = request.environ
    size = response.content_length
    fields: dict[str, Any] = {
        "remote": request.remote_addr or "-",
        "time": time.strftime("%d/%b/%Y:%H:%M:%S %z"),
        "request": f"{request.method} {env.get('RAW_URI') or request.full_path.rstrip('?')} "
                   f"{env.get('SERVER_PROTOCOL', 'HTTP/1.1')}",
        "status": response.status_code,
        "bytes": size if size is not None else 0,
        "referer": request.headers.get("Referer", "-"),
        "agent": request.headers.get("User-Agent", "-"),
        "seconds": round(elapsed, 6),
    }
    if current_app.config.get("FEEDS_LOG_JSON"):
        access_logger.info(json.dumps(fields, ensure_ascii=False))
    else:
        access_logger.info('%s - - [%s] "%s" %s %s "%s" "%s" %.4f', fields["remote"],
                           fields["time"], fields["request"], fields["status"],
                           fields["bytes"] or "-", fields["referer"], fields["agent"],
                           elapsed)


def register(app: Flask) -> None:
    app.register_blueprint(bp)
