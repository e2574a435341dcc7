"""One file -> one Post: front matter, Jekyll's dates and permalinks; and, lazily, the
post's body -> sanitised HTML with absolute URLs.

Everything that can be wrong with one file is raised as :class:`PostError` naming the
file; what the service can mend (a missing title, stray control characters) is mended
and reported as a warning instead.
"""

from __future__ import annotations

import html
import posixpath
import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

import nh3
import yaml
from frontmatter.default_handlers import YAMLHandler
from markdown_it import MarkdownIt

from .model import Author, Body, Post

POST_EXTENSIONS = frozenset({".md", ".markdown", ".html", ".htm", ".txt"})
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".txt"})

# Jekyll's DATE_FILENAME_MATCHER, for the base name only.
FILENAME_DATE = re.compile(r"^(\d{2,4}-\d{1,2}-\d{1,2})-(.*)(\.[^.]+)$")

# Characters XML 1.0 cannot carry; they are dropped everywhere, before anything else.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")

DATE_STRING = re.compile(
    r"^\s*(\d{1,4})-(\d{1,2})-(\d{1,2})"
    r"(?:[Tt ]\s*(\d{1,2}):(\d{2})(?::(\d{2})(?:[.,](\d+))?)?)?"
    r"\s*(Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?\s*$",
    re.IGNORECASE,
)
MIN_YEAR, MAX_YEAR = 1000, 9998


