"""Shared by the web-surface tests: a recording upstream, a page served from another origin, and
the headless Chromium settings.

The "other origin" is another port of 127.0.0.1: the most realistic neighbour (a dev server, a
notebook, a page on the same machine), and the hardest case, since it is the same *site* and so
receives SameSite=Strict cookies.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = Path("/usr/bin/chromium")
#: The browser tests run on one pytest-xdist worker, one after another, so each module launches
#: Chromium once (the ``chromium`` fixture of tests/integration/conftest.py), not each test.
ON_THE_BROWSER_WORKER = pytest.mark.xdist_group("browser")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


class _Recorder(BaseHTTPRequestHandler):
    server: RecordingUpstream
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        with self.server.lock:
            self.server.seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )
        payload = json.dumps({"Results": ["yes"]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class RecordingUpstream(ThreadingHTTPServer):
    """An endpoint that answers everything and remembers every request it got."""

    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Recorder)
        self.seen: list[dict[str, Any]] = []
        self.lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}"


@contextmanager
def serving(server: Any) -> Iterator[Any]:
    """Run ``server`` (any ``socketserver``-style server) in a thread for the duration."""
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@contextmanager
def recording_upstream() -> Iterator[RecordingUpstream]:
    with serving(RecordingUpstream()) as server:
        yield server


@contextmanager
def page_elsewhere(html: str) -> Iterator[str]:
    """Serve ``html`` at ``/`` of another 127.0.0.1 port; yields its URL."""
    body = html.encode("utf-8")

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/" else 404)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body) if self.path == "/" else 0))
            self.end_headers()
            if self.path == "/":
                self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    server.daemon_threads = True
    with serving(server):
        yield f"http://127.0.0.1:{server.server_address[1]}/"
