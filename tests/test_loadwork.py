"""A whole load's parsing shared with forked helpers (``load_workers``): the posts,
problems and skips are exactly those of a load without helpers; a helper's parse is
taken only for a file still at the stamp it read; a helper that dies, sends nonsense or
hangs costs time, never a post."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from urllib.parse import urlsplit

import pytest
import requests

from feeds import content, loadwork
from feeds.content import ContentStore
from feeds.model import Stamp
from feeds.parse import SiteRules
from feeds.service import FeedService
from feeds.snapshot import Snapshot

from .conftest import FIXTURES, post_text, write_site
from .service_process import Services
from .test_postcache import seen, settings_for


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The core fixture site and the hostile files, twice over (enough files to share)."""
    root = tmp_path / "site"
    shutil.copytree(FIXTURES / "core-site", root, symlinks=True)
    for copy in ("hostile", "hostile-again"):
        (root / "_posts" / copy).mkdir()
        for path in (FIXTURES / "hostile" / "_posts").iterdir():
            shutil.copyfile(path, root / "_posts" / copy / path.name)
    return root


@pytest.fixture
def parsed_here(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The files the loading process itself read and parsed."""
    calls: list[str] = []
    real = content.read_file

    def counted(root: str, rel: str, *args: object, **kwargs: object) -> object:
        calls.append(rel)
        return real(root, rel, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(content, "read_file", counted)
    return calls


def whole_load(site: Path, workers: int, index: Path | None = None) -> tuple[
        ContentStore, Snapshot]:
    store = ContentStore(settings_for(site, index, load_workers=workers))
    snapshot = store.load(progress=False)
    store.save_index()
    return store, snapshot


def test_helpers_parse_what_one_process_would(site: Path, parsed_here: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    alone, expected = whole_load(site, 1)
    files = list(parsed_here)
    assert expected.rejected > 0 and expected.skipped and len(expected.posts) > 20
    monkeypatch.setattr(loadwork, "MIN_SHARE", 5)
    _slowed_here(monkeypatch, 0.005)  # (so that the helpers parse most files)
    for workers in (2, 3):
        parsed_here.clear()
        store, snapshot = whole_load(site, workers)
        assert seen(snapshot) == seen(expected)
        assert store.parse_count == alone.parse_count
        # The helpers took a run from the end each, the whole of the files between
        # them; this process took back the first ones of the first run until it met
        # its helper, and read again only what a helper could not keep (a surprise, a
        # file it cannot read).
        assert len(parsed_here) < len(files) * 0.7
        assert files[0] in parsed_here
        if workers == 2:  # a slow loading process leaves its helper more, not idle
            assert store.parse_count - len(parsed_here) > len(files) // 2


def _slowed_here(monkeypatch: pytest.MonkeyPatch, seconds: float) -> None:
    """Each parse of the loading process (the counted one) made ``seconds`` slower."""
    counted = content.read_file

    def slowly(*args: object, **kwargs: object) -> object:
        time.sleep(seconds)
        return counted(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(content, "read_file", slowly)


def test_the_loading_process_takes_back_what_a_slow_helper_has_not_reached(
        site: Path, parsed_here: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    alone, expected = whole_load(site, 1)
    files = list(parsed_here)
    monkeypatch.setattr(loadwork, "MIN_SHARE", 5)
    here, real = os.getpid(), loadwork.read_file
    runs: list[int] = []
    real_fork = loadwork._fork

    def fork(root: str, rels: Sequence[str], rules: SiteRules) -> loadwork.Helper | None:
        runs.append(len(rels))
        return real_fork(root, rels, rules)

    def slow_helper(*args: object, **kwargs: object) -> object:
        if os.getpid() != here:
            time.sleep(0.02)
        return real(*args, **kwargs)  # type: ignore[arg-type]

    parsed_there: list[int] = []
    real_read_all = loadwork.Helper._read_all

    def read_all(helper: loadwork.Helper) -> bytes | None:
        data = real_read_all(helper)
        parsed_there.append(helper._done())  # the files it parsed, once it has ended
        return data

    monkeypatch.setattr(loadwork, "read_file", slow_helper)
    monkeypatch.setattr(loadwork, "_fork", fork)
    monkeypatch.setattr(loadwork.Helper, "_read_all", read_all)
    parsed_here.clear()
    store, snapshot = whole_load(site, 2)
    assert seen(snapshot) == seen(expected)
    assert store.parse_count == alone.parse_count  # each file parsed once, by one of them
    (run,) = runs
    first_share = len(files) - run
    assert len(parsed_here) > first_share + run // 2  # most of the run taken back
    assert len(set(parsed_here)) == len(parsed_here)
    helped = store.parse_count - len(parsed_here)
    assert 1 <= helped < run // 2  # and the helper's own parses of the rest taken
    assert parsed_there[0] < run // 2  # it stopped where they met


def test_a_file_edited_after_its_helper_read_it_is_read_again_by_the_next_scan(
        site: Path, parsed_here: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """A helper's parse is taken as the file was when the helper read it (the loading
    process does not look at the file again); an edit made since is what the full scan
    after the load reads, as it reads one made after the load's walk."""
    _alone, expected = whole_load(site, 1)
    monkeypatch.setattr(loadwork, "MIN_SHARE", 5)
    real = loadwork._parse_share
    edited: list[str] = []

    def edit_after_reading(root: str, rels: Sequence[str], rules: SiteRules,
                           progress: object) -> Iterator[tuple[str, Stamp, object]]:
        for rel, stamp, parse in real(root, rels, rules, progress):  # type: ignore[arg-type]
            path = Path(root, rel)
            text = path.read_text("utf-8", "replace")
            if not edited and getattr(parse, "post", None) is not None and (
                    "\ntitle: " in text):
                path.write_text(text.replace("\ntitle: ", "\ntitle: Edited ", 1), "utf-8")
                os.utime(path, ns=(stamp[0] + 10**9, stamp[0] + 10**9))
                edited.append(rel)  # (in the helper: one file edited)
            yield rel, stamp, parse

    monkeypatch.setattr(loadwork, "_parse_share", edit_after_reading)
    parsed_here.clear()
    store, snapshot = whole_load(site, 2)
    assert seen(snapshot) == seen(expected)  # the files as the helper read them
    (rel,) = _helper_edited(site, expected)
    after = store.rescan()
    assert after is not None and after.posts[rel].title.startswith("Edited")


