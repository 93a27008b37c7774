"""A fake Azure Resource Manager that replays Microsoft's published examples over real HTTPS.

Each example (tests/fixtures/arm, see its README) holds the request ``parameters`` and the
``responses`` by status code. :meth:`ArmReplay.replay` builds the operation's URL from the
example's own parameters (URL templates from the REST spec, below), and answers a request only
when method, path, ``api-version`` and (when the example has one) the JSON body match; anything
else gets a 400/404 and is recorded in :attr:`ArmReplay.mismatches`, so a test can assert the SDK
sent exactly what the example describes. The certificate comes from trustme: clients trust it
through a CA bundle file (:attr:`ArmReplay.ca_file`), never by turning verification off.
"""

from __future__ import annotations

import copy
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

import trustme

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "arm"

_WORKSPACE = (
    "/subscriptions/{subscriptionId}/resourceGroups/{resourceGroupName}"
    "/providers/Microsoft.MachineLearningServices/workspaces/{workspaceName}"
)
_ENDPOINT = _WORKSPACE + "/onlineEndpoints/{endpointName}"

#: operationId → (method, URL template, example file). Templates from the REST spec's paths.
OPERATIONS: dict[str, tuple[str, str, str]] = {
    "OnlineEndpoints_Get": ("GET", _ENDPOINT, "2025-12-01/Workspace/OnlineEndpoint/get.json"),
    "OnlineDeployments_List": (
        "GET", _ENDPOINT + "/deployments", "2025-12-01/OnlineDeployment/list.json",
    ),
    "OnlineEndpoints_ListKeys": (
        "POST", _ENDPOINT + "/listKeys", "2025-06-01/Workspace/OnlineEndpoint/listKeys.json",
    ),
    "OnlineEndpoints_GetToken": (
        "POST", _ENDPOINT + "/token", "2025-12-01/Workspace/OnlineEndpoint/getToken.json",
    ),
    "OnlineDeployments_GetLogs": (
        "POST",
        _ENDPOINT + "/deployments/{deploymentName}/getLogs",
        "2025-12-01/OnlineDeployment/getLogs.json",
    ),
}  # fmt: skip

#: The API version amlc's client sends (aml_client.azure.control.ARM_API_VERSION).
CLIENT_API_VERSION = "2025-12-01"


def example(operation: str) -> dict[str, Any]:
    """The published example of ``operation``, as stored (a fresh copy)."""
    return json.loads((FIXTURES / OPERATIONS[operation][2]).read_text())


def merge(base: dict[str, Any], patch: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``patch`` merged in depth (a variant of an example, for one test)."""
    out = copy.deepcopy(base)
    for key, value in patch.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = merge(out[key], value)
        else:
            out[key] = value
    return out


@dataclass
class Route:
    operation: str
    method: str
    path: str
    api_version: str
    request_body: Any
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    #: Makes the body of each answer (a token that changes on every getToken, say); the
    #: example's body, patched, is passed in.
    respond: Callable[[Any], Any] | None = None

    def answer(self) -> Any:
        return self.respond(copy.deepcopy(self.body)) if self.respond else self.body


@dataclass
class Seen:
    operation: str | None
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        replay = self.server.replay
        parts = urlsplit(self.path)
        path, query = unquote(parts.path), parse_qs(parts.query)
        route = replay.route_for(self.command, path)
        replay.requests.append(
            Seen(route.operation if route else None, self.command, path, query,
                 dict(self.headers.items()), raw)
        )
        if route is None:
            replay.mismatches.append(f"no example for {self.command} {path}")
            return self._send(404, {"error": {"code": "NoExample", "message": path}})
        version = (query.get("api-version") or [""])[0]
        if version != route.api_version:
            replay.mismatches.append(f"{route.operation}: api-version {version!r}")
            return self._send(400, {"error": {"code": "InvalidApiVersion", "message": version}})
        if route.request_body is not None:
            try:
                sent = json.loads(raw)
            except ValueError:
                sent = raw.decode("utf-8", "replace")
            if sent != route.request_body:
                replay.mismatches.append(f"{route.operation}: body {sent!r}")
                return self._send(400, {"error": {"code": "BodyMismatch", "message": str(sent)}})
        self._send(route.status, route.answer(), route.headers)

    def _send(self, status: int, body: Any, headers: dict[str, str] | None = None) -> None:
        payload = b"" if body is None else json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", f"arm-{len(self.server.replay.requests)}")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    do_GET = _answer
    do_POST = _answer


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    replay: ArmReplay

    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that refused our certificate is expected in one test


class ArmReplay:
    """``with ArmReplay(tmp_path) as arm: arm.replay("OnlineEndpoints_Get"); …``"""

    def __init__(self, directory: Path):
        self.ca = trustme.CA()
        self.ca_file = directory / "arm-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1").configure_cert(context)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.replay = self
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self.routes: list[Route] = []
        self.requests: list[Seen] = []
        self.mismatches: list[str] = []
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )

    def replay(
        self,
        operation: str,
        *,
        status: str = "200",
        patch: dict[str, Any] | None = None,
        drop: tuple[str, ...] = (),
        parameters: dict[str, str] | None = None,
        api_version: str | None = None,
        body: Any = None,
        respond: Callable[[Any], Any] | None = None,
    ) -> Route:
        """Serve ``operation``'s example: its ``responses[status]``, optionally ``patch``-ed (a
        variant the examples lack), with top-level keys in ``drop`` removed, or ``body`` instead.
        ``parameters`` replace some of the example's path parameters (an error case elsewhere).
        ``respond`` turns that body into each answer's (called per request)."""
        method, template, _ = OPERATIONS[operation]
        data = example(operation)
        params = {**data["parameters"], **(parameters or {})}
        response = data["responses"].get(status, {})
        answer = copy.deepcopy(response.get("body")) if body is None else body
        if patch and isinstance(answer, dict):
            answer = merge(answer, patch)
        for key in drop:
            if isinstance(answer, dict):
                answer.pop(key, None)
        route = Route(
            operation=operation,
            method=method,
            path=template.format(**params),
            # Default: the example's own version. listKeys has no 2025-12-01 example; its
            # 2025-06-01 one has the same shape (see the README), so it is served to the
            # version the client speaks.
            api_version=api_version or (
                CLIENT_API_VERSION if operation == "OnlineEndpoints_ListKeys"
                else params["api-version"]
            ),
            request_body=params.get("body"),
            status=int(status),
            body=answer,
            headers=dict(response.get("headers") or {}),
            respond=respond,
        )
        self.routes.insert(0, route)  # the latest registration wins
        return route

    def route_for(self, method: str, path: str) -> Route | None:
        for route in self.routes:
            if route.method == method and route.path == path:
                return route
        return None

    def calls(self, operation: str) -> list[Seen]:
        return [seen for seen in self.requests if seen.operation == operation]

    def start(self) -> ArmReplay:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> ArmReplay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def arm_error(code: str, message: str) -> dict[str, Any]:
    """ARM's error body (``ErrorResponse``), for the failures the examples do not cover."""
    return {"error": {"code": code, "message": message}}
