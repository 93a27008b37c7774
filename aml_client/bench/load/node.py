"""One load process's part of a run: the engine's state, its configuration and result, and
how it finishes.

:class:`EngineNode` is the base of :class:`~aml_client.bench.load.engine.Engine`: the hot path
(:mod:`.hotpath`), the capacity steps (:mod:`.steps`) and the master/worker distribution
(:mod:`.distribution`) all work on the state kept here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from aml_client.bench.bluegreen import PredictionMatcher
from aml_client.bench.fleet import Fleet
from aml_client.bench.load.exchange import Sender
from aml_client.bench.plan import BenchPlan
from aml_client.bench.protocol import Event
from aml_client.bench.recording import Recording
from aml_client.bench.report.merge import result_of
from aml_client.bench.report.summary import BenchSummary, Capacity
from aml_client.bench.result import BenchResult
from aml_client.bench.target import RunTarget

__all__ = ["Emit", "EngineNode"]

log = logging.getLogger(__name__)

#: Extra time after the last due request for in-flight replies, beyond the request timeout.
DRAIN_GRACE_S = 2.0

#: where the load process's events go (``amlc bench``'s pipe; None: nowhere)
Emit = Callable[[Event], None]


class EngineNode:
    """Per-process state of one benchmark run (see :mod:`aml_client.bench.load.engine`)."""

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

    def _spawn(self, fn: Callable[[], None]) -> None:
        greenlet = gevent.spawn(fn)
        self._greenlets.append(greenlet)

    def _kill_greenlets(self) -> None:
        current = gevent.getcurrent()
        for greenlet in self._greenlets:
            if greenlet is not current:
                greenlet.kill(block=False)
        self._greenlets = []

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
    ) -> BenchResult:
        config = self._config()
        if rate is not None:
            config["rate"] = rate
        return result_of(
            rec, config, started_at, ended_at, _machine_facts(self.environment),
            max_senders=self.plan.senders_cap,
            keep_agreement=bool(self.plan.deployments) and self.plan.capacity is None,
        )

    # -- provided by the other parts of the engine ------------------------------------------
    def _send_delta(self, *, done: bool) -> None:
        """Worker: send the recording's delta to the master (:mod:`.distribution`)."""
        raise NotImplementedError

    def _run_capacity(self, sender: Sender) -> None:
        """The capacity search in this process (:mod:`.steps`)."""
        raise NotImplementedError


def _machine_facts(environment: Environment) -> dict[str, Any]:
    from aml_client.bench.machine import environment_facts

    facts = environment_facts()
    runner = environment.runner
    facts["load_processes"] = runner.worker_count if isinstance(runner, MasterRunner) else 1
    return facts
