"""A soak under a hostile world: ``python -m bench.soak [--minutes 30]``, from the
repository root. Run by hand, never by the tests.

Starts ``app.py`` (waitress, following the folder) on a generated corpus plus one post
the soak owns, all on 127.0.0.1, and for ``--minutes``:

- ``--clients`` (32) well-behaved readers poll the site's Atom, RSS and JSON feeds and the
  soak post's page on keep-alive connections, with conditional GETs (If-None-Match);
- a writer rewrites the soak post in place every ``--edit-interval`` (0.1 s; with
  ``--atomic``, by a rename): version N has the title 'Soak vN' and ``PARAGRAPHS``
  paragraphs that each name N;
- every ``--swap-interval`` (60 s) the content folder is swapped for a copy with the same
  content (``rm -rf site; cp -r backup site``, the writer held meanwhile);
- one slowloris client keeps ``--slow-sockets`` connections trickling a header line
  every ``--slow-every`` seconds, reopening those the server closes.

Every body is checked: it parses; the feed's title is the site's; its entries are the
soak post and the same corpus entries (same ids) as at the start; the soak post's title
and every paragraph name one version, one the writer has written. A 304 is *stale* when
the version the client holds was replaced more than ``--stale-after`` (3 s) before it.
At the end a table: requests, 5xx, errors, wrong and torn bodies, stale 304s, how long
after each swap an edit written after it was first served, p50/p99/max
latency of the well-behaved clients, RSS at the start, at a third of the run, highest
after it and at the end (flat: within 5% of the third, see rss_trend), and peak RSS
(VmHWM). Targets
(issue 15): 0 wrong bodies, 0 5xx, RSS flat, p99 <= 50 ms. Every loop is bounded by the
deadline, every socket has a timeout.
"""

from __future__ import annotations

import argparse
import http.client
import json
import re
import shutil
import socket
import sys
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

from . import corpus, procs
from .report import percentile

REPO = Path(__file__).resolve().parent.parent
SOAK_POST = "_posts/soak/2026-01-01-soak.md"  # its own folder: the corpus never writes it
PARAGRAPHS = 12
ATOM = "{http://www.w3.org/2005/Atom}"
ENCODED = "{http://purl.org/rss/1.0/modules/content/}encoded"  # RSS's full content
PATHS = ("/feed.atom", "/feed.rss", "/feed.json")
_VERSION = re.compile(r"Soak v(\d+)\b")
_PARAGRAPH = re.compile(r"version (\d+), paragraph \d+")


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- the writer -------------------------------------------------------------------------


class Writer:
    """Writes versions of the soak post, in place (truncate, then write), as an editor
    without atomic saves does; remembers when each version was replaced."""

    def __init__(self, site: Path, posted: datetime, atomic: bool = False) -> None:
        self.site = site
        self.posted = posted
        self.atomic = atomic
        self.version = 0
        self.writing = 0  # the version being written: served as soon as it is on disk
        self.replaced_at: dict[int, float] = {}
        self.lock = threading.Lock()  # held by a swap: no write into a half-copied folder

    def text(self, version: int) -> str:
        body = "\n\n".join(f"Soak version {version}, paragraph {k}." for k in range(PARAGRAPHS))
        return (f"---\ntitle: Soak v{version}\ndate: {self.posted.isoformat()}\n"
                f"categories: [soak]\n---\n\n{body}\n")

    def write(self) -> None:
        with self.lock:
            version = self.writing = self.version + 1
            path = self.site / SOAK_POST
            path.parent.mkdir(parents=True, exist_ok=True)
            target = path.with_name(".soak.tmp") if self.atomic else path
            with open(target, "w", encoding="utf-8") as f:
                f.write(self.text(version))
            if self.atomic:
                target.replace(path)
            self.replaced_at[self.version] = time.monotonic()
            self.version = version

    def known(self, version: int) -> bool:
        """Written (or being written: a rename makes it visible before ``version`` says
        so, and a reader may see it first)."""
        return 0 <= version <= max(self.version, self.writing)


