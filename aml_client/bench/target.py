"""What the load processes send, and where: the endpoint, its auth header and the request bodies.

Bodies are built and validated once, up front, through the same schema → rows → envelope path
as ``amlc score`` (so a bad payload fails before any load is applied), then kept as encoded
bytes: the hot loop only sends bytes and records latency.

The auth header is a secret. :class:`RunTarget` keeps it out of ``repr``; :meth:`to_wire`
hands it to a child process over a pipe (never argv, never a file), and nothing here logs it.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aml_client.auth import mask

if TYPE_CHECKING:
    from aml_client.config import Target
    from aml_client.schema import ScoringSchema

__all__ = ["ENV_ENDPOINT", "ENV_PAYLOAD", "RunTarget", "build_bodies", "build_run_target"]

log = logging.getLogger(__name__)

#: Profile name for a plain ``locust -f loadtests/locustfile.py`` run (like ``--endpoint``).
ENV_ENDPOINT = "AMLC_ENDPOINT"
#: Payload file for a plain ``locust -f loadtests/locustfile.py`` run (like ``--payload``).
ENV_PAYLOAD = "AMLC_PAYLOAD"

#: Distinct request bodies kept in memory; longer inputs rotate over the first ones.
MAX_BODIES = 10_000


@dataclass
class RunTarget:
    """Everything a load process needs to send scoring requests."""

    name: str
    scoring_uri: str
    headers: dict[str, str] = field(repr=False)
    bodies: list[bytes] = field(repr=False)
    verify: bool = True
    timeout_s: float = 60.0
    payload: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.bodies:
            raise ValueError("no request bodies")
        parts = urlsplit(self.scoring_uri)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ValueError(f"not an http(s) scoring URI: {self.scoring_uri!r}")

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
        auth = self.headers.get("Authorization", "")
        return {
            "endpoint": self.name,
            "scoring_uri": self.scoring_uri,
            "auth": "bearer " + mask(auth.split(" ", 1)[-1]) if auth else "none",
            "verify_tls": self.verify,
            "timeout_s": self.timeout_s,
            "payload": self.payload,
        }

    def to_wire(self) -> dict[str, Any]:
        """JSON for a child process's stdin (holds the secret: pipe it, never store it)."""
        return {
            "name": self.name,
            "scoring_uri": self.scoring_uri,
            "headers": self.headers,
            "bodies": [b.decode("utf-8") for b in self.bodies],
            "verify": self.verify,
            "timeout_s": self.timeout_s,
            "payload": self.payload,
        }

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> RunTarget:
        return cls(
            name=data["name"],
            scoring_uri=data["scoring_uri"],
            headers=dict(data.get("headers") or {}),
            bodies=[b.encode("utf-8") for b in data["bodies"]],
            verify=bool(data.get("verify", True)),
            timeout_s=float(data.get("timeout_s", 60.0)),
            payload=dict(data.get("payload") or {}),
        )


def _load_schema(target: Target, swagger: str | Path | None) -> tuple[ScoringSchema | None, str]:
    """The endpoint's schema (a given swagger file wins), or ``None`` and why it is missing."""
    from aml_client.errors import AmlcError

    if swagger is not None:
        from aml_client.schema import load_schema

        return load_schema(swagger), ""
    from aml_client.client import Endpoint

    try:
        endpoint = Endpoint.from_target(target, timeout_s=30.0)
        try:
            return endpoint.schema(), ""
        finally:
            endpoint.close()
    except AmlcError as exc:
        return None, f"{type(exc).__name__}: {exc}"


def build_bodies(
    schema: ScoringSchema | None,
    payload: str | Path | None,
    *,
    rows_per_request: int = 1,
    coerce: bool = True,
) -> tuple[list[bytes], dict[str, Any]]:
    """Request bodies (encoded) plus a summary of them for the report.

    ``payload`` is anything ``amlc score`` reads (JSON in either convention, a bare list of rows,
    JSONL, CSV, ``-``); rows are validated against ``schema`` when there is one, then cut into
    requests of ``rows_per_request`` rows that the load rotates over. Without a payload the
    swagger's example is sent.
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

        row_source = read_rows(payload, schema=schema)
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
            rows = schema.validate_rows(rows, coerce=coerce)
        source = str(payload)
    envelope: Any = schema if schema is not None else (convention or "data")
    bodies = []
    for start in range(0, len(rows), rows_per_request):
        chunk = rows[start : start + rows_per_request]
        body = wrap(chunk, envelope, global_parameters=global_parameters)
        bodies.append(json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))
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
    }
    return bodies, summary


def build_run_target(
    endpoint: str | None = None,
    payload: str | Path | None = None,
    *,
    swagger: str | Path | None = None,
    rows_per_request: int = 1,
    timeout_s: float = 60.0,
    insecure: bool = False,
) -> RunTarget:
    """Resolve the endpoint like ``amlc score`` does and build the request bodies up front."""
    from aml_client.config import resolve_target

    target = resolve_target(endpoint)
    if insecure:
        target = dataclasses.replace(target, verify=False)
    schema, problem = _load_schema(target, swagger)
    if schema is None:
        if payload is None:
            from aml_client.errors import ConfigError

            raise ConfigError(
                f"could not read the endpoint's swagger ({problem}) to build an example payload: "
                "give --payload FILE or --swagger FILE"
            )
        log.warning(
            "could not read the endpoint's swagger (%s): sending the payload unvalidated", problem
        )
    bodies, summary = build_bodies(schema, payload, rows_per_request=rows_per_request)
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if target.credential is not None:
        headers.update(target.credential.auth_headers())
    return RunTarget(
        name=target.name,
        scoring_uri=target.scoring_uri,
        headers=headers,
        bodies=bodies,
        verify=target.verify,
        timeout_s=timeout_s,
        payload=summary,
    )


def run_target_from_environment() -> RunTarget:
    """For a plain ``locust -f loadtests/locustfile.py``: the same settings as ``amlc``
    (``AMLC_SCORING_URI``/``AMLC_KEY``, a profile named by ``AMLC_ENDPOINT``, else the local
    endpoint) and an optional payload file in ``AMLC_PAYLOAD``."""
    return build_run_target(
        os.environ.get(ENV_ENDPOINT) or None, os.environ.get(ENV_PAYLOAD) or None
    )
