"""A capacity search's steps inside the load process: run each step at its offered rate,
judge it, and stop a step early once its miss is certain.

The search itself (which rate next, when to stop) is :mod:`aml_client.bench.report.capacity`;
this module sends the requests of each step through the hot path and turns what it measured into
a :class:`~aml_client.bench.report.summary.CapacityStep`.
"""

from __future__ import annotations

import bisect
import time
from typing import Any

import gevent
import gevent.pool

from aml_client.bench.load.exchange import Sender
from aml_client.bench.load.hotpath import HotPath
from aml_client.bench.load.node import DRAIN_GRACE_S
from aml_client.bench.plan import arrival_offsets_s
from aml_client.bench.protocol import StatusEvent
from aml_client.bench.recording import Recording
from aml_client.bench.report.summary import Capacity, CapacityStep
from aml_client.bench.result import BenchResult

__all__ = ["CapacitySteps"]

#: How often a capacity step checks whether its miss is already certain.
_MISS_CHECK_NS = 250_000_000


class CapacitySteps(HotPath):
    """The capacity search (``--find-capacity``), all its steps in this one process."""

    def _run_capacity(self, sender: Sender) -> None:
        """The capacity search; in a blue/green run, one whole search per deployment, one
        after the other (each pinned to its deployment)."""
        from aml_client.bench.report import slo
        from aml_client.bench.report.capacity import SearchSettings

        settings_data = dict(self.plan.capacity or {})
        objectives = slo.with_implied(slo.parse_slos(settings_data["objectives"]))
        settings = SearchSettings(
            start_rps=float(settings_data["start_rps"]),
            max_rps=float(settings_data["max_rps"]),
            precision=float(settings_data.get("precision", 0.05)),
            step_s=float(settings_data["step_s"]),
            warmup_s=float(settings_data["warmup_s"]),
        )
        lanes = self.plan.deployments
        if not lanes:
            self.capacity, self._capacity_result, _ = self._search(sender, settings, objectives)
        else:
            best: dict[str, tuple[BenchResult, Recording]] = {}
            for name in lanes:
                capacity, result, recording = self._search(sender, settings, objectives, name)
                self.capacities[name] = capacity
                if result is not None and recording is not None:
                    best[name] = (result, recording)
                if not self.running:
                    break
            self._capacity_result = self._merged_steps(best) if best else None
        self.stopping = True
        self._finish()

    def _search(
        self, sender: Sender, settings: Any, objectives: list[Any], deployment: str | None = None
    ) -> tuple[Capacity, BenchResult | None, Recording | None]:
        """One capacity search: the answer, and the measurement (result and recording) of
        the step at capacity (else of the lowest step)."""
        from aml_client.bench.report import slo
        from aml_client.bench.report.capacity import CapacitySearch, step_seconds

        bound_ms = slo.latency_bound_ms(objectives)
        search = CapacitySearch(settings)
        steps: dict[float, tuple[BenchResult, Recording]] = {}
        endpoint_p50s: dict[float, float] = {}  # rate -> send -> reply p50 (the endpoint's own)
        passed_p50s: dict[float, float] = {}  # the same, of the steps that passed
        while (rate := search.next_rate()) is not None:
            measure_s = step_seconds(rate, objectives, settings.step_s)
            result, throttled, achieved, early = self._run_step(
                sender, rate, settings.warmup_s, measure_s, bound_ms, objectives, deployment
            )
            steps[round(rate, 3)] = (result, self.recording)
            endpoint_p50 = result.latency.percentile_us(50) / 1000 if result.latency.count \
                else None
            if endpoint_p50 is not None:
                endpoint_p50s[rate] = endpoint_p50
            lightest = endpoint_p50s[min(endpoint_p50s)] if endpoint_p50s else None
            lightest_passed = passed_p50s[min(passed_p50s)] if passed_p50s else None
            step = _step_of(result, rate, settings.warmup_s, objectives, throttled, achieved,
                            lightest, early, lightest_passed)
            if step.passed and endpoint_p50 is not None:
                passed_p50s[rate] = endpoint_p50
            search.observe(step)
            if self.emit is not None:
                prefix = f"{deployment}: " if deployment is not None else ""
                self.emit(StatusEvent(message=prefix + _step_line(step)))
            if not self.running:
                search.stopped_because = search.stopped_because or "stopped"
                break
        capacity = search.result([o.label for o in objectives])
        best = search.best_step()
        found = steps.get(round(best.rate_rps, 3)) if best is not None else None
        return capacity, found[0] if found else None, found[1] if found else None

    def _merged_steps(self, best: dict[str, tuple[BenchResult, Recording]]) -> BenchResult:
        """A blue/green capacity search's result: every deployment's step at capacity, merged
        (the endpoint-wide figures), each also kept as that deployment's own."""
        merged = Recording(open_model=True, interval_s=self.plan.interval_s)
        for _, recording in best.values():
            merged.merge_delta(recording.encode())
        started = min(result.started_at for result, _ in best.values())
        ended = max(result.ended_at for result, _ in best.values())
        result = self._result_of(merged, started, ended)
        result.by_deployment = {name: step for name, (step, _) in best.items()}
        return result

    def _run_step(
        self, sender: Sender, rate: float, warmup_s: float, measure_s: float,
        bound_ms: float | None, objectives: list[Any], deployment: str | None = None,
    ) -> tuple[BenchResult, float, float, str | None]:
        """One capacity step: warm up (discarded), measure, drain. Returns the measured
        result, the share of throttled (429/503) replies, the achieved throughput (replies
        that arrived within the measurement window, per second) and, when the step ended
        early, why (its measurements already guaranteed a miss)."""
        from aml_client.bench.report.capacity import guaranteed_miss

        warm = Recording(open_model=True, interval_s=self.plan.interval_s)
        measured = Recording(open_model=True, interval_s=self.plan.interval_s)
        if bound_ms is not None:
            measured.good_within_us = round(bound_ms * 1000)
        self.recording = measured
        self._step_measured = measured
        self._step_bounds_us = [
            round(o.threshold * 1000) if o.kind == "latency" and o.op in ("<=", "<") else None
            for o in objectives
        ]
        self._step_over = [0] * len(objectives)
        self._step_failed = self._step_done = 0
        measured_due: list[int] = []  # due times of the measured requests sent (ascending)
        planned = max(1, round(rate * measure_s))
        pool = gevent.pool.Pool(self.share.max_senders)
        offsets = arrival_offsets_s(rate, self.plan.arrival, seed=self.plan.seed)
        origin_ns = time.perf_counter_ns() + 1_000_000
        measure_from_ns = origin_ns + int(warmup_s * 1e9)
        end_ns = measure_from_ns + int(measure_s * 1e9)
        self._step_window, self._step_answered = (measure_from_ns, end_ns), 0
        started_at = self._t0_epoch_s + (measure_from_ns - self._t0_perf_ns) / 1e9
        next_check_ns = measure_from_ns
        early: str | None = None
        for index, offset_s in enumerate(offsets):
            due_ns = origin_ns + int(offset_s * 1e9)
            if due_ns >= end_ns or not self.running:
                break
            now = time.perf_counter_ns()
            if now >= next_check_ns:
                next_check_ns = now + _MISS_CHECK_NS
                early = guaranteed_miss(objectives, planned,
                                        self._known_over(measured_due, now), self._step_failed)
                if early is not None:
                    break
            if due_ns > now:
                gevent.sleep((due_ns - now) / 1e9)
            if due_ns < measure_from_ns:
                recording = warm
            else:
                recording = measured
                measured_due.append(due_ns)
            pool.spawn(self.send, sender, index, due_ns, recording, deployment)
        stopped_ns = min(time.perf_counter_ns(), end_ns)
        # Replies count towards the achieved rate only up to where sending stopped (a step
        # that ended early drains a backlog after it: that is not the rate it achieved).
        self._step_window = (measure_from_ns, stopped_ns)
        pool.join(timeout=self.target.timeout_s + DRAIN_GRACE_S)
        pool.kill(block=False)
        self._step_measured = None
        throttled = _throttled_share(warm, measured)
        ended_at = self._t0_epoch_s + (max(stopped_ns, measure_from_ns) - self._t0_perf_ns) / 1e9
        window_s = max(stopped_ns - measure_from_ns, 1) / 1e9
        achieved = self._step_answered / window_s
        result = self._result_of(measured, started_at, max(ended_at, started_at + 1e-3),
                                 rate=rate)
        return result, throttled, achieved, early

    def _known_over(self, measured_due: list[int], now_ns: int) -> list[int]:
        """Per objective bound: measured requests known to exceed it — answered above it, or
        (a lower bound) due longer ago than the bound and not answered: of the requests due
        before ``now - bound``, at most as many as have been answered at all are answered."""
        known = []
        for bound_us, over in zip(self._step_bounds_us, self._step_over, strict=True):
            if bound_us is None:
                known.append(0)
                continue
            overdue = bisect.bisect_left(measured_due, now_ns - bound_us * 1000)
            known.append(over + max(0, overdue - self._step_done))
        return known


