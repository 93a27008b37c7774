"""The endpoint client: sync ``Endpoint`` and async ``AsyncEndpoint`` over httpx.

Both share everything but the send loop (request building, retry decisions, error mapping),
as httpx and the Stainless SDKs do, so the two can never drift apart. Retries follow azure-core
and the Stainless SDKs: exponential backoff with jitter, the server's ``Retry-After`` when it
gives a sane one, and only for failures that did not run the model (409, 429, 502-504,
refused connections).
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import random
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self
from urllib.parse import urlsplit, urlunsplit

import httpx

from aml_client import errors
from aml_client.auth import Credential, TokenCredential
from aml_client.envelope import normalise_response, unwrap, wrap
from aml_client.schema import ScoringSchema, load_schema, parse_document

__all__ = ["AsyncEndpoint", "Endpoint", "RetryPolicy", "ScoreResult"]

log = logging.getLogger("aml_client")

#: Statuses worth another try: the request never reached the model, or the platform says so.
RETRY_STATUSES = frozenset({409, 429, 502, 503, 504})
_USER_AGENT = "amlc/0.1"


@dataclass
class RetryPolicy:
    """How often and how patiently to retry. ``RetryPolicy(max_retries=0)`` turns retries off
    (as a load test must: a retry hides a failure and distorts latency)."""

    max_retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    jitter: float = 0.25
    max_retry_after_s: float = 60.0

    def delay_s(self, retry_number: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (0-based): the server's Retry-After
        when it is within 0..max_retry_after_s, else capped exponential backoff minus jitter."""
        if retry_after_s is not None and 0 <= retry_after_s <= self.max_retry_after_s:
            return retry_after_s
        backoff = min(self.backoff_base_s * 2**retry_number, self.backoff_max_s)
        return backoff * (1 - self.jitter * random.random())


@dataclass
class ScoreResult:
    """Predictions plus what is needed to trace and measure the call."""

    predictions: list[Any]
    status_code: int
    request_id: str | None
    elapsed_s: float
    attempts: int
    raw: Any


def parse_retry_after(headers: httpx.Headers, now: float | None = None) -> float | None:
    """``retry-after-ms``, then ``Retry-After`` as seconds or an HTTP date, in seconds."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _sibling_uri(scoring_uri: str, name: str) -> str:
    """``https://h/api/x/score`` -> ``https://h/api/x/<name>``; other paths get ``/<name>``."""
    parts = urlsplit(scoring_uri)
    path = parts.path.rstrip("/")
    is_score = path.endswith("/score") or path == "score"
    path = path[: -len("score")] if is_score else path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path + name, "", ""))


