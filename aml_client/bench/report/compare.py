"""Did B get slower than A? Runs side by side, with confidence intervals that count the noise
between runs, and gates.

Each side is one run or several (``amlc bench --repeat N`` writes a group of N). Every figure of
A and B (the mean over a side's runs) is shown with the change B - A. For the latency a run is
judged on (and for throughput) a 95 % confidence interval of the relative change comes from a
*hierarchical bootstrap*: each resample picks a side's runs with replacement, then each picked
run's measurement intervals (``latency.hlog``) with replacement (which keeps the correlation
between neighbouring requests inside an interval), recomputes the figure of each picked run on
its merged histograms and takes their mean. The 2.5 and 97.5 percentiles of B/A - 1 over the
resamples bound the change; when they contain zero the change is "no significant difference".

The runs of a side are few, so the bootstrap alone under-states how much a figure moves from
one run to the next (and with one run per side it cannot see that at all: a back-to-back run
on a busy machine differs by more than its own intervals suggest). The spread between runs is
therefore estimated from a prior (:data:`RUN_NOISE`, the run-to-run spread of each figure
measured on a busy 2-core machine, worth :data:`PRIOR_RUNS` runs) pooled with the spread the
runs show, and each resample adds the part of it the resampled runs do not already carry
(drawn with the uncertainty of that estimate, which gives Student-like tails). With one run per
side the interval is as wide as the prior says; ``--run-noise 0%`` trusts the within-run noise
alone.

A gate (``--fail-on 'p99>+10%'``, ``--fail-on 'throughput<-5%'``) fails on a *significant*
regression: the interval excludes zero and the measured change goes past the threshold in the
gate's direction.

The same interval bootstrap gives a blue/green run's verdicts (:func:`deployment_verdicts`):
each deployment against the baseline, from the two deployments' own interval series. Their
requests were interleaved in one run, so there is no between-run noise, and their windows pair
up one to one; the resamples then pick the *same* windows for both (a paired bootstrap), which
keeps what the two shared in each window (the machine's load of the moment) out of the
difference.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from aml_client.bench.hdr import nearest_rank
from aml_client.bench.report.files import HlogInterval, read_hlog
from aml_client.bench.report.summary import (
    PERCENTILES,
    BenchSummary,
    DeploymentRun,
    LatencyBlock,
    Verdict,
)
from aml_client.bench.result import Interval

__all__ = [
    "VERDICT_METRICS",
    "Comparison",
    "Gate",
    "GateResult",
    "capacity_verdicts",
    "compare",
    "deployment_verdicts",
    "parse_gate",
]

#: Relative change below which two figures are called the same (run-to-run noise) when no
#: confidence interval is available.
SAME_WITHIN_PCT = 1.0
#: Bootstrap resamples per run, and the fewest intervals a run needs for an interval.
RESAMPLES = 1000
MIN_INTERVALS = 5
CONFIDENCE = 0.95
#: Prior run-to-run spread of each figure (standard deviation of its logarithm between
#: identical back-to-back runs of a few seconds). ``benchmarks/compare_noise.py`` measures it:
#: on a shared 2-core machine with a CPU-bound process beside the runs, p99 10 to 41 % and
#: throughput 2 to 8 % as the machine's load varied. Figures not listed take the max's.
RUN_NOISE: dict[str, float] = {
    "throughput": 0.05, "mean": 0.05, "p50": 0.05, "p75": 0.06, "p90": 0.08, "p95": 0.1,
    "p99": 0.15, "p99.9": 0.25, "p99.99": 0.3, "max": 0.35,
}
#: How many runs' worth of evidence the prior is. Little: with one run per side the interval
#: gets the wide tails of a spread known from 2 runs (it refuses to call small changes), and
#: with 3 runs a side (4 degrees of freedom) the runs' own spread weighs twice the prior.
PRIOR_RUNS = 2
#: The latency figures a blue/green run gives a verdict on.
VERDICT_METRICS = ("mean", "p50", "p90", "p99")
_LATENCY_ROWS = ("min", "mean", "stdev", *(f"p{p:g}" for p in PERCENTILES), "max")
_BOOTSTRAPPED = {"mean", "max", *(f"p{p:g}" for p in PERCENTILES)}


class Row(BaseModel):
    metric: str
    unit: str
    a: float | None
    b: float | None
    better: Literal["lower", "higher", "none"]
    change: float | None = None
    change_pct: float | None = None
    #: 95 % confidence interval of the relative change, in % (bootstrap over intervals)
    ci_low_pct: float | None = None
    ci_high_pct: float | None = None
    verdict: str = "n/a"


class Section(BaseModel):
    name: str
    title: str
    rows: list[Row]


class Side(BaseModel):
    #: the first run's (or, for a group, the group's) id and directory
    report_id: str | None
    report_dir: str | None
    endpoint: str
    mode: str
    started_at: str
    #: per run (the mean over the side's runs)
    duration_s: float
    #: measurement intervals, all runs together
    intervals: int
    runs: int = 1
    report_ids: list[str] = Field(default_factory=list)


class GateResult(BaseModel):
    gate: str
    metric: str
    change_pct: float | None
    ci_low_pct: float | None
    ci_high_pct: float | None
    verdict: str
    failed: bool
    message: str


class Comparison(BaseModel):
    a: Side
    b: Side
    sections: list[Section]
    notes: list[str] = Field(default_factory=list)
    gates: list[GateResult] = Field(default_factory=list)
    method: str = ""
    #: the run-to-run spread (in %, per figure) the intervals allowed for
    run_noise_pct: dict[str, float] = Field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return any(g.failed for g in self.gates)


# -- gates -------------------------------------------------------------------------------------
_GATE = re.compile(
    r"^\s*([A-Za-z_][A-Za-z0-9_.]*)\s*([<>])\s*([+-]?)\s*(\d+(?:\.\d*)?|\.\d+)\s*%\s*$"
)
_GATE_ALIASES = {"rps": "throughput", "qps": "throughput", "avg": "mean", "average": "mean"}


@dataclass(frozen=True)
class Gate:
    """``p99>+10%``: fail when B's p99 is significantly more than 10 % above A's."""

    text: str
    metric: str
    op: str  # ">" (fail on an increase beyond) or "<" (fail on a decrease beyond)
    threshold_pct: float  # signed

    def __str__(self) -> str:
        return self.text


def parse_gate(text: str) -> Gate:
    """Parse ``METRIC >|< [+|-]N%``; raise ValueError saying what is wrong."""
    match = _GATE.match(text or "")
    if not match:
        raise ValueError(
            f"{text!r}: expected METRIC > +N% or METRIC < -N%, e.g. 'p99>+10%', "
            "'throughput<-5%'"
        )
    name, op, sign, number = match.groups()
    metric = _GATE_ALIASES.get(name.lower(), name.lower())
    known = {"throughput", *_BOOTSTRAPPED}
    if metric not in known:
        raise ValueError(
            f"{text!r}: unknown metric {name!r} (use {', '.join(sorted(known))})"
        )
    value = float(number) * (-1.0 if sign == "-" else 1.0)
    if (op == ">" and value < 0) or (op == "<" and value > 0):
        raise ValueError(
            f"{text!r}: '>' takes a positive change (an increase), '<' a negative one"
        )
    return Gate(text=text.strip(), metric=metric, op=op, threshold_pct=value)


# -- bootstrap ---------------------------------------------------------------------------------
class _Intervals:
    """One run's interval histograms as a dense count matrix over the union of their values."""

    def __init__(self, intervals: list[HlogInterval]) -> None:
        self.count = len(intervals)
        per: list[dict[int, int]] = []
        values: set[int] = set()
        for item in intervals:
            per.append(_recorded(item.histogram))
            values.update(per[-1])
        self.values = np.array(sorted(values), dtype=np.float64)
        index = {v: i for i, v in enumerate(sorted(values))}
        self.matrix = np.zeros((self.count, len(self.values)), dtype=np.float64)
        for row, counts in enumerate(per):
            for value, n in counts.items():
                self.matrix[row, index[value]] = n
        self.requests = self.matrix.sum(axis=1)
        self.lengths = np.array([max(i.length_s, 1e-9) for i in intervals], dtype=np.float64)

    def statistics(self, weights: np.ndarray, metrics: list[str]) -> dict[str, np.ndarray]:
        """Each metric over every resample (``weights``: resamples x intervals, times picked)."""
        merged = weights @ self.matrix  # resamples x values
        totals = merged.sum(axis=1)
        out: dict[str, np.ndarray] = {}
        cumulative = np.cumsum(merged, axis=1)
        for metric in metrics:
            if metric == "throughput":
                out[metric] = (weights @ self.requests) / (weights @ self.lengths)
            elif metric == "mean":
                out[metric] = (merged @ self.values) / np.maximum(totals, 1)
            elif metric == "max":
                present = merged > 0
                last = present.shape[1] - 1 - np.argmax(present[:, ::-1], axis=1)
                out[metric] = self.values[last]
            else:
                p = float(metric[1:])
                ranks = np.array([nearest_rank(p, int(t)) for t in totals], dtype=np.float64)
                position = np.argmax(cumulative >= ranks[:, None], axis=1)
                out[metric] = self.values[position]
        return out

    def resample(self, rng: np.random.Generator, resamples: int) -> np.ndarray:
        picks = rng.integers(0, self.count, size=(resamples, self.count))
        weights = np.zeros((resamples, self.count), dtype=np.float64)
        np.add.at(weights, (np.arange(resamples)[:, None], picks), 1.0)
        return weights


