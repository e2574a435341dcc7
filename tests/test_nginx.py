"""nginx from Debian's packages, configured by the files in deploy/, all on loopback ports:

- deploy/nginx.conf in front of two waitress instances (``python app.py``) reading the
  same content folder: cache hits, ETags and 304s through the cache, one upstream fetch
  for a burst of misses, revalidation, changes arriving, delta requests, instances
  failing under it, and both instances dating the content alike for If-Modified-Since;
- deploy/nginx-static.conf serving a ``feeds build`` folder: every URL as a live
  instance answers it.

Each test renders the deploy file itself, changing only listen port, upstream ports and
cache or root folder, and includes it in a minimal main configuration whose pid, logs and
temp folders are the test's own."""

from __future__ import annotations

import gzip
import json
import os
import re
import shutil
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import feedparser
import pytest
import requests

from feeds import create_app, export

from .conftest import ROOT, LiveServer, make_settings, post_text, write_site
from .service_process import Service, Services, free_port, wait_for
from .test_export import files, url_of

DEPLOY_CONF = ROOT / "deploy" / "nginx.conf"
DEPLOY_STATIC = ROOT / "deploy" / "nginx-static.conf"
SHORT_AGE = 2  # --cache-max-age where expiry must come quickly
LONG_AGE = 600  # where a cached copy must stay fresh however slow the machine is
VIA = "via-nginx"  # User-Agent of requests through nginx; the upstream log shows it
DIRECT = "direct"  # User-Agent of requests straight to an instance


def nginx_binary() -> str:
    found = shutil.which("nginx") or ("/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx")
                                      else None)
    if found is None:
        if os.environ.get("CI"):
            pytest.fail("nginx is missing; scripts/test.sh installs Debian's nginx")
        pytest.skip("nginx is not installed (scripts/test.sh installs it)")
    return found


def tag_path(name: str, ext: str) -> str:
    from feeds.site import name_to_segment

    return f"/tag/{name_to_segment(name)}.{ext}"


def content(root: Path) -> Path:
    return write_site(root, {
        "_posts/2022-01-05-first.md": post_text(
            "First", "2022-01-05 10:00:00 +0800", "[news]", "[红网新闻, python]"),
        "_posts/2022-02-01-second.md": post_text(
            "Second", "2022-02-01", "[news, 随笔]", '["C#", "open source"]'),
        "_posts/2022-03-01-third.md": post_text(
            "第三篇", "2022-03-01", "[随笔]", "[红网新闻, python]"),
    })


def render_site_conf(listen: int, upstreams: list[int], cache: Path) -> str:
    """deploy/nginx.conf with the test's ports and cache folder, nothing else changed."""
    text = DEPLOY_CONF.read_text("utf-8")
    servers = re.findall(r"^ *server 127\.0\.0\.1:(\d+) ", text, re.M)
    assert len(servers) == len(upstreams), "deploy/nginx.conf should list two instances"
    for old, new in zip(servers, upstreams, strict=True):
        text = text.replace(f"server 127.0.0.1:{old} ", f"server 127.0.0.1:{new} ", 1)
    for old, new in (("listen 80;", f"listen 127.0.0.1:{listen};"),
                     ("proxy_cache_path /var/cache/nginx/feeds ", f"proxy_cache_path {cache} ")):
        assert text.count(old) == 1, f"deploy/nginx.conf has no single {old!r}"
        text = text.replace(old, new)
    return text


