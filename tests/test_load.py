"""Under load, end to end: a real waitress on loopback, 32 clients polling feeds for up to
20 seconds while a writer adds, edits and deletes posts every 100 ms. No response may be a
5xx, every body must parse, and every feed must be one consistent version of the
content: the posts the writer never touches are in every feed they belong to, whatever
version of the folder a response shows.

Bounded in time and in count (each client stops at its request budget or the deadline,
the writer at its own). Speed is not asserted here; bench/ measures it.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
from lxml import etree

from .conftest import post_text, validate_atom, validate_json_feed, write_site
from .service_process import Service, Services

CLIENTS = 32
SECONDS = 20.0
REQUESTS_PER_CLIENT = 3000
WRITE_EVERY = 0.1
MAX_WRITES = 400
CATEGORIES = ("alpha", "beta", "gamma")
STABLE_PER_CATEGORY = 8
MAX_VOLATILE = 30
ATOM = "{http://www.w3.org/2005/Atom}"
CONFIG = "title: Load\nurl: https://load.example\ntimezone: UTC\n"


def stable_title(category: str, n: int) -> str:
    return f"Stable {category} {n}"


def stable_posts() -> dict[str, str]:
    posts = {}
    for k, category in enumerate(CATEGORIES):
        for n in range(STABLE_PER_CATEGORY):
            day = k * STABLE_PER_CATEGORY + n + 1
            posts[f"_posts/2020-01-{day:02d}-stable-{category}-{n}.md"] = post_text(
                stable_title(category, n), f"2020-01-{day:02d} 12:00:00", f"[{category}]",
                "[stable, shared]", f"Stable body {category} {n}.")
    return posts


@dataclass
class Findings:
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    failures: list[str] = field(default_factory=list)
    bodies_by_etag: dict[tuple[str, str], str] = field(default_factory=dict)
    etags: dict[str, set[str]] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)
    samples: dict[str, bytes] = field(default_factory=dict)

    def fail(self, message: str) -> None:
        with self.lock:
            if len(self.failures) < 50:
                self.failures.append(message)


def titles_in(url: str, body: bytes) -> list[str]:
    """The entry titles of a feed body; raises when the body does not parse."""
    if url.split("?")[0].endswith(".json"):
        return [item["title"] for item in json.loads(body)["items"]]
    parser = etree.XMLParser(resolve_entities=False, no_network=True)
    root = etree.fromstring(body, parser)
    if url.split("?")[0].endswith(".rss"):
        return [item.findtext("title") or "" for item in root.iter("item")]
    return [entry.findtext(f"{ATOM}title") or "" for entry in root.iter(f"{ATOM}entry")]


def expected_stable(url: str) -> set[str]:
    path = url.split("?")[0]
    for category in CATEGORIES:
        if f"/category/{category}." in path:
            return {stable_title(category, n) for n in range(STABLE_PER_CATEGORY)}
    return {stable_title(c, n) for c in CATEGORIES for n in range(STABLE_PER_CATEGORY)}


URLS = [
    "/feed.atom?limit=100", "/feed.json?limit=100", "/feed.rss?limit=100",
    "/tag/stable.atom?limit=100", "/tag/shared.json?limit=100",
    *(f"/category/{c}.{fmt}?limit=100" for c in CATEGORIES for fmt in ("atom", "rss", "json")),
]


def client_loop(base: str, number: int, deadline: float, findings: Findings) -> None:
    session = requests.Session()
    rng = random.Random(number)
    try:
        for _ in range(REQUESTS_PER_CLIENT):
            if time.monotonic() > deadline:
                return
            url = rng.choice(URLS)
            started = time.monotonic()
            try:
                response = session.get(base + url, timeout=60)
            except requests.RequestException as e:
                findings.fail(f"{url}: {type(e).__name__}: {e}")
                continue
            elapsed = time.monotonic() - started
            with findings.lock:
                findings.requests += 1
                findings.statuses[response.status_code] += 1
                findings.latencies.append(elapsed)
            if response.status_code != 200:
                findings.fail(f"{url}: status {response.status_code}")
                continue
            try:
                titles = titles_in(url, response.content)
            except (ValueError, etree.XMLSyntaxError, KeyError) as e:
                findings.fail(f"{url}: body does not parse: {e}")
                continue
            missing = expected_stable(url) - set(titles)
            if missing:
                findings.fail(f"{url}: stable posts missing: {sorted(missing)[:3]}")
            etag = response.headers.get("ETag", "")
            digest = hashlib.sha256(response.content).hexdigest()
            with findings.lock:
                known = findings.bodies_by_etag.setdefault((url, etag), digest)
                findings.etags.setdefault(url, set()).add(etag)
                findings.samples[url] = response.content
            if known != digest:
                findings.fail(f"{url}: one ETag {etag} for two different bodies")
    finally:
        session.close()


def writer_loop(root: Path, deadline: float, stop: threading.Event,
                written: list[str]) -> None:
    """Adds, edits and deletes volatile posts every WRITE_EVERY seconds; never touches a
    stable one. Half of the edits are atomic saves, half rewrite the file in place."""
    rng = random.Random(7)
    live: dict[str, str] = {}
    made = 0
    for _ in range(MAX_WRITES):
        if stop.is_set() or time.monotonic() > deadline:
            break
        action = rng.choice(["add", "add", "edit", "delete"]) if live else "add"
        if action == "add" and len(live) >= MAX_VOLATILE:
            action = "delete"
        if action == "add":
            made += 1
            category = rng.choice(CATEGORIES)
            name = f"_posts/2021-{made % 12 + 1:02d}-{made % 28 + 1:02d}-volatile-{made}.md"
            live[name] = category
            text = post_text(f"Volatile {made}", f"2021-{made % 12 + 1:02d}-"
                             f"{made % 28 + 1:02d} 09:00:00", f"[{category}]", "[shared]")
            (root / name).write_text(text, "utf-8")
        elif action == "edit":
            name = rng.choice(sorted(live))
            text = post_text(f"Volatile edited {rng.randrange(10**6)}", "2021-06-15 09:00:00",
                             f"[{live[name]}]", "[shared]", "Edited. " * rng.randrange(1, 50))
            if rng.random() < 0.5:
                temporary = root / "_posts" / f".{os.path.basename(name)}.tmp"
                temporary.write_text(text, "utf-8")
                os.replace(temporary, root / name)
            else:
                (root / name).write_text(text, "utf-8")
        else:
            name = rng.choice(sorted(live))
            del live[name]
            (root / name).unlink()
        written.append(action)
        time.sleep(WRITE_EVERY)


@pytest.fixture
def loaded_server(tmp_path: Path) -> Iterator[tuple[Service, Path]]:
    """The service as operators run it (python app.py, its own process: clients and
    server do not share an interpreter lock), following the folder with inotify."""
    root = write_site(tmp_path / "site", stable_posts(), config=CONFIG)
    services = Services(tmp_path)
    try:
        yield services.start(root, "--threads", "8"), root
    finally:
        services.close()


def test_polling_clients_during_constant_edits(loaded_server: tuple[Service, Path],
                                               tmp_path: Path) -> None:
    service, root = loaded_server
    base = service.url
    findings = Findings()
    written: list[str] = []
    stop = threading.Event()
    deadline = time.monotonic() + SECONDS
    writer = threading.Thread(target=writer_loop, args=(root, deadline, stop, written))
    clients = [threading.Thread(target=client_loop, args=(base, n, deadline, findings))
               for n in range(CLIENTS)]
    writer.start()
    for client in clients:
        client.start()
    try:
        for client in clients:
            client.join(SECONDS + 240)
            assert not client.is_alive(), "a client is still running after its deadline"
    finally:
        stop.set()
        writer.join(60)

    latencies = sorted(findings.latencies)
    print(f"\n{findings.requests} requests by {CLIENTS} clients in {SECONDS:.0f} s, "
          f"{len(written)} writes ({Counter(written)}), statuses {dict(findings.statuses)}, "
          f"latency p50 {latencies[len(latencies) // 2] * 1000:.0f} ms, "
          f"p99 {latencies[int(len(latencies) * 0.99)] * 1000:.0f} ms, "
          f"content versions {requests.get(base + '/healthz', timeout=60).json()['version']}")
    assert findings.failures == []
    assert not [s for s in findings.statuses if s >= 500]
    assert findings.requests >= CLIENTS  # every client got answers
    # The clients saw the content change while they polled: several versions of a feed.
    # (How many writes fit in the time depends on the machine; on a busy one a 100 ms
    # sleep can take a second, so only a few are required.)
    assert len(written) >= 5
    assert max(len(tags) for tags in findings.etags.values()) >= 2

    # The last bodies of each kind are valid by the schemas too.
    validate_atom(findings.samples["/feed.atom?limit=100"], tmp_path)
    validate_json_feed(findings.samples["/feed.json?limit=100"])

    # When the writer stops, the feeds settle on exactly what is on disk.
    on_disk = set()
    for path in (root / "_posts").glob("*.md"):
        first = path.read_text("utf-8").split("\n")[1]
        on_disk.add(json.loads(first.removeprefix("title: ")))
    session = requests.Session()
    settle = time.monotonic() + 60
    while True:
        response = session.get(base + "/feed.json?limit=100", timeout=60)
        assert response.status_code == 200
        titles = {item["title"] for item in response.json()["items"]}
        if titles == on_disk:
            break
        assert time.monotonic() < settle, (sorted(on_disk - titles), sorted(titles - on_disk))
        time.sleep(0.1)
    session.close()
    assert "Traceback" not in service.log()