class PostError(Exception):
    """A file that cannot be a post. ``str()`` is 'path: what is wrong'."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class SkipFile(Exception):
    """Not an error: the file is deliberately not a post (``published: false``)."""


@dataclass(frozen=True)
class SiteRules:
    """The site settings that decide how a post is read."""

    tz: tzinfo = UTC
    permalink: str = "date"
    max_post_bytes: int = 2_000_000


@dataclass
class Parsed:
    post: Post
    warnings: list[str] = field(default_factory=list)


# --- Reading the file -----------------------------------------------------------------


# Control characters neither XML 1.0 nor YAML can carry (YAML refuses C1 controls too,
# but not NEL, U+0085, one of its line breaks). A post is read without them, so a stray
# one in a title copied from elsewhere costs the character, not the post.
CONTROL_CHARS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x84\x86-\x9f\ufffe\uffff]")
_OPENING_BYTES = re.compile(rb"\A---[ \t]*\r?\n")


def decode(path: str, data: bytes, warnings: list[str]) -> str:
    """Bytes -> text the way a forgiving reader would: BOM dropped, CRLF folded, invalid
    UTF-8 replaced and control characters dropped (both warned about). NUL bytes in a
    file that does not open with front matter mean a binary file."""
    if not data.strip():
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


CONTROL_WARNING = "control characters XML cannot carry were dropped"


class _FrontMatter(YAMLHandler):
    """python-frontmatter's YAML handler with Jekyll's boundaries: the block opens with a
    '---' line at the very start of the file and closes with '---' or '...'."""

    FM_BOUNDARY = re.compile(r"^(?:---|\.\.\.)[ \t]*$\n?", re.MULTILINE)

    def load(self, fm: str, **kwargs: object) -> Any:
        # CSafeLoader: never constructs Python objects (!!python/object is an error),
        # and aliases are shared references, so an alias bomb costs no memory here.
        # But libyaml nests by C recursion: some 30,000 levels of '[' overflow a thread's
        # stack and kill the process (and the Python loader takes time quadratic in the
        # depth). Nesting is bounded by the count of '[' and '{' and by the indentation,
        # so front matter where those could pass MAX_NESTING is refused unread.
        if _nesting_bound(fm) > MAX_NESTING:
            raise TooDeep(f"has more than {MAX_NESTING:,} '[', '{{' or columns of "
                          "indentation, too many to read safely")
        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(fm, Loader=loader)


MAX_NESTING = 5_000
_BLOCK_LEAD = re.compile(r"^[ ?:-]*", re.MULTILINE)


def _nesting_bound(fm: str) -> int:
    """At least the YAML's nesting depth: every flow collection opens with '[' or '{',
    and a block one starts further right than its parent, or after a '- ', '? ' or ': '
    at the start of a line."""
    lead = max((len(m) for m in _BLOCK_LEAD.findall(fm)), default=0)
    return fm.count("[") + fm.count("{") + lead + 1


class TooDeep(yaml.YAMLError):
    """Front matter nested (or able to nest) too deeply to read safely."""


# A fast path for the front matter nearly every post has: 'key: scalar' lines and flow
# lists of scalars. Even libyaml's loader costs ~150 us a document, most of it set-up;
# this costs ~10 us, and is what makes a 100k-post cold start fit in seconds. It gives
# exactly what yaml.safe_load gives (PyYAML's own resolver and constructors decide each
# scalar's type) and declines (None) anything else, which then goes to the real loader.
_SIMPLE_LINE = re.compile(r"([A-Za-z_][A-Za-z0-9_-]*):(?:[ \t]+(.*))?")
_INDICATORS = frozenset("-?:,[]{}#&*!|>'\"%@` \t")
_FLOW_CHARS = frozenset(",[]{}")
_DOUBLE = re.compile(r'"([^"\\]*)"')
_SINGLE = re.compile(r"'((?:[^']|'')*)'")
_RESOLVER = yaml.resolver.Resolver()
_CONSTRUCTOR = yaml.constructor.SafeConstructor()
_STR_TAG = "tag:yaml.org,2002:str"
_KEY_IS_STR: dict[str, bool] = {}


def _is_plain(text: str, in_flow: bool) -> bool:
    if not text or text[0] in _INDICATORS or text[-1] == ":" or "\t" in text:
        return False
    if ": " in text or " #" in text:
        return False
    return not (in_flow and not _FLOW_CHARS.isdisjoint(text))


def _plain_value(text: str) -> object:
    tag = _RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if tag == _STR_TAG:
        return text
    node = yaml.ScalarNode(tag, text)
    return _CONSTRUCTOR.yaml_constructors[tag](_CONSTRUCTOR, node)


def _scalar(text: str, in_flow: bool) -> tuple[bool, object]:
    first = text[:1]
    if first == '"':
        m = _DOUBLE.fullmatch(text)
        return (True, m.group(1)) if m else (False, None)
    if first == "'":
        m = _SINGLE.fullmatch(text)
        return (True, m.group(1).replace("''", "'")) if m else (False, None)
    if _is_plain(text, in_flow):
        return True, _plain_value(text)
    return False, None


def _key_is_str(key: str) -> bool:
    known = _KEY_IS_STR.get(key)
    if known is None:
        known = _RESOLVER.resolve(  # type: ignore[no-untyped-call]
            yaml.ScalarNode, key, (True, False)) == _STR_TAG
        if len(_KEY_IS_STR) < 10_000:
            _KEY_IS_STR[key] = known
    return known


def _simple_yaml(fm: str) -> dict[str, object] | None:
    result: dict[str, object] = {}
    for line in fm.split("\n"):
        if not line or line.isspace():
            continue
        m = _SIMPLE_LINE.fullmatch(line)
        if m is None:
            return None
        key, value = m.group(1), (m.group(2) or "").rstrip(" \t")
        if not _key_is_str(key):
            return None
        if not value:
            result[key] = None
        elif value[0] == "[" and value[-1] == "]":
            items: list[object] = []
            inner = value[1:-1].strip()
            for part in inner.split(",") if inner else []:
                ok, item = _scalar(part.strip(), True)
                if not ok:
                    return None
                items.append(item)
            result[key] = items
        else:
            ok, item = _scalar(value, False)
            if not ok:
                return None
            result[key] = item
    return result


_HANDLER = _FrontMatter()
_OPENING = re.compile(r"\A---[ \t]*\n")


def split_front_matter(path: str, text: str) -> tuple[dict[str, Any], str]:
    """(front matter, body). PostError when there is no front matter or it is bad."""
    if not _OPENING.match(text):
        raise PostError(path, "no front matter (the file must start with a '---' line)")
    try:
        fm, body = _HANDLER.split(text)
    except ValueError:
        raise PostError(path, "front matter is not closed by a '---' line") from None
    simple = _simple_yaml(fm)
    if simple is not None:
        return simple, body  # plain 'key: value' lines: no aliases, nothing to walk
    try:
        data = _HANDLER.load(fm)
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
    return data, body


# YAML aliases make the front matter a graph: a few lines can name a list of a billion
# values ("billion laughs"). Loading shares the aliased objects, so it is cheap, but
# anything that walks the values (str() of a list, say) would walk every path. So the
# values are counted as such a walk would meet them, each string by its length, and a
# front matter over this budget is refused before anything looks at it.
MAX_EXPANDED = 10_000_000
MAX_DEPTH = 100
_CONTAINERS = (list, dict, set)


def _children(node: object) -> list[object]:
    if isinstance(node, dict):
        return [*node.keys(), *node.values()]
    if isinstance(node, list | set):
        return list(node)
    return []


def _weight(value: object) -> int:
    return len(value) + 1 if isinstance(value, str | bytes) else 1


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
            sizes[key] = (total, height)
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


def _one_line(error: Exception) -> str:
    return " ".join(str(error).split())


# --- Dates ----------------------------------------------------------------------------


# Dates are written with their own offset when it is one a real zone uses: whole minutes
# from -12:00 to +14:00. Any other (a typo like +23:00; one below -12:00, which jing's
# xsd:dateTime rejects past -13:00; a zone's local mean time with seconds, such as
# Asia/Kolkata's +05:53:28 in 1800, which RFC 3339 cannot write) keeps its instant,
# shown in UTC.
MIN_OFFSET = timedelta(hours=-12)
MAX_OFFSET = timedelta(hours=14)


def _check_year(path: str, value: datetime) -> datetime:
    if not MIN_YEAR <= value.year <= MAX_YEAR:
        raise PostError(path, f"date year {value.year} is outside {MIN_YEAR}-{MAX_YEAR}")
    offset = value.utcoffset()
    if offset is not None and not (MIN_OFFSET <= offset <= MAX_OFFSET
                                   and not offset % timedelta(minutes=1)):
        return value.astimezone(UTC)
    return value


def parse_date(path: str, value: object, tz: tzinfo, key: str = "date") -> datetime:
    """A front-matter date, read as Jekyll 4.3 reads it.

    An unquoted YAML timestamp without offset is UTC (Psych makes it a UTC instant, then
    Jekyll shows it in the site zone); a string or date without offset is wall-clock time
    in the site zone; an explicit offset is kept.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            try:
                return _check_year(path, value.replace(tzinfo=UTC).astimezone(tz))
            except OverflowError:
                raise PostError(path, f"{key} {value} is out of range") from None
        return _check_year(path, value)
    if isinstance(value, date):
        return _check_year(path, datetime(value.year, value.month, value.day, tzinfo=tz))
    if isinstance(value, str):
        match = DATE_STRING.match(value)
        if match:
            return _check_year(path, _from_match(path, value, match, tz, key))
    raise PostError(path, f"{key} is not a date: {str(value)[:60]!r}")


def _from_match(path: str, raw: str, match: re.Match[str], tz: tzinfo, key: str) -> datetime:
    year, month, day, hour, minute, second, fraction, offset = match.groups()
    zone: tzinfo = tz
    if offset:
        upper = offset.upper()
        if upper in {"Z", "UTC", "GMT"}:
            zone = UTC
        else:
            digits = offset[1:].replace(":", "")
            hours, minutes = int(digits[:2]), int(digits[2:4] or 0)
            if hours > 23 or minutes > 59:
                raise PostError(path, f"{key} has an impossible offset: {raw!r}")
            delta = timedelta(hours=hours, minutes=minutes)
            zone = timezone(-delta if offset[0] == "-" else delta)
    micro = int((fraction or "0")[:6].ljust(6, "0"))
    try:
        return datetime(
            int(year), int(month), int(day),
            int(hour or 0), int(minute or 0), int(second or 0), micro, tzinfo=zone,
        )
    except ValueError as e:
        raise PostError(path, f"{key} is not a valid date: {raw!r} ({e})") from None


# --- Names, slugs, permalinks ---------------------------------------------------------


def clean_text(value: str) -> str:
    return XML_ILLEGAL.sub("", value)


_SLUG_KEEP = frozenset("._~!$&'()+,;=@")


def slugify_pretty(text: str) -> str:
    """Jekyll's ``slugify(mode: "pretty", cased: true)``: runs of characters other than
    letters, marks, decimal digits and ``._~!$&'()+,;=@`` become one '-'."""
    out: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if ch in _SLUG_KEEP or cat[0] in "LM" or cat == "Nd":
            out.append(ch)
        elif not out or out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-")


def slugify_default(text: str) -> str:
    """Jekyll's default ``slugify``: runs of non-alphanumerics -> '-', lower case."""
    out: list[str] = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat[0] in "LM" or cat == "Nd":
            out.append(ch)
        elif not out or out[-1] != "-":
            out.append("-")
    return "".join(out).strip("-").lower()


def titleize_slug(slug: str) -> str:
    """Jekyll's title for a post without one: 'hello-world' -> 'Hello World'."""
    return " ".join(word[:1].upper() + word[1:].lower() for word in slug.split("-"))


# Addressable's encode_component with Jekyll's character class for paths.
_PATH_SAFE = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@/"
)


def escape_path(text: str) -> str:
    """Jekyll's ``URL.escape_path``: percent-encode (UTF-8, upper-case hex) all but the
    unreserved characters, sub-delimiters, ':', '@' and '/'."""
    if _PATH_SAFE.issuperset(text):
        return text
    return "".join(
        ch if ch in _PATH_SAFE else "".join(f"%{b:02X}" for b in ch.encode("utf-8"))
        for ch in text
    )


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
}


