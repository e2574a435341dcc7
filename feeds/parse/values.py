"""Front-matter values read leniently, the way Jekyll and jekyll-feed read them (over
``_config.yml``'s front-matter defaults): a post that Jekyll publishes is published here
too. A value of a type the service has no use
for (a list where a title goes, a number where a list of tags goes) is ignored, with one
warning naming the key, instead of costing the post."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from ..model import Author, DefaultSet
from .text import XML_ILLEGAL, clean_text


def ruby_text(value: object) -> str:
    """A scalar as Ruby's ``to_s`` writes it (true, not True)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, date):
        return value.isoformat()
    return clean_text(str(value))


@dataclass
class FrontMatter:
    """One post's front matter, and the warnings reading it has given so far."""

    source: str
    data: Mapping[str, Any]
    warnings: list[str] = field(default_factory=list)

    def ignore(self, key: str, why: str) -> None:
        message = f"front matter '{key}' {why}; ignored"
        if message not in self.warnings:
            self.warnings.append(message)

    def text(self, key: str) -> str | None:
        """A text value (a number or date is its text); None when absent or empty."""
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, list | dict):
            self.ignore(key, f"is a {_kind(value)}, not text")
            return None
        text = ruby_text(value).strip()
        return text or None

    def names(self, singular: str, plural: str) -> list[str]:
        """Jekyll's ``pluralized_array_from_hash``: the singular key as one name or a list,
        else the plural key as a list or a whitespace-separated string (any other value
        of the plural key gives no names, as in Jekyll); nested lists flattened."""
        value = self.data.get(singular)
        if value is None:
            return self.listed(plural)
        return self._names(singular, value if isinstance(value, list) else [value])

    def listed(self, plural: str) -> list[str]:
        """The plural key alone: a list, or a whitespace-separated string."""
        value = self.data.get(plural)
        if value is None:
            return []
        if isinstance(value, str):
            value = value.split()
        elif not isinstance(value, list):
            self.ignore(plural, f"is a {_kind(value)}, not a list or a string of names")
            return []
        return self._names(plural, value)

    def _names(self, key: str, value: list[Any]) -> list[str]:
        if not all(type(item) is str for item in value):
            return self._flattened_names(key, value)
        names: dict[str, None] = {}  # ordered, and a linear check for repeats
        for item in value:  # the usual list, names alone: each as ruby_text writes it
            name = " ".join(XML_ILLEGAL.sub("", item).split())
            if name:
                names[name] = None
        return list(names)

    def _flattened_names(self, key: str, value: list[Any]) -> list[str]:
        """The names of any list: nested lists opened, nulls dropped, mappings ignored."""
        names: dict[str, None] = {}
        for item in _flatten(value):
            if isinstance(item, dict):
                self.ignore(key, "holds a mapping, not a name")
                continue
            name = " ".join(ruby_text(item).split())
            if name:
                names[name] = None
        return list(names)

    def author(self) -> Author | None:
        """``author`` (or ``authors[0]``): a name, or a mapping with a name (else its
        ``display_name`` or ``login``), ``email`` and ``uri`` or ``url``."""
        key = "author" if self.data.get("author") not in (None, "") else "authors"
        value = self.data.get(key)
        if isinstance(value, list):
            value = value[0] if value else None
        if value is None or value == "":
            return None
        if isinstance(value, dict):
            return self._author_mapping(key, value)
        if isinstance(value, list):
            self.ignore(key, "is a nested list, not a name")
            return None
        return Author(name=ruby_text(value))

    def _author_mapping(self, key: str, value: Mapping[str, Any]) -> Author | None:
        def opt(name: str) -> str | None:
            item = value.get(name)
            return ruby_text(item).strip() or None if item and not isinstance(
                item, list | dict) else None

        name = opt("name") or opt("display_name") or opt("login")
        if name is None:
            self.ignore(key, "is a mapping without a name")
            return None
        return Author(name=name, email=opt("email"), uri=opt("uri") or opt("url"))

    def image(self) -> str | None:
        """jekyll-feed's ``post.image.path | default: post.image``."""
        value = self.data.get("image")
        if isinstance(value, dict):
            path = value.get("path")
            if path is None or isinstance(path, list | dict):
                self.ignore("image", "is a mapping without a 'path'")
                return None
            return ruby_text(path).strip() or None
        return self.text("image")


def with_defaults(source: str, front: dict[str, Any],
                  sets: Sequence[DefaultSet]) -> dict[str, Any]:
    """The front matter over the ``defaults`` sets that cover the post, merged as Jekyll
    merges them (FrontmatterDefaults#all, then Document#merge_data!): a longer scope
    path wins, then a scope with a type, then the later set; mappings are merged key by
    key; 'categories' of the defaults and of the post are joined."""
    merged: dict[str, Any] = {}
    old: DefaultSet | None = None
    for found in sets:
        if not _applies(found, source):
            continue
        if _precedes(old, found):
            merged, old = _deep_merge(merged, dict(found.values)), found
        else:
            merged = _deep_merge(dict(found.values), merged)
    if not merged:
        return front
    out = _deep_merge(merged, front)
    base, own = _listing(merged.get("categories")), _listing(front.get("categories"))
    if base is not None and own is not None:
        out["categories"] = base + [name for name in own if name not in base]
    return out


def _applies(found: DefaultSet, source: str) -> bool:
    if found.type is not None and found.type != "posts":
        return False
    if not found.path:
        return True
    if "*" not in found.path:
        return source.startswith(found.path)
    # Jekyll globs the scope in the site and takes the files and folders it finds;
    # a post is covered when its path starts with one of them.
    pattern = re.compile(".*".join("[^/]*".join(re.escape(part) for part in piece.split("*"))
                                   for piece in found.path.split("**")))
    parts = source.split("/")
    return any(pattern.fullmatch("/".join(parts[:n])) for n in range(1, len(parts) + 1))


def _precedes(old: DefaultSet | None, new: DefaultSet) -> bool:
    """Jekyll's has_precedence?: whether ``new`` wins over the set that won so far."""
    if old is None:
        return True
    if len(new.path) != len(old.path):
        return len(new.path) >= len(old.path)
    return new.type is not None or old.type is None


def _deep_merge(master: dict[str, Any], other: Mapping[str, Any]) -> dict[str, Any]:
    """Ruby's Utils.deep_merge_hashes: ``other`` wins, mappings merged key by key."""
    out = dict(master)
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _listing(value: object) -> list[Any] | None:
    if isinstance(value, str):
        return list(value.split())
    return list(value) if isinstance(value, list) else None


def _flatten(items: Iterable[object]) -> Iterable[object]:
    """Ruby's ``flatten.compact``: nested lists opened, nulls dropped."""
    stack = [iter(items)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            if item is not None:
                yield item
        else:
            stack.pop()


def _kind(value: object) -> str:
    if isinstance(value, bool):
        return "true or false"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, date):
        return "date"
    if isinstance(value, dict):
        return "mapping"
    return "list" if isinstance(value, list) else type(value).__name__
