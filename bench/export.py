"""The export side of the benchmark, beside Hugo: ``feeds build`` of the whole corpus into
an empty folder, ``feeds build`` again after one post is edited (the incremental build;
both with ``--index-dir`` in the work folder, emptied before each full build, so the
second parses only the post that changed, as a site rebuilt in place would be run),
``hugo`` of the same corpus as a Hugo site (bench/hugo.py), and a crawl of every URL of
the site against a freshly started server on 4 connections. Each is run ``runs`` times;
the report quotes medians and the ratios to Hugo's median.
"""

from __future__ import annotations

import http.client
import os
import shutil
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

from . import hugo, procs

REPO = Path(__file__).resolve().parent.parent
BUILD_TIMEOUT = 1800.0
CRAWL_CONNECTIONS = 4
CRAWL_TIMEOUT = 1800.0

URLS_SCRIPT = """\
import sys
from feeds import create_app
from feeds.config import load_settings
from feeds.buildwork import urls
app = create_app(load_settings({"content": sys.argv[1]}), watch=False)
sys.stdout.write("\\n".join(dict.fromkeys(urls(app))))
"""


@dataclass
class ExportResult:
    n: int
    build_s: list[float] = field(default_factory=list)
    build_rss_mib: list[float] = field(default_factory=list)
    build_files: int = 0
    incremental_s: list[float] = field(default_factory=list)
    hugo_s: list[float] = field(default_factory=list)
    hugo_files: int = 0
    hugo_status: str = "not run"
    crawl_s: list[float] = field(default_factory=list)
    crawl_urls: int = 0
    crawl_errors: int = 0
    notes: list[str] = field(default_factory=list)


def _timed_build(content: Path, out: Path, log: Path, index: Path) -> tuple[float, float, str]:
    """(seconds, peak RSS MiB, last output line) of ``feeds build content out`` with the
    persisted index in ``index``, measured with GNU time's maximum resident set when it
    is there."""
    argv = [sys.executable, "-m", "feeds", "build", str(content), str(out),
            "--index-dir", str(index)]
    gnu_time = shutil.which("time")  # GNU time (Debian's time), not the shell's keyword
    if gnu_time:
        argv = [gnu_time, "-f", "__maxrss_kib=%M", *argv]
    status, output, secs = procs.run_bounded(argv, timeout=BUILD_TIMEOUT, cwd=REPO)
    log.write_text(output, encoding="utf-8")
    if status is None:
        raise RuntimeError(f"feeds build timed out after {BUILD_TIMEOUT:.0f} s")
    if status != 0:
        raise RuntimeError(f"feeds build exited {status}: {output.strip()[-300:]}")
    rss = 0.0
    lines = output.strip().splitlines()
    for line in lines:
        if line.startswith("__maxrss_kib="):
            rss = int(line.split("=", 1)[1]) / 1024
    summary = next((x for x in reversed(lines) if not x.startswith("__maxrss")), "")
    return secs, rss, summary


def _edit_one(content: Path) -> tuple[Path, bytes]:
    """Append a paragraph to the newest-named post of the corpus (not future-dated: the
    corpus's future posts carry years after now in their names); the file and the bytes
    it had, to put back."""
    this_year = time.gmtime().tm_year
    best: Path | None = None
    for folder, dirs, files in os.walk(content):
        dirs[:] = [d for d in dirs if not d.startswith(("_drafts", "."))]
        if os.path.basename(folder) != "_posts":
            continue
        for name in files:
            if name[:4].isdigit() and int(name[:4]) < this_year:
                path = Path(folder, name)
                if best is None or name > best.name:
                    best = path
    if best is None:
        raise RuntimeError("no post to edit")
    before = best.read_bytes()
    with open(best, "a", encoding="utf-8") as f:
        f.write(f"\n\n基准编辑 {time.time_ns()}。\n")
    return best, before


