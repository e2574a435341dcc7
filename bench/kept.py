"""A feed page made from bodies already rendered (issue 13: at most 1 ms for 20 entries):
``python -m bench.kept [--posts 10000] [--feeds 10] [--rounds 30]``, from the repository
root. Run by hand, never by the tests, while nothing else runs.

In one process, on the benchmark's corpus: the site feed and the first ``--feeds``
categories and tags (by name) are rendered once in each format, page 1 of 20 entries,
so every body they show is kept. Then, ``--rounds`` times, the renderings (responses
and signatures) are dropped and each feed is asked for again: what that costs is the
feed's own making from kept bodies and kept entry bytes (entries, plan, assembly,
ETag), not a body's. Prints the median, 90th percentile and largest, per format, as a
markdown table. No HTTP: the server's own cost per request is measured by wrk.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

from feeds import create_app
from feeds.config import Settings
from feeds.model import FeedKey, Format, Kind
from feeds.service import FeedService

from . import corpus

BASE = "http://127.0.0.1:8000"
ENTRIES = 20


def feed_keys(service: FeedService, count: int, fmt: Format) -> list[FeedKey]:
    state = service.state()
    index = state.index
    keys = [FeedKey(Kind.SITE, "", fmt, 1, ENTRIES)]
    keys += [FeedKey(Kind.CATEGORY, name, fmt, 1, ENTRIES)
             for name in sorted(index.categories)[:count]]
    keys += [FeedKey(Kind.TAG, name, fmt, 1, ENTRIES) for name in sorted(index.tags)[:count]]
    return keys


def measure(service: FeedService, keys: list[FeedKey], rounds: int) -> list[float]:
    for key in keys:
        service.feed(key, BASE)  # every body these pages show is rendered and kept
    cache = service.cache
    times: list[float] = []
    for _ in range(rounds):
        cache._responses.clear()
        cache._signatures.clear()
        for key in keys:
            t0 = time.perf_counter()
            service.feed(key, BASE)
            times.append((time.perf_counter() - t0) * 1000)
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.kept", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--feeds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=30)
    args = parser.parse_args(argv)
    if not (1 <= args.posts <= 1_000_000 and 1 <= args.feeds <= 100
            and 1 <= args.rounds <= 1000):
        parser.error("--posts in [1, 1000000], --feeds in [1, 100], --rounds in [1, 1000]")
    root, _ = corpus.ensure_corpus(args.posts)
    app = create_app(Settings(content=str(root), base_url=BASE, watch=False), watch=False)
    service: FeedService = app.extensions["feeds"]
    try:
        print(f"{args.posts} posts; a feed page of {ENTRIES} from kept bodies, ms;"
              f" {args.rounds} rounds of the site feed, {args.feeds} categories and"
              f" {args.feeds} tags")
        print("| format | median | p90 | max |\n|---|---|---|---|")
        for fmt in (Format.ATOM, Format.RSS, Format.JSON):
            times = sorted(measure(service, feed_keys(service, args.feeds, fmt),
                                   args.rounds))
            p90 = times[min(len(times) - 1, int(len(times) * 0.9))]
            print(f"| {fmt.value} | {statistics.median(times):.3f} | {p90:.3f} |"
                  f" {times[-1]:.3f} |")
    finally:
        service.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
