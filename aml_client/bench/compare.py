"""Did B get slower than A? Two runs side by side, with bootstrap confidence intervals and gates.

Every figure of A and B is shown with the change B - A. For the latency a run is judged on
(and for throughput), the uncertainty comes from the runs' interval logs (``latency.hlog``): the
intervals of each run are resampled with replacement (a bootstrap over intervals, which keeps
the correlation between neighbouring requests inside an interval), the figure is recomputed on
the merged histograms of each resample, and the 2.5 and 97.5 percentiles of B/A - 1 over the
resamples give a 95 % confidence interval of the relative change. When it contains zero, the
change is "no significant difference".

A gate (``--fail-on 'p99>+10%'``, ``--fail-on 'throughput<-5%'``) fails on a *significant*
regression: the interval excludes zero and the measured change goes past the threshold in the
gate's direction.

The same bootstrap gives a blue/green run's verdicts (:func:`deployment_verdicts`): each
deployment against the baseline, from the two deployments' own interval series. Their requests
were interleaved, so their windows pair up one to one; the resamples then pick the *same*
windows for both (a paired bootstrap), which keeps what the two shared in each window (the
machine's load of the moment) out of the difference.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, Field

from aml_client.bench.files import HlogInterval, read_hlog
from aml_client.bench.hdr import nearest_rank
from aml_client.bench.result import Interval
from aml_client.bench.summary import (
    PERCENTILES,
    BenchSummary,
    DeploymentRun,
    LatencyBlock,
    Verdict,
)

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
    report_id: str | None
    report_dir: str | None
    endpoint: str
    mode: str
    started_at: str
    duration_s: float
    intervals: int


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
    method: str = (
        f"{CONFIDENCE:.0%} confidence intervals of B/A - 1 from {RESAMPLES} bootstrap resamples "
        "of each run's measurement intervals"
    )

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


def _latency_rows(a: LatencyBlock | None, b: LatencyBlock | None,
                  cis: dict[str, tuple[float, float]]) -> list[Row]:
    rows = []
    for name in _LATENCY_ROWS:
        better = "none" if name == "stdev" else "lower"
        rows.append(_row(name, "ms", a.value_ms(name) if a else None,
                         b.value_ms(name) if b else None, better, cis.get(name)))
    rows.append(_row("samples", "", float(a.samples) if a else None,
                     float(b.samples) if b else None, "none"))
    return rows


def _side(summary: BenchSummary, intervals: int) -> Side:
    return Side(report_id=summary.report_id, report_dir=summary.report_dir,
                endpoint=summary.endpoint, mode=summary.mode, started_at=summary.started_at,
                duration_s=summary.duration_s, intervals=intervals)


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


def compare(a: BenchSummary, b: BenchSummary, gates: list[Gate] | None = None) -> Comparison:
    """Two runs side by side (B against A), with confidence intervals and gate verdicts."""
    intervals_a, intervals_b = _intervals_of(a), _intervals_of(b)
    judged_same = a.judged_on == b.judged_on
    metrics = ["throughput", *sorted(_BOOTSTRAPPED)]
    cis = _bootstrap(intervals_a, intervals_b, metrics) if judged_same else {}
    overall = [
        _row("requests", "", float(a.requests), float(b.requests), "none"),
        _row("throughput", "req/s", a.throughput_rps, b.throughput_rps, "higher",
             cis.get("throughput")),
        _row("error_rate", "%", _pct(a.error_rate), _pct(b.error_rate), "lower"),
        _row("duration", "s", a.duration_s, b.duration_s, "none"),
    ]
    judged_cis = {k: v for k, v in cis.items() if k != "throughput"}
    sections = [
        Section(name="overall", title="overall", rows=overall),
        Section(name="latency", title="latency, send -> reply (ms)",
                rows=_latency_rows(a.latency, b.latency,
                                   judged_cis if a.judged_on == "latency" else {})),
    ]
    if a.corrected is not None or b.corrected is not None:
        sections.append(Section(
            name="corrected", title="corrected latency, intended start -> reply (ms)",
            rows=_latency_rows(a.corrected, b.corrected,
                               judged_cis if a.judged_on == "corrected" else {})))
    notes = []
    if a.mode != b.mode:
        notes.append(f"different load models: A is {a.mode}, B is {b.mode}")
    if a.endpoint != b.endpoint:
        notes.append(f"different endpoints: A is {a.endpoint}, B is {b.endpoint}")
    if not a.valid or not b.valid:
        which = " and ".join(n for n, s in (("A", a), ("B", b)) if not s.valid)
        notes.append(f"{which} INVALID: the load generator fell behind; figures are suspect")
    if not cis:
        notes.append(
            "no confidence intervals: "
            + ("the runs are judged on different latencies" if not judged_same else
               f"each run needs {MIN_INTERVALS}+ measurement intervals in latency.hlog")
        )
    judged_section = next(s for s in sections if s.name == a.judged_on)
    by_metric = {r.metric: r for r in judged_section.rows}
    by_metric["throughput"] = overall[1]
    results = [_judge_gate(g, by_metric.get(g.metric)) for g in gates or []]
    return Comparison(a=_side(a, len(intervals_a)), b=_side(b, len(intervals_b)),
                      sections=sections, notes=notes, gates=results)


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
