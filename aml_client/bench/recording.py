"""Per-process measurement state: every request's latency, failures by kind, and intervals.

One :class:`Recording` lives in each load process. Workers ship it to the master as *deltas*
(:meth:`Recording.take_delta` returns what was recorded since the last call and starts afresh);
the master :meth:`Recording.merge_delta`-s them. Histograms travel encoded and are added, never
re-sampled, so the merged percentiles equal those of one histogram fed every sample.

Intervals are keyed by wall-clock windows aligned on the epoch (``floor(t / width)``), so windows
from different processes line up; widths are powers of two seconds and a long run coarsens by
merging neighbours, which keeps the number of windows (and the memory) bounded.

No Locust here: this module is imported by tests and by the master/worker glue alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

from aml_client.bench.checks import classify_error
from aml_client.bench.hdr import LatencyRecorder
from aml_client.bench.result import (
    MAX_DEPLOYMENTS,
    OTHER_DEPLOYMENTS,
    PHASES,
    AgreementCounts,
    DeploymentStats,
    Interval,
    Sample,
    Transfer,
    add_reason,
    clean_name,
)

__all__ = [
    "PHASES",
    "DeploymentStats",
    "IntervalSeries",
    "Recording",
    "Sample",
    "Transfer",
    "classify_failure",
    "clean_name",
]

#: Windows kept before neighbours are merged (each holds a full histogram, ~190 KB in memory).
MAX_INTERVALS = 400
#: The same for each deployment's own series in a blue/green run (enough for its bootstrap).
DEPLOYMENT_MAX_INTERVALS = 120


def classify_failure(status_code: int, error: BaseException | None) -> str | None:
    """``None`` for a success, else the failure kind, from the status and transport error only
    (the body checks are :func:`aml_client.bench.checks.check_response`)."""
    if error is not None and status_code < 400:
        return classify_error(error, headers_received=False)
    if status_code >= 400 or (status_code and status_code < 200):
        return f"http_{status_code}"
    if 300 <= status_code < 400:
        return "redirect"
    return None if status_code else "connection"


@dataclass
class _Window:
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)
    requests: int = 0
    failures: int = 0

    def merge(self, other: _Window) -> None:
        self.latency.merge(other.latency)
        self.requests += other.requests
        self.failures += other.failures


class IntervalSeries:
    """Latency and throughput per wall-clock window (``width_s`` seconds, epoch-aligned)."""

    def __init__(self, width_s: float = 1.0, max_windows: int = MAX_INTERVALS) -> None:
        # Power-of-two widths let windows from different processes (and coarsened series) align.
        self.width_s = float(2 ** max(0, math.ceil(math.log2(max(width_s, 1.0)))))
        self.max_windows = max_windows
        self.windows: dict[int, _Window] = {}

    def add(self, end_epoch_s: float, latency_us: int, failed: bool) -> None:
        key = int(end_epoch_s // self.width_s)
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = _Window()
            if len(self.windows) > self.max_windows:
                self.coarsen()
                return self.add(end_epoch_s, latency_us, failed)
        window.latency.record(latency_us)
        window.requests += 1
        if failed:
            window.failures += 1
        return None

    def coarsen(self) -> None:
        """Double the window width, merging neighbours."""
        merged: dict[int, _Window] = {}
        for key, window in self.windows.items():
            target = merged.get(key // 2)
            if target is None:
                merged[key // 2] = window
            else:
                target.merge(window)
        self.width_s *= 2
        self.windows = merged

    def encode(self) -> dict[str, Any]:
        return {
            "width_s": self.width_s,
            "windows": {
                str(k): {
                    "latency": w.latency.encode(),
                    "requests": w.requests,
                    "failures": w.failures,
                }
                for k, w in self.windows.items()
            },
        }

    def merge_encoded(self, data: dict[str, Any]) -> None:
        width = float(data["width_s"])
        while width > self.width_s:
            self.coarsen()
        factor = round(self.width_s / width)
        for key_text, item in data["windows"].items():
            key = int(key_text) // factor
            incoming = _Window(
                LatencyRecorder.decode(item["latency"]),
                int(item["requests"]),
                int(item["failures"]),
            )
            window = self.windows.get(key)
            if window is None:
                self.windows[key] = incoming
            else:
                window.merge(incoming)
        while len(self.windows) > self.max_windows:
            self.coarsen()

    def intervals(
        self, started_at: float | None = None, ended_at: float | None = None
    ) -> list[Interval]:
        """Windows in time order as :class:`Interval` (first/last clipped to the run)."""
        out = []
        for key in sorted(self.windows):
            window = self.windows[key]
            start, end = key * self.width_s, (key + 1) * self.width_s
            if started_at is not None:
                start = max(start, started_at)
            if ended_at is not None:
                end = min(end, max(ended_at, start))
            out.append(Interval(start, end, window.latency, window.requests, window.failures))
        return out

    def clear(self) -> None:
        self.windows = {}


#: An open-model request sent later than this after its due time counts as a late send.
LATE_SEND_US = 10_000


class Recording:
    """What one process measured: latency (and corrected latency), counts, failures (and
    Azure's reasons for them), windows, the phases of each request, deployments, bytes, the
    load generator's own health.

    In a blue/green run each request is also recorded in the :attr:`by_deployment` recording
    of the deployment it was sent to (its own histograms and windows, merged across processes
    like the rest), and :attr:`agreement` counts how often the deployments' predictions agreed.
    """

    def __init__(
        self, *, open_model: bool = False, interval_s: float = 1.0,
        max_windows: int = MAX_INTERVALS,
    ) -> None:
        self.open_model = open_model
        self.interval_s = interval_s
        self.max_windows = max_windows
        self.series = IntervalSeries(interval_s, max_windows)
        self._fresh()

    def _fresh(self) -> None:
        self.latency = LatencyRecorder()
        self.corrected: LatencyRecorder | None = LatencyRecorder() if self.open_model else None
        self.requests = 0
        self.failures: dict[str, int] = {}
        #: open model: requests sent later than due by more than :data:`LATE_SEND_US`
        self.late = 0
        #: open model: due time -> actual send, per request (how far the generator slipped)
        self.slip = LatencyRecorder()
        self.phases = {name: LatencyRecorder() for name in PHASES}
        self.deployments: dict[str, DeploymentStats] = {}
        self.transfer = Transfer()
        #: requests that succeeded within :attr:`good_within_us` (capacity search's goodput)
        self.good = 0
        self.good_within_us: int | None = getattr(self, "good_within_us", None)
        #: the load process's CPU: busiest second seen (fraction of one core), and totals
        self.cpu_peak = 0.0
        self.cpu_busy_s = 0.0
        self.cpu_wall_s = 0.0
        self.cpu_saturated_s = 0
        #: most requests in flight at once (senders busy)
        self.peak_in_flight = 0
        #: Azure's reasons per failure kind, a few distinct ones each
        self.failure_reasons: dict[str, dict[str, int]] = {}
        #: blue/green: each deployment's own recording, and the predictions' agreement
        self.by_deployment: dict[str, Recording] = {}
        self.agreement = AgreementCounts()

    def for_deployment(self, name: str) -> Recording:
        """The recording of requests sent to deployment ``name`` (created on first use)."""
        sub = self.by_deployment.get(name)
        if sub is None:
            if len(self.by_deployment) >= MAX_DEPLOYMENTS:
                name = OTHER_DEPLOYMENTS
                sub = self.by_deployment.get(name)
            if sub is None:
                sub = self.by_deployment[name] = Recording(
                    open_model=self.open_model, interval_s=self.interval_s,
                    max_windows=DEPLOYMENT_MAX_INTERVALS,
                )
        return sub

    def record(
        self,
        latency_us: int,
        end_epoch_s: float,
        failure: str | None = None,
        corrected_us: int | None = None,
        sample: Sample | None = None,
        reason: str | None = None,
        deployment: str | None = None,
    ) -> None:
        """One completed request. ``corrected_us`` (open model) is due time -> reply; ``reason``
        is Azure's for a failure; ``deployment`` is the one a blue/green run sent it to."""
        if deployment is not None:
            self.for_deployment(deployment).record(
                latency_us, end_epoch_s, failure, corrected_us, sample, reason
            )
        self.latency.record(latency_us)
        if corrected_us is not None and self.corrected is not None:
            self.corrected.record(corrected_us)
            if corrected_us - latency_us > LATE_SEND_US:
                self.late += 1
        self.requests += 1
        if failure is not None:
            self.failures[failure] = self.failures.get(failure, 0) + 1
            if reason is not None:
                add_reason(self.failure_reasons, failure, reason)
        elif self.good_within_us is not None:
            judged = corrected_us if corrected_us is not None else latency_us
            if judged <= self.good_within_us:
                self.good += 1
        if sample is not None:
            self._record_sample(latency_us, sample, failure is None)
        # Over time, show what a client waiting on the schedule sees (the corrected latency).
        self.series.add(
            end_epoch_s,
            corrected_us if corrected_us is not None else latency_us,
            failure is not None,
        )

    def _record_sample(self, latency_us: int, sample: Sample, ok: bool) -> None:
        phases = self.phases
        if sample.connect_us >= 0:
            phases["connect"].record(sample.connect_us)
        phases["ttfb"].record(sample.ttfb_us)
        phases["body"].record(sample.body_us)
        if sample.server_us >= 0:
            phases["server"].record(sample.server_us)
            phases["rest"].record(latency_us - sample.server_us)
        if sample.slip_us >= 0:
            self.slip.record(sample.slip_us)
        self.transfer.add(sample, ok)
        name = sample.deployment
        if name is not None:
            stats = self.deployments.get(name)
            if stats is None:
                if len(self.deployments) >= MAX_DEPLOYMENTS:
                    name = OTHER_DEPLOYMENTS
                    stats = self.deployments.get(name)
                if stats is None:
                    stats = self.deployments[name] = DeploymentStats()
            stats.latency.record(latency_us)
            stats.requests += 1
            if not ok:
                stats.failures += 1

    def note_cpu(self, busy_s: float, wall_s: float, *, saturated_at: float = 0.9) -> None:
        """One sample of the load process's CPU use (process time over wall time)."""
        if wall_s <= 0:
            return
        fraction = busy_s / wall_s
        self.cpu_peak = max(self.cpu_peak, fraction)
        self.cpu_busy_s += busy_s
        self.cpu_wall_s += wall_s
        if fraction >= saturated_at:
            self.cpu_saturated_s += 1

    def note_in_flight(self, count: int) -> None:
        if count > self.peak_in_flight:
            self.peak_in_flight = count

    def encode(self) -> dict[str, Any]:
        return {
            "open_model": self.open_model,
            "latency": self.latency.encode(),
            "corrected": self.corrected.encode() if self.corrected is not None else None,
            "requests": self.requests,
            "failures": dict(self.failures),
            "series": self.series.encode(),
            "late": self.late,
            "slip": self.slip.encode(),
            "phases": {name: rec.encode() for name, rec in self.phases.items() if rec.count
                       or rec.out_of_range},
            "deployments": {name: d.encode() for name, d in self.deployments.items()},
            "transfer": self.transfer.encode(),
            "good": self.good,
            "cpu": [self.cpu_peak, self.cpu_busy_s, self.cpu_wall_s, self.cpu_saturated_s],
            "peak_in_flight": self.peak_in_flight,
            "failure_reasons": {k: dict(v) for k, v in self.failure_reasons.items()},
            "by_deployment": {name: sub.encode() for name, sub in self.by_deployment.items()},
            "agreement": self.agreement.encode() if not self.agreement.empty else None,
        }

    def take_delta(self) -> dict[str, Any]:
        """Everything recorded since the previous call, encoded; this recording starts afresh."""
        data = self.encode()
        self._fresh()
        self.series.clear()
        return data

    def merge_delta(self, data: dict[str, Any]) -> None:
        """Add a delta from :meth:`take_delta` (another process's, typically)."""
        self.latency.merge(LatencyRecorder.decode(data["latency"]))
        if data.get("corrected") is not None:
            if self.corrected is None:
                self.corrected = LatencyRecorder()
                self.open_model = True
            self.corrected.merge(LatencyRecorder.decode(data["corrected"]))
        self.requests += int(data["requests"])
        for kind, count in data.get("failures", {}).items():
            self.failures[kind] = self.failures.get(kind, 0) + int(count)
        self.late += int(data.get("late", 0))
        self.series.merge_encoded(data["series"])
        if "slip" in data:
            self.slip.merge(LatencyRecorder.decode(data["slip"]))
        for name, blob in (data.get("phases") or {}).items():
            if name in self.phases:
                self.phases[name].merge(LatencyRecorder.decode(blob))
        for name, blob in (data.get("deployments") or {}).items():
            incoming = DeploymentStats.decode(blob)
            key = name if (name in self.deployments or len(self.deployments) < MAX_DEPLOYMENTS) \
                else OTHER_DEPLOYMENTS
            if key in self.deployments:
                self.deployments[key].merge(incoming)
            else:
                self.deployments[key] = incoming
        if "transfer" in data:
            self.transfer.merge_encoded(data["transfer"])
        self.good += int(data.get("good", 0))
        cpu = data.get("cpu")
        if cpu:
            self.cpu_peak = max(self.cpu_peak, float(cpu[0]))
            self.cpu_busy_s += float(cpu[1])
            self.cpu_wall_s += float(cpu[2])
            self.cpu_saturated_s += int(cpu[3])
        self.peak_in_flight = max(self.peak_in_flight, int(data.get("peak_in_flight", 0)))
        for kind, by_reason in (data.get("failure_reasons") or {}).items():
            for reason, count in by_reason.items():
                add_reason(self.failure_reasons, kind, reason, int(count))
        for name, blob in (data.get("by_deployment") or {}).items():
            self.for_deployment(name).merge_delta(blob)
        if data.get("agreement"):
            self.agreement.merge(AgreementCounts.decode(data["agreement"]))

    def align_deployment_series(self) -> None:
        """Give every deployment's series the same window width (the coarsest), so their
        windows pair up one to one for a paired comparison."""
        subs = list(self.by_deployment.values())
        if not subs:
            return
        width = max(sub.series.width_s for sub in subs)
        for sub in subs:
            while sub.series.width_s < width:
                sub.series.coarsen()

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())

    def snapshot(self) -> dict[str, Any]:
        """Numbers for live progress (cheap enough for once a second)."""
        source = self.corrected if self.corrected is not None else self.latency
        p = source.percentiles_us([50, 99]) if source.count else {50.0: 0, 99.0: 0}
        snap = {
            "requests": self.requests,
            "failures": self.failure_count,
            "p50_us": p[50.0],
            "p99_us": p[99.0],
            "max_us": source.max_us,
            "measure": "corrected" if self.corrected is not None else "latency",
        }
        return snap
