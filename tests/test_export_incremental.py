"""``feeds build`` again on the same OUT renders only the URLs whose inputs changed
(``buildstate``), and its result is, file for file, a fresh build's: after an edit, an
addition, a deletion, a settings change and an edit that changes another post's Liquid.
A state that is foreign, edited or truncated, or a file changed by hand, is not
trusted."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

from feeds import buildstate, buildwork, create_app, export
from feeds.config import Settings

from .conftest import make_settings, post_text, write_site
from .service_process import clean_env
from .test_export import BASE, files

CONFIG = "title: Incremental\nurl: https://feeds.example.org\ntimezone: Asia/Shanghai\n"


def site(root: Path, *, liquid: bool = False) -> Path:
    posts = {
        f"_posts/2022-01-{1 + i:02d}-post-{i}.md": post_text(
            f"Post {i}", f"2022-01-{1 + i:02d} 10:00:00 +0800", "[news]" if i % 3 else "[life]",
            "[python]" if i % 2 else "[红网新闻, rare]", body=f"Body of post {i}.")
        for i in range(26)  # past a feed page (10) and an HTML page (20)
    }
    if liquid:  # a body whose Liquid sees the whole site: any post's edit renders it again
        posts["_posts/2022-02-01-linker.md"] = post_text(
            "Linker", "2022-02-01 10:00:00 +0800", "[news]", "[liquid]",
            body="See [the target]({% post_url 2022-01-05-post-4 %}).")
    return write_site(root, posts, CONFIG)


def fresh(settings: Settings, tmp_path: Path) -> dict[str, bytes]:
    out = tmp_path / "fresh"
    shutil.rmtree(out, ignore_errors=True)
    result = export.run(settings, str(out))
    assert result.failed == 0 and result.kept == 0, result.summary()
    return files(out)


def again(settings: Settings, out: Path, tmp_path: Path) -> export.BuildResult:
    """An incremental build of ``out``, which must be a fresh build's files exactly."""
    result = export.run(settings, str(out))
    assert result.failed == 0, result.summary()
    assert files(out) == fresh(settings, tmp_path)
    return result


def rendered(result: export.BuildResult) -> int:
    return result.files - result.kept


def showing(settings: Settings, source: str) -> set[str]:
    """The URLs that show a post, and those made every time."""
    app = create_app(settings, watch=False)
    try:
        return {url for url, shown in buildwork.urls(app).items() if shown.what == "other"
                or any(p is not None and p.source == source for p in shown.posts)}
    finally:
        app.extensions["feeds"].stop()


def test_an_incremental_build_is_a_fresh_one_and_renders_only_what_changed(
        tmp_path: Path) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    first = export.run(settings, str(out))
    assert first.kept == 0 and first.failed == 0
    total = first.files

    # Nothing changed: nothing but the few files made every time (OPML, statics).
    same = again(settings, out, tmp_path)
    assert same.written == 0 and rendered(same) <= 6, same.summary()

    # An edit to one post's body: its page and the feeds and pages it is on, only.
    before = files(out)
    (root / "_posts/2022-01-11-post-10.md").write_text(post_text(
        "Post 10", "2022-01-11 10:00:00 +0800", "[news]", "[红网新闻, rare]",
        body="An edited body."), "utf-8")
    edited = again(settings, out, tmp_path)
    changed = {rel for rel, data in files(out).items() if before.get(rel) != data}
    assert any(rel.endswith("post-10.html") for rel in changed)
    assert edited.written == len(changed)
    # Rendered: exactly the URLs that show it (as an entry, in a list, as a neighbour;
    # some of them unchanged, as a list shows no body) and those made every time.
    assert rendered(edited) == len(showing(settings, "_posts/2022-01-11-post-10.md"))
    assert rendered(edited) < total // 2

    # A new post, then a post deleted.
    (root / "_posts/2022-01-20-added.md").write_text(post_text(
        "Added", "2022-01-20 12:00:00 +0800", "[life]", "[new-tag]"), "utf-8")
    added = again(settings, out, tmp_path)
    assert added.kept > 0
    (root / "_posts/2022-01-03-post-2.md").unlink()
    removed = again(settings, out, tmp_path)
    assert removed.removed > 0 and removed.kept > 0

    # A setting (the site's title is on every page and feed): everything again.
    (root / "_config.yml").write_text(CONFIG.replace("Incremental", "Renamed"), "utf-8")
    renamed = again(make_settings(root, base_url=BASE), out, tmp_path)
    assert renamed.kept == 0 and renamed.written == renamed.files - 2  # the CSS, the XSLT


def test_an_edit_that_changes_another_posts_liquid_renders_that_post_again(
        tmp_path: Path) -> None:
    root = site(tmp_path / "site", liquid=True)
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(settings, str(out))
    again(settings, out, tmp_path)  # the state now knows the linker's body has Liquid
    # The target moves: the linker's file is the same, its body's link is not.
    (root / "_posts/2022-01-05-post-4.md").write_text(post_text(
        "Post 4", "2022-01-05 10:00:00 +0800", "[life]", "[python]",
        body="Body of post 4.", extra="permalink: /moved/post-4/\n"), "utf-8")
    moved = again(settings, out, tmp_path)
    linker = [rel for rel in files(out) if rel.endswith("linker.html")]
    assert len(linker) == 1 and b"/moved/post-4/" in (out / linker[0]).read_bytes()
    assert moved.kept > 0


