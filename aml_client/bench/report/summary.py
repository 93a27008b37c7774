"""The summary of a benchmark run: one versioned pydantic model, built once, used everywhere.

:func:`aml_client.bench.report.summarize.summarize` turns a
:class:`~aml_client.bench.result.BenchResult` into a :class:`BenchSummary`; report files, the
console, Markdown/HTML, objectives (``--slo``), the web UI's HDR tab and ``--json`` all read
that object (never a dict, never the file just written). ``summary.json`` is its JSON form,
carrying ``schema_version``; :func:`parse_summary` reads any version amlc wrote, migrating
older ones on the way in (0.1 had no ``schema_version``). The version goes up whenever fields
are added, so an older amlc refuses a file whose new parts it would silently drop (version 3
added Azure's failure reasons and the blue/green section; version 4 each capacity step's
judged figures and the capacity search's lower bound).

Latencies are milliseconds with microsecond precision. In an open model ``corrected`` (intended
start -> reply) is the latency a run is judged on; ``latency`` is then the uncorrected send ->
reply, which hides stalls (coordinated omission).
"""

from __future__ import annotations

import math
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from aml_client.bench.hdr import SIGNIFICANT_FIGURES
from aml_client.errors import InputError

__all__ = [
    "AB_PERCENTS",
    "CPU_SATURATED",
    "LATE_FRACTION_LIMIT",
    "PERCENTILES",
    "PERCENTILE_DEFINITION",
    "PHASE_DESCRIPTIONS",
    "SCHEMA_VERSION",
    "Agreement",
    "BenchSummary",
    "BlueGreen",
    "Capacity",
    "CapacityStep",
    "DeploymentRun",
    "DeploymentSummary",
    "Failures",
    "IntervalRow",
    "LatencyBlock",
    "LostWorker",
    "RunConfig",
    "TransferSummary",
    "Validity",
    "Verdict",
    "min_samples",
    "parse_summary",
    "percentile_key",
    "sample_warnings",
    "to_ms",
]

#: Version of the summary.json layout this code writes (0.1 files had none: version 1).
SCHEMA_VERSION = 4
#: Percentiles of the final table.
PERCENTILES: tuple[float, ...] = (50, 75, 90, 95, 99, 99.9, 99.99)
#: Rows of ``ab``'s "Percentage of the requests served within a certain time (ms)" table.
AB_PERCENTS: tuple[int, ...] = (50, 66, 75, 80, 90, 95, 98, 99, 100)
PERCENTILE_DEFINITION = (
    "Nearest rank: with N samples, the value at percentile p is the ceil(p/100*N)-th smallest "
    "latency, i.e. the smallest v such that at least p % of the samples are <= v (so any p above "
    f"(N-1)/N is the max), to {SIGNIFICANT_FIGURES} significant digits and never above the "
    "exact max. ab takes the sample at index floor(N*p) in whole ms, Locust rounds response "
    "times first, k6 interpolates: on few samples they differ."
)
#: Confidence behind the second sample-size rule (MLPerf LoadGen uses 99 %).
CONFIDENCE = 0.99
#: More than this fraction of late sends makes a run INVALID (perf_analyzer warns above 1 %)...
LATE_FRACTION_LIMIT = 0.01
#: ... when they are at least this many (one scheduling hiccup of a busy machine is not a trend)
LATE_MIN_COUNT = 5
#: A load process at or above this fraction of one core is saturated (Locust warns at 90 %).
CPU_SATURATED = 0.9
#: Saturated seconds (and share of the run) from which a run is INVALID.
CPU_SATURATED_MIN_S = 3
CPU_SATURATED_MIN_SHARE = 0.25

PHASE_DESCRIPTIONS: dict[str, str] = {
    "connect": "opening a connection (TCP, and TLS for https), for requests that opened one",
    "ttfb": "first byte sent -> response headers received (time to first byte)",
    "body": "response headers -> last body byte (body transfer)",
    "server": "the scoring function's own time (x-ms-run-fn-exec-ms), where reported",
    "rest": "total - server: queueing, framework, network (where server time is reported)",
}


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore")


