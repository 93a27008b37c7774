"""The endpoint client: sync ``Endpoint`` and async ``AsyncEndpoint``.

Both share everything but the send loop (request building, result checks), as httpx and the
Stainless SDKs do, so the two can never drift apart. How requests travel — the credential and
where it may go, the total deadline per attempt, retries, status → error — is the HTTP layer's
(:mod:`aml_client.http`), shared with batch scoring, the swagger fetch and the Swagger UI proxy.
"""

from __future__ import annotations

import json
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Self
from urllib.parse import urlsplit

from aml_client import errors
from aml_client.config import check_scoring_uri, sibling_uri, swagger_uri_for
from aml_client.envelope import normalise_response, unwrap, wrap
from aml_client.http.credentials import Credential
from aml_client.http.jsonbody import decode_json, encode_json
from aml_client.http.responses import DEPLOYMENT_HEADER, request_id
from aml_client.http.retry import RetryPolicy
from aml_client.http.session import AsyncSession, Reply, Session
from aml_client.schema import ScoringSchema, load_schema, parse_document
from aml_client.schema.reader import MAX_DOCUMENT_BYTES

if TYPE_CHECKING:
    from aml_client.config import Target

__all__ = [
    "AsyncEndpoint",
    "Endpoint",
    "RetryPolicy",
    "ScoreResult",
    "open_async_endpoint",
    "open_endpoint",
]

log = logging.getLogger("aml_client")

#: Largest swagger read from an endpoint.
_JSON = "application/json"


@dataclass
class ScoreResult:
    """Predictions plus what is needed to trace and measure the call."""

    predictions: list[Any]
    status_code: int
    request_id: str | None
    elapsed_s: float
    attempts: int
    raw: Any
    #: The deployment that answered (Azure's ``azureml-model-deployment`` response header).
    deployment: str | None = None


def new_request_id() -> str:
    """A client request id: 32 hex characters (Azure accepts at most 40)."""
    return os.urandom(16).hex()


def _check_deployment(name: str | None) -> str | None:
    if name is None:
        return None
    name = name.strip()
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name) or len(name) > 64:
        raise errors.ConfigError(
            f"deployment name {name!r} may use letters, digits, '-', '_' and '.' only"
        )
    return name


class _Core:
    """Everything the sync and async clients share; no I/O here."""

    def __init__(
        self,
        scoring_uri: str,
        credential: Credential | None,
        swagger: str | Path | dict[str, Any] | ScoringSchema | None,
        swagger_uri: str | None,
        deployment: str | None,
    ):
        check_scoring_uri(scoring_uri)
        self.scoring_uri = scoring_uri
        self.credential = credential
        self.deployment = _check_deployment(deployment)
        self.swagger_uri = swagger_uri or swagger_uri_for(scoring_uri)
        self.health_uri = sibling_uri(scoring_uri, "")
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
        deployment = f", deployment={self.deployment!r}" if self.deployment else ""
        return f"{self.scoring_uri!r}, credential={self.credential!r}{deployment}"

    def session_headers(self, extra: dict[str, str] | None) -> dict[str, str]:
        """Headers every request of this endpoint carries (set once on the pooled client)."""
        headers = {"Accept": _JSON, "Content-Type": _JSON, **(extra or {})}
        if self.deployment:
            headers[DEPLOYMENT_HEADER] = self.deployment
        return headers

    # -- requests ----------------------------------------------------------------------------

    def score_body(
        self,
        rows_or_payload: Any,
        schema: ScoringSchema | None,
        method: str | None,
        validate: bool,
        coerce: bool,
    ) -> tuple[bytes, int]:
        """Validate and wrap rows (or re-wrap a full payload): ``(request bytes, row count)``."""
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
            if validate:
                schema.check_global_parameters(global_parameters)
            body: Any = wrap(rows, schema, method=method, global_parameters=global_parameters)
        elif isinstance(rows_or_payload, dict) and method is None:
            body = rows_or_payload  # no swagger: send the caller's payload untouched
        else:
            body = wrap(rows, "data", method=method, global_parameters=global_parameters)
        return encode_json(body), len(rows)

    @staticmethod
    def raw_body(body: bytes | str | dict[str, Any] | list[Any]) -> bytes:
        if isinstance(body, bytes):
            return body
        if isinstance(body, str):
            return body.encode("utf-8")
        return encode_json(body)

    # -- responses ---------------------------------------------------------------------------

    def result(self, reply: Reply, started: float, rows: int | None) -> ScoreResult:
        """Predictions of a 2xx reply; exactly one per row sent, or ResponseFormatError."""
        elapsed = time.perf_counter() - started
        headers = reply.headers
        rid = request_id(headers)
        try:
            raw = decode_json(reply.content)
        except (json.JSONDecodeError, UnicodeDecodeError):
            text = reply.text
            raise errors.ResponseFormatError(
                f"HTTP {reply.status_code} but the body is not JSON: {text[:80]!r}",
                status_code=reply.status_code,
                request_id=rid,
                body=text[:2000],
            ) from None
        try:
            predictions = normalise_response(raw)
            if rows is not None and len(predictions) != rows:
                raise errors.ResponseFormatError(
                    f"{rows} row{'s' if rows != 1 else ''} sent but {len(predictions)} "
                    f"prediction{'s' if len(predictions) != 1 else ''} came back"
                )
        except errors.EndpointError as exc:
            exc.status_code = reply.status_code
            exc.request_id = rid
            exc.body = reply.text[:2000]
            raise
        if log.isEnabledFor(logging.DEBUG):
            log.debug(
                "scored %d prediction(s): HTTP %d in %.1f ms, request id %s",
                len(predictions),
                reply.status_code,
                elapsed * 1000,
                rid,
            )
        return ScoreResult(
            predictions,
            reply.status_code,
            rid,
            elapsed,
            reply.attempts,
            raw,
            headers.get(DEPLOYMENT_HEADER),
        )

    def schema_from(self, reply: Reply) -> ScoringSchema:
        """A fetched swagger body: parsed as JSON only (never a path), size-capped."""
        return load_schema(parse_document(reply.content, source=reply.url))

    def swagger_failed(self, exc: errors.EndpointError) -> errors.EndpointError:
        """A failed swagger download, reported as a swagger problem (not the model's)."""
        return errors.swagger_fetch_error(exc, self.swagger_uri)


