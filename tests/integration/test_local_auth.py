"""The key-check middleware on its own: which requests reach the app, and key rotation."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from aml_client import paths
from aml_client.local._auth import KeyAuthMiddleware


class CountingApp:
    """Stands in for the inference server: counts the requests that reach it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, environ, start_response):
        self.calls += 1
        start_response("200 OK", [("Content-Type", "text/plain"), ("x-ms-run-fn-exec-ms", "1.5")])
        return [b"ok"]


def call(app, method: str = "POST", path: str = "/score", authorization: str | None = None):
    environ = {"REQUEST_METHOD": method, "PATH_INFO": path, "QUERY_STRING": ""}
    if authorization is not None:
        environ["HTTP_AUTHORIZATION"] = authorization
    seen: dict = {}

    def start_response(status, headers, exc_info=None):
        seen["status"] = int(status.split()[0])
        seen["headers"] = dict(headers)

    body = app(environ, start_response)
    data = b"".join(body)
    if hasattr(body, "close"):
        body.close()
    return seen["status"], seen["headers"], data


def write_keys(path: Path, primary: str, secondary: str) -> None:
    paths.write_private(path, json.dumps({"primary": primary, "secondary": secondary}))


@pytest.fixture
def setup(tmp_path: Path):
    keys = tmp_path / "keys.json"
    write_keys(keys, "p" * 43, "s" * 43)
    inner = CountingApp()
    log = tmp_path / "access.log"
    return KeyAuthMiddleware(inner, keys, log), inner, keys, log


def test_only_valid_keys_reach_the_app(setup) -> None:
    app, inner, _, _ = setup
    for header in (None, "", "Bearer", "Bearer wrong", "Basic " + "p" * 43, "Bearer " + "p" * 42):
        status, headers, body = call(app, authorization=header)
        assert status == 401
        assert "message" in json.loads(body)
        assert headers["WWW-Authenticate"].startswith("Bearer")
    assert inner.calls == 0
    assert call(app, authorization="Bearer " + "p" * 43)[0] == 200
    assert call(app, authorization="bearer " + "s" * 43)[0] == 200
    assert inner.calls == 2


def test_health_swagger_and_preflight_are_open(setup) -> None:
    app, inner, _, _ = setup
    assert call(app, "GET", "/")[0] == 200
    assert call(app, "GET", "/swagger.json")[0] == 200
    assert call(app, "OPTIONS", "/score")[0] == 200
    assert call(app, "POST", "/swagger.json")[0] == 401
    assert call(app, "GET", "/score")[0] == 401
    assert inner.calls == 3


def test_new_keys_apply_without_a_restart(setup) -> None:
    app, _, keys, _ = setup
    assert call(app, authorization="Bearer " + "p" * 43)[0] == 200
    write_keys(keys, "n" * 43, "s" * 43)
    assert call(app, authorization="Bearer " + "p" * 43)[0] == 401
    assert call(app, authorization="Bearer " + "n" * 43)[0] == 200


def test_a_missing_keys_file_refuses_everything(setup) -> None:
    app, inner, keys, _ = setup
    os.unlink(keys)
    status, _, body = call(app, authorization="Bearer " + "p" * 43)
    assert status == 401
    assert "no keys" in json.loads(body)["message"]
    assert inner.calls == 0


def test_access_log_names_the_key_but_never_holds_it(setup) -> None:
    app, _, _, log = setup
    call(app, authorization="Bearer " + "p" * 43)
    call(app, authorization="Bearer nope")
    lines = log.read_text().splitlines()
    assert len(lines) == 2
    assert (
        " POST /score 200 " in lines[0] and "key=primary" in lines[0] and "run_ms=1.5" in lines[0]
    )
    assert " POST /score 401 " in lines[1] and "key=refused" in lines[1] and "run_ms=-" in lines[1]
    assert "p" * 43 not in log.read_text()
