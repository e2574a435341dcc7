"""The benchmark run: ``python -m bench [--sizes 1000,10000,100000] [--runs N]
[--duration S] [--skip-jekyll]``, from the repository root.

Per corpus size: cold start and warm restart of ``app.py`` with peak RSS,
change-to-visible latency and the first render after a change, wrk throughput of a
category feed (plain, gzip, 304) and of ``/`` beside a minimal Flask app and nginx
serving the same bytes, and ``jekyll build`` of the same corpus. Prints one
markdown table and writes bench/RESULTS.md and bench/results.png; raw numbers go to
bench/out/. All traffic goes to 127.0.0.1; every wait and load loop is bounded.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gzip
import importlib.metadata
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import time
import traceback
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import quote

from . import corpus, export, hugo, procs, refs, report, wrk
from .corpus import TZ, Manifest
from .report import SizeResult

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
APP = REPO / "app.py"
OUT = BENCH_DIR / "out"
JEKYLL_MAX_POSTS = 10_000
JEKYLL_TIMEOUT = 480.0


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- our server ---------------------------------------------------------------------------


@dataclasses.dataclass
class Ours:
    child: procs.Child
    port: int
    ready_s: float
    healthz: dict[str, object]
    hwm_kib: list[int]

    def read_hwm(self) -> None:
        kib = procs.vm_hwm_kib(self.child.pid)
        if kib is not None:
            self.hwm_kib.append(kib)

    def stop(self) -> None:
        if self.child.alive():
            self.read_hwm()
        self.child.stop(timeout=15)


def server_env(xdg: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FEEDS_")}
    env["XDG_CACHE_HOME"] = str(xdg)  # where a cache would go, if the service kept one
    return env


def start_ours(
    content: Path, name: str, logdir: Path, opts: argparse.Namespace, timeout: float,
    index: Path | None = None,
) -> Ours:
    port = procs.free_port()
    argv = [sys.executable, str(APP), "--content", str(content), "--host", procs.HOST,
            "--port", str(port), "--base-url", f"http://{procs.HOST}:{port}",
            "--threads", str(opts.threads)]
    if index is not None:
        argv += ["--index-dir", str(index)]
    child = procs.spawn(name, argv, logdir, cwd=REPO, env=server_env(logdir / "xdg-cache"))
    try:
        ready, resp = procs.wait_ready(child, port, "/healthz", timeout=timeout)
        ours = Ours(child, port, ready, {}, [])
        ours.read_hwm()
        try:
            body = json.loads(resp.body)
            if isinstance(body, dict):
                ours.healthz = body
        except ValueError:
            pass
        return ours
    except procs.StartupError as e:
        e.hwm_kib = procs.vm_hwm_kib(child.pid)
        child.stop()
        raise
    except BaseException:
        child.stop()
        raise


def prime_index(content: Path, index: Path, timeout: float) -> float:
    """Make the persisted index a warm restart reads, with ``feeds check --index-dir``
    (the same load and index write as the server's), from nothing. Seconds it took."""
    shutil.rmtree(index, ignore_errors=True)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "feeds", "check", str(content), "--index-dir",
                    str(index)], cwd=REPO, env=server_env(index.parent / "xdg-cache"),
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=timeout,
                   check=False)  # exit 1 means a rejected post: the index is made anyway
    if not any(index.glob("*.sqlite3")):
        raise RuntimeError(f"feeds check --index-dir {index} made no index")
    return time.perf_counter() - t0


def warm_page_cache(root: Path) -> float:
    """Read every file below ``root`` once, so that a start measures the service and not
    the disk: this VM's host drops the page cache now and then, and a start at 100,000
    posts then took 21 s where one from a warm cache takes 11 s. Seconds it took."""
    t0 = time.perf_counter()
    stack = [str(root)]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
                elif entry.is_file(follow_symlinks=False):
                    with open(entry.path, "rb") as f:
                        while f.read(1 << 20):
                            pass
    return time.perf_counter() - t0


