"""Start-up and first renders of two or more revisions, side by side: ``python -m
bench.firsts [--posts 10000] [--runs 3] REV [REV ...]``, from the repository root. Run by
hand, never by the tests, while nothing else runs.

Each revision is checked out into a temporary worktree; one generated corpus serves them
all. The runs are interleaved (rev A, rev B, rev A, ...) so a machine that slows down
meanwhile slows every revision alike. Each run starts ``app.py --threads 2`` on
127.0.0.1 with an empty cache folder, polls ``/healthz`` every 20 ms until it answers
200, then times, each on a fresh connection, the first ``/feed.atom`` (the site feed:
its bodies not yet rendered), the same feed again (now cached), and the first feed of
one category and of one tag. Then ``--changes`` times the change test of ``python -m
bench`` (a new post renamed into ``_posts/``, then the first GET of a category's and a
tag's Atom feed that it is in; the run's median of each, and of the time each change took
to show, the median and the largest). Prints medians (and every run)
as a markdown table.

``WORKTREE`` is what the working tree holds now, uncommitted changes included.
"""

from __future__ import annotations

import argparse
import math
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import corpus, procs, run
from .report import SizeResult

REPO = Path(__file__).resolve().parent.parent
MEASURES = ("cold start to /healthz 200, s", "first /feed.atom, ms", "/feed.atom again, ms",
            "first category feed, ms", "first tag feed, ms",
            "render after a change: category feed, ms", "render after a change: tag feed, ms",
            "change → visible p50, ms", "change → visible max, ms")
START_TIMEOUT = 300.0


def checkout(rev: str, into: Path) -> Path:
    """A worktree of ``rev`` (or the working tree itself for WORKTREE)."""
    if rev == "WORKTREE":
        return REPO
    subprocess.run(["git", "worktree", "add", "--detach", "-q", str(into), rev], cwd=REPO,
                   check=True)
    return into


def one_run(
    code: Path, content: Path, m: corpus.Manifest, work: Path, opts: argparse.Namespace
) -> list[float]:
    """The MEASURES of one start of ``code`` on ``content``."""
    port = procs.free_port()
    cache = Path(tempfile.mkdtemp(dir=work))
    env = {"PATH": "/usr/bin:/bin", "PYTHONPATH": str(code), "XDG_CACHE_HOME": str(cache),
           "HOME": str(cache)}
    child = procs.spawn("app", [
        sys.executable, str(code / "app.py"), "--content", str(content), "--host",
        procs.HOST, "--port", str(port), "--base-url", f"http://{procs.HOST}:{port}",
        "--threads", "2"], work / "logs", cwd=code, env=env)
    try:
        started, _ = procs.wait_ready(child, port, "/healthz", timeout=START_TIMEOUT)
        first = procs.get(port, "/feed.atom", timeout=120).seconds
        again = procs.get(port, "/feed.atom", timeout=120).seconds
        opml = procs.get(port, "/feeds.opml", timeout=120).body.decode("utf-8")
        paths = [p.replace("&amp;", "&") for p in
                 re.findall(r'xmlUrl="http://127\.0\.0\.1:\d+([^"]+)"', opml)]
        category = next(p for p in paths if "/category/" in p)
        tag = next(p for p in paths if "/tag/" in p)
        firsts = [started, first * 1000, again * 1000,
                  procs.get(port, category, timeout=120).seconds * 1000,
                  procs.get(port, tag, timeout=120).seconds * 1000]
        res = SizeResult(n=opts.posts)
        ours = run.Ours(child, port, started, {}, [])
        run.change_test(ours, content, m, res, opts, limit=120.0)
        for note in res.notes:
            print(f"  {code.name}: {note}", file=sys.stderr)
        return [*firsts, statistics.median(res.render_category_ms or [math.nan]),
                statistics.median(res.render_tag_ms or [math.nan]),
                statistics.median(res.change_ms or [math.nan]), max(res.change_ms or [math.nan])]
    finally:
        child.stop()
        shutil.rmtree(cache, ignore_errors=True)


def table(revs: list[str], results: dict[str, list[list[float]]]) -> str:
    lines = ["| | " + " | ".join(revs) + " |", "|---|" + "---|" * len(revs)]
    for k, measure in enumerate(MEASURES):
        cells = []
        for rev in revs:
            values = [run[k] for run in results[rev]]
            digits = 2 if measure.endswith(", s") else 1
            cells.append(f"{statistics.median(values):.{digits}f} ("
                         + ", ".join(f"{v:.{digits}f}" for v in values) + ")")
        lines.append(f"| {measure} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.firsts", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("revs", nargs="+", help="git revisions, or WORKTREE")
    parser.add_argument("--posts", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--changes", type=int, default=10)
    parser.add_argument("--change-timeout", type=float, default=30.0)
    args = parser.parse_args(argv)
    if not (1 <= args.runs <= 20 and 1 <= args.posts <= 1_000_000
            and 1 <= args.changes <= 100):
        parser.error("--runs in [1, 20], --posts in [1, 1000000], --changes in [1, 100]")
    procs.install_cleanup()
    work = Path(tempfile.mkdtemp(prefix="feeds-firsts-"))
    trees: list[Path] = []
    try:
        content = work / "site"
        manifest = corpus.generate(content, args.posts)
        codes = {}
        for n, rev in enumerate(args.revs):
            codes[rev] = checkout(rev, work / f"rev{n}")
            if codes[rev] != REPO:
                trees.append(codes[rev])
        results: dict[str, list[list[float]]] = {rev: [] for rev in args.revs}
        for run in range(args.runs):
            for rev in args.revs:
                t0 = time.monotonic()
                results[rev].append(one_run(codes[rev], content, manifest, work, args))
                print(f"run {run + 1} {rev}: {time.monotonic() - t0:.1f} s", file=sys.stderr)
        print(f"{args.posts} posts, {args.runs} runs each, interleaved; median (every run)")
        print(table(args.revs, results))
        return 0
    finally:
        for tree in trees:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=REPO,
                           check=False)
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