class LatencyBlock(_Model):
    """Every figure of one latency distribution, in milliseconds."""

    kind: str
    description: str = ""
    samples: int = 0
    out_of_range: int = 0
    min_ms: float = 0.0
    mean_ms: float = 0.0
    stdev_ms: float = 0.0
    max_ms: float = 0.0
    #: exact sum of every sample (to share time between phases)
    sum_ms: float = 0.0
    #: ``{"p50": 20.1, "p99.9": 31.0}`` for :data:`PERCENTILES`
    percentiles_ms: dict[str, float] = Field(default_factory=dict)
    #: ab's table: ``{"50": .., "66": .., "100": max}``
    served_within_ms: dict[str, float] = Field(default_factory=dict)
    #: (percentile 0..100, ms) points of the distribution, for the nines chart
    spectrum: list[tuple[float, float]] = Field(default_factory=list)

    def value_ms(self, metric: str) -> float | None:
        """``min``, ``mean``, ``max``, ``stdev`` or any percentile the block carries (``p66``)."""
        if not self.samples:
            return None
        if metric in ("min", "mean", "max", "stdev"):
            return float(getattr(self, f"{metric}_ms"))
        if metric in self.percentiles_ms:
            return self.percentiles_ms[metric]
        within = self.served_within_ms.get(metric[1:])
        return within


class Failures(_Model):
    total: int = 0
    by_kind: dict[str, int] = Field(default_factory=dict)
    #: Azure's reasons, a few per kind: a 424's model status and reason, a 429's cause, a 408's
    #: message (``{"http_424": {"model answered 500 Internal Server Error": 12}}``)
    reasons: dict[str, dict[str, int]] = Field(default_factory=dict)


class IntervalRow(_Model):
    t_s: float
    duration_s: float
    requests: int
    failures: int
    rps: float | None = None
    samples: int = 0
    p50_ms: float | None = None
    p90_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None


class TransferSummary(_Model):
    """What ab prints beside its latency table."""

    bytes_sent: int = 0
    bytes_received: int = 0
    body_bytes_received: int = 0
    sent_kb_per_s: float | None = None
    received_kb_per_s: float | None = None
    document_length: int | None = None
    #: successful responses of another length than the first (a failure in ab's sense only)
    document_length_changes: int = 0
    server: str | None = None
    server_changes: int = 0


class LostWorker(_Model):
    """A load process its master lost during the run, with the counts of its last report."""

    id: str
    host: str | None = None
    pid: int | None = None
    #: requests it had sent, and had seen answered, by its last report to the master
    sent: int = 0
    answered: int = 0


class DeploymentSummary(_Model):
    name: str
    requests: int
    failures: int
    share: float
    latency: LatencyBlock


class Validity(_Model):
    """Could the load generator apply the load it claims? (MLPerf LoadGen's INVALID)."""

    #: None: not assessed (a report from before amlc checked)
    valid: bool | None = True
    reasons: list[str] = Field(default_factory=list)
    late_sends: int = 0
    late_fraction: float = 0.0
    late_threshold_ms: float = 10.0
    slip: LatencyBlock | None = None
    cpu_peak_percent: float | None = None
    cpu_mean_percent: float | None = None
    cpu_saturated_s: int = 0
    peak_in_flight: int = 0
    max_senders: int | None = None


class CapacityStep(_Model):
    """One offered rate of a capacity search."""

    rate_rps: float
    achieved_rps: float | None
    requests: int
    failures: int
    error_rate: float | None
    warmup_s: float
    duration_s: float
    p50_ms: float | None
    p90_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    goodput_rps: float | None
    throttled_fraction: float = 0.0
    passed: bool
    #: False only when the load process, not the endpoint, set the pace (its CPU saturated
    #: while the endpoint had headroom): the step says nothing about the endpoint
    valid: bool = True
    notes: list[str] = Field(default_factory=list)
    #: each objective's measured figure, by metric: ``{"p95": 87.1, "error_rate": 0.0}``
    #: (latency in ms, error rate a fraction, throughput req/s; None: not measured)
    judged: dict[str, float | None] = Field(default_factory=dict)
    #: the step stopped before its planned end: its measurements already guaranteed a miss
    ended_early: bool = False


class Capacity(_Model):
    """The answer of ``amlc bench --find-capacity``."""

    found: bool
    #: highest offered rate at which every objective held
    max_rate_rps: float | None
    #: the load generator, not the endpoint, reached its limit: the capacity is at least
    #: this (``found`` is then False: the search could not find the truth)
    at_least_rps: float | None = None
    #: where latency starts to climb (see ``knee_rule``)
    knee_rps: float | None
    knee_rule: str = ""
    #: successful requests within the latency objective, per second, at ``max_rate_rps``
    goodput_rps: float | None
    objectives: list[str]
    search: str
    stopped_because: str
    steps: list[CapacityStep]


class DeploymentRun(_Model):
    """One deployment of a blue/green run: the requests pinned to it, measured on their own
    (its own histograms, merged exactly across load processes)."""

    name: str
    requests: int
    successes: int
    failures: Failures
    error_rate: float | None
    throughput_rps: float | None
    judged_on: str
    latency: LatencyBlock
    corrected: LatencyBlock | None = None
    phases: dict[str, LatencyBlock] = Field(default_factory=dict)
    #: who answered (``azureml-model-deployment`` response header): should be this deployment
    answered_by: dict[str, int] = Field(default_factory=dict)
    intervals: list[IntervalRow] = Field(default_factory=list)
    #: ``--find-capacity``: this deployment's own search (the figures above are its step at
    #: capacity)
    capacity: Capacity | None = None

    @property
    def judged(self) -> LatencyBlock:
        return self.corrected if self.corrected is not None else self.latency


