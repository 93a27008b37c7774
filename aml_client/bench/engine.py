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

Locust's ``run_time`` is not used: a timer that kills users would drop in-flight requests that
the endpoint did serve, and request counts would no longer match the endpoint's own log.

The same listeners serve ``amlc bench`` and a plain ``locust -f loadtests/locustfile.py``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from aml_client.bench.plan import BenchPlan
from aml_client.bench.recording import Recording, classify_failure
from aml_client.bench.result import BenchResult
from aml_client.bench.target import RunTarget

__all__ = ["Engine", "engine_of", "install"]

log = logging.getLogger(__name__)

MSG_PLAN = "amlc_plan"
MSG_DELTA = "amlc_delta"

#: Extra time after the last due request for in-flight replies, beyond the request timeout.
_DRAIN_GRACE_S = 2.0

Emit = Callable[[dict[str, Any]], None]


def engine_of(environment: Environment) -> Engine:
    """The engine attached to ``environment`` by :func:`install`."""
    engine = getattr(environment, "amlc_engine", None)
    if engine is None:
        raise RuntimeError("aml_client.bench.engine.install() was not called for this environment")
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
    ) -> None:
        self.environment = environment
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
        self.recording = Recording(open_model=plan.mode == "open", interval_s=plan.interval_s)
        self.results: list[tuple[str | None, dict[str, Any]]] = []
        self._reset_counters()
        self._greenlets: list[gevent.Greenlet] = []
        self._done_workers: set[str] = set()
        self._share_count = 1
        self.running = False

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
        self.recording = Recording(
            open_model=self.plan.mode == "open", interval_s=self.plan.interval_s
        )
        self._done_workers = set()
        self.running = True
        if self.role == "master":
            self._send_shares()
            if self.headless and self.plan.bounded:
                self._spawn(self._master_watchdog)
        else:
            if self.plan.mode == "open":
                self._offsets = self.share.offsets_s()
            if self.plan.duration_s is not None and (self.headless or self.role == "local"):
                self._spawn(self._deadline)
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

    def complete(
        self, sent_ns: int, done_ns: int, due_ns: int, status_code: int, error: BaseException | None
    ) -> None:
        """Record one finished request (success or failure)."""
        failure = classify_failure(status_code, error)
        end_epoch_s = self._t0_epoch_s + (done_ns - self._t0_perf_ns) / 1e9
        corrected_us = (done_ns - due_ns) // 1000 if due_ns else None
        self.recording.record((done_ns - sent_ns) // 1000, end_epoch_s, failure, corrected_us)
        self.completed += 1
        quota = self.share.quota
        if quota is not None and self.completed >= quota:
            self.stopping = True
        if self.stopping:
            self._maybe_finish()

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

    def _finish(self) -> None:
        """This node's share is done."""
        if self.finished:
            return
        self.finished = True
        self.ended_at = time.time()
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
        if self.role == "worker":
            if not self.finished:
                self.finished = True
                self._send_delta(done=True)
            return
        try:
            result = self.build_result()
            report_dir = self.write_report(result)
            summary = _load_summary(report_dir) if report_dir else _summarize(result)
        except Exception as exc:  # reported, not swallowed by Locust's event loop
            log.exception("could not build or write the report")
            if self.emit is not None:
                self.emit(
                    {"type": "error", "message": f"report failed: {type(exc).__name__}: {exc}"}
                )
            return
        self.results.append((report_dir, summary))
        if self.emit is not None:
            self.emit({"type": "result", "report_dir": report_dir, "summary": summary})

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
        data = {"delta": self.recording.take_delta(), "done": done}
        try:
            runner.send_message(MSG_DELTA, data)
        except Exception:  # the master may already be gone
            log.debug("could not send the final measurements to the master", exc_info=True)

    def on_report_to_master(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        """Worker: piggy-back the recording's delta on Locust's periodic report."""
        if self.recording.requests or self.recording.latency.out_of_range:
            data["amlc"] = self.recording.take_delta()

    def on_worker_report(self, client_id: str, data: dict[str, Any], **_kw: Any) -> None:
        """Master: merge a worker's periodic delta."""
        delta = data.get("amlc")
        if delta is not None:
            self.recording.merge_delta(delta)

    def on_delta(self, environment: Environment, msg: Any, **_kw: Any) -> None:
        """Master: a worker's explicit (final) delta."""
        self.recording.merge_delta(msg.data["delta"])
        if msg.data.get("done"):
            self._done_workers.add(msg.node_id)
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
        while True:
            gevent.sleep(1.0)
            now = time.monotonic()
            snap = self.recording.snapshot()
            rps = (snap["requests"] - last_requests) / max(now - last_t, 1e-9)
            last_requests, last_t = snap["requests"], now
            runner = self.environment.runner
            self.emit(
                {
                    "type": "progress",
                    "elapsed_s": round(time.time() - self.started_at, 3),
                    "users": runner.user_count if runner is not None else 0,
                    "rps": round(rps, 1),
                    **snap,
                }
            )

    def build_result(self) -> BenchResult:
        """The run's :class:`BenchResult` from this node's (merged) recording."""
        rec = self.recording
        ended_at = self.ended_at or time.time()
        config: dict[str, Any] = {
            **self.plan.to_dict(),
            **self.target.describe(),
            # worker processes under a master; 0 for a single load process
            "workers": self._share_count if self.role == "master" else 0,
            "max_requests": self.plan.max_requests,
            "latency": (
                "open model: `latency` is actual send -> reply (uncorrected); `corrected` is "
                "intended send -> reply"
                if rec.open_model
                else "send -> reply, per request, time.perf_counter_ns"
            ),
            "intervals_measure": "corrected" if rec.open_model else "latency",
            "late_sends": rec.late,
        }
        config.pop("extra", None)
        return BenchResult(
            config=config,
            started_at=self.started_at,
            ended_at=ended_at,
            latency=rec.latency,
            corrected=rec.corrected,
            requests=rec.requests,
            failures=dict(rec.failures),
            intervals=rec.series.intervals(self.started_at, ended_at),
            locust=_locust_stats(self.environment),
            environment=_machine_facts(self.environment),
        )

    def write_report(self, result: BenchResult) -> str | None:
        """Write the report files (``None`` when reports are off)."""
        if self.report_root is None:
            return None
        from aml_client.bench.report import write_report

        return str(write_report(result, self.report_root))

    def snapshot(self) -> dict[str, Any]:
        """The current (merged) numbers, for the web UI's HDR tab."""
        return _summarize(self.build_result())


def _summarize(result: BenchResult) -> dict[str, Any]:
    from aml_client.bench.report import summarize

    return summarize(result)


def _load_summary(report_dir: str) -> dict[str, Any]:
    from aml_client.bench.report import load_summary

    return load_summary(report_dir)


def _locust_stats(environment: Environment) -> dict[str, Any]:
    """Locust's own numbers, for reference (its percentiles come from rounded buckets)."""
    total = environment.stats.total
    if not total.num_requests:
        return {"num_requests": 0}
    return {
        "note": "Locust's statistics: response times rounded (1 ms below 100 ms, 10 ms below 1 s, "
        "100 ms below 10 s): approximate",
        "num_requests": total.num_requests,
        "num_failures": total.num_failures,
        "min_ms": total.min_response_time,
        "max_ms": total.max_response_time,
        "avg_ms": total.avg_response_time,
        "median_ms": total.median_response_time,
        "p90_ms": total.get_response_time_percentile(0.90),
        "p99_ms": total.get_response_time_percentile(0.99),
        "total_rps": total.total_rps,
    }


def _machine_facts(environment: Environment) -> dict[str, Any]:
    from aml_client.bench.report import environment_facts

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
) -> Engine:
    """Attach an :class:`Engine` and its listeners to ``environment`` (whose runner exists)."""
    if environment.runner is None:
        raise RuntimeError("create the runner before installing the engine")
    engine = Engine(
        environment, target, plan, emit=emit, report_root=report_root, headless=headless
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
    return engine


def json_line(data: dict[str, Any]) -> str:
    """One JSON line (the load process's protocol with ``amlc``)."""
    return json.dumps(data, separators=(",", ":"), default=str)
