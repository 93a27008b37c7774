"""The load engine inside a Locust process: hands out request slots, records, stops, merges.

One :class:`Engine` is attached to each Locust ``Environment`` by :func:`install`; it plays the
node's role:

* ``local`` — a single process: users record into its :class:`Recording`; when the plan is done
  (quota sent, or duration over and in-flight requests answered) the runner is stopped and the
  result is built and written.
* ``worker`` — users record locally; every Locust report (``report_to_master``) carries the
  delta of the recording, and when its share of the plan is done — or when the master stops the
  test — the worker sends a last delta explicitly (Locust only flushes on *quit*, not on stop).
* ``master`` — sends each worker its share of the plan when a test starts, merges the deltas
  (``worker_report`` and the explicit final message), stops the test once every worker is done,
  then builds and writes the result exactly as a local run does.

Load models: in the closed model each Locust user sends one request at a time. In the open
model each user is a *dispatcher*: at every due time it hands the request to a sender greenlet,
creating one when none is idle, up to the share of ``--max-senders`` (so in flight = rate x
latency, and the generator is not silently the bottleneck); past the cap, sends slip, the slip
is measured and the run is marked INVALID. A capacity search (``--find-capacity``) runs all
its steps in this one process, one dispatcher, back to back; a step ends early once what it
measured guarantees a miss (:func:`~aml_client.bench.report.capacity.guaranteed_miss`).

Locust's ``run_time`` is not used: a timer that kills users would drop in-flight requests that
the endpoint did serve, and request counts would no longer match the endpoint's own log.

The same listeners serve ``amlc bench`` and a plain ``locust -f loadtests/locustfile.py``.
"""

from __future__ import annotations

import bisect
import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
import gevent.pool
from locust.env import Environment
from locust.exception import CatchResponseError, StopUser
from locust.runners import MasterRunner, WorkerRunner

from aml_client.bench.bluegreen import PredictionMatcher, assign
from aml_client.bench.fleet import Fleet, describe, worker_live
from aml_client.bench.load.exchange import Outcome, Sender
from aml_client.bench.metrics import live_numbers
from aml_client.bench.plan import BenchPlan, arrival_offsets_s
from aml_client.bench.recording import Recording
from aml_client.bench.report.summary import BenchSummary, Capacity, CapacityStep
from aml_client.bench.result import BenchResult, LoadFacts
from aml_client.bench.target import RunTarget

__all__ = ["Engine", "engine_of", "install"]

log = logging.getLogger(__name__)

MSG_PLAN = "amlc_plan"
MSG_DELTA = "amlc_delta"

#: Extra time after the last due request for in-flight replies, beyond the request timeout.
_DRAIN_GRACE_S = 2.0
#: How often a capacity step checks whether its miss is already certain.
_MISS_CHECK_NS = 250_000_000

Emit = Callable[[dict[str, Any]], None]


def engine_of(environment: Environment) -> Engine:
    """The engine attached to ``environment`` by :func:`install`."""
    engine = getattr(environment, "amlc_engine", None)
    if engine is None:
        raise RuntimeError(
            "aml_client.bench.load.engine.install() was not called for this environment"
        )
    assert isinstance(engine, Engine)
    return engine