def mib(kib: int) -> float:
    return kib / 1024.0


# --- change to visible, cold render -------------------------------------------------------


def category_path(name: str, fmt: str) -> str:
    return f"/category/{quote(name, safe='')}.{fmt}"


def tag_path(name: str, fmt: str) -> str:
    return f"/tag/{quote(name, safe='')}.{fmt}"


def _json_titles(body: bytes) -> set[str]:
    try:
        data = json.loads(body)
    except ValueError:
        return set()
    items = data.get("items", []) if isinstance(data, dict) else []
    return {str(it.get("title")) for it in items if isinstance(it, dict)}


def change_test(
    ours: Ours, content: Path, m: Manifest, res: SizeResult, opts: argparse.Namespace,
    limit: float,
) -> None:
    """``opts.changes`` new posts, one at a time; none is started after ``limit`` seconds."""
    end = time.perf_counter() + limit
    probe = category_path(m.probe_category, "json")
    render_cat = category_path(m.render_category, "atom")
    render_tag = tag_path(m.render_tag, "atom")
    for path in (probe, render_cat, render_tag):
        r = procs.get(ours.port, path)
        if r.status != 200:
            res.notes.append(f"change test skipped: GET {path} gave {r.status}")
            return
    added: list[Path] = []
    try:
        for k in range(opts.changes):
            if time.perf_counter() > end:
                res.notes.append(f"change test stopped after {k} of {opts.changes} posts:"
                                 f" its {limit:.0f} s limit")
                break
            # Warm the two feeds, so the first GET after the change is a re-render.
            procs.get(ours.port, render_cat)
            procs.get(ours.port, render_tag)
            token = secrets.token_hex(4)
            title = f"基准变更{k}号{token}"
            when = datetime.now(TZ) - timedelta(minutes=1)
            stamp = when.strftime("%Y-%m-%d %H:%M:%S %z")
            text = (f"---\ntitle: {title}\ndate: {stamp}\n"
                    f"categories: [{m.probe_category}, {m.render_category}]\n"
                    f"tags: [{m.render_tag}]\n---\n\n<p>基准测试添加的文章 {token}。</p>\n")
            tmp = content / f".tmp-bench-{token}.md"
            final = content / "_posts" / f"{stamp[:10]}-{corpus.CHANGE_MARK}-{k}-{token}.md"
            tmp.write_text(text, encoding="utf-8")
            added.append(final)
            t0 = time.perf_counter()
            os.replace(tmp, final)
            deadline = t0 + opts.change_timeout  # the limit only stops new changes
            seen = False
            while True:
                t_poll = time.perf_counter()
                with contextlib.suppress(OSError):
                    r = procs.get(ours.port, probe, timeout=5)
                    if r.status == 200 and title in _json_titles(r.body):
                        res.change_ms.append((time.perf_counter() - t0) * 1000)
                        seen = True
                        break
                if time.perf_counter() > deadline:
                    break
                time.sleep(max(0.0, t_poll + 0.010 - time.perf_counter()))
            if not seen:
                res.change_timeouts += 1
                continue
            needle = title.encode()
            for path, into in ((render_cat, res.render_category_ms),
                               (render_tag, res.render_tag_ms)):
                r = procs.get(ours.port, path)
                into.append(r.seconds * 1000)
                if r.status != 200 or needle not in r.body:
                    res.render_stale += 1
            time.sleep(0.05)
    finally:
        for p in added:
            p.unlink(missing_ok=True)
        corpus.clean_leftovers(content)
    # Let the service take the removals in before anything else is measured.
    settle_end = time.perf_counter() + opts.change_timeout
    while time.perf_counter() < settle_end:
        with contextlib.suppress(OSError):
            r = procs.get(ours.port, probe, timeout=5)
            if r.status == 200 and not any(t.startswith("基准变更") for t in _json_titles(r.body)):
                break
        time.sleep(0.05)
    else:
        res.notes.append(f"the removed test posts still showed in {probe} after"
                         f" {opts.change_timeout:.0f} s")
    if res.change_timeouts:
        tried = len(res.change_ms) + res.change_timeouts
        res.notes.append(f"{res.change_timeouts} of {tried} new posts were not visible"
                         f" in {probe} within {opts.change_timeout:.0f} s")
    if res.render_stale:
        res.notes.append(f"{res.render_stale} first GETs after a visible change did not yet"
                         " contain the new post (or were not 200)")


