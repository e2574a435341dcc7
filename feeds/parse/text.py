"""What every step of reading a post shares: its two outcomes besides a post, and the
characters XML 1.0 cannot carry."""

from __future__ import annotations

import re

# Characters XML 1.0 cannot carry; they are dropped everywhere, before anything else.
XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ufffe\uffff\ud800-\udfff]")


class PostError(Exception):
    """A file that cannot be a post. ``str()`` is 'path: what is wrong'."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class SkipFile(Exception):
    """Not an error: the file is deliberately not a post (``published: false``)."""


def clean_text(value: str) -> str:
    return XML_ILLEGAL.sub("", value)
