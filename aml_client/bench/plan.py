"""What a benchmark run does: load model, bounds, and how the work is split across processes.

A plan is plain data (JSON-safe) so it can travel from the CLI to the load process and from a
Locust master to its workers. It holds no endpoint details and no secret.

Two load models:

* **closed** — ``users`` loops, each sending the next request as soon as the previous reply
  arrived; bounded by ``duration_s`` and/or ``max_requests``.
* **open** — requests are *scheduled*: request ``i`` is due at ``start + t_i`` whatever happened
  to earlier ones (``constant``: ``t_i = i / rate``; ``poisson``: exponential gaps, seeded).
  Latency is also measured from the due time, so a stall of the endpoint is not hidden by the
  load generator waiting for it (coordinated omission).

With several load processes each one takes a *share*: an even part of ``max_requests``, and in
the open model every W-th slot of the constant schedule (or an independent Poisson stream at
``rate / W``, whose superposition is again Poisson at ``rate``).
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

__all__ = [
    "ARRIVALS",
    "MODES",
    "BenchPlan",
    "Share",
    "arrival_offsets_s",
    "default_max_senders",
    "default_open_users",
    "parse_duration",
    "split_count",
]

MODES = ("closed", "open")
ARRIVALS = ("constant", "poisson")

_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)?")


def parse_duration(text: str | float | int) -> float:
    """``"90"``, ``"90s"``, ``"1m30s"``, ``"2h"``, ``"500ms"`` -> seconds."""
    if isinstance(text, int | float):
        return float(text)
    value = text.strip().lower()
    if not value:
        raise ValueError("empty duration")
    total = 0.0
    pos = 0
    for match in _DURATION.finditer(value):
        if match.start() != pos:
            break
        number, unit = float(match.group(1)), match.group(2) or "s"
        total += number * {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}[unit]
        pos = match.end()
    if pos != len(value):
        raise ValueError(f"not a duration: {text!r} (try 30s, 2m, 1h30m)")
    return total


def split_count(total: int, parts: int, index: int) -> int:
    """Part ``index`` of ``total`` split evenly over ``parts`` (the first ones get the rest)."""
    base, extra = divmod(total, parts)
    return base + (1 if index < extra else 0)


def default_max_senders(rate: float) -> int:
    """The cap on concurrent senders of an open-model run: enough for 2 s of latency at
    ``rate`` (Little's law: in flight = rate x latency), never fewer than 50. Senders are only
    created when a due request finds none idle, so the cap costs nothing until it is needed;
    when it is reached, sends slip and the run is marked INVALID (raise ``--max-senders``)."""
    return max(50, min(20_000, math.ceil(rate * 2.0)))


def default_open_users(rate: float) -> int:
    """Kept for callers of 0.1: the sender cap (see :func:`default_max_senders`)."""
    return default_max_senders(rate)


@dataclass
class BenchPlan:
    """The load to apply; the same object on every node of a run."""

    mode: str = "closed"
    users: int = 10
    spawn_rate: float = 10.0
    duration_s: float | None = None
    max_requests: int | None = None
    rate: float | None = None
    arrival: str = "constant"
    seed: int = 1
    #: load processes (1 = a single local process; more = a Locust master + that many workers)
    workers: int = 1
    timeout_s: float = 60.0
    #: seconds per latency/throughput interval (the interval log and the over-time plots)
    interval_s: float = 1.0
    #: open model: most requests in flight at once (senders are created on demand up to this)
    max_senders: int | None = None
    #: capacity search settings (``--find-capacity``): objectives, start/max rate, step, warm-up
    capacity: dict[str, Any] | None = None
    #: blue/green: the deployments every request body goes to, interleaved (the first is the
    #: baseline; see :mod:`~aml_client.bench.bluegreen`); a capacity search runs once for each
    deployments: list[str] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if self.arrival not in ARRIVALS:
            raise ValueError(f"arrival must be one of {ARRIVALS}, got {self.arrival!r}")
        if self.mode == "open" and not (self.rate and self.rate > 0):
            raise ValueError("an open-model run needs a rate above 0 requests/s")
        if self.users < 1:
            raise ValueError("users must be at least 1")
        if self.spawn_rate <= 0:
            raise ValueError("spawn rate must be above 0")
        if self.duration_s is not None and self.duration_s <= 0:
            raise ValueError("duration must be above 0")
        if self.max_requests is not None and self.max_requests < 1:
            raise ValueError("requests must be at least 1")
        if self.workers < 1:
            raise ValueError("workers must be at least 1")
        if self.max_senders is not None and self.max_senders < 1:
            raise ValueError("max senders must be at least 1")
        if self.deployments is not None:
            self.deployments = list(self.deployments)
            if len(self.deployments) < 2 or len(set(self.deployments)) != len(self.deployments):
                raise ValueError("a blue/green run needs at least two distinct deployments")

    @property
    def senders_cap(self) -> int:
        """Most open-model requests in flight at once, over every load process."""
        if self.max_senders is not None:
            return self.max_senders
        return default_max_senders(self.rate or 1.0)

    @property
    def bounded(self) -> bool:
        return (
            self.duration_s is not None
            or self.max_requests is not None
            or self.capacity is not None
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BenchPlan:
        known = {k: v for k, v in data.items() if k in cls.__dataclass_fields__}
        return cls(**known)

    def share(self, index: int, count: int) -> Share:
        """The part of this plan that load process ``index`` of ``count`` carries out."""
        if not 0 <= index < count:
            raise ValueError(f"share index {index} outside 0..{count - 1}")
        quota = None if self.max_requests is None else split_count(self.max_requests, count, index)
        return Share(plan=self, index=index, count=count, quota=quota)

    def describe(self) -> str:
        """One line for people, e.g. ``closed model, 20 users (spawn 20/s), 60 s``."""
        lanes = f" of each of {', '.join(self.deployments)}" if self.deployments else ""
        if self.capacity is not None:
            cap = self.capacity
            return (
                f"capacity search{lanes} from {cap['start_rps']:g} up to {cap['max_rps']:g} "
                f"req/s ({self.arrival} arrivals), objectives {', '.join(cap['objectives'])}"
            )
        if self.mode == "open":
            head = (
                f"open model, {self.rate:g} req/s {self.arrival} arrivals, up to "
                f"{self.senders_cap} sender{'' if self.senders_cap == 1 else 's'}"
            )
        else:
            head = (
                f"closed model, {self.users} user{'' if self.users == 1 else 's'} "
                f"(spawn {self.spawn_rate:g}/s)"
            )
        bounds = []
        if self.duration_s is not None:
            bounds.append(f"{self.duration_s:g} s")
        if self.max_requests is not None:
            bounds.append(f"{self.max_requests:,} request{'' if self.max_requests == 1 else 's'}")
        tail = " or ".join(bounds) if bounds else "until stopped"
        procs = f", {self.workers} load processes" if self.workers > 1 else ""
        interleaved = (
            f"; the same bodies to {', '.join(self.deployments)} in turn"
            if self.deployments else ""
        )
        return f"{head}, {tail}{procs}{interleaved}"


@dataclass
class Share:
    """One load process's part of a plan: its request quota and its slots of the schedule."""

    plan: BenchPlan
    index: int = 0
    count: int = 1
    quota: int | None = None

    def with_plan(self, plan: BenchPlan) -> Share:
        return replace(self, plan=plan)

    @property
    def max_senders(self) -> int:
        """This process's part of the plan's cap on concurrent senders."""
        return max(1, math.ceil(self.plan.senders_cap / self.count))

    def offsets_s(self) -> Iterator[float]:
        """Due times (seconds after the start) of this share's open-model requests, in order."""
        plan = self.plan
        assert plan.rate is not None
        return arrival_offsets_s(
            plan.rate, plan.arrival, seed=plan.seed, index=self.index, count=self.count
        )


def arrival_offsets_s(
    rate: float, arrival: str = "constant", *, seed: int = 1, index: int = 0, count: int = 1
) -> Iterator[float]:
    """Endless due times for share ``index`` of ``count`` of a ``rate`` requests/s schedule.

    constant: global slot ``j`` is due at ``j / rate``; share ``i`` takes ``j = i, i+W, i+2W…``,
    so W processes together reproduce the single-process schedule exactly.
    poisson: share ``i`` draws its own exponential gaps at ``rate / W`` from ``seed`` and ``i``.
    """
    if arrival == "constant":
        j = index
        while True:
            yield j / rate
            j += count
    elif arrival == "poisson":
        rng = random.Random(f"{seed}:{index}:{count}")
        share_rate = rate / count
        t = 0.0
        while True:
            t += rng.expovariate(share_rate)
            yield t
    else:
        raise ValueError(f"unknown arrival process {arrival!r}")