_SESSION_OPTIONS = ("timeout_s", "retry", "verify")


class _EndpointBase:
    """What the sync and async endpoints share: construction, profiles, settings, repr."""

    def __init__(
        self,
        scoring_uri: str,
        credential: Credential | None = None,
        *,
        swagger: str | Path | dict[str, Any] | ScoringSchema | None = None,
        swagger_uri: str | None = None,
        timeout_s: float | None = 60.0,
        retry: RetryPolicy | None = None,
        verify: bool = True,
        headers: dict[str, str] | None = None,
        deployment: str | None = None,
    ):
        self._core = _Core(scoring_uri, credential, swagger, swagger_uri, deployment)
        self._timeout_s = timeout_s
        self._retry = retry or RetryPolicy()
        self._verify = verify
        self._headers = self._core.session_headers(headers)

    @classmethod
    def from_target(cls, target: Target, **kw: Any) -> Self:
        """The endpoint of an already resolved :class:`~aml_client.config.Target`
        (keyword arguments override its settings)."""
        kw.setdefault("verify", target.verify)
        kw.setdefault("deployment", target.deployment)
        if target.swagger_uri:
            kw.setdefault("swagger_uri", target.swagger_uri)
        return cls(target.scoring_uri, target.credential, **kw)

    def to_target(self, name: str | None = None) -> Target:
        """This endpoint as a :class:`~aml_client.config.Target` (what ``amlc bench`` and
        :func:`aml_client.run_bench` resolve a profile to), named ``name`` or by its host."""
        from aml_client.config import Target

        core = self._core
        return Target(
            name=name or urlsplit(core.scoring_uri).netloc,
            scoring_uri=core.scoring_uri,
            swagger_uri=core.swagger_uri,
            credential=core.credential,
            verify=self._verify,
            source="Endpoint",
            deployment=core.deployment,
        )

    @classmethod
    def from_profile(cls, name: str | None = None, **kw: Any) -> Self:
        """The endpoint of a named profile (or the default one, the environment, the local one)."""
        from aml_client.config import resolve_target

        return cls.from_target(resolve_target(name), **kw)

    @classmethod
    def from_local(cls, **kw: Any) -> Self:
        """The running local endpoint (``amlc local up``)."""
        return cls.from_profile("local", **kw)

    @property
    def scoring_uri(self) -> str:
        return self._core.scoring_uri

    @property
    def deployment(self) -> str | None:
        return self._core.deployment

    @property
    def swagger_uri(self) -> str:
        """Where the swagger is fetched from (settable, e.g. from a profile)."""
        return self._core.swagger_uri

    @swagger_uri.setter
    def swagger_uri(self, value: str) -> None:
        self._core.swagger_uri = value

    @property
    def retry(self) -> RetryPolicy:
        return self._retry

    def _session_kwargs(self) -> dict[str, Any]:
        return {
            "timeout_s": self._timeout_s,
            "retry": self._retry,
            "verify": self._verify,
            "headers": self._headers,
        }

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._core!r})"


