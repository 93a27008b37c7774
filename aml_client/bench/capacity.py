"""Capacity search: the highest request rate at which every objective still holds.

The search is MLPerf LoadGen's FindPeakPerformance: open-model steps at a fixed offered rate,
the rate doubling while the objectives hold, then bisection between the last rate that held and
the first that did not, until the two are within ``precision`` of each other. Each step runs
long enough to resolve the objectives' percentiles (:func:`step_seconds`), after a warm-up
whose requests are discarded.

Pure logic, no Locust: the load process runs the steps (one process for every step), this
module decides the next rate and reads the answer off the steps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from aml_client.bench.slo import Objective
from aml_client.bench.summary import Capacity, CapacityStep, min_samples

__all__ = ["CapacitySearch", "SearchSettings", "knee", "step_seconds"]

#: How a step's latency compares with the lightest step's before it counts as past the knee.
KNEE_FACTOR = 1.5
KNEE_RULE = (
    f"highest offered rate whose p50 stays within {KNEE_FACTOR:g}x the p50 at the lowest rate "
    "and whose achieved throughput is at least 95 % of the offered rate"
)


@dataclass
class SearchSettings:
    start_rps: float = 10.0
    max_rps: float = 10_000.0
    #: stop bisecting when (fail - pass) / pass is at most this
    precision: float = 0.05
    step_s: float = 20.0
    warmup_s: float = 2.0
    max_steps: int = 30


def step_seconds(rate: float, objectives: Iterable[Objective], minimum_s: float) -> float:
    """How long a step at ``rate`` must measure so that its percentiles mean something: enough
    samples for each latency objective's percentile at 99 % confidence (MLPerf's rule: 459 for
    p99), and never less than ``minimum_s``."""
    needed = 1
    for objective in objectives:
        if objective.kind == "latency" and objective.metric.startswith("p"):
            needed = max(needed, min_samples(float(objective.metric[1:]))[1])
    return max(minimum_s, needed / rate)


@dataclass
class CapacitySearch:
    """Decides the next offered rate from the outcome of the previous ones."""

    settings: SearchSettings
    steps: list[CapacityStep] = field(default_factory=list)
    passed_rps: float | None = None
    failed_rps: float | None = None
    stopped_because: str = ""

    def next_rate(self) -> float | None:
        """The next rate to try, or None when the search is over (see ``stopped_because``)."""
        s = self.settings
        if self.stopped_because:
            return None
        if len(self.steps) >= s.max_steps:
            self._stop(f"{s.max_steps} steps run")
            return None
        if not self.steps:
            return min(s.start_rps, s.max_rps)
        if self.failed_rps is None:
            assert self.passed_rps is not None
            if self.passed_rps >= s.max_rps:
                self._stop(f"the objectives held up to --max-rate ({s.max_rps:g} req/s)")
                return None
            return min(self.passed_rps * 2, s.max_rps)
        if self.passed_rps is None:
            self._stop("even the lowest rate missed the objectives")
            return None
        if (self.failed_rps - self.passed_rps) / self.passed_rps <= s.precision:
            self._stop(
                f"pass and fail rates within {s.precision:.0%} of each other "
                f"({self.passed_rps:g} and {self.failed_rps:g} req/s)"
            )
            return None
        return (self.passed_rps + self.failed_rps) / 2

    def _stop(self, why: str) -> None:
        self.stopped_because = why

    def observe(self, step: CapacityStep) -> None:
        """Take in one finished step."""
        self.steps.append(step)
        if not step.valid:
            self._stop(
                f"the load generator could not apply {step.rate_rps:g} req/s "
                f"({'; '.join(step.notes) or 'INVALID'})"
            )
            return
        if step.passed:
            self.passed_rps = max(self.passed_rps or 0.0, step.rate_rps)
        else:
            self.failed_rps = min(self.failed_rps or step.rate_rps, step.rate_rps)
            if step.throttled_fraction >= 0.5 and self.passed_rps is None:
                self._stop(f"throttled (429/503) at the lowest rate, {step.rate_rps:g} req/s")

    def result(self, objectives: list[str]) -> Capacity:
        best = self.best_step()
        return Capacity(
            found=self.passed_rps is not None,
            max_rate_rps=self.passed_rps,
            knee_rps=knee(self.steps),
            knee_rule=KNEE_RULE,
            goodput_rps=best.goodput_rps if best is not None and best.passed else None,
            objectives=objectives,
            search=(
                f"open-model steps from {self.settings.start_rps:g} req/s, doubling while the "
                "objectives hold, then bisection; each step measured for at least "
                f"{self.settings.step_s:g} s after a {self.settings.warmup_s:g} s warm-up"
            ),
            stopped_because=self.stopped_because,
            steps=sorted(self.steps, key=lambda st: st.rate_rps),
        )

    def best_step(self) -> CapacityStep | None:
        """The step at capacity (else the lowest one run)."""
        if self.passed_rps is not None:
            return next(s for s in self.steps if s.passed and s.rate_rps == self.passed_rps)
        return min(self.steps, key=lambda s: s.rate_rps) if self.steps else None


def knee(steps: list[CapacityStep]) -> float | None:
    """See :data:`KNEE_RULE`; None when no step qualifies."""
    ordered = sorted((s for s in steps if s.p50_ms is not None and s.valid),
                     key=lambda s: s.rate_rps)
    if not ordered:
        return None
    base = ordered[0].p50_ms
    assert base is not None
    found = None
    for step in ordered:
        achieved = step.achieved_rps or 0.0
        if step.p50_ms is not None and step.p50_ms <= KNEE_FACTOR * base and \
                achieved >= 0.95 * step.rate_rps:
            found = step.rate_rps
        else:
            break
    return found