# --- throughput ---------------------------------------------------------------------------


@dataclasses.dataclass
class Target:
    key: str  # "<variant> <server>"
    port: int
    path: str
    headers: dict[str, str]
    status: int
    gzip: bool


def check_target(t: Target) -> tuple[str | None, procs.Resp | None]:
    """(None, the answer) when one request answers as expected, else (what is wrong, ...)."""
    try:
        r = procs.get(t.port, t.path, t.headers)
    except OSError as e:
        return f"{e.__class__.__name__}: {e}", None
    got_gzip = r.headers.get("content-encoding", "") == "gzip"
    if r.status != t.status or (t.status == 200 and got_gzip != t.gzip):
        return f"status {r.status}, Content-Encoding {r.headers.get('content-encoding')!r}", r
    return None, r


def _note_once(res: SizeResult, note: str) -> None:
    if note not in res.notes:
        res.notes.append(note)


def targets_for(key: str, port: int, path: str, etag: str | None) -> list[Target]:
    ts = [Target(f"plain {key}", port, path, {}, 200, False),
          Target(f"gzip {key}", port, path, {"Accept-Encoding": "gzip"}, 200, True)]
    if etag:
        ts.append(Target(f"304 {key}", port, path, {"If-None-Match": etag}, 304, False))
    return ts


def wrk_round(
    targets: Sequence[Target], res: SizeResult, duration: float, budget: Deadline,
    logfile: Path,
) -> None:
    for t in targets:
        if budget.left < duration + 2:
            _note_once(res, "some wrk runs were skipped: out of budget")
            continue
        problem, r = check_target(t)
        if problem:
            _note_once(res, f"wrk `{t.key}` skipped: {problem}")
            continue
        if r is not None and r.headers.get("connection", "").lower() == "close":
            _note_once(res, f"`{t.key}`: the server closes the connection after each answer"
                       " (waitress does after a 304, which has no Content-Length), so wrk"
                       " opens a new connection for every request")
        try:
            w = wrk.run(t.port, t.path, duration=duration, headers=t.headers)
        except (RuntimeError, TimeoutError, ValueError) as e:
            res.notes.append(f"wrk `{t.key}` failed: {e}")
            continue
        with open(logfile, "a", encoding="utf-8") as f:
            f.write(w.output + "\n")
        if w.requests == 0:
            res.notes.append(f"wrk `{t.key}`: no request completed in {duration:g} s")
        res.wrk_rps.setdefault(t.key, []).append(w.rps)
        if w.latency_p99_ms is not None:
            res.wrk_p99_ms.setdefault(t.key, []).append(w.latency_p99_ms)
        if w.errors:
            res.wrk_errors[t.key] = res.wrk_errors.get(t.key, 0) + w.errors
        log(f"    wrk {t.key:14s} {w.rps:10,.0f} req/s  p99 {w.latency_p99_ms or 0:7.1f} ms"
            + (f"  errors {w.errors}" if w.errors else ""))


def feed_body(ours: Ours, path: str) -> refs.Body:
    plain = procs.get(ours.port, path)
    if plain.status != 200:
        raise RuntimeError(f"GET {path} gave {plain.status}")
    gz = procs.get(ours.port, path, {"Accept-Encoding": "gzip"})
    if gz.status == 200 and gz.headers.get("content-encoding") == "gzip":
        gz_bytes = gz.body
    else:
        gz_bytes = gzip.compress(plain.body, 6)
    etag = plain.headers.get("etag") or '"bench"'
    ctype = plain.headers.get("content-type", "application/octet-stream")
    return refs.Body(plain.body, gz_bytes, ctype, etag)


