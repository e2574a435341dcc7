"""A post file's text and its front matter: bytes -> text, the size limit, the one split
of front matter from body, and the YAML read safely.

Everything wrong here is a :class:`PostError` naming the file; what can be mended (bad
UTF-8, stray control characters) is mended and added to the caller's warnings.
"""

from __future__ import annotations

import re
from typing import Any

import yaml
from frontmatter.default_handlers import YAMLHandler

from .simple_yaml import simple_yaml
from .text import XML_ILLEGAL, PostError

# Control characters neither XML 1.0 nor YAML can carry (YAML refuses C1 controls too,
# but not NEL, U+0085, one of its line breaks). A post is read without them, so a stray
# one in a title copied from elsewhere costs the character, not the post.
CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
CONTROL_WARNING = "control characters XML cannot carry were dropped"
UNCLOSED_WARNING = ("front matter is not closed by a '---' line; the whole file is the "
                    "body, as Jekyll reads it")
_OPENING_BYTES = re.compile(rb"\A---[ \t]*\r?\n")
_OPENING = re.compile(r"\A---[ \t]*\n")

# CSafeLoader: never constructs Python objects (!!python/object is an error), and
# aliases are shared references, so an alias bomb costs no memory here. PyYAML's own
# SafeLoader, which reads the same, where libyaml is missing.
LOADER: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def check_size(path: str, size: int, limit: int) -> None:
    """The one size limit of a post file (``max_post_bytes``)."""
    if size > limit:
        raise PostError(path, f"file is {size} bytes, over max_post_bytes ({limit})")


def decode(path: str, data: bytes, warnings: list[str]) -> str:
    """Bytes -> text the way a forgiving reader would: BOM dropped, CRLF folded, invalid
    UTF-8 replaced and control characters dropped (both warned about). NUL bytes in a
    file that does not open with front matter mean a binary file. An empty file is no
    post, except in a ``_posts`` folder, where Jekyll publishes it (untitled: the
    caller warns of that)."""
    if not data.strip():
        if in_posts(path):
            return ""
        raise PostError(path, "empty file")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if b"\x00" in data[:8192] and not _OPENING_BYTES.match(data):
        raise PostError(path, "binary file (NUL bytes), not text")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        text = data.decode("utf-8", errors="replace")
        warnings.append(f"invalid UTF-8 at byte {e.start}; bad bytes replaced with U+FFFD")
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if CONTROL_CHARS.search(text):
        text = CONTROL_CHARS.sub("", text)
        warnings.append(CONTROL_WARNING)
    return text


class _Boundaries(YAMLHandler):
    """python-frontmatter's split with Jekyll's boundaries: the block opens with a '---'
    line at the very start of the file and closes with '---' or '...'."""

    FM_BOUNDARY = re.compile(r"^(?:---|\.\.\.)[ \t]*$\n?", re.MULTILINE)


_HANDLER = _Boundaries()


def in_posts(path: str) -> bool:
    """Whether a file is below a ``_posts`` folder, where Jekyll reads every file as a
    post, front matter or not."""
    return "_posts" in path.split("/")[:-1]


def split(path: str, text: str) -> tuple[str, str]:
    """(front matter, body) of a decoded post file, as text. A file in a ``_posts``
    folder may have none, or one never closed: Jekyll publishes it, the whole text its
    body, so this gives ('', text)."""
    if not _OPENING.match(text):
        if in_posts(path):
            return "", text
        raise PostError(path, "no front matter (the file must start with a '---' line)")
    try:
        return _HANDLER.split(text)
    except ValueError:
        if in_posts(path):
            return "", text
        raise PostError(path, "front matter is not closed by a '---' line") from None


def split_front_matter(path: str, text: str,
                       warnings: list[str] | None = None) -> tuple[dict[str, Any], str]:
    """(front matter, body). PostError when there is no front matter or it is bad."""
    fm, body = split(path, text)
    if not fm:
        if body is text and _OPENING.match(text) and warnings is not None:
            warnings.append(UNCLOSED_WARNING)
        return {}, body
    simple = simple_yaml(fm)
    if simple is not None:
        return simple, body  # plain 'key: value' lines: no aliases, nothing to walk
    return _load(path, fm), body


