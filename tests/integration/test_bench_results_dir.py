"""Every load process of a real run leaves its results directory; merging the workers' equals
the master's merged run exactly, and ``amlc report merge`` writes the same report files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.bench import KEY, bench_env, files_under, run_bench, start_server

from aml_client.bench.report.merge import merge_results
from aml_client.bench.report.results_dir import read_results

pytestmark = pytest.mark.slow

PERCENTILES = [0, 50, 90, 99, 99.9, 100]


def test_workers_results_merge_to_exactly_the_masters_run(tmp_path: Path, amlc) -> None:
    server = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    results = tmp_path / "results"
    try:
        done = run_bench(["--workers", "2", "--users", "4", "-n", "600", "--json"],
                         bench_env(server, AMLC_RESULTS_DIR=str(results)), tmp_path)
    finally:
        server.stop()
    assert done.returncode == 0, done.stderr[-2000:]
    roles: dict[str, list[Path]] = {}
    for directory in sorted(results.iterdir()):
        roles.setdefault(json.loads((directory / "identity.json").read_text())["role"],
                         []).append(directory)
    assert sorted(roles) == ["master", "worker"] and len(roles["worker"]) == 2
    master = read_results(roles["master"][0])
    workers = [read_results(d) for d in roles["worker"]]
    assert all(w.recording.requests > 0 for w in workers)
    merged = merge_results(workers)
    ours, theirs = merged.result.latency, master.recording.latency
    assert merged.result.requests == master.recording.requests == 600
    assert (ours.count, ours.min_us, ours.max_us, ours.sum_us) == (
        theirs.count, theirs.min_us, theirs.max_us, theirs.sum_us)
    assert ours.percentiles_us(PERCENTILES) == theirs.percentiles_us(PERCENTILES)
    for phase, recorder in master.recording.phases.items():
        assert merged.result.phases[phase].percentiles_us(PERCENTILES) == \
            recorder.percentiles_us(PERCENTILES)
    assert merged.overlap
    # The master holds its workers' requests: merging both is refused, not counted twice.
    refused = amlc("report", "merge", str(results), cwd=tmp_path)
    assert refused.returncode != 0 and "not both" in refused.stderr
    assert "Traceback" not in refused.stderr
    cli = amlc("report", "merge", *map(str, roles["worker"]), "-o", str(tmp_path / "merged"),
               cwd=tmp_path)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "merged 2 engine(s)" in cli.stderr and "windows overlap" in cli.stderr
    (report,) = (tmp_path / "merged").iterdir()
    assert {"summary.json", "latency.hgrm", "latency.hlog", "report.md", "report.html",
            "merge.json"} <= {p.name for p in report.iterdir()}
    summary = json.loads((report / "summary.json").read_text())
    bench = json.loads(done.stdout)
    assert summary["requests"] == bench["requests"] == 600
    assert summary["latency"]["percentiles_ms"] == bench["latency"]["percentiles_ms"]
    assert summary["latency"]["max_ms"] == bench["latency"]["max_ms"]
    for path in files_under(results) + files_under(tmp_path / "merged"):
        assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path