class Verdict(_Model):
    """Is ``deployment``'s ``metric`` different from the baseline's? ``text`` says it for
    people, e.g. ``green p99 +12.0 % ± 3.1 % (significant)``."""

    deployment: str
    baseline: str
    metric: str
    unit: str = "ms"
    baseline_value: float | None
    value: float | None
    change_pct: float | None
    #: 95 % confidence interval of the relative change (None: not enough intervals)
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    #: None when not judged
    significant: bool | None = None
    text: str


class Agreement(_Model):
    """How often the deployments gave the baseline's predictions for the same request body."""

    baseline: str
    compared_requests: int
    compared_rows: int
    agreeing_rows: int
    #: agreeing_rows / compared_rows
    rate: float | None
    disagreeing_requests: int
    #: bodies not answered with predictions by every deployment (a failure, or the run ended)
    not_compared: int
    examples: list[str] = Field(default_factory=list)
    rule: str = ""


class BlueGreen(_Model):
    """``amlc bench --deployments``: the same bodies to each deployment, side by side."""

    deployments: list[str]
    #: the deployment the others are compared with (the first named)
    baseline: str
    interleaving: str
    runs: list[DeploymentRun]
    agreement: Agreement | None = None
    verdicts: list[Verdict] = Field(default_factory=list)
    #: how the verdicts' confidence intervals were computed
    method: str = ""

    def run(self, name: str) -> DeploymentRun | None:
        return next((r for r in self.runs if r.name == name), None)


class RunConfig(_Model):
    """How the run was set up (the plan and the target, never a secret)."""

    model_config = ConfigDict(extra="allow")

    mode: str = "closed"
    users: int | None = None
    spawn_rate: float | None = None
    duration_s: float | None = None
    max_requests: int | None = None
    rate: float | None = None
    arrival: str | None = None
    seed: int | None = None
    workers: int = 0
    timeout_s: float | None = None
    interval_s: float | None = None
    max_senders: int | None = None
    deployments: list[str] | None = None
    endpoint: str | None = None
    scoring_uri: str | None = None
    auth: str | None = None
    verify_tls: bool | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    latency: str | None = None


class Environment(_Model):
    """Tool versions and the machine (the keys of :func:`environment_facts`, and more)."""

    model_config = ConfigDict(extra="allow")

    amlc: str | None = None
    locust: str | None = None
    hdrhistogram: str | None = None
    python: str | None = None
    platform: str | None = None
    cpu_count: int | None = None
    cpu_usable: int | None = None
    load_processes: int | None = None


class BenchSummary(_Model):
    """Every number of a run (``summary.json``)."""

    schema_version: int = SCHEMA_VERSION
    report_id: str | None = None
    endpoint: str
    mode: str
    started_at: str
    ended_at: str
    started_at_epoch_s: float
    duration_s: float
    requests: int
    successes: int
    failures: Failures
    error_rate: float | None
    throughput_rps: float | None
    unit: Literal["ms"] = "ms"
    significant_figures: int = SIGNIFICANT_FIGURES
    percentile_definition: str = PERCENTILE_DEFINITION
    judged_on: str
    latency: LatencyBlock
    corrected: LatencyBlock | None = None
    #: per-phase blocks, in :data:`~aml_client.bench.result.PHASES` order (measured ones only)
    phases: dict[str, LatencyBlock] = Field(default_factory=dict)
    transfer: TransferSummary = Field(default_factory=TransferSummary)
    deployments: list[DeploymentSummary] = Field(default_factory=list)
    validity: Validity = Field(default_factory=Validity)
    intervals: list[IntervalRow] = Field(default_factory=list)
    intervals_measure: str = "latency"
    warnings: list[str] = Field(default_factory=list)
    capacity: Capacity | None = None
    #: a load process was lost during the run: the figures cover only what reached the master
    partial: bool = False
    lost_workers: list[LostWorker] = Field(default_factory=list)
    #: ``--deployments``: each deployment's own figures, agreement and verdicts
    blue_green: BlueGreen | None = None
    config: RunConfig = Field(default_factory=RunConfig)
    environment: Environment = Field(default_factory=Environment)
    #: where the summary was read from (set on reading, never written)
    report_dir: str | None = Field(default=None, exclude=True)

    @property
    def judged(self) -> LatencyBlock:
        """The latency the run is judged on: corrected in an open model, else send -> reply."""
        return self.corrected if self.corrected is not None else self.latency

    @property
    def valid(self) -> bool:
        return self.validity.valid is not False

    def to_json(self) -> str:
        return self.model_dump_json(indent=2) + "\n"

    def to_data(self) -> dict[str, Any]:
        """The JSON form as Python data (what ``--json`` prints)."""
        return self.model_dump(mode="json")


