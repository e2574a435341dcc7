"""Hugo as a reference: the benchmark corpus as a Hugo site, built by Debian's ``hugo``.

The site Hugo builds does the work ``feeds build`` does, no less: a page per post, the
home page, a page and an RSS feed for the site, for every category and for every tag,
each feed carrying the newest ``posts_limit`` entries with their whole content (Hugo's
own RSS template carries only a summary, so the site brings its own, as jekyll-feed's
feeds carry whole bodies). The posts are the corpus's files as they are: Hugo reads the
same YAML front matter (title, date with its offset, categories, tags), leaves out the
future-dated ones as Jekyll does, and renders the Markdown with goldmark, raw HTML kept.
Drafts (``_drafts/``) are not copied: neither Jekyll nor the service publishes them.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from . import procs

HUGO_TIMEOUT = 900.0

CONFIG = """\
baseURL = "http://127.0.0.1:4000/"
title = {title}
languageCode = "zh-cn"
timeZone = "Asia/Shanghai"
disableKinds = ["sitemap", "robotsTXT", "404"]
enableRobotsTXT = false
[taxonomies]
  category = "categories"
  tag = "tags"
[outputs]
  home = ["HTML", "RSS"]
  section = ["HTML"]
  taxonomy = ["HTML"]
  term = ["HTML", "RSS"]
[services.rss]
  limit = {limit}
[markup.goldmark.renderer]
  unsafe = true
"""

SINGLE = """\
<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>{{ .Title }}</title>
</head><body><article><h1>{{ .Title }}</h1>
<time datetime="{{ .Date.Format "2006-01-02T15:04:05-07:00" }}">
{{- .Date.Format "2006-01-02" }}</time>
<p>{{ range .Params.categories -}}
<a href="{{ "categories/" | relURL }}{{ . | urlize }}/">{{ . }}</a> {{ end }}</p>
{{ .Content }}</article></body></html>
"""

LIST = """\
<!doctype html><html lang="zh"><head><meta charset="utf-8"><title>{{ .Title }}</title>
</head><body><h1>{{ .Title }}</h1><ul>
{{ range (.Paginate .RegularPagesRecursive).Pages -}}
<li><a href="{{ .RelPermalink }}">{{ .Title }}</a>
<time>{{ .Date.Format "2006-01-02" }}</time></li>
{{ end }}</ul>{{ template "_internal/pagination.html" . }}</body></html>
"""

RSS = """\
{{- $pages := .RegularPagesRecursive -}}
{{- if .IsHome }}{{ $pages = where site.RegularPages "Type" "posts" }}{{ end -}}
{{- $limit := site.Config.Services.RSS.Limit -}}
{{- printf "<?xml version=\\"1.0\\" encoding=\\"utf-8\\"?>" | safeHTML }}
<rss version="2.0" xmlns:atom="http://www.w3.org/2005/Atom"><channel>
<title>{{ .Title }} · {{ site.Title }}</title><link>{{ .Permalink }}</link>
<description>{{ site.Title }}</description>
{{ with .OutputFormats.Get "RSS" -}}
<atom:link href="{{ .Permalink }}" rel="self" type="application/rss+xml"/>{{ end }}
{{ range first $limit $pages }}<item><title>{{ .Title }}</title><link>{{ .Permalink }}</link>
<pubDate>{{ .Date.Format "Mon, 02 Jan 2006 15:04:05 -0700" | safeHTML }}</pubDate>
<guid>{{ .Permalink }}</guid>{{ range .Params.categories }}<category>{{ . }}</category>{{ end }}
<description>{{ .Content | html }}</description></item>
{{ end }}</channel></rss>
"""


@dataclass
class HugoBuild:
    seconds: float
    files: int
    status: str  # ok | timeout | failed (N) | not installed


def available() -> str | None:
    return shutil.which("hugo")


def make_site(corpus_root: Path, dest: Path, title: str, posts_limit: int) -> int:
    """Write the Hugo site for ``corpus_root`` into ``dest``; the number of posts copied.
    Posts are hard-linked where the file system allows (a copy otherwise): Hugo reads
    them as they are."""
    shutil.rmtree(dest, ignore_errors=True)
    posts = dest / "content" / "posts"
    posts.mkdir(parents=True)
    (dest / "config.toml").write_text(
        CONFIG.format(title=json.dumps(title, ensure_ascii=False), limit=posts_limit),
        encoding="utf-8")
    layouts = dest / "layouts" / "_default"
    layouts.mkdir(parents=True)
    (layouts / "single.html").write_text(SINGLE, encoding="utf-8")
    (layouts / "list.html").write_text(LIST, encoding="utf-8")
    (layouts / "rss.xml").write_text(RSS, encoding="utf-8")
    copied = 0
    for folder, dirs, files in os.walk(corpus_root):
        dirs[:] = sorted(d for d in dirs if not d.startswith((".", "_drafts", "_site")))
        if os.path.basename(folder) != "_posts":
            continue
        # Folders under _posts/ are Jekyll's; one flat folder here, the name kept unique
        # by the corpus's numbered file names.
        for name in files:
            if not name.endswith((".md", ".markdown", ".html")):
                continue
            src = os.path.join(folder, name)
            target = posts / name
            try:
                os.link(src, target)
            except OSError:
                shutil.copyfile(src, target)
            copied += 1
    return copied


def build(site: Path, out: Path) -> HugoBuild:
    """``hugo`` of ``site`` into ``out`` (emptied first), timed; the files it wrote."""
    binary = available()
    if binary is None:
        return HugoBuild(0.0, 0, "not installed")
    shutil.rmtree(out, ignore_errors=True)
    argv = [binary, "--quiet", "--source", str(site), "--destination", str(out),
            "--cacheDir", str(site / ".hugo-cache")]
    env = dict(os.environ, LANG="C.UTF-8", LC_ALL="C.UTF-8")
    status, output, secs = procs.run_bounded(argv, timeout=HUGO_TIMEOUT, env=env)
    if status is None:
        return HugoBuild(secs, 0, "timeout")
    if status != 0:
        tail = " | ".join(output.strip().splitlines()[-3:])
        return HugoBuild(secs, 0, f"failed ({status}): {tail[:300]}")
    files = sum(len(f) for _, _, f in os.walk(out))
    return HugoBuild(secs, files, "ok")


def version() -> str:
    binary = available()
    if binary is None:
        return "not installed"
    status, out, _ = procs.run_bounded([binary, "version"], timeout=60)
    text = out.strip().split()
    return text[1] if status == 0 and len(text) > 1 else "unknown"
