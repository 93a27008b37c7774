"""``amlc bench --repeat N`` against the calibrated server: N real runs, a group that ``amlc
report compare`` takes as one side, and progress as plain lines when stderr is not a
terminal."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.bench import bench_env, run_bench, start_server

pytestmark = pytest.mark.slow


def test_repeat_writes_a_group_that_compare_takes_as_one_side(tmp_path: Path, amlc) -> None:
    # 50 ms a request: two users send ~40 a second, in each of the 6 one-second intervals a
    # run needs (5 or more) for report compare's confidence interval.
    srv = start_server(tmp_path, "--service-ms", "50")
    reports = tmp_path / "reports"
    try:
        done = run_bench(["-u", "2", "-t", "6s", "--workers", "1", "--repeat", "2",
                          "--report-dir", str(reports)], bench_env(srv), tmp_path, timeout_s=240)
    finally:
        srv.stop()
    assert done.returncode == 0, done.stderr
    groups = [p for p in reports.iterdir() if (p / "group.json").is_file()]
    assert len(groups) == 1 and groups[0].name.endswith("-group")
    members = json.loads((groups[0] / "group.json").read_text())["runs"]
    assert len(members) == 2
    for index, name in enumerate(members, 1):
        assert (reports / name / "summary.json").is_file()
        assert f"run {index}/2 {name}: " in done.stdout
    assert f"group of 2 runs: {groups[0]}" in done.stdout
    # Not a terminal: progress is a plain line on stderr (the first at once, then every 5 s).
    progress = [line for line in done.stderr.splitlines() if line.startswith("progress: ")]
    assert len(progress) >= 2 and all(" req/s, " in line for line in progress)
    compared = amlc("report", "compare", str(reports / members[0]), "--vs", str(groups[0]),
                    "--json", "--fail-on", "p99>+50%")
    assert compared.returncode == 0, compared.stderr
    data = json.loads(compared.stdout)
    assert data["b"]["runs"] == 2 and data["b"]["report_id"] == groups[0].name
    assert "1 run (A) vs 2 (B)" in data["method"]


def test_repeat_refuses_what_it_cannot_repeat(tmp_path: Path) -> None:
    srv = start_server(tmp_path)
    try:
        done = run_bench(["--repeat", "2", "--web"], bench_env(srv), tmp_path)
        served = srv.count()["total"]
    finally:
        srv.stop()
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [
        "error: --repeat runs headless runs of its own: drop --web, --master, --worker, "
        "--find-capacity and --junit"]
    assert served == 0
