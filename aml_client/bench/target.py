"""What the load processes send, and where: the endpoint, its auth header and the request bodies.

Bodies are built and validated once, up front, through the same schema → rows → envelope path
as ``amlc score`` (so a bad payload fails before any load is applied), then kept as encoded
bytes: the hot loop only sends bytes and records latency.

The ``Authorization`` header is not part of the target: it comes from a
:class:`~aml_client.bench.auth.BenchAuth` that stays fresh for the whole run (pushed by the
parent over a pipe, or asked of the credential in-process), so :meth:`RunTarget.to_wire` never
carries a secret, and nothing here logs it.
"""

from __future__ import annotations

import dataclasses
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aml_client.bench.auth import BenchAuth, describe_header
from aml_client.bench.protocol import TargetWire

if TYPE_CHECKING:
    from aml_client.config import Target
    from aml_client.errors import AmlcError
    from aml_client.http.credentials import Credential
    from aml_client.schema import ScoringSchema

__all__ = [
    "ENV_ENDPOINT",
    "ENV_PAYLOAD",
    "RunTarget",
    "build_bodies",
    "build_run_target",
    "named_deployments",
    "probe_deployments",
]

log = logging.getLogger(__name__)

#: Profile name for a plain ``locust -f loadtests/locustfile.py`` run (like ``--endpoint``).
ENV_ENDPOINT = "AMLC_ENDPOINT"
#: Payload file for a plain ``locust -f loadtests/locustfile.py`` run (like ``--payload``).
ENV_PAYLOAD = "AMLC_PAYLOAD"

#: Distinct request bodies kept in memory; longer inputs rotate over the first ones.
MAX_BODIES = 10_000
#: The request header that pins a deployment (aml_client.http.responses.DEPLOYMENT_HEADER;
#: not imported from there, which would bring httpx into the load processes).
_DEPLOYMENT_HEADER = "azureml-model-deployment"


