"""The web UI's admission checks over real HTTP: a WSGI app behind :class:`WebGuard`, served on
127.0.0.1, sees only the requests that pass. (``amlc bench --web`` and plain Locust with the guard
are in test_bench_webui.py.)"""

from __future__ import annotations

import socket
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import httpx
import pytest
from support.web import serving

from aml_client.bench.launch import check_port_free
from aml_client.bench.load.webguard import WebGuard, local_hosts, new_token
from aml_client.errors import ConfigError

TOKEN = new_token()


@dataclass
class _App:
    """Stands in for Locust's Flask app: records what reaches it, grants CORS as Locust does."""

    calls: list[dict[str, Any]] = field(default_factory=list)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        self.calls.append({"path": environ["PATH_INFO"], "query": environ.get("QUERY_STRING", "")})
        start_response(
            "200 OK",
            [("Content-Type", "text/plain"), ("Access-Control-Allow-Origin", "*")],
        )
        return [b"ran"]


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@dataclass
class _Served:
    app: _App
    base: str
    port: int

    def client(self, **headers: str) -> httpx.Client:
        return httpx.Client(base_url=self.base, headers=headers, timeout=5)


def _serve(token: str | None) -> Iterator[_Served]:
    app = _App()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    guard = WebGuard(app, hosts=local_hosts(port), token=token, cookie_name=f"amlc_web_{port}")
    server: WSGIServer = make_server("127.0.0.1", port, guard, handler_class=_Quiet)
    with serving(server):
        yield _Served(app, f"http://127.0.0.1:{port}", port)


@pytest.fixture
def guarded() -> Iterator[_Served]:
    yield from _serve(TOKEN)


@pytest.fixture
def open_ui() -> Iterator[_Served]:
    """The guard of a plain Locust run: Host/Origin/Sec-Fetch-Site checks, no secret."""
    yield from _serve(None)


def test_foreign_host_origin_and_cross_site_requests_never_reach_the_app(
    guarded: _Served,
) -> None:
    with guarded.client() as client:
        host = client.get(f"/?token={TOKEN}", headers={"Host": f"evil.example:{guarded.port}"})
        other_port = client.get(f"/?token={TOKEN}", headers={"Host": "127.0.0.1:1"})
        origin = client.post(
            f"/swarm?token={TOKEN}",
            data={"user_count": "5", "spawn_rate": "5"},
            headers={"Origin": "http://127.0.0.1:8000"},
        )
        null_origin = client.post(f"/swarm?token={TOKEN}", headers={"Origin": "null"})
        same_site = client.get(
            "/stop", headers={"Sec-Fetch-Site": "same-site", "Cookie": _cookie(guarded)}
        )
        cross_site = client.get(f"/?token={TOKEN}", headers={"Sec-Fetch-Site": "cross-site"})
    for refused in (host, other_port, origin, null_origin, same_site, cross_site):
        assert refused.status_code == 403, refused.request
        assert refused.text.startswith("refused: ")
        assert "access-control-allow-origin" not in refused.headers
    assert "'evil.example:" in host.text
    assert "requests from http://127.0.0.1:8000" in origin.text
    assert "a same-site request" in same_site.text
    assert guarded.app.calls == []


def test_without_the_secret_nothing_runs(guarded: _Served) -> None:
    with guarded.client() as client:
        bare = client.post("/swarm", data={"user_count": "5"})
        wrong = client.get("/?token=" + "x" * len(TOKEN))
        wrong_cookie = client.get("/stop", headers={"Cookie": f"amlc_web_{guarded.port}=nope"})
        # another run's cookie (another port) is not this run's
        other_run = client.get("/stop", headers={"Cookie": f"amlc_web_1={TOKEN}"})
        # a wrong token is refused even beside a good cookie
        mixed = client.get("/?token=nope", headers={"Cookie": _cookie(guarded)})
    for refused in (bare, wrong, wrong_cookie, other_run, mixed):
        assert refused.status_code == 401, refused.request
        assert "open the address that amlc bench printed" in refused.text
    assert guarded.app.calls == []


