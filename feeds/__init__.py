"""feeds: live Atom, RSS and JSON feeds, and a small HTML site, from a folder of
Jekyll-style posts.

A short tour, in the order data flows (each module imports only modules above it;
``export`` and ``server`` make the app with ``create_app``, here, which imports the web
stack when it is called):

- ``model``    Post, FeedKey and friends: frozen, typed records; no I/O.
- ``parse``    one file -> Post (front matter, Jekyll dates and permalinks); bodies, as
               Jekyll renders them (Liquid, then kramdown's Markdown) -> sanitised HTML
               with absolute URLs, lazily.
- ``config_file`` the folder's _config.yml, read with front matter's YAML guard; its stamp.
- ``jekyllconf`` jekyll-feed's ``feed:`` settings, front-matter defaults and
               ``_data/authors.yml``, as typed values.
- ``setting_values`` how each setting's value is read (typed, or a ValueError saying why).
- ``config``   Settings: every knob once (default, help, _config.yml key, flag, env var).
- ``logs``     logging in one place: the service log (text or JSON), the access log
               (combined or JSON, written in batches), waitress's warnings rate-limited.
- ``metrics``  the Prometheus counters, one registry per app, and ``Accounting``, the
               outermost WSGI layer, which counts, times and logs every answer.
- ``disk``     the one reader of post files: non-blocking, regular files only, the file
               that was indexed or a clear error.
- ``scan``     the walk of the folder, a full scan's unlocked halves, the folder's look.
- ``settle``   when a post file caught being written is read again.
- ``removals`` files a change removed, put back when the folder itself goes just after.
- ``snapshot`` one consistent, frozen state of the content folder.
- ``parsed``   one file's parse as the persisted index keeps it, and as a row's JSON.
- ``postcache`` the persisted index (``index_dir``): parsed front matter in SQLite, so
               a restart parses only the files changed while it was stopped.
- ``statefile`` the load state's file: the files a load was made of, its outcome; how
               it is checked against the folder, written and read back (nothing that
               runs code).
- ``loadstate`` a whole load's outcome kept beside the index, posts and site index as
               made, so a restart where no file changed makes neither again.
- ``loadwork`` a whole load's parsing shared with forked helpers (``load_workers``).
- ``storebase`` what a content store holds (the tables of what each file gave, the
               index, load state and helpers it reads with), and what only reads it.
- ``content``  folder -> posts; re-reads only changed files; logs and skips bad ones.
- ``events``   what watchdog's events say: the paths a change touched, the folder
               itself gone, files written and still open (read once quiet).
- ``watch``    follows the folder (inotify via watchdog, polling as a fallback).
- ``names``    names in URLs: a category or tag name as a path segment and back.
- ``site``     posts -> SiteIndex (newest first, by category, by tag, by URL); the rule
               for names in URLs; State, a snapshot with its index.
- ``links``    every URL: which lists (site, categories, tags) have feeds and pages, their
               paths, titles and paging, and the list of every URL of the site.
- ``assets``   the shipped stylesheet and feed XSLT: bytes, versions, URLs.
- ``titles``   titles as jekyll-feed writes them (Jekyll's smartify, tags stripped).
- ``safety``   what a reader may act on: http(s) URLs only, authors without XML-illegal
               characters.
- ``jsonfeed`` FeedMeta and Entry, what every feed format is made of; JSON Feed bytes.
- ``render``   selection -> Atom / RSS / JSON Feed / OPML bytes (the only feedgen import).
- ``pages``    selection -> HTML pages (Jinja templates).
- ``rendered`` a rendering as HTTP sends it: ETag, Last-Modified, compressed forms, and
               the versions delta polling compares; the cache bounded in bytes, keys
               counted, that renderings and bodies are kept in.
- ``summaries`` a post's excerpt and summary as jekyll-feed writes them; a body finished
               from its HTML, by the server or its render helper.
- ``renderwork`` a server's body rendering shared with a forked helper
               (``render_workers``).
- ``bodies``   a post as a feed entry: its body rendered once and kept, its excerpt,
               id, link, author and image as jekyll-feed writes them.
- ``cache``    renders feeds, pages and OPML of a state, and keeps them (bounded, locked).
- ``liquid_state`` what bodies' Liquid sees of a state (site.*, post URLs, its version).
- ``service``  the life of the content: load, watch, swap in each new state, health.
- ``wire``     the exact headers of a 200 and its 304, and the replay that answers a
               repeated request with them before Flask (a dict lookup).
- ``web``      the Flask blueprint: routes, validators, 304, compression, errors.
- ``static_files`` serves the assets (and a site's own feed.xslt.xml) through web.respond.
- ``websub``   tells a WebSub hub which feeds changed (a background thread).
- ``hubnet``   the built-in hub's calls to subscribers: SSRF-safe, one deadline a call.
- ``hubstore`` the built-in hub's subscriptions in SQLite.
- ``hubwork``  the built-in hub's worker pool.
- ``hub``      ``websub_hub: self``: the service as its own WebSub hub (verification,
               leases, signed pushes).
- ``hubweb``   the built-in hub's endpoint, ``/websub``.
- ``buildgroups`` the site's URLs in groups a build fingerprints whole: a list's blocks,
               runs of post pages, the URLs made every time.
- ``buildstate`` what each file of a build was made from (a fingerprint a URL and a
               group), kept beside the output, so the next build renders only what changed.
- ``buildwork`` how a build asks for each URL (one GET through the whole WSGI stack), and
               the URLs split across processes forked once the content is loaded.
- ``buildplan`` what a build keeps (groups whole, or URL by URL) and makes; the last
               build's files looked at in a forked process while the content loads.
- ``export``   ``feeds build``: every URL of the site written as static files.
- ``server``   ``feeds serve``: waitress, a clean stop on SIGTERM, keep-alive after a 304,
               a guard against slow and idle connections.
- ``cli``      ``feeds serve | check | build``: flags, progress.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import unquote

from .config import Settings

if TYPE_CHECKING:
    from flask import Flask

    from .content import ContentStore
    from .renderwork import RenderHelper

__all__ = ["Settings", "create_app"]
# The web stack (Flask, the service and its renderers) is imported by create_app, not
# here: a server begins its first load (content, loadwork) before it imports them.


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
               watch: bool | None = None, render_helper: RenderHelper | None = None,
               store: ContentStore | None = None) -> Flask:
    """The Flask app for one content folder. Loads the content now (or, with
    ``background``, on a thread while /healthz answers 503), then follows changes when
    ``watch`` (default: the ``watch`` setting). ``render_helper`` renders part of the
    bodies (renderwork); the app ends it when it stops. ``store``: the folder's content
    store, its first load perhaps begun (ContentStore.begin)."""
    from flask import Flask

    from . import links, static_files, web
    from .metrics import Accounting
    from .service import FeedService
    from .wire import Replay

    settings = settings or Settings()
    # No Flask static route: static_files serves /static/ like the feeds (gzip, ETags
    # from the bytes, a year's max-age only for the URL carrying the current hash).
    app = Flask(__name__, static_folder=None)
    app.json.ensure_ascii = False  # type: ignore[attr-defined]
    svc = FeedService(settings, store=store)
    app.extensions["feeds"] = svc
    if render_helper is not None:
        svc.cache.bodies.helper = render_helper
        svc.store.states.helper = render_helper  # (it stats the files of a warm start)
        svc.stoppers.append(render_helper.close)
        svc.metrics.helper_up.set_function(lambda: float(render_helper.alive))
        svc.metrics.helper_bodies.set_function(lambda: float(render_helper.done))
    web.register(app)
    static_files.register(app)
    app.wsgi_app = Replay(app.wsgi_app, svc, settings.cache_bytes)  # type: ignore[method-assign]
    if settings.path_prefix:
        app.wsgi_app = _BaseUrlPrefix(app.wsgi_app, settings.path_prefix)  # type: ignore[method-assign]
    app.wsgi_app = Accounting(  # type: ignore[method-assign]
        app.wsgi_app, svc.metrics, as_json=settings.log_format == "json")
    if settings.self_hub:
        from . import hubweb

        hubweb.register(app)
    elif settings.websub_hub:
        from .websub import Publisher

        publisher = Publisher(svc.metrics, links.feed_urls)
        svc.listeners.append(publisher.on_change)
        svc.stoppers.append(publisher.stop)
        publisher.start()
    svc.start(background=background, watch=watch)
    return app
