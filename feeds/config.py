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
from typing import Any
from urllib.parse import quote
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the setting."""


def _bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off", ""}:
        return False
    raise ValueError(f"not a boolean: {value!r}")


def _positive_int(value: object) -> int:
    number = int(str(value))
    if number < 1:
        raise ValueError(f"must be a positive integer, got {value!r}")
    return number


def _port(value: object) -> int:
    number = int(str(value))
    if not 0 <= number <= 65535:
        raise ValueError(f"not a port: {value!r}")
    return number


def _positive_float(value: object) -> float:
    number = float(str(value))
    if number <= 0:
        raise ValueError(f"must be positive, got {value!r}")
    return number


def _str(value: object) -> str:
    return "" if value is None else str(value)


def _timezone(value: object) -> str:
    name = _str(value) or "UTC"
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise ValueError(f"unknown IANA time zone {name!r}") from e
    return name


def _choice(*choices: str) -> Callable[[object], str]:
    def parse(value: object) -> str:
        text = _str(value).lower()
        if text not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {value!r}")
        return text

    return parse


def _author(value: object) -> object:
    if value is None or isinstance(value, str | dict):
        return value
    raise ValueError("must be a name or a mapping with name, email, uri")


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


OPTIONS: tuple[Option, ...] = (
    Option("content", "content", "the content folder (a Jekyll site source)", _str,
           None, "--content", "FEEDS_CONTENT"),
    Option("host", "127.0.0.1", "address to listen on", _str, None, "--host", "FEEDS_HOST"),
    Option("port", 8080, "port to listen on", _port, None, "--port", "FEEDS_PORT"),
    Option("base_url", "", "absolute URL the site is served at; overrides url + baseurl",
           _str, None, "--base-url", "FEEDS_BASE_URL"),
    Option("threads", 2, "waitress worker threads", _positive_int,
           None, "--threads", "FEEDS_THREADS"),
    Option("title", "Feeds", "site title", _str, "title", "--title", "FEEDS_TITLE"),
    Option("description", "", "site description", _str, "description", None, None),
    Option("url", "", "site URL (scheme and host), as in Jekyll", _str, "url", None, None),
    Option("baseurl", "", "path prefix of the site, as in Jekyll", _str, "baseurl", None, None),
    Option("author", None, "site author: a name or {name, email, uri}", _author,
           "author", None, None),
    Option("timezone", "UTC", "IANA time zone for dates without an offset", _timezone,
           "timezone", "--timezone", "FEEDS_TIMEZONE"),
    Option("lang", "en", "site language (HTML lang, feed language)", _str, "lang", None, None),
    Option("permalink", "date", "permalink style or pattern, as in Jekyll", _str,
           "permalink", None, None),
    Option("posts_limit", 20, "entries per feed page", _positive_int,
           "feed.posts_limit", "--posts-limit", "FEEDS_POSTS_LIMIT"),
    Option("max_limit", 100, "largest ?limit= a client may ask for (larger is clamped)",
           _positive_int, "max_limit", "--max-limit", "FEEDS_MAX_LIMIT"),
    Option("page_size", 20, "posts per HTML list page", _positive_int,
           "page_size", None, None),
    Option("future", False, "show posts dated in the future", _bool,
           "future", "--future", "FEEDS_FUTURE"),
    Option("cache_max_age", 300, "Cache-Control max-age of feeds and pages, seconds",
           _positive_int, "cache_max_age", "--cache-max-age", "FEEDS_CACHE_MAX_AGE"),
    Option("reload_interval", 2.0, "seconds between content scans when polling",
           _positive_float, "reload_interval", "--reload-interval", "FEEDS_RELOAD_INTERVAL"),
    Option("watch", True, "follow changes to the content folder while running", _bool,
           "watch", "--watch", "FEEDS_WATCH"),
    Option("max_post_bytes", 2_000_000, "larger post files are rejected", _positive_int,
           "max_post_bytes", "--max-post-bytes", "FEEDS_MAX_POST_BYTES"),
    Option("cache_bytes", 64_000_000,
           "memory bound of the response caches (renderings; prepared answers), bytes each",
           _positive_int, "cache_bytes", "--cache-bytes", "FEEDS_CACHE_BYTES"),
    Option("body_cache_bytes", 64_000_000, "memory bound of the rendered-post cache, bytes",
           _positive_int, "body_cache_bytes", "--body-cache-bytes", "FEEDS_BODY_CACHE_BYTES"),
    Option("websub_hub", "", "WebSub hub URL announced in feeds and pinged on change; "
           "`self`: the service is its own hub, at `<base>/websub`", _str,
           "websub_hub", "--websub-hub", "FEEDS_WEBSUB_HUB"),
    Option("websub_lease_seconds", 864_000, "built-in hub: lease when a subscriber asks "
           "for none", _positive_int, "websub_lease_seconds", "--websub-lease-seconds",
           "FEEDS_WEBSUB_LEASE_SECONDS"),
    Option("websub_max_lease_seconds", 2_592_000, "built-in hub: longest lease granted",
           _positive_int, "websub_max_lease_seconds", "--websub-max-lease-seconds",
           "FEEDS_WEBSUB_MAX_LEASE_SECONDS"),
    Option("websub_max_subscriptions", 10_000, "built-in hub: subscriptions kept in all",
           _positive_int, "websub_max_subscriptions", "--websub-max-subscriptions",
           "FEEDS_WEBSUB_MAX_SUBSCRIPTIONS"),
    Option("websub_max_subscriptions_per_topic", 1_000,
           "built-in hub: subscriptions kept per feed", _positive_int,
           "websub_max_subscriptions_per_topic", "--websub-max-subscriptions-per-topic",
           "FEEDS_WEBSUB_MAX_SUBSCRIPTIONS_PER_TOPIC"),
    Option("websub_allow_private_callbacks", False, "built-in hub: call back loopback, "
           "private and link-local addresses too (tests; a hub inside a private network)",
           _bool, "websub_allow_private_callbacks", "--websub-allow-private-callbacks",
           "FEEDS_WEBSUB_ALLOW_PRIVATE_CALLBACKS"),
    Option("state_dir", "", "folder for what must outlive a restart (the built-in hub's "
           "subscriptions); empty: kept in memory only", _str, "state_dir", "--state-dir",
           "FEEDS_STATE_DIR"),
    Option("log_level", "info", "log level", _choice("debug", "info", "warning", "error"),
           None, "--log-level", "FEEDS_LOG_LEVEL"),
    Option("log_format", "text", "log format: text (combined access log) or json",
           _choice("text", "json"), None, "--log-format", "FEEDS_LOG_FORMAT"),
)

OPTIONS_BY_NAME = {option.name: option for option in OPTIONS}


@dataclass(frozen=True)
class Settings:
    """Resolved settings. Build with :func:`load_settings`; tests may use ``replace``."""

    content: str = "content"
    host: str = "127.0.0.1"
    port: int = 8080
    base_url: str = ""
    threads: int = 8
    title: str = "Feeds"
    description: str = ""
    url: str = ""
    baseurl: str = ""
    author: object = None
    timezone: str = "UTC"
    lang: str = "en"
    permalink: str = "date"
    posts_limit: int = 20
    max_limit: int = 100
    page_size: int = 20
    future: bool = False
    cache_max_age: int = 300
    reload_interval: float = 2.0
    watch: bool = True
    max_post_bytes: int = 2_000_000
    cache_bytes: int = 64_000_000
    body_cache_bytes: int = 64_000_000
    websub_hub: str = ""
    websub_lease_seconds: int = 864_000
    websub_max_lease_seconds: int = 2_592_000
    websub_max_subscriptions: int = 10_000
    websub_max_subscriptions_per_topic: int = 1_000
    websub_allow_private_callbacks: bool = False
    state_dir: str = ""
    log_level: str = "info"
    log_format: str = "text"
    # Not settings of the site: what the command line and environment said, kept so a
    # changed _config.yml can be applied again beneath them.
    overrides: tuple[tuple[str, object], ...] = ()

    @property
    def content_path(self) -> Path:
        return Path(self.content)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def site_base(self) -> str:
        """Absolute base URL from configuration, '' when the request host must be used."""
        if self.base_url:
            return _uri(self.base_url.rstrip("/"))
        if self.url:
            return _uri(self.url.rstrip("/")) + self.path_prefix
        return ""

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

    def replace(self, **changes: Any) -> Settings:
        return dataclasses.replace(self, **changes)

    def reload_config(self) -> Settings:
        """Settings with ``_config.yml`` read again, flags and environment still on top."""
        return load_settings(dict(self.overrides), {})


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


def read_config_file(content: Path) -> dict[str, Any]:
    """The content folder's ``_config.yml`` as a mapping ({} when there is none)."""
    path = content / "_config.yml"
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read: {e}") from e
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise ConfigError(f"{path}: not valid YAML: {e}") from e
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: must be a mapping of settings")
    return data


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
    for option in OPTIONS:
        raw: object = option.default
        source = "default"
        if option.config_key:
            found, value = _lookup(config, option.config_key)
            if found:
                raw, source = value, f"_config.yml key {option.config_key!r}"
        if option.name in given:
            raw, source = given[option.name], f"setting {option.name!r}"
        try:
            values[option.name] = option.parse(raw)
        except (TypeError, ValueError) as e:
            raise ConfigError(f"{source}: {e}") from e
    return Settings(**values, overrides=tuple(sorted(given.items())))  # type: ignore[arg-type]
