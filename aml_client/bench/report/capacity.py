"""Capacity search: the highest request rate at which every objective still holds.

The search is MLPerf LoadGen's FindPeakPerformance: open-model steps at a fixed offered rate,
the rate doubling while the objectives hold (halving while they miss, when the first step is
already past capacity), then bisection between the last rate that held and the first that did
not, until the two are within ``precision`` of each other. Each step runs long enough to
resolve the objectives' percentiles (:func:`step_seconds`), after a warm-up whose requests are
discarded.

What a step says:

* the endpoint kept up and every objective held: **passed**;
* an objective missed — including when the endpoint saturated (requests queued at the
  endpoint, senders all waiting on in-flight requests, sends slipping behind them: the
  corrected latency carries that wait): **failed**, and the search bisects on. A step whose
  measurements already guarantee the miss ends early (:func:`guaranteed_miss`);
* the load process itself was the bottleneck while the endpoint had headroom
  (:func:`generator_limited`: its CPU saturated, measured; or its sends slipped while the
  endpoint's own p50 stayed near a passed step's, or a quarter of them did, whatever the
  latency): **unmeasurable** (``valid`` False). The
  step is run once more (a busy machine has moments); a second time, the search stops and the
  answer is a lower bound, "capacity ≥ X req/s", never "found".

Pure logic, no Locust: the load process runs the steps (one process for every step), this
module decides the next rate and reads the answer off the steps.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from aml_client.bench.report.slo import Objective
from aml_client.bench.report.summary import Capacity, CapacityStep, min_samples

__all__ = [
    "CapacitySearch",
    "SearchSettings",
    "generator_limited",
    "guaranteed_miss",
    "knee",
    "lower_bound_line",
    "step_seconds",
]

#: How a step's latency compares with the lightest step's before it counts as past the knee.
KNEE_FACTOR = 1.5
#: How far the endpoint's own p50 may be above the lightest passed step's in a step whose
#: sends slipped and whose objectives held on send -> reply, for the load process to be the
#: limit: a starved load process reads its replies late too, which inflates the median it
#: measures; a queue at the endpoint inflates it by far more (tens of times at capacity).
SLIPPED_FACTOR = 3.0
#: A step whose sends left late more often than this did not apply its offered rate: its
#: miss says nothing about the endpoint, whatever its latency (an endpoint that queues makes
#: replies late, never sends: senders are created on demand).
SCHEDULE_LOST = 0.25
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
    #: halving from a first step past capacity stops below start_rps / this
    max_halving: float = 16.0

    @property
    def min_rps(self) -> float:
        return self.start_rps / self.max_halving


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
    #: the load generator reached its limit: the capacity is at least ``passed_rps``
    generator_bound: bool = False
    #: a rate whose step was unmeasurable once, to run again
    retry_rps: float | None = None
    _retried: set[float] = field(default_factory=set)

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
        if self.retry_rps is not None:
            rate, self.retry_rps = self.retry_rps, None
            return rate
        if self.failed_rps is None:
            assert self.passed_rps is not None
            if self.passed_rps >= s.max_rps:
                self._stop(f"the objectives held up to --max-rate ({s.max_rps:g} req/s)")
                return None
            return min(self.passed_rps * 2, s.max_rps)
        if self.passed_rps is None:
            lower = self.failed_rps / 2
            if lower < s.min_rps:
                self._stop(f"even the lowest rate tried ({self.failed_rps:g} req/s) missed the "
                           "objectives")
                return None
            return lower
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
        if not step.valid and step.rate_rps not in self._retried:
            self._retried.add(step.rate_rps)
            self.retry_rps = step.rate_rps
            return
        if not step.valid:
            self.generator_bound = True
            self._stop(
                f"the load generator could not apply {step.rate_rps:g} req/s while the "
                f"endpoint had headroom ({'; '.join(step.notes) or 'its CPU saturated'})"
            )
            return
        if step.passed:
            self.passed_rps = max(self.passed_rps or 0.0, step.rate_rps)
        else:
            self.failed_rps = min(self.failed_rps or step.rate_rps, step.rate_rps)

    def result(self, objectives: list[str]) -> Capacity:
        best = self.best_step()
        bound = self.generator_bound
        return Capacity(
            found=self.passed_rps is not None and not bound,
            max_rate_rps=None if bound else self.passed_rps,
            at_least_rps=self.passed_rps if bound else None,
            knee_rps=knee(self.steps),
            knee_rule=KNEE_RULE,
            goodput_rps=best.goodput_rps if best is not None and best.passed else None,
            objectives=objectives,
            search=(
                f"open-model steps from {self.settings.start_rps:g} req/s, doubling while the "
                "objectives hold (halving while they miss), then bisection; each step measured "
                "for at least "
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


#: What a lower bound says: the search runs in one load process, so more CPU is what frees it.
GENERATOR_LIMIT_HINT = "the load generator's limit: give it a free CPU core or a larger machine"


def lower_bound_line(capacity: Capacity) -> str:
    """``capacity ≥ 180 req/s (the load generator's limit: …)``, for a search the
    load generator ended (see :func:`generator_limited`)."""
    at_least = capacity.at_least_rps
    shown = "?" if at_least is None else f"{at_least:,.1f}"
    return f"capacity ≥ {shown} req/s ({GENERATOR_LIMIT_HINT})"


def generator_limited(
    *,
    cpu_saturated_s: int,
    cpu_samples: int,
    endpoint_p50_ms: float | None,
    baseline_p50_ms: float | None,
    senders_exhausted: bool,
    sends_slipped: bool = False,
    held_from_send: bool = False,
    passed_p50_ms: float | None = None,
    errors_held: bool = True,
    late_fraction: float = 0.0,
) -> str | None:
    """Why the load process, not the endpoint, was the bottleneck of a step (None: it was not).

    Never when every sender was waiting on the endpoint (it saturated). Otherwise when one of
    these is measured:

    * ``"cpu"``: the load process's CPU saturated (at least a quarter of its one-second
      samples at >= 90 % of a core, and at least one) while the endpoint had headroom: its own
      send -> reply p50 stayed within :data:`KNEE_FACTOR` of the lightest step's;
    * ``"slipped"``: its sends slipped (more than 1 % late, as for a run's validity) — a busy
      machine that starves it of CPU — while every objective held on the send -> reply
      latency: the endpoint answered what it got in time, only the schedule was not kept;
    * ``"schedule"``: its sends slipped, more than :data:`SCHEDULE_LOST` of them: the step
      never applied its offered rate (a load process starved for a long moment, which also
      reads its replies late, so send -> reply misses too);
    * ``"burst"``: its sends slipped while the error objectives held (a refusal is the
      endpoint's answer). A load process that stalls sends its late requests in a burst,
      which queues even at an endpoint with headroom, so the send -> reply tail misses too.

    Slipped sends count only while the endpoint's own p50 stayed near the lightest passed
    step's (``passed_p50_ms``): within :data:`SLIPPED_FACTOR` of it when every objective held
    on send -> reply, within :data:`KNEE_FACTOR` for a burst (weaker evidence). An endpoint
    whose median climbed further is queueing, and a step just past capacity can miss by a
    hair that its few late sends did not cause. Before any step passed there is nothing to
    compare with: a burst is the endpoint's, slipped sends count as above.
    """
    if senders_exhausted:
        return None

    def near(factor: float) -> bool:
        return endpoint_p50_ms is not None and passed_p50_ms is not None \
            and endpoint_p50_ms <= factor * passed_p50_ms

    if sends_slipped and held_from_send and (passed_p50_ms is None or near(SLIPPED_FACTOR)):
        return "slipped"
    if sends_slipped and late_fraction > SCHEDULE_LOST:
        return "schedule"
    if sends_slipped and errors_held and near(KNEE_FACTOR):
        return "burst"
    if cpu_saturated_s < max(1, math.ceil(0.25 * cpu_samples)):
        return None
    if endpoint_p50_ms is None:
        return "cpu"  # nothing came back to blame the endpoint for
    if baseline_p50_ms is None or endpoint_p50_ms > KNEE_FACTOR * baseline_p50_ms:
        return None
    return "cpu"


def guaranteed_miss(
    objectives: Sequence[Objective], planned: int, over: Sequence[int], failures: int
) -> str | None:
    """Why a step can no longer meet its objectives, or None while it still can.

    ``planned``: requests the step's measurement window will send; ``over[i]``: requests
    already known to exceed ``objectives[i]``'s bound (answered above it, or still unanswered
    after it) — only counted for upper bounds on a percentile or the max; ``failures``:
    failed requests so far. With N samples, pX exceeds a bound as soon as more than
    N - ceil(X/100 * N) of them do (nearest rank); the error rate as soon as failures exceed
    its share of N.
    """
    if planned <= 0:
        return None
    for objective, count in zip(objectives, over, strict=True):
        if objective.kind == "latency" and objective.op in ("<=", "<"):
            if objective.metric == "max":
                allowed = 0
            elif objective.metric.startswith("p"):
                allowed = planned - math.ceil(float(objective.metric[1:]) / 100 * planned)
            else:
                continue
            if count > allowed:
                return (f"{count} of the {planned} planned requests already above "
                        f"{objective.shown}: {objective.metric} cannot meet {objective.label}")
        elif objective.kind == "error_rate" and objective.op in ("<=", "<"):
            allowed_failures = objective.threshold * planned
            if failures > allowed_failures or (objective.op == "<" and
                                               failures >= allowed_failures > 0):
                return (f"{failures} of the {planned} planned requests already failed: "
                        f"the error rate cannot meet {objective.label}")
    return None
