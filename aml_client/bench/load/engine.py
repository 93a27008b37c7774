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

The engine is built in parts: :mod:`.node` (its state, configuration, result and how it
finishes), :mod:`.hotpath` (claim, send, record), :mod:`.steps` (a capacity search's steps) and
:mod:`.distribution` (master and workers); this module adds the run's life cycle and progress.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment

from aml_client.bench.bluegreen import PredictionMatcher
from aml_client.bench.fleet import Fleet
from aml_client.bench.load.distribution import MSG_DELTA, MSG_PLAN, Distribution
from aml_client.bench.load.node import DRAIN_GRACE_S, Emit
from aml_client.bench.load.steps import CapacitySteps
from aml_client.bench.metrics import live_numbers
from aml_client.bench.plan import BenchPlan
from aml_client.bench.report.summary import BenchSummary, Capacity
from aml_client.bench.result import BenchResult
from aml_client.bench.target import RunTarget

__all__ = ["Emit", "Engine", "engine_of", "install", "json_line"]

log = logging.getLogger(__name__)


def engine_of(environment: Environment) -> Engine:
    """The engine attached to ``environment`` by :func:`install`."""
    engine = getattr(environment, "amlc_engine", None)
    if engine is None:
        raise RuntimeError(
            "aml_client.bench.load.engine.install() was not called for this environment"
        )
    assert isinstance(engine, Engine)
    return engine


class Engine(CapacitySteps, Distribution):
    """Per-process state and control of one benchmark run (see the module docstring)."""

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

    def _cpu_sampler(self) -> None:
        """Once a second: this process's CPU time over wall time (is it the bottleneck?)."""
        last_wall, last_cpu = time.monotonic(), time.process_time()
        while True:
            gevent.sleep(1.0)
            wall, cpu = time.monotonic(), time.process_time()
            self.recording.note_cpu(cpu - last_cpu, wall - last_wall)
            last_wall, last_cpu = wall, cpu

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
        gevent.sleep(self.target.timeout_s + DRAIN_GRACE_S)
        if not self.finished:
            log.warning(
                "%d requests still unanswered after the timeout; stopping", self.outstanding
            )
            self._finish()

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
