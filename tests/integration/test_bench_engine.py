"""``amlc bench`` against a calibrated server with a known 20 ms service time."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.bench import KEY, Server, bench_env, files_under, run_bench, start_server

pytestmark = pytest.mark.slow

TRUTH_MS = 20.0


@pytest.fixture
def server(tmp_path: Path):  # type: ignore[no-untyped-def]
    srv = start_server(
        tmp_path, "--service-ms", str(TRUTH_MS), "--key", KEY, "--server-time",
        "--deployment", "blue",
    )
    yield srv
    srv.stop()


def _summary(done) -> dict:  # type: ignore[no-untyped-def]
    assert done.stdout.strip(), done.stderr
    return json.loads(done.stdout)


def test_closed_model_p50_matches_the_truth_and_counts_match_the_server(
    server: Server, tmp_path: Path
) -> None:
    reports = tmp_path / "reports"
    junit = tmp_path / "slo.xml"
    done = run_bench(
        [
            "--junit",
            str(junit),
            "-n",
            "400",
            "-u",
            "4",
            "--workers",
            "1",
            "--json",
            "--report-dir",
            str(reports),
            "--slo",
            "p99<=5ms",
            "--slo",
            "error_rate<=1%",
        ],
        bench_env(server),
        tmp_path,
    )
    # A missed objective exits 5 and names it; the met one is not reported as missed.
    assert done.returncode == 5, done.stderr
    assert "objective missed: p99" in done.stderr
    assert "error_rate" not in done.stderr.split("objective missed")[-1]
    summary = _summary(done)
    # JUnit: one test case per objective, and one for the run's validity.
    cases = {c.get("name"): c for c in ET.parse(junit).getroot().iter("testcase")}
    assert set(cases) == {"p99 <= 5 ms", "error_rate <= 1 %", "valid run"}
    assert cases["p99 <= 5 ms"].find("failure") is not None
    assert cases["error_rate <= 1 %"].find("failure") is None
    assert summary["requests"] == 400
    assert summary["failures"]["total"] == 0
    # Ratios with wide margins, not absolute windows: a busy machine adds its own delays.
    assert TRUTH_MS <= summary["latency"]["percentiles_ms"]["p50"] <= 3 * TRUTH_MS
    assert summary["latency"]["min_ms"] >= TRUTH_MS
    assert server.count() == {"total": 400, "by_status": {"200": 400}}
    # Where the time goes: every request has each phase; 4 users kept 4 connections open.
    phases = summary["phases"]
    assert phases["connect"]["samples"] == 4
    for name in ("ttfb", "body", "server", "rest"):
        assert phases[name]["samples"] == 400, name
    assert TRUTH_MS <= phases["server"]["percentiles_ms"]["p50"] <= 3 * TRUTH_MS
    # total = server + rest, request by request, so the sums agree to the rounding of ms.
    total = summary["latency"]["sum_ms"]
    assert abs(phases["server"]["sum_ms"] + phases["rest"]["sum_ms"] - total) <= 0.002
    assert abs(phases["connect"]["sum_ms"] + phases["ttfb"]["sum_ms"] + phases["body"]["sum_ms"]
               - total) <= 400 * 0.002
    assert summary["transfer"]["document_length"] == len(b"[0.5]")
    assert summary["transfer"]["server"].startswith("BaseHTTP/")
    # The answering deployment (azureml-model-deployment), results broken down by it.
    (blue,) = summary["deployments"]
    assert (blue["name"], blue["requests"], blue["failures"], blue["share"]) == ("blue", 400, 0, 1)
    assert blue["latency"]["samples"] == 400
    assert summary["transfer"]["bytes_received"] > 400 * len(b"[0.5]")
    assert summary["validity"]["valid"] is True
    assert len(server.log_lines()) == 400
    # One report directory with every file, and the key in none of them nor in any output.
    (directory,) = reports.iterdir()
    names = {p.name for p in files_under(directory)}
    assert {"summary.json", "latency.hgrm", "latency.hlog", "report.html", "report.md"} <= names
    for path in files_under(directory):
        assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path
    assert KEY not in done.stdout and KEY not in done.stderr


def test_failures_are_counted_by_kind(tmp_path: Path) -> None:
    srv = start_server(tmp_path, "--service-ms", "2", "--fail-every", "4")
    try:
        done = run_bench(
            [
                "-n",
                "200",
                "-u",
                "2",
                "--workers",
                "1",
                "--json",
                "--report-dir",
                str(tmp_path / "r"),
            ],
            bench_env(srv),
            tmp_path,
        )
        summary = _summary(done)
        assert done.returncode == 4, done.stderr  # requests failed, and nothing accepted it
        assert "error: 50 of 200 requests failed (http_503 50)" in done.stderr
        assert summary["failures"]["by_kind"] == {"http_503": 50}
        assert srv.count()["by_status"] == {"200": 150, "503": 50}
    finally:
        srv.stop()
    # Nothing listening any more: connection failures, still bounded and reported.
    done = run_bench(
        [
            "-n",
            "5",
            "-u",
            "1",
            "--workers",
            "1",
            "--json",
            "--timeout",
            "2s",
            "--report-dir",
            str(tmp_path / "r2"),
            "--payload",
            str(_rows(tmp_path)),
        ],
        bench_env(srv),
        tmp_path,
    )
    summary = _summary(done)
    assert summary["failures"]["by_kind"] == {"connection": 5}


def test_fewer_requests_than_load_processes_ends_by_itself(
    server: Server, tmp_path: Path
) -> None:
    """One request shared by two workers: the worker whose share is none is done at once."""
    done = run_bench(
        ["-n", "1", "-u", "4", "--workers", "2", "--json", "--report-dir", str(tmp_path / "r")],
        bench_env(server),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert _summary(done)["requests"] == 1
    assert server.count() == {"total": 1, "by_status": {"200": 1}}


def _rows(tmp_path: Path) -> Path:
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"x": 1.0, "y": 1}\n{"x": 2.0, "y": 2}\n')
    return rows


def test_wrong_key_is_http_401(server: Server, tmp_path: Path) -> None:
    env = bench_env(server, AMLC_KEY="not-the-key")
    done = run_bench(
        ["-n", "20", "-u", "2", "--workers", "1", "--json", "--report-dir", str(tmp_path / "r")],
        env,
        tmp_path,
    )
    assert _summary(done)["failures"]["by_kind"] == {"http_401": 20}


def _stall_run(tmp_path: Path, name: str, *extra: str, code: int = 0) -> dict:
    # 100 req/s for 6 s; the server stalls for 1 s, 2 s after the first request.
    srv = start_server(
        tmp_path, "--service-ms", str(TRUTH_MS), "--stall-after-s", "2", "--stall-s", "1"
    )
    try:
        done = run_bench(
            ["--rate", "100", *extra, "--duration", "6s", "--workers", "1", "--json",
             "--report-dir", str(tmp_path / name)],
            bench_env(srv),
            tmp_path,
        )
        assert done.returncode == code, done.stderr
        summary = _summary(done)
        assert srv.count()["total"] == summary["requests"] == 600
        if code:
            assert "the run is INVALID" in done.stderr and "--allow-invalid" in done.stderr
    finally:
        srv.stop()
    return summary


def test_open_model_with_too_few_senders_hides_a_stall_and_is_invalid(tmp_path: Path) -> None:
    # Capped at 4 senders (as a fixed pool of 4 users would be): during the stall the sends
    # slip, the uncorrected latency hides the stall, and the run says it is INVALID.
    # An objective that holds still fails on an INVALID run (exit 5).
    summary = _stall_run(tmp_path, "r", "--max-senders", "4", "--slo", "error_rate<=100%",
                         code=5)
    corrected, uncorrected = summary["corrected"], summary["latency"]
    assert summary["mode"] == "open" and uncorrected["kind"] == "uncorrected"
    # Corrected: ~100 requests were due during the stall, so the tail shows the full second.
    assert corrected["percentiles_ms"]["p99"] >= 800
    assert corrected["max_ms"] >= 900
    assert corrected["percentiles_ms"]["p90"] >= 200
    # Uncorrected: only the 4 requests in flight saw it (< 1 %).
    assert uncorrected["percentiles_ms"]["p99"] * 4 < corrected["percentiles_ms"]["p99"]
    assert TRUTH_MS <= uncorrected["percentiles_ms"]["p50"] <= 3 * TRUTH_MS
    validity = summary["validity"]
    assert validity["valid"] is False
    assert "load generator fell behind" in validity["reasons"][0]
    assert "--max-senders" in validity["reasons"][0]
    assert validity["max_senders"] == 4 and validity["peak_in_flight"] == 4


def test_open_model_senders_on_demand_keep_the_schedule_through_a_stall(tmp_path: Path) -> None:
    # Senders created on demand: every request goes out on time, so the uncorrected latency
    # shows the stall too and the run is valid (the generator was never the bottleneck).
    summary = _stall_run(tmp_path, "r")
    corrected, uncorrected = summary["corrected"], summary["latency"]
    validity = summary["validity"]
    # The senders never ran out. On a busy machine the load process may still be held off the
    # CPU long enough for some sends to slip (then the run says so): that is the machine, not
    # the stall, and the typical send stays on time (the slip's p50 below).
    assert validity["valid"] is True or not any(
        "senders were busy" in reason for reason in validity["reasons"]
    ), validity
    assert validity["peak_in_flight"] >= 50  # ~100 due during the 1 s stall
    assert uncorrected["percentiles_ms"]["p99"] >= 0.8 * corrected["percentiles_ms"]["p99"]
    assert corrected["percentiles_ms"]["p99"] >= 800
    assert summary["validity"]["slip"]["percentiles_ms"]["p50"] < TRUTH_MS


def test_two_workers_merge_exactly_and_counts_add_up(server: Server, tmp_path: Path) -> None:
    done = run_bench(
        ["-n", "301", "-u", "4", "--workers", "2", "--json", "--report-dir", str(tmp_path / "r")],
        bench_env(server),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    assert summary["config"]["workers"] == 2
    assert summary["requests"] == 301 == server.count()["total"] == len(server.log_lines())
    assert summary["latency"]["samples"] == 301
    assert sum(row["requests"] for row in summary["intervals"]) == 301
    assert summary["phases"]["ttfb"]["samples"] == 301  # phases merged across workers too
    assert TRUTH_MS <= summary["latency"]["percentiles_ms"]["p50"] <= 3 * TRUTH_MS


def test_duration_bound_lets_in_flight_requests_finish(server: Server, tmp_path: Path) -> None:
    done = run_bench(
        [
            "--duration",
            "2s",
            "-u",
            "3",
            "--workers",
            "1",
            "--json",
            "--report-dir",
            str(tmp_path / "r"),
        ],
        bench_env(server),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    assert summary["duration_s"] >= 1.9
    # No request killed mid-flight: the server answered exactly what was recorded.
    # (more than a handful, so that some were in flight when the duration ended)
    assert summary["requests"] == server.count()["total"] > 10


def test_bad_options_fail_before_any_load(server: Server, tmp_path: Path) -> None:
    done = run_bench(["-n", "5", "--slo", "p99<=fast"], bench_env(server), tmp_path)
    assert done.returncode == 2
    assert "--slo" in done.stderr
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"data": [{"x": 1.0, "y": "abc"}]}))
    done = run_bench(["-n", "5", "--payload", str(bad)], bench_env(server), tmp_path)
    assert done.returncode == 2, done.stderr
    assert server.count()["total"] == 0


def test_master_and_workers_started_separately(server: Server, tmp_path: Path) -> None:
    # As on several machines: `amlc bench --master` waits for two `amlc bench --worker`s.
    import socket
    from concurrent.futures import ThreadPoolExecutor

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = bench_env(server)
    master_args = ["--master", "--expect-workers", "2", "--master-port", str(port), "-n", "101",
                   "-u", "4", "--json", "--report-dir", str(tmp_path / "r")]
    worker_args = ["--worker", "--master-host", "127.0.0.1", "--master-port", str(port)]
    # Three processes at once, each killed if it outlives its timeout.
    with ThreadPoolExecutor(3) as pool:
        master = pool.submit(run_bench, master_args, env, tmp_path, 90)
        workers = [pool.submit(run_bench, worker_args, env, tmp_path, 120) for _ in range(2)]
        done = master.result()
        worker_codes = [w.result().returncode for w in workers]
    assert done.returncode == 0, done.stderr
    assert worker_codes == [0, 0]
    summary = json.loads(done.stdout)
    assert summary["config"]["workers"] == 2
    assert summary["requests"] == 101 == server.count()["total"]


def test_tls_certificates_are_verified_unless_insecure(tmp_path: Path) -> None:
    from support.faults import self_signed_cert

    cert, key = self_signed_cert(tmp_path)
    srv = start_server(
        tmp_path, "--service-ms", "1", "--tls-cert", str(cert), "--tls-key", str(key)
    )
    env = bench_env(srv, AMLC_SCORING_URI=f"https://127.0.0.1:{srv.port}/score")
    rows = _rows(tmp_path)
    common = ["-n", "10", "-u", "1", "--workers", "1", "--json", "--payload", str(rows)]
    try:
        # The swagger cannot be fetched either (same certificate): the payload goes unvalidated,
        # and every request fails on the certificate.
        done = run_bench([*common, "--report-dir", str(tmp_path / "a")], env, tmp_path)
        assert _summary(done)["failures"]["by_kind"] == {"tls": 10}, done.stderr
        done = run_bench(
            [*common, "--insecure", "--report-dir", str(tmp_path / "b")], env, tmp_path
        )
        summary = _summary(done)
        assert summary["failures"]["total"] == 0 and summary["requests"] == 10
        assert summary["config"]["verify_tls"] is False
        assert summary["config"]["payload"]["validated"] is True  # swagger read over TLS too
    finally:
        srv.stop()


def test_open_model_over_two_workers_keeps_rate_and_count(server: Server, tmp_path: Path) -> None:
    done = run_bench(
        ["--rate", "150", "-n", "300", "-u", "8", "--workers", "2", "--json",
         "--report-dir", str(tmp_path / "r")],
        bench_env(server), tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    assert summary["requests"] == 300 == server.count()["total"]
    assert summary["corrected"]["samples"] == summary["latency"]["samples"] == 300
    # 300 requests due over 2 s: the two workers' interleaved schedules keep the rate.
    assert summary["duration_s"] >= 1.9
    assert summary["corrected"]["percentiles_ms"]["p50"] <= 3 * TRUTH_MS


def test_each_response_fault_is_a_failure_of_its_own_kind(tmp_path: Path) -> None:
    from support.calibrated import FAULTS

    srv = start_server(tmp_path, "--service-ms", "1", "--faults")
    rounds = 3
    try:
        done = run_bench(
            ["-n", str(rounds * len(FAULTS)), "-u", "1", "--workers", "1", "--timeout", "1s",
             "--json", "--report-dir", str(tmp_path / "r")],
            bench_env(srv),
            tmp_path,
        )
        summary = _summary(done)
        served = srv.count()["by_status"]
    finally:
        srv.stop()
    expected: dict[str, int] = {}
    for name, *_ in FAULTS:
        if name != "ok":
            expected[name] = expected.get(name, 0) + rounds
    assert summary["failures"]["by_kind"] == expected, done.stderr
    assert summary["successes"] == rounds
    # Every fault was answered once per round, and the redirect was not followed (the
    # Location's port 9 received nothing: it would be a connection failure).
    assert served.get("redirect") == rounds


def test_master_port_applies_to_local_workers(server: Server, tmp_path: Path) -> None:
    """``--workers 2 --master-port P``: the local master listens on P (it used to take any
    port and ignore the option); a busy P is one line and exit 2 before any load; without
    workers or a master the option is refused rather than ignored."""
    import socket
    import time
    from concurrent.futures import ThreadPoolExecutor

    env = bench_env(server)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_bench(["-n", "20", "--workers", "2", "--master-port", str(port)], env, tmp_path)
    assert done.returncode == 2, done.stderr
    assert f"--master-port {port}: cannot listen" in done.stderr
    alone = run_bench(
        ["-n", "20", "--workers", "1", "--master-port", str(port)], env, tmp_path
    )
    assert alone.returncode == 2 and "--master-port needs" in alone.stderr, alone.stderr
    assert server.count()["total"] == 0

    with ThreadPoolExecutor(1) as pool:
        run = pool.submit(
            run_bench,
            ["-n", "300", "-u", "2", "--workers", "2", "--master-port", str(port), "--json",
             "--report-dir", str(tmp_path / "r")],
            env, tmp_path,
        )  # fmt: skip
        listened = False
        while not run.done() and not listened:
            with socket.socket() as probe:
                listened = probe.connect_ex(("127.0.0.1", port)) == 0
            time.sleep(0.05)
        done = run.result()
    assert done.returncode == 0, done.stderr
    assert listened, "nothing listened on --master-port during the run"
    assert json.loads(done.stdout)["requests"] == 300 == server.count()["total"]
