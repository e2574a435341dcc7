"""A server's bodies rendered in part by a forked helper (``render_workers``): every URL
answers the very bytes it answers without the helper; a body with Liquid never goes to
it; a helper that dies or hangs costs time, never a body; the helper goes with its
server, however the server ends."""

from __future__ import annotations

import logging
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask

from feeds import create_app, renderwork
from feeds.buildwork import urls
from feeds.config import load_settings
from feeds.renderwork import RenderHelper

from .conftest import post_text, write_site
from .service_process import Services
from .test_loadwork import _running

_BODIES = [
    "Intro with a footnote.[^1] And \"quotes\" -- dashes...\n\n[^1]: The note.",
    "第一段中文。\n\n## 小标题\n\n```python\ndef f(x):\n    return x * 2\n```\n",
    "| a | b |\n|---|:-:|\n| 1 | 2 |\n\nAfter the *table*.",
    "Short excerpt.\n<!--more-->\nThe rest, with a [link](/other/) and ![img](pic.png).",
    "<iframe src=\"https://www.youtube.com/embed/x\"></iframe>\n\n- one\n- two\n",
    "```yaml\nkey: value\nlist: [1, 2]\n```\n\nTerm\n: Definition\n",
    "Plain words, then `code` and **bold**, and a <script>alert(1)</script>.",
]


def _site(root: Path, count: int = 24, liquid: bool = False) -> Path:
    posts = {}
    for n in range(count):
        body = _BODIES[n % len(_BODIES)] + f"\n\nPost {n}."
        if liquid:
            body += " {{ page.title }} {% if page.tags %}tagged{% endif %}"
        extra = "excerpt_separator: <!--more-->\n" if n % len(_BODIES) == 3 else ""
        extra += "description: A description.\n" if n % 5 == 4 else ""
        posts[f"_posts/2024-03-{1 + n % 28:02d}-p{n}.md"] = post_text(
            f"Post {n}", f"2024-03-{1 + n % 28:02d} 10:{n:02d}:00 +0800",
            "[tech]" if n % 2 else "[life, 随笔]", "[python, 标签]", body, extra)
    posts["_posts/2024-02-01-page.html"] = post_text("An HTML post", "2024-02-01",
                                                    body="<p>Already <b>HTML</b>.</p>")
    return write_site(root, posts)


def _app(site: Path, helper: RenderHelper | None) -> Flask:
    settings = load_settings({"content": str(site), "base_url": "http://127.0.0.1:4000"})
    return create_app(settings, watch=False, render_helper=helper)


def _helper_metrics(app: Flask) -> tuple[float, float]:
    """(feeds_render_helper_up, feeds_render_helper_bodies), as /metrics says them."""
    text = app.test_client().get("/metrics").get_data(as_text=True)
    values = dict(line.split() for line in text.splitlines()
                  if line.startswith("feeds_render_helper_"))
    return float(values["feeds_render_helper_up"]), float(values["feeds_render_helper_bodies"])


def _answers(app: Flask) -> dict[str, tuple[int, bytes]]:
    client = app.test_client()
    found = {}
    for url in urls(app):
        response = client.get(url)
        found[url] = (response.status_code, response.data)
    return found


@pytest.fixture
def helper() -> Iterator[RenderHelper]:
    made = RenderHelper.fork()
    assert made is not None
    yield made
    made.close()


def test_every_url_answers_the_bytes_it_answers_without_the_helper(
        tmp_path: Path, helper: RenderHelper) -> None:
    site = _site(tmp_path / "site")
    app = _app(site, None)
    alone = _answers(app)
    assert _helper_metrics(app) == (0, 0)
    app = _app(site, helper)
    shared = _answers(app)
    assert helper.done > 0  # the helper did render some of these bodies
    assert _helper_metrics(app) == (1, helper.done)
    assert shared.keys() == alone.keys()
    different = [url for url in alone if shared[url] != alone[url]]
    assert not different
    assert all(status == 200 for status, _ in alone.values())


def test_a_body_with_liquid_is_never_sent_to_the_helper(
        tmp_path: Path, helper: RenderHelper) -> None:
    site = _site(tmp_path / "site", liquid=True)
    alone = _answers(_app(site, None))
    assert _answers(_app(site, helper)) == alone
    assert helper.done == 0


