"""Jekyll's own Liquid filters (``jekyll/filters.rb``, ``filters/url_filters.rb``,
``filters/date_filters.rb``), for python-liquid: each one as Jekyll computes it."""

from __future__ import annotations

import html
import json
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from datetime import date, datetime, tzinfo
from typing import Any
from urllib.parse import quote, urljoin

from .urls import slugify_pretty

_SLUG_RAW = re.compile(r"\s+")
_SLUG_DEFAULT = re.compile(r"[^\w]+|_+", re.UNICODE)
_SLUG_PRETTY = re.compile(r"[^\w._~!$&'()+,;=@]+", re.UNICODE)
_SLUG_ASCII = re.compile(r"[^a-zA-Z0-9]+")


def _when(value: object, tz: tzinfo) -> datetime | None:
    if isinstance(value, datetime):
        return value.astimezone(tz) if value.tzinfo else value.replace(tzinfo=tz)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=tz)
    if isinstance(value, str) and value.strip():
        try:
            return _when(datetime.fromisoformat(value.strip()), tz)
        except ValueError:
            return None
    return None


def _ordinal(day: int) -> str:
    if 10 <= day % 100 <= 20:
        return f"{day}th"
    return f"{day}{ {1: 'st', 2: 'nd', 3: 'rd'}.get(day % 10, 'th') }"


def _date_string(fmt: str) -> Callable[..., object]:
    def date_filter(value: object, date_type: str = "", style: str = "",
                    *, tz: tzinfo) -> object:
        when = _when(value, tz)
        if when is None:
            return value
        month = when.strftime("%B" if fmt == "long" else "%b")
        if style == "US":
            day = _ordinal(when.day) if date_type == "ordinal" else str(when.day)
            return f"{month} {day}, {when.year}"
        day = _ordinal(when.day) if date_type == "ordinal" else when.strftime("%d")
        return f"{day} {month} {when.year}"

    return date_filter


def _xmlschema(value: object, *, tz: tzinfo) -> object:
    when = _when(value, tz)
    return when.isoformat() if when else value


def _rfc822(value: object, *, tz: tzinfo) -> object:
    when = _when(value, tz)
    return when.strftime("%a, %d %b %Y %H:%M:%S %z") if when else value


def slugify(value: object, mode: str = "default") -> str:
    """Jekyll's Utils.slugify: 'raw', 'default', 'pretty', 'ascii' or 'latin'."""
    text = "" if value is None else str(value)
    if mode == "none":
        return text
    if mode == "latin":
        text = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()
        mode = "default"
    if mode == "pretty":
        return slugify_pretty(text)
    pattern = {"raw": _SLUG_RAW, "ascii": _SLUG_ASCII}.get(mode, _SLUG_DEFAULT)
    return pattern.sub("-", text).strip("-").lower()


def _jsonify(value: object) -> str:
    def plain(item: object) -> object:
        if isinstance(item, Mapping):
            return {str(k): plain(v) for k, v in item.items()}
        if isinstance(item, list | tuple):
            return [plain(v) for v in item]
        if isinstance(item, datetime | date):
            return str(item)
        return item

    return json.dumps(plain(value), ensure_ascii=False, separators=(",", ":"))


def _array_to_sentence(value: object, connector: str = "and") -> object:
    if not isinstance(value, list | tuple):
        return value
    items = [str(v) for v in value]
    if len(items) <= 2:
        return f" {connector} ".join(items)
    return f"{', '.join(items[:-1])}, {connector} {items[-1]}"


def _where(value: object, key: str, expected: object) -> object:
    items: Iterable[Any] = value.values() if isinstance(value, Mapping) else (
        value if isinstance(value, list | tuple) else [])
    wanted = str(expected)
    out = []
    for item in items:
        found = item.get(key) if isinstance(item, Mapping) else None
        if isinstance(found, list | tuple):
            if wanted in (str(v) for v in found):
                out.append(item)
        elif str("" if found is None else found) == wanted:
            out.append(item)
    return out