def _recorded(h: Any) -> dict[int, int]:
    """``{value: count}`` of a histogram's recorded values (the top of each bucket, as its
    recorded-values iterator gives them), read straight off its counts array: hdrh's iterator
    walks every bucket in Python, about 50 times slower."""
    counts = np.ctypeslib.as_array(h.counts)
    length = min(h.counts_len, h.encoder.payload.counts_len)
    out: dict[int, int] = {}
    for index in np.flatnonzero(counts[:length]):
        value = int(h.get_highest_equivalent_value(h.get_value_from_index(int(index))))
        out[value] = out.get(value, 0) + int(counts[index])
    return out


def _intervals_of(summary: BenchSummary) -> list[HlogInterval]:
    if not summary.report_dir:
        return []
    return [i for i in read_hlog(Path(summary.report_dir) / "latency.hlog")
            if i.histogram.get_total_count()]


def _bootstrap(
    a: list[HlogInterval], b: list[HlogInterval], metrics: list[str], seed: int = 1,
    *, paired: bool = False,
) -> dict[str, tuple[float, float]]:
    """95 % interval of B/A - 1 (in %) per metric; empty when a run has too few intervals.

    ``paired``: ``a[i]`` and ``b[i]`` cover the same window, and each resample picks the same
    windows of both.
    """
    if len(a) < MIN_INTERVALS or len(b) < MIN_INTERVALS:
        return {}
    if paired and len(a) != len(b):
        raise ValueError("a paired bootstrap needs the same windows on both sides")
    rng = np.random.default_rng(seed)
    side_a, side_b = _Intervals(a), _Intervals(b)
    weights_a = side_a.resample(rng, RESAMPLES)
    weights_b = weights_a if paired else side_b.resample(rng, RESAMPLES)
    stats_a = side_a.statistics(weights_a, metrics)
    stats_b = side_b.statistics(weights_b, metrics)
    tail = (1.0 - CONFIDENCE) / 2 * 100
    out = {}
    for metric in metrics:
        base = stats_a[metric]
        ok = base > 0
        if not ok.any():
            continue
        ratio = stats_b[metric][ok] / base[ok] - 1.0
        low, high = np.percentile(ratio, [tail, 100 - tail])
        out[metric] = (round(float(low) * 100, 2), round(float(high) * 100, 2))
    return out


