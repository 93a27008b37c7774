"""``amlc report show | compare | list`` in a real process, on reports written by the test."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
from support.bench_results import SECRET, synthetic_result

from aml_client.bench.report import directory as report

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def runs(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(root, closed run A, open run B one hour later)."""
    root = tmp_path / "reports"
    a = report.write_report(synthetic_result(base_us=20_000), root)
    later = synthetic_result(base_us=24_000, seed=3, open_model=True)
    later.started_at += 3600
    later.ended_at += 3600
    b = report.write_report(later, root)
    return root, a, b


def test_show_prints_the_summary_and_ab_table(amlc, runs):
    _, a, _ = runs
    result = amlc("report", "show", str(a))
    assert result.returncode == 0, result.stderr
    summary = report.load_summary(a)
    out = result.stdout
    assert "Benchmark of local" in out
    assert "Percentage of the requests served within a certain time (ms)" in out
    assert "100% (longest request)" in out
    assert f"{summary.latency.value_ms('p99'):,.3f}" in out
    assert f"{summary.latency.max_ms:,.3f}" in out
    assert "Nearest rank" in out
    assert SECRET not in out + result.stderr


def test_show_json_is_the_stored_summary(amlc, runs):
    _, a, _ = runs
    result = amlc("report", "show", str(a), "--json")
    assert result.returncode == 0, result.stderr
    data = result.json()
    stored = json.loads((a / "summary.json").read_text())
    assert data["latency"] == stored["latency"]
    assert data["report_id"] == a.name


def test_show_defaults_to_the_latest_run(amlc, runs):
    root, _, b = runs
    result = amlc("report", "show", "--root", str(root), "--json")
    assert result.returncode == 0, result.stderr
    assert result.json()["report_id"] == b.name
    assert result.json()["corrected"]["kind"] == "corrected"


def test_show_checks_objectives(amlc, runs):
    _, a, _ = runs
    met = amlc("report", "show", str(a), "--slo", "p99<=1s", "--slo", "error_rate<=1%")
    assert met.returncode == 0, met.stderr
    assert "objective <= 1 s: met" in met.stdout
    missed = amlc("report", "show", str(a), "--slo", "p50<=1ms", "--slo", "rps>=1")
    assert missed.returncode == 5
    assert "error: objective missed: p50 = " in missed.stderr
    assert "objective <= 1 ms: MISSED" in missed.stderr
    assert "objective >= 1 req/s: met" in missed.stdout


def test_show_bad_objective_exits_2(amlc, runs):
    _, a, _ = runs
    result = amlc("report", "show", str(a), "--json", "--slo", "p99<=200")
    result.assert_error(2, "--slo", "'p99<=200'", "give a unit")


def test_show_missing_report_exits_2(amlc, tmp_path):
    result = amlc("report", "show", str(tmp_path / "nope"))
    result.assert_error(2, "summary.json not found")
    result = amlc("report", "show", "--root", str(tmp_path / "empty"))
    result.assert_error(2, "no benchmark report yet")


def test_compare_side_by_side(amlc, runs):
    _, a, b = runs
    result = amlc("report", "compare", str(a), str(b))
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert a.name in out and b.name in out
    assert "latency, send -> reply (ms)" in out
    assert "corrected latency, intended start -> reply (ms)" in out
    assert "different load models" in out
    data = amlc("report", "compare", str(a), str(b), "--json").json()
    p50 = next(r for r in data["sections"][1]["rows"] if r["metric"] == "p50")
    assert p50["verdict"] == "worse" and p50["change_pct"] > 10
    assert f"+{p50['change_pct']:.1f} %" in out


def test_list(amlc, runs):
    root, a, b = runs
    result = amlc("report", "list", str(root))
    assert result.returncode == 0, result.stderr
    assert a.name in result.stdout and b.name in result.stdout
    assert result.stdout.index(a.name) < result.stdout.index(b.name)
    listed = amlc("report", "list", str(root), "--json").json()
    assert [Path(r["report_dir"]).name for r in listed] == [a.name, b.name]
    assert listed[1]["mode"] == "open"
    empty = amlc("report", "list", str(root / "none"))
    assert empty.returncode == 0 and "no reports" in empty.stdout


