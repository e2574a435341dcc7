"""``feeds build`` in a hostile world (issue 15, findings 7, 13 and 15): it never writes
into the content folder, an OUT it cannot write is one clear line and exit status 1, a
full disk leaves no temporary files and a complete manifest, a tag name too long for a
file gets a bounded, stable one, a post whose permalink another URL or a source file
has is left out by the server and the build alike, and nginx-static.conf serves no
dotfiles."""

from __future__ import annotations

import contextlib
import errno
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import feedparser
import pytest
import requests
from flask import Flask

from feeds import export, links
from feeds.model import Format, Kind
from feeds.site import SiteIndex

from .conftest import ROOT, LiveServer, make_settings, post_text, write_site
from .service_process import clean_env, free_port
from .test_export import assert_matches_live, files, url_of
from .test_nginx import DEPLOY_STATIC, start_nginx

BASE = "https://feeds.example.org"


def small_site(root: Path, posts: int = 6, body: str = "Hello.") -> Path:
    return write_site(root, {
        f"_posts/2022-01-{1 + i:02d}-post-{i}.md": post_text(
            f"Post {i}", f"2022-01-{1 + i:02d}", "[news]", "[python]" if i % 2 else "[]",
            body=body)
        for i in range(posts)
    })


def build_cli(content: Path | str, out: Path | str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeds", "build", str(content), str(out)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=clean_env())


def tree(root: Path) -> dict[str, bytes]:
    """Every file below ``root`` (not following symlinks) with its bytes."""
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*"))
            if p.is_file() and not p.is_symlink()}


def one_error_line(result: subprocess.CompletedProcess[str], *words: str) -> str:
    """The build failed with exit status 1 and a last stderr line naming the problem,
    no traceback; the only other lines are the load's own log."""
    assert result.returncode == 1, result.stdout + result.stderr
    lines = result.stderr.strip().splitlines()
    assert lines and "Traceback" not in result.stderr, result.stderr
    assert all(" INFO " in line for line in lines[:-1]), result.stderr
    last = lines[-1]
    assert last.startswith("feeds build: "), last
    for word in words:
        assert word in last, last
    return last


def temporary_files(root: Path) -> list[str]:
    return [p.relative_to(root).as_posix() for p in root.rglob("*.tmp")]


def manifest_lines(out: Path) -> list[str]:
    text = (out / export.MANIFEST).read_text("utf-8")
    assert text.endswith("\n"), "the manifest is truncated"
    return text.splitlines()


# --- the content folder is never written ------------------------------------------------


def test_an_out_that_is_holds_or_is_inside_the_content_folder_is_refused(
        tmp_path: Path) -> None:
    site = small_site(tmp_path / "site")
    (site / "_posts" / "2022-02-01-config.md").write_text(post_text(
        "Config", "2022-02-01", extra="permalink: /_config.yml\n"), "utf-8")
    before = tree(site)
    (tmp_path / "link").symlink_to(site)
    (tmp_path / "deep").mkdir()
    cases = {
        str(site): "is the content folder",
        str(site / "_site"): "is inside the content folder",
        str(site / "_posts" / "x"): "is inside the content folder",
        str(tmp_path): "contains the content folder",
        str(tmp_path / "link"): "is the content folder",  # a symlink to it
        str(tmp_path / "link" / "out"): "is inside the content folder",
        f"{tmp_path}/deep/../site": "is the content folder",
    }
    for out, words in cases.items():
        line = one_error_line(build_cli(site, out), out, words)
        assert line.count("\n") == 0
        assert len(build_cli(site, out).stderr.strip().splitlines()) == 1, out
    # The content folder given through a symlink, OUT its real path: refused too.
    one_error_line(build_cli(tmp_path / "link", site), "is the content folder")
    assert tree(site) == before
    assert not (site / "_site").exists() and not (tmp_path / "link" / "out").exists()
    # Beside it, the build runs.
    result = build_cli(site, tmp_path / "out")
    assert result.returncode == 0, result.stderr
    assert tree(site) == before