# --- one corpus size ----------------------------------------------------------------------


def top_entries(root: Path) -> set[str]:
    return {e.name for e in os.scandir(root)}


class Deadline:
    """The time left of one size's budget."""

    def __init__(self, seconds: float) -> None:
        self.start = time.perf_counter()
        self.seconds = seconds

    @property
    def spent(self) -> float:
        return time.perf_counter() - self.start

    @property
    def left(self) -> float:
        return self.seconds - self.spent


def _clear_service_state(root: Path, baseline: set[str], res: SizeResult, run: int) -> None:
    """Whatever the service left in the content folder would make a cold start warm."""
    for extra in sorted(top_entries(root) - baseline):
        res.notes.append(f"run {run}: removed {extra!r} that the service left in the content"
                         " folder, before the cold start")
        p = root / extra
        if p.is_dir() and not p.is_symlink():
            shutil.rmtree(p)
        else:
            p.unlink()


def bench_size(res: SizeResult, opts: argparse.Namespace, stamp: str) -> None:
    """Fill in ``res`` (partly, if interrupted, out of budget or the service fails).

    Run 1: cold start, change test, references, a wrk round, stop, warm start. Later
    runs: cold start, wrk round, stop, warm start; a run starts only if one fits in what
    is left of the budget, and every wait is cut to what is left.
    """
    n = res.n
    root, m = corpus.ensure_corpus(n)
    res.corpus_mib, res.expected_posts = m.total_bytes / 2**20, m.published
    res.load_before = os.getloadavg()[0]
    budget = Deadline(opts.budget)
    work = OUT / f"run-{stamp}" / str(n)
    work.mkdir(parents=True, exist_ok=True)
    baseline = top_entries(root)
    probe_atom = category_path(m.probe_category, "atom")
    res.feed_path = probe_atom
    ref_servers: list[refs.Ref] = []
    ref_targets: list[Target] = []
    run_times: list[float] = []
    log(f"== {n:,} posts ({res.corpus_mib:.0f} MiB), budget {opts.budget:.0f} s ==")
    try:
        for k in range(opts.runs):
            if run_times and max(run_times) > budget.left:
                res.notes.append(
                    f"stopped after {k} of {opts.runs} runs: another (~{max(run_times):.0f} s)"
                    f" would pass the {opts.budget:.0f} s budget")
                break
            t_run = time.perf_counter()
            t_once = 0.0  # the change test and starting the references: run 1 only
            _clear_service_state(root, baseline, res, k + 1)
            logdir = work / f"run{k + 1}"
            warm_page_cache(root)
            limit = min(opts.start_timeout, budget.left)
            try:
                ours = start_ours(root, "cold", logdir, opts, limit)
            except procs.StartupError as e:
                if not e.timed_out:
                    raise
                res.cold_over = limit
                rss = f"; its peak RSS by then: {mib(e.hwm_kib):.0f} MiB" if e.hwm_kib else ""
                res.notes.append(f"run {k + 1}: cold start: no /healthz 200 within {limit:.0f} s"
                                 f" (the start timeout or what was left of the budget){rss}")
                log(f"  cold start > {limit:.0f} s:\n{e}")
                break
            try:
                res.cold_s.append(ours.ready_s)
                res.rss_ready_mib.append(mib(max(ours.hwm_kib, default=0)))
                posts = ours.healthz.get("posts")
                if res.healthz_posts is None and isinstance(posts, int):
                    res.healthz_posts = posts
                if k == 0 and procs.children_of(ours.child.pid):
                    res.notes.append("the server has child processes: RSS is the main one's")
                log(f"  run {k + 1}: cold start {ours.ready_s:.2f} s,"
                    f" RSS {mib(max(ours.hwm_kib, default=0)):.0f} MiB")
                if k == 0:
                    t0 = time.perf_counter()
                    change_test(ours, root, m, res, opts, min(opts.change_budget, budget.left))
                    if res.change_ms:
                        log(f"    change → visible: p50 {report.percentile(res.change_ms, 50):.0f}"
                            f" ms, max {max(res.change_ms):.0f} ms; cold render"
                            f" {report.med(res.render_category_ms):.1f} /"
                            f" {report.med(res.render_tag_ms):.1f} ms")
                    ref_servers, ref_targets = start_refs(ours, probe_atom, work, res, opts)
                    t_once = time.perf_counter() - t0
                if wrk.available():
                    body = procs.get(ours.port, probe_atom)  # it is cached from here on
                    etag = body.headers.get("etag")
                    our = targets_for("ours", ours.port, probe_atom, etag)
                    index = Target("index ours", ours.port, "/", {}, 200, False)
                    tier = start_tier(ours, probe_atom, work / "tier", res, opts)
                    if tier is not None:
                        our += targets_for("tier", tier.port, probe_atom, etag)
                    # Interleaved: ours and the references for one variant, then the next.
                    order = [t for v in report.VARIANTS
                             for t in [*our, *ref_targets] if t.key.startswith(v + " ")]
                    try:
                        wrk_round([*order, index], res, opts.duration, budget,
                                  logdir / "wrk.log")
                    finally:
                        if tier is not None:
                            tier.child.stop()
            finally:
                ours.stop()
            peak = max(ours.hwm_kib, default=0)
            limit = min(opts.start_timeout, budget.left)
            if limit < 1:
                res.notes.append(f"run {k + 1}: no budget left for the warm restart")
            else:
                index = logdir / "index"
                prime_index(root, index, limit)
                warm_page_cache(root)
                try:
                    warm = start_ours(root, "warm", logdir, opts, max(1.0, min(
                        opts.start_timeout, budget.left)), index)
                except procs.StartupError as e:
                    if not e.timed_out:
                        raise
                    res.warm_over = limit
                    res.notes.append(f"run {k + 1}: warm restart: no /healthz 200 within"
                                     f" {limit:.0f} s (the start timeout or the budget)")
                else:
                    warm.stop()
                    res.warm_s.append(warm.ready_s)
                    peak = max([peak, *warm.hwm_kib])
                    log(f"  run {k + 1}: warm restart {warm.ready_s:.2f} s")
            res.rss_peak_mib.append(mib(peak))
            res.runs_done = k + 1
            run_times.append(time.perf_counter() - t_run - t_once)
        left = sorted(top_entries(root) - baseline)
        if left:
            res.notes.append(f"the service left {left} in the content folder")
    finally:
        for ref in ref_servers:
            ref.child.stop()
        corpus.clean_leftovers(root)
        res.elapsed_s = budget.spent
        res.load_after = os.getloadavg()[0]
    if not wrk.available():
        res.notes.append("wrk not installed (Debian package wrk): throughput skipped")
    log(f"  {n:,} posts done in {res.elapsed_s:.0f} s")
    if not opts.skip_jekyll:
        jekyll_build(root, m, work, res)
    if not opts.skip_export:
        export_phase(root, work, res, opts)
    if not opts.keep:
        shutil.rmtree(work, ignore_errors=True)
        with contextlib.suppress(OSError):
            work.parent.rmdir()  # once the last size's is gone


