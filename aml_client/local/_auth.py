"""Bearer-key check and request log: shared by the endpoint's front and each deployment.

On Azure a front end checks the key before a request reaches the container; the inference
server has no auth of its own. The local endpoint's front (``_front``) checks it for every
request, and each deployment's server checks it again (``KeyAuthMiddleware``), so a
deployment's internal port is no way around the key. A request to any protected path without
``Authorization: Bearer <primary|secondary>`` gets a 401 JSON ``{"message": ...}`` and never
reaches ``run()``. ``GET /`` (health) and ``GET /swagger.json`` stay open, as on Azure, and so
does ``OPTIONS`` (a CORS preflight never carries the key).

The request log has one line per request — time, method, path, status, latency (until the
response is ready to send), which key matched, the deployment that answered (front only), the
run time reported by the server (``x-ms-run-fn-exec-ms``; ``-`` when ``run()`` did not
complete), the request ids and, for a 424, the status the model container answered — the local
counterpart of Azure's endpoint traffic log. Successful health probes (``GET /``) are left out,
as the server's own access filter does. The Authorization header is never written anywhere.

Example line::

    2026-11-27T00:01:02.123Z POST /score 200 14.5ms key=primary deployment=blue run_ms=12.843
    bytes=26 rid=c752d70d-… client_rid=d1fb00ef… pid=25059
"""

from __future__ import annotations

import hmac
import json
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from aml_client.local._keys import read_keys

OPEN_PATHS = frozenset({"/", "/swagger.json"})
_HEADER_LIMIT = 100
KEY_NAMES = ("primary", "secondary")
#: Sent with every 401, as RFC 6750 asks of a Bearer-protected resource.
WWW_AUTHENTICATE = 'Bearer realm="amlc-local"'


def is_open(method: str, path: str) -> bool:
    """Requests that need no key, as on Azure: health, swagger and CORS preflights."""
    return method == "OPTIONS" or (method in ("GET", "HEAD") and path in OPEN_PATHS)


class KeyChecker:
    """Azure-style Bearer-key check against the endpoint's keys file.

    The keys file is re-read whenever its inode, size or mtime changes (one ``stat`` per
    request), so ``amlc local keys --regenerate`` takes effect at once in every process.
    A missing or unreadable keys file refuses every protected request: failing closed.
    """

    def __init__(self, keys_path: Path) -> None:
        self.keys_path = Path(keys_path)
        self._keys: tuple[bytes, ...] = ()
        self._keys_stamp: tuple[int, int, int] | None = None
        self._lock = threading.Lock()

    def _current_keys(self) -> tuple[bytes, ...]:
        try:
            st = os.stat(self.keys_path)
            stamp: tuple[int, int, int] | None = (st.st_ino, st.st_size, st.st_mtime_ns)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._keys_stamp:
                keys = read_keys(self.keys_path) if stamp else None
                self._keys = tuple(k.encode() for k in keys) if keys else ()
                self._keys_stamp = stamp
            return self._keys

    def check(self, header: str) -> tuple[str | None, str]:
        """(name of the matching key or None, reason when refused)."""
        if not header:
            return None, "Authorization header is missing; send 'Authorization: Bearer <key>'."
        scheme, _, token = header.strip().partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None, "Authorization header must be 'Bearer <key>'."
        keys = self._current_keys()
        if not keys:
            return None, "The endpoint has no keys configured."
        given = token.strip().encode()
        # Compare against both keys every time, so timing does not tell which one was close.
        matches = [hmac.compare_digest(given, key) for key in keys]
        for name, matched in zip(KEY_NAMES, matches, strict=False):
            if matched:
                return name, ""
        return None, "Invalid key."