def run_noise(metric: str, override: float | None = None) -> float:
    """The prior run-to-run spread of ``metric`` (log scale), or ``override`` for all."""
    if override is not None:
        return override
    return RUN_NOISE.get(metric, RUN_NOISE["max"])


class _Runs:
    """A side's runs: their intervals stacked in one :class:`_Intervals`, and which rows belong
    to which run."""

    def __init__(self, runs: list[list[HlogInterval]]) -> None:
        self.sizes = [len(run) for run in runs]
        self.offsets = np.cumsum([0, *self.sizes[:-1]])
        self.data = _Intervals([item for run in runs for item in run])

    @property
    def count(self) -> int:
        return len(self.sizes)

    def _picks(self, rng: np.random.Generator, resamples: int) -> list[np.ndarray]:
        """One weight matrix (resamples x rows) per picked run: which run (with replacement),
        then which of its intervals (with replacement)."""
        runs = rng.integers(0, self.count, size=(resamples, self.count))
        out = []
        for j in range(self.count):
            weights = np.zeros((resamples, self.data.count), dtype=np.float64)
            for r, size in enumerate(self.sizes):
                who = np.flatnonzero(runs[:, j] == r)
                if who.size:
                    rows = self.offsets[r] + rng.integers(0, size, size=(who.size, size))
                    np.add.at(weights, (who[:, None], rows), 1.0)
            out.append(weights)
        return out

    def resampled(self, rng: np.random.Generator, resamples: int,
                  metrics: list[str]) -> dict[str, np.ndarray]:
        """Each metric's mean over the picked runs, per resample."""
        sums: dict[str, np.ndarray] = {m: np.zeros(resamples) for m in metrics}
        for weights in self._picks(rng, resamples):
            for metric, values in self.data.statistics(weights, metrics).items():
                sums[metric] += values
        return {m: v / self.count for m, v in sums.items()}

    def per_run(self, metrics: list[str]) -> dict[str, np.ndarray]:
        """Each metric of each run, on all its intervals."""
        weights = np.zeros((self.count, self.data.count), dtype=np.float64)
        for r, size in enumerate(self.sizes):
            weights[r, self.offsets[r]:self.offsets[r] + size] = 1.0
        return self.data.statistics(weights, metrics)


