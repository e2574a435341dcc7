"""feeds: live Atom, RSS and JSON feeds, and a small HTML site, from a folder of
Jekyll-style posts.

A short tour, in the order data flows (nothing imports upstream):

- ``config``   Settings: every knob once (default, help, _config.yml key, flag, env var).
- ``model``    Post, FeedKey and friends: frozen, typed records; no I/O.
- ``parse``    one file -> Post (front matter, Jekyll dates and permalinks); bodies ->
               sanitised HTML with absolute URLs, lazily.
- ``content``  folder -> posts; re-reads only changed files; logs and skips bad ones.
- ``watch``    follows the folder (inotify via watchdog, polling as a fallback).
- ``site``     posts -> SiteIndex (newest first, by category, by tag, by URL); the rule
               for names in URLs.
- ``render``   selection -> Atom / RSS / JSON Feed / OPML bytes (the only feedgen import).
- ``pages``    selection -> HTML pages (Jinja templates).
- ``cache``    composes the above; bounded, locked caches swapped in one step.
- ``web``      the Flask blueprint: routes, validators, 304, compression, errors.
- ``wire``     the exact headers of a 200 and its 304, and the replay that answers a
               repeated request with them before Flask (a dict lookup).
- ``websub``   tells a WebSub hub which feeds changed (a background thread).
- ``server``   ``feeds serve``: waitress, a clean stop on SIGTERM, keep-alive after a 304.
- ``cli``      ``feeds serve | check | build``: flags, logging, progress.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from flask import Flask

from .cache import FeedService
from .config import Settings
from .metrics import Accounting
from .wire import Replay

__all__ = ["Settings", "create_app"]

STATIC_MAX_AGE = 365 * 24 * 3600


class _BaseUrlPrefix:
    """Answers both '/x' and '<baseurl>/x', so the service works behind a proxy that
    keeps the site's path prefix as well as one that strips it."""

    def __init__(self, app: Any, prefix: str) -> None:
        self.app = app
        # PATH_INFO is the decoded path's UTF-8 bytes as latin-1 (PEP 3333); the prefix
        # arrives percent-encoded.
        self.prefix = unquote(prefix).encode("utf-8").decode("latin-1")

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        path = environ.get("PATH_INFO", "")
        if path == self.prefix or path.startswith(self.prefix + "/"):
            environ["PATH_INFO"] = path[len(self.prefix):] or "/"
        return self.app(environ, start_response)


def create_app(settings: Settings | None = None, *, background: bool = False,
               watch: bool | None = None) -> Flask:
    """The Flask app for one content folder. Loads the content now (or, with
    ``background``, on a thread while /healthz answers 503), then follows changes when
    ``watch`` (default: the ``watch`` setting)."""
    from . import web

    settings = settings or Settings()
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    # Pages link the stylesheet as /static/style.css?v=<hash of its bytes>: a new release
    # is a new URL, so browsers and caches may keep this one for a year.
    app.config["SEND_FILE_MAX_AGE_DEFAULT"] = STATIC_MAX_AGE
    svc = FeedService(settings)
    app.extensions["feeds"] = svc
    web.register(app)
    app.wsgi_app = Replay(app.wsgi_app, svc, settings.cache_bytes)  # type: ignore[method-assign]
    if settings.path_prefix:
        app.wsgi_app = _BaseUrlPrefix(app.wsgi_app, settings.path_prefix)  # type: ignore[method-assign]
    app.wsgi_app = Accounting(  # type: ignore[method-assign]
        app.wsgi_app, svc.metrics, as_json=settings.log_format == "json")
    if settings.websub_hub:
        from .websub import Publisher

        publisher = Publisher(svc.metrics, svc.feed_links)
        svc.listeners.append(publisher.on_change)
        svc.stoppers.append(publisher.stop)
        publisher.start()
    svc.start(background=background, watch=watch)
    return app
