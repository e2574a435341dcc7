"""Hostile and broken posts. Each case lands in a folder of good posts, and then: the
post is left out (or, where it can be mended, kept with a warning); one log line names
the file and the reason, once per change of the file and never per request; every other
post is still served; and ``feeds check DIR`` prints a line for it (exit status 1 when a
post is rejected).

The text cases are files under tests/fixtures/hostile/_posts, each named for its case;
the byte-level ones (control characters, bad UTF-8, BOM and CRLF, binary, oversize,
symlinks) are written by the tests.
"""

from __future__ import annotations

import logging
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
from flask import Flask
from flask.testing import FlaskClient
from lxml import html as lxml_html

from feeds import cli, create_app
from feeds.config import Settings

from .conftest import FIXTURES, ROOT, make_settings, post_text, validate_json_feed

HOSTILE = FIXTURES / "hostile"
GOOD = {"_posts/2021-01-01-good.md": "Good", "_posts/2021-01-02-also-good.md": "Also good"}


# --- writers of the byte-level cases ----------------------------------------------------


def control_characters(path: Path) -> None:
    path.write_bytes(
        b"---\ntitle: \"Bell\x07 in\x01 the title\"\ndate: 2021-03-02 08:00:00\n"
        b"tags: [\"ta\x02g\", ok]\n---\nA body\x00 with NUL,\x0b vertical tab\x1f and unit "
        b"separator.\n")


def invalid_utf8(path: Path) -> None:
    path.write_bytes(b"---\ntitle: Caf" + b"\xe9 cr\xe8me\n"
                     + b"date: 2021-03-03 08:00:00\ntags: [ok]\n---\nLatin-1 bytes \xff.\n")


def bom_and_crlf(path: Path) -> None:
    path.write_bytes(b"\xef\xbb\xbf---\r\ntitle: Written on Windows\r\n"
                     b"date: 2021-03-04 08:00:00\r\ntags: [ok]\r\n---\r\n"
                     b"First paragraph.\r\n\r\nSecond paragraph.\r\n")


def oversize(path: Path) -> None:
    path.write_bytes(post_text("Too big", "2021-03-05").encode() + b"x" * 2_100_000)


def binary(path: Path) -> None:
    png = b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8
    path.write_bytes(png)


def symlink_outside(path: Path) -> None:
    outside = path.parent.parent.parent / "outside.md"
    outside.write_text(post_text("Secret from outside", "2021-03-07"), "utf-8")
    path.symlink_to(outside)


def python_object(path: Path) -> None:
    marker = path.parent.parent.parent / "executed"
    path.write_text(
        "---\ntitle: !!python/object/apply:pathlib.Path.touch\n"
        f"  - !!python/object/apply:pathlib.Path [\"{marker}\"]\n"
        "date: 2021-03-08\n---\nBody.\n", "utf-8")


def deep_nesting(path: Path) -> None:
    path.write_text("---\ntitle: " + "[" * 200_000 + "]" * 200_000 + "\n---\nx\n", "utf-8")


def copy_fixture(name: str) -> Callable[[Path], None]:
    def write(path: Path) -> None:
        shutil.copyfile(HOSTILE / "_posts" / name, path)

    return write


@dataclass(frozen=True)
class Case:
    file: str
    """The file's name below _posts/."""
    outcome: str
    """'rejected', 'kept' (with a warning) or 'skipped' (published: false)."""
    reason: str
    """What the log line and the check line must say about it."""
    write: Callable[[Path], None] | None = None
    title: str = ""
    """The title the post is served with, when it is kept."""

    @property
    def rel(self) -> str:
        return f"_posts/{self.file}"


