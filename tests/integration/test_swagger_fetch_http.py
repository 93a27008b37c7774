"""Fetching a swagger from an endpoint, and the ``amlc swagger`` commands against the local one."""

from __future__ import annotations

import json
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.web import serving

from aml_client import KeyCredential
from aml_client.config import Target
from aml_client.envelope import unwrap
from aml_client.errors import AuthenticationError, ConnectionFailedError, NotFoundError
from aml_client.schema import load_schema
from aml_client.swagger.fetch import fetch_swagger

CORPUS = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "swagger"
KEY = "fetch-key-0123456789abcdefghij"


class _Guarded(BaseHTTPRequestHandler):
    """Serves a swagger only to ``Bearer KEY``, and records what it was sent."""

    server: _GuardedServer

    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        if self.headers.get("Authorization") != f"Bearer {KEY}":
            self.send_response(401)
            self.send_header("Content-Length", "0")
            self.send_header("x-ms-request-id", "rid-401")
            self.end_headers()
            return
        body = (CORPUS / "005-Aduzona.json").read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


class _GuardedServer(ThreadingHTTPServer):
    daemon_threads = True
    seen: list[tuple[str, str | None]]


@pytest.fixture
def guarded_server() -> Iterator[_GuardedServer]:
    server = _GuardedServer(("127.0.0.1", 0), _Guarded)
    server.seen = []
    with serving(server):
        yield server


@pytest.fixture
def guarded(guarded_server: _GuardedServer) -> str:
    return f"http://127.0.0.1:{guarded_server.server_address[1]}"


def _target(scoring: str, swagger: str | None = None, key: str | None = KEY) -> Target:
    return Target(
        name="t",
        scoring_uri=scoring,
        swagger_uri=swagger,
        credential=KeyCredential(key) if key else None,
    )


def test_fetch_sends_the_key_to_the_scoring_host(guarded: str) -> None:
    fetched = fetch_swagger(_target(f"{guarded}/api/v1/service/bank/score"))
    assert fetched.url == f"{guarded}/api/v1/service/bank/swagger.json"
    assert fetched.document["info"]["title"] == "bankmarketing-endpoint"
    assert json.loads(fetched.text) == fetched.document


def test_fetch_with_a_wrong_key_is_an_authentication_error(guarded: str) -> None:
    with pytest.raises(AuthenticationError, match="refused the credential") as caught:
        fetch_swagger(_target(f"{guarded}/score", key="wrong-key-value"))
    assert caught.value.status_code == 401 and caught.value.request_id == "rid-401"
    assert "wrong-key-value" not in str(caught.value)


def test_the_key_never_goes_to_another_host(guarded: str, guarded_server: _GuardedServer) -> None:
    # The swagger URI points at another origin than the scoring URI: no key is sent there.
    target = _target("http://127.0.0.1:1/score", swagger=f"{guarded}/swagger.json")
    with pytest.raises(AuthenticationError):
        fetch_swagger(target)
    assert guarded_server.seen == [("/swagger.json", None)]


def test_fetch_errors() -> None:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(ConnectionFailedError, match="cannot connect"):
        fetch_swagger(_target(f"http://127.0.0.1:{port}/score"), timeout_s=2)


@pytest.mark.parametrize(("openapi", "version"), [(None, "2.0"), ("3", "3.0"), ("3.1", "3.1")])
def test_fetch_from_the_local_endpoint(
    local_endpoint: Any, openapi: str | None, version: str
) -> None:
    target = _target(local_endpoint.scoring_uri, key=local_endpoint.primary_key)
    doc = fetch_swagger(target, openapi=openapi).document
    assert str(doc.get("swagger") or doc.get("openapi")).startswith(version)
    schema = load_schema(doc)
    assert schema.convention == "inputs" and len(schema.columns) == 20


def test_an_unknown_openapi_version_is_not_found(local_endpoint: Any) -> None:
    target = _target(local_endpoint.scoring_uri, key=local_endpoint.primary_key)
    with pytest.raises(NotFoundError, match="version 9 is not offered"):
        fetch_swagger(target, openapi="9")


# --------------------------------------------------------------------------- the CLI, for real


def test_cli_fetch_show_validate_example_against_the_local_endpoint(
    local_endpoint: Any, tmp_path: Path
) -> None:
    out = tmp_path / "swagger.json"
    fetched = local_endpoint.amlc("swagger", "fetch", "-e", "local", "-o", str(out))
    assert fetched.returncode == 0, fetched.stderr
    assert json.loads(out.read_text())["swagger"] == "2.0"
    assert "saved Swagger 2.0" in fetched.stdout

    v3 = local_endpoint.amlc("swagger", "fetch", "--openapi", "3")
    assert v3.returncode == 0, v3.stderr
    assert json.loads(v3.stdout)["openapi"].startswith("3.0")

    show = local_endpoint.amlc("swagger", "show", "--json")
    assert show.returncode == 0, show.stderr
    summary = json.loads(show.stdout)
    assert summary["source"] == local_endpoint.swagger_uri
    assert summary["convention"] == "inputs" and summary["auth"]["bearer"] is True

    validate = local_endpoint.amlc("swagger", "validate", "--endpoint", "local", "--openapi", "3.1")
    assert validate.returncode == 0, validate.stderr
    assert "valid OpenAPI 3.1.0 · 0 errors, 0 warnings" in validate.stdout

    example = local_endpoint.amlc("swagger", "example", "--rows", "4")
    assert example.returncode == 0, example.stderr
    body = json.loads(example.stdout)
    schema = load_schema(out)
    rows, _convention, _gp = unwrap(body, schema)
    assert len(rows) == 4
    schema.validate_rows(rows)
    for output in (fetched, v3, show, validate, example):
        assert local_endpoint.primary_key not in output.stdout + output.stderr


def test_cli_without_any_endpoint_says_how_to_get_one(amlc: Any) -> None:
    amlc("swagger", "show").assert_error(2, "no endpoint")