class Endpoint(_EndpointBase):
    """A scoring endpoint, called synchronously.

    >>> with Endpoint("http://127.0.0.1:5001/score", KeyCredential(key)) as ep:
    ...     ep.score([{"age": 17, ...}]).predictions
    """

    def __init__(self, scoring_uri: str, credential: Credential | None = None, **kw: Any):
        super().__init__(scoring_uri, credential, **kw)
        self._session = Session(scoring_uri, credential, **self._session_kwargs())

    def schema(self) -> ScoringSchema:
        """The endpoint's schema: the ``swagger=`` given, else fetched once from swagger_uri
        (with the credential only when it is on the scoring URI's origin)."""
        core = self._core
        if core.schema is None:
            try:
                reply = self._session.request(
                    "GET", core.swagger_uri, max_bytes=MAX_DOCUMENT_BYTES
                )
            except errors.EndpointError as exc:
                raise core.swagger_failed(exc) from None
            core.schema = core.schema_from(reply)
        return core.schema

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
        """Validate rows against the swagger, wrap them in the endpoint's convention, send;
        exactly one prediction per row comes back, or ResponseFormatError.

        A full payload in either convention is unwrapped and re-wrapped for this endpoint.
        """
        schema = self._schema_for_scoring(validate)
        body, rows = self._core.score_body(rows_or_payload, schema, method, validate, coerce)
        return self._post(body, rows)

    def score_raw(
        self, body: bytes | str | dict[str, Any] | list[Any], *, rows: int | None = None
    ) -> ScoreResult:
        """Send ``body`` as it is: no validation, no wrapping. Given ``rows`` (how many the body
        holds), exactly that many predictions must come back, or ResponseFormatError."""
        return self._post(self._core.raw_body(body), rows)

    def health(self) -> str:
        """``GET /`` (no key needed, as on Azure); returns the body, e.g. ``Healthy``."""
        reply = self._session.request("GET", self._core.health_uri, auth=False)
        return reply.text.strip().strip('"')

    def _post(self, body: bytes, rows: int | None) -> ScoreResult:
        started = time.perf_counter()
        reply = self._session.request(
            "POST",
            self._core.scoring_uri,
            content=body,
            headers={"x-ms-client-request-id": new_request_id()},
            deployment=self._core.deployment,
        )
        return self._core.result(reply, started, rows)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


class AsyncEndpoint(_EndpointBase):
    """A scoring endpoint, called from asyncio; the same API as :class:`Endpoint`."""

    def __init__(self, scoring_uri: str, credential: Credential | None = None, **kw: Any):
        super().__init__(scoring_uri, credential, **kw)
        self._session = AsyncSession(scoring_uri, credential, **self._session_kwargs())

    async def schema(self) -> ScoringSchema:
        """The endpoint's schema: the ``swagger=`` given, else fetched once from swagger_uri."""
        core = self._core
        if core.schema is None:
            try:
                reply = await self._session.request(
                    "GET", core.swagger_uri, max_bytes=MAX_DOCUMENT_BYTES
                )
            except errors.EndpointError as exc:
                raise core.swagger_failed(exc) from None
            core.schema = core.schema_from(reply)
        return core.schema

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
        """Validate rows against the swagger, wrap them in the endpoint's convention, send;
        exactly one prediction per row comes back, or ResponseFormatError."""
        schema = await self._schema_for_scoring(validate)
        body, rows = self._core.score_body(rows_or_payload, schema, method, validate, coerce)
        return await self._post(body, rows)

    async def score_raw(
        self, body: bytes | str | dict[str, Any] | list[Any], *, rows: int | None = None
    ) -> ScoreResult:
        """Send ``body`` as it is: no validation, no wrapping. Given ``rows`` (how many the body
        holds), exactly that many predictions must come back, or ResponseFormatError."""
        return await self._post(self._core.raw_body(body), rows)

    async def health(self) -> str:
        """``GET /`` (no key needed); returns the body, e.g. ``Healthy``."""
        reply = await self._session.request("GET", self._core.health_uri, auth=False)
        return reply.text.strip().strip('"')

    async def _post(self, body: bytes, rows: int | None) -> ScoreResult:
        started = time.perf_counter()
        reply = await self._session.request(
            "POST",
            self._core.scoring_uri,
            content=body,
            headers={"x-ms-client-request-id": new_request_id()},
            deployment=self._core.deployment,
        )
        return self._core.result(reply, started, rows)

    async def aclose(self) -> None:
        await self._session.aclose()

    async def close(self) -> None:
        await self._session.aclose()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def open_endpoint(name: str | None = None, **kw: Any) -> Endpoint:
    """A sync :class:`Endpoint` for :func:`aml_client.config.resolve_target` ``(name)``."""
    return Endpoint.from_profile(name, **kw)


def open_async_endpoint(name: str | None = None, **kw: Any) -> AsyncEndpoint:
    """An :class:`AsyncEndpoint` for :func:`aml_client.config.resolve_target` ``(name)``."""
    return AsyncEndpoint.from_profile(name, **kw)
