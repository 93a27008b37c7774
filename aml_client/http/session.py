"""The one way amlc sends HTTP: pooled httpx clients with the credential, deadline and retry
rules every caller shares (score, batch, swagger fetch, the Swagger UI proxy).

* The credential goes only to the origin it belongs to (:class:`~aml_client.http.origin.
  OriginAuth`), and redirects are never followed by httpx: a POST reports where a 3xx pointed
  (:class:`~aml_client.errors.RedirectError`); a GET follows a redirect only within its own
  origin, at most five times, so a swagger that moved on the same host is still found and the
  key never reaches another host or port.
* Each attempt has a total deadline (connect + send + whole body; see ``deadline``), and each
  answer is read to at most ``max_bytes``.
* Retries follow ``retry``: a POST is sent again only when the model cannot have run.

:class:`Session` and :class:`AsyncSession` share everything but the send loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from aml_client import errors
from aml_client.http.credentials import Credential
from aml_client.http.deadline import TOTAL_TIMEOUT, AsyncDeadlineTransport, DeadlineTransport
from aml_client.http.origin import OriginAuth, origin_of, same_origin
from aml_client.http.responses import error_for_response
from aml_client.http.retry import RetryPolicy, parse_retry_after
from aml_client.version import __version__

__all__ = ["AsyncSession", "Reply", "Session"]

log = logging.getLogger("aml_client.http")

#: ``amlc/<version>``: the package's own version, so an endpoint's logs say which release called.
USER_AGENT = f"amlc/{__version__}"
#: The one content-coding rule of every path (score, score -o, bench): ask for these, decode
#: them, and treat any other ``Content-Encoding`` on a success as a malformed answer.
ACCEPT_ENCODING = "gzip, deflate"
#: Largest answer read from an endpoint (AKS accepts requests up to 100 MB).
MAX_RESPONSE_BYTES = 100 * 1024 * 1024
#: Same-origin redirects a GET follows.
MAX_REDIRECTS = 5
_ERROR_BODY_BYTES = 64 * 1024


@dataclass(slots=True)
class Reply:
    """A complete answer: status, headers and the body read within the deadline."""

    status_code: int
    reason_phrase: str
    headers: httpx.Headers
    content: bytes
    url: str
    #: Attempts it took (1 when the first one answered).
    attempts: int = 1

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")


class TooLarge(Exception):
    """An answer over ``max_bytes`` (turned into the caller's own error)."""


def _env_proxy(url: str) -> str | None:
    """The proxy the environment names for ``url`` (HTTP(S)_PROXY, NO_PROXY), as httpx would."""
    scheme, host, _port = origin_of(url)
    if not host or urllib.request.proxy_bypass(host):
        return None
    return urllib.request.getproxies().get(scheme)


class _SessionBase:
    def __init__(
        self,
        origin_url: str,
        credential: Credential | None = None,
        *,
        timeout_s: float | None = 60.0,
        verify: bool = True,
        retry: RetryPolicy | None = None,
        headers: Mapping[str, str] | None = None,
        max_connections: int = 100,
    ):
        self.origin_url = origin_url
        self.credential = credential
        self.timeout_s = timeout_s
        self.verify = verify
        self.retry = retry or RetryPolicy()
        self.auth = OriginAuth(credential, origin_url) if credential is not None else None
        self.headers = httpx.Headers(
            {"User-Agent": USER_AGENT, "Accept-Encoding": ACCEPT_ENCODING, **(headers or {})}
        )
        self._extensions = {TOTAL_TIMEOUT: timeout_s}
        self._client_kwargs: dict[str, Any] = {
            "timeout": httpx.Timeout(timeout_s),
            "follow_redirects": False,
            "headers": self.headers,
            "trust_env": False,
        }
        self._transport_kwargs: dict[str, Any] = {
            "verify": verify,
            "limits": httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            "proxy": _env_proxy(origin_url),
        }

    # -- decisions shared by both send loops --------------------------------------------------

    def _delay(
        self, error: errors.EndpointError, attempt: int, reply: Reply | None
    ) -> float | None:
        """Seconds before the next attempt (the server's Retry-After when it gave a sane
        one), or None when ``error`` is final."""
        if not error.retryable or attempt >= self.retry.max_retries:
            return None
        retry_after = parse_retry_after(reply.headers) if reply is not None else None
        return self.retry.delay_s(attempt, retry_after)

    def _transport_error(
        self, exc: httpx.HTTPError, method: str, url: str
    ) -> errors.EndpointError:
        where = httpx.URL(url).netloc.decode("ascii", "replace")
        if isinstance(exc, httpx.ConnectTimeout | httpx.PoolTimeout):
            return errors.ConnectionFailedError(
                f"timed out connecting to {where}", retryable=True
            )
        if isinstance(exc, httpx.TimeoutException):
            return errors.EndpointTimeoutError(
                f"no complete answer from {where} within {self.timeout_s:g} s (the client's "
                "timeout, for connecting, sending and reading the whole answer)",
                retryable=method == "GET",
            )
        if isinstance(exc, httpx.ConnectError):
            reason = str(exc) or type(exc).__name__
            return errors.ConnectionFailedError(
                f"cannot connect to {where}: {reason}", retryable=True
            )
        return errors.ConnectionFailedError(
            f"connection to {where} failed: {type(exc).__name__}: {exc}",
            retryable=method == "GET",
        )

    def _redirect(self, reply: Reply, method: str) -> str | None:
        """The next URL of a GET redirect within the same origin, else None."""
        location = reply.headers.get("location")
        if method != "GET" or not location or not 300 <= reply.status_code < 400:
            return None
        target = str(httpx.URL(reply.url).join(location))
        return target if same_origin(target, reply.url) else None

    def _log_retry(self, error: errors.EndpointError, attempt: int, delay: float) -> None:
        log.info("%s; retry %d in %.2f s", error, attempt + 1, delay)


def _codings(value: str | None) -> list[str]:
    """The content codings of an ``Accept-Encoding`` / ``Content-Encoding`` value, lower case
    and without parameters (``q=``)."""
    return [
        part.split(";", 1)[0].strip().lower() for part in (value or "").split(",") if part.strip()
    ]


def check_encoding(request: httpx.Request, response: httpx.Response) -> None:
    """A success encoded with a coding the request did not ask for is refused
    (ResponseFormatError): httpx would decode some of them (``br`` with brotli installed) and
    pass others through undecoded, so what "the same answer" means would depend on the
    installed packages and differ from the bench's load processes."""
    if response.status_code >= 300:
        return
    asked = set(_codings(request.headers.get("accept-encoding"))) | {"identity"}
    unasked = [c for c in _codings(response.headers.get("content-encoding")) if c not in asked]
    if unasked:
        raise errors.ResponseFormatError(
            f"HTTP {response.status_code} encoded with {', '.join(unasked)!s}, which was not "
            f"asked for (Accept-Encoding: {request.headers.get('accept-encoding', 'none')})",
            status_code=response.status_code,
        )


def _too_large(url: str, max_bytes: int) -> errors.ResponseFormatError:
    return errors.ResponseFormatError(
        f"the answer from {url} is larger than {max_bytes // (1024 * 1024)} MiB; not read"
    )


class Session(_SessionBase):
    """Synchronous sends (one pooled ``httpx.Client``)."""

    def __init__(self, origin_url: str, credential: Credential | None = None, **kw: Any):
        super().__init__(origin_url, credential, **kw)
        self.client = httpx.Client(
            transport=DeadlineTransport(**self._transport_kwargs), **self._client_kwargs
        )

    def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        deployment: str | None = None,
        max_bytes: int = MAX_RESPONSE_BYTES,
        auth: bool = True,
    ) -> Reply:
        """Send with retries; a 2xx :class:`Reply`, else the typed error."""
        attempt = 0
        redirects = 0
        while True:
            try:
                reply = self._attempt(method, url, content, headers, params, max_bytes, auth)
            except httpx.HTTPError as exc:
                error = self._transport_error(exc, method, url)
                cause: BaseException | None = exc
                answer: Reply | None = None
            except TooLarge:
                raise _too_large(url, max_bytes) from None
            else:
                if reply.status_code < 300:
                    reply.attempts = attempt + 1
                    return reply
                target = self._redirect(reply, method)
                if target is not None and redirects < MAX_REDIRECTS:
                    redirects += 1
                    url, params = target, None
                    continue
                error = error_for_response(reply, method=method, deployment=deployment)
                cause, answer = None, reply
            delay = self._delay(error, attempt, answer)
            if delay is None:
                raise error from cause
            self._log_retry(error, attempt, delay)
            time.sleep(delay)
            attempt += 1

    def exchange(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        max_bytes: int = MAX_RESPONSE_BYTES,
    ) -> Reply:
        """One attempt, the answer whatever its status (a proxy passes errors on); only a
        failure to get an answer raises (ConnectionFailedError, EndpointTimeoutError)."""
        try:
            return self._attempt(method, url, content, headers, None, max_bytes, True)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc, method, url) from exc
        except TooLarge:
            raise _too_large(url, max_bytes) from None

    def _attempt(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        max_bytes: int,
        auth: bool,
    ) -> Reply:
        request = self.client.build_request(
            method, url, content=content, headers=headers, params=params,
            extensions=self._extensions,
        )
        response = self.client.send(request, stream=True, auth=self.auth if auth else None)
        try:
            check_encoding(response.request, response)
            limit = max_bytes if response.status_code < 300 else _ERROR_BODY_BYTES
            chunks = []
            size = 0
            for chunk in response.iter_bytes():
                size += len(chunk)
                if size > limit:
                    if response.status_code < 300:
                        raise TooLarge()
                    break
                chunks.append(chunk)
        finally:
            response.close()
        return Reply(
            response.status_code,
            response.reason_phrase,
            response.headers,
            b"".join(chunks),
            str(response.url),
        )

    def close(self) -> None:
        self.client.close()