def _helper_edited(site: Path, expected: Snapshot) -> list[str]:
    """The posts whose file now differs from what the one-process load read."""
    return [rel for rel, post in expected.posts.items()
            if os.stat(site / rel).st_mtime_ns != post.stamp[0]]


class _Forged:
    """What a helper gone wrong might send: a pickle that runs code (makes a folder)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, ...]:
        return os.mkdir, (str(self.path),)


@pytest.mark.parametrize("failure", ["dies", "nonsense", "hangs", "forged"])
def test_a_failed_helper_costs_no_post(failure: str, site: Path, parsed_here: list[str],
                                       monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                       caplog: pytest.LogCaptureFixture) -> None:
    _alone, expected = whole_load(site, 1)
    files = list(parsed_here)
    monkeypatch.setattr(loadwork, "MIN_SHARE", 5)
    monkeypatch.setattr(loadwork, "STALL", 1.0)

    def broken(root: str, rels: Sequence[str], rules: SiteRules,
               progress: object) -> list[tuple[str, Stamp, object]]:
        if failure == "dies":
            os._exit(3)
        if failure == "hangs":  # as a lock held at the fork would
            time.sleep(120)
        if failure == "forged":  # read back only as a load state is: nothing runs
            return [(rel, (1, 2, 3), _Forged(tmp_path / "ran")) for rel in rels]
        return [("x", (1, 2, 3), b"[not, json")]

    monkeypatch.setattr(loadwork, "_parse_share", broken)
    parsed_here.clear()
    caplog.set_level(logging.WARNING, logger="feeds.loadwork")
    started = time.monotonic()
    _store, snapshot = whole_load(site, 2)
    assert seen(snapshot) == seen(expected)
    assert sorted(parsed_here) == sorted(files)  # every file parsed here after all
    assert any("load helper" in r.getMessage() for r in caplog.records)
    assert time.monotonic() - started < 60  # the hung helper was killed, not waited for
    assert not (tmp_path / "ran").exists()


def test_helpers_get_only_what_the_index_lacks(site: Path, tmp_path: Path,
                                               parsed_here: list[str],
                                               monkeypatch: pytest.MonkeyPatch) -> None:
    index = tmp_path / "index"
    _store, before = whole_load(site, 1, index)
    for n, path in enumerate(sorted((site / "_posts" / "hostile").iterdir())):
        if n % 2:
            path.write_bytes(path.read_bytes() + b"\n")  # changed while stopped
    new = site / "_posts" / "hostile-new"
    shutil.copytree(site / "_posts" / "hostile-again", new)  # added while stopped
    _fresh, expected = whole_load(site, 1, tmp_path / "fresh")
    given: list[Sequence[str]] = []
    real = loadwork._fork

    def fork(root: str, rels: Sequence[str], rules: SiteRules) -> loadwork.Helper | None:
        given.append(list(rels))
        return real(root, rels, rules)

    monkeypatch.setattr(loadwork, "MIN_SHARE", 1)
    monkeypatch.setattr(loadwork, "_fork", fork)
    _warm, snapshot = whole_load(site, 2, index)
    assert seen(snapshot) == seen(expected) != seen(before)
    (share,) = given
    # (A file the parser failed on by surprise is never kept, so it is parsed again.)
    surprises = {rel for rel, problems in snapshot.problems.items()
                 if any(p.message.startswith("cannot be read as a post") for p in problems)}
    assert share and surprises and {
        rel for rel in share if not rel.startswith("_posts/hostile-new/")} <= surprises


def test_no_helper_below_the_share_or_with_one_worker(site: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    forked: list[int] = []
    monkeypatch.setattr(loadwork, "_fork", lambda *a: forked.append(len(a[1])))
    rules = settings_for(site, None).site_rules()
    rels = [f"_posts/2024-01-01-p{n}.md" for n in range(2_500)]
    assert loadwork.share(str(site), rels, rules, 1, lambda rel: False) == []
    # (a helper would parse half of them, 449 files: fewer than MIN_SHARE)
    assert loadwork.share(str(site), rels[:899], rules, 2, lambda rel: False) == []
    assert not forked
    loadwork.share(str(site), rels, rules, 4, lambda rel: rel.endswith("0.md"))
    # 2,250 to parse: three helpers, whose runs cover them all (750 each), and this
    # process, which takes back what the first run's helper has not reached.
    assert forked == [750, 750, 750]


def test_a_server_starts_with_a_helper(tmp_path: Path) -> None:
    """``python app.py`` as operators run it (its reloader, watcher and waitress threads
    running as it forks): every post is served, and a stop is a clean exit."""
    posts = {f"_posts/2023-{1 + n % 12:02d}-{1 + n % 28:02d}-p{n}.md": post_text(
        f"Post {n}", f"2023-{1 + n % 12:02d}-{1 + n % 28:02d} 08:00:00 +0800",
        f"[c{n % 3}]") for n in range(1_200)}
    site = write_site(tmp_path / "site", posts)
    services = Services(tmp_path)
    try:
        service = services.start(site)
        health = requests.get(service.url + "/healthz", timeout=10).json()
        assert health["posts"] == 1_200
        log = service.log()
        assert re.search(r"1200 files to parse, \d+ of them by 1 forked helpers", log), log
        titles: list[str] = []
        url: str | None = service.url + "/category/c1.json?limit=100"
        for _page in range(10):  # paged by next_url (a reader backfilling)
            if url is None:
                break
            feed = requests.get(url, timeout=30).json()
            titles += [item["title"] for item in feed["items"]]
            following = urlsplit(feed["next_url"]) if "next_url" in feed else None
            url = None if following is None else (  # the site's url: asked of this server
                f"{service.url}{following.path}?{following.query}")
        assert sorted(titles) == sorted(
            f"Post {n}" for n in range(1_200) if n % 3 == 1)
        assert service.stop() == 0
    finally:
        services.close()


_SLOW_LOAD = """
import sys, time
from pathlib import Path
from feeds import content, loadwork
from feeds.content import ContentStore
from feeds.service import FeedService
from tests.test_postcache import settings_for

