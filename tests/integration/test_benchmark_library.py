"""``aml_client.run_bench`` and ``find_capacity`` called in-process, as a user's script calls
them: a client ``Endpoint`` object as the endpoint (its key reaches the load process only
through its stdin), real load processes, servers whose answers are known."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any

import psutil
import pytest
from support.bench import KEY, files_under, start_server, start_slots_server

import aml_client
from aml_client import Endpoint, KeyCredential
from aml_client.benchmark import failed_requests, missed_objectives

# With the capacity searches of test_bench_capacity_cli.py: one at a time.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("capacity")]


def test_run_bench_counts_exactly_what_it_sent_and_writes_the_report(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    try:
        events: list[dict[str, Any]] = []
        summary = aml_client.run_bench(
            Endpoint(srv.uri, KeyCredential(KEY)), users=2, requests=60,
            report_dir=tmp_path / "reports", slo=["p99<=10s"], on_event=events.append,
        )
        counts = srv.count()
    finally:
        srv.stop()
    assert summary.requests == 60 and summary.failures.total == 0
    # The server saw each request once, all with the key (it answers 401 without).
    assert counts == {"total": 60, "by_status": {"200": 60}}, counts
    assert summary.report_dir is not None
    report = Path(summary.report_dir)
    assert report.parent == tmp_path / "reports" and (report / "summary.json").is_file()
    assert missed_objectives(summary, ["p99<=10s"]) == []
    assert failed_requests([summary], []) is None
    assert any(event.get("type") == "result" for event in events)
    for path in files_under(tmp_path / "reports"):
        assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path


def test_the_load_process_leads_a_session_of_its_own(tmp_path: Path) -> None:
    # Not a slice of this session's CPU share (Linux's autogroup): seen from the events of a
    # run long enough that the load process is still there when they are read.
    srv = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    sessions: dict[int, int] = {}  # the load process: pid -> its session

    def on_event(_event: dict[str, Any]) -> None:
        for child in psutil.Process().children():
            with contextlib.suppress(psutil.Error, ProcessLookupError):
                if "aml_client.bench.load.runner" in child.cmdline():
                    sessions[child.pid] = os.getsid(child.pid)

    try:
        aml_client.run_bench(Endpoint(srv.uri, KeyCredential(KEY)), users=1, duration="3s",
                             report_dir=tmp_path / "reports", on_event=on_event)
    finally:
        srv.stop()
    assert sessions and all(sid == pid != os.getsid(0) for pid, sid in sessions.items()), sessions


def test_find_capacity_finds_the_known_capacity(tmp_path: Path) -> None:
    srv = start_slots_server(tmp_path, 2, 20.0)  # 2 slots of 20 ms: 100 req/s
    try:
        summary = aml_client.find_capacity(
            Endpoint(srv.uri, KeyCredential(KEY)), slo=["p90<=250ms"], step_duration="3s",
            warmup="1s", report_dir=tmp_path / "reports",
        )
    finally:
        srv.stop()
    capacity = summary.capacity
    assert capacity is not None and capacity.found, capacity
    assert capacity.max_rate_rps is not None
    assert 90 <= capacity.max_rate_rps <= 110, capacity.steps