class _Core:
    """Everything the sync and async clients share; no I/O here."""

    def __init__(
        self,
        scoring_uri: str,
        credential: Credential | None,
        swagger: str | Path | dict | ScoringSchema | None,
        swagger_uri: str | None,
        timeout_s: float | httpx.Timeout | None,
        retry: RetryPolicy | None,
        verify: bool,
        headers: dict[str, str] | None,
    ):
        if not scoring_uri.startswith(("http://", "https://")):
            raise errors.ConfigError(
                f"scoring URI must start with http:// or https://: {scoring_uri}"
            )
        self.scoring_uri = scoring_uri
        self.credential = credential
        self.swagger_uri = swagger_uri or _sibling_uri(scoring_uri, "swagger.json")
        self.health_uri = _sibling_uri(scoring_uri, "")
        self.retry = retry or RetryPolicy()
        self.verify = verify
        if not isinstance(timeout_s, httpx.Timeout):
            timeout_s = httpx.Timeout(timeout_s)
        self.timeout = timeout_s
        self.extra_headers = dict(headers or {})
        self.schema: ScoringSchema | None = None
        self.swagger_given = swagger is not None
        self.swagger_missing = False  # the endpoint publishes none (404): stop asking
        if isinstance(swagger, ScoringSchema):
            self.schema = swagger
        elif isinstance(swagger, str) and swagger.startswith(("http://", "https://")):
            self.swagger_uri = swagger
            self.swagger_given = True
        elif swagger is not None:
            self.schema = load_schema(swagger)

    def __repr__(self) -> str:
        return f"{self.scoring_uri!r}, credential={self.credential!r}"

    # -- requests ----------------------------------------------------------------------------

    def headers(
        self, *, auth: bool = True, json_body: bool = True, request_id: str | None = None
    ) -> dict[str, str]:
        """Headers for one attempt; retries of one call share its ``x-ms-client-request-id``
        so the attempts can be correlated in the endpoint's logs."""
        headers = {
            "User-Agent": _USER_AGENT,
            "Accept": "application/json",
            "x-ms-client-request-id": request_id or new_request_id(),
            **self.extra_headers,
        }
        if json_body:
            headers["Content-Type"] = "application/json"
        if auth and self.credential is not None:
            headers.update(self.credential.auth_headers())
        return headers

    def score_body(
        self,
        rows_or_payload: Any,
        schema: ScoringSchema | None,
        method: str | None,
        validate: bool,
        coerce: bool,
    ) -> bytes:
        """Validate and wrap rows (or re-wrap a full payload) into the request bytes."""
        global_parameters = None
        if isinstance(rows_or_payload, dict):
            rows, _, global_parameters = unwrap(rows_or_payload)
        else:
            # a list of rows, or any iterable of them (a RowSource keeps its GlobalParameters)
            global_parameters = getattr(rows_or_payload, "global_parameters", None)
            rows = list(rows_or_payload)
        if schema is not None:
            if validate or coerce:
                rows = schema.validate_rows(rows, coerce=coerce)
            body = wrap(rows, schema, method=method, global_parameters=global_parameters)
        elif isinstance(rows_or_payload, dict) and method is None:
            body = rows_or_payload  # no swagger: send the caller's payload untouched
        else:
            body = wrap(rows, "data", method=method, global_parameters=global_parameters)
        return encode_json(body)

    @staticmethod
    def raw_body(body: bytes | str | dict | list) -> bytes:
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode("utf-8")
        return encode_json(body)

    # -- responses ---------------------------------------------------------------------------

    def retry_delay(self, response: httpx.Response | None, retry_number: int) -> float | None:
        """Seconds to wait before retrying, or None when the outcome is final."""
        if retry_number >= self.retry.max_retries:
            return None
        if response is None:
            return self.retry.delay_s(retry_number)
        if response.status_code not in RETRY_STATUSES:
            return None
        return self.retry.delay_s(retry_number, parse_retry_after(response.headers))

    def refresh_credential(self, response: httpx.Response, refreshed: bool) -> bool:
        """A token may have expired between fetch and use: refresh it once after a 401."""
        if refreshed or response.status_code != 401:
            return False
        if isinstance(self.credential, TokenCredential):
            self.credential.invalidate()
            return True
        return False

    def result(self, response: httpx.Response, started: float, attempts: int) -> ScoreResult:
        elapsed = time.perf_counter() - started
        request_id = _request_id(response)
        if response.status_code >= 300:
            raise error_for_response(response)
        try:
            raw = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise errors.ResponseFormatError(
                f"HTTP {response.status_code} but the body is not JSON: {response.text[:80]!r}",
                status_code=response.status_code,
                request_id=request_id,
                body=response.text[:2000],
            ) from None
        try:
            predictions = normalise_response(raw)
        except errors.EndpointError as exc:
            exc.status_code = response.status_code
            exc.request_id = request_id
            exc.body = response.text[:2000]
            raise
        log.debug(
            "scored %d prediction(s): HTTP %d in %.1f ms, attempts=%d, request id %s",
            len(predictions),
            response.status_code,
            elapsed * 1000,
            attempts,
            request_id,
        )
        return ScoreResult(predictions, response.status_code, request_id, elapsed, attempts, raw)

    def transport_error(self, exc: httpx.HTTPError) -> errors.EndpointError:
        where = urlsplit(self.scoring_uri).netloc
        if isinstance(exc, httpx.TimeoutException):
            if isinstance(exc, httpx.ConnectTimeout):
                return errors.ConnectionFailedError(f"timed out connecting to {where}")
            return errors.EndpointTimeoutError(
                f"no answer from {where} within {self.timeout.read} s (client timeout)"
            )
        if isinstance(exc, httpx.ConnectError):
            reason = str(exc) or type(exc).__name__
            return errors.ConnectionFailedError(f"cannot connect to {where}: {reason}")
        return errors.ConnectionFailedError(
            f"connection to {where} failed: {type(exc).__name__}: {exc}"
        )


