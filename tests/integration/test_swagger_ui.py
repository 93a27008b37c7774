"""The Swagger UI server and its proxy: what the page gets, what the endpoint gets, what is refused.

A recording upstream stands in for the endpoint where the test must see the forwarded headers;
the real local endpoint answers the end-to-end checks. The browser test is
test_swagger_ui_browser.py.
"""

from __future__ import annotations

import json
import logging
import re
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest
from support.web import serving

from aml_client import KeyCredential
from aml_client.config import Target
from aml_client.schema import load_schema
from aml_client.swagger.fetch import read_document
from aml_client.swagger.ui import (
    PAGE_HEADER,
    PAGE_HEADER_VALUE,
    PROXY_PREFIX,
    SwaggerUIServer,
    assets_dir,
    rewrite_document,
)
from aml_client.webguard import TOKEN_HEADER

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "swagger"
KEY = "sEcReT-proxy-key-0123456789abcdef"
#: What the served page's requestInterceptor adds to every request.
PAGE = {PAGE_HEADER: PAGE_HEADER_VALUE}


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request with JSON describing it (never echoing Authorization back)."""

    server: _RecordingServer
    protocol_version = "HTTP/1.1"

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        self.server.seen.append(
            {"method": self.command, "path": self.path, "headers": dict(self.headers), "body": body}
        )
        payload = json.dumps({"Results": ["yes"], "path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("x-ms-request-id", "req-123")
        self.send_header("Set-Cookie", "session=upstream")
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _answer

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _RecordingServer(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[dict[str, Any]]


@pytest.fixture
def upstream() -> Iterator[_RecordingServer]:
    server = _RecordingServer(("127.0.0.1", 0), _Recorder)
    server.seen = []
    with serving(server):
        yield server


def _target(uri: str, key: str | None = KEY) -> Target:
    return Target(
        name="test",
        scoring_uri=uri,
        swagger_uri=None,
        credential=KeyCredential(key) if key else None,
        source="profile",
    )


@pytest.fixture
def ui(upstream: _RecordingServer) -> Iterator[SwaggerUIServer]:
    doc = read_document(CORPUS / "005-Aduzona.json")
    host, port = upstream.server_address[:2]
    target = _target(f"http://{host}:{port}/api/v1/service/bank/score")
    with SwaggerUIServer(doc, target=target, port=0) as server:
        yield server


def _client(
    server: SwaggerUIServer, *, page: bool = False, cookie: bool = True
) -> httpx.Client:
    """A client of the server, holding the cookie that opening the printed address sets (as a
    browser tab does, and whatever page it shows); ``page=True`` also sends what the served
    page adds to its requests."""
    return httpx.Client(
        base_url=server.url.rstrip("/"),
        timeout=10,
        headers=PAGE if page else {},
        cookies={server.cookie_name: server.token} if cookie else {},
    )


# --------------------------------------------------------------------------- the page


def test_assets_come_from_an_installed_package() -> None:
    folder = assets_dir()
    assert (folder / "swagger-ui-bundle.js").stat().st_size > 100_000
    assert (folder / "swagger-ui.css").is_file()


def test_page_assets_and_rewritten_swagger(ui: SwaggerUIServer) -> None:
    with _client(ui) as client:
        page = client.get("/")
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
        assert "bankmarketing-endpoint" in page.text and "ui/swagger-ui-bundle.js" in page.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css", "amlc-init.js"):
            response = client.get(f"/ui/{asset}")
            assert response.status_code == 200, asset
            assert len(response.content) > 100
        assert client.get("/ui/../../pyproject.toml").status_code == 404
        # only what the page needs
        assert client.get("/ui/swagger-editor-bundle.js").status_code == 404

        swagger = client.get("/swagger.json")
        assert swagger.headers["access-control-allow-origin"] == "*"
        doc = swagger.json()
    assert doc["basePath"] == PROXY_PREFIX and doc["schemes"] == ["http"] and "host" not in doc
    assert "securityDefinitions" not in doc
    assert "security" not in doc["paths"]["/score"]["post"]
    assert "/api/v1/service/bank/score" in doc["info"]["description"]
    # "Try it out" starts from a valid request, not from "example_value" placeholders
    example = doc["definitions"]["ServiceInput"]["example"]
    schema = load_schema(read_document(CORPUS / "005-Aduzona.json"))
    schema.validate_rows(example["Inputs"]["data"])
    assert "example_value" not in json.dumps(example)


def test_openapi_3_documents_get_a_relative_server() -> None:
    doc = read_document(CORPUS / "002-microsoft.json")
    out = rewrite_document(doc, example={"data": [1]}, upstream="http://x/score")
    assert out["servers"] == [{"url": PROXY_PREFIX, "description": "amlc proxy"}]
    assert "security" not in out and "securitySchemes" not in out["components"]
    assert all("security" not in op for item in out["paths"].values() for op in item.values())
    assert out["components"]["schemas"]["ServiceInput"]["example"] == {"data": [1]}
    assert doc["openapi"] == "3.1.0" and "security" in doc  # the original is left alone


# --------------------------------------------------------------------------- the proxy


def test_proxy_adds_the_key_and_the_page_never_sees_it(
    ui: SwaggerUIServer, upstream: _RecordingServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    origin = f"http://127.0.0.1:{ui.port}"
    with _client(ui, page=True) as client:
        texts = [client.get(p).text for p in ("/", "/swagger.json", "/ui/amlc-init.js")]
        response = client.post(
            f"{PROXY_PREFIX}/score",
            json={"Inputs": {"data": []}},
            headers={
                "Origin": origin,
                "Authorization": "Bearer typed-in-the-page",
                "x-ms-client-request-id": "abc",
                "Cookie": f"private=1; {ui.cookie_name}={ui.token}",
            },
        )
    assert response.status_code == 200
    assert response.json()["Results"] == ["yes"]
    assert response.headers["access-control-allow-origin"] == origin
    assert response.headers["x-ms-request-id"] == "req-123"
    assert "set-cookie" not in response.headers
    (seen,) = upstream.seen
    assert seen["method"] == "POST" and seen["path"] == "/api/v1/service/bank/score"
    headers = {k.lower(): v for k, v in seen["headers"].items()}
    assert headers["authorization"] == f"Bearer {KEY}"  # ours, not the page's
    assert headers["x-ms-client-request-id"] == "abc"
    assert "cookie" not in headers and "origin" not in headers
    assert PAGE_HEADER.lower() not in headers
    assert ui.token not in repr(seen)  # this server's secret stays here
    assert json.loads(seen["body"]) == {"Inputs": {"data": []}}
    for text in [*texts, response.text, caplog.text]:
        assert KEY not in text and KEY[:12] not in text
    assert "POST /proxy/score" in caplog.text  # requests are logged, headers are not


def test_other_declared_routes_are_forwarded_beside_the_scoring_route(
    ui: SwaggerUIServer, upstream: _RecordingServer
) -> None:
    with _client(ui, page=True) as client:
        assert client.get(f"{PROXY_PREFIX}/").status_code == 200
        assert client.post("/score", json={}).status_code == 200  # the short alias
        undeclared = client.get(f"{PROXY_PREFIX}/admin")
    assert [s["path"] for s in upstream.seen] == [
        "/api/v1/service/bank/",
        "/api/v1/service/bank/score",
    ]
    assert undeclared.status_code == 404
    assert "declares no route /admin" in undeclared.json()["message"]


def test_foreign_origins_and_hosts_are_refused(
    ui: SwaggerUIServer, upstream: _RecordingServer
) -> None:
    with _client(ui, page=True) as client:
        evil = client.post(
            f"{PROXY_PREFIX}/score", json={}, headers={"Origin": "http://evil.example"}
        )
        assert evil.status_code == 403
        assert "access-control-allow-origin" not in evil.headers
        preflight = client.options(
            f"{PROXY_PREFIX}/score",
            headers={
                "Origin": "http://evil.example",
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": f"content-type,{PAGE_HEADER.lower()}",
            },
        )
        assert preflight.status_code == 403
        assert "access-control-allow-origin" not in preflight.headers
        assert "access-control-allow-headers" not in preflight.headers
        rebound = client.get("/swagger.json", headers={"Host": f"evil.example:{ui.port}"})
        assert rebound.status_code == 403
        rebound = client.post(
            f"{PROXY_PREFIX}/score", json={}, headers={"Host": f"evil.example:{ui.port}"}
        )
        assert rebound.status_code == 403
    assert upstream.seen == []


def test_get_of_the_scoring_route_is_never_forwarded(
    ui: SwaggerUIServer, upstream: _RecordingServer
) -> None:
    """Azure's server runs the model for ``GET /score?Inputs=…``: an ``<img>`` on any page
    sends exactly that, with no Origin header and no custom header."""
    query = "Inputs=" + quote(json.dumps({"data": [{"age": 30}]}))
    with _client(ui) as client:  # what the <img> sends
        img = client.get(f"{PROXY_PREFIX}/score?{query}")
    with _client(ui, page=True) as client:  # not even the page may
        get = client.get(f"{PROXY_PREFIX}/score?{query}")
        head = client.head(f"{PROXY_PREFIX}/score")
        alias = client.get(f"/score?{query}")
    assert img.status_code == 403
    assert f"'{PAGE_HEADER}: {PAGE_HEADER_VALUE}'" in img.json()["message"]
    assert get.status_code == 405 and get.headers["allow"].startswith("POST")
    assert "GET is not forwarded to the scoring route" in get.json()["message"]
    assert head.status_code == 405
    assert alias.status_code == 404
    assert upstream.seen == []


def test_requests_without_the_page_header_are_refused(
    ui: SwaggerUIServer, upstream: _RecordingServer
) -> None:
    """What a cross-site ``<form>`` or simple ``fetch`` can send: no custom header (and, from
    an old browser, perhaps no Origin). Refused on keep-alive connections without reading the
    body, so the next request on the same client still works."""
    with _client(ui) as client:
        form = client.post(
            f"{PROXY_PREFIX}/score",
            content=b'{"Inputs": {"data": []}}',
            headers={"Content-Type": "text/plain"},
        )
        urlencoded = client.post("/score", data={"Inputs": "x"})
        health = client.get(f"{PROXY_PREFIX}/")
        wrong = client.post(f"{PROXY_PREFIX}/score", json={}, headers={PAGE_HEADER: "1"})
        same_origin = client.post(
            f"{PROXY_PREFIX}/score", json={}, headers={"Origin": ui.url.rstrip("/")}
        )
        page = client.get("/")
    for refused in (form, urlencoded, health, wrong, same_origin):
        assert refused.status_code == 403, refused.request
        assert refused.json()["message"].startswith("not forwarded: the proxy needs the header")
    assert page.status_code == 200
    assert upstream.seen == []


def test_the_static_header_alone_is_not_enough(
    ui: SwaggerUIServer, upstream: _RecordingServer
) -> None:
    """Any local process can send the documented header; only the per-run secret (the cookie
    the printed address sets, or the secret itself) lets a request through."""
    with _client(ui, page=True, cookie=False) as client:
        static = client.post(f"{PROXY_PREFIX}/score", json={"Inputs": {"data": []}})
        wrong_cookie = client.post(
            f"{PROXY_PREFIX}/score", json={}, headers={"Cookie": f"{ui.cookie_name}=guess"}
        )
        other_port = client.post(  # the cookie of another amlc page on this machine
            f"{PROXY_PREFIX}/score", json={}, headers={"Cookie": f"amlc_web_8089={ui.token}"}
        )
        wrong_token = client.post(f"{PROXY_PREFIX}/score", json={}, headers={TOKEN_HEADER: "x"})
        in_query = client.post(f"{PROXY_PREFIX}/score?token=guess", json={})
        page = client.get("/")
        swagger = client.get("/swagger.json")
    for refused in (static, wrong_cookie, other_port, wrong_token, in_query, page, swagger):
        assert refused.status_code == 401, refused.request
        assert "needs its secret" in refused.json()["message"]
        assert refused.headers["connection"] == "close"
    assert upstream.seen == []


def test_scripts_send_the_secret_and_it_never_reaches_the_endpoint(
    ui: SwaggerUIServer, upstream: _RecordingServer
) -> None:
    with _client(ui, cookie=False) as client:  # no cookie, no page header: a script
        by_header = client.post(
            f"{PROXY_PREFIX}/score", json={"Inputs": {"data": []}},
            headers={TOKEN_HEADER: ui.token},
        )
        by_query = client.post(
            f"{PROXY_PREFIX}/score?verbose=1&token={ui.token}", json={"Inputs": {"data": []}}
        )
    assert by_header.status_code == by_query.status_code == 200
    assert [s["path"] for s in upstream.seen] == [
        "/api/v1/service/bank/score",
        "/api/v1/service/bank/score?verbose=1",
    ]
    assert ui.token not in repr(upstream.seen)


def test_the_printed_address_swaps_the_secret_for_a_cookie(ui: SwaggerUIServer) -> None:
    assert ui.address == f"{ui.url}?token={ui.token}"
    with _client(ui, cookie=False) as client:
        opened = client.get(ui.address, headers={"Sec-Fetch-Mode": "navigate",
                                                 "Sec-Fetch-Site": "none"})
        assert opened.status_code == 303
        assert opened.headers["location"] == "/"
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith(f"amlc_swagger_{ui.port}={ui.token};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        page = client.get("/", headers={"Sec-Fetch-Site": "same-origin"})  # the cookie, now
    assert page.status_code == 200 and "swagger-ui" in page.text


@pytest.mark.parametrize("site", ["cross-site", "same-site"])
def test_requests_from_another_site_are_refused_even_without_an_origin(
    ui: SwaggerUIServer, upstream: _RecordingServer, site: str
) -> None:
    """``same-site`` is another port of 127.0.0.1, to which the cookie is still sent."""
    with _client(ui, page=True) as client:  # the cookie and the page header: all but the site
        scored = client.post(
            f"{PROXY_PREFIX}/score", json={}, headers={"Sec-Fetch-Site": site}
        )
        page = client.get("/", headers={"Sec-Fetch-Site": site})
        own = client.post(
            f"{PROXY_PREFIX}/score", json={"Inputs": {"data": []}},
            headers={"Sec-Fetch-Site": "same-origin"},
        )
    assert scored.status_code == page.status_code == 403
    assert f"a {site} request may not drive this Swagger UI" in scored.json()["message"]
    assert own.status_code == 200
    assert len(upstream.seen) == 1


def test_a_configured_origin_may_call_the_proxy_after_preflight(
    upstream: _RecordingServer,
) -> None:
    doc = read_document(CORPUS / "005-Aduzona.json")
    host, port = upstream.server_address[:2]
    tool = "http://127.0.0.1:3000"
    target = _target(f"http://{host}:{port}/api/v1/service/bank/score")
    with (
        SwaggerUIServer(doc, target=target, port=0, allowed_origins=(tool,)) as server,
        _client(server) as client,
    ):
        preflight = client.options(
            f"{PROXY_PREFIX}/score",
            headers={
                "Origin": tool,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": f"content-type,{PAGE_HEADER.lower()}",
            },
        )
        response = client.post(f"{PROXY_PREFIX}/score", json={}, headers={"Origin": tool, **PAGE})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == tool
    assert PAGE_HEADER.lower() in preflight.headers["access-control-allow-headers"].lower()
    assert response.status_code == 200
    assert [s["method"] for s in upstream.seen] == ["POST"]


def test_cors_preflight_for_the_page_itself(ui: SwaggerUIServer) -> None:
    origin = f"http://localhost:{ui.port}"
    with _client(ui) as client:
        preflight = client.options(
            f"{PROXY_PREFIX}/score",
            headers={
                "Origin": origin,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "content-type",
            },
        )
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == origin
    assert "POST" in preflight.headers["access-control-allow-methods"]
    assert "content-type" in preflight.headers["access-control-allow-headers"].lower()


def test_bodies_without_a_usable_length_are_refused(
    ui: SwaggerUIServer, upstream: _RecordingServer
) -> None:
    with _client(ui, page=True) as client:
        chunked = client.post(f"{PROXY_PREFIX}/score", content=iter([b'{"data": []}']))
        assert chunked.status_code == 411
    import socket

    with socket.create_connection(("127.0.0.1", ui.port), timeout=5) as raw:
        raw.sendall(
            f"POST {PROXY_PREFIX}/score HTTP/1.1\r\nHost: 127.0.0.1:{ui.port}\r\n"
            f"{TOKEN_HEADER}: {ui.token}\r\nContent-Length: two\r\n\r\n{{}}".encode()
        )
        status = b""
        while len(status) < 13 and (chunk := raw.recv(200)):  # may arrive in pieces
            status += chunk
        assert status.startswith(b"HTTP/1.1 400 ")
    assert upstream.seen == []


def test_a_busy_port_is_a_config_error(ui: SwaggerUIServer) -> None:
    from aml_client.errors import ConfigError

    with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{ui.port}"):
        SwaggerUIServer({"swagger": "2.0", "paths": {}}, port=ui.port)


def test_unreachable_endpoint_and_no_endpoint() -> None:
    doc = read_document(CORPUS / "005-Aduzona.json")
    with SwaggerUIServer(doc, target=_target("http://127.0.0.1:9/score"), port=0) as server:
        with _client(server, page=True) as client:
            response = client.post(f"{PROXY_PREFIX}/score", json={})
        assert response.status_code == 502
        assert "cannot reach http://127.0.0.1:9/score" in response.json()["message"]
    with SwaggerUIServer(doc, target=None, port=0) as server, _client(server, page=True) as client:
        response = client.post(f"{PROXY_PREFIX}/score", json={})
        assert response.status_code == 503
        assert "no endpoint configured" in response.json()["message"]
        assert "no endpoint" in client.get("/swagger.json").json()["info"]["description"]


# --------------------------------------------------------------------------- the real endpoint


def test_scoring_the_local_endpoint_through_the_proxy(local_endpoint: Any) -> None:
    from aml_client.swagger.fetch import fetch_swagger

    target = _target(local_endpoint.scoring_uri, local_endpoint.primary_key)
    fetched = fetch_swagger(target)
    schema = load_schema(fetched.document)
    payload = schema.example_payload(3)
    with (
        SwaggerUIServer(fetched.document, target=target, port=0) as server,
        _client(server, page=True) as client,
    ):
        response = client.post(f"{PROXY_PREFIX}/score", json=payload)
        health = client.get(f"{PROXY_PREFIX}/")
        served = client.get("/swagger.json").text
    assert response.status_code == 200, response.text
    results = response.json()["Results"]
    assert len(results) == 3 and set(results) <= {"yes", "no"}
    assert health.status_code == 200 and "Healthy" in health.text
    assert local_endpoint.primary_key not in served


def test_cli_serves_a_file_without_an_endpoint(tmp_path: Path) -> None:
    """``amlc swagger serve FILE`` with nothing configured: the page works, requests say why not."""
    import os
    import select
    import socket
    import subprocess
    import sys

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    repo = Path(__file__).resolve().parents[2]
    env = dict(os.environ, AMLC_HOME=str(tmp_path), PYTHONPATH=str(repo))
    for name in ("AMLC_SCORING_URI", "AMLC_KEY", "AMLC_TOKEN", "AMLC_SWAGGER_URI"):
        env.pop(name, None)
    swagger = CORPUS / "137-nbelmokhtar.json"
    process = subprocess.Popen(
        [sys.executable, "-m", "aml_client", "swagger", "serve", str(swagger), "-p", str(port)],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    try:
        assert select.select([process.stdout], [], [], 60)[0], "amlc swagger serve printed nothing"
        first = process.stdout.readline()  # printed once it listens
        found = re.search(rf"http://127\.0\.0\.1:{port}/\?token=([\w-]+)", first)
        assert found, first
        address, token = found.group(0), found.group(1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=5) as client:
            assert client.get("/").status_code == 401  # not without the secret
            page = client.get(address)
            assert page.status_code == 200 and "(no endpoint configured)" in page.text
            secret = {TOKEN_HEADER: token}
            doc = client.get("/swagger.json", headers=secret).json()
            assert doc["definitions"]["ServiceInput"]["example"]["data"][0]["date"]
            response = client.post(f"{PROXY_PREFIX}/score", json={"data": []}, headers=secret)
            assert response.status_code == 503
    finally:
        process.terminate()
        # Read through the text wrapper: readline() may already hold later lines in its buffer,
        # which communicate() (reading the raw pipe) would never see.
        output = process.stdout.read()
        process.wait(timeout=10)
    assert first.startswith(f"Swagger UI for {swagger} at {address}")
    assert "no endpoint" in first + output and f"secret in the {TOKEN_HEADER} header" in output