def _load(path: str, fm: str) -> dict[str, Any]:
    """The front matter the fast path declined, read by LOADER and checked."""
    try:
        data = load_yaml(fm)
    except TooDeep as e:
        raise PostError(path, f"front matter {e}") from None
    except yaml.YAMLError as e:
        raise PostError(path, f"front matter is not valid YAML: {_one_line(e)}") from e
    except RecursionError:
        raise PostError(path, "front matter nests collections too deeply") from None
    except (ValueError, TypeError, OverflowError) as e:
        raise PostError(path, f"front matter has a value YAML cannot hold: {e}") from e
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise PostError(path, "front matter must be a mapping of keys to values")
    trouble = _expansion_trouble(data)
    if trouble:
        raise PostError(path, f"front matter {trouble}")
    return data


# libyaml nests by C recursion: some 30,000 levels of '[' overflow a thread's stack and
# kill the process (and the Python loader takes time quadratic in the depth). Nesting is
# bounded by the count of '[' and '{' and by the indentation, so front matter where
# those could pass MAX_NESTING is refused unread.
MAX_NESTING = 5_000
_BLOCK_LEAD = re.compile(r"^[ ?:-]*", re.MULTILINE)


class TooDeep(yaml.YAMLError):
    """Front matter nested (or able to nest) too deeply to read safely."""


def _nesting_bound(fm: str) -> int:
    """At least the YAML's nesting depth: every flow collection opens with '[' or '{',
    and a block one starts further right than its parent, or after a '- ', '? ' or ': '
    at the start of a line."""
    lead = max((len(m) for m in _BLOCK_LEAD.findall(fm)), default=0)
    return fm.count("[") + fm.count("{") + lead + 1


def load_yaml(fm: str) -> Any:
    """YAML text -> value with LOADER, unless it could nest past MAX_NESTING (TooDeep)."""
    if _nesting_bound(fm) > MAX_NESTING:
        raise TooDeep(f"has more than {MAX_NESTING:,} '[', '{{' or columns of "
                      "indentation, too many to read safely")
    return yaml.load(fm, Loader=LOADER)


# YAML aliases make the front matter a graph: a few lines can name a list of a billion
# values ("billion laughs"). Loading shares the aliased objects, so it is cheap, but
# anything that walks the values (str() of a list, say) would walk every path. So the
# values are counted as such a walk would meet them, each string by its length, and a
# front matter over this budget is refused before anything looks at it.
MAX_EXPANDED = 10_000_000
MAX_DEPTH = 100
_CONTAINERS = (list, dict, set)


def _children(node: object) -> list[object]:
    """The keys and values of a mapping, the items of a list or set; else nothing."""
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    if isinstance(node, list | set):
        return list(node)
    return []


def _weight(value: object) -> int:
    return len(value) + 1 if isinstance(value, str | bytes) else 1


def _measure(node: object, sizes: dict[int, tuple[int, int]], limit: int) -> str | None:
    """Record the size and height of a collection whose children are measured; why it is
    too big or too deep, or None."""
    total, height = 1, 1
    for child in _children(node):
        if isinstance(child, _CONTAINERS):
            size, below = sizes[id(child)]
            total += size
            height = max(height, below + 1)
        else:
            total += _weight(child)
    if total > limit:
        return (f"grows past {limit:,} values and characters once its aliases "
                "are followed (an alias bomb?)")
    if height > MAX_DEPTH:
        return f"nests collections more than {MAX_DEPTH} deep"
    sizes[id(node)] = (total, height)
    return None


def _expansion_trouble(root: object, limit: int = MAX_EXPANDED) -> str | None:
    """Why the values of ``root`` cannot be walked safely, or None. Iterative, and each
    shared (aliased) collection is measured once: the size and the height of what a
    full walk would meet."""
    sizes: dict[int, tuple[int, int]] = {}  # id -> (values and characters, height)
    open_nodes: set[int] = set()
    stack: list[tuple[object, bool]] = [(root, False)]
    while stack:
        node, leaving = stack.pop()
        key = id(node)
        if leaving:
            trouble = _measure(node, sizes, limit)
            if trouble:
                return trouble
            open_nodes.discard(key)
            continue
        if key in sizes:
            continue
        if key in open_nodes:
            return "contains itself (a recursive alias)"
        open_nodes.add(key)
        stack.append((node, True))
        stack.extend((c, False) for c in _children(node)
                     if isinstance(c, _CONTAINERS) and id(c) not in sizes)
    return None


def holds_control(root: object) -> bool:
    """Whether any string in the front matter holds an XML-illegal character (written as
    a YAML escape, "\\x01", so decoding the file did not drop it)."""
    seen: set[int] = set()
    stack = [root]
    while stack:
        node = stack.pop()
        if isinstance(node, str):
            if XML_ILLEGAL.search(node):
                return True
        elif isinstance(node, _CONTAINERS) and id(node) not in seen:
            seen.add(id(node))
            stack.extend(_children(node))
    return False


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())
