"""Who may use a web page that amlc serves on this machine: admission checks before any work.

Two of amlc's local pages act with the user's credential: Locust's web UI under ``amlc bench
--web`` (it starts and re-aims load tests) and the Swagger UI of ``amlc swagger serve`` (its
proxy scores with the key). Any other page the user's browser opens, and any other local
process, could otherwise drive them. :class:`Admission` decides, from a request's method,
query and headers, and refuses:

* a ``Host`` header naming anything but this server (127.0.0.1 / localhost and the port): DNS
  rebinding would otherwise make another site this server's own origin;
* an ``Origin`` header from another origin: browsers send it with every ``POST``, so a
  cross-origin ``<form>`` or ``fetch`` ends here;
* a ``Sec-Fetch-Site`` other than ``same-origin`` or ``none`` (typed, bookmarked, opened from a
  terminal): an ``<img>`` or link on another site, including another port of 127.0.0.1 — the
  same *site*, to which cookies are still sent;
* with a per-run secret, a request with neither the secret (``?token=…`` or the
  ``X-Amlc-Token`` header, for scripts) nor the cookie that the printed address sets (HttpOnly,
  SameSite=Strict, named per port): a page opened from the printed address swaps the secret in
  its address bar for the cookie (303).

:class:`WebGuard` applies it as WSGI middleware (Locust's Flask app); the Swagger UI's own
server asks :meth:`Admission.check` directly. Answers lose CORS grants (no other origin may read
them) and may not be framed.
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, quote, urlencode

if TYPE_CHECKING:
    from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

    from _typeshed import OptExcInfo

__all__ = [
    "ENV_ALLOWED_HOSTS",
    "TOKEN_HEADER",
    "TOKEN_PARAM",
    "Admission",
    "Verdict",
    "WebGuard",
    "local_hosts",
    "new_token",
]

#: Extra ``Host`` names (``name`` or ``name:port``, comma-separated) a plain Locust UI answers,
#: e.g. when it listens on every interface and is opened from another machine.
ENV_ALLOWED_HOSTS = "AMLC_WEB_ALLOWED_HOSTS"
#: The query parameter that carries the per-run secret.
TOKEN_PARAM = "token"
#: The request header a script may carry the per-run secret in instead.
TOKEN_HEADER = "X-Amlc-Token"
#: ``Sec-Fetch-Site`` values of requests the page itself makes, or the user makes by hand.
_OWN_FETCH_SITES = frozenset({"same-origin", "none"})
#: Bind addresses that mean "every interface" (no single Host name follows from them).
_ANY_INTERFACE = frozenset({"", "*", "0.0.0.0", "::"})
_DEFAULT_PORTS = {"http": 80, "https": 443}
ADDED_HEADERS = (("X-Frame-Options", "DENY"), ("Referrer-Policy", "no-referrer"))

#: A request's header by name (case-insensitive), or None.
HeaderGetter = Callable[[str], "str | None"]


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


@dataclass(frozen=True)
class Verdict:
    """What to do with a request: serve it (``status`` 0) or answer ``status`` at once."""

    status: int = 0
    message: str = ""
    #: headers of the answer (the 303's Location and Set-Cookie)
    headers: tuple[tuple[str, str], ...] = ()
    #: the query string without the secret, to serve (or forward) instead of the original
    query: str = ""
    #: admitted on the secret itself (query or header), not on the cookie alone
    by_token: bool = False

    @property
    def admitted(self) -> bool:
        return self.status == 0


class Admission:
    """The checks for one server: its ``Host`` names, its origins and its secret (if any)."""

    def __init__(
        self,
        *,
        hosts: Iterable[str],
        scheme: str = "http",
        token: str | None = None,
        cookie_name: str = "amlc_web",
        what: str = "this load test UI",
        printed_by: str = "amlc bench",
        trusted_origins: Iterable[str] = (),
        open_preflight: bool = False,
    ) -> None:
        self.hosts = frozenset(h.lower() for h in hosts)
        #: other origins the owner allowed: they may call from their own site (with the secret)
        self.trusted_origins = frozenset(o.lower().rstrip("/") for o in trusted_origins)
        self.origins = frozenset(f"{scheme}://{h}" for h in self.hosts) | self.trusted_origins
        self.token = token
        self.cookie_name = cookie_name
        self.what = what
        self.printed_by = printed_by
        #: answer CORS preflights (``OPTIONS``) without the secret: browsers never send it there
        self.open_preflight = open_preflight

    def check(self, method: str, path: str, query: str, header: HeaderGetter) -> Verdict:
        """The verdict on a request for ``path`` (decoded, as WSGI's ``PATH_INFO``) with
        ``query`` (as sent)."""
        refusal = self._refusal(header)
        if refusal is not None:
            return Verdict(403, refusal)
        if self.token is None or (method == "OPTIONS" and self.open_preflight):
            return Verdict(query=query)
        pairs = parse_qsl(query, keep_blank_values=True)
        given = [v for k, v in pairs if k == TOKEN_PARAM]
        rest = urlencode([(k, v) for k, v in pairs if k != TOKEN_PARAM]) if given else query
        sent = header(TOKEN_HEADER)
        if sent is not None:
            given.append(sent)
        if given and all(self._is_token(v) for v in given):
            if method == "GET" and sent is None and _is_navigation(header):
                # Swap the secret in the address bar for the cookie.
                location = _own_path(path) + (f"?{rest}" if rest else "")
                return Verdict(
                    303, headers=(("Location", location), ("Set-Cookie", self.cookie()))
                )
            return Verdict(query=rest, by_token=True)
        if given or not self._is_token(_cookie(header("Cookie"), self.cookie_name)):
            return Verdict(
                401,
                f"{self.what} needs its secret: open the address that {self.printed_by} "
                f"printed (…/?{TOKEN_PARAM}=…), or send it in the {TOKEN_HEADER} header",
            )
        return Verdict(query=rest)

    def cookie(self) -> str:
        return f"{self.cookie_name}={self.token}; Path=/; HttpOnly; SameSite=Strict"

    def _refusal(self, header: HeaderGetter) -> str | None:
        host = (header("Host") or "").lower()
        if host not in self.hosts:
            return f"refused: the Host header {host!r} does not name this server"
        origin = header("Origin")
        if origin is not None and origin.lower() not in self.origins:
            return f"refused: requests from {origin} may not drive {self.what}"
        site = header("Sec-Fetch-Site")
        trusted = origin is not None and origin.lower() in self.trusted_origins
        if site is not None and site not in _OWN_FETCH_SITES and not trusted:
            return (
                f"refused: a {site} request may not drive {self.what}; "
                "open its address directly"
            )
        return None

    def _is_token(self, value: str | None) -> bool:
        if value is None or self.token is None:
            return False
        return hmac.compare_digest(value.encode("utf-8"), self.token.encode("utf-8"))


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
        self.admission = Admission(hosts=hosts, scheme=scheme, token=token, cookie_name=cookie_name)

    @property
    def token(self) -> str | None:
        return self.admission.token

    def __call__(self, environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        def header(name: str) -> str | None:
            value = environ.get("HTTP_" + name.upper().replace("-", "_"))
            return None if value is None else str(value)

        raw_path = str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))
        verdict = self.admission.check(
            str(environ.get("REQUEST_METHOD", "GET")),
            raw_path,
            str(environ.get("QUERY_STRING", "")),
            header,
        )
        if not verdict.admitted:
            reason = {303: "See Other", 401: "Unauthorized", 403: "Forbidden"}
            status = f"{verdict.status} {reason.get(verdict.status, 'Forbidden')}"
            return _answer(start_response, status, verdict.message, list(verdict.headers))
        environ = {**environ, "QUERY_STRING": verdict.query}

        def start(
            status: str, headers: list[tuple[str, str]], exc_info: OptExcInfo | None = None, /
        ) -> Callable[[bytes], object]:
            kept = [(k, v) for k, v in headers if not k.lower().startswith("access-control-")]
            return start_response(status, kept + list(ADDED_HEADERS), exc_info)

        return self.app(environ, start)


def _own_path(raw: str) -> str:
    """The request's path, quoted again, and never ``//host`` (which a browser would follow
    to another site)."""
    path = "/" + raw.lstrip("/")
    return quote(path.encode("latin-1", "replace"), safe="/:@!$&'()*+,;=-._~")


def _is_navigation(header: HeaderGetter) -> bool:
    mode = header("Sec-Fetch-Mode")
    if mode is not None:
        return mode == "navigate"
    return "text/html" in (header("Accept") or "")


def _cookie(value: str | None, name: str) -> str | None:
    """One cookie's value; other sites' cookies on 127.0.0.1 may be malformed, so no parser
    that gives up on the whole header."""
    for part in (value or "").split(";"):
        key, sep, found = part.strip().partition("=")
        if sep and key == name:
            return found
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
            *ADDED_HEADERS,
            *(headers or []),
        ],
    )
    return [body]
