"""Results of a benchmark run: the data, the one table, RESULTS.md and the plot."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .export import ExportResult

VARIANTS = ("plain", "gzip", "304")
REFS = ("minimal", "nginx")
REF_LABEL = {"ours": "ours", "minimal": "minimal Flask", "nginx": "nginx"}


@dataclass
class SizeResult:
    n: int
    corpus_mib: float = 0.0
    expected_posts: int = 0  # published posts in the corpus (future-dated ones excluded)
    healthz_posts: int | None = None
    runs_done: int = 0
    cold_s: list[float] = field(default_factory=list)
    warm_s: list[float] = field(default_factory=list)
    cold_over: float | None = None  # a cold start that had no /healthz 200 within this
    warm_over: float | None = None
    load_before: float = math.nan  # 1-minute load average
    load_after: float = math.nan
    rss_ready_mib: list[float] = field(default_factory=list)  # VmHWM at the cold /healthz 200
    rss_peak_mib: list[float] = field(default_factory=list)  # per run, max of all readings
    change_ms: list[float] = field(default_factory=list)
    change_timeouts: int = 0
    render_category_ms: list[float] = field(default_factory=list)
    render_tag_ms: list[float] = field(default_factory=list)
    render_stale: int = 0
    feed_path: str = ""
    feed_bytes: dict[str, int] = field(default_factory=dict)
    # "<variant> <server>" -> requests/s of each repetition; "index ours" for /.
    wrk_rps: dict[str, list[float]] = field(default_factory=dict)
    wrk_p99_ms: dict[str, list[float]] = field(default_factory=dict)
    wrk_errors: dict[str, int] = field(default_factory=dict)
    jekyll_s: float | None = None
    jekyll_status: str = "not run"  # ok | timeout | failed: ... | skipped ... | not run
    export: ExportResult | None = None  # feeds build, hugo and the crawl (bench/export.py)
    elapsed_s: float = 0.0
    notes: list[str] = field(default_factory=list)


@dataclass
class Machine:
    cpu: str
    cores: int
    memory_gib: float
    kernel: str
    python: str
    flask: str
    waitress: str
    nginx: str
    wrk: str
    jekyll: str
    service_commit: str
    date: str


@dataclass
class Settings:
    sizes: list[int]
    runs: int
    duration: float
    threads: int
    changes: int
    budget_s: float
    nginx_workers: int
    command: str


# --- statistics ---------------------------------------------------------------------------


def percentile(values: Sequence[float], pct: float) -> float:
    """Linear interpolation between closest ranks (numpy's default)."""
    if not values:
        return math.nan
    xs = sorted(values)
    k = (len(xs) - 1) * pct / 100.0
    lo, hi = math.floor(k), math.ceil(k)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else math.nan


def _num(x: float, digits: int | None = None) -> str:
    if math.isnan(x):
        return "–"
    if digits is None:
        ax = abs(x)
        digits = 0 if ax >= 100 else 1 if ax >= 10 else 2 if ax >= 1 else 3
    return f"{x:,.{digits}f}"


def spread(values: Sequence[float], digits: int | None = None) -> str:
    """'median (min-max)' (with an en dash), or the single value."""
    if not values:
        return "–"
    m = _num(med(values), digits)
    if len(values) == 1:
        return m
    return f"{m} ({_num(min(values), digits)}–{_num(max(values), digits)})"


# --- the table ----------------------------------------------------------------------------


def _ratio(ours: Sequence[float], ref: Sequence[float]) -> str:
    if not ours or not ref or med(ref) == 0:
        return ""
    return f" · ours {med(ours) / med(ref):.2f}×"


def _change_cell(r: SizeResult) -> str:
    if not r.change_ms and not r.change_timeouts:
        return "–"
    xs = r.change_ms
    cell = (f"{_num(percentile(xs, 50), 0)} / {_num(percentile(xs, 99), 0)} / "
            f"{_num(max(xs), 0)}" if xs else "–")
    if r.change_timeouts:
        cell += f" ({r.change_timeouts} of {len(xs) + r.change_timeouts} never visible)"
    return cell


def _over(values: Sequence[float], over: float | None) -> str:
    if over is None:
        return spread(values)
    if not values:
        return f"> {over:.0f}"
    return f"{spread(values)}; one > {over:.0f}"


def _jekyll_cell(r: SizeResult) -> str:
    if r.jekyll_status == "ok" and r.jekyll_s is not None:
        ratio = f" · ours cold {med(r.cold_s) / r.jekyll_s:.3f}×" if r.cold_s else ""
        return f"{_num(r.jekyll_s)}{ratio}"
    if r.jekyll_status == "timeout":
        return "> 480 s"
    return r.jekyll_status


def _wrk_cell(variant: str, server: str) -> Callable[[SizeResult], str]:
    def cell(r: SizeResult) -> str:
        got = r.wrk_rps.get(f"{variant} {server}", [])
        if server == "ours":
            return spread(got, 0)
        return spread(got, 0) + _ratio(r.wrk_rps.get(f"{variant} ours", []), got)

    return cell


def _tier_cell(variant: str) -> Callable[[SizeResult], str]:
    """The nginx tier (cache HITs), as a ratio of nginx serving the same static file."""
    def cell(r: SizeResult) -> str:
        got = r.wrk_rps.get(f"{variant} tier", [])
        static = r.wrk_rps.get(f"{variant} nginx", [])
        ratio = f" · {med(got) / med(static):.2f}× nginx" if got and static and med(static) else ""
        return spread(got, 0) + ratio

    return cell


def _to_hugo(got: Sequence[float], e: ExportResult) -> str:
    if not got:
        return "–"
    if not e.hugo_s or not med(e.hugo_s):
        return spread(got, 2)
    return f"{spread(got, 2)} · {med(got) / med(e.hugo_s):.2f}× Hugo"


EXPORT_ROWS: list[tuple[str, Callable[[ExportResult], str]]] = [
    ("Hugo build (same corpus), s", lambda e: f"{spread(e.hugo_s, 2)} ({e.hugo_files:,} files)"
     if e.hugo_s else e.hugo_status),
    ("feeds build, whole site, s", lambda e: _to_hugo(e.build_s, e)
     + (f" ({e.build_files:,} files)" if e.build_files else "")),
    ("feeds build peak RSS, MiB", lambda e: spread(e.build_rss_mib, 0)),
    ("feeds build after one post edited, s", lambda e: _to_hugo(e.incremental_s, e)),
    ("crawl of every URL, fresh server, 4 connections, s", lambda e: _to_hugo(e.crawl_s, e)
     + (f" ({e.crawl_urls:,} URLs, {e.crawl_errors} not 200)" if e.crawl_s else "")),
]


def _of_export(cell: Callable[[ExportResult], str]) -> Callable[[SizeResult], str]:
    return lambda r: cell(r.export) if r.export else "–"


def table_rows(results: Sequence[SizeResult]) -> list[list[str]]:
    rows: list[list[str]] = []

    def row(label: str, cell: Callable[[SizeResult], str]) -> None:
        rows.append([label, *[cell(r) for r in results]])

    row("posts served (/healthz)", lambda r: "–" if r.healthz_posts is None
        else f"{r.healthz_posts:,}" + ("" if r.healthz_posts == r.expected_posts
                                         else f" (expected {r.expected_posts:,})"))
    row("cold start to /healthz 200, s", lambda r: _over(r.cold_s, r.cold_over))
    row("warm restart, s", lambda r: _over(r.warm_s, r.warm_over))
    row("peak RSS (VmHWM), MiB", lambda r: spread(r.rss_peak_mib, 0))
    row("change → visible p50 / p99 / max, ms", _change_cell)
    row("cold render after change: category / tag feed, ms",
        lambda r: f"{_num(med(r.render_category_ms), 1)} / {_num(med(r.render_tag_ms), 1)}"
        if r.render_category_ms else "–")
    for v in VARIANTS:
        for server in ("ours", *REFS):
            row(f"{v} feed, req/s: {REF_LABEL[server]}", _wrk_cell(v, server))
        row(f"{v} feed, req/s: ours behind deploy/nginx.conf", _tier_cell(v))
    row("HTML index /, req/s: ours", lambda r: spread(r.wrk_rps.get("index ours", []), 0))
    row("Jekyll build (jekyll-feed), s", _jekyll_cell)
    for label, export_cell in EXPORT_ROWS:
        row(label, _of_export(export_cell))
    row("runs (cold+warm starts, wrk rounds)", lambda r: str(r.runs_done))
    row("1-min load average before / after", lambda r: f"{_num(r.load_before, 1)} /"
        f" {_num(r.load_after, 1)}")
    row("elapsed (excl. corpus, Jekyll), s", lambda r: _num(r.elapsed_s, 0))
    return rows


def markdown_table(results: Sequence[SizeResult]) -> str:
    header = ["metric (median (min–max))", *[f"{r.n:,} posts" for r in results]]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cells) + " |" for cells in table_rows(results)]
    return "\n".join(lines)


