"""LatencyRecorder: range, exact extremes, out-of-range counting, exact encode/decode/merge."""

from __future__ import annotations

import json
import math
import random
import statistics
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aml_client.bench.hdr import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES, LatencyRecorder
from aml_client.bench.result import BenchResult, Interval

PCTS = [0, 1, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100]


def _counts(recorder: LatencyRecorder) -> list[int]:
    h = recorder.histogram
    return [h.get_count_at_index(i) for i in range(h.counts_len)]


def test_parameters_are_the_documented_ones():
    assert (LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES) == (1, 3_600_000_000, 3)
    r = LatencyRecorder()
    assert r.histogram.lowest_trackable_value == 1
    assert r.histogram.highest_trackable_value == 3_600_000_000
    assert r.histogram.significant_figures == 3


def test_empty_recorder_reads_as_zero():
    r = LatencyRecorder()
    assert (r.count, r.min_us, r.max_us, r.out_of_range) == (0, 0, 0, 0)
    assert r.percentile_us(99) == 0
    assert r.percentiles_us([50, 99]) == {50.0: 0, 99.0: 0}
    assert r.mean_us == 0.0 and r.stdev_us == 0.0
    assert LatencyRecorder.decode(r.encode()).count == 0


def test_max_is_exact_where_the_histogram_rounds_up():
    r = LatencyRecorder()
    r.record(1_234_567)  # 1.234567 s: its bucket is 1024 µs wide at this magnitude
    r.record(150)
    assert r.histogram.get_max_value() != 1_234_567  # the library's bucket edge...
    assert r.max_us == 1_234_567  # ...and the exact value we keep
    assert r.min_us == 150
    assert r.percentile_us(100) == 1_234_567  # clamped: a percentile never exceeds the max


def test_range_ends_and_out_of_range_are_counted_not_dropped():
    r = LatencyRecorder()
    r.record(0)
    r.record(LOWEST_US)
    r.record(HIGHEST_US)  # 1 h is inside
    r.record(HIGHEST_US + 1)  # hdrh itself would take this one: our range is the documented one
    r.record(-5)
    r.record(10 * HIGHEST_US)
    assert r.count == 3
    assert r.out_of_range == 3
    assert r.max_us == HIGHEST_US and r.min_us == 0
    assert r.histogram.get_total_count() == 3


def test_ten_minutes_keeps_three_significant_digits():
    r = LatencyRecorder()
    ten_min = 600_000_000
    r.record(ten_min)
    value = r.histogram.get_highest_equivalent_value(ten_min)
    assert abs(value - ten_min) / ten_min < 10 ** -SIGNIFICANT_FIGURES


def test_float_latency_is_rounded_to_the_microsecond():
    r = LatencyRecorder()
    r.record(20_000.6)
    assert r.max_us == 20_001


def test_microsecond_resolution_below_a_millisecond():
    r = LatencyRecorder()
    r.record_many(range(1, 1001))
    assert r.percentile_us(50) == 500
    assert r.percentile_us(90) == 900
    assert r.percentile_us(99.9) == 999


def test_mean_and_stdev_are_exact():
    rng = random.Random(7)
    data = [rng.randint(1, 5_000_000) for _ in range(5000)]
    r = LatencyRecorder()
    r.record_many(data)
    assert r.mean_us == pytest.approx(statistics.fmean(data), rel=1e-12)
    assert r.stdev_us == pytest.approx(statistics.pstdev(data), rel=1e-9)


def test_percentiles_match_the_definition_on_sorted_data():
    rng = random.Random(3)
    data = sorted(rng.randint(100, 3_000_000) for _ in range(20_000))
    r = LatencyRecorder()
    r.record_many(data)
    for p in (50, 90, 99, 99.9):
        # The HDR value at p: the ceil(p% * N)-th smallest sample, to 3 significant digits.
        truth = data[max(math.ceil(p / 100 * len(data)) - 1, 0)]
        got = r.percentile_us(p)
        assert abs(got - truth) <= truth * 10**-SIGNIFICANT_FIGURES + 1, (p, got, truth)
        assert got >= truth  # top of the bucket, never below the sample