def start_refs(
    ours: Ours, path: str, work: Path, res: SizeResult, opts: argparse.Namespace
) -> tuple[list[refs.Ref], list[Target]]:
    body = feed_body(ours, path)
    res.feed_bytes = {"plain": len(body.plain), "gzip": len(body.gz)}
    servers: list[refs.Ref] = []
    targets: list[Target] = []
    if not wrk.available():
        return servers, targets
    try:
        mini = refs.start_minimal(body, work / "minimal", opts.threads)
        servers.append(mini)
        targets += targets_for("minimal", mini.port, refs.PATH, body.etag)
    except procs.StartupError as e:
        res.notes.append(f"minimal Flask reference did not start: {str(e).splitlines()[0]}")
        log(str(e))
    if refs.nginx_available() is None:
        res.notes.append("nginx not installed (Debian package nginx): reference skipped")
        return servers, targets
    try:
        ng = refs.start_nginx(body, work / "nginx", workers=opts.nginx_workers)
        servers.append(ng)
        tag = procs.get(ng.port, refs.PATH).headers.get("etag")
        targets += targets_for("nginx", ng.port, refs.PATH, tag)
    except procs.StartupError as e:
        res.notes.append(f"nginx reference did not start: {str(e).splitlines()[0]}")
        log(str(e))
    return servers, targets


