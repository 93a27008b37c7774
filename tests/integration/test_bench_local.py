"""A short bounded ``amlc bench`` against the real local endpoint (inference server + model)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from bench_support import files_under, run_bench

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