# --- RESULTS.md ---------------------------------------------------------------------------


def results_md(
    results: Sequence[SizeResult], machine: Machine, settings: Settings, plot: str | None
) -> str:
    m, s = machine, settings
    out = [
        "# Benchmark results",
        "",
        f"`{s.command}` on {m.date}. Regenerate with the same command from the repository"
        " root (see `bench/run.py` for the options).",
        "",
        "## Machine",
        "",
        f"- CPU: {m.cpu}, {m.cores} cores; memory {m.memory_gib:.1f} GiB; Linux {m.kernel}",
        f"- Python {m.python}, Flask {m.flask}, waitress {m.waitress}, nginx {m.nginx},"
        f" wrk {m.wrk}, Jekyll {m.jekyll}",
        f"- service at commit {m.service_commit}",
        "- a shared VM (its CPU time varies from minute to minute), so figures are medians"
        " with (min–max) over the runs; wrk, the servers and the harness share the 2"
        " cores",
        "",
        "## Results",
        "",
        markdown_table(results),
        "",
    ]
    if plot:
        out += [f"![cold start, peak RSS and change-to-visible against corpus size]({plot})",
                ""]
    out += [
        "## What is measured",
        "",
        f"- **cold start**: from spawning `python app.py --content DIR --threads {s.threads}`"
        " to the first 200 from `/healthz` (polled every 20 ms); the OS page cache is warm"
        " (every corpus file is read once just before each start: this VM's host drops the"
        " cache now and then, and a start from disk at 100,000 posts took 21 s, not 11)."
        " **warm restart**: the same again on the same content right after that server"
        " stopped, now with `--index-dir IDX`, the persisted index of parsed front matter"
        " and the load state (the last load's posts and site index) that"
        " `feeds check DIR --index-dir IDX` made just before (from nothing, not timed;"
        " the cold start runs without one, as the service's default is). A run is: cold"
        " start, (first run only: change test), a wrk round against that server, stop,"
        " the index made, warm restart.",
        "- **peak RSS**: VmHWM of the server process, read at the first `/healthz` 200 and"
        " again before it is stopped (after the change test and the wrk round), and of the"
        " warm-restarted one; per run the largest.",
        f"- **change → visible**: {s.changes} times, a new post is written outside `_posts/`"
        " and renamed into it (`os.replace`), then `/category/<cat>.json` is fetched every"
        " 10 ms until its title is there; time from the rename. The posts are removed"
        " afterwards.",
        "- **cold render**: after each change became visible, the time of the first GET of"
        " another category's Atom feed and of a tag's Atom feed that the new post is in.",
        f"- **throughput**: `wrk -t2 -c32 -d{s.duration:g}s` against a category Atom feed"
        " (plain; `Accept-Encoding: gzip`; `If-None-Match` with its ETag → 304) and `/`,"
        " after checking one response of each. References serve the very same bytes"
        " (fetched from the service) with the same Content-Type: `bench/minimal_app.py`"
        f" (Flask on waitress, {s.threads} threads, precompressed gzip, 304 on a matching"
        f" ETag) and nginx (`worker_processes {s.nginx_workers}`, static file, `gzip_static`,"
        " `etag on`, access log to a file). Repetitions are interleaved ours/minimal/nginx.",
        "- **through the nginx tier**: in each run, nginx with `deploy/nginx.conf` as shipped"
        " (only its listen port, cache folder and upstream ports changed; both upstream"
        " lines point at the run's one instance), its cache warmed with one request per"
        " encoding, then the same wrk variants through it: cache HITs, as readers behind"
        " the tier get them. Its ratio is to nginx serving the same bytes as a static file.",
        "- **ours** runs with its defaults: the access log on (written to a file), metrics"
        " counted for every request, the folder watched with inotify, and a connection"
        " kept open after a 304 (plain waitress closes it). The minimal app runs on the"
        " same waitress setup, that channel included, so only the application differs.",
        "- **Jekyll**: `jekyll build` of the same corpus with jekyll-feed and one feed per"
        " category (sizes up to 10,000, 480 s timeout, one run).",
        "- **export** (bench/export.py): `python -m feeds build DIR OUT --index-dir IDX`"
        " into an empty OUT and IDX, then again after appending a paragraph to one post"
        " (the incremental build; the post is put back after), each with GNU time's peak"
        " RSS; `hugo` of the same"
        " corpus as a Hugo site (bench/hugo.py: a page per post, the home page, a page and"
        " an RSS feed with whole bodies for the site, each category and each tag); and a"
        " GET of every URL `feeds build` writes against a server just started with"
        " `--no-watch`, on 4 keep-alive connections, timed from its first `/healthz` 200."
        " Ratios are to Hugo's median.",
        f"- per size, runs are cut short when the next would pass the {s.budget_s:.0f} s"
        " budget; the table says how many were done.",
        "",
    ]
    sized = [r for r in results if r.feed_bytes]
    if sized:
        out += ["## Feed bodies used for throughput", ""]
        for r in sized:
            sizes = ", ".join(f"{k} {v:,} B" for k, v in r.feed_bytes.items())
            out.append(f"- {r.n:,} posts: `{r.feed_path}`: {sizes}")
        out.append("")
    noted = [r for r in results if r.notes or r.wrk_errors]
    if noted:
        out += ["## Notes", ""]
        for r in noted:
            for note in r.notes:
                out.append(f"- {r.n:,} posts: {note}")
            for key, count in r.wrk_errors.items():
                out.append(f"- {r.n:,} posts: wrk `{key}`: {count} errors (non-2xx/3xx or"
                           " socket errors)")
        out.append("")
    return "\n".join(out)