def _throttled_share(*recordings: Recording) -> float:
    total = sum(r.requests for r in recordings)
    if total < 20:
        return 0.0
    throttled = sum(r.failures.get("http_429", 0) + r.failures.get("http_503", 0)
                    for r in recordings)
    return throttled / total

def _step_of(
    result: BenchResult,
    rate: float,
    warmup_s: float,
    objectives: list[Any],
    throttled: float,
    achieved: float,
    lightest_p50_ms: float | None,
    ended_early: str | None,
    lightest_passed_p50_ms: float | None = None,
) -> CapacityStep:
    """One step's verdict (see :mod:`~aml_client.bench.report.capacity`): passed, failed (an
    objective missed, the endpoint saturated, or the step ended early on a certain miss), or
    unmeasurable (``valid`` False: the load process was the bottleneck)."""
    from aml_client.bench.report import slo
    from aml_client.bench.report.capacity import generator_limited
    from aml_client.bench.report.summarize import summarize
    from aml_client.bench.report.summary import CPU_SATURATED, LATE_FRACTION_LIMIT, LATE_MIN_COUNT

    summary = summarize(result)
    outcomes = slo.evaluate(summary, objectives)
    # The same objectives on send -> reply: what the endpoint did with the requests it got.
    from_send = slo.evaluate(summary.model_copy(update={"corrected": None}), objectives)
    judged = summary.judged
    load = result.load
    notes = [o.message for o in outcomes if not o.passed]
    if ended_early is not None:
        notes.append(f"ended early: {ended_early}")
    exhausted = load.max_senders is not None and load.peak_in_flight >= load.max_senders
    if exhausted:
        notes.append(f"the endpoint saturated: all {load.max_senders} senders waited on "
                     "in-flight requests")
    if load.late_sends:
        notes.append(f"{load.late_sends} of {result.requests} sends left more than 10 ms late "
                     "(the corrected latency includes the wait)")
    endpoint_p50 = summary.latency.value_ms("p50")
    # Late sends matter only to a step they made miss.
    slipped = load.late_sends >= LATE_MIN_COUNT and \
        load.late_sends > LATE_FRACTION_LIMIT * max(result.requests, 1) and \
        (not all(o.passed for o in outcomes) or ended_early is not None)
    limited = generator_limited(
        cpu_saturated_s=load.cpu_saturated_s, cpu_samples=round(load.cpu_samples),
        endpoint_p50_ms=endpoint_p50, baseline_p50_ms=lightest_p50_ms,
        senders_exhausted=exhausted, sends_slipped=slipped,
        held_from_send=all(o.passed for o in from_send),
        passed_p50_ms=lightest_passed_p50_ms,
        errors_held=all(o.passed for o in outcomes if o.objective.kind == "error_rate"),
        late_fraction=load.late_sends / max(result.requests, 1),
    )
    if limited == "slipped":
        notes.append("the load process's sends slipped while the endpoint answered every "
                     "request within the objectives (send -> reply): the machine did not "
                     "give the load process the CPU it needed")
    elif limited == "schedule":
        notes.append(f"{load.late_sends} of {result.requests} sends left late: the load process "
                     "did not keep the offered rate's schedule, so the step did not apply it "
                     "(the machine did not give the load process the CPU it needed)")
    elif limited == "burst":
        notes.append("the load process's sends slipped while the endpoint's own p50 stayed "
                     "near the lightest passed step's: the late requests left in a burst, "
                     "and the machine did not give the load process the CPU it needed")
    elif limited == "cpu":
        notes.append(
            f"the load process used >= {CPU_SATURATED:.0%} of a CPU core for "
            f"{load.cpu_saturated_s} of {load.cpu_samples} s while the endpoint's own p50 "
            f"stayed at {'-' if endpoint_p50 is None else f'{endpoint_p50:,.1f} ms'}"
        )
    duration = result.duration_s
    return CapacityStep(
        rate_rps=round(rate, 3),
        achieved_rps=round(achieved, 3),
        requests=summary.requests,
        failures=summary.failures.total,
        error_rate=summary.error_rate,
        warmup_s=warmup_s,
        duration_s=round(duration, 3),
        p50_ms=judged.value_ms("p50"),
        p90_ms=judged.value_ms("p90"),
        p99_ms=judged.value_ms("p99"),
        max_ms=judged.value_ms("max"),
        goodput_rps=round(result.good / duration, 3) if result.good is not None and duration
        else None,
        throttled_fraction=round(throttled, 4),
        passed=all(o.passed for o in outcomes) and not exhausted and ended_early is None
        and limited is None,
        valid=limited is None,
        notes=notes,
        judged={o.objective.metric: None if o.actual is None else round(o.actual, 6)
                for o in outcomes},
        ended_early=ended_early is not None,
    )

def _step_line(step: CapacityStep) -> str:
    """``step 160.0 req/s: achieved 99.8 req/s, p95 1,234.5 ms, error_rate 0 %: missed``."""
    from aml_client.bench.report.render import judged_figure

    verdict = "met" if step.passed else "missed"
    achieved = "-" if step.achieved_rps is None else f"{step.achieved_rps:,.1f}"
    figures = "".join(f", {metric} {judged_figure(metric, value)}"
                      for metric, value in step.judged.items())
    tail = (" (ended early)" if step.ended_early else "") + \
        ("" if step.valid else " (the load generator's limit)")
    return (f"step {step.rate_rps:,.1f} req/s: achieved {achieved} req/s{figures}, "
            f"{step.failures} failures: objectives {verdict}{tail}")