def start_tier(ours: Ours, path: str, work: Path, res: SizeResult,
               opts: argparse.Namespace) -> refs.Ref | None:
    """deploy/nginx.conf in front of this run's instance, its cache warmed with ``path``
    in each encoding (the first request of each is a MISS, the rest HITs)."""
    if refs.nginx_available() is None:
        return None
    try:
        tier = refs.start_tier(ours.port, work, workers=opts.nginx_workers)
    except procs.StartupError as e:
        _note_once(res, f"nginx tier did not start: {str(e).splitlines()[0]}")
        log(str(e))
        return None
    for headers in ({}, {"Accept-Encoding": "gzip"}):
        procs.get(tier.port, path, headers)
    status = procs.get(tier.port, path).headers.get("x-cache-status")
    if status != "HIT":
        _note_once(res, f"nginx tier: the second request was {status!r}, not a HIT")
    return tier


# --- Jekyll -------------------------------------------------------------------------------


def jekyll_build(root: Path, m: Manifest, work: Path, res: SizeResult) -> None:
    binary = shutil.which("jekyll")
    if binary is None:
        res.jekyll_status = "jekyll not installed"
        return
    if res.n > JEKYLL_MAX_POSTS:
        res.jekyll_status = f"not run (> {JEKYLL_MAX_POSTS:,} posts)"
        return
    overlay = work / "jekyll-bench.yml"
    cats = ", ".join(json.dumps(c, ensure_ascii=False) for c in m.categories)
    overlay.write_text(f"plugins: [jekyll-feed]\nfeed:\n  categories: [{cats}]\n",
                       encoding="utf-8")
    dest = work / "jekyll-site"
    argv = [binary, "build", "--source", str(root), "--destination", str(dest),
            "--config", f"{root / '_config.yml'},{overlay}", "--disable-disk-cache"]
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8", JEKYLL_ENV="production")
    log(f"  jekyll build of {res.n:,} posts (timeout {JEKYLL_TIMEOUT:.0f} s) ...")
    status, out, secs = procs.run_bounded(argv, timeout=JEKYLL_TIMEOUT, env=env)
    shutil.rmtree(dest, ignore_errors=True)
    if status is None:
        res.jekyll_status = "timeout"
        log("  jekyll: > 480 s (timed out)")
        return
    if status != 0:
        tail = " | ".join(out.strip().splitlines()[-3:])
        res.jekyll_status = f"failed ({status})"
        res.notes.append(f"jekyll build failed with {status}: {tail[:300]}")
        log(f"  jekyll failed:\n{out[-3000:]}")
        return
    res.jekyll_s = secs
    res.jekyll_status = "ok"
    log(f"  jekyll build: {secs:.1f} s")


# --- export and Hugo ---------------------------------------------------------------------