def test_the_printed_address_swaps_the_secret_for_a_cookie(guarded: _Served) -> None:
    own = f"http://127.0.0.1:{guarded.port}"
    with guarded.client() as client:
        opened = client.get(
            f"/hdr?token={TOKEN}&x=1",
            headers={"Sec-Fetch-Site": "none", "Sec-Fetch-Mode": "navigate"},
        )
        assert opened.status_code == 303 and guarded.app.calls == []
        assert opened.headers["location"] == "/hdr?x=1"
        cookie = opened.headers["set-cookie"]
        assert cookie.startswith(f"amlc_web_{guarded.port}={TOKEN};")
        assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
        # The UI's own requests then carry the cookie (httpx keeps it, as a browser does).
        page = client.get("/hdr?x=1", headers={"Sec-Fetch-Site": "same-origin"})
        swarm = client.post(
            "/swarm", data={"user_count": "1"}, headers={"Origin": own, "Sec-Fetch-Site": "none"}
        )
        via_localhost = client.get("/stats/requests", headers={"Host": f"localhost:{guarded.port}"})
    assert page.status_code == swarm.status_code == via_localhost.status_code == 200
    assert page.text == "ran"
    assert "access-control-allow-origin" not in page.headers  # Locust's CORS grant is dropped
    assert page.headers["x-frame-options"] == "DENY"
    assert [c["path"] for c in guarded.app.calls] == ["/hdr", "/swarm", "/stats/requests"]


def test_a_script_may_use_the_secret_in_the_query(guarded: _Served) -> None:
    with guarded.client() as client:
        answer = client.get(f"/hdr/json?token={TOKEN}&a=b")
    assert answer.status_code == 200
    assert guarded.app.calls == [{"path": "/hdr/json", "query": "a=b"}]  # the secret stays here


def test_the_redirect_never_leaves_this_server(guarded: _Served) -> None:
    with socket.create_connection(("127.0.0.1", guarded.port), timeout=5) as raw:
        raw.sendall(
            f"GET //evil.example/x?token={TOKEN} HTTP/1.1\r\nHost: 127.0.0.1:{guarded.port}\r\n"
            "Sec-Fetch-Mode: navigate\r\nConnection: close\r\n\r\n".encode()
        )
        received = b""
        while b"\r\n\r\n" not in received:  # the head may arrive in several segments
            chunk = raw.recv(4096)
            if not chunk:
                break
            received += chunk
        head = received.decode("latin-1")
    assert head.startswith("HTTP/1.0 303") or head.startswith("HTTP/1.1 303"), head
    assert "\r\nLocation: /evil.example/x\r\n" in head


def test_a_plain_locust_ui_needs_no_secret_but_keeps_the_checks(open_ui: _Served) -> None:
    with open_ui.client() as client:
        page = client.get("/", headers={"Sec-Fetch-Site": "none"})
        evil = client.post(
            "/swarm", data={"user_count": "5"}, headers={"Origin": "http://evil.example"}
        )
        rebound = client.get("/", headers={"Host": f"rebind.example:{open_ui.port}"})
    assert page.status_code == 200
    assert evil.status_code == rebound.status_code == 403
    assert [c["path"] for c in open_ui.app.calls] == ["/"]


def test_local_hosts() -> None:
    assert local_hosts(8089) == {"127.0.0.1:8089", "localhost:8089", "[::1]:8089"}
    hosts = local_hosts(8089, bind_host="10.0.0.5", extra=["Box.LAN", "proxy.lan:443", " ", "::2"])
    assert {"10.0.0.5:8089", "box.lan:8089", "proxy.lan:443", "[::2]:8089"} <= hosts
    assert local_hosts(8089, bind_host="0.0.0.0") == local_hosts(8089)
    assert "localhost" in local_hosts(80)  # browsers leave the default port out


def test_check_port_free() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port} .*--web-port"):
            check_port_free("127.0.0.1", port)
    check_port_free("127.0.0.1", port)  # free again


def _cookie(served: _Served) -> str:
    return f"amlc_web_{served.port}={TOKEN}"
