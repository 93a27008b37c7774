"""A small real HTTP server on 127.0.0.1 that answers with scripted replies, for fault tests.

Tests queue replies (status, body, headers, delay, a body trickled byte by byte); requests are
recorded with their arrival time so a test can measure how long the client waited between
attempts. An ``auth_check`` makes the server refuse (401) requests whose Authorization header
it does not accept, as a managed endpoint's front end does.
"""

from __future__ import annotations

import datetime
import ipaddress
import json
import socket
import ssl
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"Results": ["no"]})
    headers: dict[str, str] = field(default_factory=dict)
    delay_s: float = 0.0
    content_type: str = "application/json"
    #: Seconds between body bytes: headers go out at once, then the body one byte at a time.
    trickle_s: float = 0.0

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str) and self.content_type != "application/json":
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass
class Seen:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float

    def json(self) -> Any:
        return json.loads(self.body)


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        seen = Seen(self.command, self.path, dict(self.headers.items()), body, time.monotonic())
        fault = self.server.fault
        fault.requests.append(seen)
        if fault.auth_check is not None and not fault.auth_check(seen.headers.get("Authorization")):
            reply = Reply(401, {"message": "invalid or expired token"})
        else:
            reply = fault.reply_for(self.command, self.path)
        if reply.delay_s and fault.stopping.wait(reply.delay_s):
            return
        payload = reply.encoded()
        self.send_response(reply.status)
        self.send_header("Content-Type", reply.content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", f"req-{len(fault.requests)}")
        for name, value in reply.headers.items():
            self.send_header(name, value)
        self.end_headers()
        if not reply.trickle_s:
            self.wfile.write(payload)
            return
        self.wfile.flush()
        for index in range(len(payload)):
            try:
                self.wfile.write(payload[index : index + 1])
                self.wfile.flush()
            except OSError:  # the client gave up: the point of a trickle
                fault.trickle_cut.set()
                return
            if fault.stopping.wait(reply.trickle_s):
                return

    do_GET = _answer
    do_POST = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fault: FaultServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that gave up (timeout tests) is expected


class FaultServer:
    """``with FaultServer() as srv: srv.queue(Reply(503)); Endpoint(srv.scoring_uri)...``"""

    def __init__(self, swagger: dict | None = None, *, tls: tuple[Path, Path] | None = None):
        self.requests: list[Seen] = []
        self.swagger = swagger
        #: Called with each request's Authorization header (or None); False answers 401.
        self.auth_check: Any = None
        #: Set when a client hung up in the middle of a trickled body.
        self.trickle_cut = threading.Event()
        self.default = Reply()
        #: The answer to ``GET /swagger.json`` instead of the swagger (a broken swagger route).
        self.swagger_reply: Reply | None = None
        self.stopping = threading.Event()
        self._queue: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.fault = self
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(*tls)
            self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.port = self._server.server_address[1]
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        self.scoring_uri = f"{self.url}/score"
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def queue(self, *replies: Reply) -> None:
        with self._lock:
            self._queue.extend(replies)

    def reply_for(self, method: str, path: str) -> Reply:
        if method == "GET" and path.startswith("/swagger.json"):
            if self.swagger_reply is not None:
                return self.swagger_reply
            if self.swagger is None:
                return Reply(404, {"message": "Not Found"})
            return Reply(200, self.swagger)
        if method == "GET" and path == "/":
            return Reply(200, "Healthy", content_type="text/plain")
        with self._lock:
            return self._queue.popleft() if self._queue else self.default

    @property
    def scores(self) -> list[Seen]:
        return [r for r in self.requests if r.method == "POST"]

    def start(self) -> FaultServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


def refused_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """A throw-away certificate for 127.0.0.1 that no trust store knows (needs ``cryptography``)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path
