"""A scoring endpoint with a known latency, to check what ``amlc bench`` measures.

Threads and the standard library only (no gevent), run in its own process:

    python tests/support/calibrated.py --service-ms 20 [--stall-after-s 1 --stall-s 1] [--key K]

* every ``POST /score`` takes ``--service-ms`` (sleep, so it is the same under load);
* with ``--slots K``, at most K requests are served at once (the others queue): a capacity of
  exactly K / service time, with latency climbing sharply past it. The slots are a model on
  the monotonic clock (:class:`Slots`): each request's start and end are computed when it
  arrives, and its thread only sleeps until the end, so a busy machine may delay a reply
  but never lowers the capacity (no CPU-bound work, no thread hand-over sets the pace);
  ``--max-pending N`` answers 429 at once to a request that finds N already pending (served
  or queued), as the local endpoint and Azure do;
* ``--server-time`` sends ``x-ms-run-fn-exec-ms`` (the service time, as the inference server
  does) and ``--deployment NAME`` an ``azureml-model-deployment`` header;
* ``--pinned blue=80,green=40`` makes it a managed endpoint with deployments: a request must
  name one in ``azureml-model-deployment`` (else 404, as Azure answers a missing deployment),
  is served in that deployment's time (and ``--slots`` each) and answered with its name; with
  ``--answers green=0.7``, a deployment predicts that number instead of 0.5;
* optionally, ``--stall-after-s`` seconds after the first scoring request, the server stalls for
  ``--stall-s``: a request in that window is held until the stall ends (like a GC pause or a
  model reload);
* with ``--key``, requests without ``Authorization: Bearer <key>`` get 401;
* ``--fail-every N`` answers every N-th request 503;
* ``GET /count`` returns the server's own count of scoring requests (by status), and every
  scoring request is appended to ``--log`` (one line each) — the truth the bench is checked
  against;
* ``--tls-cert``/``--tls-key`` serve HTTPS (to check that certificates are verified);
* ``GET /swagger.json`` serves a small Swagger 2.0 document (rows ``{"x": number, "y": int}``);
* ``--faults`` answers the scoring requests with each response fault of :data:`FAULTS` in turn
  (request 1 gets the first, request 2 the second, ...): the failure kinds ``amlc bench`` must
  tell apart.

Prints ``PORT <n>`` on stdout once listening (on 127.0.0.1, or ``--host``: a network namespace's
own address in the several-hosts test).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import heapq
import json
import socket
import ssl
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SWAGGER = {
    "swagger": "2.0",
    "info": {"title": "calibrated", "version": "1.0"},
    "paths": {
        "/score": {
            "post": {
                "consumes": ["application/json"],
                "parameters": [
                    {"name": "body", "in": "body", "schema": {"$ref": "#/definitions/ServiceInput"}}
                ],
                "responses": {
                    "200": {"description": "ok", "schema": {"$ref": "#/definitions/ServiceOutput"}}
                },
            }
        }
    },
    "definitions": {
        "ServiceInput": {
            "type": "object",
            "properties": {
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {"x": {"type": "number"}, "y": {"type": "integer"}},
                    },
                }
            },
            "example": {"data": [{"x": 1.5, "y": 2}]},
        },
        "ServiceOutput": {"type": "array", "items": {"type": "number"}},
    },
}


#: (name, status, body, extra headers) answered in turn with ``--faults``; "truncated" closes the
#: connection mid-body, "timeout" answers after the client's deadline.
FAULTS: list[tuple[str, int, bytes, dict[str, str]]] = [
    ("ok", 200, b"[0.5]", {}),
    ("model_error", 200, b'{"error": "model exploded"}', {}),
    ("model_error", 200, json.dumps(json.dumps({"error": "in a string"})).encode(), {}),
    ("not_json", 200, b"<html><body>Bad gateway</body></html>", {"Content-Type": "text/html"}),
    ("truncated", 200, b"[0.5", {"Content-Length": "40"}),
    ("prediction_count", 200, b"[0.5, 0.7]", {}),
    ("redirect", 307, b"", {"Location": "http://127.0.0.1:9/score"}),
    ("run_function_failed", 200, b"[0.5]", {"x-ms-run-function-failed": "True"}),
    ("bad_response", 200, b'{"unexpected": 1}', {}),
    ("timeout", 200, b"[0.5]", {"x-delay-s": "3"}),
]


def _pairs(text: str | None) -> dict[str, float]:
    """``blue=80,green=40`` -> ``{"blue": 80.0, "green": 40.0}``."""
    pairs = {}
    for part in (text or "").split(","):
        if part.strip():
            name, _, value = part.partition("=")
            pairs[name.strip()] = float(value)
    return pairs


class Slots:
    """K servers of one service time, on the monotonic clock: a request that arrives at ``now``
    starts when the earliest slot frees (or at once) and ends one service time later."""

    def __init__(self, count: int, max_pending: int = 0) -> None:
        self.lock = threading.Lock()
        self.free_at = [0.0] * count  # a heap: when each slot is next free
        self.max_pending = max_pending
        self.ends: collections.deque[float] = collections.deque()  # pending requests' ends

    def reserve(self, now: float, service_s: float) -> tuple[float, float] | None:
        """(start, end) of a request arriving at ``now``; None: refused (too many pending)."""
        with self.lock:
            ends = self.ends
            while ends and ends[0] <= now:
                ends.popleft()
            if self.max_pending and len(ends) >= self.max_pending:
                return None
            start = max(now, heapq.heappop(self.free_at))
            end = start + service_s
            heapq.heappush(self.free_at, end)
            ends.append(end)  # ends come in order: starts never go back in time
        return start, end


class State:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.lock = threading.Lock()
        self.counts: dict[str, int] = {}
        self.first_request: float | None = None
        self.seq = 0
        self.log = open(args.log, "a", encoding="utf-8") if args.log else None  # noqa: SIM115
        self.slots = Slots(args.slots, args.max_pending) if args.slots else None
        self.pinned = _pairs(args.pinned)
        self.by_deployment: dict[str, int] = {}  # "blue:200" -> count
        self.answers = _pairs(args.answers)
        self.pinned_slots = {name: Slots(args.slots, args.max_pending) for name in self.pinned} \
            if args.slots else {}

    def stall_window(self) -> tuple[float, float] | None:
        if self.args.stall_s <= 0 or self.first_request is None:
            return None
        start = self.first_request + self.args.stall_after_s
        return start, start + self.args.stall_s


def make_handler(state: State) -> type[BaseHTTPRequestHandler]:
    args = state.args

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in separate writes: without this, Nagle + delayed ACK add 40 ms.
        disable_nagle_algorithm = True

        def log_message(self, format: str, *a: object) -> None:  # quiet
            pass

        def _send(
            self,
            status: int,
            body: bytes,
            ctype: str = "application/json",
            headers: dict[str, str] | None = None,
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _fault(self, fault: tuple[str, int, bytes, dict[str, str]]) -> None:
            name, status, body, headers = fault
            headers = dict(headers)
            delay = float(headers.pop("x-delay-s", 0))
            if delay:
                time.sleep(delay)
            with state.lock:
                state.counts[name] = state.counts.get(name, 0) + 1
            self.send_response(status)
            self.send_header("Content-Type", headers.pop("Content-Type", "application/json"))
            self.send_header("Content-Length", headers.pop("Content-Length", str(len(body))))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(body)
            if name == "truncated":
                self.wfile.flush()
                self.close_connection = True
                with contextlib.suppress(OSError):
                    self.connection.shutdown(socket.SHUT_RDWR)

        def do_GET(self) -> None:
            if self.path == "/count":
                with state.lock:
                    counts = dict(state.counts)
                    pinned = dict(state.by_deployment)
                body = {"total": sum(counts.values()), "by_status": counts}
                if pinned:
                    body["by_deployment"] = pinned
                self._send(200, json.dumps(body).encode())
            elif self.path.startswith("/swagger.json"):
                self._send(200, json.dumps(SWAGGER).encode())
            elif self.path == "/":
                self._send(200, b"Healthy", "text/plain")
            else:
                self._send(404, b'{"error": "not found"}')

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(length)
            if self.path.split("?")[0] != "/score":
                self._send(404, b'{"error": "not found"}')
                return
            now = time.monotonic()
            with state.lock:
                if state.first_request is None:
                    state.first_request = now
                state.seq += 1
                seq = state.seq
            window = state.stall_window()
            if window and window[0] <= now < window[1]:
                time.sleep(window[1] - now)
            if args.faults:
                self._fault(FAULTS[(seq - 1) % len(FAULTS)])
                return
            service_ms, slots, deployment = args.service_ms, state.slots, args.deployment
            if state.pinned:
                deployment = self.headers.get("azureml-model-deployment")
                if deployment not in state.pinned:
                    self._send(404, b'{"message": "No valid deployments to route to."}')
                    return
                service_ms = state.pinned[deployment]
                slots = state.pinned_slots.get(deployment)
            refused = False
            if slots is not None:
                reserved = slots.reserve(time.monotonic(), service_ms / 1000.0)
                if reserved is None:
                    refused, served = True, 0.0
                else:
                    start, end = reserved
                    time.sleep(max(0.0, end - time.monotonic()))
                    served = end - start
            else:
                served = time.perf_counter()
                time.sleep(service_ms / 1000.0)
                served = time.perf_counter() - served
            if refused:
                status, body = 429, b'{"message": "Too many pending requests"}'
            elif args.key and self.headers.get("Authorization") != f"Bearer {args.key}":
                status, body = 401, b'{"error": "unauthorized"}'
            elif args.fail_every and seq % args.fail_every == 0:
                status, body = 503, b'{"error": "busy"}'
            else:
                answer = state.answers.get(deployment or "", 0.5)
                status, body = 200, f"[{answer}]".encode()
            with state.lock:
                state.counts[str(status)] = state.counts.get(str(status), 0) + 1
                if deployment is not None and state.pinned:
                    key = f"{deployment}:{status}"
                    state.by_deployment[key] = state.by_deployment.get(key, 0) + 1
                if state.log is not None:
                    state.log.write(f"{time.time():.6f} {status} {deployment or '-'}\n")
                    state.log.flush()
            extra = {}
            if args.server_time:
                extra["x-ms-run-fn-exec-ms"] = f"{served * 1000:.3f}"
            if deployment:
                extra["azureml-model-deployment"] = deployment
            self._send(status, body, headers=extra)

    return Handler


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--service-ms", type=float, default=20.0)
    parser.add_argument("--stall-after-s", type=float, default=1.0)
    parser.add_argument("--stall-s", type=float, default=0.0)
    parser.add_argument("--key", default=None)
    parser.add_argument("--fail-every", type=int, default=0)
    parser.add_argument("--slots", type=int, default=0)
    parser.add_argument("--max-pending", type=int, default=0,
                        help="with --slots: 429 when this many requests are already pending")
    parser.add_argument("--server-time", action="store_true")
    parser.add_argument("--deployment", default=None)
    parser.add_argument("--pinned", default=None, help="deployments: NAME=SERVICE_MS,...")
    parser.add_argument("--answers", default=None, help="a deployment's prediction: NAME=X,...")
    parser.add_argument("--faults", action="store_true")
    parser.add_argument("--log", default=None)
    parser.add_argument("--tls-cert", default=None, help="serve HTTPS with this certificate (PEM)")
    parser.add_argument("--tls-key", default=None)
    args = parser.parse_args(argv)
    state = State(args)
    server = _Server((args.host, args.port), make_handler(state))
    if args.tls_cert:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(args.tls_cert, args.tls_key)
        server.socket = context.wrap_socket(server.socket, server_side=True)
    sys.stdout.write(f"PORT {server.server_address[1]}\n")
    sys.stdout.flush()
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever(poll_interval=0.1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
