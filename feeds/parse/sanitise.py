"""Rendered HTML -> HTML safe to put in a feed or page: what a news site embeds stays
(video players from an allow-list of hosts, a safe subset of inline ``style``), scripts,
event handlers and ``javascript:`` URLs go, and relative URLs become absolute."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from functools import lru_cache
from urllib.parse import urljoin, urlsplit

import nh3

from .defaults import DEFAULT_IFRAME_HOSTS

_TAGS = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "picture", "source", "video",
                                 "audio", "track", "iframe", "dl", "dt", "dd", "abbr",
                                 "sup", "sub", "mark", "input"}
_TAGS -= {"script", "style", "object", "embed", "form"}
_ATTRIBUTES: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ATTRIBUTES.setdefault("*", set()).update({"class", "title", "lang", "dir", "id", "style",
                                           "role"})
_ATTRIBUTES.setdefault("img", set()).update({"src", "alt", "width", "height", "loading"})
for _media in ("video", "audio", "source", "track"):
    _ATTRIBUTES.setdefault(_media, set()).update({"src", "controls", "poster", "type"})
# No srcdoc (inline HTML) and no sandbox games: a player's own page, from a listed host.
_ATTRIBUTES["iframe"] = {"src", "width", "height", "frameborder", "allow",
                         "allowfullscreen", "loading", "referrerpolicy", "scrolling"}
_ATTRIBUTES.setdefault("a", set()).update({"href", "rel", "role"})
_ATTRIBUTES.setdefault("code", set()).add("data-lang")  # Jekyll's {% highlight %}
_URL_SCHEMES = {"http", "https", "mailto", "ftp", "tel", "data"}

# Inline style that can colour, align and size, but cannot place a box over the page
# (no position, z-index) nor load anything (no url(): no background, no border-image).
STYLE_PROPERTIES = frozenset({
    "color", "background-color", "text-align", "vertical-align", "font-weight",
    "font-style", "font-size", "font-family", "text-decoration", "text-indent",
    "line-height", "letter-spacing", "white-space", "width", "height", "max-width",
    "max-height", "min-width", "min-height", "aspect-ratio", "margin", "margin-top",
    "margin-right", "margin-bottom", "margin-left", "padding", "padding-top",
    "padding-right", "padding-bottom", "padding-left", "border", "border-top",
    "border-right", "border-bottom", "border-left", "border-color", "border-style",
    "border-width", "border-radius", "border-collapse", "float", "clear",
    "list-style-type", "display",
})

# A task list's box is the only input kept: a disabled checkbox (see _BOX).
_ATTRIBUTES["input"] = {"type", "checked", "disabled", "class"}
_BOX = re.compile(r"<input\b[^>]*>")
_DISABLED_BOX = re.compile(r'^<input(?=[^>]*\stype="checkbox")(?=[^>]*\sdisabled\b)[^>]*>$')

# The attributes ammonia reads as URLs (its is_url_attr), as it writes them; a value not
# opening with a scheme may be relative. Cautious: text that looks like one counts too
# (the body is then cleaned again, with its page's URL).
_URL_ATTRIBUTES = ('href="', 'src="', 'action="', 'data="', 'formaction="', 'ping="',
                   'poster="')
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")


def _may_hold_relative(safe: str) -> bool:
    for opening in _URL_ATTRIBUTES:
        at = safe.find(opening)
        while at >= 0:
            if not _SCHEME.match(safe, at + len(opening)):
                return True
            at = safe.find(opening, at + 1)
    return False


# An iframe whose src was dropped (a host not on the list) is left empty: remove it.
_EMPTY_IFRAME = re.compile(r"<iframe(?![^>]*\ssrc=)[^>]*>.*?</iframe>", re.DOTALL)


def host_allowed(url: str, hosts: Iterable[str]) -> bool:
    """An http(s) URL on one of ``hosts`` or a subdomain of one."""
    parts = urlsplit(url)
    if parts.scheme not in {"http", "https"} or not parts.hostname:
        return False
    host = parts.hostname.lower().rstrip(".")
    return any(host == h or host.endswith("." + h) for h in hosts)


_DATA_IMAGE = re.compile(r"data:image/(?:png|gif|jpeg|webp|avif);", re.IGNORECASE)


def _attribute_filter(page_url: str, hosts: tuple[str, ...]
                      ) -> Callable[[str, str, str], str | None]:
    """Iframes only from ``hosts``; ``data:`` URLs only as an image's pixels: an
    ``<a href="data:text/html,...">`` opens a document of the author's choosing
    (scripts included) wherever a reader follows it."""
    base = page_url or "https://invalid/"

    def keep(tag: str, attribute: str, value: str) -> str | None:
        if tag == "iframe" and attribute == "src":
            return value if host_allowed(urljoin(base, value.strip()), hosts) else None
        if value[:5].lower() == "data:" and not (
                attribute == "src" and tag in ("img", "source") and _DATA_IMAGE.match(value)):
            return None
        return value

    return keep


@lru_cache(maxsize=32)
def _cleaner(page_url: str, iframe_hosts: tuple[str, ...], embeds: bool, filtered: bool
             ) -> nh3.Cleaner:
    """The sanitiser of one page's HTML. Made once for a post's body and its excerpt,
    which Jekyll renders as a document of its own: ``nh3.clean`` builds one each call
    from the sets (~0.1 ms, as long as a short excerpt's Markdown takes)."""
    return nh3.Cleaner(
        tags=_TAGS if embeds else _TAGS - {"iframe"},
        clean_content_tags={"script", "style"},
        attributes=_ATTRIBUTES,
        attribute_filter=_attribute_filter(page_url, iframe_hosts) if filtered else None,
        url_schemes=_URL_SCHEMES,
        link_rel=None,
        url_relative=("rewrite_with_base", page_url) if page_url else None,
        filter_style_properties=STYLE_PROPERTIES,
    )


def sanitise(raw: str, page_url: str, iframe_hosts: tuple[str, ...] = DEFAULT_IFRAME_HOSTS
             ) -> str:
    """``raw`` HTML made safe; relative URLs resolved against ``page_url`` (when given)."""
    lowered = raw.lower()
    embeds = "<iframe" in lowered
    # The filter is a Python call per attribute: only for a body that needs it.
    filtered = embeds or "data:" in lowered
    if filtered or not page_url:
        safe = _cleaner(page_url, iframe_hosts, embeds, filtered).clean(raw)
    else:
        # ammonia rewrites a URL only when it is relative, so a body that keeps none is
        # the same cleaned without the page's URL, by a sanitiser made once: each page's
        # own took longer to make (~75 us) than most bodies take to clean.
        safe = _cleaner("", iframe_hosts, embeds, False).clean(raw)
        if _may_hold_relative(safe):
            safe = _cleaner(page_url, iframe_hosts, embeds, False).clean(raw)
    if "<input" in safe:
        safe = _BOX.sub(lambda m: m.group() if _DISABLED_BOX.match(m.group()) else "", safe)
    return _EMPTY_IFRAME.sub("", safe) if embeds else safe
