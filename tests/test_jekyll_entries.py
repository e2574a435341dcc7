"""Which files are posts, proven against the real Jekyll: ``exclude`` and ``include``
(with Jekyll's default excludes and its prefix and glob matching), the folders it does
not enter on the way to a ``_posts`` folder, the paths it leaves out inside one, and
the names without a date that it reads as no post. One post per case, named for it."""

from __future__ import annotations

from collections.abc import Callable

from .jekyll import needs_jekyll
from .test_jekyll_feed_config import Pair, pair, post

__all__ = ["pair"]  # the fixture, shared

pytestmark = needs_jekyll

CONFIG = """url: https://example.org
plugins: [jekyll-feed]
timezone: UTC
exclude: [archive, "*.txt", "old_posts/", _posts/skip, _posts/2021-01-09-excluded-by-name.md]
include: [_posts/_not-a-name-include-sees]
"""


def _case(title: str, day: int) -> str:
    return post(title, f"2021-01-{day:02d} 10:00")


POSTS = {
    "_posts/2021-01-01-plain.md": _case("Plain", 1),
    # Inside _posts, only the first folder's name (and the file's) may not be special.
    "_posts/sub/_nested/2021-01-02-underscore-folder-deeper.md": _case(
        "Underscore folder deeper", 2),
    "_posts/_under/2021-01-03-underscore-folder-first.md": _case(
        "Underscore folder first", 3),
    "_posts/#hash/2021-01-04-hash-folder.md": _case("Hash folder", 4),
    # vendor/ itself is read; Jekyll's default excludes name vendor/bundle/ and the like.
    "vendor/_posts/2021-01-05-vendor-folder.md": _case("Vendor folder", 5),
    "vendor/bundle/_posts/2021-01-06-vendor-bundle.md": _case("Vendor bundle", 6),
    "node_modules_x/_posts/2021-01-07-prefix-of-a-default.md": _case(
        "Prefix of a default exclude", 7),
    "archive/_posts/2021-01-08-excluded-folder.md": _case("Excluded folder", 8),
    "archived/_posts/2021-01-09-excluded-by-prefix.md": _case("Excluded by prefix", 9),
    "_posts/2021-01-10-excluded-by-glob.txt": _case("Excluded by glob", 10),
    "_posts/2021-01-09-excluded-by-name.md": _case("Excluded by name", 11),
    "_posts/skipper/2021-01-12-prefix-below-posts.md": _case("Prefix below posts", 12),
    "old_posts/_posts/2021-01-13-folder-pattern.md": _case("Folder pattern", 13),
    "_posts/_not-a-name-include-sees/2021-01-14-include-by-site-path.md": _case(
        "Include by site path", 14),
    "_posts/about.md": _case("Undated name", 15),
    "_posts/sub/notes.md": _case("Undated name in a folder", 16),
}


def test_the_posts_are_the_files_jekyll_reads(pair: Callable[..., Pair]) -> None:
    site = pair(POSTS, CONFIG)
    assert sorted(e["title"] for e in site.same("feed.xml")) == [
        "Plain", "Underscore folder deeper", "Vendor folder"]


def test_without_exclude_jekylls_defaults_still_apply(pair: Callable[..., Pair]) -> None:
    site = pair(POSTS, CONFIG.split("exclude:")[0])
    assert sorted(e["title"] for e in site.same("feed.xml")) == [
        "Excluded by glob", "Excluded by name", "Excluded by prefix", "Excluded folder",
        "Folder pattern", "Plain", "Prefix below posts", "Underscore folder deeper",
        "Vendor folder"]


def test_a_name_is_read_as_rubys_pattern_reads_it(pair: Callable[..., Pair]) -> None:
    """Jekyll's date pattern, in Ruby: its title part may hold a newline, and only ASCII
    digits make a date. Ids and links compared with Jekyll's by same()."""
    site = pair({
        "_posts/2021-02-01-line\nbreak.md": post("Newline in the name", "2021-02-01 10:00"),
        "_posts/٢٠٢١-02-02-arabic-digits.md": post("Arabic digits", "2021-02-02 10:00"),
        "_posts/2021-02-03-plain.md": post("Plain", "2021-02-03 10:00"),
    }, CONFIG)
    assert sorted(e["title"] for e in site.same("feed.xml")) == [
        "Newline in the name", "Plain"]
