"""Shared fixtures: settings -> app -> client, content folders written by the tests, a real
waitress server on an ephemeral loopback port, and the feed validators (feedparser, lxml,
jing with the Atom RELAX NG schema, the JSON Feed schema)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import textwrap
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from feeds import create_app
from feeds.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
ATOM_RNC = SHARED / "schemas" / "atom.rnc"
JSONFEED_SCHEMA = SHARED / "schemas" / "jsonfeed-1.1.schema.json"
FIXTURES = Path(__file__).resolve().parent / "fixtures"

DEFAULT_CONFIG = """\
title: 测试站 Test Site
description: A site the tests write
url: https://example.org
timezone: Asia/Shanghai
lang: zh-CN
"""


def write_site(root: Path, posts: dict[str, str], config: str | None = DEFAULT_CONFIG) -> Path:
    """Write a content folder: ``posts`` maps relative paths to file text (dedented)."""
    root.mkdir(parents=True, exist_ok=True)
    if config is not None:
        (root / "_config.yml").write_text(textwrap.dedent(config), encoding="utf-8")
    for rel, text in posts.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return root


def set_mtimes(root: Path, when: float) -> None:
    """Every file and folder of a content folder last modified at ``when`` (a Unix time),
    as a copy that keeps times (``cp -p``, ``rsync -a``) leaves them."""
    for path in [root, *root.rglob("*")]:
        os.utime(path, (when, when))


def post_text(title: str, date: str, categories: str = "[news]", tags: str = "[]",
              body: str = "Hello.", extra: str = "") -> str:
    return (f"---\ntitle: {json.dumps(title, ensure_ascii=False)}\ndate: {date}\n"
            f"categories: {categories}\ntags: {tags}\n{extra}---\n{body}\n")


@pytest.fixture
def site_dir(tmp_path: Path) -> Path:
    """A small content folder with categories, Chinese tags and varied dates."""
    return write_site(tmp_path / "site", {
        "_posts/2021-12-28-hotline.md": post_text(
            "热线二十年", "2021-12-28 00:07:58 +0800", "hongwang", "红网新闻",
            "<p>第一段。</p>\n\n<http://example.com/a>\n\n[返回](//example.net/x.html)"),
        "_posts/2022-01-05-second.md": post_text(
            "Second post", "2022-01-05 10:00:00 +0800", "[news, tech]", "[红网新闻, python]"),
        "_posts/2022-02-01-third.md": post_text(
            "Third & <last>", "2022-02-01", "[news]", "[python]"),
        "world/_posts/2022-03-01-folder.md": post_text(
            "Folder post", "2022-03-01 08:00:00 +0800", "[]", "[旅行]"),
    })


def make_settings(content: Path, **overrides: Any) -> Settings:
    given: dict[str, object] = {"content": str(content), "watch": False}
    given.update(overrides)
    return load_settings(given, environ={})


@pytest.fixture
def settings(site_dir: Path) -> Settings:
    return make_settings(site_dir)


@pytest.fixture
def app(settings: Settings) -> Iterator[Flask]:
    application = create_app(settings, watch=False)
    yield application
    application.extensions["feeds"].stop()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def marked_up(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The texts whose Liquid and Markdown the body cache makes from now on (a body's,
    an excerpt's), in order: every call of bodies.markup_body is recorded, then made."""
    import feeds.bodies

    texts: list[str] = []
    real = feeds.bodies.markup_body

    def recorded(text: str, *args: Any) -> str:
        texts.append(text)
        return real(text, *args)

    monkeypatch.setattr(feeds.bodies, "markup_body", recorded)
    return texts


@pytest.fixture
def make_app() -> Iterator[Callable[..., Flask]]:
    """The app factory: ``make_app(root, watch=False, **overrides)`` builds an app over a
    content folder with :func:`make_settings` (``watch`` is create_app's: follow the
    folder); every app it made is stopped afterwards."""
    apps: list[Flask] = []

    def make(root: Path, watch: bool = False, **overrides: Any) -> Flask:
        application = create_app(make_settings(root, **overrides), watch=watch)
        apps.append(application)
        return application

    yield make
    for application in apps:
        application.extensions["feeds"].stop()


@dataclass
class LiveServer:
    app: Flask
    url: str
    port: int


@pytest.fixture
def live_server_factory() -> Iterator[Callable[[Flask], LiveServer]]:
    """Start a real waitress on 127.0.0.1:<ephemeral> in a thread; stopped afterwards."""
    from waitress.server import create_server

    servers: list[Any] = []
    threads: list[threading.Thread] = []

    def start(application: Flask, threads_count: int = 8) -> LiveServer:
        server = create_server(application, host="127.0.0.1", port=0, threads=threads_count)
        port = server.effective_port
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        servers.append(server)
        threads.append(thread)
        return LiveServer(application, f"http://127.0.0.1:{port}", port)

    yield start
    from waitress import wasyncore

    for server in servers:
        server.task_dispatcher.shutdown()
        # Close the sockets from the loop's own thread (a trigger thunk runs there), so
        # select() never sees a descriptor closed under it; an empty map ends run().
        server.trigger.pull_trigger(lambda s=server: wasyncore.close_all(s._map))
    for thread in threads:
        thread.join(timeout=10)


@pytest.fixture
def live_server(app: Flask, live_server_factory: Callable[[Flask], LiveServer]) -> LiveServer:
    return live_server_factory(app)


# --- validators -----------------------------------------------------------------------


def have_jing() -> bool:
    return shutil.which("jing") is not None and ATOM_RNC.exists()


def validate_atom(data: bytes, tmp_path: Path) -> None:
    """Run the RFC 4287 RELAX NG schema over an Atom document with Debian's jing."""
    if not ATOM_RNC.exists():
        pytest.skip("../shared/schemas/atom.rnc is not here (a clone without shared/)")
    if shutil.which("jing") is None:
        pytest.skip("jing is not installed (scripts/test.sh installs it)")
    doc = tmp_path / "feed.atom"
    doc.write_bytes(data)
    result = subprocess.run(["jing", "-c", str(ATOM_RNC), str(doc)], capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def validate_json_feed(data: bytes) -> dict[str, Any]:
    import jsonschema

    feed: dict[str, Any] = json.loads(data)
    if not JSONFEED_SCHEMA.exists():
        pytest.skip("../shared/schemas/jsonfeed-1.1.schema.json is not here")
    schema = json.loads(JSONFEED_SCHEMA.read_text("utf-8"))
    jsonschema.validate(feed, schema)
    return feed


def validate_atom_many(docs: dict[str, bytes], tmp_path: Path) -> None:
    """Like :func:`validate_atom` for several documents in one jing run (jing's start-up
    costs about a second). ``docs`` maps a label (a URL, say) to the document; a failure
    names the labels of the documents jing rejected."""
    if not ATOM_RNC.exists():
        pytest.skip("../shared/schemas/atom.rnc is not here (a clone without shared/)")
    if shutil.which("jing") is None:
        pytest.skip("jing is not installed (scripts/test.sh installs it)")
    folder = tmp_path / "jing"
    folder.mkdir(exist_ok=True)
    files: dict[str, str] = {}
    for number, (label, data) in enumerate(docs.items()):
        path = folder / f"doc{number}.atom"
        path.write_bytes(data)
        files[str(path)] = label
    result = subprocess.run(["jing", "-c", str(ATOM_RNC), *files], capture_output=True,
                            text=True, timeout=300)
    report = result.stdout + result.stderr
    rejected = sorted({label for path, label in files.items() if path + ":" in report})
    assert result.returncode == 0 and not rejected, f"jing rejected {rejected}:\n{report}"
