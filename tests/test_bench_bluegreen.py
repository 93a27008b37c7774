"""Blue/green in one run, without a server: the interleaving, the agreement of predictions,
per-deployment recordings merged across processes, Azure's failure reasons, the verdicts and
the summary, console and report around them."""

from __future__ import annotations

import json
import random
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from aml_client.bench import bluegreen
from aml_client.bench.bluegreen import (
    PredictionMatcher,
    assign,
    parse_deployments,
    same_prediction,
)
from aml_client.bench.checks import failure_reason
from aml_client.bench.hdr import LatencyRecorder
from aml_client.bench.recording import Recording
from aml_client.bench.report.summarize import summarize
from aml_client.bench.report.summary import SCHEMA_VERSION, parse_summary
from aml_client.bench.result import (
    MAX_REASONS,
    OTHER_REASONS,
    AgreementCounts,
    BenchResult,
    Sample,
)

START = 1_800_000_000.0
LANES = ("blue", "green")


# ---------------------------------------------------------------------------- interleaving


def test_each_group_sends_one_body_to_every_deployment_in_rotated_order() -> None:
    slots = [assign(i, LANES) for i in range(8)]
    assert [s.deployment for s in slots] == [
        "blue", "green", "green", "blue", "blue", "green", "green", "blue",
    ]  # fmt: skip
    assert [s.body for s in slots] == [0, 0, 1, 1, 2, 2, 3, 3]
    # Three deployments: each in each position equally often over three groups.
    three = [assign(i, ("a", "b", "c")).deployment for i in range(9)]
    assert three == ["a", "b", "c", "b", "c", "a", "c", "a", "b"]
    for position in range(3):
        assert sorted(three[position::3]) == ["a", "b", "c"]


@pytest.mark.parametrize("workers", [1, 2, 3])
def test_every_deployment_gets_the_same_bodies_over_load_processes(workers: int) -> None:
    sent: dict[str, Counter[int]] = {name: Counter() for name in LANES}
    for share in range(workers):
        for local in range(40):
            slot = assign(local, LANES, share_index=share, share_count=workers)
            sent[slot.deployment][slot.body] += 1
    assert sent["blue"] == sent["green"]
    assert sorted(sent["blue"]) == list(range(20 * workers))  # each body once per deployment


def test_deployment_lists_are_checked() -> None:
    assert parse_deployments(" blue , green ") == ["blue", "green"]
    for text, says in (("blue", "at least two"), ("blue,blue", "named twice"),
                       ("blue,gr een", "not a deployment name"),
                       ("blue,green\r\nX-Evil: 1", "not a deployment name"),
                       (",".join(f"d{i}" for i in range(9)), "at most 8")):
        with pytest.raises(ValueError, match=says):
            parse_deployments(text)


# ---------------------------------------------------------------------------- agreement


def test_predictions_agree_within_float32_noise_and_not_beyond() -> None:
    assert same_prediction("yes", "yes") and not same_prediction("yes", "no")
    assert same_prediction(0.123456789, 0.12345679)  # float32 vs float64
    assert same_prediction(1e-9, 3e-9)  # both about zero
    assert not same_prediction(0.12, 0.13)
    assert same_prediction({"no": 0.9, "yes": 0.1}, {"no": 0.90000004, "yes": 0.09999998})
    assert not same_prediction({"no": 0.9}, {"yes": 0.9})
    assert same_prediction([1, 2.0], [1.0, 2]) and not same_prediction([1, 2], [1, 2, 3])
    assert not same_prediction(True, 1) and same_prediction(False, False)
    assert same_prediction(float("nan"), float("nan"))
    deep: Any = 1
    for _ in range(2000):
        deep = [deep]
    same_prediction(deep, deep)  # no RecursionError: compared as a whole past a depth


