"""The outcome of one benchmark run: the data the load engine hands to the reports.

Plain dataclasses with :meth:`BenchResult.to_dict` / :meth:`BenchResult.from_dict` so a result can
cross a process boundary (or be stored) as JSON, histograms included.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from aml_client.bench.hdr import LatencyRecorder

__all__ = [
    "PHASES",
    "AgreementCounts",
    "BenchResult",
    "DeploymentStats",
    "Interval",
    "LoadFacts",
    "Sample",
    "Transfer",
    "clean_name",
]


#: The phases of a request, in the order they happen (``server`` and ``rest`` split the total).
PHASES = ("connect", "ttfb", "body", "server", "rest")
#: Distinct deployments kept apart; further names are counted under :data:`OTHER_DEPLOYMENTS`.
MAX_DEPLOYMENTS = 16
OTHER_DEPLOYMENTS = "(other)"
#: Longest deployment or Server header value kept (they come from the endpoint: untrusted).
MAX_NAME_CHARS = 64
#: Distinct reasons kept per failure kind; further ones are counted under :data:`OTHER_REASONS`.
MAX_REASONS = 4
OTHER_REASONS = "(other reasons)"
#: Examples of disagreeing predictions kept for the report.
MAX_DISAGREEMENT_EXAMPLES = 3


def add_reason(reasons: dict[str, dict[str, int]], kind: str, reason: str, count: int = 1) -> None:
    """Count ``reason`` under failure ``kind``, keeping at most :data:`MAX_REASONS` apart."""
    by_reason = reasons.setdefault(kind, {})
    if reason not in by_reason and len(by_reason) >= MAX_REASONS:
        reason = OTHER_REASONS
    by_reason[reason] = by_reason.get(reason, 0) + count


def clean_name(value: str | None) -> str | None:
    """A header value fit for a report: printable, at most :data:`MAX_NAME_CHARS` characters."""
    if not value:
        return None
    text = "".join(ch if ch.isprintable() else "?" for ch in value.strip())
    return text[:MAX_NAME_CHARS] or None


@dataclass(slots=True)
class Sample:
    """What one request measured beyond its total latency (integers in µs and bytes).

    ``connect_us`` is -1 when the request reused an open connection, ``server_us`` is -1 when
    the response carried no ``x-ms-run-fn-exec-ms``. ``ttfb_us`` runs from the first byte sent
    to the response headers, ``body_us`` from there to the last body byte, so
    ``total = connect + ttfb + body`` (connect counted when one was opened) and
    ``total = server + rest``.
    """

    connect_us: int = -1
    ttfb_us: int = 0
    body_us: int = 0
    server_us: int = -1
    bytes_sent: int = 0
    bytes_received: int = 0
    body_bytes: int = 0
    deployment: str | None = None
    server: str | None = None
    slip_us: int = -1


@dataclass
class DeploymentStats:
    """Requests answered by one deployment (``azureml-model-deployment`` response header)."""

    latency: LatencyRecorder = field(default_factory=LatencyRecorder)
    requests: int = 0
    failures: int = 0

    def encode(self) -> dict[str, Any]:
        return {"latency": self.latency.encode(), "requests": self.requests,
                "failures": self.failures}

    @classmethod
    def decode(cls, data: dict[str, Any]) -> DeploymentStats:
        return cls(LatencyRecorder.decode(data["latency"]), int(data["requests"]),
                   int(data["failures"]))

    def merge(self, other: DeploymentStats) -> None:
        self.latency.merge(other.latency)
        self.requests += other.requests
        self.failures += other.failures


@dataclass
class Transfer:
    """ab's extras: bytes on the wire, the document length and the Server header."""

    bytes_sent: int = 0
    bytes_received: int = 0
    body_bytes: int = 0
    #: length of the first successful response body (ab's "Document Length")
    document_length: int | None = None
    #: successful responses whose body length differed from it (ab counts them as failures)
    length_changes: int = 0
    server: str | None = None
    #: responses whose Server header differed from the first one seen
    server_changes: int = 0

    def add(self, sample: Sample, ok: bool) -> None:
        self.bytes_sent += sample.bytes_sent
        self.bytes_received += sample.bytes_received
        self.body_bytes += sample.body_bytes
        if ok:
            if self.document_length is None:
                self.document_length = sample.body_bytes
            elif sample.body_bytes != self.document_length:
                self.length_changes += 1
        if sample.server is not None:
            if self.server is None:
                self.server = sample.server
            elif sample.server != self.server:
                self.server_changes += 1

    def encode(self) -> dict[str, Any]:
        return asdict(self)

    def merge_encoded(self, data: dict[str, Any]) -> None:
        other = Transfer(**data)
        self.bytes_sent += other.bytes_sent
        self.bytes_received += other.bytes_received
        self.body_bytes += other.body_bytes
        self.length_changes += other.length_changes
        if other.document_length is not None:
            if self.document_length is None:
                self.document_length = other.document_length
            elif other.document_length != self.document_length:
                self.length_changes += 1
        self.server_changes += other.server_changes
        if other.server is not None:
            if self.server is None:
                self.server = other.server
            elif other.server != self.server:
                self.server_changes += 1