CASES = [
    Case("2021-02-01-broken-yaml.md", "rejected", "not valid YAML"),
    # Jekyll publishes a _posts file without front matter: the whole text is its body.
    Case("2021-02-02-no-front-matter.md", "kept", "no title; using 'No Front Matter'",
         title="No Front Matter"),
    Case("2021-02-14-no-title.md", "kept", "no title; using 'No Title'", title="No Title"),
    # Jekyll reads no undated name from _posts/: not a post, and said so.
    Case("no-date.md", "skipped", "name starts with its date"),
    Case("2021-02-04-unparseable-date.md", "rejected", "date is not a date"),
    Case("2021-02-05-year-0.md", "rejected", "year 0 is out of range"),
    Case("2021-02-06-year-9999.md", "rejected", "year 9999 is outside 1000-9998"),
    Case("2021-02-07-unpublished.md", "skipped", "published: false"),
    Case("2021-03-02-control-characters.md", "kept", "control characters",
         control_characters, "Bell in the title"),
    Case("2021-03-03-invalid-utf8.md", "kept", "invalid UTF-8 at byte 14", invalid_utf8,
         "Caf\ufffd cr\ufffdme"),
    Case("2021-03-08-python-object.md", "rejected", "python/object/apply", python_object),
    Case("2021-02-09-alias-bomb.md", "rejected", "alias bomb"),
    Case("2021-03-09-deep-nesting.md", "rejected", "too many to read safely", deep_nesting),
    # A value of a type the service does not use is ignored, with one warning naming the
    # key; Jekyll publishes these posts (nested lists are flattened, as there).
    Case("2021-02-10-tags-number.md", "kept", "front matter 'tags' is a number, not a list "
         "or a string of names; ignored", title="Tags is a number"),
    Case("2021-02-11-tags-mapping.md", "kept", "front matter 'tags' is a mapping, not a list "
         "or a string of names; ignored", title="Tags is a mapping"),
    Case("2021-02-12-categories-nested.md", "kept", "front matter 'categories' holds a "
         "mapping, not a name; ignored", title="Nested categories"),
    Case("2021-03-05-oversize.md", "rejected", "over max_post_bytes (2000000)", oversize),
    Case("2021-02-13-empty.md", "kept", "no title; using 'Empty'", title="Empty"),
    Case("2021-03-06-binary.md", "rejected", "binary file", binary),
    Case("2021-03-07-symlink-outside.md", "rejected", "symlink points outside the content "
         "folder; not followed", symlink_outside),
]


def build_site(root: Path, case: Case) -> Path:
    """A copy of the fixture's config and good posts, plus the one case."""
    (root / "_posts").mkdir(parents=True)
    shutil.copyfile(HOSTILE / "_config.yml", root / "_config.yml")
    for rel in GOOD:
        shutil.copyfile(HOSTILE / rel, root / rel)
    (case.write or copy_fixture(case.file))(root / case.rel)
    return root


def feed_titles(client: FlaskClient, path: str = "/feed.atom?limit=100") -> list[str]:
    response = client.get(path)
    assert response.status_code == 200, path
    feed = feedparser.parse(response.data)
    assert not feed.bozo, feed.bozo_exception
    return [entry.title for entry in feed.entries]


def lines_about(caplog: pytest.LogCaptureFixture, rel: str) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "feeds.content" and rel in r.getMessage()]


@pytest.fixture
def started() -> Iterator[Callable[[Settings], Flask]]:
    apps: list[Flask] = []

    def start(settings: Settings) -> Flask:
        app = create_app(settings, watch=False)
        apps.append(app)
        return app

    yield start
    for app in apps:
        app.extensions["feeds"].stop()


@pytest.mark.parametrize("case", CASES, ids=lambda c: re.sub(r"^[\d-]{11}", "", c.file)[:-3])
def test_hostile_file(case: Case, tmp_path: Path, caplog: pytest.LogCaptureFixture,
                      capsys: pytest.CaptureFixture[str],
                      started: Callable[[Settings], Flask]) -> None:
    caplog.set_level(logging.INFO, "feeds.content")
    root = build_site(tmp_path / "site", case)
    settings = make_settings(root)
    app = started(settings)
    client = app.test_client()
    service = app.extensions["feeds"]

    # Every other post is still served, in every feed it belongs to.
    titles = feed_titles(client)
    assert set(GOOD.values()) <= set(titles)
    assert feed_titles(client, "/category/news.rss") == ["Good"]
    assert {i["title"] for i in validate_json_feed(client.get("/tag/ok.json").data)["items"]} \
        >= set(GOOD.values())
    health = service.health()
    if case.outcome == "kept":
        assert case.title in titles
        assert len(titles) == 3
        assert health["rejected"] == 0
    else:
        assert len(titles) == 2
        assert health["rejected"] == (1 if case.outcome == "rejected" else 0)

    # One log line names the file and the reason ...
    logged = lines_about(caplog, case.rel)
    assert len(logged) == 1, logged
    assert case.reason in logged[0]
    prefix = {"rejected": "post rejected: ", "kept": "post accepted with a problem: ",
              "skipped": "post skipped: "}[case.outcome]
    assert logged[0].startswith(prefix + case.rel + ": ")
    # ... and not again per request, nor when the folder is scanned with nothing changed.
    for path in ("/feed.atom", "/feed.rss", "/feed.json", "/", "/tag/ok.atom"):
        assert client.get(path).status_code == 200
    service.refresh()
    assert len(lines_about(caplog, case.rel)) == 1
    # A change of the file logs it once more.
    path = root / case.rel
    if path.is_symlink():
        target = os.readlink(path)
        path.unlink()
        path.symlink_to(target)
    else:
        # Dated in the past: an edit that has settled (one written a moment ago that reads
        # as half-written, empty say, waits for settle.SETTLE).
        settled = time.time() - 10
        os.utime(path, (settled, settled))
    service.refresh()
    assert len(lines_about(caplog, case.rel)) == 2

    # feeds check: a line for the file; exit status 1 only when a post is rejected.
    capsys.readouterr()
    status = cli.check(settings)
    out, _err = capsys.readouterr()
    if case.outcome == "skipped":
        # Left out on purpose: a line on stdout like any problem, but nothing rejected.
        [line] = out.splitlines()
        assert status == 0 and line.startswith(f"{case.rel}: skipped: ")
        assert case.reason in line
        return
    assert status == (1 if case.outcome == "rejected" else 0)
    lines = out.splitlines()
    assert len(lines) == 1, lines
    level = "warning: " if case.outcome == "kept" else ""
    assert lines[0].startswith(f"{case.rel}: {level}")
    assert case.reason in lines[0]