def main_conf(prefix: Path, site_conf: Path) -> str:
    """The smallest main configuration around an included site file, every path the
    test's own."""
    # Workers run as nobody when nginx starts as root, and could not enter pytest's
    # private temporary folders.
    user = "user root;\n" if os.geteuid() == 0 else ""
    temp = "\n".join(f"    {kind}_temp_path {prefix / kind};"
                     for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
    return (f"{user}worker_processes 1;\npid {prefix / 'nginx.pid'};\n"
            f"error_log {prefix / 'error.log'} info;\n"
            "events { worker_connections 256; }\n"
            f"http {{\n    access_log {prefix / 'access.log'};\n{temp}\n"
            f"    include {site_conf};\n}}\n")


@dataclass
class Stack:
    url: str
    instances: list[Service]
    site: Path
    nginx: subprocess.Popen[bytes]

    def get(self, path: str, **headers: str) -> requests.Response:
        """GET through nginx; identity unless the caller asks for an encoding."""
        sent = {"User-Agent": VIA, "Accept-Encoding": "identity", **headers}
        return requests.get(self.url + path, headers=sent, timeout=60, stream=True)

    def direct(self, instance: int, path: str, **headers: str) -> requests.Response:
        sent = {"User-Agent": DIRECT, "Accept-Encoding": "identity", **headers}
        return requests.get(self.instances[instance].url + path, headers=sent, timeout=60,
                            stream=True)

    def upstream(self, uri: str) -> list[str]:
        """Statuses of the requests nginx sent upstream for ``uri``, both instances."""
        return [e["status"] for service in self.instances for e in service.access_log()
                if e["uri"] == uri and e["agent"] == VIA]


def raw(response: requests.Response) -> bytes:
    """The body as it came over the wire (still compressed, if it was)."""
    data: bytes = response.raw.read(decode_content=False)
    response.close()
    return data


@dataclass
class Nginx:
    proc: subprocess.Popen[bytes]
    prefix: Path

    def errors(self) -> str:
        return "".join(p.read_text("utf-8", errors="replace")
                       for p in (self.prefix / "stderr", self.prefix / "error.log")
                       if p.exists())

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)  # its workers are in its group
                self.proc.wait(timeout=30)


def start_nginx(prefix: Path, site_conf: str, url: str) -> Nginx:
    """Run nginx in the foreground with ``site_conf`` included, all its files below
    ``prefix``; wait until ``url`` answers."""
    binary = nginx_binary()
    prefix.mkdir(parents=True)
    (prefix / "site.conf").write_text(site_conf, "utf-8")
    conf = prefix / "nginx.conf"
    conf.write_text(main_conf(prefix, prefix / "site.conf"), "utf-8")
    with open(prefix / "stderr", "wb") as err:
        proc = subprocess.Popen(
            [binary, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
             "-g", "daemon off;"], stdout=err, stderr=err, stdin=subprocess.DEVNULL,
            start_new_session=True)
    nginx = Nginx(proc, prefix)

    def up() -> bool:
        if proc.poll() is not None:
            raise AssertionError(f"nginx exited with {proc.returncode}:\n{nginx.errors()}")
        try:
            requests.get(url, timeout=5)
        except requests.RequestException:
            return False
        return True

    try:
        wait_for(up, 60, "nginx to answer")
    except BaseException:
        nginx.stop()
        raise
    return nginx


@pytest.fixture
def stack_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    nginx_binary()
    started: list[Services | Nginx] = []

    def start(max_age: int) -> Stack:
        folder = tmp_path_factory.mktemp("nginx-stack")
        site = content(folder / "site")
        services = Services(folder)
        started.append(services)
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        flags = ("--base-url", base, "--cache-max-age", str(max_age))
        launched = [services.launch(site, *flags, name=f"instance{n}") for n in (1, 2)]
        instances = [services.wait(s) for s in launched]
        conf = render_site_conf(port, [s.port for s in instances], folder / "cache")
        nginx = start_nginx(folder / "nginx", conf, base + "/healthz")
        started.append(nginx)
        return Stack(base, instances, site, nginx.proc)

    yield start
    for item in reversed(started):
        if isinstance(item, Nginx):
            item.stop()
        else:
            item.close()


def titles(body: bytes) -> list[str]:
    parsed = feedparser.parse(body)
    assert not parsed.bozo, parsed.bozo_exception
    return [e.title for e in parsed.entries]


