"""The capacity search's decisions (no load here: steps are made up)."""

from __future__ import annotations

import pytest

from aml_client.bench.report.capacity import (
    CapacitySearch,
    SearchSettings,
    generator_limited,
    guaranteed_miss,
    knee,
    step_seconds,
)
from aml_client.bench.report.render import capacity_answer, capacity_rows, capacity_table
from aml_client.bench.report.slo import parse_slos, with_implied
from aml_client.bench.report.summary import BenchSummary, CapacityStep, LatencyBlock


def _step(rate: float, passed: bool, *, p50: float = 20.0, valid: bool = True,
          achieved: float | None = None, throttled: float = 0.0) -> CapacityStep:
    return CapacityStep(rate_rps=rate, achieved_rps=achieved if achieved is not None else rate,
                        requests=100, failures=0, error_rate=0.0, warmup_s=1, duration_s=3,
                        p50_ms=p50, p90_ms=p50, p99_ms=p50, max_ms=p50, goodput_rps=rate,
                        passed=passed, valid=valid, throttled_fraction=throttled)


def _run(capacity: float, settings: SearchSettings) -> CapacitySearch:
    search = CapacitySearch(settings)
    while (rate := search.next_rate()) is not None:
        search.observe(_step(rate, rate <= capacity, p50=20 if rate <= capacity else 900))
    return search


def test_doubles_then_bisects_to_the_precision():
    search = _run(113.0, SearchSettings(start_rps=10, max_rps=1000, precision=0.05))
    rates = [s.rate_rps for s in search.steps]
    assert rates[:5] == [10, 20, 40, 80, 160]
    assert search.passed_rps is not None and search.failed_rps is not None
    assert search.passed_rps <= 113 < search.failed_rps
    assert (search.failed_rps - search.passed_rps) / search.passed_rps <= 0.05
    result = search.result(["p99<=1s"])
    assert result.found and result.max_rate_rps == search.passed_rps
    assert "within 5%" in result.stopped_because
    assert [s.rate_rps for s in result.steps] == sorted(rates)


def test_stops_at_max_rate():
    top = _run(1e9, SearchSettings(start_rps=10, max_rps=50))
    assert [s.rate_rps for s in top.steps] == [10, 20, 40, 50]
    assert top.result([]).max_rate_rps == 50 and "--max-rate" in top.stopped_because


@pytest.mark.parametrize("capacity", [5.0, 113.0, 0.9])
def test_a_first_step_past_capacity_halves_then_bisects(capacity):
    search = _run(capacity, SearchSettings(start_rps=1000, max_rps=5000, precision=0.05,
                                           max_halving=4000))
    rates = [s.rate_rps for s in search.steps]
    assert rates[:3] == [1000, 500, 250]
    result = search.result([])
    assert result.found and result.max_rate_rps is not None
    assert result.max_rate_rps <= capacity < 1.05 * result.max_rate_rps


def test_halving_stops_at_the_floor():
    dead = _run(0.0, SearchSettings(start_rps=10, max_rps=50, max_halving=16))
    assert [s.rate_rps for s in dead.steps] == [10, 5, 2.5, 1.25, 0.625]
    assert not dead.result([]).found
    assert dead.stopped_because == "even the lowest rate tried (0.625 req/s) missed the objectives"


def test_the_generator_limit_gives_a_lower_bound_never_found():
    search = CapacitySearch(SearchSettings(start_rps=10, max_rps=1000))
    search.observe(_step(10, True))
    search.observe(_step(20, False, valid=False))
    assert search.next_rate() == 20  # once more: a busy machine has moments
    search.observe(_step(20, True))
    assert search.next_rate() == 40
    search.observe(_step(40, False, valid=False))
    assert search.next_rate() == 40
    search.observe(_step(40, False, valid=False))
    assert search.next_rate() is None
    assert "load generator could not apply 40 req/s while the endpoint had headroom" in \
        search.stopped_because
    result = search.result([])
    assert not result.found and result.at_least_rps == 20 and result.max_rate_rps is None
    assert capacity_answer(result) == (
        "capacity ≥ 20.0 req/s (the load generator's limit: give it a free CPU core or a larger"
        " machine)"
    )


