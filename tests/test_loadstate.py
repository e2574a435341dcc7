"""The load state (``loadstate``): a restart where no file changed takes the whole load
and its site index as the last start made them, and answers every URL with the same
bytes as a start from nothing; a state that is damaged, foreign, forged or stale (a file
changed, a post come due) is made again, never trusted."""

from __future__ import annotations

import logging
import os
import pickle
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from feeds import buildwork, create_app, statefile
from feeds.config import Settings, load_settings
from feeds.renderwork import RenderHelper
from feeds.service import FeedService

from .conftest import FIXTURES, post_text, set_mtimes, write_site


def settings_for(content: Path, index: Path | None) -> Settings:
    given: dict[str, object] = {"content": str(content), "watch": False,
                                "url": "https://example.org"}
    if index is not None:
        given["index_dir"] = str(index)
    return load_settings(given, {})


def start(content: Path, index: Path | None, helper: RenderHelper | None = None,
          ) -> tuple[FeedService, dict[str, object]]:
    """A service's start, and every URL of its site as a client gets it (status, the
    headers but Date, the body)."""
    app = create_app(settings_for(content, index), watch=False, render_helper=helper)
    svc: FeedService = app.extensions["feeds"]
    client = app.test_client()
    answers: dict[str, object] = {}
    for url in buildwork.urls(app):
        got = client.get(url, headers={"Accept-Encoding": "identity"})
        answers[url] = (got.status_code, sorted(
            (k, v) for k, v in got.headers.items() if k != "Date"), got.data)
    svc.stop()
    return svc, answers


def state_file(index: Path) -> Path:
    (found,) = index.glob("posts-*.state")
    return found


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """The core fixture site (a far-future post, a post not published, odd dates and
    permalinks) and the hostile files (rejections and warnings), no link among them."""
    root = tmp_path / "site"
    shutil.copytree(FIXTURES / "core-site", root, symlinks=True)
    for path in (FIXTURES / "hostile" / "_posts").iterdir():
        (root / "_posts" / "hostile").mkdir(exist_ok=True)
        shutil.copyfile(path, root / "_posts" / "hostile" / path.name)
    assert not [p for p in root.rglob("*") if p.is_symlink()]
    return root