class AsyncSession(_SessionBase):
    """Sends from asyncio (one pooled ``httpx.AsyncClient``); the same rules as Session."""

    def __init__(self, origin_url: str, credential: Credential | None = None, **kw: Any):
        super().__init__(origin_url, credential, **kw)
        self.client = httpx.AsyncClient(
            transport=AsyncDeadlineTransport(**self._transport_kwargs), **self._client_kwargs
        )

    async def request(
        self,
        method: str,
        url: str,
        *,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        params: Mapping[str, str] | None = None,
        deployment: str | None = None,
        max_bytes: int = MAX_RESPONSE_BYTES,
        auth: bool = True,
    ) -> Reply:
        """Send with retries; a 2xx :class:`Reply`, else the typed error."""
        attempt = 0
        redirects = 0
        while True:
            try:
                reply = await self._attempt(
                    method, url, content, headers, params, max_bytes, auth
                )
            except httpx.HTTPError as exc:
                error = self._transport_error(exc, method, url)
                cause: BaseException | None = exc
                answer: Reply | None = None
            except TooLarge:
                raise _too_large(url, max_bytes) from None
            else:
                if reply.status_code < 300:
                    reply.attempts = attempt + 1
                    return reply
                target = self._redirect(reply, method)
                if target is not None and redirects < MAX_REDIRECTS:
                    redirects += 1
                    url, params = target, None
                    continue
                error = error_for_response(reply, method=method, deployment=deployment)
                cause, answer = None, reply
            delay = self._delay(error, attempt, answer)
            if delay is None:
                raise error from cause
            self._log_retry(error, attempt, delay)
            await asyncio.sleep(delay)
            attempt += 1

    async def _attempt(
        self,
        method: str,
        url: str,
        content: bytes | None,
        headers: Mapping[str, str] | None,
        params: Mapping[str, str] | None,
        max_bytes: int,
        auth: bool,
    ) -> Reply:
        request = self.client.build_request(
            method, url, content=content, headers=headers, params=params,
            extensions=self._extensions,
        )
        response = await self.client.send(
            request, stream=True, auth=self.auth if auth else None
        )
        try:
            check_encoding(response.request, response)
            limit = max_bytes if response.status_code < 300 else _ERROR_BODY_BYTES
            chunks = []
            size = 0
            async for chunk in response.aiter_bytes():
                size += len(chunk)
                if size > limit:
                    if response.status_code < 300:
                        raise TooLarge()
                    break
                chunks.append(chunk)
        finally:
            await response.aclose()
        return Reply(
            response.status_code,
            response.reason_phrase,
            response.headers,
            b"".join(chunks),
            str(response.url),
        )

    async def aclose(self) -> None:
        await self.client.aclose()