def _hierarchical(
    a: list[list[HlogInterval]], b: list[list[HlogInterval]], metrics: list[str],
    *, noise: float | None = None, seed: int = 1,
) -> tuple[dict[str, tuple[float, float]], dict[str, float]]:
    """95 % interval of B/A - 1 (in %) per metric, from runs and their intervals, widened to
    the run-to-run spread (prior pooled with what the runs show); and that spread per metric
    (in %). Empty when a run has too few intervals."""
    if not a or not b or any(len(run) < MIN_INTERVALS for run in (*a, *b)):
        return {}, {}
    rng = np.random.default_rng(seed)
    side_a, side_b = _Runs(a), _Runs(b)
    stats_a = side_a.resampled(rng, RESAMPLES, metrics)
    stats_b = side_b.resampled(rng, RESAMPLES, metrics)
    runs_a, runs_b = side_a.per_run(metrics), side_b.per_run(metrics)
    df = side_a.count - 1 + side_b.count - 1
    tail = (1.0 - CONFIDENCE) / 2 * 100
    cis, spread = {}, {}
    for metric in metrics:
        ok = (stats_a[metric] > 0) & (stats_b[metric] > 0)
        if not ok.any() or (runs_a[metric] <= 0).any() or (runs_b[metric] <= 0).any():
            continue
        log_ratio = np.log(stats_b[metric][ok] / stats_a[metric][ok])
        # Spread between runs: the prior (PRIOR_RUNS degrees of freedom) pooled with the
        # runs' own (df), drawn from its scaled inverse chi-square so few runs mean wide tails.
        observed = 0.0
        for figures in (runs_a[metric], runs_b[metric]):
            logs = np.log(figures)
            observed += float(((logs - logs.mean()) ** 2).sum())
        prior = run_noise(metric, noise)
        nu = PRIOR_RUNS + df
        pooled = (PRIOR_RUNS * prior**2 + observed) / nu if nu else 0.0
        carried = 0.0  # what resampling the runs already carries, in expectation
        for n in (side_a.count, side_b.count):
            if n > 1 and df:
                carried += (n - 1) / n**2 * observed / df
        if pooled > 0:
            variance = nu * pooled / rng.chisquare(nu, size=log_ratio.size)
            extra = np.maximum(variance * (1 / side_a.count + 1 / side_b.count) - carried, 0.0)
            log_ratio = log_ratio + rng.standard_normal(log_ratio.size) * np.sqrt(extra)
        low, high = np.percentile(np.expm1(log_ratio), [tail, 100 - tail])
        cis[metric] = (round(float(low) * 100, 2), round(float(high) * 100, 2))
        spread[metric] = round(float(np.sqrt(pooled)) * 100, 2)
    return cis, spread