def test_a_restart_takes_the_whole_load_and_answers_the_same_bytes(
        site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = tmp_path / "index"
    told: list[list[tuple[str, int, str]]] = []
    runs = []
    for index_dir in (None, index, index):
        caplog.clear()
        with caplog.at_level(logging.INFO):
            svc, answers = start(site, index_dir)
        told.append(sorted((r.name, r.levelno, r.getMessage()) for r in caplog.records
                           if r.name in ("feeds.content", "feeds.site")
                           and r.levelno >= logging.WARNING))
        runs.append((svc.store.states.taken, svc.store.parse_count, answers))
    assert [taken for taken, _count, _answers in runs] == [0, 0, 1]
    assert runs[2][1] == 0  # no file read, not even the hostile one that never indexes
    assert len(runs[0][2]) > 30  # type: ignore[arg-type]
    assert runs[0][2] == runs[1][2] == runs[2][2]
    # Every rejection, warning and post left out is told again, as at the first start.
    assert told[0] and told[0] == told[1] == told[2]
    assert any(level == logging.ERROR for _name, level, _m in told[2])
    assert state_file(index).stat().st_mode & 0o777 == 0o600


def test_files_changed_added_or_removed_while_stopped_are_read_again(
        site: Path, tmp_path: Path) -> None:
    """The state is taken with only those files read again, and every URL answers as a
    start from nothing does; the state is then written again with them in."""
    index = tmp_path / "index"
    start(site, index)
    edited = site / "_posts/2022-05-04-date-only.md"
    text = edited.read_text(encoding="utf-8")
    edited.write_text(text.replace("Date only", "Date alone"), encoding="utf-8")
    gone = site / "_posts/2022-06-10-file-name-date.md"
    gone.unlink()
    (site / "_posts/2024-01-03-new.md").write_text(
        post_text("New", "2024-01-03", categories="[fresh]", tags="[newtag]"),
        encoding="utf-8")
    (site / "_posts/hostile/2021-02-01-broken-yaml.md").write_text(  # rejected: now fine
        post_text("Mended", "2021-02-01"), encoding="utf-8")
    (site / "_posts/2024-01-04-bad.md").write_text("---\ntitle: [\n---\nx\n", encoding="utf-8")
    for name in ("2022-05-04-date-only", "2024-01-03-new", "hostile/2021-02-01-broken-yaml",
                 "2024-01-04-bad"):  # settled: not 'being written'
        os.utime(site / f"_posts/{name}.md", (1_700_000_000, 1_700_000_000))
    _cold, cold = start(site, None)
    svc, answers = start(site, index)
    assert svc.store.states.taken == 1 and svc.store.parse_count == 4
    assert answers == cold
    titles = {p.title for p in svc.state().index.posts}
    assert {"Date alone", "New", "Mended"} <= titles and "Date only" not in titles
    assert "_posts/2024-01-04-bad.md" in svc.state().snapshot.problems
    assert "_posts/2022-06-10-file-name-date.md" not in svc.state().snapshot.posts
    svc, answers = start(site, index)  # the state written again: nothing to read now
    assert svc.store.states.taken == 1 and svc.store.parse_count == 0 and answers == cold


def test_a_change_that_needs_a_whole_index_is_still_right(tmp_path: Path) -> None:
    """A post read again whose URL another post has: the index is built whole."""
    index = tmp_path / "index"
    site = write_site(tmp_path / "site", {
        "_posts/2024-01-01-a.md": post_text("A", "2024-01-01"),
        "_posts/2024-01-02-b.md": post_text("B", "2024-01-02")})
    set_mtimes(site, 1_700_000_000)
    start(site, index)
    (site / "_posts/2024-01-03-c.md").write_text(post_text(
        "C", "2024-01-03", extra="permalink: /news/2024/01/01/a.html\n"), encoding="utf-8")
    os.utime(site / "_posts/2024-01-03-c.md", (1_700_000_000, 1_700_000_000))
    _cold, cold = start(site, None)
    svc, answers = start(site, index)
    assert svc.store.states.taken == 1 and answers == cold


class _Runs:
    """What a forged state asks the unpickler to call."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[object, ...]:
        return (os.mkdir, (str(self.marker),))


@pytest.mark.parametrize("damage", ["truncate", "flip", "foreign", "forged", "empty"])
def test_a_damaged_foreign_or_forged_state_is_made_again(
        damage: str, site: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    index = tmp_path / "index"
    _svc, cold = start(site, index)
    path = state_file(index)
    data = path.read_bytes()
    marker = tmp_path / "ran"
    if damage == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "flip":
        at = len(data) // 2
        path.write_bytes(data[:at] + bytes([data[at] ^ 1]) + data[at + 1:])
    elif damage == "foreign":  # another folder's state, the same files, under this name
        other = tmp_path / "other"
        shutil.copytree(site, other)
        start(other, index)
        shutil.copyfile(state_file_of(index, other), path)
    elif damage == "forged":  # the right header and digest, a body that runs code
        head = data.split(b"\n\n", 1)[0].split(b"\n")
        body = pickle.dumps(_Runs(marker))
        digest = statefile.body_digest(body).hexdigest().encode()
        path.write_bytes(b"\n".join([head[0], head[1], digest]) + b"\n\n" + body)
    else:
        path.write_bytes(b"")
    with caplog.at_level(logging.INFO, "feeds.loadstate"):
        svc, answers = start(site, index)
    assert svc.store.states.taken == 0 and answers == cold
    assert not marker.exists()
    assert [r for r in caplog.records if r.name == "feeds.loadstate"]
    svc, answers = start(site, index)  # made again: the next start takes it
    assert svc.store.states.taken == 1 and answers == cold


def state_file_of(index: Path, root: Path) -> Path:
    from feeds.postcache import index_path

    return statefile.state_path(index_path(str(index), str(root)))


def test_a_post_come_due_makes_the_load_again(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A post dated after the load is not in the index it keeps: once due, the next
    start makes the index again, and shows it."""
    index = tmp_path / "index"
    soon = (datetime.now(UTC) + timedelta(hours=1)).strftime("%Y-%m-%d %H:%M:%S +0000")
    site = write_site(tmp_path / "site", {
        "_posts/2024-01-01-old.md": post_text("Old", "2024-01-01"),
        "_posts/2099-01-01-soon.md": post_text("Soon", soon)})
    set_mtimes(site, 1_700_000_000)
    start(site, index)
    svc = FeedService(settings_for(site, index))
    svc.start(watch=False)
    assert svc.store.states.taken == 1
    assert [p.title for p in svc.state().index.posts] == ["Old"]
    svc.stop()
    later = time.time() + 7200
    monkeypatch.setattr(time, "time", lambda: later)
    svc = FeedService(settings_for(site, index))
    svc.start(watch=False)
    assert svc.store.states.taken == 0
    assert [p.title for p in svc.state().index.posts] == ["Soon", "Old"]
    svc.without_timer()
    svc.stop()


def test_an_updated_capped_to_the_load_is_never_kept(tmp_path: Path) -> None:
    index = tmp_path / "index"
    site = write_site(tmp_path / "site", {"_posts/2024-01-01-a.md": post_text(
        "Capped", "2024-01-01", extra="last_modified_at: 2999-01-01\n")})
    set_mtimes(site, 1_700_000_000)
    start(site, index)
    assert not list(index.glob("posts-*.state"))
    svc, _answers = start(site, index)
    assert svc.store.states.taken == 0


def test_a_folder_with_a_link_keeps_no_state(tmp_path: Path) -> None:
    """A link's target can change with no stamp of the link's own changing."""
    index = tmp_path / "index"
    elsewhere = tmp_path / "elsewhere.md"
    elsewhere.write_text(post_text("Linked", "2024-01-02"), encoding="utf-8")
    site = write_site(tmp_path / "site", {"_posts/2024-01-01-a.md": post_text("A", "2024-01-01")})
    (site / "_posts" / "2024-01-02-linked.md").symlink_to(site / "_posts" / "2024-01-01-a.md")
    start(site, index)
    svc, _answers = start(site, index)
    assert svc.store.states.taken == 0


class _FailingHelper:
    """A render helper that takes the batch, then sends back nothing usable."""

    def __init__(self) -> None:
        self.started: list[object] = []

    def start(self, work: object, items: list[object]) -> bool:
        self.started.append(work)
        return True

    def finish(self, count: int, bodies: bool = True) -> list[object]:
        return [None] * count


@pytest.mark.parametrize("kind", ["forked", "failing"])
def test_the_render_helper_stats_the_files_while_the_state_is_read(
        kind: str, site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server's helper stats every file (here from one file on): an edit is found all
    the same, and one that fails has them stat'ed here."""
    monkeypatch.setattr(statefile, "HELPED", 1)
    index = tmp_path / "index"
    start(site, index)
    edited = site / "_posts/2022-05-04-date-only.md"
    edited.write_text(edited.read_text(encoding="utf-8").replace("Date only", "Dated"),
                      encoding="utf-8")
    os.utime(edited, (1_700_000_000, 1_700_000_000))
    _cold, cold = start(site, None)
    helper = RenderHelper.fork() if kind == "forked" else None
    used: list[object] = []
    if helper is not None:
        real_start = helper.start
        monkeypatch.setattr(helper, "start", lambda work, items: (
            used.append(work) or real_start(work, items)))
        svc, answers = start(site, index, helper)
    else:
        failing = _FailingHelper()
        svc = FeedService(settings_for(site, index))
        svc.store.states.helper = failing  # type: ignore[assignment]
        svc.start(watch=False)
        used = failing.started
        answers = None
    assert used and used[0] is statefile.stamps_of
    assert svc.store.states.taken == 1 and svc.store.parse_count == 1
    assert svc.store.index is not None and svc.store.index.hits == 0  # nothing else read
    assert "Dated" in {p.title for p in svc.state().index.posts}
    if answers is not None:
        assert answers == cold
    svc.stop()


def test_a_states_files_are_compared_alike_in_any_order_of_its_stamps() -> None:
    """The files changed since a state was made are the same whether its stamps are
    kept in its files' order (compared side by side) or not (looked up)."""
    files = tuple(f"_posts/2024-01-{n:02d}-p.md" for n in range(1, 21))
    stamps = {rel: (n, 10, n) for n, rel in enumerate(files)}
    now: list[tuple[int, int, int] | None] = list(stamps.values())
    now[3], now[17] = (99, 10, 3), None  # one changed, one gone
    in_order = statefile.Files(files, files, stamps, True, None)
    reordered = statefile.Files(files, files, dict(reversed(stamps.items())), True, None)
    expected = (None, [files[3], files[17]])
    assert in_order._verdict(files, now) == reordered._verdict(files, now) == expected


def test_a_post_with_fields_missing_or_extra_is_not_made() -> None:
    """A state's post of another shape (fewer or more values than Post has fields) is
    refused, not made half set: the whole state is then not taken."""
    count = len(statefile._FIELDS)
    with pytest.raises(pickle.UnpicklingError):
        statefile._post(tuple(range(count - 1)))
    with pytest.raises(pickle.UnpicklingError):
        statefile._post(tuple(range(count + 1)))
