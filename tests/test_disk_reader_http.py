"""The HTTP half of tests/test_disk_reader.py: a post whose file became a FIFO after it
was indexed still has its page, served from the index without the body (and a warning
logged), at once rather than never."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from flask import Flask

from .test_disk_reader import within

POST = "_posts/2022-02-01-third.md"
PAGE = "/news/2022/02/01/third.html"


def test_the_page_of_a_post_that_became_a_fifo_still_answers(
        make_app: Callable[..., Flask], site_dir: Path,
        caplog: pytest.LogCaptureFixture) -> None:
    # No file kept as it was indexed (source_cache_bytes): the body is read from disk.
    client = make_app(site_dir, source_cache_bytes=1).test_client()
    (site_dir / POST).unlink()
    os.mkfifo(site_dir / POST)
    with caplog.at_level(logging.WARNING):
        response = within(30, lambda: client.get(PAGE))
    assert response.status_code == 200
    assert "Third &amp; &lt;last&gt;" in response.get_data(as_text=True)
    assert [r for r in caplog.records
            if r.levelno == logging.WARNING and POST in r.getMessage()]
    # The feeds that hold it answer too.
    feed = within(30, lambda: client.get("/feed.atom"))
    assert feed.status_code == 200 and b"Third" in feed.data


# --- over a real waitress instance (issue 15, finding 9) ---------------------------------

XSLT = ('<?xml version="1.0"?><xsl:stylesheet version="1.0" '
        'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>')


def test_a_symlinked_post_whose_target_became_a_fifo_blocks_no_thread(
        tmp_path: Path) -> None:
    """Both worker threads asked for the post at once, then /healthz, the feed and the
    site's XSLT (a FIFO too): every answer comes, none waits for a writer that never
    comes. A plain open() of either file would hang the threads for good."""
    import requests

    from .conftest import post_text, write_site
    from .service_process import Services

    root = write_site(tmp_path / "site", {
        "drafts/real.md": post_text("Linked", "2022-02-01"),
        "_posts/2022-01-01-first.md": post_text("First", "2022-01-01")})
    (root / "_posts" / "2022-02-01-linked.md").symlink_to(root / "drafts" / "real.md")
    (root / "feed.xslt.xml").write_text(XSLT, "utf-8")
    services = Services(tmp_path)
    try:
        # No file kept as it was indexed: the body's read goes to the disk.
        svc = services.start(root, "--no-watch", "--source-cache-bytes", "1")
        page = "/news/2022/02/01/linked.html"  # not asked for yet: its body is unread
        assert requests.get(svc.url + "/feed.xslt.xml", timeout=10).status_code == 200
        (root / "drafts" / "real.md").unlink()
        os.mkfifo(root / "drafts" / "real.md")
        (root / "feed.xslt.xml").unlink()
        os.mkfifo(root / "feed.xslt.xml")

        def get(path: str) -> int:
            return requests.get(svc.url + path, timeout=15).status_code

        with ThreadPoolExecutor(4) as pool:
            statuses = list(pool.map(get, [page, page, "/healthz", "/feed.atom"]))
        assert statuses == [200, 200, 200, 200]
        assert get("/feed.xslt.xml") == 404  # a FIFO is not served, and not waited on
        assert get("/healthz") == 200
        assert "_posts/2022-02-01-linked.md" in svc.log()  # the read failed, and said so
    finally:
        services.close()
