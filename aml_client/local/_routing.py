"""Which deployment answers a request, and whether it may wait for one: the front's rules.

Azure documents the traffic split only as percentages per deployment; how it draws each request
is not documented (nor is it exact over short runs). The local front uses nginx's *smooth
weighted round-robin*: deterministic, exact over every full cycle of 100 requests and well
interleaved (90/10 gives nine blues, one green, not ninety blues in a row), so tests can assert
the split exactly. A request that names a deployment (``azureml-model-deployment``) bypasses the
split, and may name one that has 0 % of the traffic, as on Azure.

Admission follows Azure's ``request_settings``: at most ``max_concurrent_requests_per_
instance`` requests are inside the deployment at once, the others wait in the front; once
``2 × max_concurrent`` are pending (inside or waiting), further requests get 429 at once; a
request not answered within ``request_timeout_ms`` of its arrival at the front (waiting
included) gets 408.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class SmoothWeightedRoundRobin:
    """nginx's smooth weighted round-robin over named weights (weights of 0 are never chosen)."""

    def __init__(self, weights: Mapping[str, int]) -> None:
        self._weights = {name: weight for name, weight in weights.items() if weight > 0}
        self._current = dict.fromkeys(self._weights, 0)
        self._total = sum(self._weights.values())

    def next(self) -> str | None:
        """The next name, or None when every weight is 0."""
        if not self._total:
            return None
        for name, weight in self._weights.items():
            self._current[name] += weight
        # Ties go to the name listed first, which keeps the sequence stable across runs.
        chosen = max(self._current, key=lambda name: self._current[name])
        self._current[chosen] -= self._total
        return chosen


class TooManyPending(Exception):
    """More than twice ``max_concurrent_requests_per_instance`` requests are pending (429)."""


class RequestTimedOut(Exception):
    """The request was not answered within ``request_timeout_ms`` (408)."""


class Admission:
    """One deployment's request settings: concurrency, the 2× pending limit and the timeout."""

    def __init__(
        self,
        max_concurrent: int,
        request_timeout_ms: int,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_concurrent < 1 or request_timeout_ms < 1:
            raise ValueError("max_concurrent and request_timeout_ms must be positive")
        self.max_concurrent = max_concurrent
        self.max_pending = 2 * max_concurrent
        self.timeout_s = request_timeout_ms / 1000
        self.pending = 0  # admitted and not yet answered: inside the deployment or waiting
        self.inside = 0  # sent to the deployment and not yet answered
        self._slots = asyncio.Semaphore(max_concurrent)
        self._clock = clock

    async def run(self, arrived: float, call: Callable[[float], Awaitable[T]]) -> T:
        """Run ``call(seconds_left)`` under the deployment's rules.

        ``arrived`` is the request's arrival time on ``clock``. Raises TooManyPending at once
        when the deployment already has its maximum pending, RequestTimedOut when the wait plus
        the call take longer than the timeout (the call is then cancelled).
        """
        if self.pending >= self.max_pending:
            raise TooManyPending
        deadline = arrived + self.timeout_s
        if self._left(deadline) <= 0:
            raise RequestTimedOut
        self.pending += 1
        acquired = False
        try:
            # One deadline for the wait and the call (asyncio.timeout: no extra task per call).
            async with asyncio.timeout(self._left(deadline)):
                await self._slots.acquire()
                acquired = True
                self.inside += 1
                try:
                    return await call(self._left(deadline))
                finally:
                    self.inside -= 1
        except TimeoutError:
            raise RequestTimedOut from None
        finally:
            if acquired:
                self._slots.release()
            self.pending -= 1

    def _left(self, deadline: float) -> float:
        return max(0.0, deadline - self._clock())
