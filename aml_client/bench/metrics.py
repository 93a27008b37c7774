"""The run's live metrics: one definition, read by every exporter.

The load process (a single one, or the master of several) computes :func:`live_numbers` from its
(merged) recording once a second and sends them to ``amlc bench`` with its progress, and once
more, final, with its result. There :class:`LiveMetrics` keeps the latest values and turns
them into :class:`MetricSample` rows; the Prometheus and OTLP exporters
(:mod:`aml_client.bench.metrics_export`) only translate those rows, so both show the same
names, labels and values.

The metrics (Prometheus names; OTLP uses the same names, counters without ``_total``):

* ``amlc_requests_total{outcome, deployment}`` — answered requests; ``outcome`` is ``ok`` or the
  failure kind of the report (``http_429``, ``timeout``, …), ``deployment`` the blue/green lane,
  else the pinned deployment, else empty (routed by the endpoint's traffic rules);
* ``amlc_requests_in_flight`` — sent and not answered yet (under a master: as the workers last
  reported, at most a second old);
* ``amlc_offered_rate`` / ``amlc_achieved_rate`` — requests sent / answered per second over the
  last update; ``amlc_scheduled_rate`` — the open model's configured rate;
* ``amlc_interval_latency_seconds{quantile}`` — p50, p90, p99 and max (``quantile="1"``) of the
  latest closed interval of the run's HDR interval histograms (the latency the run is judged
  on: corrected in an open model);
* ``amlc_latency_seconds{quantile}`` — the same percentiles over the run so far;
* ``amlc_slo_met{objective}`` — 1 while an ``--slo`` holds on the run so far, 0 when missed;
* ``amlc_load_processes_lost`` — load processes (workers) lost during the run;
* ``amlc_run_finished`` — 1 once the run has ended and the values are final.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aml_client.bench.report.summary import LatencyBlock, percentile_key

if TYPE_CHECKING:
    from aml_client.bench.recording import Recording
    from aml_client.bench.report.slo import Objective

__all__ = [
    "METRICS",
    "LiveMetrics",
    "MetricDef",
    "MetricSample",
    "live_numbers",
]

#: Percentiles of the latency gauges (``quantile`` label: the fraction; max is ``"1"``).
GAUGE_PERCENTILES: tuple[float, ...] = (50, 90, 99)
#: Percentiles carried over the run so far (for the objectives; the gauges show a subset).
RUN_PERCENTILES: tuple[float, ...] = (50, 75, 90, 95, 99, 99.9, 99.99)


@dataclass(frozen=True)
class MetricDef:
    """One metric: its name (Prometheus form, without ``_total``), kind, help and labels."""

    name: str
    kind: str  # "counter" or "gauge"
    help: str
    labels: tuple[str, ...] = ()
    unit: str = ""


METRICS: tuple[MetricDef, ...] = (
    MetricDef("amlc_requests", "counter",
              "Requests answered, by outcome (ok or the failure kind) and deployment",
              ("outcome", "deployment")),
    MetricDef("amlc_requests_in_flight", "gauge", "Requests sent and not answered yet"),
    MetricDef("amlc_offered_rate", "gauge", "Requests sent per second (last update)",
              unit="1/s"),
    MetricDef("amlc_achieved_rate", "gauge", "Requests answered per second (last update)",
              unit="1/s"),
    MetricDef("amlc_scheduled_rate", "gauge", "Open model: the configured arrival rate",
              unit="1/s"),
    MetricDef("amlc_interval_latency_seconds", "gauge",
              "Latency percentiles of the latest closed interval (quantile 1: its max)",
              ("quantile",), unit="s"),
    MetricDef("amlc_latency_seconds", "gauge",
              "Latency percentiles over the run so far (quantile 1: the max)",
              ("quantile",), unit="s"),
    MetricDef("amlc_slo_met", "gauge",
              "1 while the objective holds on the run so far, 0 when it is missed",
              ("objective",)),
    MetricDef("amlc_load_processes_lost", "gauge", "Load processes lost during the run"),
    MetricDef("amlc_run_finished", "gauge", "1 once the run has ended (final values)"),
)
_BY_NAME = {m.name: m for m in METRICS}


@dataclass(frozen=True)
class MetricSample:
    """One value of one metric for one set of labels."""

    name: str
    labels: dict[str, str]
    value: float

    @property
    def definition(self) -> MetricDef:
        return _BY_NAME[self.name]


def _quantile(p: float) -> str:
    return f"{p / 100:g}"


def _latest_closed_window(recording: Recording, settle_s: float, now: float) -> Any:
    series = recording.series
    width = series.width_s
    closed = [k for k in series.windows if (k + 1) * width <= now - settle_s]
    if not closed:
        return None
    return series.windows[max(closed)]


def live_numbers(
    recording: Recording,
    *,
    in_flight: int,
    sent: int,
    settle_s: float = 0.0,
    final: bool = False,
    lost: int = 0,
    now: float | None = None,
) -> dict[str, Any]:
    """What the exporters need from a (merged) recording, as plain data for the event pipe.

    ``settle_s``: a master's windows are complete only once every worker has reported them,
    so the interval shown is the latest that closed at least that long ago; ``final``: the run
    is over, every window is closed.
    """
    now = time.time() if now is None else now
    counts: list[list[Any]] = []
    lanes = recording.by_deployment or {"": recording}
    for lane, rec in lanes.items():
        counts.append(["ok", lane, rec.requests - rec.failure_count])
        counts.extend([kind, lane, n] for kind, n in sorted(rec.failures.items()))
    judged = recording.corrected if recording.corrected is not None else recording.latency
    run: dict[str, Any] = {"samples": judged.count}
    if judged.count:
        values = judged.percentiles_us(RUN_PERCENTILES)
        run.update(
            min_ms=judged.min_us / 1000, max_ms=judged.max_us / 1000,
            mean_ms=judged.mean_us / 1000,
            percentiles_ms={percentile_key(p): v / 1000 for p, v in values.items()},
        )
    window = _latest_closed_window(recording, 0.0 if final else settle_s,
                                   float("inf") if final else now)
    interval: dict[str, float] | None = None
    if window is not None and window.latency.count:
        values = window.latency.percentiles_us(GAUGE_PERCENTILES)
        interval = {_quantile(p): v / 1e6 for p, v in values.items()}
        interval["1"] = window.latency.max_us / 1e6
    return {
        "t": now,
        "requests": recording.requests,
        "failures": recording.failure_count,
        "counts": counts,
        "sent": sent,
        "in_flight": in_flight,
        "run": run,
        "interval": interval,
        "lost": lost,
        "final": final,
    }


@dataclass
class _LiveMeasured:
    """The run so far, in the shape :func:`aml_client.bench.report.slo.evaluate` checks."""

    judged: LatencyBlock
    judged_on: str
    error_rate: float | None
    throughput_rps: float | None


@dataclass
class LiveMetrics:
    """The latest values of :data:`METRICS`, fed with the load process's events.

    Thread-safe: the exporters read it from their own threads. Counters never go down: when
    a new recording starts (a capacity search's next step), its counts add to the earlier
    ones.
    """

    objectives: list[Objective] = field(default_factory=list)
    #: label for requests not sent to a blue/green lane (the pinned deployment, else "")
    deployment: str = ""
    scheduled_rate: float | None = None
    judged_on: str = "latency"

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str], int] = {}
        self._base: dict[tuple[str, str], int] = {}
        self._last: dict[str, Any] | None = None
        self._rates = (0.0, 0.0)
        self._started: float | None = None
        self.finished = threading.Event()
        #: set by an exporter once it has shown the final values
        self.delivered = threading.Event()

    def observe(self, event: dict[str, Any]) -> None:
        """Take the numbers of a ``progress`` or ``result`` event (others are ignored)."""
        numbers = event.get("metrics")
        if event.get("type") not in ("progress", "result") or not isinstance(numbers, dict):
            return
        self.update(numbers)

    def update(self, numbers: dict[str, Any]) -> None:
        with self._lock:
            if self.finished.is_set():
                return
            incoming = {(str(o), str(d)): int(n) for o, d, n in numbers.get("counts", [])}
            if self._last is not None and int(numbers["requests"]) < self._last["requests"]:
                # A fresh recording: what was counted so far stays counted.
                self._base = dict(self._counts)
                self._last = None
            for key, n in incoming.items():
                self._counts[key] = self._base.get(key, 0) + n
            last = self._last
            if self._started is None:
                self._started = float(numbers["t"])
            if last is not None:
                dt = float(numbers["t"]) - float(last["t"])
                if dt > 0:
                    self._rates = (
                        max(int(numbers["sent"]) - int(last["sent"]), 0) / dt,
                        max(int(numbers["requests"]) - int(last["requests"]), 0) / dt,
                    )
            self._last = numbers
            if numbers.get("final"):
                self.finished.set()

    def _measured(self, numbers: dict[str, Any]) -> _LiveMeasured:
        run = numbers.get("run") or {}
        block = LatencyBlock(
            kind=self.judged_on, samples=int(run.get("samples", 0)),
            min_ms=float(run.get("min_ms", 0.0)), max_ms=float(run.get("max_ms", 0.0)),
            mean_ms=float(run.get("mean_ms", 0.0)),
            percentiles_ms=dict(run.get("percentiles_ms") or {}),
        )
        requests = int(numbers["requests"])
        elapsed = float(numbers["t"]) - (self._started or float(numbers["t"]))
        return _LiveMeasured(
            judged=block,
            judged_on=self.judged_on,
            error_rate=int(numbers["failures"]) / requests if requests else None,
            throughput_rps=requests / elapsed if elapsed > 0 else None,
        )

    def samples(self) -> list[MetricSample]:
        """Every current value, in :data:`METRICS` order."""
        from aml_client.bench.report import slo

        with self._lock:
            numbers = self._last
            counts = dict(self._counts)
            offered, achieved = self._rates
            finished = self.finished.is_set()
        out: list[MetricSample] = []
        for (outcome, lane), n in sorted(counts.items()):
            out.append(MetricSample("amlc_requests",
                                    {"outcome": outcome, "deployment": lane or self.deployment},
                                    float(n)))
        if numbers is None:
            out.append(MetricSample("amlc_run_finished", {}, 0.0))
            return out
        out.append(MetricSample("amlc_requests_in_flight", {},
                                0.0 if finished else float(numbers["in_flight"])))
        out.append(MetricSample("amlc_offered_rate", {}, 0.0 if finished else offered))
        out.append(MetricSample("amlc_achieved_rate", {}, 0.0 if finished else achieved))
        if self.scheduled_rate is not None:
            out.append(MetricSample("amlc_scheduled_rate", {}, float(self.scheduled_rate)))
        for name, values in (("amlc_interval_latency_seconds", numbers.get("interval")),
                             ("amlc_latency_seconds", _run_quantiles(numbers.get("run")))):
            for quantile, value in (values or {}).items():
                out.append(MetricSample(name, {"quantile": quantile}, float(value)))
        if self.objectives:
            for verdict in slo.evaluate(self._measured(numbers), self.objectives):
                out.append(MetricSample("amlc_slo_met", {"objective": verdict.objective.text},
                                        1.0 if verdict.passed else 0.0))
        out.append(MetricSample("amlc_load_processes_lost", {}, float(numbers.get("lost", 0))))
        out.append(MetricSample("amlc_run_finished", {}, 1.0 if finished else 0.0))
        return out

    def total_requests(self) -> int:
        with self._lock:
            return sum(self._counts.values())


def _run_quantiles(run: dict[str, Any] | None) -> dict[str, float]:
    if not run or not run.get("samples"):
        return {}
    percentiles = run.get("percentiles_ms") or {}
    out = {_quantile(p): percentiles[percentile_key(p)] / 1000
           for p in GAUGE_PERCENTILES if percentile_key(p) in percentiles}
    out["1"] = float(run["max_ms"]) / 1000
    return out


def names(samples: Iterable[MetricSample]) -> set[str]:
    """The metric names among ``samples`` (for checks and tests)."""
    return {s.name for s in samples}
