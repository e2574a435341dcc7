"""The HTTP half of tests/test_disk_reader.py: a post whose file became a FIFO after it
was indexed still has its page, served from the index without the body (and a warning
logged), at once rather than never."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from flask.testing import FlaskClient

from .test_disk_reader import within

POST = "_posts/2022-02-01-third.md"
PAGE = "/news/2022/02/01/third.html"


def test_the_page_of_a_post_that_became_a_fifo_still_answers(
        client: FlaskClient, site_dir: Path, caplog: pytest.LogCaptureFixture) -> None:
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