# -- comparing ---------------------------------------------------------------------------------
def _row(metric: str, unit: str, a: float | None, b: float | None, better: str,
         ci: tuple[float, float] | None = None) -> Row:
    row = Row(metric=metric, unit=unit, a=a, b=b, better=better)  # type: ignore[arg-type]
    if a is None or b is None:
        return row
    change = b - a
    pct = (change / a * 100.0) if a else (0.0 if change == 0 else None)
    row.change = round(change, 6)
    row.change_pct = round(pct, 2) if pct is not None else None
    if ci is not None:
        row.ci_low_pct, row.ci_high_pct = ci
    if better == "none":
        return row
    if ci is not None:
        same = ci[0] <= 0.0 <= ci[1]
    else:
        same = pct is not None and abs(pct) < SAME_WITHIN_PCT
    if same:
        row.verdict = "same"
    else:
        row.verdict = "better" if (change < 0) == (better == "lower") else "worse"
    return row


def _mean(values: Sequence[float | None]) -> float | None:
    """The mean over a side's runs (None when a run lacks the figure)."""
    if not values or any(v is None for v in values):
        return None
    return sum(v for v in values if v is not None) / len(values)


def _latency_rows(a: Sequence[LatencyBlock | None], b: Sequence[LatencyBlock | None],
                  cis: dict[str, tuple[float, float]]) -> list[Row]:
    def figure(blocks: Sequence[LatencyBlock | None], name: str) -> float | None:
        return _mean([x.value_ms(name) if x else None for x in blocks])

    rows = []
    for name in _LATENCY_ROWS:
        better = "none" if name == "stdev" else "lower"
        rows.append(_row(name, "ms", figure(a, name), figure(b, name), better, cis.get(name)))
    rows.append(_row("samples", "", _mean([float(x.samples) if x else None for x in a]),
                     _mean([float(x.samples) if x else None for x in b]), "none"))
    return rows


def _side(runs: Sequence[BenchSummary], intervals: int, label: str | None) -> Side:
    first = runs[0]
    return Side(report_id=label or first.report_id,
                report_dir=first.report_dir if len(runs) == 1 else None,
                endpoint=first.endpoint, mode=first.mode, started_at=first.started_at,
                duration_s=round(sum(r.duration_s for r in runs) / len(runs), 3),
                intervals=intervals, runs=len(runs),
                report_ids=[r.report_id or "-" for r in runs])


def _pct(fraction: float | None) -> float | None:
    return round(fraction * 100.0, 4) if fraction is not None else None


