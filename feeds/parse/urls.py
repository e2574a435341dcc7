"""A post's URL path and entry id, exactly as Jekyll's URL class and ``post.id`` write
them: slugs, permalink styles and placeholders, percent-encoding."""

from __future__ import annotations

import functools
import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterable
from datetime import datetime
from urllib.parse import quote

from .text import PostError, clean_text

_SLUG_KEEP = frozenset("._~!$&'()+,;=@")


def _slugify(text: str, keep: frozenset[str]) -> str:
    """Runs of characters other than letters, marks, decimal digits and ``keep`` -> '-'."""
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


def escape_path(text: str) -> str:
    """Jekyll's ``URL.escape_path`` (Addressable's encode_component with Jekyll's class
    for paths): percent-encode (UTF-8, upper-case hex) all but the unreserved
    characters, sub-delimiters, ':', '@' and '/'."""
    return quote(text, safe="!$&'()*+,;=:@/")


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


_DATE_PLACEHOLDERS: dict[str, Callable[[datetime], str]] = {
    "year": lambda d: f"{d.year:04d}",
    "month": lambda d: f"{d.month:02d}",
    "day": lambda d: f"{d.day:02d}",
    "hour": lambda d: f"{d.hour:02d}",
    "minute": lambda d: f"{d.minute:02d}",
    "second": lambda d: f"{d.second:02d}",
    "i_day": lambda d: str(d.day),
    "i_month": lambda d: str(d.month),
    "short_year": lambda d: d.strftime("%y"),
    "short_month": lambda d: d.strftime("%b"),
    "long_month": lambda d: d.strftime("%B"),
    "short_day": lambda d: d.strftime("%a"),
    "long_day": lambda d: d.strftime("%A"),
    "y_day": lambda d: d.strftime("%j"),
    "week": lambda d: d.strftime("%V"),
    "w_year": lambda d: d.strftime("%G"),
    "w_day": lambda d: d.strftime("%u"),
}


def _placeholder(
    key: str, when: datetime, categories: Iterable[str], slug: str, title_slug: str,
    source: str, collection: str,
) -> str | None:
    """The value of one permalink placeholder (computed only when the template uses it:
    this runs for every post at start-up)."""
    date_part = _DATE_PLACEHOLDERS.get(key)
    if date_part is not None:
        return date_part(when)
    if key == "title":
        return title_slug
    if key == "categories":
        cats: list[str] = []
        for category in categories:
            lowered = category.lower()
            if lowered not in cats:
                cats.append(lowered)
        return "/".join(cats)
    if key == "slugified_categories":
        return "/".join(dict.fromkeys(slugify_default(c) for c in categories))
    if key == "output_ext":
        return output_ext(source)
    if key == "slug":
        return slugify_default(slug) or slug
    if key == "name":
        return slugify_default(source.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    if key == "collection":
        return collection
    if key == "path":
        return document_path(source, collection)
    return None


@functools.lru_cache(maxsize=256)
def _template(template: str) -> tuple[tuple[str, str | None], ...]:
    """A permalink template as (literal text, placeholder name or None) pieces: split
    once per template, not once per post."""
    pieces: list[tuple[str, str | None]] = []
    at = 0
    for match in _PLACEHOLDER.finditer(template):
        pieces.append((template[at:match.start()], match.group(1)))
        at = match.end()
    pieces.append((template[at:], None))
    return tuple(pieces)


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
    out: list[str] = []
    for literal, name in _template(template):
        out.append(literal)
        if name is None:
            continue
        for key in (name, name.rstrip("_")):
            value = _placeholder(key, when, categories, slug, title_slug, path, collection)
            if value is not None:
                out.append(_escaped(value) + name[len(key):])
                break
        else:
            raise PostError(path, f"permalink has an unknown placeholder ':{name}'")
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
    return posixpath.join(posixpath.dirname(url.rstrip("/") or "/"), escape_path(slug))
