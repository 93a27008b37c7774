"""A local Swagger UI for one endpoint, with a proxy that adds the credential.

The page, its assets (from the ``swagger-ui-py`` package, so no docker and no internet) and a
rewritten swagger are served on 127.0.0.1. The rewritten swagger sends every "Try it out"
request to ``/proxy/…`` on this server, which forwards it to the real endpoint with the
``Authorization`` header added; the page never sees the key. Only the routes the swagger
declares are forwarded, only to the configured endpoint, and only requests that prove they come
from the page served here or from the person who started it, so neither another web page the
user opens nor another local process can borrow the key. Every request passes
:class:`aml_client.webguard.Admission`, the checks ``amlc bench --web`` applies too:

* the ``Host`` header must name this server (127.0.0.1 / localhost and its port), which also
  defeats DNS rebinding; an ``Origin`` header, when sent, must be this server's; a
  ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` is refused;
* the per-run secret: the printed address carries it (``?token=…``), and opening it swaps it for
  an HttpOnly, SameSite=Strict cookie; scripts send it in the ``X-Amlc-Token`` header (or the
  query) instead;

and then, for the proxy:

* a request admitted on the cookie must carry :data:`PAGE_HEADER` too: the page's
  ``requestInterceptor`` adds it, while an ``<img>``, ``<form>`` or simple ``fetch`` from another
  page cannot, and a cross-origin ``fetch`` that tries triggers a CORS preflight this server
  refuses;
* ``GET``/``HEAD`` never reach the scoring route (Azure's server runs the model for
  ``GET /score?…``, which any page could trigger with an image).
"""

from __future__ import annotations

import copy
import html
import importlib.util
import json
import logging
import mimetypes
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from string import Template
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

from aml_client.errors import ConfigError
from aml_client.webguard import (
    ADDED_HEADERS,
    TOKEN_HEADER,
    TOKEN_PARAM,
    Admission,
    Verdict,
    local_hosts,
    new_token,
)

if TYPE_CHECKING:
    from aml_client.config import Target
    from aml_client.http.session import Session

log = logging.getLogger("aml_client.swagger.ui")

#: Where "Try it out" requests go on this server.
PROXY_PREFIX = "/proxy"
#: The header (and its value) that proves a proxied request comes from the served page.
PAGE_HEADER = "X-Amlc-Proxy"
PAGE_HEADER_VALUE = "swagger-ui"
#: Largest request body forwarded (AKS accepts up to 100 MB).
MAX_BODY_BYTES = 100 * 1024 * 1024
#: Request headers passed on to the endpoint (never the page's own Authorization).
FORWARD_REQUEST_HEADERS = (
    "content-type",
    "accept",
    "x-ms-client-request-id",
    "x-request-id",
    "azureml-model-deployment",
)
#: Response headers passed back to the page.
FORWARD_RESPONSE_HEADERS = (
    "content-type",
    "x-ms-request-id",
    "x-request-id",
    "x-ms-client-request-id",
    "x-ms-run-function-failed",
    "x-ms-run-fn-exec-ms",
    "retry-after",
    "azureml-model-deployment",
)
#: The page may load and call nothing but this server (Swagger UI styles itself inline).
PAGE_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'"
)
_ASSETS = (
    "swagger-ui.css",
    "swagger-ui-bundle.js",
    "favicon-16x16.png",
    "favicon-32x32.png",
)
_HERE = Path(__file__).resolve().parent


def assets_dir() -> Path:
    """Swagger UI's static files from an installed package (``swagger-ui-py``, else
    ``swagger-ui-bundle``); found without importing either."""
    spec = importlib.util.find_spec("swagger_ui")
    for location in (spec.submodule_search_locations or []) if spec else []:
        static = Path(location) / "static"
        if (static / "swagger-ui-bundle.js").is_file():
            return static
    spec = importlib.util.find_spec("swagger_ui_bundle")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for bundle in sorted(Path(location).glob("vendor/swagger-ui-*/swagger-ui-bundle.js")):
            return bundle.parent
    raise ConfigError("Swagger UI assets not found: pip install swagger-ui-py")


