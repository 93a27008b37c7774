"""A master's view of its workers: what each last reported, and which were lost.

Every periodic report of a worker (once a second) carries its live counts — requests sent,
answered, in flight — and its identity (host, process id). When Locust's heartbeat check marks
a worker *missing* (no heartbeat for about 3 s: the process died, its host went away), the
master records it as lost with the counts of its last report, stops waiting for its share of the
plan, and the run ends with a *partial* result naming it (the summary's ``partial`` and
``lost_workers``). Its measurements up to its last report are in the merged result; requests it
sent after that are unknown to the master (at most about a second of them).
"""

from __future__ import annotations

import functools
import os
import socket
from collections.abc import Iterable
from typing import Any

from aml_client.bench.report.summary import BenchSummary, LostWorker

__all__ = ["Fleet", "worker_live"]


@functools.lru_cache(maxsize=4)
def _address_towards(host: str | None) -> str:
    """This machine's address on the route to ``host`` (no packet is sent), else its name."""
    if host:
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
                probe.connect((host, 9))
                return str(probe.getsockname()[0])
        except OSError:
            pass
    return socket.gethostname()


def worker_live(sent: int, answered: int, in_flight: int,
                master_host: str | None = None) -> dict[str, Any]:
    """A worker's live counts and identity (its address towards the master, its process id),
    attached to its periodic report."""
    return {"sent": sent, "answered": answered, "in_flight": in_flight,
            "host": _address_towards(master_host), "pid": os.getpid()}


class Fleet:
    """The last report of each worker, and the lost ones (see the module docstring)."""

    def __init__(self) -> None:
        self.reports: dict[str, dict[str, Any]] = {}
        self.lost: dict[str, LostWorker] = {}

    def report(self, client_id: str, live: Any) -> None:
        if isinstance(live, dict) and client_id not in self.lost:
            self.reports[client_id] = live

    @property
    def in_flight(self) -> int:
        return sum(int(r.get("in_flight", 0)) for cid, r in self.reports.items()
                   if cid not in self.lost)

    @property
    def sent(self) -> int:
        return sum(int(r.get("sent", 0)) for r in self.reports.values())

    def check(self, missing: Iterable[str]) -> list[LostWorker]:
        """Record workers newly reported missing; returns them."""
        new = []
        for client_id in missing:
            if client_id in self.lost:
                continue
            last = self.reports.get(client_id, {})
            lost = LostWorker(
                id=client_id,
                host=str(last.get("host", "")) or None,
                pid=int(last["pid"]) if "pid" in last else None,
                sent=int(last.get("sent", 0)),
                answered=int(last.get("answered", 0)),
            )
            self.lost[client_id] = lost
            new.append(lost)
        return new

    def annotate(self, summary: BenchSummary) -> None:
        """Mark a summary partial when workers were lost."""
        if not self.lost:
            return
        summary.partial = True
        summary.lost_workers = sorted(self.lost.values(), key=lambda w: w.id)
        for worker in summary.lost_workers:
            summary.warnings.append(describe(worker))


def describe(worker: LostWorker) -> str:
    """``worker host-1 (pid 4242) was lost after sending 1,234 requests …``."""
    where = " ".join(p for p in (worker.host or "", f"(pid {worker.pid})"
                                 if worker.pid is not None else "") if p)
    return (f"worker {where or worker.id} was lost after sending {worker.sent:,} requests "
            f"({worker.answered:,} answered by its last report): the result is partial")