def _judge_gate(gate: Gate, row: Row | None) -> GateResult:
    if row is None or row.change_pct is None:
        return GateResult(gate=gate.text, metric=gate.metric, change_pct=None, ci_low_pct=None,
                          ci_high_pct=None, verdict="not measured", failed=False,
                          message=f"{gate.text}: not measured in both runs")
    change = row.change_pct
    low, high = row.ci_low_pct, row.ci_high_pct
    beyond = change > gate.threshold_pct if gate.op == ">" else change < gate.threshold_pct
    ci_text = f" (95 % CI {low:+.1f} % .. {high:+.1f} %)" if low is not None else ""
    if low is None or high is None:
        verdict, failed = (
            f"no confidence interval (each run needs {MIN_INTERVALS}+ intervals): "
            "not judged", False)
    elif low <= 0.0 <= high:
        verdict, failed = "no significant difference", False
    elif beyond:
        verdict, failed = "significant regression", True
    else:
        verdict, failed = "significant change within the tolerance", False
    return GateResult(
        gate=gate.text, metric=gate.metric, change_pct=change, ci_low_pct=low, ci_high_pct=high,
        verdict=verdict, failed=failed,
        message=f"{gate.metric} changed {change:+.1f} %{ci_text}, gate {gate.text}: {verdict}",
    )


def _as_runs(side: BenchSummary | Sequence[BenchSummary]) -> list[BenchSummary]:
    runs = [side] if isinstance(side, BenchSummary) else list(side)
    if not runs:
        raise ValueError("each side of a comparison needs at least one run")
    return runs


def _method(n_a: int, n_b: int, noise: float | None, spread: dict[str, float]) -> str:
    runs = f"{n_a} run{'s' if n_a != 1 else ''} (A) vs {n_b} (B)"
    head = (f"{CONFIDENCE:.0%} confidence intervals of B/A - 1, hierarchical bootstrap "
            f"({RESAMPLES} resamples of each side's runs, then of each run's measurement "
            f"intervals), {runs}")
    shown = ", ".join(f"{m} {spread[m]:.1f} %" for m in ("throughput", "p50", "p99")
                      if m in spread)
    if noise == 0:
        between = "between-run noise: only what the runs show (--run-noise 0%)"
    elif n_a == 1 and n_b == 1:
        between = ("between-run noise: unknown with one run per side, so a prior is assumed"
                   + (f" ({shown} per run)" if shown else "")
                   + "; give several runs per side (amlc bench --repeat 3) to measure it")
    else:
        between = ("between-run noise: the runs' own spread pooled with a prior worth "
                   f"{PRIOR_RUNS} runs" + (f" ({shown} per run)" if shown else ""))
    return f"{head}; {between}"