def rewrite_document(
    doc: dict[str, Any], *, example: dict[str, Any] | None = None, upstream: str | None = None
) -> dict[str, Any]:
    """The swagger as the page gets it: every route served by this server under
    ``/proxy``, security schemes removed (the proxy authenticates, so the page must not ask
    for a key), and the request example replaced by a valid one when given."""
    out = copy.deepcopy(doc)
    note = (
        f"Served by amlc: requests go through a local proxy to {upstream}, "
        "which adds the endpoint's credential."
        if upstream
        else "Served by amlc from a file: no endpoint is configured, so requests fail."
    )
    info = out.setdefault("info", {})
    if isinstance(info, dict):
        info["description"] = f"{info.get('description') or ''}\n\n{note}".strip()
    out.pop("security", None)
    if str(out.get("swagger", "")).startswith("2"):
        out.pop("host", None)  # the page's own host, which is this server
        out["schemes"] = ["http"]
        out["basePath"] = PROXY_PREFIX
        out.pop("securityDefinitions", None)
    else:
        out["servers"] = [{"url": PROXY_PREFIX, "description": "amlc proxy"}]
        components = out.get("components")
        if isinstance(components, dict):
            components.pop("securitySchemes", None)
    for item in (out.get("paths") or {}).values():
        if isinstance(item, dict):
            for op in item.values():
                if isinstance(op, dict):
                    op.pop("security", None)
    if example is not None:
        _set_request_example(out, example)
    return out


def _set_request_example(doc: dict[str, Any], example: dict[str, Any]) -> None:
    from aml_client.errors import SchemaError
    from aml_client.schema.locate import Locator

    try:
        schema, _example = Locator(doc).input_schema()
    except SchemaError:
        schema = None
    if schema is not None and isinstance(schema.node, dict) and schema.node:
        schema.node["example"] = example
    # OpenAPI 3 media-level examples win over the schema's own.
    for item in (doc.get("paths") or {}).values():
        post = item.get("post") if isinstance(item, dict) else None
        body = post.get("requestBody") if isinstance(post, dict) else None
        media = ((body or {}).get("content") or {}).get("application/json")
        if isinstance(media, dict) and ("example" in media or "examples" in media):
            media.pop("examples", None)
            media["example"] = example


def _default_example(doc: dict[str, Any]) -> dict[str, Any] | None:
    """A valid one-row request for "Try it out", or None when amlc cannot read the swagger."""
    from aml_client.errors import AmlcError
    from aml_client.schema import load_schema

    try:
        return load_schema(doc).example_payload(1)
    except AmlcError:
        return None