def test_percentiles_us_agrees_with_percentile_us():
    rng = random.Random(11)
    r = LatencyRecorder()
    r.record_many(rng.lognormvariate(10, 1) for _ in range(3000))
    many = r.percentiles_us(PCTS)
    assert many == {float(p): r.percentile_us(p) for p in PCTS}


def _brute_force(samples: list[int], p: float) -> int:
    """Nearest rank on a plain sort: the ceil(p/100 * N)-th smallest sample (at least the 1st)."""
    ordered = sorted(samples)
    rank = max(1, math.ceil(Decimal(repr(float(p))) * len(ordered) / 100))
    return ordered[min(rank, len(ordered)) - 1]


@settings(max_examples=300, deadline=None)
@given(
    samples=st.lists(
        st.one_of(st.integers(1, 2047), st.integers(1, 50_000_000)), min_size=1, max_size=1500
    ),
    ps=st.lists(st.floats(0, 100, allow_nan=False), max_size=8),
)
def test_percentiles_are_nearest_rank_on_a_brute_force_sort(samples, ps):
    r = LatencyRecorder()
    r.record_many(samples)
    h = r.histogram
    wanted = [*ps, 0, 50, 90, 99, 99.9, 99.99, 100]
    got = r.percentiles_us(wanted)
    for p in wanted:
        truth = _brute_force(samples, p)
        expected = max(min(h.get_highest_equivalent_value(truth), r.max_us), r.min_us)
        if p == 0:
            expected = r.min_us
        assert got[float(p)] == expected, (p, len(samples))
        if truth < 2048:  # buckets are 1 µs wide here: the recorded value itself
            assert got[float(p)] == truth


@pytest.mark.parametrize("n", [*range(1, 60), 99, 100, 101, 459, 775, 999, 1000, 1001, 9999])
def test_any_percentile_above_n_minus_1_over_n_is_the_max(n):
    samples = list(range(1000, 1000 + n))  # distinct, exact below 2048 µs
    random.Random(n).shuffle(samples)
    r = LatencyRecorder()
    r.record_many(samples)
    above = (n - 1) / n * 100
    for p in (99, 99.9, 99.99, 100):
        value = r.percentile_us(p)
        truth = _brute_force(samples, p)
        assert value == min(r.histogram.get_highest_equivalent_value(truth), r.max_us)
        if p > above:
            assert value == max(samples) == r.max_us


def test_775_samples_p99_9_is_the_max():
    """The case seen in the field: hdrh's rounding gave the 774th value, below the max."""
    samples = [1000 + i for i in range(775)]
    r = LatencyRecorder()
    r.record_many(samples)
    assert r.histogram.get_value_at_percentile(99.9) < r.max_us  # hdrh's own answer
    assert r.percentile_us(99.9) == r.max_us == 1774


@pytest.mark.parametrize("bad", [-0.1, 100.1])
def test_percentile_outside_0_100_is_refused(bad):
    r = LatencyRecorder()
    r.record(10)
    with pytest.raises(ValueError, match=r"0\.\.100"):
        r.percentile_us(bad)
    with pytest.raises(ValueError):
        r.percentiles_us([50, bad])


def test_encode_is_json_safe_and_decodes_identically():
    rng = random.Random(5)
    r = LatencyRecorder()
    r.record_many(rng.randint(0, 100_000_000) for _ in range(2000))
    r.record(-1)
    wire = json.loads(json.dumps(r.encode()))
    assert {"hist", "min_us", "max_us", "out_of_range", "count"} <= set(wire)
    assert isinstance(wire["hist"], str)
    back = LatencyRecorder.decode(wire)
    assert (back.count, back.min_us, back.max_us, back.out_of_range) == (
        r.count, r.min_us, r.max_us, r.out_of_range,
    )
    assert _counts(back) == _counts(r)
    assert back.percentiles_us(PCTS) == r.percentiles_us(PCTS)
    assert back.mean_us == r.mean_us and back.stdev_us == r.stdev_us
    back.record(42)  # a decoded recorder keeps recording
    assert back.count == r.count + 1


