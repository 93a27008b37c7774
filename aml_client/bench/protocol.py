"""What ``amlc bench`` and its load process say to each other: one typed protocol.

The parent writes one :class:`LoadConfig` as a JSON line on the load process's stdin (then, for
an authenticated target, ``auth`` lines: :mod:`aml_client.bench.auth`); the load process
validates it before it starts anything. The load process answers with :data:`LoadEvent` JSON
lines on stdout, which the parent validates in turn. Both sides import this module (it never
imports Locust), so neither reads a field the other does not write. No secret is ever part of
it: the credential travels only as ``auth`` lines.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from aml_client.bench.plan import BenchPlan

__all__ = [
    "AuthRequestEvent",
    "ErrorEvent",
    "Event",
    "LoadConfig",
    "LoadEvent",
    "MasterOptions",
    "OutputEvent",
    "ProgressEvent",
    "ResultEvent",
    "StatusEvent",
    "TargetWire",
    "WebEvent",
    "WebOptions",
    "WorkerOptions",
    "parse_event",
]

Port = Annotated[int, Field(ge=0, le=65535)]


class _Wire(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class TargetWire(_Wire):
    """A :class:`~aml_client.bench.target.RunTarget` without its credential."""

    name: str
    scoring_uri: str
    #: headers without a secret (content type, deployment)
    headers: dict[str, str] = Field(default_factory=dict)
    #: request bodies, UTF-8 text
    bodies: list[str] = Field(min_length=1)
    verify: bool = True
    timeout_s: float = Field(default=60.0, gt=0)
    payload: dict[str, Any] = Field(default_factory=dict)
    #: rows in each body (same order); None: unknown
    rows: list[int] | None = None
    #: requests carry a credential: its value follows as ``auth`` lines
    authenticated: bool = False


class WebOptions(_Wire):
    """Locust's web UI instead of a headless run."""

    host: str = "127.0.0.1"
    port: Port


class MasterOptions(_Wire):
    """A Locust master: its workers are started here (``local_workers``) or connect to it."""

    bind_host: str = "127.0.0.1"
    #: 0: any free port (local workers are told which)
    bind_port: Port = 0
    #: worker processes to start on this machine (0: wait for ``expect_workers`` to connect)
    local_workers: int = Field(default=0, ge=0)
    expect_workers: int = Field(default=1, ge=1)
    #: how long to wait for workers that connect from elsewhere
    wait_s: float = Field(default=600.0, gt=0)


class WorkerOptions(_Wire):
    """A Locust worker: the master it connects to."""

    master_host: str
    master_port: Port


class LoadConfig(_Wire):
    """Everything a load process needs for its run, sent on its stdin as one JSON line."""

    target: TargetWire
    plan: BenchPlan
    #: where the report is written (None: no report, e.g. a worker)
    report_root: str | None = "reports"
    web: WebOptions | None = None
    #: add live metrics to progress and result events (Prometheus/OTLP export in the parent)
    live_metrics: bool = False
    #: the process that started this one: the run ends (results kept) when it goes away
    parent_pid: int | None = None
    master: MasterOptions | None = None
    worker: WorkerOptions | None = None

    def line(self) -> str:
        """The JSON line for the load process's stdin."""
        return self.model_dump_json() + "\n"


class Event(BaseModel):
    """An event of the load process (one JSON line on its stdout)."""

    model_config = ConfigDict(extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The event as the parent hands it on: the fields that were set, and its type."""
        data = self.model_dump(mode="json", exclude_unset=True)
        data["type"] = data.get("type", getattr(self, "type"))  # noqa: B009
        return data


class StatusEvent(Event):
    """A line for the user (``running: …``, a capacity step's verdict)."""

    type: Literal["status"] = "status"
    message: str


class ProgressEvent(Event):
    """Once a second: the run so far (with the recording's live numbers)."""

    # The recording's snapshot adds its own figures (requests, failures, percentiles, …).
    model_config = ConfigDict(extra="allow")

    type: Literal["progress"] = "progress"
    elapsed_s: float
    users: int
    in_flight: int
    rps: float
    metrics: dict[str, Any] | None = None


class WebEvent(Event):
    """The web UI listens: its address, with this run's secret."""

    type: Literal["web"] = "web"
    url: str
    hdr_url: str


class ResultEvent(Event):
    """The run ended: its summary and where its report is."""

    type: Literal["result"] = "result"
    report_dir: str | None
    #: :meth:`~aml_client.bench.report.summary.BenchSummary.to_data`
    summary: dict[str, Any]
    metrics: dict[str, Any] | None = None


class ErrorEvent(Event):
    """The run could not go on; ``exit_code`` is ``amlc``'s for this kind of error."""

    type: Literal["error"] = "error"
    message: str
    exit_code: int | None = None


class AuthRequestEvent(Event):
    """A request got 401: the parent pushes a fresh credential."""

    type: Literal["auth_request"] = "auth_request"


class OutputEvent(Event):
    """A line of the load process's standard output that is not an event (the parent's)."""

    type: Literal["output"] = "output"
    line: str


LoadEvent = Annotated[
    StatusEvent | ProgressEvent | WebEvent | ResultEvent | ErrorEvent | AuthRequestEvent
    | OutputEvent,
    Field(discriminator="type"),
]

_EVENT: TypeAdapter[LoadEvent] = TypeAdapter(LoadEvent)


def parse_event(line: str) -> LoadEvent:
    """One line of the load process's output: its event, or an :class:`OutputEvent` when the
    line is not one (a library printing to stdout, a malformed event)."""
    text = line.strip()
    try:
        return _EVENT.validate_json(text)
    except ValueError:
        return OutputEvent(line=text)
