"""Settings: every knob declared once, with its default, help, ``_config.yml`` key,
command-line flag and environment variable.

Precedence, highest first: command-line flag, environment variable, ``_config.yml``,
default. This is the only module that reads the environment.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import quote
from zoneinfo import ZoneInfo

from . import setting_values as values
from .config_file import NAME, ConfigError, read_config_file
from .jekyllconf import (
    Collection,
    CollectionFeed,
    TagFeeds,
    collection_feeds,
    document_folders,
    feed_path,
    front_matter_defaults,
    names,
    read_authors,
    tag_feeds,
)
from .jekyllconf import collections as jekyll_collections
from .model import Author, DefaultSet
from .parse import SiteRules, site_rules
from .parse.defaults import DEFAULT_IFRAME_HOSTS, DEFAULT_SMART_QUOTES

T = TypeVar("T")



@dataclass(frozen=True)
class Option:
    """One setting: how it is spelled in each place, its default and its meaning."""

    name: str
    default: object
    help: str
    parse: Callable[[object], object]
    config_key: str | None = None
    flag: str | None = None
    env: str | None = None


EVERYWHERE = "*"
"""``key=EVERYWHERE``: the setting is spelled as its field is named in all three places
(``_config.yml`` key ``a_b``, flag ``--a-b``, variable ``FEEDS_A_B``)."""


def _setting(default: T, meaning: str, parse: Callable[[object], T], *,
             key: str | None = None, flag: str | None = None, env: str | None = None) -> T:
    """A field of :class:`Settings` with its default and how the setting is spelled in
    ``_config.yml`` (``key``, dotted for nesting), on the command line and in the
    environment; ``parse`` turns what was given into the value, or raises ValueError.
    The metadata's keys are :class:`Option`'s fields, from which ``OPTIONS`` is built."""
    spelling = {"help": meaning, "parse": parse, "config_key": key, "flag": flag, "env": env}
    return dataclasses.field(default=default, metadata=spelling)


def _option(field: dataclasses.Field[object]) -> Option:
    spelling = dict(field.metadata)
    if spelling["config_key"] == EVERYWHERE:
        spelling.update(config_key=field.name, flag="--" + field.name.replace("_", "-"),
                        env="FEEDS_" + field.name.upper())
    return Option(field.name, field.default, **spelling)


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; tests may use ``replace``.

    Each field is the one declaration of its setting (see :func:`_setting`); ``OPTIONS``,
    the flags, the environment variables and the README's table are derived from them."""

    content: str = _setting("content", "the content folder (a Jekyll site source)", values.string,
                            flag="--content", env="FEEDS_CONTENT")
    host: str = _setting("127.0.0.1", "address to listen on", values.string,
                         flag="--host", env="FEEDS_HOST")
    port: int = _setting(8080, "port to listen on", values.port, flag="--port", env="FEEDS_PORT")
    base_url: str = _setting(
        "", "absolute URL this service is reached at (self links, paging, hub, OPML, its "
        "pages); entry ids and links stay url + baseurl", values.url, flag="--base-url",
        env="FEEDS_BASE_URL")
    threads: int = _setting(2, "waitress worker threads", values.positive_int,
                            flag="--threads", env="FEEDS_THREADS")
    build_workers: int = _setting(
        2, "processes `feeds build` renders with (forked once the content is loaded)",
        values.positive_int, env="FEEDS_BUILD_WORKERS")
    load_workers: int = _setting(
        2, "processes a whole load parses the post files with (the loading one and helpers "
        "forked for it, each given 500 files at least; 1: no helper)",
        values.positive_int, env="FEEDS_LOAD_WORKERS")
    render_workers: int = _setting(
        2, "processes a server renders post bodies' Markdown with (it and one helper "
        "forked at start, which renders part of a feed's new bodies; 1: no helper)",
        values.positive_int, env="FEEDS_RENDER_WORKERS")
    title: str = _setting("Feeds", "site title (else `name`)", values.string, key=EVERYWHERE)
    name: str = _setting("", "site name: the title when `title` is not set, as in "
                         "jekyll-feed", values.string, key="name")
    description: str = _setting("", "site description", values.string, key="description")
    url: str = _setting("", "site URL (scheme and host), as in Jekyll", values.url, key="url")
    baseurl: str = _setting("", "path prefix of the site, as in Jekyll", values.string,
                            key="baseurl")
    # An Author is frozen, so one default may be shared (ruff cannot see that).
    author: Author | None = _setting(  # noqa: RUF009
        None, "site author: a name or {name, email, uri}", values.author, key="author")
    timezone: str = _setting("UTC", "IANA time zone for dates without an offset", values.timezone,
                             key=EVERYWHERE)
    lang: str = _setting("", "site language (feed language, HTML lang; pages say 'en' "
                         "when unset)", values.string, key="lang")
    permalink: str = _setting("date", "permalink style or pattern, as in Jekyll", values.string,
                              key="permalink")
    # None: no defaults.
    defaults: tuple[DefaultSet, ...] | None = _setting(
        None, "front-matter defaults for posts (scope path and type, values), as in Jekyll",
        front_matter_defaults, key="defaults")
    front_matter_ids: bool = _setting(
        False, "a post's front-matter id or guid is its entry id (jekyll-feed ignores both)",
        values.boolean, key="front_matter_ids")
    posts_limit: int = _setting(10, "entries per feed page (jekyll-feed's; later pages "
                                "follow)", values.positive_int,
                                key="feed.posts_limit", flag="--posts-limit",
                                env="FEEDS_POSTS_LIMIT")
    feed_path: str = _setting("", "another path of the site's Atom feed, as jekyll-feed's "
                              "`feed.path` (/feed.xml always answers)", feed_path,
                              key="feed.path")
    feed_categories: tuple[str, ...] = _setting(
        (), "categories whose jekyll-feed feed (/feed/<name>.xml) exists even with no "
        "posts", names, key="feed.categories")
    feed_tags: TagFeeds = _setting(  # noqa: RUF009
        TagFeeds(), "jekyll-feed's tag feeds: true or {only, except, path}; tags left "
        "out answer 404 at that path", tag_feeds, key="feed.tags")
    feed_collections: tuple[CollectionFeed, ...] = _setting(
        (), "collections with jekyll-feed feeds: a list, or {name: {path, categories}} "
        "(Atom only, at jekyll-feed's paths)", collection_feeds, key="feed.collections")
    collections: tuple[Collection, ...] = _setting(
        (), "Jekyll's collections (`output`, `permalink`): where their documents' links "
        "point", jekyll_collections, key="collections")
    collections_dir: str = _setting(
        "", "Jekyll's collections_dir: the folder holding _posts and the collections' "
        "folders (posts elsewhere are not read)", values.folder, key="collections_dir")
    exclude: tuple[str, ...] = _setting(
        (), "Jekyll's exclude: paths and patterns of no post (Jekyll's defaults, such as "
        "node_modules and vendor/bundle/, are added)", values.paths, key="exclude")
    include: tuple[str, ...] = _setting(
        (".htaccess",), "Jekyll's include: paths and names read although exclude or a "
        "leading '.' or '_' would leave them out", values.paths, key="include")
    time: str = _setting("", "site.time, as in Jekyll; also the date of a collection "
                         "document without one (else its file's mtime)", values.moment,
                         key="time")
    excerpt_only: bool = _setting(False, "feeds carry summaries, no content (a post's "
                                  "`feed.excerpt_only` wins)", values.boolean,
                                  key="feed.excerpt_only")
    excerpt_separator: str = _setting("", "where a post's excerpt (its summary) ends, as in "
                                      "Jekyll; \"\" for Jekyll's default, a blank line",
                                      values.string, key="excerpt_separator")
    max_limit: int = _setting(100, "largest ?limit= a client may ask for (larger is clamped)",
                              values.positive_int, key=EVERYWHERE)
    page_size: int = _setting(20, "posts per HTML list page", values.positive_int, key="page_size")
    future: bool = _setting(False, "show posts dated in the future", values.boolean, key=EVERYWHERE)
    cache_max_age: int = _setting(300, "Cache-Control max-age of feeds and pages, seconds",
                                  values.positive_int, key=EVERYWHERE)
    reload_interval: float = _setting(2.0, "seconds between content scans when polling",
                                      values.positive_float, key=EVERYWHERE)
    watch: bool = _setting(True, "follow changes to the content folder while running",
                           values.boolean, key=EVERYWHERE)
    max_post_bytes: int = _setting(2_000_000, "larger post files are rejected", values.positive_int,
                                   key=EVERYWHERE)
    cache_bytes: int = _setting(
        64_000_000,
        "memory bound of the response caches (renderings; prepared answers), bytes each",
        values.positive_int, key=EVERYWHERE)
    body_cache_bytes: int = _setting(
        64_000_000, "memory bound of the rendered-post cache, bytes", values.positive_int,
        key=EVERYWHERE)
    source_cache_bytes: int = _setting(
        16_000_000, "memory bound of the post files kept as read when indexed, so a body "
        "always goes with the front matter served even if the file changed since, bytes",
        values.positive_int, key=EVERYWHERE)
    iframe_hosts: tuple[str, ...] = _setting(
        DEFAULT_IFRAME_HOSTS, "hosts (and their subdomains) whose iframe embeds posts keep",
        values.hosts, key=EVERYWHERE)
    smart_quotes: str = _setting(
        DEFAULT_SMART_QUOTES, "the four quotes of Markdown typography, as in kramdown",
        values.string, key="kramdown.smart_quotes")
    websub_hub: str = _setting(
        "", "WebSub hub URL announced in feeds and pinged on change; `self`: the service is "
        "its own hub, at `<base>/websub`", values.hub, key=EVERYWHERE)
    websub_lease_seconds: int = _setting(
        864_000, "built-in hub: lease when a subscriber asks for none", values.positive_int,
        key=EVERYWHERE)
    websub_max_lease_seconds: int = _setting(
        2_592_000, "built-in hub: longest lease granted", values.positive_int, key=EVERYWHERE)
    websub_max_subscriptions: int = _setting(
        10_000, "built-in hub: subscriptions kept in all", values.positive_int, key=EVERYWHERE)
    websub_max_subscriptions_per_topic: int = _setting(
        1_000, "built-in hub: subscriptions kept per feed", values.positive_int, key=EVERYWHERE)
    websub_allow_private_callbacks: bool = _setting(
        False, "built-in hub: call back loopback, private and link-local addresses too "
        "(tests; a hub inside a private network)", values.boolean, key=EVERYWHERE)
    state_dir: str = _setting(
        "", "folder for what must outlive a restart (the built-in hub's subscriptions); "
        "empty: kept in memory only", values.string, key=EVERYWHERE)
    # No _config.yml key: where the service keeps its index is the deployment's choice,
    # not the site's (and Jekyll's own cache_dir names a folder of another kind).
    index_dir: str = _setting(
        "", "folder for the persisted index of parsed front matter (SQLite), so a restart "
        "parses only the posts changed since, and the last load's state, so a restart "
        "with no file changed makes no post again; empty: none, every post is parsed at "
        "start",
        values.string, flag="--index-dir", env="FEEDS_INDEX_DIR")
    log_level: str = _setting("info", "log level",
                              values.one_of("debug", "info", "warning", "error"),
                              flag="--log-level", env="FEEDS_LOG_LEVEL")
    log_format: str = _setting("text", "log format: text (combined access log) or json",
                               values.one_of("text", "json"), flag="--log-format",
                               env="FEEDS_LOG_FORMAT")
    # Not settings: the site's _data/authors.yml (key -> author), which jekyll-feed looks
    # an entry's author up in, read with _config.yml.
    authors: tuple[tuple[str, Author], ...] = ()
    # Not settings of the site: what the command line and environment said, kept so a
    # changed _config.yml can be applied again beneath them.
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def document_folders(self) -> tuple[tuple[str, str, str], ...]:
        """(label, folder, URL template) of the collections whose documents are read."""
        return document_folders(self.feed_collections, self.collections, self.permalink,
                                self.collections_dir)

    @property
    def site_base(self) -> str:
        """Absolute base URL from configuration, '' when the request host must be used."""
        if self.base_url:
            return _uri(self.base_url.rstrip("/"))
        if self.url:
            return _uri(self.url.rstrip("/")) + self.path_prefix
        return ""

    @property
    def entry_base(self) -> str:
        """Where entry ids and links point, as jekyll-feed writes them: url + baseurl;
        with no url, base_url; with neither, the baseurl path alone ('' or '/blog'), so
        ids are paths, as jekyll-feed writes them then (see cache.entry)."""
        if self.url:
            return _uri(self.url.rstrip("/")) + self.path_prefix
        if self.base_url:
            return _uri(self.base_url.rstrip("/"))
        return self.path_prefix

    @property
    def path_prefix(self) -> str:
        """The baseurl as a percent-encoded path prefix: '' or '/blog' ('/博客' ->
        '/%E5%8D%9A%E5%AE%A2'), so feeds carry URIs, never raw IRIs."""
        prefix = self.baseurl.strip("/")
        return _uri(f"/{prefix}") if prefix else ""

    @property
    def self_hub(self) -> bool:
        """Whether the service is its own WebSub hub (``websub_hub: self``)."""
        return self.websub_hub.strip().lower() == "self"

    def hub_url(self, base: str) -> str:
        """The hub that feeds served under ``base`` announce ('' for none)."""
        return f"{base}/websub" if self.self_hub else self.websub_hub

    def site_rules(self) -> SiteRules:
        """The rules a post file is parsed by under these settings."""
        return site_rules(self.timezone, self.permalink, self.max_post_bytes,
                          self.front_matter_ids, self.defaults or (), self.document_folders,
                          self.time, self.collections_dir, self.exclude, self.include)

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def reload_config(self) -> Settings:
        """Settings with ``_config.yml`` read again, flags and environment still on top."""
        return load_settings(dict(self.overrides), {})


