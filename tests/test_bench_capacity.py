"""The capacity search's decisions (no load here: steps are made up)."""

from __future__ import annotations

from aml_client.bench.capacity import CapacitySearch, SearchSettings, knee, step_seconds
from aml_client.bench.slo import parse_slos
from aml_client.bench.summary import CapacityStep


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


def test_stops_at_max_rate_and_when_the_first_step_misses():
    top = _run(1e9, SearchSettings(start_rps=10, max_rps=50))
    assert [s.rate_rps for s in top.steps] == [10, 20, 40, 50]
    assert top.result([]).max_rate_rps == 50 and "--max-rate" in top.stopped_because
    none = _run(5, SearchSettings(start_rps=10, max_rps=50))
    assert len(none.steps) == 1 and not none.result([]).found
    assert none.stopped_because == "even the lowest rate missed the objectives"


def test_an_invalid_step_ends_the_search_with_what_is_known():
    search = CapacitySearch(SearchSettings(start_rps=10, max_rps=1000))
    search.observe(_step(10, True))
    search.observe(_step(20, True, valid=False))
    assert search.next_rate() is None
    assert "load generator could not apply 20" in search.stopped_because
    assert search.result([]).max_rate_rps == 10


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