@dataclass
class AgreementCounts:
    """How often the deployments of a blue/green run gave the same predictions for one body.

    A *pair* is one request body sent to every deployment. It is compared when every
    deployment answered it with predictions; otherwise (a failure, or the run ended before
    every deployment was sent it) it is ``not_compared``.
    """

    compared_requests: int = 0
    compared_rows: int = 0
    agreeing_rows: int = 0
    disagreeing_requests: int = 0
    not_compared: int = 0
    examples: list[str] = field(default_factory=list)

    def add_example(self, text: str) -> None:
        if len(self.examples) < MAX_DISAGREEMENT_EXAMPLES:
            self.examples.append(text)

    @property
    def empty(self) -> bool:
        return not (self.compared_requests or self.not_compared)

    def encode(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def decode(cls, data: dict[str, Any]) -> AgreementCounts:
        counts = cls(
            compared_requests=int(data.get("compared_requests", 0)),
            compared_rows=int(data.get("compared_rows", 0)),
            agreeing_rows=int(data.get("agreeing_rows", 0)),
            disagreeing_requests=int(data.get("disagreeing_requests", 0)),
            not_compared=int(data.get("not_compared", 0)),
        )
        for text in data.get("examples") or []:
            counts.add_example(str(text))
        return counts

    def merge(self, other: AgreementCounts) -> None:
        self.compared_requests += other.compared_requests
        self.compared_rows += other.compared_rows
        self.agreeing_rows += other.agreeing_rows
        self.disagreeing_requests += other.disagreeing_requests
        self.not_compared += other.not_compared
        for text in other.examples:
            self.add_example(text)


@dataclass
class Interval:
    """One measurement window (typically a second) for latency and throughput over time.

    ``latency`` is the latency a run is judged on: send -> reply in a closed model, the
    *corrected* latency (intended start -> reply) in an open model, so a stall shows over time.
    """

    start_s: float  # epoch seconds
    end_s: float
    latency: LatencyRecorder
    requests: int  # completed in this window (success + failure)
    failures: int

    @property
    def duration_s(self) -> float:
        return max(self.end_s - self.start_s, 0.0)

    def to_dict(self) -> dict[str, Any]:
        return {
            "start_s": self.start_s,
            "end_s": self.end_s,
            "latency": self.latency.encode(),
            "requests": self.requests,
            "failures": self.failures,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Interval:
        return cls(
            start_s=float(data["start_s"]),
            end_s=float(data["end_s"]),
            latency=LatencyRecorder.decode(data["latency"]),
            requests=int(data["requests"]),
            failures=int(data["failures"]),
        )


@dataclass
class LoadFacts:
    """How the load generator itself fared: the evidence for calling a run valid or not."""

    #: open model: sends later than 10 ms after their due time
    late_sends: int = 0
    #: the load process's CPU: busiest second (fraction of one core), mean, seconds >= 90 %
    cpu_peak: float = 0.0
    cpu_mean: float = 0.0
    cpu_saturated_s: int = 0
    cpu_samples: int = 0
    #: most requests in flight at once, and the cap on senders (open model)
    peak_in_flight: int = 0
    max_senders: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BenchResult:
    """Everything measured in one run.

    ``latency`` is send → reply. In an open model (``config["mode"] == "open"``) it is the
    *uncorrected* latency (actual send → reply) and ``corrected`` holds intended start → reply,
    which does not hide a stall of the endpoint (coordinated omission). ``config`` must never
    hold a key; the reports scrub credential-like fields anyway.
    """

    config: dict[str, Any]
    started_at: float  # epoch seconds
    ended_at: float
    latency: LatencyRecorder
    corrected: LatencyRecorder | None = None
    requests: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    intervals: list[Interval] = field(default_factory=list)
    environment: dict[str, Any] = field(default_factory=dict)
    #: per-phase histograms (see :data:`PHASES`); absent phases were never measured
    phases: dict[str, LatencyRecorder] = field(default_factory=dict)
    #: open model: due time -> actual send
    slip: LatencyRecorder | None = None
    deployments: dict[str, DeploymentStats] = field(default_factory=dict)
    transfer: Transfer = field(default_factory=Transfer)
    load: LoadFacts = field(default_factory=LoadFacts)
    #: requests that succeeded within the latency objective (capacity search), when counted
    good: int | None = None
    #: Azure's reasons per failure kind (``{"http_424": {"model answered 500 …": 3}}``)
    failure_reasons: dict[str, dict[str, int]] = field(default_factory=dict)
    #: blue/green: each deployment's own measurement (requests pinned to it), in run order
    by_deployment: dict[str, BenchResult] = field(default_factory=dict)
    #: blue/green: how often the deployments' predictions for the same body agreed
    agreement: AgreementCounts | None = None

    @property
    def duration_s(self) -> float:
        """Length of the measured window."""
        return max(self.ended_at - self.started_at, 0.0)

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form (histograms encoded)."""
        return {
            "config": self.config,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "latency": self.latency.encode(),
            "corrected": self.corrected.encode() if self.corrected is not None else None,
            "requests": self.requests,
            "failures": dict(self.failures),
            "intervals": [interval.to_dict() for interval in self.intervals],
            "environment": self.environment,
            "phases": {name: rec.encode() for name, rec in self.phases.items()},
            "slip": self.slip.encode() if self.slip is not None else None,
            "deployments": {name: d.encode() for name, d in self.deployments.items()},
            "transfer": self.transfer.encode(),
            "load": self.load.to_dict(),
            "good": self.good,
            "failure_reasons": {k: dict(v) for k, v in self.failure_reasons.items()},
            "by_deployment": {name: r.to_dict() for name, r in self.by_deployment.items()},
            "agreement": self.agreement.encode() if self.agreement is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        corrected = data.get("corrected")
        slip = data.get("slip")
        return cls(
            config=dict(data.get("config") or {}),
            started_at=float(data["started_at"]),
            ended_at=float(data["ended_at"]),
            latency=LatencyRecorder.decode(data["latency"]),
            corrected=LatencyRecorder.decode(corrected) if corrected else None,
            requests=int(data.get("requests", 0)),
            failures={str(k): int(v) for k, v in (data.get("failures") or {}).items()},
            intervals=[Interval.from_dict(i) for i in data.get("intervals") or []],
            environment=dict(data.get("environment") or {}),
            phases={k: LatencyRecorder.decode(v) for k, v in (data.get("phases") or {}).items()},
            slip=LatencyRecorder.decode(slip) if slip else None,
            deployments={k: DeploymentStats.decode(v)
                         for k, v in (data.get("deployments") or {}).items()},
            transfer=Transfer(**(data.get("transfer") or {})),
            load=LoadFacts(**(data.get("load") or {})),
            good=data.get("good"),
            failure_reasons={str(k): {str(r): int(n) for r, n in v.items()}
                             for k, v in (data.get("failure_reasons") or {}).items()},
            by_deployment={str(k): cls.from_dict(v)
                           for k, v in (data.get("by_deployment") or {}).items()},
            agreement=AgreementCounts.decode(data["agreement"]) if data.get("agreement")
            else None,
        )
