"""Site index -> HTML pages (index, category, tag, post) through the Jinja templates in
``templates/``. Autoescaping is on: every text that reaches a page is escaped, and post
bodies arrive already sanitised. Dates are shown in the site's time zone; the words
around them in the site's language (Chinese or English, see ``LABELS``)."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime
from functools import lru_cache
from importlib.resources import files
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from . import assets, links
from .model import Author, Body, Kind, Post
from .site import Term

if TYPE_CHECKING:
    from .site import SiteIndex, State

_ENV = Environment(
    loader=PackageLoader("feeds", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
    auto_reload=False,  # the package's own templates: no stat of each at every render
)

FEED_LABELS = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
FEED_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml",
              "json": "application/feed+json"}

LABELS: dict[str, dict[str, str]] = json.loads(
    files("feeds").joinpath("templates/labels.json").read_text(encoding="utf-8"))
"""The words around the content of a page, by language: ``labels_for`` picks them."""


def labels_for(lang: str) -> dict[str, str]:
    """The page words for a BCP 47 language tag: Chinese (Traditional for zh-Hant, -TW,
    -HK, -MO), else English."""
    parts = lang.replace("_", "-").lower().split("-")
    if parts[0] != "zh":
        return LABELS["en"]
    traditional = any(p in ("hant", "tw", "hk", "mo") for p in parts[1:])
    return LABELS["zh-Hant" if traditional else "zh-Hans"]


def feed_links(base: str, kind: Kind, name: str = "") -> list[dict[str, str]]:
    """Atom, RSS and JSON Feed of the site, a category or a tag: what a page links."""
    return [{"fmt": fmt.value, "label": FEED_LABELS[fmt], "type": FEED_TYPES[fmt], "url": url}
            for fmt, url in links.feed_urls(kind, name, base)]


def _term_url(base: str, kind: Kind, name: str) -> str:
    return base + links.html_path(kind, name)


def _day(when: datetime, tz: ZoneInfo) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d")


@lru_cache(maxsize=4096)
def _post_view(post: Post, base: str, tz: ZoneInfo) -> dict[str, Any]:
    """What a page shows of a post in a list or as a neighbour (memoised: a post is on
    its lists' pages and its neighbours'; the templates only read it)."""
    local = post.date.astimezone(tz)
    return {
        "title": post.title,
        "url": base + post.url,
        "date": local.strftime("%Y-%m-%d %H:%M"),
        "date_iso": local.isoformat(),
        "day": local.strftime("%Y-%m-%d"),
        "categories": [{"name": c, "url": _term_url(base, Kind.CATEGORY, c)}
                       for c in post.categories],
        "tags": [{"name": t, "url": _term_url(base, Kind.TAG, t)} for t in post.tags],
        "summary": post.summary,
        "lang": post.lang,
    }


def _terms(terms: list[Term], base: str) -> list[dict[str, Any]]:
    return [{"name": t.name, "count": len(t.posts), "url": _term_url(base, t.kind, t.name),
             "feeds": feed_links(base, t.kind, t.name)} for t in terms]


def _web_url(url: str | None) -> str | None:
    """``url`` when it is an http(s) link (a front matter value may be anything, and an
    escaped 'javascript:' URL still runs when clicked); else None."""
    if not url:
        return None
    scheme = urlsplit(url).scheme.lower()
    return url if scheme in ("http", "https") or (not scheme and url.startswith("//")) else None


def _source_view(url: str | None) -> dict[str, str] | None:
    """The post's original-article link, shown as its host and path."""
    url = _web_url(url)
    if not url:
        return None
    parts = urlsplit(url)
    shown = (parts.netloc + parts.path).rstrip("/") or url
    return {"url": url, "shown": shown}


def render_page(state: State, what: tuple[str, ...], page: int, base: str, *,
                body: Callable[[Post], Body], author: Author | None) -> str | None:
    """The HTML of one page: ('index',), ('category', name), ('tag', name) or ('post',
    path); None when there is no such page. ``body`` gives a post's rendered body;
    ``author`` is the site's, shown on a post that names none."""
    settings = state.settings
    lang = settings.lang or "en"
    common: dict[str, Any] = {
        "site": {
            "title": settings.title,
            "description": settings.description,
            "lang": lang,
            "home": base + links.HOME,
            "opml": base + links.OPML,
            # A hash of its bytes in the URL: a new release is never shown with the old
            # rules from a browser cache (a static host that ignores queries serves it).
            "stylesheet": assets.url(base, "style.css"),
            "timezone": settings.timezone,
        },
        "t": labels_for(lang),
        "site_feeds": feed_links(base, Kind.SITE),
    }
    kind = what[0]
    if kind == "index":
        return _render_index(state, page, base, common)
    if kind in ("category", "tag"):
        return _render_term(state, Kind(kind), what[1], page, base, common)
    if kind == "post":
        post = state.index.post_at(what[1])
        if post is None:
            return None
        return _render_post(state, post, body(post), post.author or author, base, common)
    return None