@dataclass(frozen=True)
class Swap:
    seconds: float  # how long the rm and the copy took
    ended: float  # monotonic time when the copy was done
    version: int  # the soak post's version then: the next one is the first after it


def swap(site: Path, backup: Path, writer: Writer) -> Swap:
    """``rm -rf site; cp -r backup site`` with the same content (the soak post's latest
    version copied into the backup first)."""
    with writer.lock:
        started = time.monotonic()
        current = site / SOAK_POST
        (backup / SOAK_POST).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(current, backup / SOAK_POST)
        shutil.rmtree(site)
        shutil.copytree(backup, site)
        ended = time.monotonic()
        return Swap(ended - started, ended, writer.version)


# --- checking a body --------------------------------------------------------------------


@dataclass
class Expected:
    """What every answer must hold, from the first answer of each feed."""

    title: str
    others: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Path -> the ids of its entries other than the soak post, in order."""


def entries(path: str, body: bytes) -> tuple[str, list[tuple[str, str, str]]]:
    """(feed title, [(id, title, content)]) of a feed body; raises ValueError."""
    if path.endswith(".json"):
        feed = json.loads(body)
        return feed["title"], [(i["id"], i.get("title", ""), i.get("content_html", ""))
                               for i in feed["items"]]
    root = ET.fromstring(body)
    if path.endswith(".atom"):
        return root.findtext(f"{ATOM}title", ""), [
            (e.findtext(f"{ATOM}id", ""), e.findtext(f"{ATOM}title", ""),
             e.findtext(f"{ATOM}content", "") or "") for e in root.iter(f"{ATOM}entry")]
    channel = root.find("channel")
    if channel is None:
        raise ValueError("no channel")
    return channel.findtext("title", ""), [
        (i.findtext("guid", ""), i.findtext("title", ""),
         i.findtext(ENCODED) or i.findtext("description", "")) for i in channel.iter("item")]


Verdict = tuple[str, int, str]
"""('ok' | 'wrong' | 'torn', the soak version the body holds or -1, what is wrong)."""


def soak_version(title: str, content: str, writer: Writer) -> Verdict:
    """The one version a soak post's title and paragraphs name, if they are whole and
    agree and the writer wrote it; else torn (or made up)."""
    match = _VERSION.search(title)
    found = [int(v) for v in _PARAGRAPH.findall(content)]
    if match is None:
        return "torn", -1, f"no version in the title {title[:80]!r}"
    version = int(match.group(1))
    if len(found) != PARAGRAPHS or any(v != version for v in found):
        return "torn", -1, f"title v{version}, {len(found)} paragraphs of {sorted(set(found))}"
    if not writer.known(version):
        return "wrong", -1, f"v{version} was never written"
    return "ok", version, ""


def check(path: str, body: bytes, expected: Expected, writer: Writer) -> Verdict:
    if not path.endswith(PATHS):  # the soak post's page
        text = body.decode("utf-8", "replace")
        return soak_version(text, text, writer)
    try:
        title, found = entries(path, body)
    except (ValueError, KeyError, ET.ParseError) as e:
        return "wrong", -1, f"does not parse: {e!r}"
    if title != expected.title:
        return "wrong", -1, f"the feed's title is {title!r}"
    if not found or "Soak v" not in found[0][1]:
        return "wrong", -1, f"{len(found)} entries, the first not the soak post"
    others = tuple(entry_id for entry_id, _t, _c in found[1:])
    want = expected.others.setdefault(path, others)
    if want != others:
        return "wrong", -1, (f"{len(others)} other entries, {len(set(others) - set(want))} "
                             f"not the first answer's")
    return soak_version(found[0][1], found[0][2], writer)


# --- the clients ------------------------------------------------------------------------


@dataclass
class Tally:
    requests: int = 0
    server_errors: int = 0
    failures: int = 0
    wrong: int = 0
    torn: int = 0
    not_modified: int = 0
    stale: int = 0
    latencies: list[float] = field(default_factory=list)
    first_seen: dict[int, float] = field(default_factory=dict)
    """Version -> when a 200 first showed it (monotonic)."""
    samples: dict[str, list[str]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def note(self, what: str, detail: str) -> None:
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)
            kept = self.samples.setdefault(what, [])
            if len(kept) < 4:  # the first few of each kind
                kept.append(detail)


def reader(port: int, n: int, paths: list[str], deadline: float, think: float,
           expected: Expected, writer: Writer, tally: Tally, stale_after: float) -> None:
    """One well-behaved client: polls ``paths`` in turn on one keep-alive connection,
    sending the ETag it holds; checks every 200 and every 304."""
    held: dict[str, tuple[str, int]] = {}  # path -> (ETag, version)
    conn: http.client.HTTPConnection | None = None
    i = n
    while time.monotonic() < deadline:
        path = paths[i % len(paths)]
        i += 1
        headers = {"Accept-Encoding": "identity"}
        if path in held:
            headers["If-None-Match"] = held[path][0]
        started = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection(procs.HOST, port, timeout=10)
            conn.request("GET", path, headers=headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as e:
            tally.note("failures", f"{path}: {e!r}")
            if conn is not None:
                conn.close()
            conn = None
            time.sleep(think)
            continue
        seconds = time.perf_counter() - started
        with tally.lock:
            tally.requests += 1
            tally.latencies.append(seconds)
        status = response.status
        if status >= 500:
            tally.note("server_errors", f"{path}: {status}")
        elif status == 304:
            with tally.lock:
                tally.not_modified += 1
            version = held[path][1]
            replaced = writer.replaced_at.get(version)
            if version >= 0 and replaced is not None and \
                    time.monotonic() - replaced > stale_after:
                tally.note("stale", f"{path}: 304 for v{version}, now v{writer.version}")
        elif status == 200:
            verdict, version, why = check(path, body, expected, writer)
            if verdict == "ok":
                tally.first_seen.setdefault(version, time.monotonic())
            if verdict != "ok":
                tally.note(verdict, f"{path}: {verdict}: {why}")
            etag = response.getheader("ETag")
            if etag and verdict == "ok":
                held[path] = (etag, version)
            else:
                held.pop(path, None)
        else:
            tally.note("failures", f"{path}: status {status}")
        if response.getheader("Connection", "").lower() == "close":
            conn.close()
            conn = None
        time.sleep(think)
    if conn is not None:
        conn.close()


def slowloris(port: int, sockets: int, every: float, deadline: float,
              counts: dict[str, int]) -> None:
    """Keeps ``sockets`` connections sending one header line every ``every`` seconds and
    never finishing the request; counts the ones the server closed (and reopens them)."""
    open_: list[socket.socket] = []
    try:
        while time.monotonic() < deadline:
            while len(open_) < sockets:
                s = socket.create_connection((procs.HOST, port), timeout=5)
                s.sendall(b"GET /feed.atom HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                open_.append(s)
                counts["opened"] += 1
            for s in list(open_):
                try:
                    s.sendall(b"X-Slow: 1\r\n")
                except OSError:
                    open_.remove(s)
                    s.close()
                    counts["closed by the server"] += 1
            time.sleep(min(every, max(0.0, deadline - time.monotonic())))
    finally:
        for s in open_:
            s.close()


# --- the run ----------------------------------------------------------------------------


def rss_kib(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text("ascii", "replace").splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        return None
    return None


FLAT_SLACK = 0.05
FLAT_MIB = 4
"""RSS is flat when, from a third of the run on, it rises no more than this above its
value then. The bounded caches fill first: feed renderings in a minute or two, the post
files kept as read over the first five swaps (so a run shorter than 15 minutes may
still see those fill after its third)."""


def rss_trend(rss: list[tuple[float, int]], seconds: float) -> tuple[float, float, bool]:
    """(RSS at a third of the run, its highest after that, whether it stayed flat), MiB.
    Start to end would count the caches' warm-up as growth; the first third is left
    to it, and what rises after it is what a longer run would keep growing."""
    if not rss:
        return 0.0, 0.0, False
    third = next((kib for t, kib in rss if t >= seconds / 3), rss[-1][1]) / 1024
    late = max(kib for t, kib in rss if t >= seconds / 3 or (t, kib) == rss[-1]) / 1024
    return third, late, late <= third + max(FLAT_MIB, third * FLAT_SLACK)


def every(interval: float, deadline: float, step: Callable[[], object]) -> None:
    """Run ``step`` every ``interval`` seconds until ``deadline``."""
    next_at = time.monotonic()
    while True:
        next_at += interval
        delay = next_at - time.monotonic()
        if next_at >= deadline:
            return
        if delay > 0:
            time.sleep(delay)
        step()


def prepare(work: Path, posts: int, writer_posted: datetime,
            atomic: bool) -> tuple[Path, Path, Writer]:
    site = work / "site"
    corpus.generate(site, posts)
    writer = Writer(site, writer_posted, atomic)
    writer.write()
    backup = work / "backup"
    shutil.copytree(site, backup)
    return site, backup, writer


def run(args: argparse.Namespace) -> int:
    procs.install_cleanup()
    work = Path(tempfile.mkdtemp(prefix="feeds-soak-"))
    posted = datetime.now().astimezone() - timedelta(minutes=5)
    site, backup, writer = prepare(work, args.posts, posted, args.atomic)
    port = procs.free_port()
    child = procs.spawn("soak-server", [
        sys.executable, str(REPO / "app.py"), "--content", str(site), "--host", procs.HOST,
        "--port", str(port), "--base-url", f"http://{procs.HOST}:{port}",
        "--log-level", "warning"], work / "logs", cwd=REPO)
    try:
        procs.wait_ready(child, port, "/healthz", timeout=120)
        first = {p: procs.get(port, p, {"Accept-Encoding": "identity"}) for p in PATHS}
        title, _ = entries("/feed.json", first["/feed.json"].body)
        expected = Expected(title)
        for path, response in first.items():
            verdict, _v, why = check(path, response.body, expected, writer)
            if verdict != "ok":
                log(f"the first answer of {path} is {verdict}: {why}")
                return 1
        post_url = json.loads(first["/feed.json"].body)["items"][0]["url"]
        # The entry's link is on the site's url when _config.yml has one: its path is
        # what this server answers.
        paths = [*PATHS, urlsplit(post_url).path]
        return soak(args, port, child, site, backup, writer, expected, paths)
    finally:
        child.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log(f"kept {work}")


def soak(args: argparse.Namespace, port: int, child: procs.Child, site: Path, backup: Path,
         writer: Writer, expected: Expected, paths: list[str]) -> int:
    started = time.monotonic()
    deadline = started + args.minutes * 60
    tally = Tally()
    slow = {"opened": 0, "closed by the server": 0}
    rss: list[tuple[float, int]] = []
    swaps: list[Swap] = []
    threads = [threading.Thread(target=reader, daemon=True, args=(
        port, n, paths, deadline, args.think, expected, writer, tally, args.stale_after))
        for n in range(args.clients)]
    threads.append(threading.Thread(target=every, daemon=True,
                                    args=(args.edit_interval, deadline, writer.write)))
    threads.append(threading.Thread(target=every, daemon=True, args=(
        args.swap_interval, deadline, lambda: swaps.append(swap(site, backup, writer)))))
    threads.append(threading.Thread(target=slowloris, daemon=True, args=(
        port, args.slow_sockets, args.slow_every, deadline, slow)))

    def sample() -> None:
        kib = rss_kib(child.pid)
        if kib is not None:
            rss.append((time.monotonic() - started, kib))
        if len(rss) % 12 == 0:
            log(f"{rss[-1][0]:6.0f} s: {tally.requests} requests, {tally.server_errors} 5xx, "
                f"{tally.wrong} wrong, {tally.torn} torn, RSS {rss[-1][1] / 1024:.0f} MiB")

    threads.append(threading.Thread(target=every, daemon=True, args=(5.0, deadline, sample)))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=max(1.0, deadline - time.monotonic()) + 30)
    hung = sum(thread.is_alive() for thread in threads)
    report(args, tally, slow, rss, swaps, writer, procs.vm_hwm_kib(child.pid), hung)
    return 0


def swap_to_visible(swaps: list[Swap], first_seen: dict[int, float]) -> str:
    """How long after each swap's copy was done a version written after it was first
    served (the window in which a reader can be answered 304 for an older one)."""
    delays = []
    for w in swaps:
        shown = [when for version, when in first_seen.items() if version > w.version]
        if shown:
            delays.append(max(0.0, min(shown) - w.ended) * 1000)
    if not delays:
        return "none seen"
    return f"{percentile(delays, 50):.0f} / {max(delays):.0f} ms ({len(delays)} swaps)"


def report(args: argparse.Namespace, tally: Tally, slow: dict[str, int],
           rss: list[tuple[float, int]], swaps: list[Swap], writer: Writer,
           hwm: int | None, hung: int) -> None:
    ms = [s * 1000 for s in tally.latencies]
    visible = swap_to_visible(swaps, tally.first_seen)
    third, late, flat = rss_trend(rss, args.minutes * 60)
    rows = [
        ("minutes", f"{args.minutes:g}"),
        ("clients / think time", f"{args.clients} / {args.think * 1000:.0f} ms"),
        ("edits written", f"{writer.version}"),
        ("folder swaps", f"{len(swaps)} (max "
                         f"{max((w.seconds for w in swaps), default=0) * 1000:.0f} ms)"),
        ("swap done -> a newer edit served: median / max", visible),
        ("requests", f"{tally.requests}"),
        ("304s (stale)", f"{tally.not_modified} ({tally.stale})"),
        ("5xx", f"{tally.server_errors}"),
        ("errors (connection, other status)", f"{tally.failures}"),
        ("wrong bodies", f"{tally.wrong}"),
        ("torn bodies", f"{tally.torn}"),
        ("latency p50 / p99 / max", f"{percentile(ms, 50):.1f} / {percentile(ms, 99):.1f} / "
                                    f"{max(ms, default=0):.1f} ms"),
        ("RSS first / at 1/3 of the run / highest after / last",
         f"{rss[0][1] / 1024 if rss else 0:.0f} / {third:.0f} / {late:.0f} / "
         f"{rss[-1][1] / 1024 if rss else 0:.0f} MiB"),
        (f"RSS flat (after 1/3: within {FLAT_SLACK:.0%}, {FLAT_MIB} MiB at least)",
         f"{'yes' if flat else 'NO'} ({late - third:+.0f} MiB)"),
        ("peak RSS (VmHWM)", f"{(hwm or 0) / 1024:.0f} MiB"),
        ("slowloris sockets opened / closed by server",
         f"{slow['opened']} / {slow['closed by the server']}"),
    ]
    if hung:
        rows.append(("threads still running at the end", f"{hung}"))
    width = max(len(name) for name, _v in rows)
    print(f"| {'measure':<{width}} | value |")
    print(f"|{'-' * (width + 2)}|-------|")
    for name, value in rows:
        print(f"| {name:<{width}} | {value} |")
    for what, lines in tally.samples.items():
        for line in lines:
            log(f"{what}: {line}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=32)
    parser.add_argument("--think", type=float, default=0.1,
                        help="seconds a client waits between its requests")
    parser.add_argument("--posts", type=int, default=1000, help="posts in the corpus")
    parser.add_argument("--edit-interval", type=float, default=0.1)
    parser.add_argument("--swap-interval", type=float, default=60.0)
    parser.add_argument("--slow-sockets", type=int, default=20)
    parser.add_argument("--slow-every", type=float, default=10.0)
    parser.add_argument("--stale-after", type=float, default=3.0)
    parser.add_argument("--atomic", action="store_true",
                        help="save each edit to a temporary file renamed over the post")
    parser.add_argument("--keep", action="store_true", help="keep the work folder")
    args = parser.parse_args(argv)
    if not (0 < args.minutes <= 24 * 60 and 1 <= args.clients <= 256):
        parser.error("--minutes in (0, 1440], --clients in [1, 256]")
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