def _placeholder(
    key: str, when: datetime, categories: Iterable[str], slug: str, title_slug: str,
    source: str,
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
    if key == "output_ext":
        return ".html"
    if key == "slug":
        return slugify_default(slug) or slug
    if key == "name":
        return slugify_default(source.rsplit("/", 1)[-1].rsplit(".", 1)[0])
    if key == "collection":
        return "posts"
    if key == "path":
        return source
    return None


def build_permalink(
    path: str,
    template: str,
    when: datetime,
    categories: Iterable[str],
    slug: str,
    title_slug: str,
) -> str:
    """The post's URL path, exactly as Jekyll's URL class writes it."""
    template = PERMALINK_STYLES.get(template, template)

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        for key in (name, name.rstrip("_")):
            value = _placeholder(key, when, categories, slug, title_slug, path)
            if value is not None:
                return escape_path(value) + name[len(key):]
        raise PostError(path, f"permalink has an unknown placeholder ':{name}'")

    url = _PLACEHOLDER.sub(replace, template)
    url = re.sub("/+", "/", url)
    # Jekyll's sanitize_url: no '..', no './', no doubled slashes.
    url = ("/" + url).replace("..", "/").replace("./", "")
    return re.sub("/+", "/", url)


# --- Front matter -> Post -------------------------------------------------------------


def _names(path: str, data: Mapping[str, Any], singular: str, plural: str) -> list[str]:
    """Jekyll's pluralized_array_from_hash: the singular key as one name (or a list), else
    the plural key as a list or a whitespace-separated string."""
    if singular in data and data[singular] is not None:
        value = data[singular]
        items = value if isinstance(value, list) else [value]
    elif plural in data and data[plural] is not None:
        value = data[plural]
        if isinstance(value, str):
            items = value.split()
        elif isinstance(value, list):
            items = value
        else:
            raise PostError(
                path, f"{plural} must be a list or a space-separated string, "
                f"not {type(value).__name__}"
            )
    else:
        return []
    names: list[str] = []
    for item in items:
        if item is None:
            continue
        if isinstance(item, list | dict):
            key = singular if singular in data else plural
            raise PostError(path, f"{key} must hold names, not nested {type(item).__name__}s")
        name = " ".join(clean_text(str(item)).split())
        if name and name not in names:
            names.append(name)
    return names


def _author(path: str, value: object) -> Author | None:
    if value is None or value == "":
        return None
    if isinstance(value, str | int | float):
        return Author(name=clean_text(str(value)))
    if isinstance(value, dict):
        name = value.get("name")
        if not isinstance(name, str) or not name.strip():
            raise PostError(path, "author mapping needs a 'name'")

        def opt(key: str) -> str | None:
            item = value.get(key)
            return clean_text(str(item)) if item else None

        return Author(name=clean_text(name), email=opt("email"), uri=opt("uri") or opt("url"))
    if isinstance(value, list) and value and isinstance(value[0], str | dict):
        return _author(path, value[0])
    raise PostError(path, "author must be a name or a mapping with name, email, uri")


def _text(path: str, data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is None:
        return None
    if isinstance(value, list | dict):
        raise PostError(path, f"{key} must be text, not a {type(value).__name__}")
    text = clean_text(str(value)).strip()
    return text or None


def folder_categories(source: str) -> list[str]:
    """Jekyll takes categories from the folders above ``_posts/``: a/b/_posts/x -> a, b."""
    parts = source.split("/")
    if "_posts" not in parts:
        return []
    return [p for p in parts[: parts.index("_posts")] if p]


def parse_post(
    source: str, data: bytes, stamp: tuple[int, int], rules: SiteRules
) -> Parsed:
    """Read one post file. ``source`` is its path relative to the content folder."""
    if len(data) > rules.max_post_bytes:
        raise PostError(source, f"file is {len(data)} bytes, over max_post_bytes "
                        f"({rules.max_post_bytes})")
    warnings: list[str] = []
    text = decode(source, data, warnings)
    front, _body = split_front_matter(source, text)

    published = front.get("published", True)
    if published is False or (isinstance(published, str) and published.lower() == "false"):
        raise SkipFile(f"{source}: published: false")

    name = source.rsplit("/", 1)[-1]
    stem, dot, ext = name.rpartition(".")
    ext = f".{ext.lower()}" if dot else ""
    match = FILENAME_DATE.match(name)
    if match:
        file_date: str | None = match.group(1)
        slug = match.group(2)
    else:
        file_date, slug = None, stem or name
    slug = clean_text(slug)
    if "slug" in front and front["slug"] is not None and not isinstance(front["slug"], list):
        title_slug = slugify_pretty(clean_text(str(front["slug"])))
    else:
        title_slug = slugify_pretty(slug)

    tz = rules.tz
    if front.get("date") is not None:
        when = parse_date(source, front["date"], tz)
    elif file_date:
        when = parse_date(source, file_date, tz, key="file-name date")
    else:
        raise PostError(source, "no date: give 'date:' in the front matter or name the "
                        "file YYYY-MM-DD-slug")
    updated = when
    for key in ("last_modified_at", "updated"):
        if front.get(key) is not None:
            updated = parse_date(source, front[key], tz, key=key)
            break

    title = _text(source, front, "title")
    if title is None:
        title = titleize_slug(slug) or slug
        warnings.append(f"no title; using {title!r} from the file name")
    title = " ".join(title.split())

    categories = folder_categories(source)
    for category in _names(source, front, "category", "categories"):
        if category not in categories:
            categories.append(category)
    tags = _names(source, front, "tag", "tags")

    template = _text(source, front, "permalink") or rules.permalink
    # Jekyll shows every date in the site zone before it builds the URL, so the URL's
    # day is the site zone's day, whatever offset the date was written with.
    # data["slug"] in Jekyll: the front matter's slug, else the file name's. Both ':slug'
    # and the entry id use it.
    raw_slug = clean_text(str(front["slug"])) if isinstance(front.get("slug"), str) else slug
    url = build_permalink(source, template, when.astimezone(tz), categories, raw_slug,
                          title_slug)
    # Jekyll's post.id: the URL's folder plus the raw slug. It is what jekyll-feed
    # writes as <id>, so it must not change when a site moves here. Ruby's File.dirname
    # ignores trailing slashes: the folder of '/notes/hello/' is '/notes'.
    entry_id = (
        _text(source, front, "id")
        or _text(source, front, "guid")
        or posixpath.join(posixpath.dirname(url.rstrip("/") or "/"), escape_path(raw_slug))
    )
    summary = _text(source, front, "description") or _text(source, front, "excerpt")
    source_url = next(
        (v for k in ("source_url", "source", "canonical_url") if (v := _text(source, front, k))),
        None,
    )
    if source_url and not re.match(r"^(https?:)?//", source_url):
        source_url = None
    post = Post(
        source=source,
        stamp=stamp,
        markup="markdown" if ext in MARKDOWN_EXTENSIONS else "html",
        slug=slug,
        title=title,
        date=when,
        updated=updated,
        categories=tuple(categories),
        tags=tuple(tags),
        url=url,
        entry_id=entry_id,
        author=_author(source, front.get("author")),
        summary=summary,
        image=_text(source, front, "image"),
        lang=_text(source, front, "lang"),
        source_url=source_url,
    )
    if CONTROL_WARNING not in warnings and _holds_control(front):
        warnings.append(CONTROL_WARNING)  # written as YAML escapes ("\x01"), not raw
    return Parsed(post, warnings)


def _holds_control(root: object) -> bool:
    """Whether any string in the front matter holds an XML-illegal character."""
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


def site_rules(tz_name: str, permalink: str, max_post_bytes: int) -> SiteRules:
    return SiteRules(tz=ZoneInfo(tz_name), permalink=permalink, max_post_bytes=max_post_bytes)


# --- Bodies ---------------------------------------------------------------------------

# kramdown-like: raw HTML passes through, autolinks <http://...>, tables, strikethrough.
_MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable(["table", "strikethrough"])

_ALLOWED_TAGS = set(nh3.ALLOWED_TAGS) | {"figure", "figcaption", "picture", "source",
                                         "video", "audio", "track"}
_ALLOWED_TAGS -= {"script", "style", "iframe", "object", "embed", "form", "input"}
_ALLOWED_ATTRIBUTES: dict[str, set[str]] = {k: set(v) for k, v in nh3.ALLOWED_ATTRIBUTES.items()}
_ALLOWED_ATTRIBUTES.setdefault("*", set()).update({"class", "title", "lang", "dir"})
_ALLOWED_ATTRIBUTES.setdefault("img", set()).update({"src", "alt", "width", "height",
                                                     "loading"})
for _media in ("video", "audio", "source", "track"):
    _ALLOWED_ATTRIBUTES.setdefault(_media, set()).update({"src", "controls", "poster", "type"})
_URL_SCHEMES = {"http", "https", "mailto", "ftp", "tel", "data"}

_FIRST_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


def body_text(path: str, data: bytes) -> str:
    """The body of a post file (after its front matter), cleaned of XML-illegal text."""
    text = decode(path, data, [])
    if not _OPENING.match(text):
        raise PostError(path, "no front matter (the file must start with a '---' line)")
    try:
        _front, body = _HANDLER.split(text)  # the front matter was read at load time
    except ValueError:
        raise PostError(path, "front matter is not closed by a '---' line") from None
    return clean_text(body)


def render_body(body: str, markup: str, page_url: str) -> Body:
    """Markdown (or HTML) -> sanitised HTML whose URLs are absolute against ``page_url``,
    plus the first paragraph as plain text for a summary."""
    raw = _MARKDOWN.render(body) if markup == "markdown" else body
    safe = nh3.clean(
        raw,
        tags=_ALLOWED_TAGS,
        clean_content_tags={"script", "style"},
        attributes=_ALLOWED_ATTRIBUTES,
        url_schemes=_URL_SCHEMES,
        link_rel=None,
        url_relative=("rewrite_with_base", page_url) if page_url else None,
    )
    safe = clean_text(safe).strip()
    return Body(html=safe, summary=summary_of(safe))


def summary_of(safe_html: str, limit: int = 400) -> str:
    """The text of the first paragraph (else of the start of the body)."""
    match = _FIRST_PARAGRAPH.search(safe_html)
    fragment = match.group(1) if match else safe_html
    text = " ".join(html.unescape(_TAG.sub("", fragment)).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return clean_text(text)
