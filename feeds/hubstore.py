"""The built-in hub's subscriptions, in SQLite (the standard library's sqlite3).

With the ``state_dir`` setting the database is ``<state_dir>/websub-hub.sqlite3`` and a
restart loses no subscription; without it the same tables live in memory and die with
the process. A file that is not a sound database is reported, moved aside
(``.corrupt-<time>``) and started afresh: the service never fails to start over it.

Besides the subscriptions, each topic keeps the ETag of the body last distributed, so a
feed is pushed once per change, and a change made while the service was down is pushed
after the restart.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .model import Format, Kind

logger = logging.getLogger(__name__)

FILENAME = "websub-hub.sqlite3"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS subscriptions (
    topic TEXT NOT NULL,
    callback TEXT NOT NULL,
    secret TEXT NOT NULL,
    base TEXT NOT NULL,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    fmt TEXT NOT NULL,
    expires REAL NOT NULL,
    PRIMARY KEY (topic, callback)
);
CREATE INDEX IF NOT EXISTS subscriptions_expires ON subscriptions (expires);
CREATE TABLE IF NOT EXISTS topics (
    topic TEXT PRIMARY KEY,
    etag TEXT NOT NULL
);
"""

_COLUMNS = "topic, callback, secret, base, kind, name, fmt, expires"


class StoreError(Exception):
    """The database failed (disk full, a file gone bad while running)."""


@dataclass(frozen=True, slots=True)
class Subscription:
    topic: str
    callback: str
    secret: str
    """'' when the subscriber gave none (then pushes carry no signature)."""
    base: str
    """The site's base URL the topic was subscribed under."""
    kind: Kind
    name: str
    fmt: Format
    expires: float
    """When the lease ends, Unix time."""

    @property
    def key(self) -> tuple[str, str]:
        return self.topic, self.callback


def _row(row: tuple[object, ...]) -> Subscription:
    topic, callback, secret, base, kind, name, fmt, expires = row
    return Subscription(str(topic), str(callback), str(secret), str(base), Kind(str(kind)),
                        str(name), Format(str(fmt)), float(str(expires)))


class HubStore:
    """One connection, behind a lock (sqlite3 objects are not to be shared unlocked)."""

    def __init__(self, state_dir: str) -> None:
        self.path = Path(state_dir) / FILENAME if state_dir else None
        self._lock = threading.Lock()
        self._db = self._open()

    # --- opening ------------------------------------------------------------------------

    def _open(self) -> sqlite3.Connection:
        if self.path is None:
            return self._connect(":memory:")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            # Secrets are kept here: the file is the owner's only (sqlite uses umask).
            os.close(os.open(self.path, os.O_CREAT | os.O_RDWR, 0o600))
        except OSError as e:
            logger.error("cannot use %s (%s): hub subscriptions are kept in memory only, "
                         "and a restart loses them", self.path, e)
            return self._connect(":memory:")
        try:
            return self._connect(str(self.path))
        except sqlite3.Error as e:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            logger.error("%s is not a sound database (%s): moved to %s; the hub starts "
                         "with no subscriptions", self.path, e, aside.name)
            for suffix in ("", "-wal", "-shm", "-journal"):
                with contextlib.suppress(OSError):
                    os.replace(f"{self.path}{suffix}", f"{aside}{suffix}")
        try:
            return self._connect(str(self.path))
        except sqlite3.Error as e:
            logger.error("cannot create %s (%s): hub subscriptions are kept in memory "
                         "only", self.path, e)
            return self._connect(":memory:")

    @staticmethod
    def _connect(where: str) -> sqlite3.Connection:
        db = sqlite3.connect(where, check_same_thread=False, isolation_level=None)
        try:
            check = db.execute("PRAGMA quick_check").fetchall()
            if check != [("ok",)]:
                raise sqlite3.DatabaseError(f"integrity check: {check[:3]}")
            if where != ":memory:":
                db.execute("PRAGMA journal_mode=WAL")
                db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
        except sqlite3.Error:
            db.close()
            raise
        return db

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextlib.contextmanager
    def _sql(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as e:
                logger.error("hub database %s failed: %s", self.path or ":memory:", e)
                raise StoreError(str(e)) from e

    # --- subscriptions ------------------------------------------------------------------

    def put(self, sub: Subscription) -> None:
        """Add a subscription, or renew it (new lease, new secret)."""
        with self._sql() as db:
            db.execute(f"INSERT OR REPLACE INTO subscriptions ({_COLUMNS}) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                       (sub.topic, sub.callback, sub.secret, sub.base, sub.kind.value,
                        sub.name, sub.fmt.value, sub.expires))

    def remove(self, topic: str, callback: str) -> bool:
        with self._sql() as db:
            cursor = db.execute("DELETE FROM subscriptions WHERE topic = ? AND callback = ?",
                                (topic, callback))
            return cursor.rowcount > 0

    def get(self, topic: str, callback: str, now: float) -> Subscription | None:
        """The subscription while its lease runs."""
        with self._sql() as db:
            row = db.execute(f"SELECT {_COLUMNS} FROM subscriptions WHERE topic = ? AND "
                             "callback = ? AND expires > ?", (topic, callback, now)).fetchone()
        return _row(row) if row else None

    def active(self, now: float) -> list[Subscription]:
        """Every subscription whose lease runs, by topic."""
        with self._sql() as db:
            rows = db.execute(f"SELECT {_COLUMNS} FROM subscriptions WHERE expires > ? "
                              "ORDER BY topic, callback", (now,)).fetchall()
        return [_row(row) for row in rows]

    def count(self, now: float, topic: str | None = None) -> int:
        with self._sql() as db:
            if topic is None:
                row = db.execute("SELECT count(*) FROM subscriptions WHERE expires > ?",
                                 (now,)).fetchone()
            else:
                row = db.execute("SELECT count(*) FROM subscriptions WHERE expires > ? "
                                 "AND topic = ?", (now, topic)).fetchone()
        return int(row[0])

    def expire(self, now: float) -> int:
        """Remove the subscriptions whose lease has ended, and the topics nobody follows."""
        with self._sql() as db:
            gone = db.execute("DELETE FROM subscriptions WHERE expires <= ?", (now,)).rowcount
            if gone:
                db.execute("DELETE FROM topics WHERE topic NOT IN "
                           "(SELECT topic FROM subscriptions)")
            return int(gone)

    # --- what was distributed -----------------------------------------------------------

    def etag(self, topic: str) -> str | None:
        with self._sql() as db:
            row = db.execute("SELECT etag FROM topics WHERE topic = ?", (topic,)).fetchone()
        return str(row[0]) if row else None

    def set_etag(self, topic: str, etag: str) -> None:
        with self._sql() as db:
            db.execute("INSERT OR REPLACE INTO topics (topic, etag) VALUES (?, ?)",
                       (topic, etag))
