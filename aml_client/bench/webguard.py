"""Who may drive Locust's web UI: admission checks in front of every request it gets.

Locust's web UI starts, stops and reconfigures load tests that carry the user's credential, yet
Locust answers any Host, lets flask-cors grant every origin, and accepts ``POST /swarm`` from
any page. :class:`WebGuard` is WSGI middleware wrapped around the UI's Flask app
(:func:`protect`), so it sees every request, Locust's routes, its assets and the HDR tab alike,
and refuses, before Locust runs anything:

* a ``Host`` header naming anything but this server (127.0.0.1 / localhost and the port): DNS
  rebinding would otherwise make another site this UI's own origin;
* an ``Origin`` header from another origin: browsers send it with every ``POST``, so a
  cross-origin ``<form>`` or ``fetch`` to ``/swarm`` ends here;
* a ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` (typed, bookmarked, opened from a
  terminal): an ``<img>`` or link on another site, including another port of 127.0.0.1 — the
  same *site*, to which cookies are still sent;
* with a per-run secret (``amlc bench --web``), a request with neither ``?token=<secret>`` nor
  the cookie that the first such request sets (HttpOnly, SameSite=Strict, named per port).

Answers lose the CORS headers Locust adds (no other origin may read them) and may not be
framed. Locust's own ``--web-login`` is not used for the secret: it is a username/password or
OAuth page that each locustfile must wire up, not a link that opens the UI in one click.
"""

from __future__ import annotations

import hmac
import os
import secrets
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo
    from locust.web import WebUI

__all__ = [
    "ENV_ALLOWED_HOSTS",
    "TOKEN_PARAM",
    "WebGuard",
    "local_hosts",
    "new_token",
    "protect",
]