def test_a_foreign_edited_or_truncated_state_is_not_trusted(tmp_path: Path) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(settings, str(out))
    state = out / buildstate.STATE_FILE
    good = state.read_bytes()
    assert buildstate.load(out) is not None

    # Edited: a group's fingerprint changed (as if for content it was not made from).
    check, _, body = good.partition(b"\n")
    header, first, rest = body.split(b"\n", 2)
    state.write_bytes(b"\n".join((check, header, b"0" * 32 + first[32:], rest)))
    assert buildstate.load(out) is None
    (out / "feed.atom").write_bytes(b"stale")  # what a trusted edited state would keep
    result = again(settings, out, tmp_path)
    assert result.kept == 0

    # Truncated, or not a state at all.
    for data in (good[: len(good) // 2], b"", b"\n{}", "\u00e9".encode("latin-1")):
        state.write_bytes(data)
        assert buildstate.load(out) is None
    assert again(settings, out, tmp_path).kept == 0

    # Foreign: whole and well made, but for another site.
    other = tmp_path / "other"
    export.run(make_settings(write_site(tmp_path / "other-site", {
        "_posts/2022-01-01-x.md": post_text("X", "2022-01-01")}), base_url=BASE), str(other))
    shutil.copy(other / buildstate.STATE_FILE, state)
    assert again(settings, out, tmp_path).kept == 0


def test_a_file_changed_or_removed_by_hand_is_made_again(tmp_path: Path) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(settings, str(out))
    (out / "feed.atom").write_bytes(b"edited by hand")
    (out / "tag/python.rss").unlink()
    result = again(settings, out, tmp_path)
    assert result.written == 2 and result.kept > 0


def build_cli(content: Path, out: Path, workers: int) -> str:
    """``feeds build`` as a command (one thread: it may fork); its stderr."""
    env = {**clean_env(), "FEEDS_BUILD_WORKERS": str(workers)}
    done = subprocess.run([sys.executable, "-m", "feeds", "build", str(content), str(out),
                           "--base-url", BASE], capture_output=True, text=True, timeout=300,
                          env=env, cwd=Path(__file__).parent.parent)
    assert done.returncode == 0, done.stderr
    return done.stderr


def test_a_build_in_two_processes_is_the_build_in_one(tmp_path: Path) -> None:
    posts = {
        f"_posts/2021-{1 + i // 28:02d}-{1 + i % 28:02d}-p{i}.md": post_text(
            f"P {i}", f"2021-{1 + i // 28:02d}-{1 + i % 28:02d} 10:00:00 +0800",
            f"[c{i % 4}]", f"[t{i % 7}, t{i % 11}]", body=f"Body {i}, *emphasis*.")
        for i in range(300)  # enough URLs (past 2 x buildwork.MIN_SPLIT) to fork
    }
    root = write_site(tmp_path / "site", posts, CONFIG)
    one, two = tmp_path / "one", tmp_path / "two"
    assert "in 1 processes" in build_cli(root, one, 1)
    assert "in 2 processes" in build_cli(root, two, 2)
    assert files(two) == files(one)
    # What each process made is in the state: nothing is rendered again.
    made, alone = buildstate.load(two), buildstate.load(one)
    assert made is not None and alone is not None and set(made.made()) == set(alone.made())
    again = build_cli(root, two, 1).strip().splitlines()[-1]  # the processes change no byte
    keepable = sum(1 for m in made.made().values() if m.fingerprint)  # (not the OPML, CSS)
    assert again.endswith(f"{keepable} unchanged, not rendered again"), again
    # An edit, built again in two processes, is a fresh build.
    (root / "_posts/2021-01-05-p4.md").write_text(post_text(
        "P 4 edited", "2021-01-05 10:00:00 +0800", "[c0]", "[t4]"), "utf-8")
    build_cli(root, two, 2)
    fresh = tmp_path / "fresh"
    build_cli(root, fresh, 1)
    assert files(two) == files(fresh)


def test_a_folder_of_out_that_is_a_symlink_out_of_it_is_never_written_through(
        tmp_path: Path) -> None:
    root = site(tmp_path / "site")
    out, elsewhere = tmp_path / "out", tmp_path / "elsewhere"
    elsewhere.mkdir()
    out.mkdir()
    (out / "tag").symlink_to(elsewhere, target_is_directory=True)
    result = export.run(make_settings(root, base_url=BASE), str(out))
    assert result.failed > 0 and list(elsewhere.iterdir()) == []
    assert (out / "feed.atom").is_file()


def test_a_killed_runs_temporary_files_are_swept_by_the_next_incremental_run(
        tmp_path: Path) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(settings, str(out))
    assert not (out / buildwork.RUNNING).exists()
    # What a run killed part way leaves: its mark that it started, a file half written.
    (out / buildwork.RUNNING).touch()
    (out / ".feed.atom.tmp").write_bytes(b"<half")
    (out / "tag" / ".python.rss.tmp").write_bytes(b"<half")
    result = again(settings, out, tmp_path)
    assert result.kept > 0
    assert not list(out.rglob("*.tmp")) and not (out / buildwork.RUNNING).exists()


def test_an_incremental_build_from_the_persisted_index_is_a_fresh_build_without_it(
        tmp_path: Path) -> None:
    root = site(tmp_path / "site", liquid=True)
    indexed = make_settings(root, base_url=BASE, index_dir=str(tmp_path / "index"))
    plain = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(indexed, str(out))
    (root / "_posts/2022-01-11-post-10.md").write_text(post_text(
        "Post 10", "2022-01-11 10:00:00 +0800", "[life]", "[红网新闻, moved]",
        body="An edited body."), "utf-8")
    (root / "_posts/2022-01-03-post-2.md").unlink()
    result = export.run(indexed, str(out))
    assert result.failed == 0 and result.kept > 0, result.summary()
    assert files(out) == fresh(plain, tmp_path)
    # And the other way round: the state does not depend on whether there is an index.
    (root / "_posts/2022-01-12-post-11.md").write_text(post_text(
        "Post 11", "2022-01-12 10:00:00 +0800", "[news]", "[python]",
        body="Edited again."), "utf-8")
    result = export.run(plain, str(out))
    assert result.failed == 0 and result.kept > 0, result.summary()
    assert files(out) == fresh(indexed, tmp_path)


def test_a_state_naming_a_file_outside_out_keeps_nothing_there(tmp_path: Path) -> None:
    root = site(tmp_path / "site")
    settings = make_settings(root, base_url=BASE)
    out = tmp_path / "out"
    export.run(settings, str(out))
    outside = tmp_path / "outside.atom"
    outside.write_bytes(b"not the build's")
    state = buildstate.load(out)
    assert state is not None
    # Whole and well made (its digest is no secret), but the feed's file is elsewhere.
    found = outside.stat()
    key, kept = next((k, g) for k, g in state.groups.items() if "/feed.atom" in g.made())
    made = kept.made()
    made["/feed.atom"] = buildstate.Made(
        made["/feed.atom"].fingerprint, found.st_size, found.st_mtime_ns, found.st_ino,
        "../outside.atom")
    state.groups[key] = buildstate.Kept.of(kept.fingerprint, made)
    (out / buildstate.STATE_FILE).write_bytes(state.to_bytes())
    result = again(settings, out, tmp_path)
    assert result.kept > 0
    manifest = (out / export.MANIFEST).read_text("utf-8").splitlines()
    assert "feed.atom" in manifest and not any(".." in rel for rel in manifest)
    assert outside.read_bytes() == b"not the build's"


def _state(groups: int) -> buildstate.BuildState:
    made = [{f"/tag/标签{n}.atom?page={k}": buildstate.Made(
        f"{n:032x}" if k else "", 1000 + n, 1_700_000_000_000_000_000 + n, 4000 + n,
        f"tag/标签{n}.atom?page={k}") for k in range(n % 3)} for n in range(groups)]
    return buildstate.BuildState("ctx \"quoted\"", "v1", {"_posts/a.md": "d1"}, {
        f"tag:标签\t{n}\n#0": buildstate.Kept.of(f"{n:032x}" if n % 2 else buildstate.NEVER,
                                             made[n], total=n * 7) for n in range(groups)},
        [f"_posts/文{n}\n.md\0(1, 2, {n})" for n in range(groups)])


def test_the_state_is_read_back_as_written_and_a_group_at_a_time(tmp_path: Path) -> None:
    """A state is its context's line, its posts' keys, then a group a line, each line its
    fingerprint, count, list's size and key, then its URLs as JSON (read only when a build
    looks at the group); read back, it is the state written; a state whose bytes did not
    change leaves the file as it was."""
    for groups in (0, 1, 3, 40):
        state = _state(groups)
        out = tmp_path / f"out{groups}"
        out.mkdir()
        path = out / buildstate.STATE_FILE
        buildstate.write(state, path)
        check, _, body = path.read_bytes().partition(b"\n")
        assert check.decode() == hashlib.sha256(body).hexdigest()[:32]
        header, keys, *lines, last = body.split(b"\n")
        assert last == b"" and json.loads(header)["format"] == buildstate.FORMAT
        assert json.loads(keys) == state.keys and len(lines) == groups
        for line, (key, kept) in zip(lines, state.groups.items(), strict=True):
            head, _, records = line.partition(b"\t")
            fingerprint, count, total, name = head.decode().split(" ", 3)
            assert (fingerprint, int(count), int(total), json.loads(name)) == (
                kept.fingerprint, len(kept.made()), kept.total, key)
            assert {url: buildstate.Made(*m) for url, *m in json.loads(records)} == kept.made()
        back = buildstate.load(out)
        assert back == state and back.made() == state.made()
        before = path.stat()
        buildstate.write(_state(groups), path)
        after = path.stat()
        assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
        assert sorted(p.name for p in out.iterdir()) == [buildstate.STATE_FILE]