@dataclass
class RunTarget:
    """Everything a load process needs to send scoring requests."""

    name: str
    scoring_uri: str
    #: Headers without a secret (content type, deployment).
    headers: dict[str, str] = field(repr=False)
    bodies: list[bytes] = field(repr=False)
    verify: bool = True
    timeout_s: float = 60.0
    payload: dict[str, Any] = field(default_factory=dict)
    #: rows in each body (same order), so the prediction count can be checked; None: unknown
    rows: list[int] | None = None
    #: Whether requests carry a credential (the header itself comes from ``auth``).
    authenticated: bool = False
    #: The credential (parent only; never sent to a load process).
    credential: Credential | None = field(default=None, repr=False, compare=False)
    #: Where the load's ``Authorization`` value comes from (load processes only).
    auth: BenchAuth | None = field(default=None, repr=False, compare=False)
    #: Environment variables holding the secret (parent only: kept from load processes).
    secret_env: tuple[str, ...] = field(default=(), repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.bodies:
            raise ValueError("no request bodies")
        if self.rows is not None and len(self.rows) != len(self.bodies):
            raise ValueError("one row count per body")
        parts = urlsplit(self.scoring_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) scoring URI: {self.scoring_uri!r}")
        #: headers per pinned deployment (None: as configured), with the auth value they hold
        self._merged: dict[str | None, tuple[str | None, dict[str, str]]] = {}

    def request_headers(self, deployment: str | None = None) -> dict[str, str]:
        """The headers of the next request, with the current ``Authorization`` value, pinned
        to ``deployment`` (``azureml-model-deployment``) when one is given."""
        auth = self.auth
        if auth is None and deployment is None:
            return self.headers
        value = auth.header() if auth is not None else None
        cached = self._merged.get(deployment)
        if cached is None or cached[0] != value:
            merged = dict(self.headers)
            if value:
                merged["Authorization"] = value
            if deployment is not None:
                merged[_DEPLOYMENT_HEADER] = deployment
            cached = self._merged[deployment] = (value, merged)
        return cached[1]

    def unauthorized(self, headers: dict[str, str]) -> None:
        """A request sent with ``headers`` got 401: ask for a fresh credential."""
        value = headers.get("Authorization")
        if self.auth is not None and value:
            self.auth.refused(value)

    @property
    def base_url(self) -> str:
        parts = urlsplit(self.scoring_uri)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def path(self) -> str:
        parts = urlsplit(self.scoring_uri)
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def describe(self) -> dict[str, Any]:
        """Safe to print and to store in a report: no header values."""
        value = self.auth.header() if self.auth is not None else None
        if value is None and self.credential is not None:
            value = "Bearer (credential)"
        return {
            "endpoint": self.name,
            "scoring_uri": self.scoring_uri,
            **describe_header(value),
            "verify_tls": self.verify,
            "timeout_s": self.timeout_s,
            "payload": self.payload,
        }

    def to_wire(self) -> TargetWire:
        """This target for a load process's stdin: no secret (that follows as ``auth`` lines)."""
        return TargetWire(
            name=self.name,
            scoring_uri=self.scoring_uri,
            headers=self.headers,
            bodies=[b.decode("utf-8") for b in self.bodies],
            verify=self.verify,
            timeout_s=self.timeout_s,
            payload=self.payload,
            rows=self.rows,
            authenticated=self.authenticated,
        )

    @classmethod
    def from_wire(cls, wire: TargetWire) -> RunTarget:
        return cls(
            name=wire.name,
            scoring_uri=wire.scoring_uri,
            headers=dict(wire.headers),
            bodies=[b.encode("utf-8") for b in wire.bodies],
            verify=wire.verify,
            timeout_s=wire.timeout_s,
            payload=dict(wire.payload),
            rows=list(wire.rows) if wire.rows is not None else None,
            authenticated=wire.authenticated,
        )


def _load_schema(
    target: Target, swagger: str | Path | None
) -> tuple[ScoringSchema | None, AmlcError | None]:
    """The endpoint's schema (a given swagger file wins), or ``None`` and why it is missing."""
    from aml_client.errors import AmlcError

    if swagger is not None:
        from aml_client.schema import load_schema

        return load_schema(swagger), None
    from aml_client.client import Endpoint

    try:
        endpoint = Endpoint.from_target(target, timeout_s=30.0)
        try:
            return endpoint.schema(), None
        finally:
            endpoint.close()
    except AmlcError as exc:
        return None, exc


def build_bodies(
    schema: ScoringSchema | None,
    payload: str | Path | None,
    *,
    rows_per_request: int = 1,
    coerce: bool | None = None,
    encoding: str | None = None,
) -> tuple[list[bytes], dict[str, Any]]:
    """Request bodies (encoded) plus a summary of them for the report.

    ``payload`` is anything ``amlc score`` reads (JSON in either convention, a bare list of rows,
    JSONL, CSV, ``-``); rows are validated against ``schema`` when there is one, then cut into
    requests of ``rows_per_request`` rows that the load rotates over. As in ``amlc score``, only
    text (CSV cells) is converted to the declared types unless ``coerce`` says otherwise
    (:meth:`~aml_client.rows.RowSource.converts_values`). Without a payload the swagger's
    example is sent. ``encoding`` names the payload's encoding (no byte-order mark).
    """
    from aml_client.envelope import wrap
    from aml_client.errors import ConfigError, InputError

    if rows_per_request < 1:
        raise InputError("rows per request must be at least 1")
    global_parameters: Any = None
    convention: Any = None
    if payload is None:
        if schema is None:
            raise ConfigError(
                "no payload and no swagger to build an example from: give --payload FILE"
            )
        rows = schema.example_rows(rows_per_request)
        source = "swagger example"
    else:
        from aml_client.rows import read_rows

        row_source = read_rows(payload, schema=schema, encoding=encoding)
        rows = []
        for row in row_source:
            rows.append(row)
            if len(rows) >= MAX_BODIES * rows_per_request:
                break
        if not rows:
            raise InputError(f"{payload}: no rows")
        global_parameters = getattr(row_source, "global_parameters", None)
        convention = getattr(row_source, "convention", None)
        if schema is not None:
            rows = schema.validate_rows(rows, coerce=row_source.converts_values(coerce))
            schema.check_global_parameters(global_parameters)
        source = str(payload)
    from aml_client.errors import ValidationError
    from aml_client.http.jsonbody import encode_json

    envelope: Any = schema if schema is not None else (convention or "data")
    bodies = []
    counts = []
    for start in range(0, len(rows), rows_per_request):
        chunk = rows[start : start + rows_per_request]
        body = wrap(chunk, envelope, global_parameters=global_parameters)
        try:
            bodies.append(encode_json(body))
        except ValidationError as exc:  # NaN/Infinity: name the row in the whole payload
            problems = [
                dataclasses.replace(p, row=p.row + start) if p.row is not None else p
                for p in exc.problems
            ]
            raise ValidationError(problems, source=str(payload) if payload else None) from None
        counts.append(len(chunk))
    sizes = [len(b) for b in bodies]
    summary = {
        "source": source,
        "rows": len(rows),
        "rows_per_request": rows_per_request,
        "bodies": len(bodies),
        "bytes_min": min(sizes),
        "bytes_max": max(sizes),
        "bytes_mean": round(sum(sizes) / len(sizes), 1),
        "validated": schema is not None,
        "row_counts": counts,
    }
    return bodies, summary


def build_run_target(
    endpoint: str | Target | None = None,
    payload: str | Path | None = None,
    *,
    swagger: str | Path | None = None,
    rows_per_request: int = 1,
    timeout_s: float = 60.0,
    insecure: bool = False,
    encoding: str | None = None,
    deployment: str | None = None,
    deployments: list[str] | None = None,
) -> RunTarget:
    """Resolve the endpoint like ``amlc score`` does (or take one already resolved) and build
    the request bodies up front.

    ``deployments`` (a blue/green run) pins each request to one of them as it is sent, so the
    target itself pins none, whatever the profile says.
    """
    from aml_client.config import Target, resolve_target

    target = endpoint if isinstance(endpoint, Target) else resolve_target(endpoint)
    if insecure:
        target = dataclasses.replace(target, verify=False)
    if deployment is not None:
        target = dataclasses.replace(target, deployment=deployment)
    if deployments:
        target = dataclasses.replace(target, deployment=None)
    schema, failure = _load_schema(target, swagger)
    if schema is None:
        problem = f"{type(failure).__name__}: {failure}"
        if payload is None:
            from aml_client.errors import (
                ConfigError,
                CredentialError,
                EndpointError,
                NotFoundError,
            )

            if isinstance(failure, CredentialError):
                raise failure  # no credential to send at all: a payload would not help
            message = (
                f"could not read the endpoint's swagger ({problem}) to build an example payload: "
                "give --payload FILE or --swagger FILE"
            )
            # Unreachable (4) or a refused key (3) keep their exit code; a missing or
            # unreadable swagger is a configuration to fix (2).
            if isinstance(failure, EndpointError | CredentialError) and not isinstance(
                failure, NotFoundError
            ):
                raise type(failure)(message) from failure
            raise ConfigError(message) from failure
        log.warning(
            "could not read the endpoint's swagger (%s): sending the payload unvalidated", problem
        )
    bodies, summary = build_bodies(
        schema, payload, rows_per_request=rows_per_request, encoding=encoding
    )
    row_counts = summary.pop("row_counts")
    from aml_client.bench.checks import ACCEPT_ENCODING

    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "Accept-Encoding": ACCEPT_ENCODING,
    }
    if target.deployment:
        headers[_DEPLOYMENT_HEADER] = target.deployment
    return RunTarget(
        name=target.name,
        scoring_uri=target.scoring_uri,
        headers=headers,
        bodies=bodies,
        verify=target.verify,
        timeout_s=timeout_s,
        payload=summary,
        rows=row_counts,
        authenticated=target.credential is not None,
        credential=target.credential,
        secret_env=(target.secret_env,) if target.secret_env else (),
    )