#: Extra ``Host`` names (``name`` or ``name:port``, comma-separated) a plain Locust UI answers,
#: e.g. when it listens on every interface and is opened from another machine.
ENV_ALLOWED_HOSTS = "AMLC_WEB_ALLOWED_HOSTS"
#: The query parameter that carries the per-run secret.
TOKEN_PARAM = "token"
#: ``Sec-Fetch-Site`` values of requests the UI itself makes, or the user makes by hand.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})
#: Bind addresses that mean "every interface" (no single Host name follows from them).
_ANY_INTERFACE = frozenset({"", "*", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
_ADDED_HEADERS = [("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer")]


def new_token() -> str:
    """A fresh per-run secret (256 bits, URL-safe)."""
    return secrets.token_urlsafe(32)


def _host_port(name: str, port: int) -> str:
    name = name.strip().lower()
    if ":" in name and not name.startswith("["):  # a bare IPv6 address
        name = f"[{name}]"
    return f"{name}:{port}"


def local_hosts(
    port: int, *, bind_host: str = "", scheme: str = "http", extra: Iterable[str] = ()
) -> frozenset[str]:
    """The ``Host`` values that name a server on ``port`` of this machine (plus ``extra``:
    ``name`` or ``name:port``)."""
    names = ["127.0.0.1", "localhost", "::1"]
    if bind_host not in _ANY_INTERFACE:
        names.append(bind_host)
    hosts = {_host_port(n, port) for n in names}
    for item in extra:
        item = item.strip().lower()
        if not item:
            continue
        has_port = item.rsplit(":", 1)[-1].isdigit() and (
            item.startswith("[") or item.count(":") == 1
        )
        hosts.add(item if has_port else _host_port(item, port))
    if _DEFAULT_PORTS.get(scheme) == port:  # browsers leave a default port out of Host
        hosts |= {h.rsplit(":", 1)[0] for h in hosts}
    return frozenset(hosts)


class WebGuard:
    """WSGI middleware that answers 403 (foreign Host, Origin or Sec-Fetch-Site) or 401 (no
    secret) before the wrapped application sees the request."""

    def __init__(
        self,
        app: WSGIApplication,
        *,
        hosts: Iterable[str],
        scheme: str = "http",
        token: str | None = None,
        cookie_name: str = "amlc_web",
    ) -> None:
        self.app = app
        self.hosts = frozenset(h.lower() for h in hosts)
        self.origins = frozenset(f"{scheme}://{h}" for h in self.hosts)
        self.token = token
        self.cookie_name = cookie_name

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        refusal = self._refusal(environ)
        if refusal is not None:
            return _answer(start_response, "403 Forbidden", refusal)
        if self.token is not None:
            query = parse_qsl(environ.get("QUERY_STRING", ""), keep_blank_values=True)
            given = [v for k, v in query if k == TOKEN_PARAM]
            rest = urlencode([(k, v) for k, v in query if k != TOKEN_PARAM])
            if given and all(self._is_token(v) for v in given):
                if environ.get("REQUEST_METHOD") == "GET" and _is_navigation(environ):
                    # Swap the secret in the address bar for the cookie.
                    location = _own_path(environ) + (f"?{rest}" if rest else "")
                    return _answer(
                        start_response,
                        "303 See Other",
                        "",
                        [("Location", location), ("Set-Cookie", self._cookie())],
                    )
                environ = {**environ, "QUERY_STRING": rest}
            elif given or not self._is_token(_cookie(environ, self.cookie_name)):
                return _answer(
                    start_response,
                    "401 Unauthorized",
                    "this load test UI needs its secret: open the address that amlc bench "
                    f"printed (…/?{TOKEN_PARAM}=…)",
                )

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept + _ADDED_HEADERS, exc_info)

        return self.app(environ, start)

    def _refusal(self, environ: WSGIEnvironment) -> str | None:
        host = str(environ.get("HTTP_HOST", "")).lower()
        if host not in self.hosts:
            return f"refused: the Host header {host!r} does not name this server"
        origin = environ.get("HTTP_ORIGIN")
        if origin is not None and str(origin).lower() not in self.origins:
            return f"refused: requests from {origin} may not drive this load test UI"
        site = environ.get("HTTP_SEC_FETCH_SITE")
        if site is not None and site not in _OWN_FETCH_SITES:
            return (
                f"refused: a {site} request may not drive this load test UI; "
                "open its address directly"
            )
        return None

    def _is_token(self, value: str | None) -> bool:
        if value is None or self.token is None:
            return False
        return hmac.compare_digest(value.encode("utf-8"), self.token.encode("utf-8"))

    def _cookie(self) -> str:
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"


def _own_path(environ: WSGIEnvironment) -> str:
    """The request's path, quoted again, and never ``//host`` (which a browser would follow
    to another site)."""
    raw = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
    path = "/" + raw.lstrip("/")
    return quote(path.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=-._~")


def _is_navigation(environ: WSGIEnvironment) -> bool:
    mode = environ.get("HTTP_SEC_FETCH_MODE")
    if mode is not None:
        return bool(mode == "navigate")
    return "text/html" in str(environ.get("HTTP_ACCEPT", ""))


def _cookie(environ: WSGIEnvironment, name: str) -> str | None:
    """One cookie's value; other sites' cookies on 127.0.0.1 may be malformed, so no parser
    that gives up on the whole header."""
    for part in str(environ.get("HTTP_COOKIE", "")).split(";"):
        key, sep, value = part.strip().partition("=")
        if sep and key == name:
            return value
    return None


def _answer(
    start_response: StartResponse,
    status: str,
    message: str,
    headers: list[tuple[str, str]] | None = None,
) -> list[bytes]:
    body = (message + "\n").encode("utf-8") if message else b""
    start_response(
        status,
        [
            ("Content-Type", "text/plain; charset=utf-8"),
            ("Content-Length", str(len(body))),
            ("Cache-Control", "no-store"),
            *_ADDED_HEADERS,
            *(headers or []),
        ],
    )
    return [body]


def protect(web_ui: WebUI, *, token: str | None = None) -> WebGuard:
    """Put a :class:`WebGuard` in front of a Locust web UI (before or after it starts).

    It answers the names of this machine on the UI's port, the address it is bound to, and
    those in ``AMLC_WEB_ALLOWED_HOSTS``. With ``token``, every request needs the secret.
    """
    app = web_ui.app
    if app is None:
        raise RuntimeError("the web UI has no application to protect")
    scheme = "https" if web_ui.tls_cert and web_ui.tls_key else "http"
    extra = os.environ.get(ENV_ALLOWED_HOSTS, "").split(",")
    hosts = local_hosts(int(web_ui.port), bind_host=web_ui.host, scheme=scheme, extra=extra)
    guard = WebGuard(
        app.wsgi_app,
        hosts=hosts,
        scheme=scheme,
        token=token,
        cookie_name=f"amlc_web_{web_ui.port}",  # cookies are shared by every port of a host
    )
    app.wsgi_app = guard  # type: ignore[method-assign]
    return guard