class SwaggerUIServer:
    """Serves the UI, the rewritten swagger and the proxy on ``host:port`` (127.0.0.1).

    ``port=0`` picks a free port. Use :meth:`start` for a background thread (tests,
    ``--open``) or :meth:`serve_forever` in the foreground. ``example`` is the request body
    "Try it out" starts from; by default a valid one built from the swagger. Every request
    needs ``token`` (a fresh secret by default): open :attr:`address`, which carries it.
    ``allowed_origins`` may call the proxy from their own pages, with the secret.
    """

    def __init__(
        self,
        document: dict[str, Any],
        *,
        target: Target | None = None,
        host: str = "127.0.0.1",
        port: int = 8000,
        timeout_s: float = 60.0,
        example: dict[str, Any] | None = None,
        allowed_origins: tuple[str, ...] = (),
        token: str | None = None,
    ):
        self.document = document
        self.token = token or new_token()
        self.target = target
        self.timeout_s = timeout_s
        self.example = example if example is not None else _default_example(document)
        self._assets = assets_dir()
        try:
            self._httpd = _HTTPServer((host, port), _Handler)
        except OSError as exc:
            raise ConfigError(
                f"cannot listen on {host}:{port} ({exc.strerror}); choose another with --port"
            ) from None
        self._httpd.app = self
        address = self._httpd.server_address
        self.host, self.port = str(address[0]), int(address[1])
        self.allowed_hosts = local_hosts(self.port, bind_host=self.host)
        self.allowed_origins = frozenset(
            {f"http://{h}" for h in self.allowed_hosts} | set(allowed_origins)
        )
        self.cookie_name = f"amlc_swagger_{self.port}"  # cookies are shared by every port
        self.admission = Admission(
            hosts=self.allowed_hosts,
            token=self.token,
            cookie_name=self.cookie_name,
            what="this Swagger UI",
            printed_by="amlc swagger serve",
            trusted_origins=allowed_origins,
            open_preflight=True,  # browsers send no cookie there; a preflight runs nothing
        )
        self._paths = {p for p in (document.get("paths") or {}) if isinstance(p, str)}
        from aml_client.schema.locate import score_route

        self._score_path = score_route(document) or "/score"
        self._client: Session | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        """The server's root, without the secret (every request needs it: see :attr:`address`)."""
        return f"http://{self.host}:{self.port}/"

    @property
    def address(self) -> str:
        """The address to open: the root with this run's secret, which becomes a cookie."""
        return f"{self.url}?{TOKEN_PARAM}={self.token}"

    def start(self) -> SwaggerUIServer:
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, name="amlc-swagger-ui", daemon=True
        )
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever()
        finally:
            self.close()

    def close(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def __enter__(self) -> SwaggerUIServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- pieces the handler asks for -----------------------------------------------------------

    def index_html(self) -> bytes:
        text = (_HERE / "index.html").read_text(encoding="utf-8")
        title = str((self.document.get("info") or {}).get("title") or "endpoint")
        upstream = self.target.scoring_uri if self.target else "(no endpoint configured)"
        page = Template(text).safe_substitute(
            title=html.escape(title), upstream=html.escape(upstream)
        )
        return page.encode("utf-8")

    def asset(self, name: str) -> Path | None:
        if name == "amlc-init.js":
            return _HERE / name
        if name in _ASSETS:
            path = self._assets / name
            return path if path.is_file() else None
        return None

    def swagger_json(self) -> bytes:
        upstream = self.target.scoring_uri if self.target else None
        doc = rewrite_document(self.document, example=self.example, upstream=upstream)
        return json.dumps(doc, indent=2, ensure_ascii=False).encode("utf-8")

    def upstream_url(self, route: str, query: str) -> str | None:
        """The endpoint URL for a route of the swagger, or None when it declares no such route."""
        if self.target is None:
            return None
        if route not in self._paths and route.lstrip("/") not in self._paths:
            return None
        scoring = urlsplit(self.target.scoring_uri)
        if route in (self._score_path, "/" + self._score_path.lstrip("/")):
            return urlunsplit((*scoring[:3], query or scoring.query, ""))
        base = scoring.path.rstrip("/")
        suffix = "/" + self._score_path.strip("/")
        if base.endswith(suffix):
            base = base[: -len(suffix)]
        return urlunsplit((scoring.scheme, scoring.netloc, base + route, query, ""))

    def client(self) -> Session:
        """The HTTP layer's session to the endpoint: the credential only for its origin, no
        redirects followed, a total deadline per request."""
        from aml_client.http.session import Session

        assert self.target is not None
        with self._lock:
            if self._client is None:
                self._client = Session(
                    self.target.scoring_uri,
                    self.target.credential,
                    timeout_s=self.timeout_s,
                    verify=self.target.verify,
                )
            return self._client


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    app: SwaggerUIServer


class _Handler(BaseHTTPRequestHandler):
    server: _HTTPServer
    protocol_version = "HTTP/1.1"
    server_version = "amlc-swagger-ui"
    sys_version = ""

    # -- routing -----------------------------------------------------------------------------

    def do_GET(self) -> None:
        self._dispatch("GET")

    def do_HEAD(self) -> None:
        self._dispatch("HEAD")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_OPTIONS(self) -> None:
        if self._guard("OPTIONS") is None:
            return
        route = urlsplit(self.path).path
        origin = self.headers.get("Origin")
        if (
            self._is_proxied(route)
            and origin is not None
            and origin not in self.server.app.allowed_origins
        ):
            # A cross-origin fetch carrying PAGE_HEADER asks here first: the answer is no.
            self._refuse(f"cross-origin requests from {origin} are not forwarded")
            return
        headers = self._cors(route)
        headers.update(
            {
                "Access-Control-Allow-Methods": "GET, POST, PUT, DELETE, PATCH, OPTIONS",
                "Access-Control-Allow-Headers": "Content-Type, Accept, "
                "x-ms-client-request-id, x-request-id, azureml-model-deployment, "
                f"{PAGE_HEADER}, {TOKEN_HEADER}",
                "Access-Control-Max-Age": "600",
            }
        )
        self._send(HTTPStatus.NO_CONTENT, b"", headers=headers)

    def _dispatch(self, method: str) -> None:
        verdict = self._guard(method)
        if verdict is None:
            return
        app = self.server.app
        parts = urlsplit(self.path)
        route = parts.path
        # The query without the secret: it never goes to the endpoint.
        query = verdict.query
        if route.startswith(PROXY_PREFIX + "/") or route == PROXY_PREFIX:
            upstream_route = route[len(PROXY_PREFIX) :] or "/"
            if self._admit(method, upstream_route, verdict):
                self._proxy(method, upstream_route, query)
            return
        if method == "POST" and route in ("/score", "/" + app._score_path.lstrip("/")):
            if self._admit(method, app._score_path, verdict):
                self._proxy(method, app._score_path, query)
            return
        if method not in ("GET", "HEAD"):
            self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{method} {route} is not served here")
            return
        if route in ("/", "/index.html"):
            headers = {"Content-Security-Policy": PAGE_POLICY, "Cache-Control": "no-store"}
            page = app.index_html()
            self._send(
                HTTPStatus.OK, page, "text/html; charset=utf-8", headers=headers, method=method
            )
        elif route == "/swagger.json":
            body = app.swagger_json()
            self._send(
                HTTPStatus.OK, body, "application/json", headers=self._cors(route), method=method
            )
        elif route.startswith("/ui/") and (path := app.asset(route[len("/ui/") :])):
            kind = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
            headers = {"Cache-Control": "max-age=3600"}
            self._send(HTTPStatus.OK, path.read_bytes(), kind, headers=headers, method=method)
        else:
            self._error(HTTPStatus.NOT_FOUND, f"no such page: {route}")

    # -- the proxy ---------------------------------------------------------------------------

    def _proxy(self, method: str, route: str, query: str) -> None:
        from aml_client.errors import EndpointError, EndpointTimeoutError

        app = self.server.app
        origin = self.headers.get("Origin")
        if origin is not None and origin not in app.allowed_origins:
            self._error(HTTPStatus.FORBIDDEN, f"requests from {origin} are not forwarded")
            return
        cors = self._cors(PROXY_PREFIX)
        if self.headers.get("Transfer-Encoding"):
            # http.server cannot read chunked bodies; browsers and httpx send a length.
            self._error(HTTPStatus.LENGTH_REQUIRED, "send a Content-Length", cors)
            self.close_connection = True
            return
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = -1
        if length < 0:
            self._error(HTTPStatus.BAD_REQUEST, "bad Content-Length", cors)
            self.close_connection = True
            return
        if length > MAX_BODY_BYTES:
            self._error(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body too large", cors)
            self.close_connection = True
            return
        body = self.rfile.read(length) if length > 0 else b""
        if app.target is None:
            self._error(
                HTTPStatus.SERVICE_UNAVAILABLE,
                "no endpoint configured: start one with `amlc local up` or pass --endpoint",
                cors,
            )
            return
        url = app.upstream_url(route, query)
        if url is None:
            self._error(HTTPStatus.NOT_FOUND, f"the swagger declares no route {route}", cors)
            return
        headers = {
            name: value
            for name in FORWARD_REQUEST_HEADERS
            if (value := self.headers.get(name)) is not None
        }
        try:
            response = app.client().exchange(method, url, content=body, headers=headers)
        except EndpointTimeoutError:
            self._error(HTTPStatus.GATEWAY_TIMEOUT, f"no answer from {url}", cors)
            return
        except EndpointError as exc:
            self._error(HTTPStatus.BAD_GATEWAY, f"cannot reach {url}: {exc}", cors)
            return
        out = dict(cors)
        for name in FORWARD_RESPONSE_HEADERS:
            if name in response.headers and name != "content-type":
                out[name] = response.headers[name]
        self._send(
            response.status_code,
            response.content,
            response.headers.get("content-type", "application/octet-stream"),
            headers=out,
            method=method,
        )

    # -- admission -----------------------------------------------------------------------------

    def _admit(self, method: str, route: str, verdict: Verdict) -> bool:
        """Whether a request for the proxy came from the page served here (or a script with
        the secret); if not, it is answered with a 403 (405 for a GET of the scoring route)
        and never reaches the endpoint."""
        app = self.server.app
        origin = self.headers.get("Origin")
        if origin is not None and origin not in app.allowed_origins:
            self._refuse(f"requests from {origin} are not forwarded")
            return False
        cors = self._cors(PROXY_PREFIX)
        if not verdict.by_token and self.headers.get(PAGE_HEADER) != PAGE_HEADER_VALUE:
            self._refuse(
                f"not forwarded: the proxy needs the header '{PAGE_HEADER}: "
                f"{PAGE_HEADER_VALUE}', which only the Swagger UI page at {app.url} sends "
                f"(scripts send the secret in the {TOKEN_HEADER} header instead)",
                cors,
            )
            return False
        if method in ("GET", "HEAD") and self._is_scoring_route(route):
            self._refuse(
                f"{method} is not forwarded to the scoring route: send a POST",
                {**cors, "Allow": "POST, OPTIONS"},
                status=HTTPStatus.METHOD_NOT_ALLOWED,
            )
            return False
        return True

    def _is_scoring_route(self, route: str) -> bool:
        """Whether ``route`` leads to the endpoint's scoring URI (whatever the swagger calls it)."""
        app = self.server.app
        if app.target is None:
            return False
        url = app.upstream_url(route, "")
        scoring = urlsplit(app.target.scoring_uri)
        return url is not None and urlsplit(url).path.rstrip("/") == scoring.path.rstrip("/")

    @staticmethod
    def _is_proxied(route: str) -> bool:
        return (
            route == PROXY_PREFIX or route.startswith(PROXY_PREFIX + "/") or route.endswith("score")
        )

    def _refuse(
        self,
        message: str,
        headers: dict[str, str] | None = None,
        *,
        status: HTTPStatus = HTTPStatus.FORBIDDEN,
    ) -> None:
        # The body (if any) is left unread, so the connection cannot carry another request.
        self._error(status, message, {**(headers or {}), "Connection": "close"})

    # -- helpers -------------------------------------------------------------------------------

    def _guard(self, method: str) -> Verdict | None:
        """The admission checks (Host, Origin, Sec-Fetch-Site, the secret); None when the
        request was answered here (refused, or the secret swapped for the cookie)."""
        parts = urlsplit(self.path)
        verdict = self.server.app.admission.check(
            method, unquote(parts.path, encoding="latin-1"), parts.query, self.headers.get
        )
        if verdict.admitted:
            return verdict
        if verdict.status == HTTPStatus.SEE_OTHER:
            headers = {**dict(verdict.headers), "Cache-Control": "no-store"}
            self._send(HTTPStatus.SEE_OTHER, b"", headers={**headers, **dict(ADDED_HEADERS)})
            return None
        self._refuse(verdict.message, status=HTTPStatus(verdict.status))
        return None

    def _cors(self, route: str) -> dict[str, str]:
        if route.startswith(PROXY_PREFIX) or route.endswith("score"):
            origin = self.headers.get("Origin")
            if origin and origin in self.server.app.allowed_origins:
                return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}
            return {"Vary": "Origin"}
        # The swagger itself holds no secret: any tool may read it.
        return {"Access-Control-Allow-Origin": "*"}

    def _error(
        self, status: HTTPStatus, message: str, headers: dict[str, str] | None = None
    ) -> None:
        body = json.dumps({"message": message}).encode("utf-8")
        self._send(status, body, "application/json", headers=headers)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        method: str = "GET",
    ) -> None:
        self.send_response(status)
        if content_type:
            self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        if method != "HEAD" and body:
            self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        # The request line and status only: headers (where a key would be) are never logged.
        log.info("%s %s", self.address_string(), format % args)
