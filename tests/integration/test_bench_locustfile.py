"""``locust -f loadtests/locustfile.py`` works as a plain Locust run, with the same recording and
report files as ``amlc bench``, configured by the same environment variables."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.bench import KEY, ROOT, bench_env, files_under, start_server

pytestmark = pytest.mark.slow


def test_plain_locust_headless_run_writes_the_report(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--service-ms", "20", "--key", KEY)
    reports = tmp_path / "reports"
    try:
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                "-f",
                str(ROOT / "loadtests" / "locustfile.py"),
                "--headless",
                "-u",
                "2",
                "-r",
                "2",
                "-t",
                "3s",
                "--only-summary",
            ],
            env=bench_env(server, AMLC_REPORT_DIR=str(reports)),
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=60,
        )
        served = server.count()
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    (directory,) = reports.iterdir()
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["failures"]["total"] == 0
    # Locust's --run-time kills the users: at most one in-flight request each is lost.
    assert summary["requests"] <= served["total"] <= summary["requests"] + 2
    assert summary["requests"] > 150
    # A ratio with a wide margin, not an absolute window: a busy machine adds its own delays.
    assert 20.0 <= summary["latency"]["percentiles_ms"]["p50"] <= 60.0
    # Locust's own (rounded, and in multi-process runs incomplete) statistics are not reported.
    assert "locust" not in summary and summary["schema_version"] == 4
    for path in files_under(directory):
        assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path
    assert KEY not in done.stdout + done.stderr