def _group_by(value: object, key: str) -> object:
    if not isinstance(value, list | tuple):
        return value
    groups: dict[str, list[Any]] = {}
    for item in value:
        found = item.get(key) if isinstance(item, Mapping) else None
        groups.setdefault("" if found is None else str(found), []).append(item)
    return [{"name": name, "items": items, "size": len(items)}
            for name, items in groups.items()]


def _sample(value: object, count: object = 1) -> object:
    """Jekyll's ``sample``: one item of a list at random (``count`` 1), else a list of
    ``count`` of them in random order; anything but a list as it is."""
    import random

    from liquid.exceptions import FilterArgumentError

    if not isinstance(value, list | tuple):
        return value
    n = _to_integer(count)
    assert isinstance(n, int)
    if n == 1:
        return random.choice(value) if value else None
    if n < 0:  # Ruby's ArgumentError: a Liquid error, the post shown as written
        raise FilterArgumentError(f"sample: negative count {n}", token=None)
    return random.sample(list(value), min(n, len(value)))


def _push(value: object, item: object) -> object:
    return [*value, item] if isinstance(value, list | tuple) else value


def _unshift(value: object, item: object) -> object:
    return [item, *value] if isinstance(value, list | tuple) else value


def _to_integer(value: object) -> object:
    try:
        return int(float(str(value)))
    except ValueError:
        return 0


def jekyll_filters(base: str, baseurl: str, tz: tzinfo, markdownify: Callable[[str], str],
                   smartify: Callable[[str], str]) -> dict[str, Callable[..., object]]:
    """The filters, bound to a site: ``base`` is url + baseurl, absolute."""

    def relative_url(value: object) -> object:
        if value is None:
            return value
        text = str(value)
        if re.match(r"^[a-z][a-z0-9+.-]*:", text, re.IGNORECASE) or text.startswith("//"):
            return text
        path = baseurl.rstrip("/") + "/" + text.lstrip("/")
        return quote(path, safe="/?#[]@!$&'()*+,;=%:~")

    def absolute_url(value: object) -> object:
        relative = relative_url(value)
        if relative is None or not base:
            return relative
        text = str(relative)
        return text if re.match(r"^[a-z][a-z0-9+.-]*:", text, re.I) else urljoin(base, text)

    def dated(fn: Callable[..., object]) -> Callable[..., object]:
        return lambda value, *args: fn(value, *args, tz=tz)

    return {
        "relative_url": relative_url,
        "absolute_url": absolute_url,
        "date_to_xmlschema": dated(_xmlschema),
        "date_to_rfc822": dated(_rfc822),
        "date_to_string": dated(_date_string("short")),
        "date_to_long_string": dated(_date_string("long")),
        "xml_escape": lambda v: "" if v is None else html.escape(str(v), quote=False)
        .replace("\"", "&quot;"),
        "cgi_escape": lambda v: quote(str(v), safe="").replace("%20", "+"),
        "uri_escape": lambda v: quote(str(v), safe="!#$&'()*+,/:;=?@[]~-._"),
        "markdownify": lambda v: markdownify("" if v is None else str(v)),
        "smartify": lambda v: smartify("" if v is None else str(v)),
        "slugify": slugify,
        "jsonify": _jsonify,
        "where": _where,
        "number_of_words": lambda v: len(str(v or "").split()),
        "array_to_sentence_string": _array_to_sentence,
        "normalize_whitespace": lambda v: " ".join(str(v or "").split()),
        "group_by": _group_by,
        "push": _push,
        "unshift": _unshift,
        "pop": lambda v: list(v[:-1]) if isinstance(v, list | tuple) else v,
        "shift": lambda v: list(v[1:]) if isinstance(v, list | tuple) else v,
        "to_integer": _to_integer,
        "sample": _sample,
        "inspect": _jsonify,
    }