def new_request_id() -> str:
    """A client request id: 32 hex characters (Azure accepts at most 40)."""
    return uuid.uuid4().hex[:32]


def encode_json(body: Any) -> bytes:
    """Compact JSON with real UTF-8; NaN is refused since the endpoint's parser refuses it too."""
    try:
        return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode()
    except ValueError as exc:
        raise errors.ValidationError([errors.RowProblem(None, None, str(exc))]) from None


def _request_id(response: httpx.Response) -> str | None:
    return response.headers.get("x-ms-request-id") or response.headers.get("x-request-id")


def _server_message(response: httpx.Response) -> str:
    text = response.text.strip()
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return text[:300]
    if isinstance(body, dict):
        for key in ("message", "error", "Message", "detail"):
            if key in body:
                value = body[key]
                if isinstance(value, dict):
                    value = value.get("message") or json.dumps(value)
                return str(value)[:300]
    if isinstance(body, str):
        return body[:300]
    return text[:300]


def error_for_response(response: httpx.Response) -> errors.EndpointError:
    """The typed error for an HTTP error status, carrying the server's message and request id."""
    status = response.status_code
    message = _server_message(response)
    reason = response.reason_phrase or ""
    detail = f"HTTP {status} {reason}".strip() + (f": {message}" if message else "")
    kwargs: dict[str, Any] = {
        "status_code": status,
        "request_id": _request_id(response),
        "body": response.text[:2000],
    }
    if status in (401, 403):
        hint = "the key or token was refused" if status == 401 else "no permission"
        return errors.AuthenticationError(f"{detail} ({hint})", **kwargs)
    if status == 404:
        return errors.NotFoundError(detail, **kwargs)
    if status == 408:
        return errors.EndpointTimeoutError(f"{detail} (the endpoint's request timeout)", **kwargs)
    if status == 413:
        return errors.PayloadTooLargeError(detail, **kwargs)
    if status == 429:
        retry_after = parse_retry_after(response.headers)
        return errors.RateLimitError(detail, retry_after_s=retry_after, **kwargs)
    if status in (424, 500):
        return errors.ModelError(detail, **kwargs)
    if status in (502, 503, 504):
        retry_after = parse_retry_after(response.headers)
        return errors.UnavailableError(detail, retry_after_s=retry_after, **kwargs)
    if 400 <= status < 500:
        return errors.BadRequestError(detail, **kwargs)
    if 300 <= status < 400:
        where = response.headers.get("location", "?")
        return errors.EndpointError(f"HTTP {status}: redirected to {where}; use that URI", **kwargs)
    return errors.EndpointError(detail, **kwargs)