def named_deployments(target: RunTarget, lanes: list[str] | None = None) -> list[str]:
    """The deployments a run names: a blue/green run's ``lanes``, else the one the target
    pins (``--deployment``, ``AMLC_DEPLOYMENT`` or a profile's ``deployment``)."""
    if lanes:
        return list(lanes)
    pinned = target.headers.get(_DEPLOYMENT_HEADER)
    return [pinned] if pinned else []


def probe_deployments(target: RunTarget, names: list[str]) -> None:
    """Send the run's first body once to each deployment in ``names``, pinned, before any load.

    A deployment the endpoint does not know (Azure answers 404 "No valid deployments to route
    to") would otherwise be measured as a stream of fast 404s: it is refused here, all unknown
    names in one :class:`~aml_client.errors.ConfigError` (exit 2). Any other answer is left to
    the run to measure; an endpoint that cannot be reached or refuses the credential raises
    its own error (exit 4 or 3). Runs in the process that holds the credential.
    """
    if not names:
        return
    from aml_client import errors
    from aml_client.http.responses import error_for_response
    from aml_client.http.session import Session

    session = Session(
        target.scoring_uri, target.credential, timeout_s=target.timeout_s, verify=target.verify
    )
    unknown: list[str] = []
    try:
        for name in names:
            headers = {**target.headers, _DEPLOYMENT_HEADER: name}
            reply = session.exchange("POST", target.scoring_uri, content=target.bodies[0],
                                     headers=headers)
            if reply.status_code == 404:
                unknown.append(name)
            elif reply.status_code in (401, 403):
                raise error_for_response(reply, deployment=name)
    finally:
        session.close()
    if unknown:
        quoted = ", ".join(f"'{name}'" for name in unknown)
        noun = "deployment" if len(unknown) == 1 else "deployments"
        raise errors.ConfigError(
            f"{target.scoring_uri}: no {noun} {quoted} (HTTP 404 to a pinned probe, before "
            "any load): check --deployment/--deployments or the profile's deployment"
        )


def run_target_from_environment() -> RunTarget:
    """For a plain ``locust -f loadtests/locustfile.py``: the same settings as ``amlc``
    (``AMLC_SCORING_URI``/``AMLC_KEY``/``AMLC_TOKEN_COMMAND``, a profile named by
    ``AMLC_ENDPOINT``, else the local endpoint) and an optional payload file in
    ``AMLC_PAYLOAD``; the credential is asked in-process, so tokens stay fresh."""
    from aml_client.bench.auth import CredentialAuth

    target = build_run_target(
        os.environ.get(ENV_ENDPOINT) or None, os.environ.get(ENV_PAYLOAD) or None
    )
    probe_deployments(target, named_deployments(target))
    if target.credential is not None:
        target.auth = CredentialAuth(target.credential)
    return target