def _url_list(content: Path) -> list[str]:
    done = subprocess.run([sys.executable, "-c", URLS_SCRIPT, str(content)], cwd=REPO,
                          capture_output=True, timeout=600, check=True)
    return [u for u in done.stdout.decode("utf-8").split("\n") if u]


def _crawl(port: int, urls: list[str], deadline: float) -> int:
    """GET every URL once, over CRAWL_CONNECTIONS keep-alive connections; the count of
    answers that were not 200."""
    errors = [0]
    lock = threading.Lock()
    todo = iter(urls)

    def worker() -> None:
        conn = http.client.HTTPConnection(procs.HOST, port, timeout=60)
        try:
            while time.monotonic() < deadline:
                with lock:
                    url = next(todo, None)
                if url is None:
                    return
                conn.request("GET", quote(url, safe="/?=&%"))
                response = conn.getresponse()
                response.read()
                if response.status != 200:
                    with lock:
                        errors[0] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker) for _ in range(CRAWL_CONNECTIONS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=max(1.0, deadline - time.monotonic()))
    return errors[0]


def crawl_once(content: Path, urls: list[str], work: Path, threads: int) -> tuple[float, int]:
    """Start app.py on ``content`` (not following it), wait for /healthz, crawl; (crawl
    seconds, errors). The start is not counted: it is measured as the cold start."""
    port = procs.free_port()
    argv = [sys.executable, str(REPO / "app.py"), "--content", str(content), "--host",
            procs.HOST, "--port", str(port), "--threads", str(threads), "--no-watch"]
    child = procs.spawn("crawl", argv, work, cwd=REPO)
    try:
        procs.wait_ready(child, port, "/healthz", timeout=600)
        t0 = time.perf_counter()
        errors = _crawl(port, urls, time.monotonic() + CRAWL_TIMEOUT)
        return time.perf_counter() - t0, errors
    finally:
        child.stop(timeout=15)


def run(content: Path, n: int, title: str, posts_limit: int, work: Path, runs: int,
        threads: int, say: Callable[[str], None] = print) -> ExportResult:
    res = ExportResult(n)
    work.mkdir(parents=True, exist_ok=True)
    out, index = work / "feeds-out", work / "feeds-index"
    for k in range(runs):
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(index, ignore_errors=True)
        secs, rss, summary = _timed_build(content, out, work / f"build-{k}.log", index)
        res.build_s.append(secs)
        res.build_rss_mib.append(rss)
        res.build_files = sum(len(f) for _, _, f in os.walk(out))
        say(f"  feeds build {k + 1}: {secs:.2f} s, {rss:.0f} MiB peak ({summary})")
        edited, before = _edit_one(content)
        try:
            secs, _rss, summary = _timed_build(content, out, work / f"incr-{k}.log", index)
        finally:
            edited.write_bytes(before)  # the cached corpus stays as generated
        res.incremental_s.append(secs)
        say(f"  feeds build after editing {edited.name}: {secs:.2f} s ({summary})")
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(index, ignore_errors=True)
    if hugo.available():
        site = work / "hugo-site"
        hugo.make_site(content, site, title, posts_limit)
        for k in range(runs):
            built = hugo.build(site, work / "hugo-out")
            res.hugo_status = built.status
            if built.status != "ok":
                res.notes.append(f"hugo: {built.status}")
                break
            res.hugo_s.append(built.seconds)
            res.hugo_files = built.files
            say(f"  hugo {k + 1}: {built.seconds:.2f} s, {built.files} files")
        shutil.rmtree(work / "hugo-out", ignore_errors=True)
        shutil.rmtree(site, ignore_errors=True)
    else:
        res.hugo_status = "not installed (Debian package hugo)"
    urls = _url_list(content)
    res.crawl_urls = len(urls)
    for k in range(runs):
        secs, errors = crawl_once(content, urls, work, threads)
        res.crawl_s.append(secs)
        res.crawl_errors += errors
        say(f"  crawl {k + 1}: {len(urls)} URLs in {secs:.2f} s, {errors} not 200")
    return res
