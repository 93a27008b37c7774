"""Service-level objectives: parsing, units, evaluation against a summary, messages."""

from __future__ import annotations

import pytest

from aml_client.bench.report.slo import (
    Objective,
    evaluate,
    latency_bound_ms,
    parse_slo,
    parse_slos,
    with_implied,
)
from aml_client.bench.report.summary import BenchSummary, Failures, LatencyBlock


@pytest.mark.parametrize(
    ("text", "metric", "op", "threshold"),
    [
        ("p99<=200ms", "p99", "<=", 200.0),
        ("p50<50ms", "p50", "<", 50.0),
        ("max<=1s", "max", "<=", 1000.0),
        ("p99.9 <= 1500 us", "p99.9", "<=", 1.5),
        ("p99.99<2.5s", "p99.99", "<", 2500.0),
        ("mean<=30µs", "mean", "<=", 0.03),
        ("P95 ≤ 80ms", "p95", "<=", 80.0),
        ("p66<=25ms", "p66", "<=", 25.0),
        ("p100<=2s", "max", "<=", 2000.0),
        ("error_rate<=1%", "error_rate", "<=", 0.01),
        ("errors < 0.5 %", "error_rate", "<", 0.005),
        ("error_rate<=0.02", "error_rate", "<=", 0.02),
        ("throughput>=100/s", "throughput", ">=", 100.0),
        ("rps>=100", "throughput", ">=", 100.0),
        ("qps > 20 req/s", "throughput", ">", 20.0),
        ("throughput ≥ 7.5 rps", "throughput", ">=", 7.5),
    ],
)
def test_parse(text, metric, op, threshold):
    objective = parse_slo(text)
    assert (objective.metric, objective.op) == (metric, op)
    assert objective.threshold == pytest.approx(threshold)
    assert objective.text == text.strip()


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("", "empty objective"),
        ("p99", "expected METRIC OP VALUE"),
        ("p99==200ms", "expected METRIC OP VALUE"),
        ("p99<=200", "give a unit"),
        ("p99<=200h", "unknown latency unit 'h'"),
        ("p99<=fast", "not a number"),
        ("p97<=10ms", "not p97"),
        ("p0.5<=10ms", "not p0.5"),
        ("latency<=10ms", "unknown metric 'latency'"),
        ("error_rate<=5", "did you mean 5%"),
        ("error_rate<=150%", "cannot exceed 100 %"),
        ("error_rate<=1ms", "error rate takes %"),
        ("throughput>=10ms", "requests per second"),
    ],
)
def test_bad_expressions_say_what_is_wrong(text, needle):
    with pytest.raises(ValueError) as info:
        parse_slo(text)
    assert needle in str(info.value)
    if text:
        assert repr(text) in str(info.value)  # the message quotes the objective


def _summary(corrected: bool = False) -> BenchSummary:
    latency = LatencyBlock(kind="latency", samples=1000, min_ms=10.0, mean_ms=40.0,
                           max_ms=512.345,
                           percentiles_ms={"p50": 42.5, "p99": 243.1, "p99.9": 300.0},
                           served_within_ms={"66": 50.0, "100": 512.345})
    common = dict(endpoint="x", mode="closed", started_at="", ended_at="",
                  started_at_epoch_s=0.0, duration_s=10.0, requests=1000, successes=996,
                  failures=Failures(total=4), error_rate=0.004, throughput_rps=150.0)
    if corrected:
        fixed = latency.model_copy(update={
            "kind": "corrected", "percentiles_ms": {**latency.percentiles_ms, "p99": 1900.0}})
        return BenchSummary(**common, judged_on="corrected",
                            latency=latency.model_copy(update={"kind": "uncorrected"}),
                            corrected=fixed)
    return BenchSummary(**common, judged_on="latency", latency=latency)


def test_evaluate_and_messages():
    outcomes = evaluate(_summary(), parse_slos([
        "p99<=200ms", "p50<50ms", "max<=1s", "error_rate<=1%", "throughput>=200/s", "p66<=50ms",
        "p99<243.1ms",
    ]))
    assert [o.passed for o in outcomes] == [False, True, True, True, False, True, False]
    assert outcomes[0].message == "p99 = 243.1 ms, objective <= 200 ms: MISSED"
    assert outcomes[1].message == "p50 = 42.5 ms, objective < 50 ms: met"
    assert outcomes[2].message == "max = 512.3 ms, objective <= 1 s: met"
    assert outcomes[3].message == "error_rate = 0.4 %, objective <= 1 %: met"
    assert outcomes[4].message == "throughput = 150.0 req/s, objective >= 200 req/s: MISSED"
    assert outcomes[0].actual == 243.1


def test_open_model_is_judged_on_the_corrected_latency():
    (outcome,) = evaluate(_summary(corrected=True), [parse_slo("p99<=1s")])
    assert not outcome.passed
    assert outcome.actual == 1900.0
    assert outcome.message == "p99 (corrected) = 1.9 s, objective <= 1 s: MISSED"


def test_nothing_measured_is_a_miss():
    empty = _summary().model_copy(update={
        "latency": LatencyBlock(kind="latency"), "error_rate": None, "throughput_rps": None})
    outcomes = evaluate(empty, parse_slos(["p99<=1s", "error_rate<=1%", "rps>=1"]))
    assert not any(o.passed for o in outcomes)
    assert all(o.actual is None for o in outcomes)
    assert "not measured" in outcomes[0].message


def test_objective_is_a_value():
    assert parse_slo("p99<=200ms") == parse_slo("p99<=200ms")
    assert isinstance(parse_slo("rps>=1"), Objective)
    assert str(parse_slo("p99 <= 0.2 s")) == "p99 <= 0.2 s"


def test_latency_bound_is_the_strictest_upper_bound():
    assert latency_bound_ms(parse_slos(["p99<=200ms", "p50<0.1s", "rps>=3"])) == 100.0
    assert latency_bound_ms(parse_slos(["error_rate<=1%"])) is None


def test_failures_are_never_a_pass_an_error_objective_is_implied():
    objectives = with_implied(parse_slos(["p50<=50ms"]))
    assert [str(o) for o in objectives] == ["p50 <= 50 ms", "error_rate <= 1 % (implied)"]
    assert [o.label for o in objectives] == ["p50<=50ms", "error_rate<=1% (implied)"]
    # 16 % of the requests refused (429): the latency objective holds, the run does not.
    refused = _summary().model_copy(update={"error_rate": 0.16, "successes": 840,
                                            "failures": Failures(total=160)})
    outcomes = evaluate(refused, objectives)
    assert [o.passed for o in outcomes] == [True, False]
    assert outcomes[1].message == "error_rate = 16 %, objective <= 1 % (implied): MISSED"
    # The user's own error objective replaces it; no objective at all judges nothing.
    given = with_implied(parse_slos(["p50<=50ms", "errors<=20%"]))
    assert [o.implied for o in given] == [False, False]
    assert evaluate(refused, given)[1].passed
    assert with_implied([]) == []
