"""The outcome of one benchmark run: the data the load engine hands to the reports.

Plain dataclasses with :meth:`BenchResult.to_dict` / :meth:`BenchResult.from_dict` so a result can
cross a process boundary (or be stored) as JSON, histograms included.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from aml_client.bench.hdr import LatencyRecorder

__all__ = ["BenchResult", "Interval"]


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
    locust: dict[str, Any] = field(default_factory=dict)
    environment: dict[str, Any] = field(default_factory=dict)

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
            "locust": self.locust,
            "environment": self.environment,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchResult:
        corrected = data.get("corrected")
        return cls(
            config=dict(data.get("config") or {}),
            started_at=float(data["started_at"]),
            ended_at=float(data["ended_at"]),
            latency=LatencyRecorder.decode(data["latency"]),
            corrected=LatencyRecorder.decode(corrected) if corrected else None,
            requests=int(data.get("requests", 0)),
            failures={str(k): int(v) for k, v in (data.get("failures") or {}).items()},
            intervals=[Interval.from_dict(i) for i in data.get("intervals") or []],
            locust=dict(data.get("locust") or {}),
            environment=dict(data.get("environment") or {}),
        )
