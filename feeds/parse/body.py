"""A post's body, read lazily (when a feed or page first needs it), as Jekyll renders it:
Liquid first (unless ``render_with_liquid: false``), then Markdown as kramdown writes it;
then sanitised HTML with absolute URLs, and its first paragraph as a plain-text summary."""

from __future__ import annotations

import html
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..model import Body, Post
from .defaults import DEFAULT_IFRAME_HOSTS, DEFAULT_SMART_QUOTES
from .frontmatter import decode, load_yaml, split
from .liquid_site import READER, LiquidError, LiquidSite, ruby_time
from .sanitise import sanitise
from .simple_yaml import simple_yaml
from .text import clean_text
from .urls import jekyll_relative

if TYPE_CHECKING:
    from liquid import Environment

# The Markdown and Liquid engines are imported when a body is first rendered, not at
# start-up, which reads front matter only (python-liquid alone takes ~0.1 s to import).

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class BodyRules:
    """The site settings that decide how a body is rendered."""

    iframe_hosts: tuple[str, ...] = DEFAULT_IFRAME_HOSTS
    smart_quotes: str = DEFAULT_SMART_QUOTES
    """``kramdown.smart_quotes``: four entity names, single quotes first."""


DEFAULT_RULES = BodyRules()

_FIRST_PARAGRAPH = re.compile(r"<p\b[^>]*>(.*?)</p>", re.DOTALL | re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


class BodyText(str):
    """A post's body; ``front`` is its front matter as written, read again only when
    the body's Liquid needs ``page.*``."""

    front = ""


def body_text(path: str, data: bytes) -> BodyText:
    """The body of a post file (after its front matter), cleaned of XML-illegal text.
    The front matter itself was read when the post was indexed."""
    front, body = split(path, decode(path, data, []))
    text = BodyText(clean_text(body))
    text.front = front
    return text


def liquid_environment(site: LiquidSite, rules: BodyRules = DEFAULT_RULES) -> Environment:
    """The Liquid environment of one site (its ``markdownify`` and ``smartify`` are
    kramdown's, with the site's quotes)."""
    from .kramdown import kramdown, smartify
    from .liquid import environment

    return environment(site, lambda text: kramdown(text, rules.smart_quotes),
                       lambda text: smartify(text, rules.smart_quotes))


class _Renders:
    """How many bodies are being rendered now, and when the last one ended."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._active = 0
        self._ended = 0.0

    def __enter__(self) -> None:
        with self._lock:
            self._active += 1

    def __exit__(self, *_: object) -> None:
        with self._lock:
            self._active -= 1
            self._ended = time.monotonic()

    def note(self) -> None:
        """Count now as the end of a render: background work waits QUIET from now."""
        with self._lock:
            self._ended = time.monotonic()

    def quiet_for(self) -> float:
        """Seconds since the last body was rendered (0 while one is)."""
        with self._lock:
            return 0.0 if self._active else time.monotonic() - self._ended


_RENDERS = _Renders()


def wait_quiet(quiet: float = 0.1, at_most: float = 10.0,
               sleep: Callable[[float], None] = time.sleep) -> None:
    """Return once no body has been rendered for ``quiet`` seconds (or after
    ``at_most``). Work a server does in the background once it serves (warm_up, the
    index's write) waits for this: holding the GIL, it took half the processor from
    the first readers' feeds, which render their bodies right after /healthz turns 200
    (a first feed page took 3-5x as long as on a quiet service)."""
    waited = 0.0
    while waited < at_most and (pause := quiet - _RENDERS.quiet_for()) > 0:
        pause = max(pause, 0.01)
        sleep(pause)
        waited += pause


def rendering(quiet: float = 0.1) -> bool:
    """Whether a body is being rendered, or was in the last ``quiet`` seconds."""
    return _RENDERS.quiet_for() < quiet


def hold_background() -> None:
    """A server has just said it is ready: its first readers' feeds come now, so work
    done in the background (warm_up, the index's write, the first full scan) waits as
    if a body had just been rendered."""
    _RENDERS.note()


def warm_engine() -> None:
    """Import the Markdown engine and build its parser (some 70 ms, once)."""
    from .kramdown import kramdown

    kramdown("warm *up*")


def warm_lexers(texts: Iterable[str]) -> None:
    """Make the lexers these bodies' code blocks name ready now (see highlight)."""
    from .highlight import warm_lexers as warm

    warm(texts)


def warm_up() -> None:
    """Import the Markdown and Liquid engines and build the Markdown parser now (some
    0.5 s with the lexers), off the request path: the service calls this once it
    serves, so that a reader's feed need not wait for them. The engine is imported at
    once (every feed needs it); each later step waits for a moment without bodies to
    render (wait_quiet): a feed asked for meanwhile imports the lexers it needs itself."""
    from .highlight import highlighted

    warm_engine()
    for lang in WARM_LANGUAGES:  # a lexer's first use imports and compiles it: 7-70 ms
        wait_quiet()
        highlighted("x = 1\n", lang)
    wait_quiet()
    from .liquid import environment  # noqa: F401  (imported for its cost, not its name)


# The languages of most code blocks: their lexers are made ready by warm_up.
WARM_LANGUAGES = ("python", "yaml", "bash", "shell", "go", "javascript", "typescript",
                  "json", "html", "css", "ruby", "c", "cpp", "java", "rust", "sql", "diff",
                  "xml")


def page_vars(post: Post, front: Mapping[str, Any], collections_dir: str = "",
              ) -> dict[str, Any]:
    """``page.*``: the front matter, and the values Jekyll computes for a post (its
    ``path`` is Jekyll's relative_path: below ``collections_dir``)."""
    name = post.source.rsplit("/", 1)[-1]
    return {**front, "title": post.title, "date": ruby_time(post.date), "url": post.url,
            "id": post.entry_id, "categories": list(post.categories),
            "tags": list(post.tags), "slug": post.slug,
            "path": jekyll_relative(post.source, collections_dir),
            "name": name, "collection": post.collection}


def holds_liquid(text: str) -> bool:
    """Whether ``text`` has any Liquid to render (a tag or an output)."""
    return "{%" in text or "{{" in text


def with_liquid(env_of: Callable[[], Environment | None], post: Post, text: str) -> str:
    """``text`` with its Liquid rendered for ``post``; as written, with a warning, when
    its Liquid is broken (Jekyll would stop the whole build). ``env_of`` is called only
    for a text that holds Liquid."""
    if not holds_liquid(text):
        return text
    front_text = text.front if isinstance(text, BodyText) else ""
    front: Any = simple_yaml(front_text) if front_text.strip() else {}
    if front is None:
        front = load_yaml(front_text)
    front = front if isinstance(front, dict) else {}
    if front.get("render_with_liquid") is False:
        return text
    env = env_of()
    if env is None:
        return text
    from .liquid import render_liquid

    reading = READER.set(post)  # what site.posts' content shows depends on the reader
    try:
        site: LiquidSite = env.site  # type: ignore[attr-defined]
        return render_liquid(env, text, page_vars(post, front, site.collections_dir))
    except LiquidError as e:
        logger.warning("%s: Liquid error, the body is shown as written: %s", post.source, e)
        return text
    finally:
        READER.reset(reading)


def render_body(body: str, markup: str, page_url: str,
                rules: BodyRules = DEFAULT_RULES,
                liquid: Callable[[str], str] | None = None) -> Body:
    """(Liquid, with ``liquid``, then) Markdown (or HTML) -> sanitised HTML whose URLs are
    absolute against ``page_url``, plus the first paragraph as plain text for a summary."""
    return finish_body(markup_body(body, markup, rules, liquid), page_url, rules)


def markup_body(body: str, markup: str, rules: BodyRules = DEFAULT_RULES,
                liquid: Callable[[str], str] | None = None) -> str:
    """The costly half of render_body, which depends on the post alone, not on the URL it
    is shown at: (Liquid, then) Markdown -> HTML, not yet sanitised."""
    from .kramdown import kramdown

    with _RENDERS:
        if liquid is not None:
            body = liquid(body)
        return kramdown(body, rules.smart_quotes) if markup == "markdown" else body


def finish_body(raw: str, page_url: str, rules: BodyRules = DEFAULT_RULES) -> Body:
    """The other half: markup_body's HTML sanitised, its URLs absolute against
    ``page_url``, with its summary."""
    with _RENDERS:
        safe = clean_text(sanitise(raw, page_url, rules.iframe_hosts)).strip()
    return Body(html=safe, summary=summary_of(safe))


def summary_of(safe_html: str, limit: int = 400) -> str:
    """The text of the first paragraph (else of the start of the body)."""
    match = _FIRST_PARAGRAPH.search(safe_html)
    fragment = match.group(1) if match else safe_html
    text = " ".join(html.unescape(_TAG.sub("", fragment)).split())
    if len(text) > limit:
        text = text[: limit - 1].rstrip() + "…"
    return clean_text(text)
