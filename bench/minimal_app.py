"""Reference for the throughput benchmark: the least a Flask app on waitress can do,
on the service's own waitress setup (the same settings, the same keep-alive after 304).

It answers ``GET /feed`` with constant bytes read once at start-up (a feed fetched
from the real service), with the same Content-Type and ETag; a precompressed gzip
body when the client accepts gzip, and 304 when If-None-Match matches. ``/healthz``
says it is up.

    python bench/minimal_app.py --port P --threads N --body FILE --gzip-body FILE.gz \
        --content-type TYPE --etag '"abc"'
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from feeds.server import SEND_BYTES, keep_alive_channel
from flask import Flask, Response, request


def create_app(body: bytes, gz: bytes, content_type: str, etag: str) -> Flask:
    app = Flask(__name__)
    # The gzip variant is a different representation: its own (strong) tag.
    gz_etag = etag[:-1] + '-gz"' if etag.endswith('"') else etag + "-gz"

    @app.get("/feed")
    def feed() -> Response:
        gzip_ok = "gzip" in request.headers.get("Accept-Encoding", "")
        tag = gz_etag if gzip_ok else etag
        common = {"ETag": tag, "Vary": "Accept-Encoding", "Cache-Control": "max-age=300"}
        inm = request.headers.get("If-None-Match")
        if inm is not None and tag in (t.strip() for t in inm.split(",")):
            return Response(status=304, headers=common)
        if gzip_ok:
            resp = Response(gz, content_type=content_type, headers=common)
            resp.headers["Content-Encoding"] = "gzip"
            return resp
        return Response(body, content_type=content_type, headers=common)

    @app.get("/healthz")
    def healthz() -> Response:
        return Response(b'{"ok": true}', content_type="application/json")

    return app


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--threads", type=int, default=8)
    p.add_argument("--body", required=True)
    p.add_argument("--gzip-body", required=True)
    p.add_argument("--content-type", required=True)
    p.add_argument("--etag", required=True)
    a = p.parse_args(argv)
    with open(a.body, "rb") as f:
        body = f.read()
    with open(a.gzip_body, "rb") as f:
        gz = f.read()
    app = create_app(body, gz, a.content_type, a.etag)

    from waitress.server import create_server

    # The service's waitress settings, so only the application differs: the same
    # channel too, which keeps a connection open after a 304 (plain waitress closes it).
    socket_map: dict[int, object] = {}
    server = create_server(app, map=socket_map, host=a.host, port=a.port, threads=a.threads,
                           ident="minimal", connection_limit=1000, channel_timeout=60,
                           send_bytes=SEND_BYTES)
    channel = keep_alive_channel()
    for listener in socket_map.values():
        if channel is not None and hasattr(listener, "channel_class"):
            listener.channel_class = channel  # type: ignore[attr-defined]
    server.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
