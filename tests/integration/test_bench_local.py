"""A short bounded ``amlc bench`` against the real local endpoint (inference server + model)."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from support.bench import files_under, run_bench

pytestmark = pytest.mark.slow


def test_bench_the_local_endpoint(local_endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    scored_before = sum("/score" in line for line in local_endpoint.access_log_lines())
    reports = tmp_path / "reports"
    done = run_bench(
        [
            "--endpoint",
            "local",
            "-n",
            "20",
            "-u",
            "2",
            "--workers",
            "1",
            "--json",
            "--report-dir",
            str(reports),
            "--slo",
            "error_rate<=0%",
        ],
        local_endpoint.env(),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["requests"] == 20, summary
    assert summary["failures"]["total"] == 0, summary["failures"]
    assert summary["config"]["payload"]["source"] == "swagger example"
    assert summary["config"]["payload"]["validated"] is True
    assert 0 < summary["latency"]["percentiles_ms"]["p50"] < summary["latency"]["max_ms"] < 5000
    # The endpoint's own request log saw exactly those requests.
    scored = sum("/score" in line for line in local_endpoint.access_log_lines()) - scored_before
    assert scored == 20
    key = local_endpoint.primary_key
    for path in files_under(reports):
        assert key not in path.read_text(encoding="utf-8", errors="replace"), path
    assert key not in done.stdout + done.stderr


def _nearest_rank(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(p / 100 * len(ordered)), 1) - 1]


def test_server_phase_matches_the_endpoints_own_run_ms(local_endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = len(local_endpoint.access_log_lines())
    done = run_bench(
        ["--endpoint", "local", "-n", "60", "-u", "2", "--workers", "1", "--json",
         "--report-dir", str(tmp_path / "r")],
        local_endpoint.env(),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    lines = [line for line in local_endpoint.access_log_lines()[before:] if "/score" in line]
    run_ms = [float(m.group(1)) for line in lines if (m := re.search(r"run_ms=([\d.]+)", line))]
    assert len(run_ms) == 60
    phases = summary["phases"]
    assert phases["server"]["samples"] == 60 and phases["rest"]["samples"] == 60
    assert abs(phases["server"]["percentiles_ms"]["p50"] - _nearest_rank(run_ms, 50)) <= 2.0
    assert abs(phases["server"]["sum_ms"] - sum(run_ms)) <= 60 * 0.002
    # total = server + rest for every request, so for their sums.
    assert abs(phases["server"]["sum_ms"] + phases["rest"]["sum_ms"]
               - summary["latency"]["sum_ms"]) <= 0.002


def test_open_model_at_30_per_second_keeps_up_or_says_invalid(  # type: ignore[no-untyped-def]
    local_endpoint, tmp_path: Path
) -> None:
    done = run_bench(
        # On a busy machine the endpoint may refuse some (429): this test is about the schedule.
        ["--endpoint", "local", "--rate", "30", "--arrival", "poisson", "-t", "8s",
         "--workers", "1", "--allow-failures", "--json", "--report-dir", str(tmp_path / "r")],
        local_endpoint.env(),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    validity = summary["validity"]
    if validity["valid"]:
        # Senders were there when due: the send slip is small next to the latency, so the
        # corrected latency is the endpoint's (uncorrected + slip), not the generator's.
        slip_p99 = validity["slip"]["percentiles_ms"]["p99"]
        uncorrected = summary["latency"]["percentiles_ms"]["p50"]
        assert summary["corrected"]["percentiles_ms"]["p50"] <= uncorrected + slip_p99 + 1.0
        # Valid means few late sends, by the summary's own rule: at most 1 %, or fewer than 5
        # (one scheduling hiccup of a busy machine is not a trend).
        from aml_client.bench.report.summary import LATE_FRACTION_LIMIT, LATE_MIN_COUNT

        assert (validity["late_fraction"] <= LATE_FRACTION_LIMIT
                or validity["late_sends"] < LATE_MIN_COUNT), validity
    else:
        assert validity["reasons"], validity
        assert "INVALID" in done.stderr or validity["reasons"][0]


@pytest.mark.xdist_group("capacity")  # no other capacity search beside it (test_bench_capacity_cli)
def test_capacity_of_the_local_endpoint(local_endpoint, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    reports = tmp_path / "reports"
    done = run_bench(
        ["--endpoint", "local", "--find-capacity", "--slo", "p90<=500ms", "--start-rate", "20",
         "--max-rate", "40", "--step-duration", "3s", "--warmup", "1s", "--report-dir",
         str(reports)],
        local_endpoint.env(),
        tmp_path,
        timeout_s=300,
    )
    assert done.returncode == 0, done.stderr
    assert "Capacity" in done.stdout and "req/s" in done.stdout
    (directory,) = reports.iterdir()
    summary = json.loads((directory / "summary.json").read_text())
    # Whatever this machine lets the endpoint do (a busy one may hold it below the start rate;
    # the search then halves): a capacity found, and the report's figures at that rate.
    assert summary["capacity"]["found"] and summary["capacity"]["max_rate_rps"] > 0
    page = (directory / "report.html").read_text()
    assert 'id="capacity-latency"' in page and 'id="capacity-throughput"' in page


def test_twenty_users_get_no_429_from_the_default_local_endpoint(  # type: ignore[no-untyped-def]
    local_endpoint, tmp_path: Path
) -> None:
    # The README's `amlc bench --users 20`: the default queue (2 x max_concurrent pending per
    # deployment) takes 20 concurrent users, where Azure's default of 1 would answer 429s.
    status = local_endpoint.amlc("local", "status", "--json")
    assert status.returncode == 0, status.stderr
    [deployment] = json.loads(status.stdout)["deployments"]
    assert 2 * deployment["max_concurrent_requests_per_instance"] >= 20
    done = run_bench(
        ["--endpoint", "local", "--users", "20", "-n", "100", "--workers", "1", "--json",
         "--report-dir", str(tmp_path / "r")],
        local_endpoint.env(),
        tmp_path,
        timeout_s=240,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["requests"] == 100
    assert summary["failures"]["by_kind"] == {}, summary["failures"]
    # More requests were pending at once than the old default (2 x 2 workers) let wait.
    assert summary["validity"]["peak_in_flight"] > 4, summary["validity"]
