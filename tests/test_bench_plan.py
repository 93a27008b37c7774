"""The load plan: durations, shares of requests, and open-model schedules split over processes."""

from __future__ import annotations

import itertools
import statistics

import pytest

from aml_client.bench.plan import (
    BenchPlan,
    arrival_offsets_s,
    default_max_senders,
    parse_duration,
    split_count,
)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("1m30s", 90.0), ("2h", 7200.0), ("500ms", 0.5), ("1.5m", 90.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "abc", "10x", "s10", "1m 30s"])
def test_parse_duration_rejects_garbage(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)


@pytest.mark.parametrize(("total", "parts"), [(10, 3), (301, 2), (1, 4), (0, 2), (1000, 7)])
def test_split_count_adds_up(total: int, parts: int) -> None:
    shares = [split_count(total, parts, i) for i in range(parts)]
    assert sum(shares) == total
    assert max(shares) - min(shares) <= 1


def test_constant_schedule_shares_interleave_to_the_single_schedule() -> None:
    single = list(itertools.islice(arrival_offsets_s(50.0), 300))
    merged = sorted(
        t
        for i in range(3)
        for t in itertools.islice(arrival_offsets_s(50.0, index=i, count=3), 100)
    )
    assert merged == pytest.approx(single)
    assert single[:3] == pytest.approx([0.0, 0.02, 0.04])


def test_poisson_schedule_is_seeded_and_has_the_rate() -> None:
    first = list(itertools.islice(arrival_offsets_s(200.0, "poisson", seed=7), 20_000))
    again = list(itertools.islice(arrival_offsets_s(200.0, "poisson", seed=7), 20_000))
    other = list(itertools.islice(arrival_offsets_s(200.0, "poisson", seed=8), 20_000))
    assert first == again
    assert first != other
    gaps = [b - a for a, b in itertools.pairwise(first)]
    assert statistics.fmean(gaps) == pytest.approx(1 / 200.0, rel=0.05)
    # exponential gaps: standard deviation equals the mean
    assert statistics.pstdev(gaps) == pytest.approx(1 / 200.0, rel=0.08)


def test_poisson_shares_are_independent_streams_at_the_split_rate() -> None:
    share = list(itertools.islice(arrival_offsets_s(200.0, "poisson", index=1, count=2), 10_000))
    assert share[-1] / len(share) == pytest.approx(1 / 100.0, rel=0.05)
    assert share != list(itertools.islice(arrival_offsets_s(200.0, "poisson", count=2), 10_000))


def test_plan_share_splits_requests() -> None:
    plan = BenchPlan(users=4, max_requests=301, workers=2)
    assert [plan.share(i, 2).quota for i in range(2)] == [151, 150]
    assert BenchPlan(duration_s=5).share(0, 3).quota is None
    with pytest.raises(ValueError):
        plan.share(2, 2)


def test_plan_round_trips_and_validates() -> None:
    plan = BenchPlan(mode="open", rate=100.0, arrival="poisson", users=8, duration_s=3.0)
    assert BenchPlan.from_dict(plan.to_dict()) == plan
    assert "100 req/s poisson" in plan.describe()
    with pytest.raises(ValueError):
        BenchPlan(mode="open")  # no rate
    with pytest.raises(ValueError):
        BenchPlan(arrival="bursty")
    with pytest.raises(ValueError):
        BenchPlan(users=0)
    with pytest.raises(ValueError):
        BenchPlan(max_requests=0)


def test_default_max_senders_covers_two_seconds_of_latency() -> None:
    assert default_max_senders(1) == 50
    assert default_max_senders(400) == 800
    assert default_max_senders(1e9) == 20_000
    assert BenchPlan(mode="open", rate=400).senders_cap == 800
    assert BenchPlan(mode="open", rate=400, max_senders=7).senders_cap == 7
    plan = BenchPlan(mode="open", rate=400, max_senders=7, workers=2)
    assert [plan.share(i, 2).max_senders for i in range(2)] == [4, 4]