def export_phase(root: Path, work: Path, res: SizeResult, opts: argparse.Namespace) -> None:
    """``feeds build`` (whole, then after one edit), ``hugo`` and the crawl, side by side."""
    config = (root / "_config.yml").read_text(encoding="utf-8")
    title = next((line.split(":", 1)[1].strip() for line in config.splitlines()
                  if line.startswith("title:")), "bench")
    limit = next((int(line.split(":", 1)[1]) for line in config.splitlines()
                  if line.strip().startswith("posts_limit:")), 10)
    log(f"  export of {res.n:,} posts: feeds build, hugo {hugo.version()}, crawl ...")
    try:
        res.export = export.run(root, res.n, title, limit, work / "export", opts.runs,
                                opts.threads, log)
    except (RuntimeError, OSError, procs.StartupError) as e:
        res.notes.append(f"export phase failed: {str(e).splitlines()[0]}")
        log(f"  export phase failed: {e}")


# --- machine ------------------------------------------------------------------------------


def _first_line(argv: Sequence[str]) -> str:
    """The first line ``argv`` prints, or why there is none."""
    try:
        status, out, _ = procs.run_bounded(argv, timeout=90)
    except OSError:
        return "not installed"
    if status is None:
        return "unknown (no answer in 90 s)"
    text = out.strip()
    return text.splitlines()[0] if status == 0 and text else f"unknown (exit {status})"