def test_matcher_pairs_answers_in_any_order_and_counts_rows() -> None:
    counts = AgreementCounts()
    matcher = PredictionMatcher(LANES)
    matcher.add(0, "green", 0, ["no", "yes"], counts)
    matcher.add(1, "blue", 1, ["no", "no"], counts)
    assert matcher.pending == 2 and counts.compared_requests == 0
    matcher.add(0, "blue", 0, ["no", "yes"], counts)
    matcher.add(1, "green", 1, ["no", "yes"], counts)  # one row differs
    matcher.add(2, "blue", 2, ["no"], counts)
    matcher.add(2, "green", 2, None, counts)  # green failed: not compared
    matcher.add(3, "green", 3, ["no"], counts)  # the run ends before blue answers
    matcher.flush(counts)
    assert (counts.compared_requests, counts.compared_rows, counts.agreeing_rows) == (2, 4, 3)
    assert counts.disagreeing_requests == 1 and counts.not_compared == 2
    assert counts.examples == ['body 2, row 2: blue "no", green "yes"']
    assert matcher.pending == 0 and matcher.held_bytes == 0


def test_matcher_memory_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(bluegreen, "MAX_PENDING_GROUPS", 3)
    monkeypatch.setattr(bluegreen, "MAX_HELD_BYTES", 100)
    counts = AgreementCounts()
    matcher = PredictionMatcher(LANES)
    for group in range(5):  # only blue answers: groups pile up
        matcher.add(group, "blue", group, ["no"], counts, size=10)
    assert matcher.pending == 3 and counts.not_compared == 2  # the two oldest given up
    matcher.add(0, "green", 0, ["no"], counts, size=10)  # late answer of a dropped group
    assert counts.not_compared == 2 and matcher.pending == 3  # ignored, not counted again
    matcher.add(2, "green", 2, ["no"], counts, size=10)
    assert counts.compared_requests == 1
    matcher.add(9, "blue", 9, ["x" * 200], counts, size=500)  # over the byte bound
    matcher.add(9, "green", 9, ["x" * 200], counts, size=500)
    assert counts.compared_requests == 1 and counts.not_compared == 3


# ---------------------------------------------------------------------------- recording