class _EndpointBase:
    """What the sync and async endpoints share: construction, profiles, settings, repr."""

    def __init__(
        self,
        scoring_uri: str,
        credential: Credential | None = None,
        *,
        swagger: str | Path | dict | ScoringSchema | None = None,
        swagger_uri: str | None = None,
        timeout_s: float | httpx.Timeout | None = 60.0,
        retry: RetryPolicy | None = None,
        verify: bool = True,
        headers: dict[str, str] | None = None,
    ):
        self._core = _Core(
            scoring_uri, credential, swagger, swagger_uri, timeout_s, retry, verify, headers
        )
        self._client = self._make_client(self._core.timeout, verify)

    def _make_client(self, timeout: httpx.Timeout, verify: bool) -> Any:
        raise NotImplementedError

    @classmethod
    def from_profile(cls, name: str | None = None, **kw: Any) -> Self:
        """The endpoint of a named profile (or the default one, the environment, the local one)."""
        from aml_client.config import resolve_target

        target = resolve_target(name)
        kw.setdefault("swagger_uri", target.swagger_uri)
        kw.setdefault("verify", target.verify)
        return cls(target.scoring_uri, target.credential, **kw)

    @classmethod
    def from_local(cls, **kw: Any) -> Self:
        """The running local endpoint (``amlc local up``)."""
        return cls.from_profile("local", **kw)

    @property
    def scoring_uri(self) -> str:
        return self._core.scoring_uri

    @property
    def swagger_uri(self) -> str:
        """Where the swagger is fetched from (settable, e.g. from a profile)."""
        return self._core.swagger_uri

    @swagger_uri.setter
    def swagger_uri(self, value: str) -> None:
        self._core.swagger_uri = value

    @property
    def retry(self) -> RetryPolicy:
        return self._core.retry

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._core!r})"