def test_a_saturated_endpoint_is_not_the_generator_limit():
    busy_cpu = {"cpu_saturated_s": 3, "cpu_samples": 4}
    # CPU saturated, the endpoint's own latency flat: the load process was the bottleneck.
    assert generator_limited(**busy_cpu, endpoint_p50_ms=21.0, baseline_p50_ms=20.0,
                             senders_exhausted=False)
    # CPU saturated, but the endpoint's latency climbed or every sender waited on it.
    assert not generator_limited(**busy_cpu, endpoint_p50_ms=95.0, baseline_p50_ms=20.0,
                                 senders_exhausted=False)
    assert not generator_limited(**busy_cpu, endpoint_p50_ms=20.0, baseline_p50_ms=20.0,
                                 senders_exhausted=True)
    # A load process starved by a busy machine uses less CPU, not more: never the limit.
    assert not generator_limited(cpu_saturated_s=0, cpu_samples=4, endpoint_p50_ms=20.0,
                                 baseline_p50_ms=20.0, senders_exhausted=False)
    assert not generator_limited(cpu_saturated_s=1, cpu_samples=20, endpoint_p50_ms=20.0,
                                 baseline_p50_ms=20.0, senders_exhausted=False)
    # ... unless its sends slipped while the endpoint answered all it got within the
    # objectives (send -> reply): then the schedule, not the endpoint, missed them.
    idle_cpu = {"cpu_saturated_s": 0, "cpu_samples": 4, "endpoint_p50_ms": 20.0,
                "baseline_p50_ms": 20.0}
    assert generator_limited(**idle_cpu, senders_exhausted=False, sends_slipped=True,
                             held_from_send=True)
    assert not generator_limited(**idle_cpu, senders_exhausted=False, sends_slipped=True,
                                 held_from_send=False)
    assert not generator_limited(**idle_cpu, senders_exhausted=True, sends_slipped=True,
                                 held_from_send=True)


def test_a_burst_after_a_stall_is_the_load_process_s_limit():
    """Sends slipped and the late ones left in a burst that queued: the send -> reply tail
    missed too, but the endpoint's own p50 stayed near that of the lightest step that passed
    (a search that found 155 of 200 req/s this way: p50 8.0 ms against 6.9, p90 422 ms)."""
    stalled = {"cpu_saturated_s": 0, "cpu_samples": 3, "baseline_p50_ms": 6.9,
               "senders_exhausted": False, "held_from_send": False}
    assert generator_limited(**stalled, endpoint_p50_ms=8.0, sends_slipped=True,
                             passed_p50_ms=6.9) == "burst"
    # Not without slipped sends, nor once the endpoint's p50 climbed past the knee (a queue
    # for most requests: the endpoint's), nor before any step passed, nor with refusals.
    assert generator_limited(**stalled, endpoint_p50_ms=8.0, sends_slipped=False,
                             passed_p50_ms=6.9) is None
    assert generator_limited(**stalled, endpoint_p50_ms=11.0, sends_slipped=True,
                             passed_p50_ms=6.9) is None
    assert generator_limited(**stalled, endpoint_p50_ms=8.0, sends_slipped=True) is None
    assert generator_limited(**stalled, endpoint_p50_ms=8.0, sends_slipped=True,
                             passed_p50_ms=6.9, errors_held=False) is None
    # Sends slipped and the objectives held on send -> reply, but the endpoint's own p50 rose
    # far past the passed step's: it was queueing (a search from 400 req/s blamed the load
    # generator for 212.5 against a capacity of 200 this way: p90 252 ms, p50 ~200 ms).
    held = {**stalled, "held_from_send": True}
    assert generator_limited(**held, endpoint_p50_ms=200.0, sends_slipped=True,
                             passed_p50_ms=18.0) is None
    assert generator_limited(**held, endpoint_p50_ms=40.0, sends_slipped=True,
                             passed_p50_ms=18.0) == "slipped"
    assert generator_limited(**held, endpoint_p50_ms=200.0, sends_slipped=True) == "slipped"
    # Most sends late: the step never applied its rate, whatever the latency and before any
    # step passed (a first step at 10 req/s against 100: 9 of 14 sends late, p90 438 ms).
    assert generator_limited(**stalled, endpoint_p50_ms=130.0, sends_slipped=True,
                             late_fraction=9 / 14) == "schedule"
    assert generator_limited(**stalled, endpoint_p50_ms=130.0, sends_slipped=True,
                             late_fraction=16 / 637) is None
    # Every sender waiting on the endpoint is the endpoint saturating, whatever else.
    assert generator_limited(**{**stalled, "senders_exhausted": True}, endpoint_p50_ms=8.0,
                             sends_slipped=True, passed_p50_ms=6.9, late_fraction=0.9) is None