def test_an_out_that_is_a_file_is_one_line_and_exit_1(tmp_path: Path) -> None:
    site = small_site(tmp_path / "site")
    out = tmp_path / "out.txt"
    out.write_text("keep me\n", "utf-8")
    result = build_cli(site, out)
    one_error_line(result, str(out), "not a folder")
    assert len(result.stderr.strip().splitlines()) == 1
    assert out.read_text("utf-8") == "keep me\n"
    below = build_cli(site, out / "sub")
    one_error_line(below, "cannot write", "Not a directory")


# --- a read-only OUT, a full disk --------------------------------------------------------


@contextlib.contextmanager
def tmpfs(path: Path, options: str) -> Iterator[Path]:
    """A tmpfs mounted at ``path`` (root only; else the test is skipped)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
                             capture_output=True, text=True, timeout=60)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True, timeout=60)


def test_a_read_only_out_is_one_line_and_exit_1(tmp_path: Path) -> None:
    site = small_site(tmp_path / "site")
    with tmpfs(tmp_path / "ro", "size=1m,ro") as out:
        for target in (out, out / "sub"):
            result = build_cli(site, target)
            one_error_line(result, str(target), "Read-only file system")
            assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def fill(root: Path, leave: int) -> None:
    """Fill the file system of ``root`` until ``leave`` bytes are free."""
    stat = os.statvfs(root)
    free = stat.f_bavail * stat.f_frsize
    with open(root / "filler", "wb") as f:
        f.write(b"\0" * max(0, free - leave))


def test_a_full_disk_leaves_no_temporary_files_and_a_complete_manifest(
        tmp_path: Path) -> None:
    site = small_site(tmp_path / "site")
    with tmpfs(tmp_path / "disk", "size=8m") as disk:
        out = disk / "out"
        assert build_cli(site, out).returncode == 0
        old = manifest_lines(out)
        old_files = {rel: (out / rel).read_bytes() for rel in old}
        # Every feed changes, and grows far past what is left.
        small_site(site, posts=12, body="Longer. " * 600)
        fill(disk, 64 * 1024)
        result = build_cli(site, out)
        one_error_line(result, str(out), "No space left on device")
        assert temporary_files(disk) == []
        lines = manifest_lines(out)
        assert set(old) <= set(lines)
        assert all((out / rel).is_file() for rel in lines)
        # A stopped build removes nothing it wrote before.
        assert all((out / rel).is_file() for rel in old_files)
        (disk / "filler").unlink()
        # With room again, the next build completes and the manifest is the new site's.
        assert build_cli(site, out).returncode == 0
        assert temporary_files(disk) == []
        assert set(manifest_lines(out)) == set(files(out))


class _Full:
    """``open`` for feeds.export that lets ``budget`` files be written, then writes
    half of the next one and raises ENOSPC, as a disk filling up does."""

    def __init__(self, budget: int) -> None:
        self.budget = budget
        self.failed = 0

    def __call__(self, path: Any, mode: str = "r", *args: Any, **kwargs: Any) -> IO[Any]:
        real = open(path, mode, *args, **kwargs)  # noqa: SIM115 - handed to the caller
        if "w" not in mode:
            return real
        if self.budget > 0:
            self.budget -= 1
            return real
        full = self

        class Filling:
            def __enter__(self) -> Filling:
                return self

            def __exit__(self, *exc: object) -> None:
                real.close()

            def write(self, data: bytes) -> int:
                real.write(data[: len(data) // 2])
                real.flush()
                full.failed += 1
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(path))

        return Filling()  # type: ignore[return-value]


def test_a_write_failing_with_enospc_stops_the_build_and_keeps_the_old_manifest(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    site = small_site(tmp_path / "site")
    out = tmp_path / "out"
    settings = make_settings(site, base_url=BASE)
    first = export.run(settings, str(out))
    assert first.failed == 0 and not first.error
    old_manifest = (out / export.MANIFEST).read_bytes()
    old = manifest_lines(out)
    # A killed run's leftover is swept by the next run.
    (out / ".feed.atom.tmp").write_bytes(b"<half")

    small_site(site, posts=9, body="Changed.")
    full = _Full(budget=3)
    monkeypatch.setattr(export, "open", full, raising=False)
    result = export.run(make_settings(site, base_url=BASE), str(out))
    monkeypatch.undo()
    assert full.failed >= 2  # a file, then the manifest
    assert result.failed >= 1 and result.written == 3
    summary = result.summary()
    assert "\n" not in summary and summary.startswith("feeds build: ")
    assert "No space left on device" in summary and "the old manifest is kept" in summary
    assert temporary_files(out) == []
    assert (out / export.MANIFEST).read_bytes() == old_manifest
    assert all((out / rel).is_file() for rel in old)

    # Only the page files fail, the manifest has room: it lists both runs' files.
    full = _Full(budget=2)
    real_replace = export._replace

    def replace(path: Path, data: bytes) -> None:
        if path.name == export.MANIFEST:
            monkeypatch.undo()
        real_replace(path, data)

    monkeypatch.setattr(export, "open", full, raising=False)
    monkeypatch.setattr(export, "_replace", replace)
    result = export.run(make_settings(site, base_url=BASE), str(out))
    monkeypatch.undo()
    assert "the manifest lists both runs' files" in result.error
    assert set(old) <= set(manifest_lines(out))
    assert temporary_files(out) == []

    done = export.run(make_settings(site, base_url=BASE), str(out))
    assert done.failed == 0 and not done.error
    assert set(manifest_lines(out)) == set(files(out))
    complete = (out / export.MANIFEST).read_bytes()

    # Nothing changed: nothing is written, not even the manifest, so a full disk is no
    # error (the OPML and the static files are made, and found the same).
    monkeypatch.setattr(export, "open", _Full(budget=0), raising=False)
    result = export.run(make_settings(site, base_url=BASE), str(out))
    monkeypatch.undo()
    assert result.written == 0 and not result.error and result.failed == 0
    assert (out / export.MANIFEST).read_bytes() == complete
    assert temporary_files(out) == []


# --- long names ---------------------------------------------------------------------------


def test_a_tag_too_long_for_a_file_name_gets_a_bounded_stable_one(
        tmp_path: Path, live_server_factory: Callable[[Flask], LiveServer]) -> None:
    names = ["x" * 300, "x" * 300 + "y", "长" * 100, "a/b" * 90, "é" * 200]
    site = write_site(tmp_path / "site", {
        f"_posts/2022-01-{1 + i:02d}-long-{i}.md": post_text(
            f"Long {i}", f"2022-01-{1 + i:02d}", "[news]", json.dumps([name, "short"]))
        for i, name in enumerate(names)
    })
    settings = make_settings(site, base_url=BASE)
    out = tmp_path / "out"
    result = export.run(settings, str(out))
    assert result.failed == 0 and not result.error
    written = files(out)
    for rel in written:
        for part in rel.split("/"):
            assert len(os.fsencode(part)) <= 255, rel
    # One file a name and format, each distinct, and the same on a second run.
    tag_files = {rel for rel in written if rel.startswith("tag/") and rel.endswith(".atom")}
    assert len(tag_files) == len(names) + 1
    again = tmp_path / "again"
    export.run(make_settings(site, base_url=BASE), str(again))
    assert set(files(again)) == set(written)
    # Each is the live server's answer, and that feed's title is the whole name.
    assert_matches_live(out, settings, live_server_factory)
    for name in names:
        path = links.feed_path(Kind.TAG, name, Format.ATOM)
        assert len(path.encode()) < 800
        parsed = feedparser.parse((out / url_of_file(path)).read_bytes())
        assert not parsed.bozo
        assert parsed.feed.title.endswith(f" · {name}")
        assert [e.title for e in parsed.entries] == [f"Long {names.index(name)}"]
    # The OPML and the home page link to those short URLs.
    opml = (out / "feeds.opml").read_text("utf-8")
    for rel in tag_files:
        assert f'xmlUrl="{BASE}{url_of(rel)}"' in opml, rel


def url_of_file(path: str) -> str:
    from urllib.parse import unquote

    return unquote(path).lstrip("/")


# --- permalinks that collide -------------------------------------------------------------

COLLIDING = {
    "_posts/2022-02-01-config.md": "/_config.yml",
    "_posts/2022-02-02-feed.md": "/feed.atom",
    "_posts/2022-02-03-home.md": "/index.html",
    "_posts/2022-02-04-source.md": "/_posts/2022-01-01-post-0.md",
    "_posts/2022-02-05-tag.md": "/tag/python.rss",
    "_posts/2022-02-06-opml.md": "/feeds.opml",
    "_posts/2022-02-07-page.md": '"/feed.json?page=2"',
    "_posts/2022-02-08-twin-old.md": "/twin/index.html",
    "_posts/2022-02-10-static.md": "/static/style.css",
    "_posts/2022-02-11-health.md": "/healthz",
    "_posts/2022-02-12-folder.md": "/tag",  # a file where the build has a folder
}


def colliding_site(root: Path) -> Path:
    site = small_site(root)
    for rel, permalink in COLLIDING.items():
        (site / rel).write_text(post_text(
            f"Collides {Path(rel).stem}", rel[7:17], "[news]", "[python]",
            extra=f"permalink: {permalink}\n"), "utf-8")
    (site / "_posts/2022-02-09-twin-new.md").write_text(post_text(
        "Twin new", "2022-02-09", extra="permalink: /twin/\n"), "utf-8")
    return site


def titles(data: bytes) -> set[str]:
    parsed = feedparser.parse(data)
    assert not parsed.bozo, parsed.bozo_exception
    return {e.title for e in parsed.entries}


def test_a_post_whose_permalink_is_taken_is_left_out_by_build_and_server(
        tmp_path: Path, live_server_factory: Callable[[Flask], LiveServer],
        caplog: pytest.LogCaptureFixture) -> None:
    site = colliding_site(tmp_path / "site")
    source = tree(site)
    settings = make_settings(site, base_url=BASE)
    out = tmp_path / "out"
    result = export.run(settings, str(out))
    assert result.failed == 0 and not result.error
    kept = {f"Post {i}" for i in range(6)} | {"Twin new"}
    for name in ("feed.atom", "feed.rss", "feed.xml", "tag/python.rss"):
        found = titles((out / name).read_bytes())
        assert found <= kept and not any(t.startswith("Collides") for t in found), name
    assert titles((out / "feed.atom").read_bytes()) == kept
    json_feed = json.loads((out / "feed.json").read_bytes())
    assert {item["title"] for item in json_feed["items"]} == kept
    assert titles((out / "tag" / "python.rss").read_bytes()) == {"Post 1", "Post 3", "Post 5"}
    assert not (out / "_config.yml").exists() and not (out / "_posts").exists()
    assert "Twin new" in (out / "twin" / "index.html").read_text("utf-8")
    assert b"<opml" in (out / "feeds.opml").read_bytes()
    assert tree(site) == source
    # The server says the same, file for file.
    assert_matches_live(out, settings, live_server_factory)
    # Reported: a warning per post, with its file and the URL's other owner.
    reported = {r.getMessage() for r in caplog.records if r.name == "feeds.site"}
    for rel in COLLIDING:
        assert any(line.startswith(f"post {rel}: left out: ") for line in reported), rel
    assert any("twin-old.md: left out: its permalink /twin/index.html is "
               "_posts/2022-02-09-twin-new.md's too" in line for line in reported)


def test_the_index_reports_each_left_out_post_for_feeds_check(tmp_path: Path) -> None:
    from feeds.content import ContentStore

    site = colliding_site(tmp_path / "site")
    snapshot = ContentStore(make_settings(site)).load(progress=False)
    index = SiteIndex(snapshot.posts.values(), reserved=links.reserved)
    problems = {p.path: p for p in index.problems()}
    assert set(problems) == set(COLLIDING)
    assert all(p.rejected for p in problems.values())
    assert "the source file _config.yml" in problems["_posts/2022-02-01-config.md"].message
    assert "the site's .atom feed" in problems["_posts/2022-02-02-feed.md"].message
    assert "the home page" in problems["_posts/2022-02-03-home.md"].message
    assert "the source file _posts/2022-01-01-post-0.md" in \
        problems["_posts/2022-02-04-source.md"].message
    assert {p.url for p in index.posts} & {"/feed.atom", "/_config.yml"} == set()
    # A post whose folder a static host hides is kept, with a warning.
    hidden = ContentStore(make_settings(write_site(tmp_path / "h", {
        "_posts/2022-01-01-dot.md": post_text("Dot", "2022-01-01", "[.secret]")}))).load()
    hidden_index = SiteIndex(hidden.posts.values(), reserved=links.reserved)
    assert [p.title for p in hidden_index.posts] == ["Dot"]
    [warning] = hidden_index.problems()
    assert not warning.rejected and "starts with '.'" in warning.message


def test_a_change_that_takes_or_frees_a_url_is_applied_to_the_live_index(
        tmp_path: Path, make_app: Callable[..., Flask]) -> None:
    site = small_site(tmp_path / "site")
    app = make_app(site)
    svc = app.extensions["feeds"]
    client = app.test_client()

    def feed_titles() -> set[str]:
        return titles(client.get("/feed.atom").get_data())

    before = feed_titles()
    # A new post claiming the site's RSS feed: not listed, the feed still the feed.
    (site / "_posts/2022-03-01-rss.md").write_text(post_text(
        "Takes the RSS", "2022-03-01", extra="permalink: /feed.rss\n"), "utf-8")
    svc.refresh()
    assert feed_titles() == before
    assert titles(client.get("/feed.rss").get_data()) == before
    assert "_posts/2022-03-01-rss.md" in svc.state().index.left_out
    # Two posts, one URL: the newer has it; when it goes, the older gets it.
    (site / "_posts/2022-03-02-old.md").write_text(post_text(
        "Old twin", "2022-03-02", extra="permalink: /twin.html\n"), "utf-8")
    svc.refresh()
    (site / "_posts/2022-03-03-new.md").write_text(post_text(
        "New twin", "2022-03-03", extra="permalink: /twin.html\n"), "utf-8")
    svc.refresh()
    assert {"New twin"} == feed_titles() - before
    assert "New twin" in client.get("/twin.html").get_data(as_text=True)
    (site / "_posts/2022-03-03-new.md").unlink()
    svc.refresh()
    assert {"Old twin"} == feed_titles() - before
    assert "Old twin" in client.get("/twin.html").get_data(as_text=True)
    # An edit that gives a post another's source path as its permalink.
    (site / "_posts/2022-03-02-old.md").write_text(post_text(
        "Old twin", "2022-03-02", extra="permalink: /_posts/2022-01-01-post-0.md\n"),
        "utf-8")
    svc.refresh()
    assert feed_titles() == before


# --- nginx-static.conf hides dotfiles -----------------------------------------------------


def test_static_nginx_serves_no_dotfiles(tmp_path: Path) -> None:
    site = small_site(tmp_path / "site")
    out = tmp_path / "out"
    assert export.run(make_settings(site, base_url=BASE), str(out)).failed == 0
    built = [url_of(rel) for rel in files(out)]
    (out / ".feed.atom.tmp").write_bytes(b"<half a feed")
    (out / ".git").mkdir()
    (out / ".git" / "config").write_text("[remote]\n", "utf-8")
    (out / "static" / ".hidden").write_text("x", "utf-8")
    (out / ".well-known" / "acme-challenge").mkdir(parents=True)
    (out / ".well-known" / "acme-challenge" / "token").write_text("proof", "utf-8")
    conf = DEPLOY_STATIC.read_text("utf-8")
    port = free_port()
    for old, new in (("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("root /srv/www;", f"root {out};")):
        assert conf.count(old) == 1
        conf = conf.replace(old, new)
    url = f"http://127.0.0.1:{port}"
    nginx = start_nginx(tmp_path / "nginx", conf, url + "/")
    try:
        with requests.Session() as http:
            for path in ["/.feeds-build-manifest", "/%2Efeeds-build-manifest",
                         "/.feed.atom.tmp", "/.git/config", "/.git/", "/static/.hidden",
                         "/static/%2Ehidden", "/.feeds-build-manifest?page=2"]:
                response = http.get(url + path, timeout=60)
                assert response.status_code == 404, path
                assert b"[remote]" not in response.content
                assert b"index.html" not in response.content, path
            for path in ["/feed.atom", "/", "/static/style.css", *built]:
                assert http.get(url + path, timeout=60).status_code == 200, path
            acme = http.get(url + "/.well-known/acme-challenge/token", timeout=60)
            assert acme.status_code == 200 and acme.text == "proof"
    finally:
        nginx.stop()