def test_report_commands_never_import_locust(runs):
    """The report path must work without gevent's monkey-patching."""
    _, a, b = runs
    script = textwrap.dedent(f"""
        import sys, typer
        from aml_client.cli import report
        app = typer.Typer()
        report.register(app)
        app.callback()(lambda: None)
        for args in (["report", "show", {str(a)!r}], ["report", "compare", {str(a)!r}, {str(b)!r}],
                     ["report", "list", {str(a.parent)!r}]):
            try:
                app(args, standalone_mode=False)
            except SystemExit:
                pass
        from aml_client.bench.hdr import LatencyRecorder
        from aml_client.bench.report.directory import write_report
        from aml_client.bench.result import BenchResult
        write_report(BenchResult(config={{}}, started_at=0.0, ended_at=1.0,
                                 latency=LatencyRecorder()), {str(a.parent)!r})
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("locust", "gevent")))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=60, env={"PYTHONPATH": str(REPO), "COLUMNS": "120"})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


@pytest.mark.slow  # tens of seconds on a busy 2-core machine
def test_compare_gates_fail_on_a_significant_regression(amlc, tmp_path):
    """Three runs per side (A's, then --vs and B's), p99 +40 %: exit 5, one JUnit case per
    gate; the same two sides as groups give the same verdict."""
    root = tmp_path / "reports"
    a = [report.write_report(synthetic_result(base_us=20_000, seed=s), root) for s in (1, 2, 3)]
    b = [report.write_report(synthetic_result(base_us=28_000, seed=s), root) for s in (4, 5, 6)]
    junit = tmp_path / "compare.xml"
    result = amlc("report", "compare", *map(str, a), "--vs", *map(str, b),
                  "--fail-on", "p99>+10%", "--fail-on", "throughput<-5%", "--junit", str(junit))
    assert result.returncode == 5, result.stderr
    assert "p99 changed +" in result.stderr and "significant regression" in result.stderr
    assert "throughput changed" in result.stdout and "no significant difference" in (
        result.stdout)
    assert "95 % CI" in result.stdout
    assert "hierarchical bootstrap" in result.stdout and "3 runs (A) vs 3 (B)" in result.stdout
    assert all(run.name in result.stdout for run in (*a, *b))
    xml = ET.parse(junit).getroot()
    cases = {c.get("name"): c for c in xml.iter("testcase")}
    assert set(cases) == {"p99>+10%", "throughput<-5%"}
    assert cases["p99>+10%"].find("failure") is not None
    assert cases["throughput<-5%"].find("failure") is None
    group_a = report.write_group(root, a, started_at=1.0, endpoint="local")
    group_b = report.write_group(root, b, started_at=2.0, endpoint="local")
    grouped = amlc("report", "compare", str(group_a), str(group_b), "--fail-on", "p99>+10%",
                   "--json")
    assert grouped.returncode == 5
    data = grouped.json()
    assert data["a"]["report_id"] == group_a.name and data["a"]["runs"] == 3
    assert data["b"]["report_ids"] == [run.name for run in b]
    (gate,) = data["gates"]
    assert gate["failed"] and gate["verdict"] == "significant regression"
    # A tolerance wider than the change passes; a side against itself is no change.
    wide = amlc("report", "compare", str(group_a), str(group_b), "--fail-on", "p99>+90%")
    assert wide.returncode == 0, wide.stderr
    assert "within the tolerance" in wide.stdout
    same = amlc("report", "compare", str(group_a), str(group_a), "--fail-on", "p99>+1%", "--json")
    assert same.returncode == 0
    (gate,) = same.json()["gates"]
    assert gate["verdict"] == "no significant difference" and gate["failed"] is False


def test_compare_one_run_per_side_says_the_noise_between_runs_is_unknown(amlc, tmp_path):
    """`compare A B` still works; the +40 % of one run against another is not called
    significant from within-run noise, unless --run-noise 0% asks for exactly that."""
    root = tmp_path / "reports"
    a = report.write_report(synthetic_result(base_us=20_000), root)
    b = report.write_report(synthetic_result(base_us=28_000, seed=2), root)
    result = amlc("report", "compare", str(a), str(b), "--fail-on", "p99>+10%")
    assert result.returncode == 0, result.stderr
    assert "unknown with one run per side" in result.stdout
    assert "1 run (A) vs 1 (B)" in result.stdout
    assert "no significant difference" in result.stdout
    within = amlc("report", "compare", str(a), str(b), "--fail-on", "p99>+10%",
                  "--run-noise", "0%")
    assert within.returncode == 5, within.stdout
    assert "significant regression" in within.stderr


@pytest.mark.parametrize("args, needle", [
    (["A"], "give two runs"),
    (["A", "B", "C"], "give two runs"),
    (["A", "--vs"], "then --vs and B's runs"),
    (["--vs", "B"], "then --vs and B's runs"),
    (["A", "--vs", "B", "--vs", "C"], "then --vs and B's runs"),
    (["A", "B", "--bogus"], "no such option: --bogus"),
    (["A", "B", "--run-noise", "8"], "--run-noise '8'"),
    (["A", "B", "--run-noise", "-3%"], "--run-noise"),
])
def test_compare_bad_sides_exit_2(amlc, runs, args, needle):
    _, a, b = runs
    paths = {"A": str(a), "B": str(b), "C": str(a)}
    result = amlc("report", "compare", *(paths.get(x, x) for x in args))
    result.assert_error(2, needle)


def test_compare_noise_is_no_significant_difference(tmp_path):
    """Two runs of the same distribution (different seeds): the interval contains zero."""
    from aml_client.bench.report.compare import compare, parse_gate

    root = tmp_path / "reports"
    a = report.load_summary(report.write_report(synthetic_result(seed=11), root))
    b = report.load_summary(report.write_report(synthetic_result(seed=12), root))
    result = compare(a, b, [parse_gate("p99>+1%"), parse_gate("p50>+1%")])
    for gate in result.gates:
        assert gate.ci_low_pct is not None and gate.ci_high_pct is not None
        assert gate.ci_low_pct <= 0 <= gate.ci_high_pct, gate
        assert gate.verdict == "no significant difference" and not gate.failed


@pytest.mark.parametrize("text", ["p99>10", "p97>+1%", "p99>-5%", "throughput<+5%", ""])
def test_bad_gates_exit_2(amlc, runs, text):
    _, a, b = runs
    result = amlc("report", "compare", str(a), str(b), "--fail-on", text)
    result.assert_error(2, "--fail-on")


def test_objectives_fail_on_an_invalid_run_unless_allowed(amlc, tmp_path):
    result = synthetic_result(open_model=True)
    result.load.late_sends = 500
    directory = report.write_report(result, tmp_path / "reports")
    shown = amlc("report", "show", str(directory))
    assert "INVALID: 500 of 2000 requests" in shown.stdout + shown.stderr
    strict = amlc("report", "show", str(directory), "--slo", "error_rate<=1%")
    assert strict.returncode == 5
    assert "the run is INVALID" in strict.stderr
    allowed = amlc("report", "show", str(directory), "--slo", "error_rate<=1%",
                   "--allow-invalid")
    assert allowed.returncode == 0, allowed.stderr
    listed = amlc("report", "list", str(tmp_path / "reports"), "--json").json()
    assert listed[0]["valid"] is False