OPTIONS: tuple[Option, ...] = tuple(
    _option(f) for f in dataclasses.fields(Settings) if f.metadata
)
"""Every setting, in the order :class:`Settings` declares them (``overrides`` is none)."""

OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


def _uri(text: str) -> str:
    """Percent-encode (UTF-8) what a URI cannot carry raw; escapes already there stay."""
    return quote(text, safe=":/?#[]@!$&'()*+,;=%~")


def _lookup(mapping: Mapping[str, Any], dotted: str) -> tuple[bool, object]:
    node: object = mapping
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return False, None
        node = node[part]
    return True, node


def env_overrides(environ: Mapping[str, str] | None = None) -> dict[str, object]:
    """Settings given by FEEDS_* environment variables."""
    environ = os.environ if environ is None else environ
    return {o.name: environ[o.env] for o in OPTIONS if o.env and o.env in environ}


def load_settings(
    cli: Mapping[str, object], environ: Mapping[str, str] | None = None
) -> Settings:
    """Resolve every option: ``cli`` (flags already parsed, None = not given) over the
    environment over ``_config.yml`` over the defaults."""
    given = env_overrides(environ)
    given.update({k: v for k, v in cli.items() if v is not None})
    content = Path(str(given.get("content", OPTIONS_BY_NAME["content"].default)))
    config = read_config_file(content)
    values: dict[str, object] = {}
    defaulted: set[str] = set()
    for option in OPTIONS:
        raw: object = option.default
        source = "default"
        if option.config_key:
            found, value = _lookup(config, option.config_key)
            if found:
                raw, source = value, f"_config.yml key {option.config_key!r}"
        if option.name in given:
            raw, source = given[option.name], f"setting {option.name!r}"
        if source == "default":
            defaulted.add(option.name)
        try:
            values[option.name] = option.parse(raw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: {e}") from e
    # jekyll-feed's title: site.title | default: site.name.
    if values["name"] and ("title" in defaulted or not values["title"]):
        values["title"] = values["name"]
    _posts_collection(values)
    if values["time"]:
        from .parse.dates import parse_date

        try:
            parse_date(NAME, values["time"], ZoneInfo(str(values["timezone"])), key="time")
        except ValueError as e:
            raise ConfigError(f"_config.yml key 'time': {e}") from e
    try:
        authors = read_authors(content)
    except ValueError as e:
        raise ConfigError(str(e)) from e
    return Settings(**values, authors=authors,  # type: ignore[arg-type]
                    overrides=tuple(sorted(given.items())))


def _posts_collection(values: dict[str, object]) -> None:
    """jekyll-feed's ``feed.collections.posts``: the posts' own path and categories,
    which win over ``feed.path`` and ``feed.categories`` (normalize_posts_meta)."""
    feeds = values["feed_collections"]
    assert isinstance(feeds, tuple)
    for feed in feeds:
        if feed.label == "posts":
            values["feed_path"] = feed.path or values["feed_path"]
            values["feed_categories"] = feed.categories or values["feed_categories"]