def test_python_tags_are_never_executed(tmp_path: Path,
                                        started: Callable[[Settings], Flask]) -> None:
    case = next(c for c in CASES if c.write is python_object)
    root = build_site(tmp_path / "site", case)
    started(make_settings(root))
    assert not (tmp_path / "executed").exists()


def test_control_characters_are_dropped_from_title_tags_and_body(
        tmp_path: Path, started: Callable[[Settings], Flask]) -> None:
    case = next(c for c in CASES if c.write is control_characters)
    app = started(make_settings(build_site(tmp_path / "site", case)))
    client = app.test_client()
    entry = next(e for e in feedparser.parse(client.get("/tag/ok.atom").data).entries
                 if e.title == "Bell in the title")
    assert {t.term for t in entry.tags} == {"tag", "ok"}
    body = lxml_html.fragment_fromstring(entry.content[0].value, create_parent="div")
    assert body.text_content().strip() == "A body with NUL, vertical tab and unit separator."
    item = next(i for i in validate_json_feed(client.get("/feed.json").data)["items"]
                if i["title"] == "Bell in the title")
    assert item["tags"] == ["tag", "ok"]
    assert client.get("/tag/tag.atom").status_code == 200


def test_bom_and_crlf_are_read_without_a_problem(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
        started: Callable[[Settings], Flask]) -> None:
    case = Case("2021-03-04-bom-crlf.md", "kept", "", bom_and_crlf)
    root = build_site(tmp_path / "site", case)
    settings = make_settings(root)
    client = started(settings).test_client()
    entry = next(e for e in feedparser.parse(client.get("/feed.atom").data).entries
                 if e.title == "Written on Windows")
    assert [t.term for t in entry.tags] == ["ok"]
    body = lxml_html.fragment_fromstring(entry.content[0].value, create_parent="div")
    assert [p.text for p in body.findall("p")] == ["First paragraph.", "Second paragraph."]
    assert lines_about(caplog, case.rel) == []
    assert cli.check(settings) == 0
    assert capsys.readouterr().out == ""


def test_invalid_utf8_is_replaced_not_fatal(tmp_path: Path,
                                            started: Callable[[Settings], Flask]) -> None:
    case = next(c for c in CASES if c.write is invalid_utf8)
    client = started(make_settings(build_site(tmp_path / "site", case))).test_client()
    entry = next(e for e in feedparser.parse(client.get("/feed.atom").data).entries
                 if e.title.startswith("Caf"))
    assert entry.title == "Caf\ufffd cr\ufffdme"
    body = lxml_html.fragment_fromstring(entry.content[0].value, create_parent="div")
    assert body.text_content().strip() == "Latin-1 bytes \ufffd."