def _listed(state: State, kind: Kind, name: str, page: int,
            base: str) -> tuple[Term, links.Paging, list[dict[str, Any]]] | None:
    """A list's page: the list, its paging and the posts shown; None when there is no
    such list or page."""
    found = links.select(state.index, kind, name)
    if found is None:
        return None
    url = base + links.html_path(found.kind, found.name)
    paging = links.paging(url, len(found.posts), state.settings.page_size, page)
    if paging is None:
        return None
    tz = state.settings.tz
    return found, paging, [_post_view(p, base, tz) for p in paging.window(found.posts)]


def _render_index(state: State, page: int, base: str, common: dict[str, Any]) -> str | None:
    listed = _listed(state, Kind.SITE, "", page, base)
    if listed is None:
        return None
    _site, paging, posts = listed
    return _ENV.get_template("index.html").render(
        **common,
        page_title=_paged_title(state.settings.title, page, common["t"]),
        canonical=paging.here,
        posts=posts,
        paging=paging,
        feeds=common["site_feeds"],
        term_lists=_term_lists(state.index, base, common["site"]["lang"]),
    )


@lru_cache(maxsize=2)
def _term_lists(index: SiteIndex, base: str, lang: str) -> tuple[tuple[str, str, Markup], ...]:
    """(kind, heading, HTML) of the index pages' lists of categories and tags, made once
    for all the pages of an index (each shows all of them: O(terms) a page otherwise)."""
    term_list = _ENV.get_template("_macros.html").module.term_list  # type: ignore[attr-defined]
    found = []
    for kind, heading in ((Kind.CATEGORY, "categories"), (Kind.TAG, "tags")):
        terms = _terms(index.sorted_terms(kind), base)
        if terms:
            found.append((kind.value, heading, term_list(terms, kind.value, labels_for(lang))))
    return tuple(found)


def _render_term(state: State, kind: Kind, name: str, page: int, base: str,
                 common: dict[str, Any]) -> str | None:
    listed = _listed(state, kind, name, page, base)
    if listed is None:
        return None
    term, paging, posts = listed
    site_title = state.settings.title
    words = common["t"]
    colon = "：" if common["site"]["lang"].lower().startswith("zh") else ": "  # noqa: RUF001 (a full-width colon is meant)
    return _ENV.get_template("term.html").render(
        **common,
        page_title=_paged_title(f"{words[kind]}{colon}{term.name} · {site_title}", page, words),
        canonical=paging.here,
        term_page=True,
        kind=kind.value,
        name=term.name,
        count=len(term.posts),
        posts=posts,
        paging=paging,
        feeds=feed_links(base, kind, term.name),
        feeds_title=links.title(site_title, kind, term.name),
    )


def _paged_title(title: str, page: int, words: dict[str, str]) -> str:
    return title if page == 1 else f"{title} ({words['page_title'].format(page=page)})"


def _render_post(state: State, post: Post, body: Body, author: Author | None, base: str,
                 common: dict[str, Any]) -> str:
    index = state.index
    tz = state.settings.tz
    view = _post_view(post, base, tz)
    newer, older = index.neighbours(post)
    updated = None
    if _day(post.updated, tz) != _day(post.date, tz):
        local = post.updated.astimezone(tz)
        updated = {"iso": local.isoformat(), "day": local.strftime("%Y-%m-%d")}
    first_category = view["categories"][0] if view["categories"] else None
    return _ENV.get_template("post.html").render(
        **common,
        page_title=f"{post.title} · {state.settings.title}",
        canonical=view["url"],
        description=post.summary,
        post=view,
        crumb=first_category,
        author=({"name": author.name, "url": _web_url(author.uri)} if author else None),
        updated=updated,
        content=Markup(body.html),  # sanitised by nh3 in parse.render_body
        source=_source_view(post.source_url),
        newer=_post_view(newer, base, tz) if newer else None,
        older=_post_view(older, base, tz) if older else None,
        feeds=common["site_feeds"],
    )
