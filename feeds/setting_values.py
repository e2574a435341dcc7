"""How each setting's value is read: what a flag, an environment variable or
``_config.yml`` gave, turned into the typed value, or a ValueError that says why not
(``config`` names the setting in the error)."""

from __future__ import annotations

import posixpath
from collections.abc import Callable
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .model import Author


def boolean(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def positive_int(value: object) -> int:
    number = int(str(value))
    if number < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return number


def port(value: object) -> int:
    number = int(str(value))
    if not 0 <= number <= 65535:
        raise ValueError(f"not a port: {value!r}")
    return number


def positive_float(value: object) -> float:
    number = float(str(value))
    if number <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def string(value: object) -> str:
    return "" if value is None else str(value)


def folder(value: object) -> str:
    """A folder inside the content folder, '/'-separated, without './' or end slashes
    ('' for the content folder itself); Jekyll keeps such a path inside the site too."""
    text = posixpath.normpath(string(value).strip().strip("/") or ".")
    if text == ".." or text.startswith("../"):
        raise ValueError(f"must be a folder inside the content folder, got {value!r}")
    return "" if text == "." else text


def url(value: object) -> str:
    """An absolute http(s) URL, or '' for none. A control character (a CR or LF pasted
    in) would split every header and line it goes into: refused here, at start-up."""
    text = string(value).strip()
    if not text:
        return ""
    if not text.isprintable():
        raise ValueError(f"a URL cannot hold control characters (CR, LF, tab): {text!r}")
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises ValueError for a port that is no number
    except ValueError as e:
        raise ValueError(f"not a URL: {text!r} ({e})") from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ValueError(f"must be an absolute http:// or https:// URL, got {text!r}")
    return text


def hub(value: object) -> str:
    """``websub_hub``: a hub's URL, ``self`` or ''."""
    text = string(value).strip()
    return "self" if text.lower() == "self" else url(text)


def timezone(value: object) -> str:
    name = string(value) or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown IANA time zone {name!r}") from e
    return name


def one_of(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = string(value).lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return text

    return parse


def paths(value: object) -> tuple[str, ...]:
    """A list of paths or patterns (Jekyll's ``exclude``, ``include``): a YAML list, as
    Jekyll wants it (it stops a build on any other type)."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise ValueError(f"must be a list, got {value!r}")
    return tuple(str(item) for item in value if item is not None)


def hosts(value: object) -> tuple[str, ...]:
    """Host names from a YAML list or a comma- or space-separated string."""
    items = value if isinstance(value, list | tuple) else str(value or "").replace(",", " ").split()
    hosts = tuple(str(item).strip().lower().strip(".") for item in items)
    for host in hosts:
        if not host or "/" in host or ":" in host:
            raise ValueError(f"not a host name: {host!r}")
    return hosts


def author(value: object) -> Author | None:
    """The site's author from a name or a mapping with name, email and uri (or url); a
    blank name, or a mapping without one, is no author."""
    if value is None:
        return None
    if isinstance(value, str):
        return Author(name=value.strip()) if value.strip() else None
    if isinstance(value, dict):
        if not value.get("name"):
            return None
        return Author(name=str(value["name"]), email=value.get("email") or None,
                      uri=value.get("uri") or value.get("url") or None)
    raise ValueError("must be a name or a mapping with name, email, uri")


def moment(value: object) -> str:
    """A time as Jekyll reads ``time:`` (``Utils.parse_date(value.to_s)``), kept as text:
    a YAML timestamp without offset is UTC, as Psych makes it."""
    import datetime as dt

    if isinstance(value, dt.datetime):
        return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).isoformat()
    return string(value).strip()
