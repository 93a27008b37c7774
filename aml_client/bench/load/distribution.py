"""Master and workers: the master hands each worker its share of the plan and merges their
recordings' deltas; a worker ships its deltas and says when its share is done.

Locust carries the messages: ``amlc_plan`` (master to worker) and ``amlc_delta`` (worker to
master), and every periodic worker report carries a delta and the worker's live counts.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner

from aml_client.bench.fleet import describe, worker_live
from aml_client.bench.load.node import EngineNode
from aml_client.bench.plan import BenchPlan

__all__ = ["MSG_DELTA", "MSG_PLAN", "Distribution"]

log = logging.getLogger(__name__)

MSG_PLAN = "amlc_plan"
MSG_DELTA = "amlc_delta"


class Distribution(EngineNode):
    """The engine's master and worker roles."""

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
