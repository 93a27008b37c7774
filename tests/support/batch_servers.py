"""A fast, deterministic scoring server for batch tests and benchmarks, and a data generator.

The server speaks real HTTP on 127.0.0.1 in the ``Inputs`` convention and serves the
bank-marketing swagger. Its prediction for a row is ``id<duration>``, so a test can check that
every prediction sits beside its own row. It can misbehave on demand: slow replies, a bounded
number of workers (requests queue, latency grows), 503 when too many requests are in flight,
413 over a body size, 400/500 when a row with a given ``job`` is present, bursts of 429 or 503
with ``Retry-After``, and no swagger at all. Every request it scores is logged (ids, status and
the body's ``GlobalParameters``), in memory and optionally to a JSON Lines file, so a test can
tell which rows were scored, how often, and how they were sent.

Run as a script:
    python tests/support/batch_servers.py serve [--port P] [--delay-ms D] [--log FILE]
    python tests/support/batch_servers.py make-csv OUT N
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import json
import os
import sys
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

TESTS = Path(__file__).resolve().parents[1]
SWAGGER_PATH = TESTS / "fixtures" / "corpus" / "swagger" / "004-abhijit-kalita.json"
TEST_KEY = "batch-test-key-0123456789"

COLUMNS = [
    "age", "job", "marital", "education", "default", "housing", "loan", "contact", "month",
    "day_of_week", "duration", "campaign", "pdays", "previous", "poutcome", "emp.var.rate",
    "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed",
]
_JOBS = ["admin.", "blue-collar", "technician", "services", "management", "retired"]


def make_row(i: int) -> dict[str, str]:
    """Row ``i`` as CSV text; ``duration`` is ``i``, which makes every row unique."""
    return {
        "age": str(18 + i % 70),
        "job": _JOBS[i % len(_JOBS)],
        "marital": "married" if i % 3 else "single",
        "education": "university.degree",
        "default": "no",
        "housing": "yes" if i % 2 else "no",
        "loan": "no",
        "contact": "cellular",
        "month": "may",
        "day_of_week": "mon",
        "duration": str(i),
        "campaign": str(1 + i % 5),
        "pdays": "999",
        "previous": "0",
        "poutcome": "nonexistent",
        "emp.var.rate": "-1.8",
        "cons.price.idx": "92.893",
        "cons.conf.idx": "-46.2",
        "euribor3m": f"{1 + (i % 400) / 100:.3f}",
        "nr.employed": "5099.1",
    }


def write_csv(path: Path, n: int, overrides: dict[int, dict[str, str]] | None = None) -> Path:
    """A bank-marketing CSV of ``n`` rows; ``overrides[i]`` replaces values in row ``i``."""
    overrides = overrides or {}
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(COLUMNS)
        for i in range(n):
            row = make_row(i)
            row.update(overrides.get(i, {}))
            writer.writerow([row[c] for c in COLUMNS])
    return path


@dataclass
class Behaviour:
    """How the server misbehaves; the defaults score everything at once."""

    delay_s: float = 0.0
    per_row_s: float = 0.0
    #: workers: requests beyond this many wait their turn (latency grows with the queue)
    capacity: int | None = None
    #: requests in the server beyond this many get 503 at once
    shed_above: int | None = None
    shed_retry_after: str | None = None
    max_body: int | None = None
    fail400_job: str | None = "BAD400"
    fail500_job: str | None = "BAD500"
    #: requests numbered [start, start + count) (from 1) get 429 with this Retry-After
    rate_limit_bursts: list[tuple[int, int, str]] = field(default_factory=list)
    #: the same, answered 503 (the platform overloaded) with this Retry-After
    unavailable_bursts: list[tuple[int, int, str]] = field(default_factory=list)
    #: serve /swagger.json (False: 404, like a script without inference-schema decorators)
    swagger: bool = True
    require_key: str | None = TEST_KEY
    #: every scoring request gets this status (a broken model)
    always_status: int | None = None


class _QuietServer(ThreadingHTTPServer):
    """A client killed mid-request (the point of some tests) is not worth a traceback."""

    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class ScoringServer:
    """The test server; ``with ScoringServer() as server: server.scoring_uri``."""

    def __init__(self, behaviour: Behaviour | None = None, *, log_path: Path | None = None,
                 port: int = 0):
        self.behaviour = behaviour or Behaviour()
        self.swagger = SWAGGER_PATH.read_bytes()
        self.log: list[dict[str, Any]] = []
        self.log_path = log_path
        self.requests = 0
        self.in_system = 0
        self.peak_in_system = 0
        self._lock = threading.Lock()
        self._workers = (
            threading.BoundedSemaphore(self.behaviour.capacity)
            if self.behaviour.capacity else None
        )
        self._log_file = log_path.open("a", encoding="utf-8") if log_path else None
        self.httpd = _QuietServer(("127.0.0.1", port), self._handler())
        self.port = self.httpd.server_address[1]
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def scoring_uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    def start(self) -> ScoringServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        if self._log_file:
            self._log_file.close()

    def __enter__(self) -> ScoringServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- what was scored -----------------------------------------------------------------------

    def scored_ids(self) -> list[int]:
        """Ids of rows in successful requests, with repeats."""
        return [i for entry in self.log if entry["status"] == 200 for i in entry["ids"]]

    def statuses(self) -> list[int]:
        return [entry["status"] for entry in self.log]

    def _record(
        self, status: int, ids: list[int], params: Any = None, in_system: int | None = None
    ) -> None:
        """Log one answered request; ``in_system``: how many requests (itself included) the
        server held when it arrived."""
        entry = {
            "status": status, "ids": ids, "t": time.time(), "params": params,
            "in_system": in_system,
        }  # fmt: skip
        with self._lock:
            self.log.append(entry)
            if self._log_file:
                self._log_file.write(json.dumps(entry) + "\n")
                self._log_file.flush()

    # -- the handler ---------------------------------------------------------------------------

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            # One write per reply, no Nagle: otherwise delayed ACKs add 40 ms to each request.
            wbufsize = 1 << 16
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _reply(
                self, status: int, body: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = body if isinstance(body, bytes) else json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:
                if self.path.split("?")[0] == "/swagger.json" and server.behaviour.swagger:
                    self._reply(200, server.swagger)
                elif self.path == "/":
                    self._reply(200, b'"Healthy"')
                else:
                    self._reply(404, {"message": "not found"})

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = self.rfile.read(length)
                with server._lock:
                    server.requests += 1
                    number = server.requests
                    server.in_system += 1
                    server.peak_in_system = max(server.peak_in_system, server.in_system)
                    in_system = server.in_system
                try:
                    self._score(body, number, in_system)
                finally:
                    with server._lock:
                        server.in_system -= 1

            def _score(self, body: bytes, number: int, in_system: int) -> None:
                b = server.behaviour
                if b.require_key and self.headers.get("Authorization") != f"Bearer {b.require_key}":
                    self._reply(401, {"message": "bad key"})
                    return
                for start, count, retry_after in b.rate_limit_bursts:
                    if start <= number < start + count:
                        server._record(429, [])
                        self._reply(429, {"message": "slow down"}, {"Retry-After": retry_after})
                        return
                for start, count, retry_after in b.unavailable_bursts:
                    if start <= number < start + count:
                        server._record(503, [])
                        self._reply(503, {"message": "overloaded"}, {"Retry-After": retry_after})
                        return
                if b.shed_above is not None and in_system > b.shed_above:
                    server._record(503, [])
                    headers = {"Retry-After": b.shed_retry_after} if b.shed_retry_after else {}
                    self._reply(503, {"message": "overloaded"}, headers)
                    return
                if b.max_body is not None and len(body) > b.max_body:
                    server._record(413, [])
                    self._reply(413, {"message": f"payload over {b.max_body} bytes"})
                    return
                try:
                    payload = json.loads(body)
                    rows = payload["Inputs"]["data"]
                    params = payload.get("GlobalParameters")
                except (ValueError, KeyError, TypeError):
                    server._record(400, [])
                    self._reply(400, {"message": "expected {'Inputs': {'data': [...]}}"})
                    return
                ids = [row.get("duration") for row in rows]
                if b.always_status is not None:
                    server._record(b.always_status, ids)
                    self._reply(b.always_status, {"message": "model failed to load"})
                    return
                jobs = {row.get("job") for row in rows}
                if b.fail400_job in jobs:
                    server._record(400, ids)
                    self._reply(400, {"message": f"row with job {b.fail400_job} refused"})
                    return
                if b.fail500_job in jobs:
                    server._record(500, ids)
                    self._reply(
                        500,
                        {"message": "ValueError: could not convert"},
                        {"x-ms-run-function-failed": "True"},
                    )
                    return
                if server._workers is not None:
                    with server._workers:
                        time.sleep(b.delay_s + b.per_row_s * len(rows))
                elif b.delay_s or b.per_row_s:
                    time.sleep(b.delay_s + b.per_row_s * len(rows))
                server._record(200, ids, params, in_system)
                self._reply(200, {"Results": [f"id{i}" for i in ids]})

        return Handler


class ServerProcess:
    """The server in its own process (no GIL shared with the client under test)."""

    def __init__(self, behaviour: dict[str, Any] | None = None, *, log_path: Path | None = None):
        import subprocess

        command = [sys.executable, str(Path(__file__).resolve()), "serve",
                   "--behaviour", json.dumps(behaviour or {})]
        if log_path is not None:
            command += ["--log", str(log_path)]
        self.log_path = log_path
        self.proc = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.strip():
            self.proc.kill()
            raise RuntimeError("test server did not start")
        self.port = int(line)
        self.scoring_uri = f"http://127.0.0.1:{self.port}/score"

    def log(self) -> list[dict[str, Any]]:
        if self.log_path is None or not self.log_path.exists():
            return []
        lines = self.log_path.read_text(encoding="utf-8").splitlines()
        return [json.loads(line) for line in lines if line.strip()]

    def scored_ids(self) -> list[int]:
        return [i for entry in self.log() if entry["status"] == 200 for i in entry["ids"]]

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except Exception:
            self.proc.kill()
            self.proc.wait()
        if self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> ServerProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _serve(args: argparse.Namespace) -> None:
    behaviour = Behaviour(delay_s=args.delay_ms / 1000.0, require_key=args.key or None)
    for name, value in json.loads(args.behaviour).items():
        if name in ("rate_limit_bursts", "unavailable_bursts"):
            value = [tuple(item) for item in value]
        setattr(behaviour, name, value)
    server = ScoringServer(behaviour, port=args.port,
                           log_path=Path(args.log) if args.log else None)
    print(server.port, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.httpd.serve_forever()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="batch_servers")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve")
    serve.add_argument("--port", type=int, default=0)
    serve.add_argument("--delay-ms", type=float, default=0.0)
    serve.add_argument("--log")
    serve.add_argument("--behaviour", default="{}", help="Behaviour fields as JSON")
    serve.add_argument("--key", default=os.environ.get("BATCH_TEST_KEY", TEST_KEY))
    make = sub.add_parser("make-csv")
    make.add_argument("output")
    make.add_argument("rows", type=int)
    args = parser.parse_args(argv)
    if args.command == "serve":
        _serve(args)
    else:
        write_csv(Path(args.output), args.rows)


if __name__ == "__main__":
    sys.path.insert(0, str(TESTS.parent))
    main()
