"""An asyncio event loop on a virtual clock, for simulations: sleeps take no time.

Whenever nothing is ready, the clock jumps to the next timer instead of waiting for it, so a
simulated endpoint's service times are exact however busy the machine is. Only for code with
no real I/O: a socket would wait on real time while the clock stands still.
"""

from __future__ import annotations

import asyncio
import selectors
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class _JumpingSelector(selectors.DefaultSelector):  # type: ignore[misc,valid-type]
    def __init__(self, loop: VirtualClockLoop) -> None:
        super().__init__()
        self._loop = loop

    def select(self, timeout: float | None = None) -> list[Any]:
        if timeout is None:  # no timer at all: as a real loop, wait for a wake-up
            return list(super().select(None))
        ready = list(super().select(0))
        if not ready and timeout > 0:
            self._loop.now += timeout
        return ready


class VirtualClockLoop(asyncio.SelectorEventLoop):
    """``time()`` is virtual and starts at 0; it only moves when every task waits on a timer."""

    def __init__(self) -> None:
        self.now = 0.0
        super().__init__(_JumpingSelector(self))

    def time(self) -> float:
        return self.now


def simulate(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run ``coroutine`` to its end on a :class:`VirtualClockLoop`."""
    loop = VirtualClockLoop()
    try:
        return loop.run_until_complete(coroutine)
    finally:
        loop.close()