def compare(
    a: BenchSummary | Sequence[BenchSummary],
    b: BenchSummary | Sequence[BenchSummary],
    gates: list[Gate] | None = None,
    *,
    run_noise_pct: float | None = None,
    labels: tuple[str | None, str | None] = (None, None),
) -> Comparison:
    """A's run(s) and B's side by side (B against A): the mean of each figure over a side's
    runs, the change with a confidence interval that counts the noise between runs, and gate
    verdicts. ``run_noise_pct`` replaces the prior run-to-run spread of every figure
    (:data:`RUN_NOISE`); 0 trusts the within-run noise alone. ``labels`` name the sides (a
    group's id)."""
    runs_a, runs_b = _as_runs(a), _as_runs(b)
    noise = None if run_noise_pct is None else run_noise_pct / 100.0
    logs_a = [_intervals_of(s) for s in runs_a]
    logs_b = [_intervals_of(s) for s in runs_b]
    judged = {s.judged_on for s in (*runs_a, *runs_b)}
    judged_same = len(judged) == 1
    judged_on = runs_a[0].judged_on
    metrics = ["throughput", *sorted(_BOOTSTRAPPED)]
    cis, spread = _hierarchical(logs_a, logs_b, metrics, noise=noise) if judged_same else ({}, {})
    overall = [
        _row("requests", "", _mean([float(s.requests) for s in runs_a]),
             _mean([float(s.requests) for s in runs_b]), "none"),
        _row("throughput", "req/s", _mean([s.throughput_rps for s in runs_a]),
             _mean([s.throughput_rps for s in runs_b]), "higher", cis.get("throughput")),
        _row("error_rate", "%", _pct(_mean([s.error_rate for s in runs_a])),
             _pct(_mean([s.error_rate for s in runs_b])), "lower"),
        _row("duration", "s", _mean([s.duration_s for s in runs_a]),
             _mean([s.duration_s for s in runs_b]), "none"),
    ]
    judged_cis = {k: v for k, v in cis.items() if k != "throughput"}
    sections = [
        Section(name="overall", title="overall", rows=overall),
        Section(name="latency", title="latency, send -> reply (ms)",
                rows=_latency_rows([s.latency for s in runs_a], [s.latency for s in runs_b],
                                   judged_cis if judged_on == "latency" else {})),
    ]
    if any(s.corrected is not None for s in (*runs_a, *runs_b)):
        sections.append(Section(
            name="corrected", title="corrected latency, intended start -> reply (ms)",
            rows=_latency_rows([s.corrected for s in runs_a], [s.corrected for s in runs_b],
                               judged_cis if judged_on == "corrected" else {})))
    notes = []
    if len(runs_a) > 1 or len(runs_b) > 1:
        notes.append("A and B are the mean of each figure over their runs")
    modes = {s.mode for s in (*runs_a, *runs_b)}
    if len(modes) > 1:
        notes.append("different load models: A is "
                     + "/".join(sorted({s.mode for s in runs_a})) + ", B is "
                     + "/".join(sorted({s.mode for s in runs_b})))
    endpoints = {s.endpoint for s in (*runs_a, *runs_b)}
    if len(endpoints) > 1:
        notes.append("different endpoints: A is "
                     + "/".join(sorted({s.endpoint for s in runs_a})) + ", B is "
                     + "/".join(sorted({s.endpoint for s in runs_b})))
    invalid = [s.report_id or "-" for s in (*runs_a, *runs_b) if not s.valid]
    if invalid:
        notes.append(f"INVALID: {', '.join(invalid)}: the load generator fell behind; "
                     "figures are suspect")
    if not cis:
        notes.append(
            "no confidence intervals: "
            + ("the runs are judged on different latencies" if not judged_same else
               f"each run needs {MIN_INTERVALS}+ measurement intervals in latency.hlog")
        )
    judged_section = next(s for s in sections if s.name == judged_on)
    by_metric = {r.metric: r for r in judged_section.rows}
    by_metric["throughput"] = overall[1]
    results = [_judge_gate(g, by_metric.get(g.metric)) for g in gates or []]
    return Comparison(
        a=_side(runs_a, sum(len(x) for x in logs_a), labels[0]),
        b=_side(runs_b, sum(len(x) for x in logs_b), labels[1]),
        sections=sections, notes=notes, gates=results,
        method=_method(len(runs_a), len(runs_b), noise, spread), run_noise_pct=spread,
    )


def row_map(comparison: Comparison, section: str) -> dict[str, Row]:
    """``{metric: row}`` of one section (tests, renderers)."""
    return {r.metric: r for s in comparison.sections if s.name == section for r in s.rows}


# -- blue/green ---------------------------------------------------------------------------------
def _windows(intervals: list[Interval]) -> dict[float, HlogInterval]:
    return {round(i.start_s, 6): HlogInterval(i.start_s, i.duration_s, i.latency.histogram)
            for i in intervals if i.latency.count}


def _verdict_text(name: str, metric: str, change: float | None,
                  ci: tuple[float, float] | None, why_not: str) -> tuple[str, bool | None]:
    if change is None:
        return f"{name} {metric}: not measured on both", None
    head = f"{name} {metric} {change:+.1f} %"
    if ci is None:
        return f"{head} (not judged: {why_not})", None
    half = (ci[1] - ci[0]) / 2
    significant = not ci[0] <= 0.0 <= ci[1]
    return (f"{head} ± {half:.1f} % "
            f"({'significant' if significant else 'no significant difference'})", significant)


