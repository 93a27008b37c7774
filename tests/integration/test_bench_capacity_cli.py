"""``amlc bench --find-capacity`` against servers with a known capacity: K slots of S ms.

The server serves at most K requests at once, each for S ms, so it completes at most K/S
requests per second; past that the queue (and the latency) grows for as long as the step lasts:
a sharp knee. Its slots are a model on the monotonic clock in one asyncio loop
(``support/slots_server.py``: each request's end is computed when it arrives, the handler only
awaits it), so its capacity stays K/S on a busy machine:
the answer must be within 10 % of it from the default start rate and from a start rate above
capacity, with two CPU-bound processes beside the test (``tests/support/busy.py``).

Steps are short (3 s after a 1 s warm-up, those past capacity end early) and judged on p90
(44 samples resolve it at 99 % confidence), so a whole search takes about a minute. At 10 %
past capacity the queue wait grows by 0.1 s every second: 0.37 s at the step's p90, a miss;
at 10 % below it there is no queue, and a step fails only if its sends are held back by more
than 170 ms for 10 % of it.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.bench import bench_env, run_bench, start_server, start_slots_server

pytestmark = pytest.mark.slow
# One xdist worker runs the searches one after another: three searches at once would each
# starve the others' load process and blame the endpoint for it.
one_search_at_a_time = pytest.mark.xdist_group("capacity")

SLO = "p90<=250ms"
SHORT_STEPS = ["--step-duration", "3s", "--warmup", "1s"]


def _search(srv, tmp_path: Path, name: str, *args: str, slo: str = SLO) -> tuple[dict, str]:
    done = run_bench(
        ["--find-capacity", "--slo", slo, *SHORT_STEPS, "--json",
         "--report-dir", str(tmp_path / name), *args],
        bench_env(srv), tmp_path, timeout_s=240,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout), done.stderr


@one_search_at_a_time
@pytest.mark.parametrize(
    ("slots", "service_ms"),
    [(2, 20.0), (8, 80.0), (1, 5.0)],
    ids=["2x20ms-100rps", "8x80ms-100rps", "1x5ms-200rps"],
)
def test_capacity_search_finds_the_known_capacity(tmp_path: Path, slots: int,
                                                  service_ms: float) -> None:
    true_rps = slots / (service_ms / 1000)
    srv = start_slots_server(tmp_path, slots, service_ms)
    try:
        # From the default start rate (10 req/s: doubling, then bisection) and, with one slot
        # and with two, from twice the capacity (halving, then bisection). Eight slots of 80 ms
        # answer the same 100 req/s as two of 20 ms: one search shows their knee is found.
        starts = (None,) if slots == 8 else (None, 2 * true_rps)
        for start in starts:
            args = [] if start is None else ["--start-rate", f"{start:g}"]
            summary, log = _search(srv, tmp_path, f"from-{start}", *args)
            capacity = summary["capacity"]
            assert capacity["found"] is True, capacity["stopped_because"]
            # On a miss, every step's line (rate, achieved, judged figures, notes) says why.
            steps_log = "\n".join(line for line in log.splitlines() if line.startswith("step "))
            assert abs(capacity["max_rate_rps"] - true_rps) <= 0.1 * true_rps, (
                f"start {start}: found {capacity['max_rate_rps']} req/s\n{steps_log}"
            )
            steps = capacity["steps"]
            if start is not None:
                first = next(s for s in steps if s["rate_rps"] == start)
                assert not first["passed"] and first["ended_early"]
            # Past capacity the endpoint saturates: a failed step, measured (never blamed on
            # the load generator), answered at no more than the endpoint's rate.
            past = [s for s in steps if s["rate_rps"] >= 1.5 * true_rps]
            assert past
            for step in past:
                assert not step["passed"] and step["valid"], step
                assert step["achieved_rps"] < 1.25 * true_rps, step
            # Each step carries the judged percentile and the (implied) error rate, and each
            # step line shows them.
            assert all(set(s["judged"]) == {"p90", "error_rate"} for s in steps)
            assert capacity["objectives"] == [SLO, "error_rate<=1% (implied)"]
            lines = [line for line in log.splitlines() if line.startswith("step ")]
            assert len(lines) == len(steps) and all(", p90 " in line for line in lines), log
            # The report's figures are those of the step at capacity.
            assert summary["config"]["rate"] == pytest.approx(capacity["max_rate_rps"], abs=1e-3)
    finally:
        srv.stop()


@one_search_at_a_time
def test_refusals_fail_a_step_even_when_latency_holds(tmp_path: Path) -> None:
    """2 slots x 20 ms answering 429 at once past 16 pending requests: past 100 req/s the
    latency of the answered requests stays under 200 ms, the refusals grow. The implied error
    objective fails those steps, so the capacity found is never above 100 req/s (+10 %); a
    latency objective alone would hold at every rate. (Refusals also follow bursts of sends
    held back by a busy machine, hence the loose lower bound.)"""
    srv = start_slots_server(tmp_path, 2, 20, "--max-pending", "16")
    reports = tmp_path / "reports"
    junit = tmp_path / "capacity.xml"
    try:
        summary, _ = _search(srv, tmp_path, "reports", "--start-rate", "200",
                             "--junit", str(junit), slo="p95<=1s")
        capacity = summary["capacity"]
        assert capacity["found"] is True
        assert 50 <= capacity["max_rate_rps"] <= 110, capacity
        refused = [s for s in capacity["steps"] if s["judged"]["error_rate"] > 0.01]
        assert refused and not any(s["passed"] for s in refused)
        for step in refused:
            assert step["judged"]["p95"] <= 1000, step  # the latency alone would have passed
            assert any("error_rate" in note and "(implied): MISSED" in note
                       for note in step["notes"]), step
        assert srv.count()["by_status"].get("429", 0) > 0
        assert "error_rate" in junit.read_text()
        (directory,) = reports.iterdir()
        page = (directory / "report.html").read_text()
        assert 'id="capacity-latency"' in page and 'id="capacity-throughput"' in page
        stored = json.loads((directory / "summary.json").read_text())
        assert stored["capacity"]["max_rate_rps"] == capacity["max_rate_rps"]
        assert stored["schema_version"] == 4
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
