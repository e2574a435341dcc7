"""Settings are declared once, by the fields of feeds.config.Settings: the defaults there
are the defaults a start with no input resolves to, OPTIONS is derived from them, and the
site's author is parsed once into a typed value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from feeds.config import OPTIONS, OPTIONS_BY_NAME, ConfigError, Settings, load_settings
from feeds.model import Author

from .conftest import write_site


def test_the_declared_defaults_are_what_no_input_resolves_to(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No content folder, no _config.yml, no flags, no environment: the defaults alone.
    monkeypatch.chdir(tmp_path)
    assert load_settings({}, {}) == Settings()


def test_options_are_the_fields_of_settings_but_overrides() -> None:
    fields = [f for f in dataclasses.fields(Settings) if f.name not in ("overrides", "authors")]
    assert [o.name for o in OPTIONS] == [f.name for f in fields]
    assert [o.default for o in OPTIONS] == [f.default for f in fields]
    assert "overrides" not in OPTIONS_BY_NAME and "authors" not in OPTIONS_BY_NAME
    assert OPTIONS_BY_NAME["threads"].default == Settings().threads == 2
    assert OPTIONS_BY_NAME["posts_limit"].config_key == "feed.posts_limit"
    assert OPTIONS_BY_NAME["threads"].flag == "--threads"
    assert OPTIONS_BY_NAME["threads"].env == "FEEDS_THREADS"


def author_from(tmp_path: Path, config: str) -> Author | None:
    root = write_site(tmp_path / "site", {}, config=f"title: T\n{config}")
    return load_settings({"content": str(root)}, {}).author


@pytest.mark.parametrize(("config", "expected"), [
    ("", None),
    ("author: ~\n", None),
    ("author: '  李雷  '\n", Author(name="李雷")),
    ("author: '   '\n", None),
    ("author: {name: 韩梅梅, email: m@example.org, uri: https://m.example.org/}\n",
     Author(name="韩梅梅", email="m@example.org", uri="https://m.example.org/")),
    ("author: {name: Owner, url: https://o.example.org/}\n",
     Author(name="Owner", uri="https://o.example.org/")),
    ("author: {name: Owner, email: '', uri: '', url: https://o.example.org/}\n",
     Author(name="Owner", uri="https://o.example.org/")),
    ("author: {email: m@example.org}\n", None),
    ("author: {name: ''}\n", None),
], ids=["absent", "null", "name", "blank name", "mapping", "url for uri", "blanks",
        "no name", "empty name"])
def test_the_site_author_is_parsed_once(tmp_path: Path, config: str,
                                        expected: Author | None) -> None:
    assert author_from(tmp_path, config) == expected


def test_an_author_that_is_neither_name_nor_mapping_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"'author'.*must be a name or a mapping"):
        author_from(tmp_path, "author: [a, b]\n")


def test_a_config_emptied_a_moment_ago_is_read_once_it_settles(tmp_path: Path) -> None:
    """A writer that rewrites _config.yml in place truncates it first: an empty file a
    moment old keeps the settings in use, and is read once it has settled."""
    import os
    import time

    from feeds.config_file import NAME, ConfigFollower

    path = tmp_path / NAME
    path.write_text("title: Original\n", encoding="utf-8")
    follower = ConfigFollower(tmp_path)
    path.write_text("", encoding="utf-8")  # the truncation, its write not yet done
    assert follower.changed()
    assert follower.reread(lambda: "read") is None
    assert follower.changed()  # still unread: the next look reads it again
    settled = time.time() - 5
    os.utime(path, (settled, settled))  # emptied on purpose, long enough ago
    assert follower.reread(lambda: "read") == "read"
    assert not follower.changed()