def _record(rec: Recording, rng: random.Random, n: int, deployment: str, base_us: int) -> None:
    for i in range(n):
        latency = int(rng.gauss(base_us, base_us / 10))
        failure = "http_424" if i % 25 == 0 else None
        sample = Sample(ttfb_us=latency, server_us=latency // 2, deployment=deployment)
        rec.record(latency, START + i * 0.01, failure, None, sample,
                   "model answered 500 Internal Server Error" if failure else None, deployment)


def test_per_deployment_recordings_merge_exactly_across_processes() -> None:
    rng_a, rng_b = random.Random(1), random.Random(1)
    single = Recording()
    workers = [Recording(), Recording()]
    for index, worker in enumerate(workers):
        for name, base in (("blue", 20_000), ("green", 10_000)):
            _record(single, rng_a, 200, name, base + index)
            _record(worker, rng_b, 200, name, base + index)
    master = Recording()
    for worker in workers:
        master.merge_delta(json.loads(json.dumps(worker.take_delta())))
    for name in LANES:
        a, b = single.by_deployment[name], master.by_deployment[name]
        assert (a.requests, a.failures) == (b.requests, b.failures) == (400, {"http_424": 16})
        assert a.latency.percentiles_us([50, 99]) == b.latency.percentiles_us([50, 99])
        assert a.phases["server"].count == b.phases["server"].count == 400
        assert b.failure_reasons == {"http_424": {"model answered 500 Internal Server Error": 16}}
    assert master.requests == 800 and master.failure_reasons["http_424"] == {
        "model answered 500 Internal Server Error": 32}


def test_failure_reasons_stay_a_few_per_kind() -> None:
    rec = Recording()
    for i in range(10):
        rec.record(1000, START, "http_408", reason=f"timed out after {i} ms")
    reasons = rec.failure_reasons["http_408"]
    assert len(reasons) == MAX_REASONS + 1 and reasons[OTHER_REASONS] == 10 - MAX_REASONS
    other = Recording()
    other.merge_delta(rec.encode())
    other.merge_delta(rec.encode())
    assert sum(other.failure_reasons["http_408"].values()) == 20
    assert len(other.failure_reasons["http_408"]) == MAX_REASONS + 1


# ---------------------------------------------------------------------------- Azure's reasons


def _headers(**values: str) -> Any:
    return {k.replace("_", "-"): v for k, v in values.items()}.get


def test_failure_reasons_say_what_azure_said() -> None:
    model = _headers(ms_azureml_model_error_statuscode="500",
                     ms_azureml_model_error_reason="Internal Server Error")
    assert failure_reason(424, model, b'{"message": "boom"}') == (
        "model answered 500 Internal Server Error")
    assert failure_reason(424, _headers(), b"") is None
    pending = b'{"message": "Too many pending requests for deployment narrow: at most 2 ..."}'
    assert failure_reason(429, _headers(), pending) == (
        "too many pending requests (max_concurrent_requests_per_instance)")
    assert failure_reason(429, _headers(), b'{"error": {"message": "Rate limit is exceeded"}}') \
        == "rate limit"
    assert failure_reason(429, _headers(), b"slow down please") == "slow down please"
    assert failure_reason(408, _headers(), b'{"message": "Request timed out after 300 ms."}') == (
        "Request timed out after 300 ms")
    assert failure_reason(503, _headers(), b'{"message": "busy"}') is None
    odd = failure_reason(408, _headers(), b'{"message": "\\u001b[2Jx' + b"y" * 500 + b'"}')
    assert odd is not None and "\x1b" not in odd and len(odd) <= 120


# ---------------------------------------------------------------------------- verdicts


def _lane(base_us: int, seconds: int, rng: random.Random, *, same_as: BenchResult | None = None
          ) -> BenchResult:
    from aml_client.bench.result import Interval

    latency = LatencyRecorder()
    intervals = []
    for sec in range(seconds):
        window = LatencyRecorder()
        if same_as is not None:
            window.merge(same_as.intervals[sec].latency)
            latency.merge(same_as.intervals[sec].latency)
        else:
            for _ in range(50):
                value = int(rng.gauss(base_us, base_us / 10))
                window.record(value)
                latency.record(value)
        intervals.append(Interval(START + sec, START + sec + 1, window, window.count, 0))
    return BenchResult(config={}, started_at=START, ended_at=START + seconds, latency=latency,
                       requests=latency.count, intervals=intervals,
                       deployments={})


def _blue_green_result(green_us: int | None = 10_000, seconds: int = 20) -> BenchResult:
    rng = random.Random(7)
    blue = _lane(20_000, seconds, rng)
    green = _lane(green_us or 0, seconds, rng, same_as=None if green_us else blue)
    whole = LatencyRecorder()
    whole.merge(blue.latency)
    whole.merge(green.latency)
    counts = AgreementCounts(compared_requests=998, compared_rows=1996, agreeing_rows=1995,
                             disagreeing_requests=1, not_compared=2,
                             examples=['body 7, row 2: blue "no", green "yes"'])
    return BenchResult(
        config={"mode": "closed", "users": 4, "deployments": ["blue", "green"],
                "endpoint": "local"},
        started_at=START, ended_at=START + seconds, latency=whole,
        requests=whole.count, by_deployment={"blue": blue, "green": green}, agreement=counts,
        failures={"http_424": 3}, failure_reasons={"http_424": {"model answered 500 X": 3}},
    )


def test_a_clear_difference_is_significant_and_signed() -> None:
    summary = summarize(_blue_green_result(10_000))
    section = summary.blue_green
    assert section is not None and section.baseline == "blue"
    assert [r.name for r in section.runs] == ["blue", "green"]
    by_metric = {v.metric: v for v in section.verdicts}
    p50 = by_metric["p50"]
    assert p50.deployment == "green" and p50.significant is True
    assert p50.change_pct is not None and -55 < p50.change_pct < -45
    assert p50.ci_low_pct is not None and p50.ci_high_pct is not None
    assert p50.ci_low_pct < p50.change_pct < p50.ci_high_pct < 0
    assert p50.text.startswith("green p50 -") and p50.text.endswith("(significant)")
    assert "± " in p50.text and "paired over 20 windows" in section.method
    agreement = section.agreement
    assert agreement is not None and agreement.rate == round(1995 / 1996, 6)


def test_the_same_distribution_is_no_significant_difference() -> None:
    summary = summarize(_blue_green_result(None))
    section = summary.blue_green
    assert section is not None
    for verdict in section.verdicts:
        assert verdict.significant is False, verdict
        assert verdict.text.endswith("(no significant difference)")


def test_too_few_intervals_are_not_judged() -> None:
    summary = summarize(_blue_green_result(10_000, seconds=3))
    verdicts = summary.blue_green.verdicts if summary.blue_green else []
    assert verdicts and all(v.significant is None and "not judged" in v.text for v in verdicts)


def test_summary_round_trips_and_a_version_2_file_still_reads(tmp_path: Path) -> None:
    from aml_client.bench.report.directory import load_summary, write_report

    result = _blue_green_result()
    directory = write_report(result, tmp_path)
    stored = load_summary(directory)
    assert stored.blue_green is not None
    assert stored.blue_green.verdicts == summarize(result).blue_green.verdicts  # type: ignore[union-attr]
    assert stored.failures.reasons == {"http_424": {"model answered 500 X": 3}}
    names = sorted(p.name for p in directory.iterdir())
    assert "deployment-blue.hlog" in names and "deployment-green.hgrm" in names
    old = json.loads((directory / "summary.json").read_text())
    old["schema_version"] = 2
    for key in ("blue_green",):
        old.pop(key)
    old["failures"].pop("reasons")
    migrated = parse_summary(old)
    assert migrated.schema_version == SCHEMA_VERSION and migrated.blue_green is None
    assert migrated.failures.reasons == {}


def test_markdown_and_html_show_the_deployments_side_by_side(tmp_path: Path) -> None:
    from aml_client.bench.report import render

    summary = summarize(_blue_green_result())
    text = render.markdown(summary)
    assert "## Deployments side by side (baseline blue)" in text
    assert "| blue | green | green vs blue |" in text
    assert "green p50 -" in text and "prediction agreement (green vs blue): 99.95 %" in text
    assert "http_424 3 [model answered 500 X: 3]" in text
    page = render.html(summary)
    assert 'id="deployments-spectrum"' in page and 'id="deployments-over-time"' in page
    assert "body 7, row 2: blue &quot;no&quot;, green &quot;yes&quot;" in page
    header, rows = render.blue_green_table(summary)
    assert header == ["", "blue", "green", "green vs blue"]
    p50 = next(row for row in rows if row[0] == "p50 ms")
    assert p50[3].startswith("-") and p50[3].endswith("%")


def test_objectives_apply_to_each_deployment(tmp_path: Path) -> None:
    from aml_client.bench.report import slo
    from aml_client.cli.report import check_objectives

    summary = summarize(_blue_green_result())
    junit = tmp_path / "junit.xml"
    objectives = slo.parse_slos(["p50<=15ms", "error_rate<=1%"])
    assert check_objectives(summary, objectives, quiet=True, junit=junit) is False
    xml = junit.read_text()
    for name in ("blue: p50 &lt;= 15 ms", "green: p50 &lt;= 15 ms", "blue: error_rate",
                 "green: error_rate", "valid run"):
        assert name in xml, xml
    assert 'tests="5" failures="1"' in xml  # blue's p50 (about 20 ms) misses


def test_interval_values_read_off_the_counts_array_match_hdrhs_iterator(tmp_path: Path) -> None:
    from aml_client.bench.report.compare import _recorded
    from aml_client.bench.report.files import read_hlog, write_hlog
    from aml_client.bench.result import Interval

    rng = random.Random(3)
    recorder = LatencyRecorder()
    for _ in range(5000):
        recorder.record(int(rng.lognormvariate(9, 2)))
    write_hlog([Interval(START, START + 1, recorder, recorder.count, 0)], START,
               tmp_path / "x.hlog")
    [decoded] = read_hlog(tmp_path / "x.hlog")
    for histogram in (recorder.histogram, decoded.histogram):
        expected: dict[int, int] = {}
        for step in histogram.get_recorded_iterator():
            value = int(histogram.get_highest_equivalent_value(step.value_iterated_to))
            expected[value] = expected.get(value, 0) + int(step.count_added_in_this_iter_step)
        assert _recorded(histogram) == expected and sum(expected.values()) == 5000


def test_bad_deployment_options_fail_before_any_load(amlc: Any) -> None:
    env = {"AMLC_SCORING_URI": "http://127.0.0.1:9/score", "AMLC_KEY": "k" * 24}
    amlc("bench", "--deployments", "blue", env=env).assert_error(
        2, "--deployments", "at least two deployments")
    amlc("bench", "--deployments", "blue,green", "-d", "blue", env=env).assert_error(
        2, "--deployment and --deployments exclude each other")
    amlc("bench", "--deployments", "blue,blue", env=env).assert_error(2, "named twice")
