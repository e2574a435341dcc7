"""Static files served like every other answer of the service: through ``web.respond``,
so gzip or br when accepted, an ETag made from the bytes (the same on every instance and
clone), 304 on If-None-Match, HEAD. No Last-Modified: a file's mtime differs between
clones and says nothing a reader could use; the ETag is the validator.

A shipped file (``assets.ASSETS``) may be cached for a year, but only under the URL
whose ``?v=`` is the hash of its current bytes, the URL the pages and feeds link; any
other URL of it gets the feeds' short max-age, so a release reaches every browser.

The site's own ``feed.xslt.xml`` is read again whenever the file changes on disk.
"""

from __future__ import annotations

import logging
import os
import stat
import threading

from flask import Blueprint, Flask, Response, current_app, g, request

from . import assets
from .cache import NotFound
from .disk import read_post
from .parse import PostError
from .rendered import Rendered
from .web import respond
from .wire import PREPARED

logger = logging.getLogger(__name__)

bp = Blueprint("static_files", __name__)

IMMUTABLE = "public, max-age=31536000, immutable"
MAX_SITE_XSLT_BYTES = 1 << 20

_RENDERED = {name: Rendered(a.body, a.content_type) for name, a in assets.ASSETS.items()}


@bp.get("/static/<name>")
def shipped(name: str) -> Response:
    g.route = "static"
    asset = assets.ASSETS.get(name)
    if asset is None:
        raise NotFound
    current = request.args.get("v") == asset.version
    return respond(_RENDERED[name], cache_control=IMMUTABLE if current else None)


class SiteFile:
    """A file of the content folder, kept as a Rendered until its (mtime, size, inode)
    changes. Locked: waitress serves from a thread pool."""

    def __init__(self, path: str, content_type: str) -> None:
        self.path = path
        self.content_type = content_type
        self._lock = threading.Lock()
        self._kept: tuple[tuple[int, int, int], Rendered] | None = None

    def get(self) -> Rendered | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        if not stat.S_ISREG(st.st_mode):
            return None
        stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        with self._lock:
            if self._kept is not None and self._kept[0] == stamp:
                return self._kept[1]
        try:
            # The disk reader, not open(): the file may have become a FIFO since the
            # stat above, and a plain open() of one blocks the thread until a writer comes.
            data, _stamp = read_post(os.path.dirname(self.path), os.path.basename(self.path),
                                     MAX_SITE_XSLT_BYTES)
        except PostError as e:
            logger.warning("%s: not served: %s", self.path, e.message)
            return None
        rendered = Rendered(data, self.content_type)
        with self._lock:
            self._kept = (stamp, rendered)
        return rendered


@bp.get(f"/{assets.SITE_XSLT}")
def site_xslt() -> Response:
    g.route = "static"
    site_file: SiteFile = current_app.extensions["feeds.site_xslt"]
    rendered = site_file.get()
    if rendered is None:
        raise NotFound
    response = respond(rendered)
    # Its bytes follow the file, not the content version the replay is keyed by.
    request.environ.pop(PREPARED, None)
    return response


def register(app: Flask) -> None:
    """Serve /static/<name> and the site's /feed.xslt.xml (in place of Flask's own
    static route, which answers with mtime validators and no compression)."""
    svc = app.extensions["feeds"]
    app.extensions["feeds.site_xslt"] = SiteFile(
        assets.site_xslt_path(svc.settings.content), assets.XSLT_TYPE)
    app.register_blueprint(bp)
