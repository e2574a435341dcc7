"""A post's URL path and entry id, exactly as Jekyll's URL class and ``post.id`` write
them: slugs, permalink styles and placeholders, percent-encoding."""

from __future__ import annotations

import functools
import re
import string
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from typing import NamedTuple
from urllib.parse import quote

from .text import PostError, clean_text

_SLUG_KEEP = frozenset("._~!$&'()+,;=@")


@functools.lru_cache(maxsize=8)
def _ascii_run(keep: frozenset[str]) -> re.Pattern[str]:
    """A run of ASCII characters other than letters, digits and ``keep``: in ASCII the
    letters, marks and decimal digits are A-Z, a-z and 0-9 alone."""
    return re.compile("[^A-Za-z0-9" + "".join(re.escape(ch) for ch in sorted(keep)) + "]+")


def _slugify(text: str, keep: frozenset[str]) -> str:
    """Runs of characters other than letters, marks, decimal digits and ``keep`` -> '-'."""
    if text.isascii():  # most slugs: one pattern, not a look-up per character
        return _ascii_run(keep).sub("-", text).strip("-")
    return _slugify_chars(text, keep)


def _slugify_chars(text: str, keep: frozenset[str]) -> str:
    """_slugify of any text, character by character."""
    out: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in keep or cat[0] in "LM" or cat == "Nd":
            out.append(ch)
        elif not out or out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")


def slugify_pretty(text: str) -> str:
    """Jekyll's ``slugify(mode: "pretty", cased: true)``: runs of characters other than
    letters, marks, decimal digits and ``._~!$&'()+,;=@`` become one '-'."""
    return _slugify(text, _SLUG_KEEP)


def slugify_default(text: str) -> str:
    """Jekyll's default ``slugify``: runs of non-alphanumerics -> '-', lower case."""
    return _slugify(text, frozenset()).lower()


def titleize_slug(slug: str) -> str:
    """Jekyll's title for a post without one: 'hello-world' -> 'Hello World'."""
    return " ".join(word[:1].upper() + word[1:].lower() for word in slug.split("-"))


_PATH_SAFE = "!$&'()*+,;=:@/"
_UNQUOTED = string.ascii_letters + string.digits + "_.-~" + _PATH_SAFE
"""What quote() leaves as it is: its always-safe characters and ours."""


def escape_path(text: str) -> str:
    """Jekyll's ``URL.escape_path`` (Addressable's encode_component with Jekyll's class
    for paths): percent-encode (UTF-8, upper-case hex) all but the unreserved
    characters, sub-delimiters, ':', '@' and '/'."""
    if not text.strip(_UNQUOTED):
        return text  # nothing to encode (most slugs): quote() would give it back
    return quote(text, safe=_PATH_SAFE)


def below(path: str, folder: str) -> str | None:
    """``path`` relative to ``folder`` (both '/'-separated, relative to the site), None
    when it is not below it; ``path`` itself when ``folder`` is ''."""
    if not folder:
        return path
    return path[len(folder) + 1:] if path.startswith(folder + "/") else None


def jekyll_relative(path: str, collections_dir: str) -> str:
    """Jekyll's ``relative_path``: ``path`` below ``collections_dir``, or as it is when
    it is not below it (a default's scope outside it, a page)."""
    return below(path, collections_dir) or path


def folder_categories(relative: str, special: str = "_posts") -> list[str]:
    """Jekyll's categories_from_path: the folders of a post's path (below
    collections_dir) before the first '_posts' in it, a/b/_posts/x -> a, b. As in Jekyll
    that is the text '_posts' wherever it is: old_posts/_posts/x gives 'old'."""
    if relative.startswith(special) or special not in relative:
        return []
    name = relative.rsplit("/", 1)[-1]
    folders = relative.split(special, 1)[0].split("/")
    # A folder's name may hold what XML cannot carry ('\x01'): dropped, as in a title.
    return [clean for part in folders if part not in ("", special, name)
            and (clean := clean_text(part))]


CONVERTED_EXTENSIONS = frozenset({".md", ".markdown"})


def output_ext(source: str) -> str:
    """Jekyll's output extension: '.html' for what it converts (Markdown, HTML), else the
    file's own (a .txt post is written, and linked, as .txt)."""
    name = source.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    ext = name[dot:] if dot > 0 else ""
    return ".html" if not ext or ext.lower() in CONVERTED_EXTENSIONS else ext


PERMALINK_STYLES = {
    "date": "/:categories/:year/:month/:day/:title:output_ext",
    "pretty": "/:categories/:year/:month/:day/:title/",
    "ordinal": "/:categories/:year/:y_day/:title:output_ext",
    "weekdate": "/:categories/:year/W:week/:short_day/:title:output_ext",
    "none": "/:categories/:title:output_ext",
}
_PLACEHOLDER = re.compile(r":([a-z_]+)")


class _Parts(NamedTuple):
    """What a post's permalink placeholders are made of."""

    when: datetime
    categories: Iterable[str]
    slug: str
    title_slug: str
    source: str
    collection: str


def _categories(parts: _Parts) -> str:
    return "/".join(dict.fromkeys(category.lower() for category in parts.categories))


