"""``feeds check DIR`` as a user runs it (``python3 -m feeds check DIR`` in a child
process): one ``path: reason`` line per problem on stdout, exit status 1 when a post is
rejected and 0 otherwise; and ``python app.py --base-url`` on a real port."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from lxml import etree

from .conftest import ROOT, post_text, write_site
from .service_process import Services, clean_env

A = "{http://www.w3.org/2005/Atom}"


def run_check(folder: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "feeds", "check", str(folder)],
                          capture_output=True, text=True, timeout=300, cwd=ROOT,
                          env=clean_env())


def problem_lines(stdout: str) -> dict[str, str]:
    """stdout -> {path: reason}; every line must be 'path: reason'."""
    found: dict[str, str] = {}
    for line in stdout.splitlines():
        path, sep, reason = line.partition(": ")
        assert sep and path and reason, f"not a 'path: reason' line: {line!r}"
        assert path not in found, f"two lines for {path}"
        found[path] = reason
    return found


def test_check_lists_each_problem_and_exits_1_when_a_post_is_rejected(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {
        "_posts/2021-01-01-good.md": post_text("Good", "2021-01-01"),
        "_posts/2021-01-02-bad-yaml.md": "---\ntitle: [unclosed\n---\nBody.\n",
        "_posts/2021-01-03-bad-date.md": "---\ntitle: t\ndate: next tuesday\n---\nBody.\n",
        "_posts/2021-01-04-no-front-matter.md": "Just text.\n",
        "_posts/2021-01-05-no-title.md": "---\ndate: 2021-01-05\n---\nBody.\n",
        "_posts/2021-01-06-unpublished.md": "---\ntitle: t\npublished: false\n---\nx\n",
        "_drafts/2021-01-07-broken-draft.md": "---\ntitle: [\n---\n",
        "a/_posts/2021-01-08-bad-author.md": "---\ntitle: t\nauthor: {email: x@y}\n---\n",
    })
    result = run_check(root)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = problem_lines(result.stdout)
    assert set(problems) == {
        "_posts/2021-01-02-bad-yaml.md", "_posts/2021-01-03-bad-date.md",
        "_posts/2021-01-04-no-front-matter.md", "_posts/2021-01-05-no-title.md",
        "a/_posts/2021-01-08-bad-author.md", "_posts/2021-01-06-unpublished.md",
    }
    assert problems["_posts/2021-01-06-unpublished.md"] == "skipped: published: false"
    assert "YAML" in problems["_posts/2021-01-02-bad-yaml.md"]
    assert "date" in problems["_posts/2021-01-03-bad-date.md"]
    # Jekyll publishes a _posts file without front matter; it has no title, though.
    assert problems["_posts/2021-01-04-no-front-matter.md"].startswith("warning: no title")
    # An author mapping without a name is ignored, with a warning naming the key.
    assert problems["a/_posts/2021-01-08-bad-author.md"].startswith("warning: ")
    assert "'author'" in problems["a/_posts/2021-01-08-bad-author.md"]
    # A post with a mended problem is accepted: its line says it is a warning.
    assert problems["_posts/2021-01-05-no-title.md"].startswith("warning: ")
    for path, reason in problems.items():
        assert (root / path).is_file()
        assert "\n" not in reason


def test_check_exits_0_with_only_warnings_and_prints_nothing_when_clean(
        tmp_path: Path) -> None:
    warned = write_site(tmp_path / "warned", {
        "_posts/2021-01-01-good.md": post_text("Good", "2021-01-01"),
        "_posts/2021-01-05-no-title.md": "---\ndate: 2021-01-05\n---\nBody.\n",
    })
    result = run_check(warned)
    assert result.returncode == 0, result.stdout + result.stderr
    assert list(problem_lines(result.stdout)) == ["_posts/2021-01-05-no-title.md"]

    clean = write_site(tmp_path / "clean", {
        "_posts/2021-01-01-good.md": post_text("Good", "2021-01-01"),
        "README.md": "No front matter, outside _posts: not a post, not a problem.\n",
    })
    result = run_check(clean)
    assert (result.returncode, result.stdout) == (0, ""), result.stderr


def test_check_lists_a_post_whose_permalink_is_taken_and_exits_1(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {
        "_posts/2021-01-01-good.md": post_text("Good", "2021-01-01"),
        "_posts/2021-01-02-feed.md": post_text("Takes the feed", "2021-01-02",
                                               extra="permalink: /feed.atom\n"),
        "_posts/2021-01-03-config.md": post_text("Takes the config", "2021-01-03",
                                                 extra="permalink: /_config.yml\n"),
    })
    result = run_check(root)
    assert result.returncode == 1, result.stdout + result.stderr
    problems = problem_lines(result.stdout)
    assert set(problems) == {"_posts/2021-01-02-feed.md", "_posts/2021-01-03-config.md"}
    assert "/feed.atom" in problems["_posts/2021-01-02-feed.md"]
    assert "_config.yml" in problems["_posts/2021-01-03-config.md"]
    assert "left out" not in result.stderr  # printed once, on stdout
    assert result.stderr.strip().splitlines()[-1].startswith("1 posts, 2 rejected")


def test_check_counts_a_collections_documents_apart_from_posts(tmp_path: Path) -> None:
    root = write_site(tmp_path / "site", {
        "_config.yml": "collections_dir: stuff\ncollections: [notes]\n"
                       "feed:\n  collections: [notes]\n",
        "stuff/_posts/2021-01-01-a.md": post_text("A", "2021-01-01"),
        "stuff/_posts/2021-01-02-b.md": post_text("B", "2021-01-02"),
        "stuff/_notes/one.md": post_text("One", "2021-01-03"),
        "_posts/2021-01-04-outside.md": post_text("Outside collections_dir", "2021-01-04"),
    })
    result = run_check(root)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr.strip().splitlines()[-1].startswith(
        "2 posts, 1 documents, 0 rejected")


@pytest.fixture
def services(tmp_path: Path) -> Iterator[Services]:
    running = Services(tmp_path)
    try:
        yield running
    finally:
        running.close()


def test_app_py_base_url_flag_overrides_the_config(tmp_path: Path, site_dir: Path,
                                                   services: Services) -> None:
    service = services.start(site_dir, "--no-watch", "--base-url",
                             "https://feeds.example.net/mirror")
    response = requests.get(service.url + "/feed.atom", timeout=30)
    assert response.status_code == 200
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    feed = etree.fromstring(response.content, parser)
    assert feed.findtext(f"{A}id") == "https://feeds.example.net/mirror/feed.atom"
    links = [link.get("href") for link in feed.findall(f"{A}link")]
    assert links and all(h.startswith("https://feeds.example.net/mirror/") for h in links)
    # The entries keep the site's url (https://example.org), as jekyll-feed wrote them.
    entry_links = [link.get("href") for link in feed.iter(f"{A}link")
                   if link.getparent().tag == f"{A}entry"]
    assert entry_links and all(h.startswith("https://example.org/") for h in entry_links)
