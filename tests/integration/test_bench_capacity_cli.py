"""``amlc bench --find-capacity`` against a server with a known capacity: K slots of S ms.

The server serves at most K requests at once, each for S ms, so it completes at most K/S
requests per second; past that the queue (and the latency) grows for as long as the step lasts:
a sharp knee, which keeps the answer steady on a busy machine.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.bench import bench_env, run_bench, start_server

pytestmark = pytest.mark.slow

SLOTS, SERVICE_MS = 8, 80.0
CAPACITY_RPS = SLOTS / (SERVICE_MS / 1000)  # 100 req/s


def test_capacity_search_finds_the_known_capacity(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--service-ms", str(SERVICE_MS), "--slots", str(SLOTS))
    reports = tmp_path / "reports"
    junit = tmp_path / "capacity.xml"
    try:
        # The whole search must finish within 3 minutes (run_bench's timeout).
        done = run_bench(
            ["--find-capacity", "--slo", f"p90<={2 * SERVICE_MS:g}ms", "--start-rate", "30",
             "--max-rate", "400", "--step-duration", "3s", "--warmup", "1s", "--json",
             "--report-dir", str(reports), "--junit", str(junit)],
            bench_env(srv),
            tmp_path,
            timeout_s=180,
        )
        assert done.returncode == 0, done.stderr
        summary = json.loads(done.stdout)
        capacity = summary["capacity"]
        assert capacity["found"] is True
        assert abs(capacity["max_rate_rps"] - CAPACITY_RPS) <= 0.1 * CAPACITY_RPS, capacity
        steps = {step["rate_rps"]: step for step in capacity["steps"]}
        # Exponential growth from 30 req/s, then bisection between a pass and a fail.
        assert {30.0, 60.0, 120.0} <= set(steps)
        assert steps[30.0]["passed"] and not steps[120.0]["passed"]
        assert len(steps) >= 5
        # Past capacity the endpoint cannot answer more than K/S per second.
        assert steps[120.0]["achieved_rps"] < 1.1 * CAPACITY_RPS
        assert capacity["goodput_rps"] is not None and capacity["knee_rps"] is not None
        # The report's figures are those of the step at capacity, and it has the plots.
        assert summary["config"]["rate"] == capacity["max_rate_rps"]
        (directory,) = reports.iterdir()
        page = (directory / "report.html").read_text()
        assert 'id="capacity-latency"' in page and 'id="capacity-throughput"' in page
        stored = json.loads((directory / "summary.json").read_text())
        assert stored["capacity"]["max_rate_rps"] == capacity["max_rate_rps"]
        xml = junit.read_text()
        assert "capacity found" in xml and 'failures="' in xml

        # Starting above capacity: even the lowest rate misses -> exit 5.
        missed = run_bench(
            ["--find-capacity", "--slo", f"p90<={2 * SERVICE_MS:g}ms", "--start-rate", "200",
             "--max-rate", "400", "--step-duration", "2s", "--warmup", "0s", "--json",
             "--report-dir", str(tmp_path / "r2")],
            bench_env(srv),
            tmp_path,
            timeout_s=120,
        )
        assert missed.returncode == 5, missed.stderr
        assert "even the lowest rate missed" in missed.stderr
        assert json.loads(missed.stdout)["capacity"]["found"] is False
    finally:
        srv.stop()


def test_find_capacity_needs_an_objective(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--service-ms", "1")
    try:
        done = run_bench(["--find-capacity"], bench_env(srv), tmp_path)
        assert done.returncode == 2
        assert "--find-capacity needs at least one --slo" in done.stderr
        done = run_bench(["--find-capacity", "--slo", "p99<=1s", "-t", "5s"], bench_env(srv),
                         tmp_path)
        assert done.returncode == 2 and "drop --workers, --duration" in done.stderr
        done = run_bench(["--find-capacity", "--slo", "p99<=1s", "--workers", "2"],
                         bench_env(srv), tmp_path)
        assert done.returncode == 2 and "in one load process" in done.stderr
        assert srv.count()["total"] == 0
    finally:
        srv.stop()
