"""``aml_client.bench.report.compare``: runs per side, the hierarchical bootstrap and the prior on
the noise between runs; groups of runs read back (``aml_client.bench.report.directory.load_runs``).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.bench_results import synthetic_result

from aml_client.bench.report import directory as report
from aml_client.bench.report.compare import RUN_NOISE, compare, parse_gate, row_map
from aml_client.bench.report.summary import BenchSummary
from aml_client.errors import InputError

GATES = [parse_gate("p99>+10%"), parse_gate("throughput<-10%")]


def _runs(root: Path, bases: list[int], seed: int) -> list[BenchSummary]:
    """One stored run per base latency (µs), each of its own random draw."""
    return [report.load_summary(report.write_report(
        synthetic_result(base_us=base, seed=seed + i), root)) for i, base in enumerate(bases)]


def _gate(result, metric):
    return next(g for g in result.gates if g.metric == metric)


def test_one_run_per_side_does_not_call_a_change_the_prior_cannot_exclude(tmp_path):
    """+40 % in p99 between two single runs: within-run noise alone calls it significant (the
    old answer); with the noise between runs unknown, the interval is widened by the prior
    and the gate does not fail."""
    (a,) = _runs(tmp_path, [20_000], seed=1)
    (b,) = _runs(tmp_path, [28_000], seed=7)
    within = compare(a, b, GATES, run_noise_pct=0)
    assert _gate(within, "p99").failed
    assert "only what the runs show" in within.method
    judged = compare(a, b, GATES)
    p99 = _gate(judged, "p99")
    assert p99.change_pct == pytest.approx(within.gates[0].change_pct)
    assert p99.ci_low_pct < 0 < p99.ci_high_pct and not p99.failed
    assert not judged.failed
    assert "1 run (A) vs 1 (B)" in judged.method
    assert "unknown with one run per side" in judged.method
    assert "--repeat 3" in judged.method
    # The interval is at least as wide as the prior alone says (two runs' spread, 95 %).
    width = p99.ci_high_pct - p99.ci_low_pct
    assert width > 2 * 1.96 * RUN_NOISE["p99"] * 2**0.5 * 100
    assert judged.run_noise_pct["p99"] == pytest.approx(RUN_NOISE["p99"] * 100, abs=0.01)


def test_three_runs_per_side_catch_a_regression(tmp_path):
    a = _runs(tmp_path, [20_000] * 3, seed=1)
    b = _runs(tmp_path, [28_000] * 3, seed=11)
    result = compare(a, b, GATES)
    p99 = _gate(result, "p99")
    assert p99.failed and p99.verdict == "significant regression"
    assert 0 < p99.ci_low_pct <= p99.change_pct <= p99.ci_high_pct
    assert not _gate(result, "throughput").failed
    assert "3 runs (A) vs 3 (B)" in result.method
    assert (result.a.runs, result.b.runs) == (3, 3)
    assert result.a.report_ids == [s.report_id for s in a]
    # A's figure is the mean over its runs.
    rows = row_map(result, "latency")
    mean_p99 = sum(s.latency.value_ms("p99") or 0 for s in a) / 3
    assert rows["p99"].a == pytest.approx(mean_p99)
    assert any("mean of each figure over their runs" in note for note in result.notes)


def test_identical_groups_are_no_significant_difference(tmp_path):
    a = _runs(tmp_path, [20_000] * 3, seed=1)
    b = _runs(tmp_path, [20_000] * 3, seed=21)
    result = compare(a, b, GATES)
    for gate in result.gates:
        assert gate.ci_low_pct <= 0 <= gate.ci_high_pct, gate
        assert not gate.failed


def test_spread_between_runs_widens_the_interval(tmp_path):
    """Runs that disagree with each other (±15 % from run to run) give a wider interval than
    runs that agree, for the same mean: the resampling of runs and the measured spread both
    see it."""
    steady_a = _runs(tmp_path, [20_000] * 3, seed=1)
    steady_b = _runs(tmp_path, [20_000] * 3, seed=31)
    shaky_a = _runs(tmp_path, [17_000, 20_000, 23_000], seed=41)
    shaky_b = _runs(tmp_path, [23_000, 17_000, 20_000], seed=51)

    def width(a, b):
        gate = _gate(compare(a, b, GATES), "p99")
        return gate.ci_high_pct - gate.ci_low_pct

    assert width(shaky_a, shaky_b) > 1.5 * width(steady_a, steady_b)
    spread = compare(shaky_a, shaky_b, GATES).run_noise_pct["p50"]
    assert spread > RUN_NOISE["p50"] * 100


def test_a_side_of_one_run_against_three_and_no_intervals(tmp_path):
    (a,) = _runs(tmp_path, [20_000], seed=1)
    b = _runs(tmp_path, [20_000] * 3, seed=61)
    assert "1 run (A) vs 3 (B)" in compare(a, b, GATES).method
    short = report.load_summary(report.write_report(synthetic_result(seconds=3), tmp_path))
    result = compare([a, short], b, GATES)
    assert all(g.ci_low_pct is None and not g.failed for g in result.gates)
    assert any("5+ measurement intervals" in note for note in result.notes)
    with pytest.raises(ValueError, match="at least one run"):
        compare([], b)


def test_groups_read_back_in_order(tmp_path):
    runs = [report.write_report(synthetic_result(seed=i), tmp_path) for i in range(3)]
    group = report.write_group(tmp_path, runs, started_at=runs[0].stat().st_mtime,
                               endpoint="local")
    assert group.name.endswith("-local-group")
    label, loaded = report.load_runs(group)
    assert label == group.name
    assert [s.report_id for s in loaded] == [r.name for r in runs]
    assert report.load_runs(group / report.GROUP_FILE)[1][0].report_id == runs[0].name
    single_label, single = report.load_runs(runs[1])
    assert single_label is None and [s.report_id for s in single] == [runs[1].name]
    # A group is not a run: `report list` shows its runs only.
    assert [s.report_id for s in report.list_reports(tmp_path)] == [r.name for r in runs]


@pytest.mark.parametrize("document, needle", [
    ({"runs": ["../elsewhere"]}, "not the name of a report directory"),
    ({"runs": ["/etc"]}, "not the name of a report directory"),
    ({"runs": []}, "'runs' must list"),
    ({"runs": "abc"}, "'runs' must list"),
    ([1, 2], "'runs' must list"),
    ({"runs": ["missing"]}, "summary.json not found"),
])
def test_a_bad_group_is_one_clear_error(tmp_path, document, needle):
    group = tmp_path / "g"
    group.mkdir()
    (group / report.GROUP_FILE).write_text(json.dumps(document))
    with pytest.raises(InputError, match=needle.replace(".", r"\.")):
        report.load_runs(group)
    (group / report.GROUP_FILE).write_text("{nope")
    with pytest.raises(InputError, match="not valid JSON"):
        report.load_runs(group)