def test_a_helper_that_died_leaves_every_body_to_this_process(
        tmp_path: Path, helper: RenderHelper, caplog: pytest.LogCaptureFixture) -> None:
    site = _site(tmp_path / "site")
    alone = _answers(_app(site, None))
    os.kill(helper.pid, signal.SIGKILL)
    app = _app(site, helper)
    with caplog.at_level(logging.WARNING, logger="feeds.renderwork"):
        assert _answers(app) == alone
    assert not helper.alive
    assert _helper_metrics(app) == (0, 0)
    assert helper.done == 0
    assert any("render helper" in r.getMessage() for r in caplog.records)


def test_a_helper_that_hangs_is_killed_after_the_deadline(
        tmp_path: Path, helper: RenderHelper, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(renderwork, "DEADLINE", 0.5)
    site = _site(tmp_path / "site")
    alone = _answers(_app(site, None))
    os.kill(helper.pid, signal.SIGSTOP)
    started = time.monotonic()
    assert _answers(_app(site, helper)) == alone
    assert not helper.alive
    assert 0.5 <= time.monotonic() - started < 30
    # Killed, it is reaped at once, not left a zombie until the server stops.
    deadline = time.monotonic() + 5
    while Path(f"/proc/{helper.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not Path(f"/proc/{helper.pid}").exists()
    helper.close()
    assert not _running(helper.pid)


def test_a_batch_done_in_time_is_taken_however_late_it_is_read(
        helper: RenderHelper, monkeypatch: pytest.MonkeyPatch) -> None:
    """The deadline is the helper's: a batch it answered before it is read after it
    (the asker was busy: a warm start unpickling its state) and the helper lives on."""
    monkeypatch.setattr(renderwork, "DEADLINE", 0.5)
    items = [f"{n:08d}" for n in range(200_000)]  # more than a pipe holds: it waits
    assert helper.start(len, items)
    time.sleep(1.0)
    assert helper.finish(len(items), bodies=False) == [8] * len(items)
    assert helper.alive and helper.done == 0


def _children(pid: int) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue
            if int(stat[1]) == pid and stat[0] not in ("Z", "X"):
                found.append(int(entry.name))
    return found


def _helper_of(pid: int) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        children = _children(pid)
        if len(children) == 1:  # the load's helper has gone: the render helper stays
            return children[0]
        time.sleep(0.05)
    raise AssertionError(f"the server has children {_children(pid)}, not one helper")


def _gone(pid: int, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    return not _running(pid)


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    yield running
    running.close()


@pytest.mark.parametrize("ending", [signal.SIGTERM, signal.SIGKILL])
def test_the_helper_goes_with_its_server(tmp_path: Path, services: Services,
                                         ending: signal.Signals) -> None:
    """Stopped (SIGTERM: the server closes the helper) or killed (SIGKILL: nothing of
    the server runs; the helper's input closes, and one busy with a batch gets Linux's
    parent-death signal), no helper outlives its server."""
    server = services.wait(services.launch(_site(tmp_path / "site")))
    helper = _helper_of(server.proc.pid)
    if ending == signal.SIGTERM:
        server.stop()
    else:
        server.kill()
    assert _gone(helper)


def test_render_workers_1_forks_no_helper(tmp_path: Path, services: Services) -> None:
    server = services.wait(services.launch(_site(tmp_path / "site"),
                                           env={"FEEDS_RENDER_WORKERS": "1"}))
    time.sleep(0.3)
    assert _children(server.proc.pid) == []


def test_a_helper_closed_twice_closes_its_descriptors_once(helper: RenderHelper) -> None:
    """A service stopped twice closes its helper twice: the second close must not close
    the numbers its pipes had, which another file may hold by then."""
    numbers = {helper._jobs_fd, helper._done_fd}
    helper.close()
    opened = [os.open(os.devnull, os.O_RDONLY)]
    try:
        while opened[-1] not in numbers and len(opened) < 100:
            opened.append(os.open(os.devnull, os.O_RDONLY))  # until one reuses a number
        assert opened[-1] in numbers
        helper.close()
        os.fstat(opened[-1])  # still open
    finally:
        for fd in opened:
            os.close(fd)
