"""The front's routing rules on their own: the weighted split and Azure's request settings."""

from __future__ import annotations

import asyncio
import itertools
from collections import Counter

import pytest

from aml_client.local._routing import (
    Admission,
    RequestTimedOut,
    SmoothWeightedRoundRobin,
    TooManyPending,
)


def picks(weights: dict[str, int], n: int) -> list[str | None]:
    router = SmoothWeightedRoundRobin(weights)
    return [router.next() for _ in range(n)]


@pytest.mark.parametrize(
    "weights",
    [{"blue": 50, "green": 50}, {"blue": 90, "green": 10}, {"a": 1, "b": 2, "c": 97}],
)
def test_every_cycle_of_the_total_weight_is_split_exactly(weights: dict[str, int]) -> None:
    total = sum(weights.values())
    sequence = picks(weights, 3 * total)
    for cycle in range(3):
        counted = Counter(sequence[cycle * total : (cycle + 1) * total])
        assert counted == Counter(weights)


def test_the_split_is_interleaved_not_in_blocks() -> None:
    sequence = picks({"blue": 90, "green": 10}, 100)
    longest_blue_run = max(
        len(list(run)) for name, run in itertools.groupby(sequence) if name == "blue"
    )
    assert longest_blue_run <= 9
    assert picks({"blue": 50, "green": 50}, 6) == ["blue", "green"] * 3


def test_a_deployment_without_traffic_is_never_chosen() -> None:
    assert set(picks({"blue": 100, "green": 0}, 50)) == {"blue"}
    assert picks({"blue": 0, "green": 0}, 3) == [None, None, None]


async def _blocked(release: asyncio.Event, seconds_left: float) -> str:
    await release.wait()
    return "answered"


def test_more_than_twice_max_concurrent_pending_is_refused() -> None:
    async def scenario() -> tuple[list[str], int, int]:
        admission = Admission(max_concurrent=2, request_timeout_ms=60_000)
        release = asyncio.Event()
        now = asyncio.get_running_loop().time

        async def one() -> str:
            try:
                return await admission.run(now(), lambda left: _blocked(release, left))
            except TooManyPending:
                return "429"

        tasks = [asyncio.ensure_future(one()) for _ in range(7)]
        await asyncio.sleep(0.05)  # let every task reach the admission check
        inside, pending = admission.inside, admission.pending
        release.set()
        return list(await asyncio.gather(*tasks)), inside, pending

    results, inside, pending = asyncio.run(scenario())
    assert Counter(results) == {"answered": 4, "429": 3}
    assert (inside, pending) == (2, 4)  # two in the deployment, two waiting in the front


def test_a_request_over_its_timeout_is_cancelled_and_frees_its_slot() -> None:
    async def scenario() -> tuple[str, int, int, str]:
        admission = Admission(max_concurrent=1, request_timeout_ms=50)
        cancelled = asyncio.Event()

        async def forever(seconds_left: float) -> str:
            try:
                await asyncio.sleep(3600)
            except asyncio.CancelledError:
                cancelled.set()
                raise
            return "never"

        try:
            await admission.run(asyncio.get_running_loop().time(), forever)
            outcome = "answered"
        except RequestTimedOut:
            outcome = "408"
        assert cancelled.is_set()

        async def quick(seconds_left: float) -> str:
            return "answered"

        after = await admission.run(asyncio.get_running_loop().time(), quick)
        return outcome, admission.pending, admission.inside, after

    assert asyncio.run(scenario()) == ("408", 0, 0, "answered")


def test_waiting_counts_towards_the_timeout() -> None:
    clock = [1000.0]

    async def scenario() -> str:
        admission = Admission(max_concurrent=1, request_timeout_ms=5000, clock=lambda: clock[0])

        async def quick(seconds_left: float) -> str:
            return f"{seconds_left:.1f}"

        answered = await admission.run(998.0, quick)  # arrived 2 s ago: 3 s are left
        try:
            await admission.run(990.0, quick)  # arrived 10 s ago: already too late
        except RequestTimedOut:
            return answered + " then 408"
        return answered + " then answered"

    assert asyncio.run(scenario()) == "3.0 then 408"


def test_admission_refuses_nonsense_settings() -> None:
    with pytest.raises(ValueError):
        Admission(max_concurrent=0, request_timeout_ms=100)
