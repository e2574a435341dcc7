"""The real Jekyll as a test oracle: build a fixture site with Debian's ``jekyll`` and
``ruby-jekyll-feed`` (scripts/test.sh installs both), then read the feeds it wrote and ours
for the same folder into the same plain records, so a test compares them field by field.

    site = jekyll_site(tmp_path, {"_config.yml": "...", "_posts/2021-01-01-a.md": "..."})
    theirs = atom_entries(site.read("feed.xml"))
    ours = atom_entries(client.get("/feed.xml").data)

``build`` caches a build by the bytes of the source tree, so many tests over one fixture
folder pay for one ``jekyll build``.
"""

from __future__ import annotations

import hashlib
import html
import os
import re
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from lxml import etree
from lxml import html as lxml_html

JEKYLL = shutil.which("jekyll")
A = "{http://www.w3.org/2005/Atom}"
MEDIA = "{http://search.yahoo.com/mrss/}"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
BUILD_TIMEOUT = 120
_INDENT = re.compile(r"[ \t]*\n\s*")
_CACHE = Path(os.environ.get("FEEDS_JEKYLL_CACHE", "/tmp/feeds-jekyll-builds"))

needs_jekyll = pytest.mark.skipif(JEKYLL is None, reason="jekyll is not installed "
                                  "(scripts/test.sh installs Debian's jekyll)")


@dataclass(frozen=True)
class Built:
    """A site as the real Jekyll wrote it."""

    source: Path
    out: Path
    log: str

    def read(self, rel: str) -> bytes:
        return (self.out / rel).read_bytes()

    def exists(self, rel: str) -> bool:
        return (self.out / rel).is_file()


def write_tree(root: Path, files: Mapping[str, str | bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(data, bytes):
            path.write_bytes(data)
        else:
            path.write_text(data, encoding="utf-8")
    return root


def _tree_hash(src: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in src.rglob("*") if p.is_file()):
        digest.update(str(path.relative_to(src)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:20]


def build(src: Path) -> Built:
    """``jekyll build`` of ``src`` (nothing is written inside it), cached by its bytes.
    Skips the test when jekyll is not installed; fails it with Jekyll's log when the
    build fails."""
    if JEKYLL is None:
        pytest.skip("jekyll is not installed (scripts/test.sh installs Debian's jekyll)")
    key = _tree_hash(src)
    out = _CACHE / key / "_site"
    log_path = _CACHE / key / "build.log"
    if not out.is_dir():
        work = _CACHE / key / "src"
        shutil.rmtree(_CACHE / key, ignore_errors=True)
        shutil.copytree(src, work, symlinks=True)
        env = {**os.environ, "LC_ALL": "C.UTF-8", "LANG": "C.UTF-8",
               "JEKYLL_ENV": "production"}
        env.pop("BUNDLE_GEMFILE", None)
        done = subprocess.run(
            [JEKYLL, "build", "--disable-disk-cache", "--source", str(work),
             "--destination", str(out) + ".tmp"],
            capture_output=True, text=True, env=env, timeout=BUILD_TIMEOUT, check=False)
        log_path.write_text(done.stdout + done.stderr, encoding="utf-8")
        if done.returncode != 0:
            shutil.rmtree(str(out) + ".tmp", ignore_errors=True)
            pytest.fail(f"jekyll build of {src} failed:\n{done.stdout}{done.stderr}")
        os.replace(str(out) + ".tmp", out)
    return Built(src, out, log_path.read_text(encoding="utf-8"))


def jekyll_site(root: Path, files: Mapping[str, str | bytes]) -> Built:
    """Write ``files`` under ``root`` and build it with Jekyll."""
    return build(write_tree(root, files))


def normalise_html(text: str | None) -> str:
    """HTML as a canonical string: parsed, whitespace between blocks dropped, attributes
    sorted, so two renderings of the same markup compare equal."""
    if not text or not text.strip():
        return ""
    fragments = lxml_html.fragments_fromstring(text)
    parts = []
    for fragment in fragments:
        if isinstance(fragment, str):
            if fragment.strip():
                parts.append(html.escape(fragment.strip(), quote=False))
            continue
        for element in fragment.iter():
            if isinstance(element.tag, str):
                if "style" in element.attrib:  # 'a: b; c: d', whatever the spacing
                    element.attrib["style"] = "; ".join(
                        ": ".join(p.strip() for p in rule.split(":", 1))
                        for rule in element.attrib["style"].split(";") if rule.strip())
                items = sorted(element.attrib.items())
                element.attrib.clear()
                element.attrib.update(items)
            if element.text is not None and not element.text.strip():
                element.text = None
            if element.tail is not None and not element.tail.strip():
                element.tail = None
            # Indentation after a line break is not content (outside <pre>).
            in_pre = any(a.tag == "pre" for a in element.iterancestors())
            if element.text and element.tag != "pre" and not in_pre:
                element.text = _INDENT.sub("\n", element.text)
            if element.tail and not in_pre:
                element.tail = _INDENT.sub("\n", element.tail)
        parts.append(lxml_html.tostring(fragment, encoding="unicode").strip())
    return "".join(parts)


def _when(text: str | None) -> datetime | None:
    return datetime.fromisoformat(text) if text else None


def atom_entries(data: bytes) -> list[dict[str, Any]]:
    """Every entry of an Atom feed as a plain record: instants as aware datetimes,
    content as normalised HTML, titles with the entities of the text resolved once."""
    parser = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
    root = etree.fromstring(data, parser)
    assert root.tag == f"{A}feed"
    out = []
    for entry in root.findall(f"{A}entry"):
        author = entry.find(f"{A}author")
        out.append({
            "id": entry.findtext(f"{A}id"),
            "link": [link.get("href") for link in entry.findall(f"{A}link")
                     if link.get("rel", "alternate") == "alternate"],
            "title": entry.findtext(f"{A}title"),
            "published": _when(entry.findtext(f"{A}published")),
            "updated": _when(entry.findtext(f"{A}updated")),
            "author": None if author is None else {
                "name": author.findtext(f"{A}name"), "email": author.findtext(f"{A}email"),
                "uri": author.findtext(f"{A}uri")},
            "categories": [c.get("term") for c in entry.findall(f"{A}category")],
            "summary": entry.findtext(f"{A}summary"),
            "content": normalise_html(entry.findtext(f"{A}content")),
            "media": sorted((m.tag.removeprefix(MEDIA), m.get("url") or "")
                            for m in entry if isinstance(m.tag, str)
                            and m.tag.startswith(MEDIA)),
            "lang": entry.get(XML_LANG),
        })
    return out
