"""What a feed reader may act on: every URL from front matter is http(s) (or relative,
made absolute) before it goes into a feed, and an author's texts carry no character XML
cannot hold. Readers render RSS descriptions as HTML and follow author and image links."""

from __future__ import annotations

from urllib.parse import urljoin, urlsplit

from .model import Author
from .parse import clean_text


def safe_url(url: str | None, base: str) -> str | None:
    """``url`` made absolute against ``base`` when it is http(s) or relative; else None
    (javascript:, data:, and every other scheme a reader might act on)."""
    if not url:
        return None
    try:
        absolute = urljoin(base, url.strip())
        scheme = urlsplit(absolute).scheme.lower()
    except ValueError:  # an invalid IPv6 literal and the like
        return None
    return absolute if scheme in ("http", "https") else None


def safe_author(author: Author | None, base: str) -> Author | None:
    """The author without XML-illegal characters, with a URI only if http(s)."""
    if author is None:
        return None
    return Author(name=clean_text(author.name),
                  email=clean_text(author.email) if author.email else None,
                  uri=safe_url(author.uri, base))
