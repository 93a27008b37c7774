"""aml_client/bench/metrics.py: the live numbers of a recording and the metrics built from them
(counters that never go down, interval latency, objectives judged on the run so far), rendered
in the Prometheus text format by the exporter's collector."""

from __future__ import annotations

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from aml_client.bench.metrics import METRICS, LiveMetrics, live_numbers, names
from aml_client.bench.metrics_export import _Collector, otlp_metrics_url
from aml_client.bench.recording import Recording
from aml_client.bench.report import slo

T0 = 1_700_000_000.0  # an epoch second on a window boundary


def _recording() -> Recording:
    rec = Recording(interval_s=1.0)
    for i in range(100):  # window T0: 1..100 ms
        rec.record((i + 1) * 1000, T0 + 0.5)
    for _ in range(10):  # window T0+1: 5 ms each, two of them failing
        rec.record(5000, T0 + 1.5)
    rec.record(7000, T0 + 1.6, failure="http_503")
    rec.record(7000, T0 + 1.7, failure="timeout")
    return rec


def _prometheus(state: LiveMetrics) -> dict[str, Any]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(state))
    text = generate_latest(registry).decode()
    return {family.name: family for family in text_string_to_metric_families(text)}


def test_live_numbers_count_each_outcome_and_show_the_latest_closed_interval() -> None:
    numbers = live_numbers(_recording(), in_flight=3, sent=115, now=T0 + 2.2)
    assert sorted(numbers["counts"]) == [["http_503", "", 1], ["ok", "", 110],
                                         ["timeout", "", 1]]
    assert numbers["requests"] == 112 and numbers["failures"] == 2
    # T0+1 closed at T0+2: its p50 is 5 ms (to HDR's 3 significant digits), its max 7 ms.
    assert numbers["interval"]["0.5"] == pytest.approx(0.005, rel=1e-3)
    assert numbers["interval"]["1"] == 0.007
    # A master waits for its workers' reports: with 1.5 s to settle, T0 is the latest.
    settled = live_numbers(_recording(), in_flight=0, sent=0, settle_s=1.5, now=T0 + 2.7)
    assert settled["interval"]["1"] == 0.1
    assert numbers["run"]["samples"] == 112 and numbers["run"]["max_ms"] == 100.0


def test_blue_green_lanes_are_the_deployment_label() -> None:
    rec = Recording()
    rec.record(1000, T0, deployment="blue")
    rec.record(1000, T0, failure="http_424", deployment="green")
    numbers = live_numbers(rec, in_flight=0, sent=2, now=T0 + 5)
    assert sorted(numbers["counts"]) == [["http_424", "green", 1], ["ok", "blue", 1],
                                         ["ok", "green", 0]]


def test_counters_never_go_down_and_rates_come_from_successive_updates() -> None:
    state = LiveMetrics(deployment="blue")
    first = live_numbers(_recording(), in_flight=2, sent=112, now=T0 + 2)
    state.observe({"type": "progress", "metrics": first})
    later = dict(first, t=T0 + 4, sent=132, requests=122,
                 counts=[["ok", "", 120], ["http_503", "", 1], ["timeout", "", 1]])
    state.observe({"type": "progress", "metrics": later})
    values = {(s.name, tuple(sorted(s.labels.items()))): s.value for s in state.samples()}
    assert values[("amlc_requests", (("deployment", "blue"), ("outcome", "ok")))] == 120
    assert values[("amlc_offered_rate", ())] == 10.0  # 20 sent in 2 s
    assert values[("amlc_achieved_rate", ())] == 5.0
    # A new recording (the next capacity step) starts from zero: the counters add up.
    fresh = dict(later, t=T0 + 5, requests=3, counts=[["ok", "", 3]])
    state.observe({"type": "progress", "metrics": fresh})
    assert state.total_requests() == 125
    assert not state.finished.is_set()
    state.observe({"type": "result", "metrics": dict(fresh, t=T0 + 6, final=True)})
    assert state.finished.is_set()
    # Final values are kept: nothing changes them any more.
    state.observe({"type": "progress", "metrics": first})
    assert state.total_requests() == 125


def test_objectives_are_judged_on_the_run_so_far() -> None:
    state = LiveMetrics(objectives=slo.parse_slos(["p99<=50ms", "error_rate<=5%", "max<=1s"]))
    state.observe({"type": "progress",
                   "metrics": live_numbers(_recording(), in_flight=0, sent=0, now=T0 + 3)})
    met = {s.labels["objective"]: s.value for s in state.samples() if s.name == "amlc_slo_met"}
    assert met == {"p99<=50ms": 0.0, "error_rate<=5%": 1.0, "max<=1s": 1.0}


def test_the_prometheus_text_has_every_metric_with_its_type() -> None:
    state = LiveMetrics(scheduled_rate=50.0)
    assert set(_prometheus(state)) == {"amlc_run_finished"}  # nothing measured yet
    state.observe({"type": "progress",
                   "metrics": live_numbers(_recording(), in_flight=4, sent=116, now=T0 + 3)})
    families = _prometheus(state)
    expected = {m.name for m in METRICS} - {"amlc_slo_met"}  # no objective given
    assert set(families) == expected
    assert names(state.samples()) == expected
    requests = families["amlc_requests"]
    assert requests.type == "counter"
    assert {(s.name, s.labels["outcome"], s.value) for s in requests.samples
            if s.name.endswith("_total")} == {("amlc_requests_total", "ok", 110.0),
                                              ("amlc_requests_total", "http_503", 1.0),
                                              ("amlc_requests_total", "timeout", 1.0)}
    quantiles = {s.labels["quantile"]: s.value
                 for s in families["amlc_interval_latency_seconds"].samples}
    assert quantiles == pytest.approx({"0.5": 0.005, "0.9": 0.007, "0.99": 0.007, "1": 0.007},
                                      rel=1e-3)
    assert families["amlc_requests_in_flight"].samples[0].value == 4
    assert not state.delivered.is_set()
    state.observe({"type": "result", "metrics": live_numbers(
        _recording(), in_flight=0, sent=116, final=True, now=T0 + 4)})
    final = _prometheus(state)
    assert final["amlc_run_finished"].samples[0].value == 1
    assert final["amlc_requests_in_flight"].samples[0].value == 0
    assert state.delivered.is_set()  # a scrape has read the final values


def test_an_otlp_collector_address_gets_the_metrics_path() -> None:
    assert otlp_metrics_url("http://127.0.0.1:4318") == "http://127.0.0.1:4318/v1/metrics"
    assert otlp_metrics_url("https://c.example/") == "https://c.example/v1/metrics"
    assert otlp_metrics_url("https://c.example/otlp/v1/metrics") == \
        "https://c.example/otlp/v1/metrics"