def deployment_verdicts(
    baseline: str,
    intervals: dict[str, list[Interval]],
    runs: list[DeploymentRun],
    metrics: tuple[str, ...] = VERDICT_METRICS,
) -> tuple[list[Verdict], str]:
    """Each deployment against ``baseline``, per metric of its judged latency: the change
    with a 95 % confidence interval (a paired bootstrap over the windows both have, else an
    unpaired one), and whether it is significant. Returns the verdicts and the method."""
    by_name = {run.name: run for run in runs}
    base_run = by_name.get(baseline)
    base_windows = _windows(intervals.get(baseline, []))
    verdicts = []
    methods = set()
    for run in runs:
        if run.name == baseline or base_run is None:
            continue
        windows = _windows(intervals.get(run.name, []))
        shared = sorted(set(base_windows) & set(windows))
        if len(shared) >= MIN_INTERVALS:
            cis = _bootstrap([base_windows[k] for k in shared], [windows[k] for k in shared],
                             list(metrics), paired=True)
            methods.add(f"paired over {len(shared)} windows")
        else:
            cis = _bootstrap(list(base_windows.values()), list(windows.values()), list(metrics))
            if cis:
                methods.add("unpaired")
        why_not = f"fewer than {MIN_INTERVALS} measurement intervals"
        for metric in metrics:
            a, b = base_run.judged.value_ms(metric), run.judged.value_ms(metric)
            change = round((b / a - 1.0) * 100.0, 2) if a and b is not None else None
            ci = cis.get(metric)
            text, significant = _verdict_text(run.name, metric, change, ci, why_not)
            verdicts.append(Verdict(
                deployment=run.name, baseline=baseline, metric=metric, baseline_value=a,
                value=b, change_pct=change, ci_low_pct=ci[0] if ci else None,
                ci_high_pct=ci[1] if ci else None, significant=significant, text=text,
            ))
    method = (
        f"{CONFIDENCE:.0%} confidence interval of deployment/{baseline} - 1 from {RESAMPLES} "
        "bootstrap resamples of the deployments' measurement intervals ("
        + (", ".join(sorted(methods)) or "too few intervals") + "); significant when it "
        "excludes 0"
    )
    return verdicts, method


def capacity_verdicts(runs: list[DeploymentRun]) -> list[Verdict]:
    """Each deployment's capacity against the first's. A search brackets a capacity between
    the highest rate that held and the lowest above it that did not; the difference is
    significant when the two brackets do not overlap."""
    if not runs or runs[0].capacity is None:
        return []
    base = runs[0]
    verdicts = []
    for run in runs[1:]:
        a_range, b_range = _bracket(base), _bracket(run)
        a, b = a_range[0], b_range[0]
        change = round((b / a - 1.0) * 100.0, 2) if a and b is not None else None
        significant: bool | None = None
        if change is None or a_range[0] is None or b_range[0] is None:
            text = f"{run.name} capacity: not found for both"
        else:
            significant = b_range[0] >= a_range[1] or a_range[0] >= b_range[1]
            text = (f"{run.name} capacity {change:+.1f} % ({b:,.1f} vs {a:,.1f} req/s; "
                    + ("significant: the searches' brackets do not overlap)" if significant
                       else "no significant difference: the searches' brackets overlap)"))
        verdicts.append(Verdict(
            deployment=run.name, baseline=base.name, metric="capacity", unit="req/s",
            baseline_value=a, value=b, change_pct=change, significant=significant, text=text,
        ))
    return verdicts


def _bracket(run: DeploymentRun) -> tuple[float | None, float]:
    """(highest rate that held, lowest rate above it that missed; inf when none did)."""
    capacity = run.capacity
    if capacity is None or capacity.max_rate_rps is None:
        return None, float("inf")
    low = capacity.max_rate_rps
    above = [s.rate_rps for s in capacity.steps if not s.passed and s.rate_rps > low]
    return low, min(above) if above else float("inf")
