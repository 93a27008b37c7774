"""Service-level objectives for CI: ``p99<=200ms``, ``error_rate<=1%``, ``throughput>=100/s``.

An objective is checked against a run summary
(:class:`~aml_client.bench.report.summary.BenchSummary`).
Latency objectives use the latency the run is judged on: the corrected one in an open model
(intended start -> reply), otherwise send -> reply.

Grammar: ``METRIC OP VALUE[UNIT]`` with spaces allowed anywhere.

* METRIC: a percentile the report carries (``p50`` ``p66`` ``p75`` ``p80`` ``p90`` ``p95`` ``p98``
  ``p99`` ``p99.9`` ``p99.99``), ``min``, ``mean``, ``max``; ``error_rate`` (alias ``errors``);
  ``throughput`` (aliases ``rps``, ``qps``).
* OP: ``<=`` ``<`` ``>=`` ``>`` (also ``≤`` ``≥``).
* Latency units: ``us`` / ``µs``, ``ms``, ``s`` (required). Error rate: ``%`` or a fraction
  (``0.01``). Throughput: ``/s``, ``rps``, ``req/s`` or none.

Failures are never a pass: objectives that say nothing about errors get
:data:`IMPLIED_ERROR_OBJECTIVE` (:func:`with_implied`), judged and shown like the others. The
error rate counts every failure kind (429, 503, other statuses, timeouts, wrong prediction
counts, unreadable answers, ...).
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from aml_client.bench.report.summary import AB_PERCENTS, PERCENTILES, LatencyBlock

__all__ = [
    "IMPLIED_ERROR_OBJECTIVE",
    "Measured",
    "Objective",
    "Outcome",
    "evaluate",
    "latency_bound_ms",
    "parse_slo",
    "parse_slos",
    "with_implied",
]

#: Added to objectives that set no error rate: a run that fails requests never passes.
IMPLIED_ERROR_OBJECTIVE = "error_rate<=1%"


class Measured(Protocol):
    """What an objective is checked against: a whole run's summary, or one deployment's part
    of a blue/green run (:class:`~aml_client.bench.report.summary.DeploymentRun`)."""

    @property
    def judged(self) -> LatencyBlock: ...

    @property
    def judged_on(self) -> str: ...

    @property
    def error_rate(self) -> float | None: ...

    @property
    def throughput_rps(self) -> float | None: ...

_OPS: dict[str, Callable[[float, float], bool]] = {
    "<=": operator.le, "<": operator.lt, ">=": operator.ge, ">": operator.gt,
}
_UNICODE_OPS = {"≤": "<=", "≥": ">=", "=<": "<=", "=>": ">="}
_LATENCY_UNITS_MS = {"us": 0.001, "µs": 0.001, "μs": 0.001, "ms": 1.0, "s": 1000.0}
_THROUGHPUT_UNITS = {"", "/s", "rps", "req/s", "qps", "requests/s"}
_ALIASES = {"errors": "error_rate", "error-rate": "error_rate", "errorrate": "error_rate",
            "rps": "throughput", "qps": "throughput", "p100": "max", "p0": "min",
            "average": "mean", "avg": "mean"}
_EXPR = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*(<=|>=|=<|=>|<|>|≤|≥)\s*(.*?)\s*$")
_NUMBER = re.compile(r"^([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*(.*)$")
_KNOWN_PERCENTILES = {float(p) for p in (*PERCENTILES, *AB_PERCENTS) if p < 100}
_PERCENTILE = re.compile(r"^p(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Objective:
    """One parsed objective. ``threshold`` is in ms (latency), a fraction (error rate) or req/s."""

    text: str  # as written, for messages
    metric: str  # "p99", "max", "mean", "min", "error_rate", "throughput"
    op: str  # "<=", "<", ">=", ">"
    threshold: float
    shown: str  # the threshold as the user wrote it, e.g. "200 ms", "1 %"
    #: added by :func:`with_implied`, not written by the user
    implied: bool = False

    @property
    def kind(self) -> str:
        if self.metric == "error_rate":
            return "error_rate"
        if self.metric == "throughput":
            return "throughput"
        return "latency"

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.shown}" + (" (implied)" if self.implied else "")

    @property
    def label(self) -> str:
        """As written, marked when implied: ``p99<=200ms``, ``error_rate<=1% (implied)``."""
        return self.text + (" (implied)" if self.implied else "")


@dataclass(frozen=True)
class Outcome:
    """The check of one objective against one run; ``actual`` is None when nothing was measured."""

    objective: Objective
    actual: float | None
    passed: bool
    measured_on: str = ""  # "corrected" / "latency" for latency objectives

    @property
    def message(self) -> str:
        """``p99 = 243.1 ms, objective <= 200 ms: MISSED``."""
        o = self.objective
        label = o.metric + (" (corrected)" if self.measured_on == "corrected" else "")
        verdict = "met" if self.passed else "MISSED"
        implied = " (implied)" if o.implied else ""
        return (f"{label} = {_show_actual(o, self.actual)}, objective {o.op} {o.shown}{implied}: "
                f"{verdict}")

    def __str__(self) -> str:
        return self.message


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.1f}"
    if abs(value) >= 1:
        return f"{value:.4g}" if abs(value) >= 10 else f"{value:.3g}"
    return f"{value:.3g}"


def _show_actual(objective: Objective, actual: float | None) -> str:
    if actual is None:
        return "not measured"
    if objective.kind == "error_rate":
        return f"{actual * 100:.3g} %"
    if objective.kind == "throughput":
        return f"{actual:.1f} req/s"
    if actual >= 1000:
        return f"{actual / 1000:.4g} s"
    return f"{_fmt(actual)} ms"


def _metric(name: str, text: str) -> str:
    key = name.strip().lower()
    key = _ALIASES.get(key, key)
    if key in {"error_rate", "throughput", "min", "mean", "max"}:
        return key
    match = _PERCENTILE.match(key)
    if match:
        value = float(match.group(1))
        if value not in _KNOWN_PERCENTILES:
            known = ", ".join(f"p{p:g}" for p in sorted(_KNOWN_PERCENTILES))
            raise ValueError(f"{text!r}: a report carries {known}; not p{value:g}")
        return f"p{value:g}"
    raise ValueError(
        f"{text!r}: unknown metric {name!r} (use p50, p99, p99.9, min, mean, max, "
        "error_rate or throughput)"
    )


def parse_slo(text: str) -> Objective:
    """Parse one objective such as ``p99<=200ms``; raise ValueError saying what is wrong."""
    if not isinstance(text, str) or not text.strip():
        raise ValueError("empty objective (expected e.g. 'p99<=200ms')")
    match = _EXPR.match(text)
    if not match:
        raise ValueError(
            f"{text!r}: expected METRIC OP VALUE, e.g. 'p99<=200ms', 'error_rate<=1%', "
            "'throughput>=100/s'"
        )
    name, op, rest = match.groups()
    op = _UNICODE_OPS.get(op, op)
    metric = _metric(name, text)
    number = _NUMBER.match(rest)
    if not number:
        raise ValueError(f"{text!r}: {rest!r} is not a number with a unit")
    value = float(number.group(1))
    unit = number.group(2).strip()
    if metric == "error_rate":
        if unit == "%":
            threshold, shown = value / 100.0, f"{value:g} %"
        elif unit == "":
            if value > 1:
                raise ValueError(
                    f"{text!r}: an error rate without % is a fraction (0..1); did you mean "
                    f"{value:g}%?"
                )
            threshold, shown = value, f"{value * 100:g} %"
        else:
            raise ValueError(f"{text!r}: error rate takes % (e.g. 1%) or a fraction, not {unit!r}")
        if threshold > 1:
            raise ValueError(f"{text!r}: an error rate cannot exceed 100 %")
    elif metric == "throughput":
        if unit.lower().replace(" ", "") not in _THROUGHPUT_UNITS:
            raise ValueError(f"{text!r}: throughput is in requests per second (e.g. 100/s)")
        threshold, shown = value, f"{value:g} req/s"
    else:
        if unit == "":
            raise ValueError(f"{text!r}: give a unit for the latency: us, ms or s (e.g. 200ms)")
        if unit not in _LATENCY_UNITS_MS:
            raise ValueError(f"{text!r}: unknown latency unit {unit!r} (use us, ms or s)")
        threshold, shown = value * _LATENCY_UNITS_MS[unit], f"{value:g} {unit}"
    return Objective(text=text.strip(), metric=metric, op=op, threshold=threshold, shown=shown)


def parse_slos(texts: Iterable[str]) -> list[Objective]:
    """Parse several objectives (e.g. repeated ``--slo`` options)."""
    return [parse_slo(t) for t in texts]


def with_implied(objectives: Iterable[Objective]) -> list[Objective]:
    """``objectives`` plus :data:`IMPLIED_ERROR_OBJECTIVE` when none of them sets an error
    rate (an empty list stays empty: nothing is judged)."""
    given = list(objectives)
    if not given or any(o.kind == "error_rate" for o in given):
        return given
    implied = parse_slo(IMPLIED_ERROR_OBJECTIVE)
    return [*given, Objective(implied.text, implied.metric, implied.op, implied.threshold,
                              implied.shown, implied=True)]


def evaluate(summary: Measured, objectives: Iterable[Objective]) -> list[Outcome]:
    """Check each objective against a run summary (or one deployment's figures). Nothing
    measured counts as missed."""
    block = summary.judged
    measured_on = summary.judged_on
    outcomes = []
    for objective in objectives:
        on = ""
        actual: float | None
        if objective.kind == "error_rate":
            actual = summary.error_rate
        elif objective.kind == "throughput":
            actual = summary.throughput_rps
        else:
            actual = block.value_ms(objective.metric)
            on = measured_on
        passed = actual is not None and _OPS[objective.op](float(actual), objective.threshold)
        outcomes.append(Outcome(objective, None if actual is None else float(actual), passed, on))
    return outcomes


def latency_bound_ms(objectives: Iterable[Objective]) -> float | None:
    """The strictest upper bound any latency objective puts on a single request (ms), if any:
    what a request must beat to count towards goodput."""
    bounds = [o.threshold for o in objectives if o.kind == "latency" and o.op in ("<=", "<")]
    return min(bounds) if bounds else None