def test_a_step_ends_once_its_miss_is_certain():
    objectives = with_implied(parse_slos(["p90<=200ms", "max<=1s"]))
    assert [o.metric for o in objectives] == ["p90", "max", "error_rate"]
    # 100 planned: p90 allows 10 above 200 ms (nearest rank), max none above 1 s, 1 failure.
    assert guaranteed_miss(objectives, 100, [10, 0, 0], 1) is None
    why = guaranteed_miss(objectives, 100, [11, 0, 0], 0)
    assert why is not None and "11 of the 100 planned" in why and "p90" in why
    assert guaranteed_miss(objectives, 100, [0, 1, 0], 0) is not None
    why = guaranteed_miss(objectives, 100, [0, 0, 0], 2)
    assert why is not None and "error_rate<=1% (implied)" in why
    assert guaranteed_miss(parse_slos(["mean<=1ms", "throughput>=5/s"]), 100, [50, 50], 0) \
        is None


def test_each_step_shows_the_percentile_it_is_judged_on():
    steps = [
        _step(50, True).model_copy(update={"judged": {"p95": 31.5, "error_rate": 0.0}}),
        _step(100, False).model_copy(update={"judged": {"p95": 412.0, "error_rate": 0.16},
                                             "ended_early": True}),
    ]
    search = CapacitySearch(SearchSettings(start_rps=50))
    for step in steps:
        search.observe(step)
    block = LatencyBlock(kind="latency", samples=1, percentiles_ms={"p50": 1.0})
    summary = BenchSummary(endpoint="e", mode="open", started_at="", ended_at="",
                           started_at_epoch_s=0, duration_s=1, requests=1, successes=1,
                           failures={}, error_rate=0, throughput_rps=1, judged_on="latency",
                           latency=block, capacity=search.result(["p95<=100ms"]))
    header, rows = capacity_table(summary)
    assert header[4:9] == ["p50", "p90", "p95", "p99", "max"]
    assert [row[6] for row in rows] == ["31.5", "412.0"]
    assert [row[3] for row in rows] == ["0.0%", "0.0%"]
    assert rows[1][-1] == "MISSED (ended early)"
    assert ("Judged at capacity", "p95 31.5 ms, error_rate 0 %") in capacity_rows(summary)


def test_step_length_resolves_the_percentile():
    assert step_seconds(10, parse_slos(["p99<=1s"]), 20) == 45.9  # 459 samples at 10/s
    assert step_seconds(1000, parse_slos(["p99<=1s"]), 20) == 20
    assert step_seconds(10, parse_slos(["error_rate<=1%"]), 5) == 5


def test_knee_is_where_latency_climbs_or_throughput_stops_following():
    steps = [_step(10, True, p50=20), _step(20, True, p50=25), _step(40, True, p50=40),
             _step(80, False, p50=300)]
    assert knee(steps) == 20
    flat = [_step(10, True), _step(20, True, achieved=15)]
    assert knee(flat) == 10
