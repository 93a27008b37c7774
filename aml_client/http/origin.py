"""Where a credential may go: only to the origin (scheme, host, port) it was issued for.

A swagger URI on another host or port, or a redirect anywhere, must never receive the key.
:class:`OriginAuth` is the one place that decides: every request amlc sends goes through it.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Generator
from urllib.parse import urlsplit

import httpx

from aml_client.http.credentials import Credential

__all__ = ["OriginAuth", "origin_of", "same_origin"]

_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str | httpx.URL) -> tuple[str, str, int]:
    """``(scheme, host, port)`` with the default port filled in and the host lower-cased."""
    if isinstance(url, httpx.URL):
        scheme, host, port = url.scheme, url.host, url.port
    else:
        parts = urlsplit(url)
        scheme, host, port = parts.scheme, parts.hostname or "", parts.port
    scheme = scheme.lower()
    return scheme, host.lower(), port if port is not None else _DEFAULT_PORTS.get(scheme, 0)


def same_origin(a: str | httpx.URL, b: str | httpx.URL) -> bool:
    return origin_of(a) == origin_of(b)


class OriginAuth(httpx.Auth):
    """Runs ``credential``'s flow for requests to ``origin`` only; others go out bare."""

    def __init__(self, credential: Credential, origin_url: str):
        self.credential = credential
        self.origin = origin_of(origin_url)

    def _allowed(self, request: httpx.Request) -> bool:
        url = request.url
        port = url.port if url.port is not None else _DEFAULT_PORTS.get(url.scheme, 0)
        return (url.scheme, url.host, port) == self.origin

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        # The credential's flow, inlined: one generator per request on the hot path.
        if not self._allowed(request):
            request.headers.pop("Authorization", None)
            yield request
            return
        credential = self.credential
        secret = credential.secret()
        request.headers["Authorization"] = f"Bearer {secret}"
        response = yield request
        if response.status_code == 401 and credential.refreshable:
            credential.invalidate(secret)
            request.headers["Authorization"] = f"Bearer {credential.secret()}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        if not self._allowed(request):
            request.headers.pop("Authorization", None)
            yield request
            return
        credential = self.credential
        secret = await credential.secret_async()
        request.headers["Authorization"] = f"Bearer {secret}"
        response = yield request
        if response.status_code == 401 and credential.refreshable:
            credential.invalidate(secret)
            request.headers["Authorization"] = f"Bearer {await credential.secret_async()}"
            yield request

    def __repr__(self) -> str:
        scheme, host, port = self.origin
        return f"OriginAuth({self.credential!r} for {scheme}://{host}:{port})"