class Engine:
    """Per-process state and control of one benchmark run (see the module docstring)."""

    def __init__(
        self,
        environment: Environment,
        target: RunTarget,
        plan: BenchPlan,
        *,
        emit: Emit | None = None,
        report_root: str | Path | None = "reports",
        headless: bool = True,
        locust_stats: bool = True,
    ) -> None:
        self.environment = environment
        #: feed Locust's own statistics (its UI and end-of-run table); off for a headless
        #: ``amlc bench``, whose report does not show them (one less cost per request)
        self.locust_stats = locust_stats
        self.target = target
        self.plan = plan
        self.emit = emit
        self.report_root = report_root
        self.headless = headless
        runner = environment.runner
        self.role = (
            "master"
            if isinstance(runner, MasterRunner)
            else "worker"
            if isinstance(runner, WorkerRunner)
            else "local"
        )
        self.request_name = target.path.split("?", 1)[0]
        self.share = plan.share(0, 1)
        self.recording = self._new_recording()
        self.results: list[tuple[str | None, BenchSummary]] = []
        self.capacity: Capacity | None = None
        #: blue/green capacity search: each deployment's answer
        self.capacities: dict[str, Capacity] = {}
        self._capacity_result: BenchResult | None = None
        #: blue/green: pairs each body's answers from the deployments (None otherwise)
        self.matcher: PredictionMatcher | None = None
        self._reset_counters()
        self._greenlets: list[gevent.Greenlet[[], None]] = []
        self._done_workers: set[str] = set()
        self._share_count = 1
        self.running = False
        self.in_flight = 0
        #: closed model: replies read and timed, not yet checked and recorded (see send)
        self._pending: list[tuple[Any, ...]] = []
        #: master: its workers' last reports and the lost ones
        self.fleet = Fleet()
        #: add live metrics (:mod:`aml_client.bench.metrics`) to progress and result events
        self.live_metrics = False
        #: capacity step: measurement window (perf_counter ns) and replies that arrived in it
        self._step_window = (0, 0)
        self._step_answered = 0
        #: capacity step: its measured recording, each objective's bound (µs, None: not a
        #: per-request bound), answered requests above it, failures and answers so far
        self._step_measured: Recording | None = None
        self._step_bounds_us: list[int | None] = []
        self._step_over: list[int] = []
        self._step_failed = 0
        self._step_done = 0
        #: called with every delta a worker sends its master (a results directory keeps them)
        self.delta_taps: list[Callable[[dict[str, Any]], None]] = []

    def _new_recording(self) -> Recording:
        return Recording(open_model=self.plan.mode == "open", interval_s=self.plan.interval_s)

    @property
    def senders_per_user(self) -> int:
        """Connections each Locust user may hold: 1 in the closed model, its share of the
        sender cap in the open model (the dispatcher's senders share one client pool)."""
        if self.plan.mode != "open":
            return 1
        users = max(1, self.plan.users // max(self.share.count, 1))
        return max(1, -(-self.share.max_senders // users))

    # -- per-test state --------------------------------------------------------------------
    def _reset_counters(self) -> None:
        self.claimed = 0
        self.completed = 0
        self.stopping = False
        self.finished = False
        self.started_at = time.time()
        self.ended_at: float | None = None
        self._t0_perf_ns = time.perf_counter_ns()
        self._t0_epoch_s = self.started_at
        self._offsets: Iterator[float] | None = None
        self._schedule_origin_ns: int | None = None

    def begin(self) -> None:
        """A test starts on this node (Locust's ``test_start``)."""
        self._kill_greenlets()
        self._reset_counters()
        self.recording = self._new_recording()
        self.capacity = None
        self.capacities = {}
        self._capacity_result = None
        lanes = self.plan.deployments
        self.matcher = (
            PredictionMatcher(lanes) if lanes and self.plan.capacity is None
            and self.role != "master" else None
        )
        self._done_workers = set()
        self.running = True
        if self.role == "master":
            self.fleet = Fleet()
            self._spawn(self._watch_workers)
            self._send_shares()
            if self.headless and self.plan.bounded:
                self._spawn(self._master_watchdog)
        else:
            if self.plan.mode == "open" and self.plan.capacity is None:
                self._offsets = self.share.offsets_s()
            if self.plan.duration_s is not None and (self.headless or self.role == "local") \
                    and self.plan.capacity is None:
                self._spawn(self._deadline)
            self._spawn(self._cpu_sampler)
        if self.role != "worker" and self.emit is not None:
            self._spawn(self._progress_loop)

    def _spawn(self, fn: Callable[[], None]) -> None:
        greenlet = gevent.spawn(fn)
        self._greenlets.append(greenlet)

    def _kill_greenlets(self) -> None:
        current = gevent.getcurrent()
        for greenlet in self._greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
        self._greenlets = []

    def _cpu_sampler(self) -> None:
        """Once a second: this process's CPU time over wall time (is it the bottleneck?)."""
        last_wall, last_cpu = time.monotonic(), time.process_time()
        while True:
            gevent.sleep(1.0)
            wall, cpu = time.monotonic(), time.process_time()
            self.recording.note_cpu(cpu - last_cpu, wall - last_wall)
            last_wall, last_cpu = wall, cpu

    # -- the hot path (called by ScoringUser) ---------------------------------------------------
    def claim(self) -> tuple[int, int] | None:
        """The next request of this node's share: ``(index, due_ns)`` (``due_ns`` 0 in the closed
        model), or ``None`` when the share is used up or the run is stopping."""
        if self.stopping or self.finished:
            return None
        quota = self.share.quota
        if quota is not None and self.claimed >= quota:
            return None
        due_ns = 0
        if self._offsets is not None:
            offset_s = next(self._offsets)
            if self.plan.duration_s is not None and offset_s >= self.plan.duration_s:
                self.stopping = True
                self._maybe_finish()
                return None
            if self._schedule_origin_ns is None:
                # The schedule starts with the first sender, not while users are being spawned.
                self._schedule_origin_ns = time.perf_counter_ns()
            due_ns = self._schedule_origin_ns + int(offset_s * 1e9)
        index = self.claimed * self.share.count + self.share.index
        self.claimed += 1
        return index, due_ns

    def send(
        self,
        sender: Sender,
        index: int,
        due_ns: int,
        recording: Recording | None = None,
        deployment: str | None = None,
        *,
        later: bool = False,
    ) -> None:
        """Send request ``index`` (due at ``due_ns`` in the open model) and record it.

        ``deployment`` pins it (a capacity step of one deployment); in a blue/green run the
        slot itself says which deployment and which body (see
        :func:`~aml_client.bench.bluegreen.assign`).
        ``later`` (the closed model): return as soon as the reply is read and timed, so the
        user sends its next request at once; the checks and the recording of every reply read
        in the meantime follow together (:meth:`_account_pending`), so neither the next sends
        nor the other replies' timings wait for them.
        """
        target = self.target
        bodies = target.bodies
        matcher = self.matcher
        group = -1
        if matcher is not None and deployment is None:
            share = self.share
            slot = assign((index - share.index) // share.count, matcher.deployments,
                          share_index=share.index, share_count=share.count)
            deployment, group = slot.deployment, slot.group
            body = slot.body % len(bodies)
        else:
            body = index % len(bodies)
        rows = target.rows[body] if target.rows is not None else None
        self.in_flight += 1
        self.recording.note_in_flight(self.in_flight)
        headers = target.request_headers(deployment)  # the current Authorization value
        if not later:
            try:
                outcome = sender.send(bodies[body], headers, rows, keep_predictions=group >= 0)
            finally:
                self.in_flight -= 1
            self._account(outcome, headers, group, deployment, body, due_ns, recording)
            return
        try:
            reply = sender.exchange(bodies[body], headers)
        finally:
            self.in_flight -= 1
        self._pending.append((sender, reply, rows, headers, group, deployment, body, due_ns))
        if len(self._pending) == 1:
            # A greenlet started from the loop's next callback: the users woken with this reply
            # first read theirs and send their next requests, then every pending reply is
            # accounted (in a greenlet: recording may block, e.g. a worker's final report).
            gevent.get_hub().loop.run_callback(gevent.spawn, self._account_pending)

    def _account_pending(self) -> None:
        """Check and record the replies :meth:`send` left for later (in arrival order)."""
        pending, self._pending = self._pending, []
        for sender, reply, rows, headers, group, deployment, body, due_ns in pending:
            try:
                outcome = reply if isinstance(reply, Outcome) else sender.finish(
                    reply, rows, keep_predictions=group >= 0)
                self._account(outcome, headers, group, deployment, body, due_ns, None)
            except Exception:  # report, never lose the others
                log.exception("could not record a reply")

    def _account(
        self, outcome: Outcome, headers: dict[str, str], group: int, deployment: str | None,
        body: int, due_ns: int, recording: Recording | None,
    ) -> None:
        if outcome.status == 401:
            self.target.unauthorized(headers)  # ask for a fresh credential
        matcher = self.matcher
        if matcher is not None and group >= 0:
            # Before complete(): the last answer may finish the run, which flushes the matcher.
            matcher.add(group, deployment or "", body, outcome.predictions,
                        self.recording.agreement, outcome.sample.body_bytes)
            outcome.predictions = None
            self.complete(outcome, due_ns, recording, deployment)
        else:
            self.complete(outcome, due_ns, recording)

    def complete(
        self,
        outcome: Outcome,
        due_ns: int = 0,
        recording: Recording | None = None,
        deployment: str | None = None,
    ) -> None:
        """Record one finished request (success or failure); ``deployment``: the one a
        blue/green run sent it to."""
        sample = outcome.sample
        latency_us = (outcome.done_ns - outcome.sent_ns) // 1000
        corrected_us = None
        if due_ns:
            corrected_us = (outcome.done_ns - due_ns) // 1000
            sample.slip_us = max(outcome.sent_ns - due_ns, 0) // 1000
        end_epoch_s = self._t0_epoch_s + (outcome.done_ns - self._t0_perf_ns) / 1e9
        (recording or self.recording).record(
            latency_us, end_epoch_s, outcome.failure, corrected_us, sample, outcome.reason,
            deployment,
        )
        if self.locust_stats:
            self._fire_locust_event(latency_us, sample.body_bytes, outcome)
        if recording is not None:  # a capacity step counts its own requests
            start_ns, end_ns = self._step_window
            if start_ns <= outcome.done_ns < end_ns:
                self._step_answered += 1
            if recording is self._step_measured:
                self._step_done += 1
                if outcome.failure is not None:
                    self._step_failed += 1
                judged_us = corrected_us if corrected_us is not None else latency_us
                for i, bound in enumerate(self._step_bounds_us):
                    if bound is not None and judged_us > bound:
                        self._step_over[i] += 1
            return
        self.completed += 1
        quota = self.share.quota
        if quota is not None and self.completed >= quota:
            self.stopping = True
        if self.stopping:
            self._maybe_finish()

    def _fire_locust_event(self, latency_us: int, length: int, outcome: Outcome) -> None:
        """Locust's own statistics and UI see every request too (approximate, rounded)."""
        error = outcome.error
        if outcome.failure is not None and error is None:
            error = CatchResponseError(outcome.failure)
        self.environment.events.request.fire(
            request_type="POST",
            name=self.request_name,
            response_time=latency_us / 1000.0,
            response_length=length,
            exception=error,
            context={},
            response=None,
            url=None,
        )

    def dispatch(self, sender: Sender) -> None:
        """Open model: send every due request of this node's share, on time, then stop."""
        if self.plan.capacity is not None:
            self._run_capacity(sender)
            raise StopUser()
        pool = gevent.pool.Pool(self.senders_per_user)
        while True:
            slot = self.claim()
            if slot is None:
                break
            index, due_ns = slot
            wait_ns = due_ns - time.perf_counter_ns()
            if wait_ns > 0:
                gevent.sleep(wait_ns / 1e9)
            # Blocks when every sender is busy: the send then slips (measured, and INVALID).
            pool.spawn(self.send, sender, index, due_ns)
        pool.join()
        raise StopUser()

    # -- capacity search --------------------------------------------------------------------------
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
            step = _step_of(result, rate, settings.warmup_s, objectives, throttled, achieved,
                            lightest, early)
            search.observe(step)
            if self.emit is not None:
                prefix = f"{deployment}: " if deployment is not None else ""
                self.emit({"type": "status", "message": prefix + _step_line(step)})
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
        pool.join(timeout=self.target.timeout_s + _DRAIN_GRACE_S)
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

    # -- stopping ------------------------------------------------------------------------------
    def _deadline(self) -> None:
        assert self.plan.duration_s is not None
        if self._offsets is None:
            # Closed model: stop handing out requests when the time is up.
            gevent.sleep(self.plan.duration_s)
            self.stopping = True
            self._maybe_finish()
        else:
            # Open model: the schedule itself ends at the duration (it starts with the first
            # sender, a little after this); this only guards against a stuck run.
            gevent.sleep(self.plan.duration_s)
        # Replies still outstanding after the request timeout will not come.
        gevent.sleep(self.target.timeout_s + _DRAIN_GRACE_S)
        if not self.finished:
            log.warning(
                "%d requests still unanswered after the timeout; stopping", self.outstanding
            )
            self._finish()

    @property
    def outstanding(self) -> int:
        """Requests handed out and not answered yet, including open-model requests whose sender
        is still waiting for their due time."""
        return self.claimed - self.completed

    def _maybe_finish(self) -> None:
        if self.stopping and self.outstanding <= 0 and not self.finished:
            self._finish()

    def _flush_pairs(self) -> None:
        """Groups whose last answer never came (the run ended first) count as not compared."""
        if self.matcher is not None:
            self.matcher.flush(self.recording.agreement)

    def _finish(self) -> None:
        """This node's share is done."""
        if self.finished:
            return
        self.finished = True
        self.ended_at = time.time()
        self._flush_pairs()
        runner = self.environment.runner
        if self.role == "worker":
            self._send_delta(done=True)
        elif runner is not None:
            gevent.spawn(runner.quit if self.headless else runner.stop)

    def _master_watchdog(self) -> None:
        """Stop a bounded distributed run even if a worker never reports back."""
        plan = self.plan
        limit = (plan.duration_s or 0) + plan.timeout_s + 30.0
        if plan.duration_s is None:
            limit = 3600.0 * 6
        gevent.sleep(limit)
        if not self.finished:
            log.warning("workers did not all report the end of their share; stopping the test")
            self.finished = True
            runner = self.environment.runner
            if runner is not None:
                gevent.spawn(runner.quit if self.headless else runner.stop)

    def end(self) -> None:
        """The test stopped on this node (Locust's ``test_stop``)."""
        if not self.running:
            return
        self.running = False
        if self.ended_at is None:
            self.ended_at = time.time()
        self._kill_greenlets()
        self._account_pending()
        self._flush_pairs()
        if self.role == "worker":
            if not self.finished:
                self.finished = True
                self._send_delta(done=True)
            return
        try:
            result = self._capacity_result or self.build_result()
            summary = _summarize(result, self.capacity, self.capacities)
            if self.role == "master":
                self._check_workers()  # the last one, when Locust stopped for it
            self.fleet.annotate(summary)
            report_dir = self.write_report(result, summary)
        except Exception as exc:  # reported, not swallowed by Locust's event loop
            log.exception("could not build or write the report")
            if self.emit is not None:
                self.emit(
                    {"type": "error", "message": f"report failed: {type(exc).__name__}: {exc}"}
                )
            return
        self.results.append((report_dir, summary))
        if self.emit is not None:
            event = {"type": "result", "report_dir": report_dir, "summary": summary.to_data()}
            if self.live_metrics:
                event["metrics"] = self._live_numbers(final=True)
            self.emit(event)

    # -- distribution --------------------------------------------------------------------------
    def _active_workers(self) -> list[str]:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        nodes = runner.clients.ready + runner.clients.spawning + runner.clients.running
        return sorted(node.id for node in nodes)

    def _send_shares(self) -> None:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        workers = self._active_workers()
        self._share_count = max(len(workers), 1)
        for index, client_id in enumerate(workers):
            data = {"plan": self.plan.to_dict(), "index": index, "count": self._share_count}
            runner.send_message(MSG_PLAN, data, client_id)

    def on_plan(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """Worker: the master's share for this node (arrives before Locust's spawn message)."""
        data = msg.data
        self.plan = BenchPlan.from_dict(data["plan"])
        self.share = self.plan.share(int(data["index"]), int(data["count"]))

    def _send_delta(self, *, done: bool) -> None:
        runner = self.environment.runner
        if runner is None:
            return
        data = {"delta": self._take_delta(), "done": done}
        try:
            runner.send_message(MSG_DELTA, data)
        except Exception:  # the master may already be gone
            log.debug("could not send the final measurements to the master", exc_info=True)

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        """Worker: piggy-back the recording's delta on Locust's periodic report."""
        if self.recording.requests or self.recording.latency.out_of_range \
                or self.recording.cpu_wall_s:
            data["amlc"] = self._take_delta()
        data["amlc_live"] = worker_live(self.claimed, self.completed, self.in_flight,
                                        getattr(self.environment.runner, "master_host", None))

    def _take_delta(self) -> dict[str, Any]:
        delta = self.recording.take_delta()
        for tap in self.delta_taps:
            tap(delta)
        return delta

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        """Master: merge a worker's periodic delta."""
        delta = data.get("amlc")
        if delta is not None:
            self.recording.merge_delta(delta)
        self.fleet.report(client_id, data.get("amlc_live"))

    def _watch_workers(self) -> None:
        """Master: a worker Locust marks missing is lost; its share is not waited for."""
        while True:
            gevent.sleep(1.0)
            self._check_workers()

    def _check_workers(self) -> None:
        runner = self.environment.runner
        assert isinstance(runner, MasterRunner)
        for lost in self.fleet.check(node.id for node in runner.clients.missing):
            log.warning("%s", describe(lost))
            self._worker_done(lost.id)

    def on_delta(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """Master: a worker's explicit (final) delta."""
        self.recording.merge_delta(msg.data["delta"])
        if msg.data.get("done"):
            self._worker_done(msg.node_id)

    def _worker_done(self, node_id: str) -> None:
        """Master: a worker's share is over (done, or the worker was lost)."""
        self._done_workers.add(node_id)
        if (
            self.running
            and not self.finished
            and self.plan.bounded
            and len(self._done_workers) >= self._share_count
        ):
            self.finished = True
            self.ended_at = time.time()
            runner = self.environment.runner
            if runner is not None:
                gevent.spawn(runner.quit if self.headless else runner.stop)

    # -- progress and results ----------------------------------------------------------------
    def _progress_loop(self) -> None:
        assert self.emit is not None
        last_requests, last_t = 0, time.monotonic()
        last_recording = self.recording
        while True:
            gevent.sleep(1.0)
            now = time.monotonic()
            if self.recording is not last_recording:  # a new capacity step
                last_recording, last_requests = self.recording, 0
            snap = self.recording.snapshot()
            rps = (snap["requests"] - last_requests) / max(now - last_t, 1e-9)
            last_requests, last_t = snap["requests"], now
            runner = self.environment.runner
            event = {
                "type": "progress",
                "elapsed_s": round(time.time() - self.started_at, 3),
                "users": runner.user_count if runner is not None else 0,
                "in_flight": self.in_flight,
                "rps": round(rps, 1),
                **snap,
            }
            if self.live_metrics:
                event["metrics"] = self._live_numbers()
            self.emit(event)

    def _live_numbers(self, *, final: bool = False) -> dict[str, Any]:
        """This node's live metrics; a master's come from its workers' reports."""
        master = self.role == "master"
        return live_numbers(
            self.recording,
            in_flight=self.fleet.in_flight if master else self.in_flight,
            sent=self.fleet.sent if master else self.claimed,
            settle_s=2.0 if master else 0.0,
            final=final,
            lost=len(self.fleet.lost),
        )

    def _config(self) -> dict[str, Any]:
        rec = self.recording
        config: dict[str, Any] = {
            **self.plan.to_dict(),
            **self.target.describe(),
            # worker processes under a master; 0 for a single load process
            "workers": self._share_count if self.role == "master" else 0,
            "max_requests": self.plan.max_requests,
            "max_senders": self.plan.senders_cap if self.plan.mode == "open" else None,
            "latency": (
                "open model: `latency` is actual send -> reply (uncorrected); `corrected` is "
                "intended start -> reply"
                if rec.open_model
                else "send -> reply, per request, time.perf_counter_ns"
            ),
        }
        config.pop("extra", None)
        config.pop("capacity", None)
        return config

    def _result_of(
        self, rec: Recording, started_at: float, ended_at: float, *, rate: float | None = None,
        config: dict[str, Any] | None = None,
    ) -> BenchResult:
        if config is None:
            config = self._config()
        if rate is not None:
            config["rate"] = rate
        cpu_samples = round(rec.cpu_wall_s)
        rec.align_deployment_series()
        return BenchResult(
            config=config,
            started_at=started_at,
            ended_at=ended_at,
            latency=rec.latency,
            corrected=rec.corrected,
            requests=rec.requests,
            failures=dict(rec.failures),
            intervals=rec.series.intervals(started_at, ended_at),
            environment=_machine_facts(self.environment),
            phases=dict(rec.phases),
            slip=rec.slip if rec.open_model else None,
            deployments=dict(rec.deployments),
            transfer=rec.transfer,
            load=LoadFacts(
                late_sends=rec.late,
                cpu_peak=rec.cpu_peak,
                cpu_mean=rec.cpu_busy_s / rec.cpu_wall_s if rec.cpu_wall_s else 0.0,
                cpu_saturated_s=rec.cpu_saturated_s,
                cpu_samples=cpu_samples,
                peak_in_flight=rec.peak_in_flight,
                max_senders=self.plan.senders_cap if rec.open_model else None,
            ),
            good=rec.good if rec.good_within_us is not None else None,
            failure_reasons={k: dict(v) for k, v in rec.failure_reasons.items()},
            by_deployment={
                name: self._result_of(sub, started_at, ended_at, config={"deployment": name})
                for name, sub in rec.by_deployment.items()
            },
            agreement=rec.agreement if self.plan.deployments and self.plan.capacity is None
            else None,
        )

    def build_result(self) -> BenchResult:
        """The run's :class:`BenchResult` from this node's (merged) recording."""
        return self._result_of(self.recording, self.started_at, self.ended_at or time.time())

    def write_report(self, result: BenchResult, summary: BenchSummary) -> str | None:
        """Write the report files (``None`` when reports are off)."""
        if self.report_root is None:
            return None
        from aml_client.bench.report.directory import write_report

        return str(write_report(result, self.report_root, summary=summary))

    def snapshot(self) -> BenchSummary:
        """The current (merged) numbers, for the web UI's HDR tab."""
        return _summarize(self.build_result(), None)


def _summarize(
    result: BenchResult, capacity: Capacity | None, capacities: dict[str, Capacity] | None = None
) -> BenchSummary:
    from aml_client.bench.report.summarize import summarize

    return summarize(result, capacity=capacity, deployment_capacities=capacities or None)


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
    )
    if limited and slipped and all(o.passed for o in from_send):
        notes.append("the load process's sends slipped while the endpoint answered every "
                     "request within the objectives (send -> reply): the machine did not "
                     "give the load process the CPU it needed")
    elif limited:
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
        and not limited,
        valid=not limited,
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


def _machine_facts(environment: Environment) -> dict[str, Any]:
    from aml_client.bench.machine import environment_facts

    facts = environment_facts()
    runner = environment.runner
    facts["load_processes"] = runner.worker_count if isinstance(runner, MasterRunner) else 1
    return facts


def install(
    environment: Environment,
    target: RunTarget,
    plan: BenchPlan,
    *,
    emit: Emit | None = None,
    report_root: str | Path | None = "reports",
    headless: bool = True,
    locust_stats: bool = True,
) -> Engine:
    """Attach an :class:`Engine` and its listeners to ``environment`` (whose runner exists)."""
    if environment.runner is None:
        raise RuntimeError("create the runner before installing the engine")
    engine = Engine(
        environment, target, plan, emit=emit, report_root=report_root, headless=headless,
        locust_stats=locust_stats,
    )
    environment.amlc_engine = engine  # type: ignore[attr-defined]
    events = environment.events
    events.test_start.add_listener(lambda **_kw: engine.begin())
    events.test_stop.add_listener(lambda **_kw: engine.end())
    runner = environment.runner
    if engine.role == "worker":
        runner.register_message(MSG_PLAN, engine.on_plan)
        events.report_to_master.add_listener(engine.on_report_to_master)
    elif engine.role == "master":
        runner.register_message(MSG_DELTA, engine.on_delta)
        events.worker_report.add_listener(engine.on_worker_report)
    for user_class in environment.user_classes:
        user_class.host = target.base_url
    from aml_client.bench.load.results_hook import attach_from_environment

    attach_from_environment(environment, engine)  # AMLC_RESULTS_DIR / AMLC_RESULTS_LOG
    return engine


def json_line(data: dict[str, Any]) -> str:
    """One JSON line (the load process's protocol with ``amlc``)."""
    return json.dumps(data, separators=(",", ":"), default=str)
