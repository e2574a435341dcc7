"""The files the service ships besides its templates: the pages' stylesheet and the XSLT
that shows a feed to a person in a browser. Their bytes, a version (a hash of the bytes,
so the same on every instance and clone) and the URLs that name them. No HTTP here:
``static_files`` serves them.

A site may bring its own XSLT, ``feed.xslt.xml`` at the root of its content folder, as
jekyll-feed lets it: then the feeds name that one instead.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from importlib.resources import files

SITE_XSLT = "feed.xslt.xml"
"""The site's own feed XSLT, at the content folder's root; served as /feed.xslt.xml."""

XSLT_TYPE = "application/xslt+xml"
"""No charset parameter: an XML document names its own encoding."""

_STYLE_MARKER = b"/* style.css */"


@dataclass(frozen=True)
class Asset:
    name: str
    body: bytes
    content_type: str
    version: str
    """A hash of the bytes: the ``?v=`` of the URLs that may be cached for a year."""


def _asset(name: str, body: bytes, content_type: str) -> Asset:
    return Asset(name, body, content_type,
                 hashlib.blake2b(body, digest_size=4).hexdigest())


def _load() -> dict[str, Asset]:
    folder = files("feeds").joinpath("static")
    style = folder.joinpath("style.css").read_bytes()
    xsl = folder.joinpath("feed.xsl").read_bytes()
    # The page a browser makes of a feed takes the feed's URL, so the XSLT carries the
    # site's style itself rather than a link that would resolve against /tag/...
    if xsl.count(_STYLE_MARKER) != 1:
        raise RuntimeError(f"feeds/static/feed.xsl must hold {_STYLE_MARKER!r} once")
    if b"]]>" in style or b"<" in style or b"&" in style:
        raise RuntimeError("style.css must not hold '<' or '&': it goes into an XSLT")
    xsl = xsl.replace(_STYLE_MARKER, style)
    found = [_asset("style.css", style, "text/css; charset=utf-8"),
             _asset("feed.xsl", xsl, XSLT_TYPE)]
    return {a.name: a for a in found}


ASSETS: dict[str, Asset] = _load()
"""What /static/<name> serves, by name."""


def url(base: str, name: str) -> str:
    """The versioned URL of a shipped file: a new release is a new URL."""
    return f"{base}/static/{name}?v={ASSETS[name].version}"


def site_xslt_path(content: str) -> str:
    return os.path.join(content, SITE_XSLT)


def feed_stylesheet(content: str, base: str) -> str:
    """The XSLT an Atom or RSS feed names: the site's own ``feed.xslt.xml`` when its
    content folder has one (unversioned, as jekyll-feed links it: the site may edit it
    while the service runs), else the shipped one."""
    if os.path.isfile(site_xslt_path(content)):
        return f"{base}/{SITE_XSLT}"
    return url(base, "feed.xsl")