real = loadwork.read_file

def slowly(*args, **kwargs):  # a helper taking ~10 s: long after its parent is gone
    time.sleep(0.01)
    return real(*args, **kwargs)

# (the loading process as slow: it would take the helper's files back, fast)
loadwork.read_file = content.read_file = slowly
real_fork = loadwork._fork

def forked(*args, **kwargs):
    helper = real_fork(*args, **kwargs)
    print(helper.pid if helper is not None else "none", flush=True)
    return helper

loadwork._fork = forked
ContentStore(settings_for(Path(sys.argv[1]), None, load_workers=2)).load(progress=False)
"""


def _running(pid: int) -> bool:
    """Whether ``pid`` is a process still running (a zombie no one reaped is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux's /proc")
def test_a_helper_goes_when_the_loading_process_is_killed(tmp_path: Path) -> None:
    """A server killed mid-load (SIGKILL: nothing of it runs) leaves no helper parsing
    on for seconds, holding its memory, until its answer meets a closed pipe."""
    posts = {f"_posts/2023-01-{1 + n % 28:02d}-p{n}.md": post_text(
        f"Post {n}", f"2023-01-{1 + n % 28:02d}") for n in range(2_000)}
    site = write_site(tmp_path / "site", posts)
    with subprocess.Popen([sys.executable, "-c", _SLOW_LOAD, str(site)],
                          stdout=subprocess.PIPE, text=True,
                          cwd=Path(__file__).resolve().parent.parent) as loader:
        try:
            assert loader.stdout is not None
            helper = int(loader.stdout.readline())
            time.sleep(0.3)
            assert _running(helper) and loader.poll() is None  # both at work
            loader.kill()
            loader.wait(timeout=10)
            deadline = time.monotonic() + 3
            while _running(helper) and time.monotonic() < deadline:
                time.sleep(0.05)
            assert not _running(helper)
        finally:
            loader.kill()


_EARLY = """
import json, sys
from feeds import server
from feeds.config import load_settings

given = {"content": sys.argv[1], "watch": False, "load_workers": 2}
if sys.argv[2]:
    given["index_dir"] = sys.argv[2]
store = server._begun(load_settings(given, {}))
early = {"web stack": sorted(m for m in ("flask", "werkzeug", "jinja2", "waitress")
                             if m in sys.modules),
         "helpers": len(store._shared._helpers)}
snapshot = store.load(progress=False)
store.save_index()
from feeds import links
from feeds.site import SiteIndex

store.states.keep(snapshot, SiteIndex(snapshot.posts.values(), reserved=links.reserved))
print(json.dumps([early, repr((repr(sorted(snapshot.posts.items())),
                               repr(sorted(snapshot.problems.items())),
                               repr(sorted(snapshot.skipped.items()))))]))
"""


def _begun_early(site: Path, index: Path | None = None) -> tuple[dict[str, object], str]:
    out = subprocess.run([sys.executable, "-c", _EARLY, str(site), str(index or "")],
                         capture_output=True, text=True, timeout=120, check=True,
                         cwd=Path(__file__).resolve().parent.parent).stdout
    early, snapshot = json.loads(out)
    return early, snapshot


def test_a_cold_start_forks_its_load_helpers_before_the_web_stack(
        site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``feeds serve`` begins a cold start's load before it imports Flask and the rest
    (their ~0.3 s then overlaps the helpers' parsing); the load is the one made whole."""
    posts = {f"_posts/2023-01-{1 + n % 28:02d}-p{n}.md": post_text(
        f"Post {n}", f"2023-01-{1 + n % 28:02d}") for n in range(1_200)}
    big = write_site(tmp_path / "big", posts)
    _alone, expected = whole_load(big, 1)
    early, snapshot = _begun_early(big)
    assert early == {"web stack": [], "helpers": 1}
    assert snapshot == repr(seen(expected))
    # With a load state kept (a warm start), nothing begins early: the start takes it.
    index = tmp_path / "index"
    _begun_early(big, index)  # (its load state is written)
    store = ContentStore(settings_for(big, index))
    assert store.states.kept()
    early, snapshot = _begun_early(big, index)
    assert early == {"web stack": [], "helpers": 0}
    assert snapshot == repr(seen(expected))


def test_a_post_made_after_an_early_begin_is_served_soon(tmp_path: Path) -> None:
    """Begun before the watcher watches, the load's walk misses a post made meanwhile:
    the full scan after the load takes it in (at most FIRST_SCAN_WAIT later)."""
    site = write_site(tmp_path / "site", {f"_posts/2023-02-{1 + n:02d}-p{n}.md": post_text(
        f"Post {n}", f"2023-02-{1 + n:02d}") for n in range(20)})
    settings = settings_for(site, None, watch=True)
    store = ContentStore(settings)
    store.begin()
    (site / "_posts" / "2023-03-01-late.md").write_text(
        post_text("Late", "2023-03-01"), encoding="utf-8")
    service = FeedService(settings, store=store)
    service.start()
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and "_posts/2023-03-01-late.md" not in (
                service.state().snapshot.posts):
            time.sleep(0.02)
        assert service.state().snapshot.posts["_posts/2023-03-01-late.md"].title == "Late"
        assert len(service.state().index.posts) == 21
    finally:
        service.stop()


def _dated_site(root: Path) -> dict[str, str]:
    """Posts named by date in two _posts folders, one dated far ahead: name -> text."""
    texts = {}
    for folder, name in (("_posts", "2020-01-01-old.md"), ("_posts", "2024-05-01-may.md"),
                         ("life/_posts", "2024-06-01-june.md"),
                         ("_posts", "2999-01-01-ahead.md")):
        (root / folder).mkdir(parents=True, exist_ok=True)
        text = post_text(name[11:-3], f"{name[:10]} 10:00:00 +0000",
                         body=f"```haskell\nmain = print {len(texts)}\n```")
        (root / folder / name).write_text(text, encoding="utf-8")
        texts[name] = text
    return texts


def test_a_begun_load_guesses_its_newest_posts_by_their_names(tmp_path: Path) -> None:
    """What a server can make ready while its first load runs: the newest posts by the
    date their names open with, in any _posts folder, none dated after today."""
    texts = _dated_site(tmp_path / "site")
    store = ContentStore(settings_for(tmp_path / "site", None))
    assert store.likely_newest(2) == []  # no load begun early
    store.begin()
    assert store.likely_newest(2) == [texts["2024-06-01-june.md"], texts["2024-05-01-may.md"]]
    assert len(store.likely_newest(10)) == 3
    snapshot = store.load(progress=False)
    assert len(snapshot.posts) == 4 and store.likely_newest(2) == []  # (begun no more)


def test_a_server_makes_its_newest_posts_lexers_before_its_load_ends(
        tmp_path: Path) -> None:
    """The lexers the likely newest posts name are made as a cold start begins (before
    the render helper is forked, which then has them): not after the load, before the
    server says it is ready."""
    from feeds import server
    from feeds.parse import highlight

    _dated_site(tmp_path / "site")
    settings = settings_for(tmp_path / "site", None, render_workers=1)
    store = server._begun(settings)
    highlight._lexer.cache_clear()
    assert server._render_helper(settings, store) is None  # (one worker: no helper)
    made = highlight._lexer.cache_info()
    assert made.currsize == 1 and made.misses == 1  # haskell's, made once
    store.load(progress=False)