# -- building ------------------------------------------------------------------------------------
def to_ms(us: float) -> float:
    """Microseconds to milliseconds, keeping microsecond precision."""
    return round(us / 1000.0, 3)


def percentile_key(p: float) -> str:
    """``99.9`` -> ``"p99.9"``, the key of a percentile in a latency block."""
    return f"p{p:g}"


def min_samples(p: float, confidence: float = CONFIDENCE) -> tuple[int, int]:
    """Samples needed for percentile ``p``: (to resolve it at all, to bound it with confidence).

    The first is 1/(1-p): with fewer, "p99.9" is simply the maximum. The second is MLPerf
    LoadGen's rule: with n >= ln(1-confidence)/ln(p) samples, the chance that every sample lies
    below the true percentile is under 1-confidence (459 samples for p99 at 99 %).
    """
    fraction = p / 100.0
    if fraction >= 1.0:
        return 1, 1
    resolve = math.ceil(1.0 / (1.0 - fraction) - 1e-9)
    bound = math.ceil(math.log(1.0 - confidence) / math.log(fraction) - 1e-9) if fraction else 1
    return resolve, bound


def sample_warnings(samples: int, percentiles: tuple[float, ...] = PERCENTILES) -> list[str]:
    """Why some percentiles of ``samples`` samples cannot be trusted (empty when all can)."""
    warnings = []
    for p in percentiles:
        resolve, bound = min_samples(p)
        if samples < resolve:
            warnings.append(
                f"{percentile_key(p)} from {samples} samples: at least {resolve} are needed "
                "to resolve it; it is just the maximum"
            )
        elif samples < bound:
            warnings.append(
                f"{percentile_key(p)} from {samples} samples: fewer than the {bound} needed for "
                f"{CONFIDENCE:.0%} confidence (MLPerf's rule)"
            )
    return warnings


# -- reading -------------------------------------------------------------------------------------
_PERCENTILE_KEY = re.compile(r"^(p\d+(?:\.\d+)?)_ms$")


def _migrate_block(block: Any) -> Any:
    """A 0.1 latency block (``p50_ms`` … at the top level) in the current shape."""
    if not isinstance(block, dict):
        return block
    out = dict(block)
    percentiles = {}
    for key in list(out):
        match = _PERCENTILE_KEY.match(key)
        if match:
            percentiles[match.group(1)] = out.pop(key)
    out.setdefault("percentiles_ms", percentiles)
    if "sum_ms" not in out and isinstance(out.get("mean_ms"), int | float):
        out["sum_ms"] = round(float(out["mean_ms"]) * int(out.get("samples") or 0), 3)
    return out


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """summary.json as amlc 0.1 wrote it (``format: amlc-bench-summary/1``)."""
    out = dict(data)
    out.pop("format", None)
    out.pop("locust", None)  # Locust's own rounded statistics are no longer reported
    out["latency"] = _migrate_block(out.get("latency"))
    if out.get("corrected") is not None:
        out["corrected"] = _migrate_block(out["corrected"])
    # 0.1 did not check the load generator: validity unknown.
    out["validity"] = {"valid": None, "reasons": [],
                       "late_sends": int((out.get("config") or {}).get("late_sends") or 0)}
    out["schema_version"] = SCHEMA_VERSION
    return out


def parse_summary(data: Any, *, source: str = "summary.json") -> BenchSummary:
    """A :class:`BenchSummary` from ``summary.json`` data of any version amlc wrote."""
    if not isinstance(data, dict) or "latency" not in data or "requests" not in data:
        raise InputError("not an amlc benchmark summary", path=source)
    version = data.get("schema_version")
    if version is None:
        data = _migrate_v1(data)
    elif version in (2, 3):
        # Versions 3 and 4 only added fields (failure reasons, the blue/green section; a
        # capacity step's judged figures, a capacity's lower bound): their defaults say "none
        # recorded".
        data = {**data, "schema_version": SCHEMA_VERSION}
    elif not isinstance(version, int) or version > SCHEMA_VERSION:
        raise InputError(
            f"summary schema_version {version!r} is newer than this amlc reads "
            f"({SCHEMA_VERSION}): upgrade amlc",
            path=source,
        )
    try:
        return BenchSummary.model_validate(data)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise InputError(f"not an amlc benchmark summary: {where}: {first['msg']}",
                         path=source) from None