def test_decode_rejects_a_count_that_disagrees_with_the_histogram():
    r = LatencyRecorder()
    r.record(10)
    data = r.encode()
    data["count"] = 5
    with pytest.raises(ValueError, match="1 samples"):
        LatencyRecorder.decode(data)


@pytest.mark.parametrize("seed", range(8))
def test_merge_of_encoded_parts_equals_one_histogram_of_every_sample(seed):
    rng = random.Random(seed)
    workers = rng.randint(1, 6)
    whole = LatencyRecorder()
    parts = [LatencyRecorder() for _ in range(workers)]
    for _ in range(rng.randint(0, 4000)):
        # Mixed scales (µs .. minutes) and a few out-of-range values.
        value = rng.choice([
            rng.randint(1, 999),
            int(rng.lognormvariate(10, 1.5)),
            rng.randint(1_000_000, 600_000_000),
            rng.choice([-3, HIGHEST_US + 7]),
        ])
        whole.record(value)
        rng.choice(parts).record(value)
    merged = LatencyRecorder()
    for part in parts:
        merged.merge(LatencyRecorder.decode(json.loads(json.dumps(part.encode()))))
    assert _counts(merged) == _counts(whole)
    assert (merged.count, merged.min_us, merged.max_us, merged.out_of_range) == (
        whole.count, whole.min_us, whole.max_us, whole.out_of_range,
    )
    assert merged.percentiles_us(PCTS) == whole.percentiles_us(PCTS)
    assert merged.mean_us == pytest.approx(whole.mean_us, rel=1e-12)
    assert merged.stdev_us == pytest.approx(whole.stdev_us, rel=1e-9)


def test_merge_into_and_from_empty_recorders():
    a, b = LatencyRecorder(), LatencyRecorder()
    b.record(300)
    b.record(100)
    a.merge(LatencyRecorder())
    a.merge(b)
    assert (a.count, a.min_us, a.max_us) == (2, 100, 300)
    b.merge(LatencyRecorder())
    assert (b.count, b.min_us, b.max_us) == (2, 100, 300)


def test_reset_and_copy():
    r = LatencyRecorder()
    r.record_many([5, 6, -1])
    clone = r.copy()
    r.reset()
    assert (r.count, r.min_us, r.max_us, r.out_of_range, r.sum_us) == (0, 0, 0, 0, 0)
    assert r.percentile_us(50) == 0
    assert (clone.count, clone.min_us, clone.max_us, clone.out_of_range) == (2, 5, 6, 1)
    r.record(9)
    assert (r.min_us, r.max_us) == (9, 9)


def test_bench_result_round_trips_through_json():
    lat = LatencyRecorder()
    lat.record_many([1000, 2000, 3000])
    cor = LatencyRecorder()
    cor.record_many([1000, 2000, 900_000])
    result = BenchResult(
        config={"mode": "open", "rate": 10},
        started_at=1_700_000_000.0,
        ended_at=1_700_000_010.5,
        latency=lat,
        corrected=cor,
        requests=3,
        failures={"http_503": 1},
        intervals=[Interval(1_700_000_000.0, 1_700_000_001.0, lat.copy(), 3, 1)],
    )
    back = BenchResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert back.duration_s == pytest.approx(10.5)
    assert back.failure_count == 1
    assert back.corrected is not None and back.corrected.max_us == 900_000
    assert back.latency.percentiles_us([50]) == lat.percentiles_us([50])
    assert back.intervals[0].latency.count == 3 and back.intervals[0].duration_s == 1.0


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, HIGHEST_US), max_size=300))
def test_inlined_record_matches_hdrh_record_value(values):
    from hdrh.histogram import HdrHistogram

    ours, theirs = LatencyRecorder(), HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    for value in values:
        ours.record(value)
        assert theirs.record_value(value)
    assert _counts(ours) == [theirs.get_count_at_index(i) for i in range(theirs.counts_len)]
    assert ours.histogram.get_total_count() == theirs.get_total_count() == len(values)
    if values:
        assert ours.histogram.get_max_value() == theirs.get_max_value()
        assert ours.histogram.get_min_value() == theirs.get_min_value()
        assert LatencyRecorder.decode(ours.encode()).percentiles_us([50, 99]) == \
            ours.percentiles_us([50, 99])