class AccessLog:
    """Appends whole lines to the request log; safe from several processes (``O_APPEND``)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self._fd: int | None = None
        self._pid: int | None = None

    def write(self, line: str) -> None:
        try:
            # Opened lazily in each process: gunicorn forks its workers after import.
            if self._fd is None or self._pid != os.getpid():
                self.path.parent.mkdir(parents=True, exist_ok=True)
                flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT
                self._fd = os.open(self.path, flags, 0o644)
                self._pid = os.getpid()
            os.write(self._fd, line.encode("utf-8", "replace"))
        except OSError:
            pass  # a full disk must not turn into failed requests


def access_line(
    *,
    method: str,
    path: str,
    status: str,
    elapsed_ms: float,
    key: str,
    run_ms: str,
    size: str,
    request_id: str,
    client_request_id: str,
    deployment: str | None = None,
    model_status: str | None = None,
) -> str:
    """One request-log line (see the module docstring); client values are made one-field-safe."""
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    fields = [
        f"{stamp}.{int(now % 1 * 1000):03d}Z",
        _clean(method),
        _clean(path[:200]),
        status,
        f"{elapsed_ms:.1f}ms",
        f"key={key}",
    ]
    if deployment is not None:
        fields.append(f"deployment={_clean(deployment)}")
    fields += [
        f"run_ms={_clean(run_ms)}",
        f"bytes={_clean(size)}",
        f"rid={_clean(request_id)}",
        f"client_rid={_clean(client_request_id)}",
    ]
    if model_status is not None:
        fields.append(f"model_status={_clean(model_status)}")
    fields.append(f"pid={os.getpid()}")
    return " ".join(fields) + "\n"


def unauthorized_body(reason: str) -> bytes:
    return json.dumps({"message": reason}).encode()


class KeyAuthMiddleware:
    """WSGI middleware: Azure-style key check plus an access log.

    Each deployment's server runs behind it, so a deployment's internal port is no way around
    the key; the front checks the same keys first. See ``KeyChecker`` for key rotation.
    """

    def __init__(
        self, app: Callable[..., Iterable[bytes]], keys_path: Path, access_log: Path | None
    ):
        self.app = app
        self.keys = KeyChecker(keys_path)
        self.access_log = AccessLog(access_log) if access_log else None

    # WSGI ----------------------------------------------------------------------------------
    def __call__(
        self, environ: dict[str, Any], start_response: Callable[..., Any]
    ) -> Iterable[bytes]:
        started = time.perf_counter()
        method = environ.get("REQUEST_METHOD", "GET")
        path = environ.get("PATH_INFO", "") or "/"
        seen: dict[str, Any] = {"status": "000", "headers": []}

        def recording_start_response(
            status: str, headers: list[tuple[str, str]], exc_info: Any = None
        ) -> Any:
            seen["status"] = status.split(" ", 1)[0]
            seen["headers"] = headers
            return start_response(status, headers, exc_info)

        key_name = "-"
        if not is_open(method, path):
            matched, reason = self.keys.check(environ.get("HTTP_AUTHORIZATION", ""))
            if matched is None:
                refusal = self._refuse(environ, recording_start_response, reason)
                self._log(environ, seen, started, "refused")
                return refusal
            key_name = matched

        # Scoring answers are small: the body is collected so its log line is written before
        # the client gets a byte, so whoever has an answer also finds its line in the log.
        result = self.app(environ, recording_start_response)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        self._log(environ, seen, started, key_name)
        return [body]

    @staticmethod
    def _refuse(
        environ: dict[str, Any], start_response: Callable[..., Any], reason: str
    ) -> list[bytes]:
        body = unauthorized_body(reason)
        request_id = environ.get("HTTP_X_REQUEST_ID", "")
        if not request_id or len(request_id) > _HEADER_LIMIT:
            request_id = str(uuid.uuid4())
        client_id = environ.get("HTTP_X_MS_CLIENT_REQUEST_ID", "")[:_HEADER_LIMIT]
        headers = [
            ("Content-Type", "application/json"),
            ("Content-Length", str(len(body))),
            ("WWW-Authenticate", WWW_AUTHENTICATE),
            ("x-request-id", request_id),
            ("x-ms-request-id", client_id or request_id),
        ]
        if client_id:
            headers.append(("x-ms-client-request-id", client_id))
        environ["amlc.request_id"] = request_id
        start_response("401 UNAUTHORIZED", headers)
        return [body]

    # access log ----------------------------------------------------------------------------
    def _log(self, environ: dict[str, Any], seen: dict[str, Any], started: float, key: str) -> None:
        if self.access_log is None:
            return
        if seen["status"] == "200" and environ.get("PATH_INFO") == "/":
            return  # health probes would drown the requests, as the server's own log knows
        elapsed_ms = (time.perf_counter() - started) * 1000
        headers = {name.lower(): value for name, value in seen["headers"]}
        path = environ.get("PATH_INFO", "") or "/"
        query = environ.get("QUERY_STRING", "")
        if query:
            path = f"{path}?{query}"
        line = access_line(
            method=environ.get("REQUEST_METHOD", "-"),
            path=path,
            status=seen["status"],
            elapsed_ms=elapsed_ms,
            key=key,
            run_ms=headers.get("x-ms-run-fn-exec-ms", "-"),
            size=headers.get("content-length", "-"),
            request_id=headers.get("x-request-id") or environ.get("amlc.request_id", "-"),
            client_request_id=headers.get("x-ms-client-request-id", "-"),
        )
        self.access_log.write(line)


def _clean(value: str) -> str:
    """Keep a client-supplied value on one line and free of spaces (one field of the log)."""
    return "".join(ch if ch.isprintable() and not ch.isspace() else "_" for ch in value) or "-"
