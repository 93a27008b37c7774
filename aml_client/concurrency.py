"""How many scoring requests may be in flight: a fixed cap, or one that adapts (AIMD).

A real-time endpoint has a capacity nobody tells the client. Sending too little wastes it;
sending too much queues requests inside the endpoint (latency grows, nothing goes faster) and
then sheds them (429/503). The adaptive limiter finds the point between the two the way TCP
congestion control does:

- latency says how many requests wait in the endpoint's queue: with ``N`` in flight, a
  baseline latency ``B`` (the lowest smoothed latency seen recently) and a smoothed latency
  ``L``, about ``N * (1 - B / L)`` of them are queued (TCP Vegas' estimate). A few queued
  requests keep every worker busy; more only add latency;
- slow start: the cap grows by one per success (doubling per round trip) until requests start
  to queue or the endpoint pushes back;
- additive increase: afterwards it grows by about one per round trip while fewer than
  ``queue_low`` requests are queued;
- multiplicative decrease: a 429/503/timeout halves it; more than ``queue_high`` queued (latency
  inflated) cuts it by a tenth. Only one decrease per round trip: replies to requests sent
  before the last decrease say nothing about the new cap.

The queue thresholds grow with the cap (``queue_fraction``), so latency noise on an endpoint
with many instances is not mistaken for queueing.

:class:`PauseGate` is the other half of being polite: when the endpoint says ``Retry-After``,
every request waits, not just the one that was refused.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass


@dataclass
class AimdSettings:
    """Tuning of the adaptive limiter; the defaults suit endpoints with tens of ms latency."""

    initial: float = 1.0
    min_limit: float = 1.0
    max_limit: float = 64.0
    #: keep growing while fewer requests than this are estimated to queue in the endpoint
    queue_low: float = 2.0
    #: cut when more than this are estimated to queue
    queue_high: float = 4.0
    #: the thresholds above are at least this fraction of the cap (low) / 2.5x it (high)
    queue_fraction: float = 0.1
    latency_backoff: float = 0.9
    error_backoff: float = 0.5
    #: weight of the newest sample in the smoothed latency
    smoothing: float = 0.3
    #: the baseline creeps up by this factor per sample, so it follows a slower endpoint
    baseline_drift: float = 0.0005


class ConcurrencyLimiter:
    """A cap on requests in flight, fixed or adaptive; ``async with limiter.slot()`` to send."""

    def __init__(self, limit: int | None = None, *, settings: AimdSettings | None = None):
        if limit is None and settings is None:
            settings = AimdSettings()
        self.adaptive = limit is None
        self.settings = settings or AimdSettings()
        self.limit: float = float(limit) if limit is not None else self.settings.initial
        if self.limit < 1:
            raise ValueError("concurrency must be at least 1")
        self.in_flight = 0
        self.peak_in_flight = 0
        self.baseline_s: float | None = None
        self.smoothed_s: float | None = None
        self.decreases = 0
        self._slow_start = True
        self._epoch = 0
        self._waiters: deque[asyncio.Future[None]] = deque()

    @property
    def cap(self) -> int:
        """Requests allowed in flight right now."""
        return max(1, math.floor(self.limit))

    @asynccontextmanager
    async def slot(self) -> AsyncIterator[int]:
        """Hold one request slot; yields the epoch to pass back to the ``record_*`` methods.

        Call ``record_*`` while still holding the slot: growth is only earned when the cap
        was actually in use.
        """
        while self.in_flight >= self.cap:
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append(waiter)
            try:
                await waiter
            except asyncio.CancelledError:
                self._wake()
                raise
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            yield self._epoch
        finally:
            self.in_flight -= 1
            self._wake()

    def record_success(self, latency_s: float, epoch: int, *, sample: bool = True) -> None:
        """A reply arrived; ``sample=False`` for requests not comparable in size to the rest."""
        if not self.adaptive or not sample:
            return
        s = self.settings
        self.smoothed_s = (
            latency_s
            if self.smoothed_s is None
            else s.smoothing * latency_s + (1.0 - s.smoothing) * self.smoothed_s
        )
        # The minimum of the smoothed latency: one lucky reply does not set the baseline.
        self.baseline_s = (
            self.smoothed_s
            if self.baseline_s is None
            else min(self.smoothed_s, self.baseline_s * (1.0 + s.baseline_drift))
        )
        if epoch != self._epoch:
            return
        queued = self.queued_estimate
        low = max(s.queue_low, s.queue_fraction * self.limit)
        high = max(s.queue_high, 2.5 * s.queue_fraction * self.limit)
        if queued > high:
            self._decrease(s.latency_backoff)
        elif queued < low:
            # Growing a cap the sender does not use proves nothing about the endpoint.
            if self.in_flight >= self.cap:
                step = 1.0 if self._slow_start else 1.0 / self.limit
                self._set(self.limit + step)
        else:
            self._slow_start = False

    @property
    def queued_estimate(self) -> float:
        """Requests thought to be waiting inside the endpoint rather than being served."""
        if not self.baseline_s or not self.smoothed_s:
            return 0.0
        return self.limit * max(0.0, 1.0 - self.baseline_s / self.smoothed_s)

    def record_overload(self, epoch: int) -> None:
        """The endpoint pushed back (429, 503, timeout)."""
        if self.adaptive and epoch == self._epoch:
            self._decrease(self.settings.error_backoff)

    def _decrease(self, factor: float) -> None:
        self._slow_start = False
        self.decreases += 1
        self._epoch += 1
        self._set(self.limit * factor)

    def _set(self, value: float) -> None:
        s = self.settings
        self.limit = min(s.max_limit, max(s.min_limit, value))
        self._wake()

    def _wake(self) -> None:
        free = self.cap - self.in_flight
        while free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                free -= 1


class PauseGate:
    """Holds every new request back until a moment the endpoint asked for (``Retry-After``)."""

    def __init__(self) -> None:
        self._until = 0.0
        self.pauses = 0
        self.paused_s = 0.0

    def pause(self, seconds: float) -> None:
        """Extend the pause to at least ``seconds`` from now."""
        until = time.monotonic() + max(0.0, seconds)
        if until > self._until:
            now = time.monotonic()
            self.paused_s += until - max(now, self._until)
            self._until = until
            self.pauses += 1

    @property
    def paused(self) -> bool:
        return time.monotonic() < self._until

    async def wait(self) -> None:
        """Return once no pause is in force."""
        while True:
            left = self._until - time.monotonic()
            if left <= 0:
                return
            await asyncio.sleep(left)