def test_cache_hits_etags_304s_and_one_fetch_per_burst(stack_factory: object) -> None:
    assert callable(stack_factory)
    stack: Stack = stack_factory(LONG_AGE)
    # The second request of a feed is a HIT, also for names percent-encoded in UTF-8 and
    # names with the service's ~XX escapes; bytes are the instance's bytes.
    for path in ["/feed.atom", tag_path("红网新闻", "atom"), tag_path("C#", "rss"),
                 tag_path("open source", "json"), "/category/%E9%9A%8F%E7%AC%94.html",
                 "/feeds.opml"]:
        first = stack.get(path)
        second = stack.get(path)
        assert (first.status_code, second.status_code) == (200, 200), path
        assert (first.headers["X-Cache-Status"], second.headers["X-Cache-Status"]) == \
            ("MISS", "HIT"), path
        body = raw(first)
        assert raw(second) == body == raw(stack.direct(0, path)), path
        assert stack.upstream(path) == ["200"], path
    assert titles(raw(stack.get(tag_path("红网新闻", "atom")))) == ["第三篇", "First"]
    links = feedparser.parse(raw(stack.get("/feed.atom"))).feed.links
    assert {link.href for link in links if link.rel == "self"} == {stack.url + "/feed.atom"}

    # ETags pass through unchanged (identity and gzip: nginx does not recompress), and a
    # client's conditional request is answered 304 by nginx from its cache.
    path = "/category/news.atom"
    for coding in ("identity", "gzip"):
        direct = stack.direct(1, path, **{"Accept-Encoding": coding})
        direct_body = raw(direct)
        via = stack.get(path, **{"Accept-Encoding": coding})
        assert via.headers["ETag"] == direct.headers["ETag"]
        assert via.headers.get("Content-Encoding") == direct.headers.get("Content-Encoding")
        assert raw(via) == direct_body
        if coding == "gzip":
            assert via.headers["ETag"].endswith('-gz"')
            assert titles(gzip.decompress(direct_body)) == ["Second", "First"]
        etag = via.headers["ETag"]
        again = stack.get(path, **{"Accept-Encoding": coding, "If-None-Match": etag})
        assert again.status_code == 304 and again.headers["ETag"] == etag
        assert again.headers["X-Cache-Status"] == "HIT"
        since = stack.get(path, **{"Accept-Encoding": coding,
                                   "If-Modified-Since": via.headers["Last-Modified"]})
        assert since.status_code == 304
        other = stack.get(path, **{"Accept-Encoding": coding, "If-None-Match": '"other"'})
        assert other.status_code == 200 and raw(other) == direct_body
    assert sorted(stack.upstream(path)) == ["200", "200"]  # one fetch per encoding

    # However a client spells its Accept-Encoding, the answer is one of two cached
    # copies, fetched once each: gzip when gzip is acceptable, identity otherwise.
    path = "/feed.rss"
    spellings = {"gzip, deflate, br": "gzip", "br;q=1.0, gzip;q=0.8": "gzip", "GZIP": "gzip",
                 "gzip;q=0": None, "deflate": None, "gzip;q=0.0, br": None, "": None}
    tags = set()
    for header, coding in spellings.items():
        via = stack.get(path, **{"Accept-Encoding": header})
        assert via.status_code == 200
        assert via.headers.get("Content-Encoding") == coding, header
        assert via.headers["Vary"] == "Accept-Encoding"
        body = raw(via)
        assert titles(gzip.decompress(body) if coding else body) == ["第三篇", "Second", "First"]
        tags.add((coding, via.headers["ETag"]))
    assert len(tags) == 2
    assert sorted(stack.upstream(path)) == ["200", "200"]

    # A burst of identical misses is one upstream fetch (proxy_cache_lock).
    path = "/feed.json?limit=2"
    barrier = threading.Barrier(8, timeout=60)
    bodies: list[bytes] = []

    def fetch() -> None:
        barrier.wait()
        response = stack.get(path)
        assert response.status_code == 200
        bodies.append(raw(response))

    threads = [threading.Thread(target=fetch) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(bodies) == 8 and len(set(bodies)) == 1
    assert stack.upstream(path) == ["200"]


def test_revalidation_changes_deltas_and_failed_instances(stack_factory: object) -> None:
    assert callable(stack_factory)
    stack: Stack = stack_factory(SHORT_AGE)
    # Expired, an entry is revalidated upstream with its ETag: the instance answers 304
    # and nginx serves the copy it has. (The OPML has no Last-Modified, so the 304 can
    # only come from If-None-Match.)
    path = "/feeds.opml"
    first = stack.get(path)
    assert "Last-Modified" not in first.headers, "pick a response without Last-Modified"
    body = raw(first)
    time.sleep(SHORT_AGE + 1)
    later = stack.get(path)
    assert later.headers["X-Cache-Status"] == "REVALIDATED"
    assert raw(later) == body
    assert sorted(stack.upstream(path)) == ["200", "304"]

    warm = ["/feed.atom", tag_path("红网新闻", "atom"), "/category/news.html", "/feeds.opml"]
    for path in warm:
        assert stack.get(path).status_code == 200
    held = stack.get("/feed.atom")
    etag = held.headers["ETag"]
    for n in (0, 1):  # each instance has served (so remembers) the version we hold
        assert stack.direct(n, "/feed.atom").headers["ETag"] == etag

    # A changed post, and a new one, reach clients once the cached copy expires.
    post = stack.site / "_posts/2022-01-05-first.md"
    post.write_text(post_text("First, revised", "2022-01-05 10:00:00 +0800", "[news]",
                              "[红网新闻, python]"), "utf-8")
    (stack.site / "_posts/2022-04-01-fourth.md").write_text(
        post_text("Fourth", "2022-04-01", "[news]"), "utf-8")
    for path in (p for p in warm if p.endswith(".atom")):  # each copy expires on its own
        wait_for(lambda path=path: "First, revised" in titles(raw(stack.get(path))),
                 60, f"the change to reach clients of {path} through nginx", step=0.25)
    for n in (0, 1):
        wait_for(lambda n=n: "First, revised" in titles(raw(stack.direct(n, "/feed.atom"))),
                 60, f"instance {n} to see the change", step=0.25)

    for n in (0, 1):
        wait_for(lambda n=n: "Fourth" in titles(raw(stack.direct(n, "/feed.atom"))),
                 60, f"instance {n} to see the new post", step=0.25)

    # A delta request (RFC 3229) bypasses the cache and gets only what is new.
    delta = stack.get("/feed.atom", **{"A-IM": "feed", "If-None-Match": etag})
    assert delta.status_code == 226 and delta.headers["X-Cache-Status"] == "BYPASS"
    new = titles(raw(delta))
    assert "Fourth" in new and not {"Second", "第三篇"} & set(new)

    # One instance killed: no request fails, cached or not.
    stack.instances[0].kill()
    paths = warm + [f"/feed.atom?limit={n}" for n in range(1, 9)] + \
        [tag_path("python", "rss"), "/category/news.json"]
    for round_ in range(3):
        for path in paths:
            response = stack.get(path)
            assert response.status_code == 200, (round_, path, response.headers)
            raw(response)

    # Both killed: nginx still serves what it has cached, even past its max-age.
    stack.instances[1].kill()
    time.sleep(SHORT_AGE + 1)
    for path in warm:
        response = stack.get(path)
        assert response.status_code == 200, path
        assert response.headers["X-Cache-Status"] == "STALE", path
        body = raw(response)
        if path.endswith(".atom"):
            assert "First, revised" in titles(body)
    assert stack.get("/feed.atom?limit=19").status_code == 502  # never cached


def test_a_static_build_served_by_nginx_is_the_live_site(
        tmp_path: Path, live_server_factory: Callable[..., LiveServer]) -> None:
    folder = content(tmp_path / "site")
    # A site's own feed XSLT: an .xml file that is not a feed, served with its own type.
    (folder / "feed.xslt.xml").write_bytes(
        b'<?xml version="1.0"?>\n<xsl:stylesheet version="1.0" '
        b'xmlns:xsl="http://www.w3.org/1999/XSL/Transform"/>\n')
    settings = make_settings(folder, base_url="https://feeds.example.org")
    out = tmp_path / "out"
    assert export.run(settings, str(out)).failed == 0
    assert (out / "feed.xslt.xml").is_file() and (out / "static" / "feed.xsl").is_file()
    conf = DEPLOY_STATIC.read_text("utf-8")
    port = free_port()
    for old, new in (("listen 80;", f"listen 127.0.0.1:{port};"),
                     ("root /srv/www;", f"root {out};")):
        assert conf.count(old) == 1, f"deploy/nginx-static.conf has no single {old!r}"
        conf = conf.replace(old, new)
    nginx = start_nginx(tmp_path / "nginx", conf, f"http://127.0.0.1:{port}/")
    app = create_app(settings, watch=False)
    try:
        live = live_server_factory(app)
        paths = [url_of(rel) for rel in files(out)]
        # Besides every file's own URL: queries nothing was built for (served as the
        # bare path, as the service ignores them too) and page 1 named.
        paths += ["/feed.atom?utm_source=x", "/static/style.css?v=1", "/feed.atom?page=1",
                  "/?page=1", tag_path("红网新闻", "rss") + "?page=1"]
        with requests.Session() as http:
            for path in paths:
                sent = {"Accept-Encoding": "identity"}
                served = http.get(f"http://127.0.0.1:{port}{path}", headers=sent, timeout=60)
                answer = http.get(live.url + path, headers=sent, timeout=60)
                assert (served.status_code, answer.status_code) == (200, 200), path
                assert served.content == answer.content, path
                assert served.headers["Content-Type"].replace(" ", "").lower() == \
                    answer.headers["Content-Type"].replace(" ", "").lower(), path
            for path in ["/feed.atom?page=2", "/?page=2", "/category/news.json?page=9"]:
                # The site is one page: past it, both say 404.
                assert path not in paths
                assert http.get(f"http://127.0.0.1:{port}{path}", timeout=60).status_code \
                    == http.get(live.url + path, timeout=60).status_code == 404, path
    finally:
        app.extensions["feeds"].stop()
        nginx.stop()


def test_if_modified_since_alone_through_two_instances(stack_factory: object) -> None:
    """A client that sends only If-Modified-Since, through nginx or straight to either
    instance: both date the same content alike, and a deletion that only moves a folder
    reaches it from either (the feed's newest entry and every file left keep their
    dates)."""
    assert callable(stack_factory)
    stack: Stack = stack_factory(SHORT_AGE)
    path = tag_path("python", "atom")
    dates = {n: stack.direct(n, path).headers["Last-Modified"] for n in (0, 1)}
    assert dates[0] == dates[1]
    held = stack.get(path)
    since = held.headers["Last-Modified"]
    assert since == dates[0]
    before = titles(raw(held))
    gone = before[-1]  # the oldest entry: its deletion moves no entry's date
    (doomed,) = [p for p in stack.site.glob("_posts/*.md")
                 if f"title: {json.dumps(gone, ensure_ascii=False)}" in p.read_text("utf-8")]
    doomed.unlink()
    for n in (0, 1):
        wait_for(lambda n=n: gone not in titles(raw(stack.direct(n, path))), 60,
                 f"instance {n} to see the deletion", step=0.25)
    after = {n: stack.direct(n, path, **{"If-Modified-Since": since}) for n in (0, 1)}
    for n, response in after.items():
        assert response.status_code == 200, (n, response.headers)
        assert gone not in titles(raw(response))
    assert after[0].headers["Last-Modified"] == after[1].headers["Last-Modified"] != since
    time.sleep(SHORT_AGE + 1)  # nginx's copy expires
    through = stack.get(path, **{"If-Modified-Since": since})
    assert through.status_code == 200, through.headers
    assert titles(raw(through)) == [t for t in before if t != gone]