def _version(dist: str) -> str:
    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def machine_info(with_jekyll: bool) -> report.Machine:
    cpu = "unknown"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = 0.0
    with contextlib.suppress(OSError, ValueError), open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) / 2**20
    ng = refs.nginx_available()
    nginx_v = _first_line([ng, "-v"]).split("/")[-1] if ng else "not installed"
    jk = shutil.which("jekyll")
    jekyll_v = "not installed" if not jk else "not used" if not with_jekyll else (
        _first_line([jk, "--version"]).replace("jekyll ", ""))
    commit = _first_line(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"])
    dirty = ""
    with contextlib.suppress(OSError):
        _, dirty, _ = procs.run_bounded(
            ["git", "-C", str(REPO), "status", "--porcelain", "--", "feeds", "app.py"], 60)
    if dirty.strip():
        commit += " plus uncommitted changes to feeds/ or app.py"
    return report.Machine(
        cpu=cpu, cores=os.cpu_count() or 0, memory_gib=mem, kernel=platform.release(),
        python=platform.python_version(), flask=_version("flask"),
        waitress=_version("waitress"), nginx=nginx_v, wrk=wrk.version(), jekyll=jekyll_v,
        service_commit=commit, date=datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
    )


# --- main ---------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="1000,10000,100000",
                   help="corpus sizes, comma-separated (default %(default)s)")
    p.add_argument("--runs", type=int, default=3,
                   help="cold+warm starts and wrk rounds per size (default %(default)s)")
    p.add_argument("--duration", type=float, default=10.0,
                   help="seconds of each wrk run (default %(default)s)")
    p.add_argument("--threads", type=int, default=2,
                   help="waitress threads, ours and the minimal app (default %(default)s,"
                        " the service's default)")
    p.add_argument("--changes", type=int, default=20,
                   help="posts added by the change test (default %(default)s)")
    p.add_argument("--change-timeout", type=float, default=30.0,
                   help="seconds to wait for one change to show (default %(default)s)")
    p.add_argument("--change-budget", type=float, default=90.0,
                   help="seconds for the whole change test (default %(default)s)")
    p.add_argument("--start-timeout", type=float, default=480.0,
                   help="seconds to wait for /healthz 200 (default %(default)s)")
    p.add_argument("--budget", type=float, default=480.0,
                   help="seconds per size (excluding corpus generation and Jekyll); runs"
                        " and waits are cut to fit (default %(default)s)")
    p.add_argument("--nginx-workers", type=int, default=1,
                   help="nginx worker_processes (default %(default)s)")
    p.add_argument("--skip-jekyll", action="store_true", help="do not run jekyll build")
    p.add_argument("--skip-export", action="store_true",
                   help="do not run feeds build, hugo and the crawl (bench/export.py)")
    p.add_argument("--keep", action="store_true", help="keep logs under bench/out/run-*/")
    p.add_argument("--render", metavar="JSON",
                   help="measure nothing: print the table and write RESULTS.md and the plot"
                        " from a raw bench/out/results-*.json")
    p.add_argument("--no-write", action="store_true",
                   help="print the table only; leave RESULTS.md and results.png alone")
    opts = p.parse_args(argv)
    try:
        opts.size_list = [int(s.replace("_", "")) for s in opts.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes: not a comma-separated list of integers: {opts.sizes!r}")
    if not opts.size_list or min(opts.size_list) < 100:
        p.error("--sizes: each size must be at least 100")
    if opts.runs < 1 or opts.duration < 1 or opts.changes < 1 or opts.threads < 1:
        p.error("--runs, --duration, --changes and --threads must be at least 1")
    return opts


def write_outputs(
    results: list[SizeResult], machine: report.Machine, settings: report.Settings,
    raw: Path | None,
) -> None:
    png = BENCH_DIR / "results.png"
    plotted = report.plot(results, png)
    (BENCH_DIR / "RESULTS.md").write_text(
        report.results_md(results, machine, settings, png.name if plotted else None),
        encoding="utf-8")
    log(f"wrote bench/RESULTS.md{' and bench/results.png' if plotted else ''}"
        + (f" (raw: {raw.relative_to(REPO)})" if raw else ""))


def render(path: Path, write: bool) -> int:
    data = json.loads(path.read_text(encoding="utf-8"))
    results = [SizeResult(**{**r, "export": export.ExportResult(**r["export"])
                             if r.get("export") else None}) for r in data["results"]]
    machine = report.Machine(**data["machine"])
    settings = report.Settings(**data["settings"])
    print(report.markdown_table(results))
    if write:
        write_outputs(results, machine, settings, None)
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    opts = parse_args(argv)
    if opts.render:
        return render(Path(opts.render), not opts.no_write)
    procs.install_cleanup()
    if not APP.exists():
        log(f"{APP} does not exist yet: nothing to benchmark")
        return 2
    if not wrk.available():
        log("note: wrk is not installed (apt-get install wrk): throughput will be skipped")
    if refs.nginx_available() is None:
        log("note: nginx is not installed (apt-get install nginx): no nginx reference")
    t_all = time.perf_counter()
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    command = "python -m bench " + " ".join(sys.argv[1:] if argv is None else argv)
    settings = report.Settings(
        sizes=opts.size_list, runs=opts.runs, duration=opts.duration, threads=opts.threads,
        changes=opts.changes, budget_s=opts.budget, nginx_workers=opts.nginx_workers,
        command=command.strip())
    machine = machine_info(not opts.skip_jekyll and min(opts.size_list) <= JEKYLL_MAX_POSTS)
    results: list[SizeResult] = []
    status = 0
    try:
        for n in opts.size_list:
            res = SizeResult(n=n)
            results.append(res)
            try:
                bench_size(res, opts, stamp)
            except procs.StartupError as e:
                log(f"!! {n:,} posts: {e}")
                res.notes.append(f"the service did not start: {str(e).splitlines()[0]}")
                status = 1
            except Exception as e:  # report the others, go on with the next size
                log(f"!! {n:,} posts: {traceback.format_exc()}")
                res.notes.append(f"failed: {e.__class__.__name__}: {e}")
                status = 1
    except KeyboardInterrupt:
        log("interrupted: reporting what was measured")
        status = 130
    finally:
        procs.stop_all()
    if not results:
        return status or 1
    print(report.markdown_table(results))
    log(f"total elapsed {time.perf_counter() - t_all:.0f} s")
    OUT.mkdir(exist_ok=True)
    raw = OUT / f"results-{stamp}.json"
    raw.write_text(json.dumps({
        "settings": dataclasses.asdict(settings), "machine": dataclasses.asdict(machine),
        "results": [dataclasses.asdict(r) for r in results]}, ensure_ascii=False, indent=1))
    if not opts.no_write:
        write_outputs(results, machine, settings, raw)
    return status
