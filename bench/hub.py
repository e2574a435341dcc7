"""The built-in WebSub hub at scale: ``python -m bench.hub [--subscribers 1000]
[--posts 1000] [--rounds 3]``, from the repository root. Run by hand, never by the tests.

Starts ``app.py --websub-hub self`` on a generated corpus (watching the folder as in
production) and one subscriber HTTP server in this process with one callback path per
subscriber, all on 127.0.0.1. Every subscriber subscribes to the site's Atom feed and is
verified; then each round saves a new post and times, per subscriber, how long from the
save to its push arriving. Prints a table: p50, p99 and max per round. Target: p99 <= 2 s
at 1,000 subscribers. Every wait is bounded.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit

from . import corpus, procs
from .corpus import TZ
from .report import percentile

REPO = Path(__file__).resolve().parent.parent
TOPIC = "http://127.0.0.1:4000/feed.atom"  # corpus.py's url: the site's own feed
WAIT = 120.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    # The listen() backlog, set before the socket listens: with the default 5, a burst of
    # pushes loses SYNs and waits out the kernel's 1 s retransmission.
    request_queue_size = 1024


class Subscribers:
    """One server, ``/cb/<n>`` per subscriber: echoes challenges, stamps pushes."""

    def __init__(self) -> None:
        self.lock = threading.Condition()
        self.verified: set[str] = set()
        self.arrivals: dict[str, float] = {}  # path -> perf_counter of its push this round
        subs = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_GET(self) -> None:
                parts = urlsplit(self.path)
                challenge = parse_qs(parts.query).get("hub.challenge", [""])[0].encode()
                with subs.lock:
                    subs.verified.add(parts.path)
                self._answer(200, challenge)

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", "0")))
                now = time.perf_counter()
                with subs.lock:
                    subs.arrivals.setdefault(self.path, now)
                    subs.lock.notify_all()
                self._answer(204, b"")

            def _answer(self, status: int, body: bytes) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = _Server((procs.HOST, 0), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, n: int) -> str:
        return f"http://{procs.HOST}:{self.port}/cb/{n}"


def post(port: int, path: str, form: dict[str, str]) -> int:
    import http.client

    conn = http.client.HTTPConnection(procs.HOST, port, timeout=30)
    try:
        conn.request("POST", path, body=urlencode(form),
                     headers={"Content-Type": "application/x-www-form-urlencoded"})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def subscribe_all(port: int, subs: Subscribers, count: int) -> float:
    started = time.perf_counter()
    deadline = started + WAIT
    for n in range(count):
        form = {"hub.mode": "subscribe", "hub.topic": TOPIC, "hub.callback": subs.url(n)}
        while (status := post(port, "/websub", form)) in (429, 503):
            if time.perf_counter() > deadline:
                raise SystemExit(f"the hub kept answering {status}")
            time.sleep(0.05)
        if status != 202:
            raise SystemExit(f"subscribing {n}: HTTP {status}")
    while True:  # verified and stored: the gauge counts what the database holds
        text = procs.get(port, "/metrics").body.decode()
        stored = next((float(line.split()[-1]) for line in text.splitlines()
                       if line.startswith("feeds_hub_subscriptions ")), 0.0)
        if stored >= count:
            return time.perf_counter() - started
        if time.perf_counter() > deadline:
            raise SystemExit(f"only {stored:.0f} of {count} subscriptions after {WAIT:.0f} s")
        time.sleep(0.1)


def one_round(root: Path, subs: Subscribers, count: int, number: int) -> list[float]:
    """Save a new post (the newest: the site feed changes) and wait for every push."""
    with subs.lock:
        subs.arrivals.clear()
    when = (datetime.now(TZ) - timedelta(minutes=1)).strftime("%Y-%m-%d %H:%M:%S %z")
    path = root / "_posts" / f"{when[:10]}-hub-bench-{number}.md"
    text = f"---\ntitle: Hub bench {number}\ndate: {when}\n---\nPushed to everyone.\n"
    saved = time.perf_counter()
    path.write_text(text, encoding="utf-8")
    with subs.lock:
        subs.lock.wait_for(lambda: len(subs.arrivals) >= count, WAIT)
        arrivals = list(subs.arrivals.values())
    if len(arrivals) < count:
        log(f"round {number}: only {len(arrivals)} of {count} pushes within {WAIT:.0f} s")
    return [t - saved for t in arrivals]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--posts", type=int, default=1000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    procs.install_cleanup()
    log(f"load average {os.getloadavg()[0]:.2f} (figures mean little above ~3 on 2 cores)")
    with tempfile.TemporaryDirectory(prefix="bench-hub-") as tmp:
        root = Path(tmp) / "site"
        corpus.generate(root, args.posts)
        port = procs.free_port()
        child = procs.spawn("hub", [
            sys.executable, str(REPO / "app.py"), "--content", str(root), "--port", str(port),
            "--websub-hub", "self", "--websub-allow-private-callbacks",
            "--state-dir", str(Path(tmp) / "state"), "--log-level", "warning",
            "--websub-max-subscriptions-per-topic", str(args.subscribers),
        ], Path(tmp) / "logs", cwd=REPO)
        procs.wait_ready(child, port, "/healthz", timeout=WAIT)
        subs = Subscribers()
        seconds = subscribe_all(port, subs, args.subscribers)
        log(f"{args.subscribers} subscribers verified in {seconds:.1f} s")
        rows = []
        for number in range(1, args.rounds + 1):
            latencies = sorted(one_round(root, subs, args.subscribers, number))
            rows.append((number, len(latencies), latencies))
            time.sleep(1.0)
        child.stop()
    print(f"\nbuilt-in hub: save -> push received, {args.subscribers} subscribers on "
          f"loopback, {args.posts} posts\n")
    print("| round | pushes received | first | p50 | p99 | max |")
    print("|---|---|---|---|---|---|")
    for number, received, lat in rows:
        if not lat:
            print(f"| {number} | 0 | — | — | — | — |")
            continue
        print(f"| {number} | {received}/{args.subscribers} | {lat[0]:.3f} s | "
              f"{percentile(lat, 50):.3f} s | {percentile(lat, 99):.3f} s | {lat[-1]:.3f} s |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
