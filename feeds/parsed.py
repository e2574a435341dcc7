"""One post file's parse as the persisted index keeps it: :class:`Parse`, what
``parse_post`` made of the file's bytes; how a file is read into one, and worked out into
its post and problems (the same steps for a fresh parse and a kept one); and a Parse as
a row's payload, JSON, every field of :class:`~feeds.model.Post` provided for."""

from __future__ import annotations

import json
import logging
import sys
import typing
import zoneinfo
from collections.abc import Callable
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from .disk import read_post
from .model import Author, Post, Problem, Stamp
from .parse import PostError, SiteRules, SkipFile, parse_post
from .snapshot import capped_updated

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Parse:
    """What ``parse_post`` made of one file's bytes: a post and its warnings, or why there
    is none (a PostError's message, or why the file is skipped on purpose)."""

    post: Post | None = None
    warnings: tuple[str, ...] = ()
    error: str | None = None
    skipped: str | None = None


def parse_file(rel: str, data: bytes, stamp: Stamp, rules: SiteRules) -> Parse:
    """``parse_post``'s outcome as a :class:`Parse` (any other exception propagates)."""
    try:
        parsed = parse_post(rel, data, stamp, rules)
    except SkipFile as e:
        return Parse(skipped=str(e).removeprefix(f"{rel}: "))
    except PostError as e:
        return Parse(error=e.message)
    return Parse(post=parsed.post, warnings=tuple(parsed.warnings))


def read_file(root: str, rel: str, stamp: Stamp, rules: SiteRules,
              same: bytes | None = None) -> tuple[Parse | None, Stamp, bool, bytes]:
    """Read and parse one file: (what it gave, or None when its bytes are ``same``, not
    parsed again; the stamp of what was read; whether that may be kept in the index: not
    a failed read, nor a surprise; the bytes read, b"" when none were)."""
    try:
        data, stamp = read_post(root, rel, rules.max_post_bytes)
    except PostError as e:
        return Parse(error=e.message), stamp, False, b""
    if same is not None and data == same:
        return None, stamp, False, data
    try:
        return parse_file(rel, data, stamp, rules), stamp, True, data
    except Exception as e:  # a file must never stop the load: any surprise rejects it
        logger.debug("%s: unexpected error", rel, exc_info=True)
        return Parse(error=f"cannot be read as a post "
                           f"({type(e).__name__}: {str(e)[:200]})"), stamp, False, data


def outcome(rel: str, parse: Parse, jekyll_layout: bool) -> tuple[Post | None,
                                                                   tuple[Problem, ...]]:
    """The post and problems of a file from what parsing it gave, fresh or kept: the
    same steps either way (a future ``updated`` is capped to the moment of this call)."""
    problems: list[Problem] = []
    post: Post | None = None
    if parse.error is not None:
        if not jekyll_layout and parse.error.startswith("no front matter"):
            logger.debug("%s: no front matter, so not a post", rel)
        else:
            problems.append(Problem(rel, parse.error))
    if parse.post is not None:
        post = capped_updated(parse.post, problems)
        problems.extend(Problem(rel, w, rejected=False) for w in parse.warnings)
    return post, tuple(problems)


# --- a Parse as a row's payload (JSON) -------------------------------------------------


def _encode_date(value: datetime) -> list[object]:
    zone = value.tzinfo
    return [value.isoformat(), zone.key if isinstance(zone, zoneinfo.ZoneInfo) else None]


# One object for each offset, name and list of names met, as parsing shares them: every
# decoded post had had its own (+8 MiB at 10,000 posts, the index's or a load helper's).
_OFFSETS: dict[object, Any] = {}
_NAMES: dict[tuple[str, ...], tuple[str, ...]] = {}


def _decode_date(value: list[Any]) -> datetime:
    iso, key = value
    when = datetime.fromisoformat(iso)
    # The parser gives a site-zone date as astimezone(zone) makes it (fold included).
    if key is not None:
        return when.astimezone(zoneinfo.ZoneInfo(key))
    zone = when.tzinfo  # (fromisoformat's: unnamed, so equal offsets are the same zone)
    shared = _OFFSETS.setdefault(zone, zone)
    return when if shared is zone else when.replace(tzinfo=shared)


def _decode_names(value: list[str]) -> tuple[str, ...]:
    names = tuple(sys.intern(name) for name in value)
    return _NAMES.setdefault(names, names) if len(_NAMES) < 100_000 else names


def _encode_author(value: Author | None) -> list[str | None] | None:
    return None if value is None else [value.name, value.email, value.uri]


def _decode_author(value: list[Any] | None) -> Author | None:
    return None if value is None else Author(*value)


_CODECS: dict[object, tuple[Callable[[Any], Any], Callable[[Any], Any]]] = {
    datetime: (_encode_date, _decode_date),
    tuple[str, ...]: (list, _decode_names),
    Author | None: (_encode_author, _decode_author),
}
_PLAIN = (str, str | None, bool)


def _field_codecs() -> list[tuple[int, Callable[[Any], Any], Callable[[Any], Any]]]:
    """(position, encode, decode) of each Post field after ``source`` and ``stamp`` that
    JSON does not carry as it is; a field of a type not provided for fails here, at
    import, so a new field can never be silently lost."""
    hints = typing.get_type_hints(Post)
    names = [f.name for f in fields(Post)]
    if names[:2] != ["source", "stamp"]:
        raise TypeError("Post must begin with source and stamp")
    codecs = []
    for position, name in enumerate(names[2:]):
        hint = hints[name]
        if hint in _CODECS:
            codecs.append((position, *_CODECS[hint]))
        elif hint not in _PLAIN:
            raise TypeError(f"postcache cannot keep Post.{name} ({hint})")
    return codecs


_FIELD_CODECS = _field_codecs()
_KEPT_FIELDS = [f.name for f in fields(Post)][2:]
_SHARED_FIELDS = [_KEPT_FIELDS.index(name) for name in (
    "markup", "lang", "excerpt_separator", "collection")]
"""The str fields posts have in common (interned, as the rest of _decode_names)."""


def encode(parse: Parse) -> bytes:
    """The payload of a row (ASCII JSON: a lone surrogate survives too)."""
    post = parse.post
    if post is None:
        body: object = None
    else:
        values = [getattr(post, name) for name in _KEPT_FIELDS]
        for position, enc, _dec in _FIELD_CODECS:
            values[position] = enc(values[position])
        body = values
    return json.dumps([body, list(parse.warnings), parse.error, parse.skipped],
                      separators=(",", ":")).encode("ascii")


_JSON = json.JSONDecoder().decode


def decode(rel: str, stamp: Stamp, payload: bytes) -> Parse:
    """The Parse of a payload (ValueError, TypeError, KeyError: not one of ours)."""
    body, warnings, error, skipped = _JSON(payload.decode("ascii"))
    post = None
    if body is not None:
        for position, _enc, dec in _FIELD_CODECS:
            body[position] = dec(body[position])
        for position in _SHARED_FIELDS:
            if isinstance(body[position], str):
                body[position] = sys.intern(body[position])
        post = Post(rel, stamp, *body)
    if not all(isinstance(w, str) for w in warnings) or not isinstance(error, str | None) \
            or not isinstance(skipped, str | None):
        raise TypeError("payload of the wrong shape")
    return Parse(post=post, warnings=tuple(warnings), error=error, skipped=skipped)
