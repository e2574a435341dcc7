"""Site index -> HTML pages (index, category, tag, post) through the Jinja templates in
``templates/``. Autoescaping is on: every text that reaches a page is escaped, and post
bodies arrive already sanitised."""

from __future__ import annotations

import math
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup

from .model import FEED_FORMATS, Kind, Post
from .site import name_to_segment

if TYPE_CHECKING:
    from .cache import FeedService, State

_ENV = Environment(
    loader=PackageLoader("feeds", "templates"),
    autoescape=select_autoescape(default=True, default_for_string=True),
    trim_blocks=True,
    lstrip_blocks=True,
)

FEED_LABELS = {"atom": "Atom", "rss": "RSS", "json": "JSON Feed"}
FEED_TYPES = {"atom": "application/atom+xml", "rss": "application/rss+xml",
              "json": "application/feed+json"}


def term_url(base: str, kind: Kind | str, name: str, ext: str = "html") -> str:
    return f"{base}/{Kind(kind).value}/{name_to_segment(name)}.{ext}"


def feed_links(base: str, kind: Kind, name: str = "") -> list[dict[str, str]]:
    path = "/feed" if kind is Kind.SITE else f"/{kind.value}/{name_to_segment(name)}"
    return [
        {"fmt": f.value, "label": FEED_LABELS[f.value], "type": FEED_TYPES[f.value],
         "url": f"{base}{path}.{f.value}"}
        for f in FEED_FORMATS
    ]


def _post_view(post: Post, base: str, tz: ZoneInfo) -> dict[str, Any]:
    local = post.date.astimezone(tz)
    return {
        "title": post.title,
        "url": base + post.url,
        "date": local.strftime("%Y-%m-%d %H:%M"),
        "date_iso": post.date.isoformat(),
        "day": local.strftime("%Y-%m-%d"),
        "categories": [{"name": c, "url": term_url(base, Kind.CATEGORY, c)}
                       for c in post.categories],
        "tags": [{"name": t, "url": term_url(base, Kind.TAG, t)} for t in post.tags],
        "summary": post.summary,
    }


def _paging(page: int, total: int, size: int, url: str) -> dict[str, Any] | None:
    pages = max(1, math.ceil(total / size))
    if page > pages:
        return None
    return {
        "page": page,
        "pages": pages,
        "previous": (url if page == 2 else f"{url}?page={page - 1}") if page > 1 else None,
        "next": f"{url}?page={page + 1}" if page < pages else None,
    }


def render_page(service: FeedService, state: State, what: tuple[str, ...], page: int,
                base: str) -> str | None:
    """The HTML of one page, or None when there is no such page."""
    settings = state.settings
    index = state.index
    tz = settings.tz
    size = settings.page_size
    common: dict[str, Any] = {
        "site": {
            "title": settings.title,
            "description": settings.description,
            "lang": settings.lang or "en",
            "home": base + "/",
            "opml": base + "/feeds.opml",
            "stylesheet": base + "/static/style.css",
        },
        "generated": datetime.fromtimestamp(
            index.posts[0].updated.timestamp(), tz).strftime("%Y-%m-%d %H:%M")
        if index.posts else "",
    }
    kind = what[0]
    if kind == "index":
        paging = _paging(page, len(index.posts), size, base + "/")
        if paging is None:
            return None
        start = (page - 1) * size
        return _ENV.get_template("index.html").render(
            **common,
            page_title=settings.title,
            posts=[_post_view(p, base, tz) for p in index.posts[start:start + size]],
            paging=paging,
            feeds=feed_links(base, Kind.SITE),
            categories=_terms(index.sorted_terms(Kind.CATEGORY), base),
            tags=_terms(index.sorted_terms(Kind.TAG), base),
        )
    if kind in ("category", "tag"):
        term_kind = Kind(kind)
        term = index.term(term_kind, what[1])
        if term is None:
            return None
        url = term_url(base, term_kind, term.name)
        paging = _paging(page, len(term.posts), size, url)
        if paging is None:
            return None
        start = (page - 1) * size
        return _ENV.get_template("term.html").render(
            **common,
            page_title=f"{term.name} · {settings.title}",
            kind=kind,
            kind_label="分类" if kind == "category" else "标签",
            name=term.name,
            count=len(term.posts),
            posts=[_post_view(p, base, tz) for p in term.posts[start:start + size]],
            paging=paging,
            feeds=feed_links(base, term_kind, term.name),
        )
    if kind == "post":
        post = index.post_at(what[1])
        if post is None:
            return None
        body = service.body(post, base)
        author = post.author
        view = _post_view(post, base, tz)
        return _ENV.get_template("post.html").render(
            **common,
            page_title=f"{post.title} · {settings.title}",
            post=view,
            author=author.name if author else None,
            content=Markup(body.html),  # sanitised by nh3 in parse.render_body
            source_url=post.source_url,
            lang=post.lang,
            feeds=feed_links(base, Kind.SITE),
        )
    return None


def _terms(terms: list[Any], base: str) -> list[dict[str, Any]]:
    return [
        {"name": t.name, "count": len(t.posts), "url": term_url(base, t.kind, t.name),
         "feeds": feed_links(base, t.kind, t.name)}
        for t in terms
    ]
