"""The concurrency limiters of a batch run (fixed and adaptive) and the pause gate, driven by a
simulated endpoint.

The endpoint's service times pass on the event loop's clock, a virtual one
(``support/virtual_clock.py``): the simulation's figures are the limiter's doing, however busy
the machine.
"""

from __future__ import annotations

import asyncio
import time

from support.virtual_clock import simulate

from aml_client.concurrency import AimdSettings, ConcurrencyLimiter, PauseGate


async def _drive(limiter: ConcurrencyLimiter, *, capacity: int, service_s: float,
                 requests: int, shed_above: int | None = None) -> dict[str, float]:
    """A simulated endpoint: ``capacity`` workers, a queue, optional 503 above a depth."""
    workers = asyncio.Semaphore(capacity)
    state = {"in_system": 0, "peak": 0, "shed": 0, "done": 0}
    clock = asyncio.get_running_loop().time

    async def one() -> None:
        while True:
            async with limiter.slot() as epoch:
                if shed_above is not None and state["in_system"] >= shed_above:
                    state["shed"] += 1
                    limiter.record_overload(epoch)
                    continue
                state["in_system"] += 1
                state["peak"] = max(state["peak"], state["in_system"])
                started = clock()
                async with workers:
                    await asyncio.sleep(service_s)
                state["in_system"] -= 1
                limiter.record_success(clock() - started, epoch)
                state["done"] += 1
                return

    started = clock()
    pending: set[asyncio.Task[None]] = set()
    for _ in range(requests):  # a bounded window of tasks, as the batch reader keeps
        while len(pending) >= 2 * limiter.cap + 2:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        pending.add(asyncio.create_task(one()))
    await asyncio.gather(*pending)
    state["elapsed"] = clock() - started
    state["throughput"] = requests / state["elapsed"]
    return state


def test_fixed_limiter_never_exceeds_its_cap() -> None:
    limiter = ConcurrencyLimiter(3)
    state = simulate(_drive(limiter, capacity=10, service_s=0.002, requests=60))
    assert state["peak"] == 3
    assert limiter.cap == 3 and limiter.peak_in_flight == 3


def test_adaptive_limiter_finds_the_capacity_without_piling_up_a_queue() -> None:
    capacity, service_s = 4, 0.01
    limiter = ConcurrencyLimiter(None, settings=AimdSettings(initial=1))
    state = simulate(_drive(limiter, capacity=capacity, service_s=service_s, requests=400))
    best = capacity / service_s
    assert state["throughput"] >= 0.8 * best, state
    # enough in flight to keep every worker busy, never a long queue
    assert capacity <= limiter.cap <= capacity + 6, (limiter.cap, state)
    assert state["peak"] <= capacity + 10


def test_adaptive_limiter_backs_off_when_the_endpoint_sheds_load() -> None:
    limiter = ConcurrencyLimiter(None, settings=AimdSettings(initial=8))
    state = simulate(
        _drive(limiter, capacity=4, service_s=0.01, requests=300, shed_above=6)
    )
    assert limiter.decreases >= 1
    assert state["shed"] < 60, state  # it learned, instead of hammering
    assert state["throughput"] >= 0.6 * 400


def test_one_decrease_per_round_trip() -> None:
    async def scenario() -> None:
        limiter = ConcurrencyLimiter(None, settings=AimdSettings(initial=16))
        async with limiter.slot() as first, limiter.slot() as second:
            limiter.record_overload(first)
            limiter.record_overload(second)  # sent before the first cut: no second cut
        assert limiter.cap == 8
        async with limiter.slot() as third:
            limiter.record_overload(third)
        assert limiter.cap == 4

    asyncio.run(scenario())


def test_fixed_limiter_ignores_feedback() -> None:
    async def scenario() -> None:
        limiter = ConcurrencyLimiter(5)
        async with limiter.slot() as epoch:
            limiter.record_overload(epoch)
            limiter.record_success(10.0, epoch)
        assert limiter.cap == 5

    asyncio.run(scenario())


def test_pause_gate_holds_everyone_until_the_date() -> None:
    async def scenario() -> float:
        gate = PauseGate()
        gate.pause(0.2)
        gate.pause(0.05)  # a shorter pause never shortens the one in force
        started = time.perf_counter()
        await asyncio.gather(gate.wait(), gate.wait())
        return time.perf_counter() - started

    assert 0.18 <= asyncio.run(scenario()) < 10.0  # it opens, however busy the machine