# --- the plot -----------------------------------------------------------------------------


def plot(results: Sequence[SizeResult], path: Path) -> bool:
    """Write the figure; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
        from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter
    except ImportError:
        return False

    rs = sorted(results, key=lambda r: r.n)
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.6))

    def series(ax: object, xs_vals: list[tuple[int, Sequence[float]]], label: str,
               marker: str) -> None:
        pts = [(n, v) for n, v in xs_vals if v]
        if not pts:
            return
        xs = [n for n, _ in pts]
        ys = [med(v) for _, v in pts]
        lo = [y - min(v) for y, (_, v) in zip(ys, pts, strict=True)]
        hi = [max(v) - y for y, (_, v) in zip(ys, pts, strict=True)]
        ax.errorbar(xs, ys, yerr=[lo, hi], marker=marker, capsize=3,  # type: ignore[attr-defined]
                    label=label)

    ax = axes[0]
    series(ax, [(r.n, r.cold_s) for r in rs], "ours: cold start", "o")
    series(ax, [(r.n, r.warm_s) for r in rs], "ours: warm restart", "s")
    series(ax, [(r.n, [r.jekyll_s] if r.jekyll_s is not None and r.jekyll_status == "ok"
                 else []) for r in rs], "Jekyll build (jekyll-feed)", "^")
    ax.set_title("Start (ours) vs build (Jekyll)")
    ax.set_ylabel("seconds")
    ax.set_yscale("log")

    ax = axes[1]
    series(ax, [(r.n, r.rss_peak_mib) for r in rs], "ours: peak RSS", "o")
    ax.set_title("Peak RSS of the server")
    ax.set_ylabel("MiB")
    ax.set_ylim(bottom=0)

    ax = axes[2]
    for pct, marker in ((50, "o"), (99, "s")):
        pts = [(r.n, percentile(r.change_ms, pct)) for r in rs if r.change_ms]
        if pts:
            ax.plot([p[0] for p in pts], [p[1] for p in pts], marker=marker, label=f"p{pct}")
    ax.set_title("Change to visible")
    ax.set_ylabel("ms")

    plain = FuncFormatter(lambda v, _pos: f"{v:,.0f}" if v >= 1 else f"{v:g}")
    axes[0].yaxis.set_major_formatter(plain)
    axes[0].yaxis.set_major_locator(LogLocator(subs=(1.0, 2.0, 5.0)))
    axes[0].yaxis.set_minor_formatter(NullFormatter())
    for ax, where in zip(axes, ("lower right", "upper left", "upper left"), strict=True):
        ax.set_xscale("log")
        ax.xaxis.set_major_formatter(plain)  # no mathtext: plainer and cheaper
        ax.set_xlabel("posts in the corpus")
        ax.grid(True, which="both", alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend(loc=where, fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True
