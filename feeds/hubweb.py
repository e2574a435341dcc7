"""The built-in hub's HTTP side: ``POST <base>/websub`` (a Flask blueprint), the checks
of a subscription request, and which URLs are topics.

A topic is the URL of one of the service's feeds, first page, as its rel="self" names it
(``<base>/feed.atom``, ``<base>/tag/<name>.json`` ...) or by a jekyll-feed path
(``<base>/feed.xml``). The checks here are the ones that need no network: the request
thread answers at once, and a callback that hangs only ever holds a hub worker.
"""

from __future__ import annotations

from urllib.parse import unquote

from flask import Blueprint, Flask, Response, current_app, g, request
from werkzeug.datastructures import MultiDict

from . import links
from .config import Settings
from .hub import HUB_PATH, Hub, HubError
from .hubnet import CallbackError, Feed, Intent, literal_refusal, parse_callback
from .model import FEED_FORMATS, Format, Kind
from .site import segment_to_name
from .web import base_url

MAX_REQUEST_BYTES = 16 * 1024
MAX_TOPIC_CHARS = 2048
MAX_SECRET_BYTES = 199
"""The Recommendation: hub.secret MUST be less than 200 bytes."""

bp = Blueprint("websub_hub", __name__)


def topic_feed(topic: str, base: str, settings: Settings | None = None) -> Feed | None:
    """The feed a topic URL names under ``base``, or None when it names none. With
    ``settings``, the paths ``feed:`` adds too (``feed.path``, a moved tag path, the
    feeds of ``feed.collections``)."""
    if not topic.startswith(base + "/") or "?" in topic or "#" in topic:
        return None
    path = unquote(topic[len(base):], errors="strict")
    configured = links.configured(settings, path) if settings is not None else None
    if configured is not None:
        return configured[0], configured[1], Format.ATOM
    formats = {fmt.value: fmt for fmt in FEED_FORMATS}
    stem, _dot, ext = path.rpartition(".")
    if stem == "/feed":
        if ext == "xml":
            return Kind.SITE, "", Format.ATOM
        return (Kind.SITE, "", formats[ext]) if ext in formats else None
    for kind in (Kind.CATEGORY, Kind.TAG):
        prefix = f"/{kind.value}/"
        if stem.startswith(prefix) and len(stem) > len(prefix) and ext in formats:
            return kind, segment_to_name(stem[len(prefix):]), formats[ext]
    if ext == "xml" and stem.startswith("/feed/by_tag/") and len(stem) > 13:
        return Kind.TAG, segment_to_name(stem[13:]), Format.ATOM
    if ext == "xml" and stem.startswith("/feed/") and len(stem) > 6:
        return Kind.CATEGORY, segment_to_name(stem[6:]), Format.ATOM
    return None


def _lease(raw: str | None, settings: Settings) -> int:
    longest = settings.websub_max_lease_seconds
    if raw is None or raw == "":
        return min(settings.websub_lease_seconds, longest)
    if not raw.isascii() or not raw.isdigit() or len(raw) > 12 or int(raw) < 1:
        raise HubError(400, "hub.lease_seconds must be a positive whole number of seconds")
    return min(int(raw), longest)


def parse_intent(form: MultiDict[str, str], base: str, settings: Settings) -> Intent:
    """The request's fields, checked; HubError (4xx and a reason) when one is wrong."""
    mode = form.get("hub.mode", "")
    if mode not in ("subscribe", "unsubscribe"):
        raise HubError(400, "hub.mode must be subscribe or unsubscribe")
    callback = form.get("hub.callback", "")
    topic = form.get("hub.topic", "")
    if not callback or not topic:
        raise HubError(400, "hub.callback and hub.topic are required")
    if len(topic) > MAX_TOPIC_CHARS:
        raise HubError(400, f"hub.topic is longer than {MAX_TOPIC_CHARS} characters")
    try:
        target = parse_callback(callback)
    except CallbackError as e:
        raise HubError(400, f"hub.callback: {e}") from e
    if not settings.websub_allow_private_callbacks:
        why = literal_refusal(target)
        if why:
            raise HubError(403, f"hub.callback refused: {why}")
    secret = form.get("hub.secret", "")
    if len(secret.encode("utf-8")) > MAX_SECRET_BYTES:
        raise HubError(400, f"hub.secret must be less than {MAX_SECRET_BYTES + 1} bytes")
    lease = _lease(form.get("hub.lease_seconds"), settings) if mode == "subscribe" else 0
    try:
        feed = topic_feed(topic, base, settings)
    except UnicodeDecodeError:
        feed = None
    return Intent(mode, topic, callback, target, lease, secret, base, feed)


def _plain(status: int, text: str) -> Response:
    response = Response(text + "\n", status=status, content_type="text/plain; charset=utf-8")
    response.headers["Cache-Control"] = "no-store"
    if status in (429, 503):
        response.headers["Retry-After"] = "60" if status == 429 else "5"
    return response


@bp.post(HUB_PATH)
def hub_endpoint() -> Response:
    g.route = "websub_hub"
    hub: Hub = current_app.extensions["feeds_hub"]
    if (request.content_length or 0) > MAX_REQUEST_BYTES:
        return _plain(413, f"a subscription request is at most {MAX_REQUEST_BYTES} bytes")
    try:
        intent = parse_intent(request.form, base_url(), hub.svc.settings)
        hub.accept(intent)
    except HubError as e:
        return _plain(e.status, e.reason)
    return _plain(202, f"accepted: the hub will verify this {intent.mode} with the callback")


def register(app: Flask) -> Hub:
    """Serve the hub from ``app`` and follow its FeedService's changes; started now,
    stopped with the service."""
    svc = app.extensions["feeds"]
    hub = Hub(svc)
    app.extensions["feeds_hub"] = hub
    app.register_blueprint(bp)
    svc.listeners.append(hub.on_change)
    svc.stoppers.append(hub.stop)
    hub.start()
    return hub
