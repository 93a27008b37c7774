"""aml_client/bench/fleet.py: a master's record of its workers' last reports and of the lost
ones, and the partial summary that names them."""

from __future__ import annotations

import os

from support.bench_results import synthetic_result

from aml_client.bench.fleet import Fleet, describe, worker_live
from aml_client.bench.report.summarize import summarize


def test_a_lost_worker_keeps_the_counts_of_its_last_report() -> None:
    fleet = Fleet()
    fleet.report("w1", {"sent": 10, "answered": 8, "in_flight": 2, "host": "10.0.0.3",
                        "pid": 11})
    fleet.report("w2", {"sent": 5, "answered": 5, "in_flight": 1, "host": "10.0.0.4",
                        "pid": 12})
    fleet.report("w1", {"sent": 20, "answered": 18, "in_flight": 2, "host": "10.0.0.3",
                        "pid": 11})
    assert (fleet.sent, fleet.in_flight) == (25, 3)
    [lost] = fleet.check(["w1"])
    assert (lost.host, lost.pid, lost.sent, lost.answered) == ("10.0.0.3", 11, 20, 18)
    assert fleet.check(["w1"]) == []  # reported once
    fleet.report("w1", {"sent": 99, "answered": 99, "in_flight": 0})  # too late: ignored
    assert fleet.lost["w1"].sent == 20
    assert fleet.in_flight == 1  # a lost worker has nothing in flight any more
    assert describe(lost) == ("worker 10.0.0.3 (pid 11) was lost after sending 20 requests "
                              "(18 answered by its last report): the result is partial")


def test_a_summary_is_partial_only_when_a_worker_was_lost() -> None:
    summary = summarize(synthetic_result())
    fleet = Fleet()
    fleet.annotate(summary)
    assert summary.partial is False and summary.lost_workers == []
    fleet.check(["never-reported"])
    fleet.annotate(summary)
    assert summary.partial is True
    assert [w.id for w in summary.lost_workers] == ["never-reported"]
    assert summary.warnings[-1].startswith("worker never-reported was lost after sending 0")
    data = summary.to_data()
    assert data["partial"] is True and data["lost_workers"][0]["sent"] == 0


def test_a_worker_names_its_address_towards_the_master_and_its_process() -> None:
    live = worker_live(3, 2, 1, "127.0.0.1")
    assert live == {"sent": 3, "answered": 2, "in_flight": 1, "host": "127.0.0.1",
                    "pid": os.getpid()}
