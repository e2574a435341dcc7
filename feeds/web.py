"""The thin HTTP layer: routes (the paths of ``links``, kinds x formats), validators and
304s, compression, caching headers, CORS, 404 and 400. With wire.py (the exact headers,
and the replay of repeated requests) and rendered.py (a rendering's validators) the only
modules that know HTTP."""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.datastructures import Headers

from . import links
from .cache import NotFound
from .metrics import ROUTE
from .model import FEED_FORMATS, FeedKey, Format, Kind
from .rendered import Delta, Rendered
from .service import FeedService, NotReady
from .site import segment_to_name
from .wire import PREPARED, Prepared, coding_for, validators

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

logger = logging.getLogger(__name__)

bp = Blueprint("feeds", __name__)


class BadRequest(Exception):
    """A query parameter that is not what it must be; the message says why."""


def service() -> FeedService:
    svc: FeedService = current_app.extensions["feeds"]
    return svc


_HOST = re.compile(r"(?:[a-z0-9](?:[a-z0-9_.-]{0,252})|\[[0-9a-f:.]{2,45}\])(?::([0-9]{1,5}))?",
                   re.IGNORECASE)
"""A Host header (RFC 9110 7.2) as one site's clients send it: a DNS name or an IPv4
address, or an IPv6 literal in brackets, then maybe a port. No userinfo, no spaces."""


@bp.before_app_request
def _check_host() -> None:
    """400 for a Host no client of a real site sends (RFC 9112 3.2 asks for it): without
    --base-url it would go into every link of the answer."""
    host = request.environ.get("HTTP_HOST")
    if host is None:
        return  # HTTP/1.0 without Host: links are made from the listening address
    found = _HOST.fullmatch(host)
    if found is None or (found.group(1) is not None and not 0 < int(found.group(1)) < 65536):
        raise BadRequest(f"invalid Host header {host[:80]!r}")


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


# --- answers -----------------------------------------------------------------------------


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
    return coding_for(rendered, request.headers.get("Accept-Encoding", ""))


def respond(rendered: Rendered, *, cors: bool = False, hub: str = "",
            cache_control: str | None = None) -> Response:
    """200 (compressed when it pays), or 304 when the client's validators match. A 304
    and a HEAD carry the headers of the 200 (HEAD: werkzeug drops the body only). The
    Prepared answer is left for wire.Replay, which answers the next such request.
    Cache-Control is the feeds' max-age unless ``cache_control`` says otherwise."""
    if rendered.partial:  # a body could not be read: no client or replay may keep it
        cache_control = "no-store"
    prepared = Prepared(rendered, _coding(rendered), cors=cors, hub=hub,
                        max_age=service().settings.cache_max_age, route=g.route,
                        cache_control=cache_control)
    if not rendered.partial:
        request.environ[PREPARED] = prepared
    if prepared.not_modified(request.environ):
        return _NotModified(status=304, headers=prepared.headers_304)
    return Response(prepared.body, headers=prepared.headers_200)


# --- routes -----------------------------------------------------------------------------


def _feed(kind: Kind, name: str, fmt: Format) -> Response:
    g.route = f"feed_{kind.value}"
    key = FeedKey(kind, name, fmt, _page(), _limit())
    svc = service()
    base = base_url()
    hub = svc.settings.hub_url(base)
    inm = request.headers.get("If-None-Match")
    if inm and _wants_feed_delta():
        delta = svc.delta(key, base, inm.split(","))
        if delta is not None:
            return _delta_response(delta, hub)
    rendered = svc.feed(key, base)
    # A full 200 is a right answer to a delta request too, so it may be shared as usual.
    return respond(rendered, cors=True, hub=hub)


def _wants_feed_delta() -> bool:
    """Whether A-IM lists the 'feed' instance manipulation (RFC 3229 + feed)."""
    codings = request.headers.get("A-IM", "").split(",")
    return any(c.partition(";")[0].strip().lower() == "feed" for c in codings)


def _delta_response(delta: Delta, hub: str) -> Response:
    """226 IM Used with a feed of the new and changed entries, or 304 when the client
    holds the current version (cache.delta). The ETag is the one the full feed has now
    (in the encoding a plain GET would get), so the client's next request names the
    version it then holds. Private: a
    shared cache must never hand one client's delta to another."""
    current = delta.current
    _body, etag = current.encoded(_coding(current))
    headers = validators(current, etag, cors=True, hub=hub)
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
    return respond(service().page(what, _page(), base_url()))


def _any(formats: tuple[Format, ...]) -> str:
    return "any(" + ",".join(f.value for f in formats) + ")"


_NAME = "<path:name>"
"""The URL rule's placeholder for a category or tag name, where links puts a segment."""

FORMATS_RE = _any((*FEED_FORMATS, Format.HTML))
for _kind in links.TERM_KINDS:
    bp.add_url_rule(f"{links.term_stem(_kind, _NAME)}.<{FORMATS_RE}:fmt>",
                    view_func=_term_route(_kind), methods=["GET"])


@bp.get(f"{links.SITE_FEED}.<{_any(FEED_FORMATS)}:fmt>")
def site_feed(fmt: str) -> Response:
    return _feed(Kind.SITE, "", Format(fmt))


# jekyll-feed's paths, so subscribers of a former Jekyll site keep working.
@bp.get(links.jekyll_path(Kind.SITE))
def jekyll_site_feed() -> Response:
    return _feed(Kind.SITE, "", Format.ATOM)


@bp.get(links.jekyll_path(Kind.TAG, _NAME))
def jekyll_tag_feed(name: str) -> Response:
    tag = segment_to_name(name)
    if not links.tag_path_serves(service().settings, tag):
        raise NotFound
    return _feed(Kind.TAG, tag, Format.ATOM)


@bp.get(links.jekyll_path(Kind.CATEGORY, _NAME))
def jekyll_category_feed(name: str) -> Response:
    # feed.collections' feeds share the space: /feed/<collection>[/<category>].xml.
    found = links.configured(service().settings, f"{links.SITE_FEED}/{name}.xml")
    if found is not None and found[0] is Kind.COLLECTION:
        return _feed(found[0], found[1], Format.ATOM)
    return _feed(Kind.CATEGORY, segment_to_name(name), Format.ATOM)


@bp.get(links.OPML)
def opml() -> Response:
    g.route = "opml"
    return respond(service().opml(base_url()), cors=True)


@bp.get(links.HOME)
def index() -> Response:
    return _page_response(("index",))


@bp.get("/healthz")
def healthz() -> Response:
    g.route = "healthz"
    health = service().health()
    # 'degraded' is still 200: the last good content is served, and a load balancer
    # should keep sending traffic; operators alert on the status in the JSON.
    status = 200 if health["status"] in ("ok", "degraded") else 503
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
    # The paths _config.yml's feed: gives (feed.path, feed.tags.path) are data, not
    # rules: they change when _config.yml does.
    found = links.configured(service().settings, "/" + path)
    if found is not None:
        return _feed(found[0], found[1], Format.ATOM)
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


# --- the route label --------------------------------------------------------------------


@bp.after_app_request
def _label(response: Response) -> Response:
    """Names the route of this answer (error handlers' answers included) for
    metrics.Accounting, the outermost layer, which counts, times and logs it."""
    request.environ[ROUTE] = g.get("route") or (
        request.url_rule.endpoint if request.url_rule else "unknown")
    return response


def register(app: Flask) -> None:
    app.register_blueprint(bp)
