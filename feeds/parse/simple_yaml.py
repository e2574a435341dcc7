"""A fast path for the front matter nearly every post has: ``key: scalar`` lines and flow
lists of scalars.

Even libyaml's loader costs some 50 us for four such lines, most of it set-up; this
costs under 10 us, and is what makes a 100k-post cold start fit in seconds. It gives
exactly what the service's loader gives, libyaml's CSafeLoader (not ``yaml.safe_load``,
PyYAML's pure-Python loader, which parts from libyaml on tabs, for one); PyYAML's own
resolver and constructors decide each scalar's type, here as there. Anything else it
declines, with None, and that loader reads it. ``tests/test_properties.py`` holds it to
the loader on generated front matter.
"""

from __future__ import annotations

import re

import yaml

_SIMPLE_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*):(?:[ \t]+(.*))?")
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@` \t")
_FLOW_CHARS = frozenset(",[]{}")
_DOUBLE = re.compile(r'"([^"\\]*)"')
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR_TAG = "tag:yaml.org,2002:str"
_KEY_IS_STR: dict[str, bool] = {}
_FLOW_NAMES: dict[str, str] = {}
"""The string a flow list's item reads as, by its text: a site's tags and categories
are a few hundred names, written again in post after post."""
# YAML's white space is the space and the tab alone; str.strip() would take U+00A0 and
# other Unicode spaces too, which are text to YAML ('[\xa0]' is a list of one string).
_YAML_SPACE = " \t"


def _is_plain(text: str, in_flow: bool) -> bool:
    if not text or text[0] in _INDICATORS or text[-1] == ":" or "\t" in text:
        return False
    if ": " in text or " #" in text:
        return False
    return not (in_flow and not _FLOW_CHARS.isdisjoint(text))


# The resolver tries only the implicit resolvers listed under a scalar's first character
# (there are none for any character, nor path resolvers): a plain scalar starting with a
# character none is listed under is a string, asked of no pattern (a title, a tag).
_IMPLICIT_FIRST = _RESOLVER.yaml_implicit_resolvers
_BY_FIRST = None not in _IMPLICIT_FIRST and not _RESOLVER.yaml_path_resolvers


def _plain_value(text: str) -> tuple[bool, object]:
    if _BY_FIRST and text[0] not in _IMPLICIT_FIRST:
        return True, text
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if tag == _STR_TAG:
        return True, text
    construct = _CONSTRUCTOR.yaml_constructors.get(tag)
    if construct is None:
        return False, None  # '=' and '<<' resolve to tags no safe constructor builds
    # A constructor's own error (year 0, say) is raised as the loader would raise it.
    return True, construct(_CONSTRUCTOR, yaml.ScalarNode(tag, text))


def _scalar(text: str, in_flow: bool) -> tuple[bool, object]:
    first = text[:1]
    if first == '"':
        m = _DOUBLE.fullmatch(text)
        return (True, m.group(1)) if m else (False, None)
    if first == "'":
        m = _SINGLE.fullmatch(text)
        return (True, m.group(1).replace("''", "'")) if m else (False, None)
    if _is_plain(text, in_flow):
        return _plain_value(text)
    return False, None


def _key_is_str(key: str) -> bool:
    known = _KEY_IS_STR.get(key)
    if known is None:
        known = _RESOLVER.resolve(  # type: ignore[no-untyped-call]
            yaml.ScalarNode, key, (True, False)) == _STR_TAG
        if len(_KEY_IS_STR) < 10_000:
            _KEY_IS_STR[key] = known
    return known


def _value(value: str) -> tuple[bool, object]:
    """(whether the fast path can read it, what it reads) for the text after 'key:'."""
    if not value:
        return True, None
    if value[0] == "[" and value[-1] == "]":
        items: list[object] = []
        inner = value[1:-1].strip(_YAML_SPACE)
        for part in inner.split(",") if inner else []:
            text = part.strip(_YAML_SPACE)
            item: object = _FLOW_NAMES.get(text)
            if item is None:
                ok, item = _scalar(text, True)
                if not ok:
                    return False, None
                if type(item) is str and len(_FLOW_NAMES) < 10_000:
                    _FLOW_NAMES[text] = item
            items.append(item)
        return True, items
    return _scalar(value, False)


# YAML's line breaks besides '\n' (decoding the file has folded '\r' already): a line
# of ours holding one is two lines to YAML.
_OTHER_BREAKS = re.compile("[\x85\u2028\u2029]")


def simple_yaml(fm: str) -> dict[str, object] | None:
    """The mapping these lines of YAML hold, or None when they are not simple enough."""
    if _OTHER_BREAKS.search(fm):
        return None
    result: dict[str, object] = {}
    for line in fm.split("\n"):
        if not line.strip(" "):
            continue  # blank: only spaces (a tab or U+00A0 is no blank line to YAML)
        m = _SIMPLE_LINE.fullmatch(line)
        if m is None:
            return None
        key, value = m.groups("")
        value = value.rstrip(_YAML_SPACE)
        if not _key_is_str(key):
            return None
        ok, item = _value(value)
        if not ok:
            return None
        result[key] = item
    return result
