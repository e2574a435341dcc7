"""Names in URLs: how a category or tag name becomes a path segment and back, and the
file a URL is in a static build. No I/O; ``site`` indexes by these rules."""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Iterable
from functools import lru_cache
from urllib.parse import quote, unquote

# A name is written into a path segment as itself, except the characters that cannot
# stand in one: '/', '\', '?', '#', '%' and '~' (the escape character itself) become
# '~' and two hex digits, as does a leading '.' (so '..' is never a segment). The result
# is then percent-encoded as UTF-8. 'a/b' -> 'a~2Fb', '../x' -> '~2E.~2Fx', 'C#' -> 'C~23'.
# A segment is a file name in a static build ('tag/<segment>.atom?page=12'), which holds
# 255 bytes: one over LONG_NAME_BYTES is cut to its first characters, '~~' and a hash of
# the name; bounded, the same on every run, and never made otherwise ('~' is '~7E').

CONFIG_FILE = "_config.yml"
_ESCAPED = frozenset("/\\?#%~")
_UNESCAPE = re.compile(r"~([0-9A-Fa-f]{2})")


def normalize_name(name: str) -> str:
    return unicodedata.normalize("NFC", name)


@lru_cache(maxsize=4096)
def name_to_segment(name: str) -> str:
    """The URL path segment (percent-encoded) for a category or tag name (memoised: every
    link to a category or tag on every page and entry asks for it)."""
    name = normalize_name(name)
    out = [f"~{ord(ch):02X}" if ch in _ESCAPED else ch for ch in name]
    if out and out[0] == ".":
        out[0] = "~2E"
    if sum(len(piece.encode("utf-8")) for piece in out) > LONG_NAME_BYTES:
        out = _shortened(name, out)
    return quote("".join(out), safe="~!$&'()*+,;=:@")


LONG_NAME_BYTES = 200
SHORTENED = re.compile(r"~~[0-9a-f]{16}\Z")


def _shortened(name: str, pieces: list[str]) -> list[str]:
    kept: list[str] = []
    size = 0
    for piece in pieces:  # whole pieces: never half a character or half an escape
        size += len(piece.encode("utf-8"))
        if size > LONG_NAME_BYTES - 20:
            break
        kept.append(piece)
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:16]
    return [*kept, "~~", digest]


def segment_to_name(segment: str) -> str:
    """Inverse of :func:`name_to_segment`, for a segment already percent-decoded (as the
    WSGI server hands it over); a raw name with none of our escapes comes back as is,
    and a shortened long name's segment too (``SiteIndex.term`` knows it)."""
    if SHORTENED.search(segment):
        return normalize_name(segment)
    return normalize_name(_UNESCAPE.sub(lambda m: chr(int(m.group(1), 16)), segment))


def file_name(url: str) -> str:
    """The file a URL is in a static build, relative to its root: the path
    percent-decoded, 'index.html' below a folder, the query kept ('feed.atom?page=2')."""
    path, _, query = url.partition("?")
    return _file_of(unquote(path), query)


def _file_of(path: str, query: str) -> str:
    """file_name of a URL from its path, percent-decoded, and its query."""
    if path.endswith("/"):
        path += "index.html"
    name = path.lstrip("/")
    return f"{name}?{query}" if query else name


def url_key(path: str) -> str:
    """How a post URL is looked up: percent-decoded, NFC."""
    return normalize_name(unquote(path))


def post_keys(url: str) -> tuple[str, str]:
    """(NFC ``file_name``, ``url_key``) of a post URL, percent-decoded once for both
    (a whole index asks this of every post)."""
    path, mark, query = url.partition("?")
    decoded = unquote(path)
    if mark:
        return normalize_name(_file_of(decoded, query)), url_key(url)
    whole = normalize_name(decoded)  # (NFC once: '/' and 'index.html' compose with nothing)
    return _file_of(whole, ""), whole


def long_names(keys: Iterable[str]) -> dict[str, str]:
    """Shortened segment (decoded) -> key, for the names too long to stand in a URL."""
    return {unquote(segment): key for key in keys
            if len(key) * 4 > LONG_NAME_BYTES  # cheap first: most names are short
            and SHORTENED.search(segment := name_to_segment(key))}


def fold_unique(keys: Iterable[str]) -> dict[str, str]:
    """Case-folded name -> name, for the names no other one folds to (the lookup of a
    name in any case; two that fold alike are found only as spelled)."""
    folded: dict[str, str] = {}
    clashes: set[str] = set()
    for key in keys:
        f = key.casefold()
        if f in folded:
            clashes.add(f)
        folded[f] = key
    for f in clashes:
        del folded[f]
    return folded