# Each placeholder's value (computed only when the template uses it: this runs for every
# post at start-up). Every one gives a text, so which placeholder a name means is known
# from the template alone.
_PLACEHOLDERS: dict[str, Callable[[_Parts], str]] = {
    "year": lambda p: f"{p.when.year:04d}",
    "month": lambda p: f"{p.when.month:02d}",
    "day": lambda p: f"{p.when.day:02d}",
    "hour": lambda p: f"{p.when.hour:02d}",
    "minute": lambda p: f"{p.when.minute:02d}",
    "second": lambda p: f"{p.when.second:02d}",
    "i_day": lambda p: str(p.when.day),
    "i_month": lambda p: str(p.when.month),
    "short_year": lambda p: p.when.strftime("%y"),
    "short_month": lambda p: p.when.strftime("%b"),
    "long_month": lambda p: p.when.strftime("%B"),
    "short_day": lambda p: p.when.strftime("%a"),
    "long_day": lambda p: p.when.strftime("%A"),
    "y_day": lambda p: p.when.strftime("%j"),
    "week": lambda p: p.when.strftime("%V"),
    "w_year": lambda p: p.when.strftime("%G"),
    "w_day": lambda p: p.when.strftime("%u"),
    "title": lambda p: p.title_slug,
    "categories": _categories,
    "slugified_categories": lambda p: "/".join(dict.fromkeys(
        slugify_default(c) for c in p.categories)),
    "output_ext": lambda p: output_ext(p.source),
    "slug": lambda p: slugify_default(p.slug) or p.slug,
    "name": lambda p: slugify_default(p.source.rsplit("/", 1)[-1].rsplit(".", 1)[0]),
    "collection": lambda p: p.collection,
    "path": lambda p: document_path(p.source, p.collection),
}
_Piece = tuple[str, Callable[[_Parts], str] | None, str]


@functools.lru_cache(maxsize=256)
def _template(template: str) -> tuple[tuple[_Piece, ...], str | None]:
    """A permalink template as (literal text, the placeholder's value or None, the rest
    of its name: ':title_' is ':title' and '_') pieces, split once per template, not
    once per post; and the first placeholder name none is, if any."""
    pieces: list[_Piece] = []
    at = 0
    for match in _PLACEHOLDER.finditer(template):
        name = match.group(1)
        key = next((k for k in (name, name.rstrip("_")) if k in _PLACEHOLDERS), None)
        if key is None:
            return (), name
        pieces.append((template[at:match.start()], _PLACEHOLDERS[key], name[len(key):]))
        at = match.end()
    pieces.append((template[at:], None, ""))
    return tuple(pieces), None


_escaped = functools.lru_cache(maxsize=4096)(escape_path)
"""escape_path of the values posts share (years, months, categories)."""
_SLASHES = re.compile("//+")


def build_permalink(
    path: str,
    template: str,
    when: datetime,
    categories: Iterable[str],
    slug: str,
    title_slug: str,
    *,
    style: bool = True,
    collection: str = "posts",
) -> str:
    """The post's URL path, exactly as Jekyll's URL class writes it. With ``style`` (the
    site's permalink setting) a style name such as 'pretty' means its pattern; a post's
    own permalink is taken literally (``style=False``), as Jekyll takes it."""
    if style:
        template = PERMALINK_STYLES.get(template, template)
    pieces, unknown = _template(template)
    if unknown is not None:
        raise PostError(path, f"permalink has an unknown placeholder ':{unknown}'")
    parts = _Parts(when, categories, slug, title_slug, path, collection)
    out: list[str] = []
    for literal, value, rest in pieces:
        out.append(literal)
        if value is not None:
            out.append(_escaped(value(parts)) + rest)
    url = "".join(out)
    if "//" in url:
        url = _SLASHES.sub("/", url)
    # Jekyll's sanitize_url: no '..', no './', no doubled slashes.
    url = ("/" + url).replace("..", "/").replace("./", "")
    return _SLASHES.sub("/", url) if "//" in url else url


def document_path(source: str, collection: str = "posts") -> str:
    """Jekyll's ``cleaned_relative_path``, a post's or document's ``:path``: its path
    below ``collections_dir`` without the extension, the first ``_<collection>`` in it
    removed, and no trailing dots ('_recipes/soup/tomato.md' -> '/soup/tomato',
    'news/_posts/2021-01-01-a.md' -> 'news//2021-01-01-a', whose '//' the URL loses)."""
    name = source.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    stem = source[: len(source) - len(name) + dot] if dot > 0 else source
    return stem.replace(f"_{collection}", "", 1).rstrip(".")


def post_id(url: str, slug: str) -> str:
    """Jekyll's ``post.id``: the URL's folder plus the raw slug. It is what jekyll-feed
    writes as <id>, so it must not change when a site moves here. Ruby's File.dirname
    ignores trailing slashes: the folder of '/notes/hello/' is '/notes'."""
    folder = url.rstrip("/") or "/"
    folder = folder[:folder.rfind("/") + 1]  # posixpath.dirname, as its own code reads:
    if folder.strip("/"):
        folder = folder.rstrip("/")  # the folder without its trailing '/', unless all '/'
    tail = escape_path(slug)
    if tail.startswith("/"):  # then posixpath.join, the same way
        return tail
    return folder + tail if not folder or folder.endswith("/") else f"{folder}/{tail}"