class Endpoint(_EndpointBase):
    """A scoring endpoint, called synchronously.

    >>> with Endpoint("http://127.0.0.1:5001/score", KeyCredential(key)) as ep:
    ...     ep.score([{"age": 17, ...}]).predictions
    """

    def _make_client(self, timeout: httpx.Timeout, verify: bool) -> httpx.Client:
        return httpx.Client(timeout=timeout, verify=verify)

    def schema(self) -> ScoringSchema:
        """The endpoint's schema: the ``swagger=`` given, else fetched once from swagger_uri."""
        if self._core.schema is None:
            response = self._send("GET", self._core.swagger_uri, None, auth=True)
            if response.status_code >= 400:
                raise error_for_response(response)
            # The body is only ever JSON, never a file name, and bounded.
            doc = parse_document(response.content, source=self._core.swagger_uri)
            self._core.schema = load_schema(doc)
        return self._core.schema

    def _schema_for_scoring(self, validate: bool) -> ScoringSchema | None:
        if not validate or self._core.swagger_missing:
            return self._core.schema
        try:
            return self.schema()
        except errors.NotFoundError:
            if self._core.swagger_given:
                raise
            # scripts without inference-schema decorators publish no swagger: nothing to check
            log.warning("no swagger at %s; sending rows unvalidated", self._core.swagger_uri)
            self._core.swagger_missing = True
            return None

    def score(
        self,
        rows_or_payload: Any,
        *,
        method: str | None = None,
        validate: bool = True,
        coerce: bool = False,
    ) -> ScoreResult:
        """Validate rows against the swagger, wrap them in the endpoint's convention, send.

        A full payload in either convention is unwrapped and re-wrapped for this endpoint.
        """
        schema = self._schema_for_scoring(validate)
        body = self._core.score_body(rows_or_payload, schema, method, validate, coerce)
        return self._post(body)

    def score_raw(self, body: bytes | str | dict | list) -> ScoreResult:
        """Send ``body`` as it is: no validation, no wrapping."""
        return self._post(self._core.raw_body(body))

    def health(self) -> str:
        """``GET /`` (no key needed, as on Azure); returns the body, e.g. ``Healthy``."""
        response = self._send("GET", self._core.health_uri, None, auth=False)
        if response.status_code >= 400:
            raise error_for_response(response)
        return response.text.strip().strip('"')

    def _post(self, body: bytes) -> ScoreResult:
        core = self._core
        started = time.perf_counter()
        attempts = 0
        refreshed = False
        request_id = new_request_id()
        while True:
            attempts += 1
            try:
                response = self._send("POST", core.scoring_uri, body, auth=True, rid=request_id)
            except errors.ConnectionFailedError:
                delay = core.retry_delay(None, attempts - 1)
                if delay is None:
                    raise
                log.info("connection failed; retry %d in %.2f s", attempts, delay)
                time.sleep(delay)
                continue
            if core.refresh_credential(response, refreshed):
                refreshed = True
                continue
            delay = core.retry_delay(response, attempts - 1)
            if delay is None:
                return core.result(response, started, attempts)
            log.info("HTTP %d; retry %d in %.2f s", response.status_code, attempts, delay)
            time.sleep(delay)

    def _send(
        self, method: str, url: str, body: bytes | None, *, auth: bool, rid: str | None = None
    ) -> httpx.Response:
        headers = self._core.headers(auth=auth, json_body=body is not None, request_id=rid)
        try:
            return self._client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._core.transport_error(exc) from exc

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Endpoint:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncEndpoint(_EndpointBase):
    """A scoring endpoint, called from asyncio; the same API as :class:`Endpoint`."""

    def _make_client(self, timeout: httpx.Timeout, verify: bool) -> httpx.AsyncClient:
        return httpx.AsyncClient(timeout=timeout, verify=verify)

    async def schema(self) -> ScoringSchema:
        """The endpoint's schema: the ``swagger=`` given, else fetched once from swagger_uri."""
        if self._core.schema is None:
            response = await self._send("GET", self._core.swagger_uri, None, auth=True)
            if response.status_code >= 400:
                raise error_for_response(response)
            # The body is only ever JSON, never a file name, and bounded.
            doc = parse_document(response.content, source=self._core.swagger_uri)
            self._core.schema = load_schema(doc)
        return self._core.schema

    async def _schema_for_scoring(self, validate: bool) -> ScoringSchema | None:
        if not validate or self._core.swagger_missing:
            return self._core.schema
        try:
            return await self.schema()
        except errors.NotFoundError:
            if self._core.swagger_given:
                raise
            log.warning("no swagger at %s; sending rows unvalidated", self._core.swagger_uri)
            self._core.swagger_missing = True
            return None

    async def score(
        self,
        rows_or_payload: Any,
        *,
        method: str | None = None,
        validate: bool = True,
        coerce: bool = False,
    ) -> ScoreResult:
        """Validate rows against the swagger, wrap them in the endpoint's convention, send."""
        schema = await self._schema_for_scoring(validate)
        body = self._core.score_body(rows_or_payload, schema, method, validate, coerce)
        return await self._post(body)

    async def score_raw(self, body: bytes | str | dict | list) -> ScoreResult:
        """Send ``body`` as it is: no validation, no wrapping."""
        return await self._post(self._core.raw_body(body))

    async def health(self) -> str:
        """``GET /`` (no key needed); returns the body, e.g. ``Healthy``."""
        response = await self._send("GET", self._core.health_uri, None, auth=False)
        if response.status_code >= 400:
            raise error_for_response(response)
        return response.text.strip().strip('"')

    async def _post(self, body: bytes) -> ScoreResult:
        core = self._core
        started = time.perf_counter()
        attempts = 0
        refreshed = False
        request_id = new_request_id()
        while True:
            attempts += 1
            try:
                response = await self._send(
                    "POST", core.scoring_uri, body, auth=True, rid=request_id
                )
            except errors.ConnectionFailedError:
                delay = core.retry_delay(None, attempts - 1)
                if delay is None:
                    raise
                log.info("connection failed; retry %d in %.2f s", attempts, delay)
                await asyncio.sleep(delay)
                continue
            if core.refresh_credential(response, refreshed):
                refreshed = True
                continue
            delay = core.retry_delay(response, attempts - 1)
            if delay is None:
                return core.result(response, started, attempts)
            log.info("HTTP %d; retry %d in %.2f s", response.status_code, attempts, delay)
            await asyncio.sleep(delay)

    async def _send(
        self, method: str, url: str, body: bytes | None, *, auth: bool, rid: str | None = None
    ) -> httpx.Response:
        headers = self._core.headers(auth=auth, json_body=body is not None, request_id=rid)
        try:
            return await self._client.request(method, url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            raise self._core.transport_error(exc) from exc

    async def aclose(self) -> None:
        await self._client.aclose()

    async def close(self) -> None:
        await self._client.aclose()

    async def __aenter__(self) -> AsyncEndpoint:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()