def test_hostile_names_stay_inside_their_url_segment(
        tmp_path: Path, started: Callable[[Settings], Flask]) -> None:
    """A category named ../../etc and tags holding / ? # % <script>: the post is served,
    its permalink cannot climb out of the site, and every category and tag URL it links
    to works and leads back to it."""
    root = tmp_path / "site"
    (root / "_posts").mkdir(parents=True)
    shutil.copyfile(HOSTILE / "_config.yml", root / "_config.yml")
    shutil.copyfile(HOSTILE / "_posts" / "2021-03-01-hostile-names.md",
                    root / "_posts" / "2021-03-01-hostile-names.md")
    client = started(make_settings(root)).test_client()
    feed = feedparser.parse(client.get("/feed.atom").data)
    (entry,) = feed.entries
    assert {t.term for t in entry.tags} == {
        "../../etc", "a/b", "what?", "C#", "100%", "<script>alert(1)</script>", "~tilde",
        ".hidden"}
    assert entry.link == "https://hostile.example/etc/2021/03/01/hostile-names.html"
    page = client.get("/etc/2021/03/01/hostile-names.html")
    assert page.status_code == 200
    doc = lxml_html.fromstring(page.data)
    assert doc.xpath("//script") == []
    # Follow every category and tag link of the post page (and their feeds).
    hrefs = {a.get("href") for a in doc.xpath("//a[@href]")
             if "/category/" in a.get("href") or "/tag/" in a.get("href")}
    assert len(hrefs) == 8, hrefs
    for href in hrefs:
        path = href.removeprefix("https://hostile.example")
        assert path.startswith(("/category/", "/tag/")) and path.endswith(".html")
        segment = path.split("/", 2)[2]
        assert "/" not in segment and "?" not in segment and "#" not in segment
        listing = client.get(path)
        assert listing.status_code == 200, path
        titles = [a.text_content().strip()
                  for a in lxml_html.fromstring(listing.data).xpath("//a[@href]")
                  if a.get("href", "").endswith("/etc/2021/03/01/hostile-names.html")]
        assert "Hostile names" in titles, path
        atom = client.get(path[:-5] + ".atom")
        assert atom.status_code == 200, path
        assert [e.title for e in feedparser.parse(atom.data).entries] == ["Hostile names"]


def test_a_post_broken_by_an_edit_is_withdrawn_then_back_when_fixed(
        tmp_path: Path, caplog: pytest.LogCaptureFixture,
        started: Callable[[Settings], Flask]) -> None:
    caplog.set_level(logging.INFO, "feeds.content")
    root = build_site(tmp_path / "site", Case("2021-03-10-fine.md", "kept", "",
                                              lambda p: p.write_text(post_text(
                                                  "Fine", "2021-03-10", "[news]"))))
    app = create_app(make_settings(root), watch=True)
    try:
        client = app.test_client()
        post = root / "_posts" / "2021-03-10-fine.md"

        def wait_for(titles: set[str], what: str) -> None:
            deadline = time.monotonic() + 60
            while set(feed_titles(client)) != titles:
                assert time.monotonic() < deadline, f"timed out waiting for {what}"
                time.sleep(0.05)

        temporary = post.with_name(".fine.tmp")
        temporary.write_text("---\ntitle: [broken\n---\nx\n")
        os.replace(temporary, post)
        wait_for({"Good", "Also good"}, "the broken post to be withdrawn")
        assert len(lines_about(caplog, "2021-03-10-fine.md")) == 1
        for _ in range(5):
            assert feed_titles(client, "/category/news.atom") == ["Good"]
        assert len(lines_about(caplog, "2021-03-10-fine.md")) == 1
        temporary.write_text(post_text("Fine again", "2021-03-10", "[news]"))
        os.replace(temporary, post)
        wait_for({"Good", "Also good", "Fine again"}, "the fixed post")
        assert feed_titles(client, "/category/news.atom") == ["Fine again", "Good"]
    finally:
        app.extensions["feeds"].stop()


def _limit_memory() -> None:  # runs in the child, before exec
    two_gb = 2 * 1024 ** 3
    resource.setrlimit(resource.RLIMIT_AS, (two_gb, two_gb))


def test_feeds_check_on_the_whole_hostile_folder(tmp_path: Path) -> None:
    """The real command over every case at once, in a child process held to 2 GB of
    address space and a time limit: the alias bomb and the deep nesting cannot make it
    run away, and the exit status is 1."""
    root = tmp_path / "hostile"
    shutil.copytree(HOSTILE, root)
    for case in CASES:
        if case.write is not None:
            case.write(root / case.rel)
    result = subprocess.run(
        [sys.executable, "-m", "feeds", "check", str(root)], capture_output=True, text=True,
        timeout=600, cwd=ROOT, preexec_fn=_limit_memory,
        env={k: v for k, v in os.environ.items() if not k.startswith("FEEDS_")})
    assert result.returncode == 1, result.stdout + result.stderr
    found: dict[str, str] = {}
    for line in result.stdout.splitlines():
        path, _, reason = line.partition(": ")
        assert path not in found, f"two lines for {path}"
        found[path] = reason
    expected = {c.rel: c for c in CASES}
    assert set(found) == set(expected)
    for rel, case in expected.items():
        assert case.reason in found[rel], (rel, found[rel])
        assert found[rel].startswith("warning: ") == (case.outcome == "kept")
        assert found[rel].startswith("skipped: ") == (case.outcome == "skipped")
