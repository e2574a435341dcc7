"""Real feed readers, driven as their users' machines drive them, for the tests that poll
the service with them: newsboat (Debian's, headless: ``-x reload``, its SQLite cache read
back) and lemon24/reader (its Python API on a database in tmp_path). Nobody here wrote
either; both send ``If-None-Match`` together with ``A-IM: feed``, and newsboat ignores a
200 whose Last-Modified is not newer than the one it holds."""

from __future__ import annotations

import shutil
import sqlite3
import subprocess
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pytest

POLL_SECONDS = 120.0
"""Bound of one poll (newsboat's own timeout is set below this)."""


@dataclass(frozen=True)
class Item:
    """One entry as the client stored it."""

    id: str
    title: str
    content: str


class FeedClient(Protocol):
    name: str
    agent: str
    """How its User-Agent starts, to find its requests in the access log."""

    def subscribe(self) -> None:
        """The first poll(s): afterwards the client holds the feed and its validators."""

    def poll(self) -> None: ...

    def items(self) -> list[Item]: ...

    def close(self) -> None: ...


NEWSBOAT_CONFIG = """\
# One attempt a poll, and one thread, so the access log shows each request the poll made.
download-retries 1
download-timeout 60
reload-threads 1
"""


class Newsboat:
    """newsboat with a urls file, a config and a cache of its own, in a HOME of its own."""

    name = "newsboat"
    agent = "newsboat/"

    def __init__(self, folder: Path, feed_url: str) -> None:
        program = shutil.which("newsboat")
        if program is None:
            pytest.skip("newsboat is not installed (scripts/test.sh installs Debian's)")
        self.program = program
        folder.mkdir(parents=True)
        self.folder = folder
        self.urls = folder / "urls"
        self.urls.write_text(feed_url + "\n", encoding="utf-8")
        self.config = folder / "config"
        self.config.write_text(NEWSBOAT_CONFIG, encoding="utf-8")
        self.cache = folder / "cache.db"
        self.env = {"HOME": str(folder), "XDG_CONFIG_HOME": str(folder / "config-home"),
                    "XDG_DATA_HOME": str(folder / "data-home"), "LANG": "C.UTF-8",
                    "PATH": "/usr/bin:/bin", "TERM": "dumb"}

    def subscribe(self) -> None:
        """Two polls. newsboat's first download keeps no validators: it stores them with
        an UPDATE of the feed's row before that row exists, so its second poll is
        unconditional too, and only from the third on does it send If-None-Match."""
        self.poll()
        self.poll()
        assert self.validators() != (0, ""), "newsboat holds no validators"

    def validators(self) -> tuple[int, str]:
        """(Last-Modified as a Unix time, ETag) that newsboat sends on its next poll."""
        with closing(sqlite3.connect(f"file:{self.cache}?mode=ro", uri=True)) as db:
            found: tuple[int, str] = db.execute("SELECT lastmodified, etag FROM rss_feed"
                                                ).fetchone()
        return found

    def poll(self) -> None:
        done = subprocess.run(
            [self.program, "-u", str(self.urls), "-C", str(self.config), "-c", str(self.cache),
             "-x", "reload"],
            env=self.env, cwd=self.folder, stdin=subprocess.DEVNULL, capture_output=True,
            timeout=POLL_SECONDS, check=False)
        assert done.returncode == 0, (done.returncode, done.stdout, done.stderr)

    def items(self) -> list[Item]:
        with closing(sqlite3.connect(f"file:{self.cache}?mode=ro", uri=True)) as db:
            rows = db.execute("SELECT guid, title, content FROM rss_item WHERE deleted = 0 "
                              "ORDER BY id").fetchall()
        return [Item(*row) for row in rows]

    def close(self) -> None:
        pass


class Reader:
    """lemon24/reader with one feed, on a database of its own."""

    name = "reader"
    agent = "python-reader/"

    def __init__(self, folder: Path, feed_url: str) -> None:
        reader = pytest.importorskip("reader", reason="reader is a test extra")
        folder.mkdir(parents=True)
        self.reader = reader.make_reader(str(folder / "reader.sqlite"))
        self.reader.add_feed(feed_url)
        self.feed_url = feed_url

    def subscribe(self) -> None:
        self.poll()

    def poll(self) -> None:
        # update_feeds() logs a feed's error and goes on; a failed poll must fail here.
        # scheduled=False: now, not when reader's schedule (an hour apart) says so.
        for result in self.reader.update_feeds_iter(feed=self.feed_url, scheduled=False):
            assert not isinstance(result.value, Exception), result.value

    def items(self) -> list[Item]:
        found = []
        for entry in self.reader.get_entries(feed=self.feed_url, sort="recent"):
            content = entry.content[0].value if entry.content else entry.summary or ""
            found.append(Item(entry.id, entry.title or "", content))
        return found

    def close(self) -> None:
        self.reader.close()


CLIENTS: dict[str, type[Newsboat] | type[Reader]] = {"newsboat": Newsboat, "reader": Reader}
