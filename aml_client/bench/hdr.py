"""Latency recording on HdrHistogram: one wrapper, microseconds everywhere.

``hdrh`` is used as-is, but three of its habits would quietly distort a benchmark, so they are
handled once here:

* ``record_value`` returns ``False`` and records nothing for a value outside the range: such
  values are counted in :attr:`LatencyRecorder.out_of_range` and reported, never dropped silently.
* ``get_max_value`` returns the top edge of the maximum's bucket (up to 0.1 % high): the exact
  worst case (and best case) is kept beside the histogram.
* its mean and standard deviation come from bucket midpoints: the exact sum and sum of squares are
  kept too (Python integers, so merging stays exact).

Percentile definition (nearest rank): with ``N`` samples, the value at percentile ``p`` is the
``ceil(p/100 * N)``-th smallest recorded value (at least the first), i.e. the smallest recorded
``v`` such that at least ``p`` % of the samples are ``<= v``; so any ``p`` above ``(N-1)/N`` is the
maximum. It is reported at the top of its bucket (3 significant digits), clamped to the exact
minimum and maximum. hdrh's own ``get_value_at_percentile`` rounds the rank to the nearest
integer instead (``p99.9`` of 775 samples is then the 774th, not the max), so it is not used.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Iterable
from fractions import Fraction
from itertools import accumulate
from typing import Any

from hdrh.histogram import HdrHistogram

__all__ = [
    "HIGHEST_US",
    "LOWEST_US",
    "SIGNIFICANT_FIGURES",
    "LatencyRecorder",
    "nearest_rank",
]

#: Smallest distinguishable latency: 1 µs.
LOWEST_US = 1
#: Largest recordable latency: 1 hour. hdrh would accept a little more (its last bucket ends
#: higher); anything above this is counted as out of range so the documented range is the real one.
HIGHEST_US = 3_600_000_000
#: Value precision: 0.1 % of any value (1 µs up to 1 ms, 1 ms or better up to 1 s).
SIGNIFICANT_FIGURES = 3


def nearest_rank(p: float, count: int) -> int:
    """The 1-based rank of percentile ``p`` (0..100) among ``count`` samples: ``ceil(p/100 * N)``,
    at least 1. Exact (decimal ``p`` such as 99.9 is not rounded through binary floating point)."""
    if count <= 0:
        return 0
    rank = math.ceil(Fraction(repr(float(p))) * count / 100)
    return min(max(rank, 1), count)


def _new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)


class LatencyRecorder:
    """An HdrHistogram of latencies in microseconds plus the exact facts it cannot hold.

    Attributes:
        histogram: the underlying ``hdrh`` histogram (1 µs .. 1 h, 3 significant figures).
        count: samples recorded in the histogram (out-of-range ones excluded).
        min_us / max_us: exact smallest / largest recorded latency (0 when empty).
        out_of_range: samples refused because they were negative or above :data:`HIGHEST_US`.
        sum_us / sum_sq_us: exact sum and sum of squares of recorded latencies.
    """

    __slots__ = (
        "_counts",
        "_half",
        "_half_magnitude",
        "_mask",
        "_shift",
        "count",
        "histogram",
        "max_us",
        "min_us",
        "out_of_range",
        "sum_sq_us",
        "sum_us",
    )

    def __init__(self) -> None:
        self.histogram: HdrHistogram = _new_histogram()
        self._bind()
        self.count = 0
        self.min_us = 0
        self.max_us = 0
        self.out_of_range = 0
        self.sum_us = 0
        self.sum_sq_us = 0

    def _bind(self) -> None:
        """Cache the histogram's bucket constants for :meth:`record`'s inlined index."""
        h = self.histogram
        assert h.unit_magnitude == 0  # lowest value 1 µs: no unit shift
        self._counts = h.counts
        self._mask = h.sub_bucket_mask
        self._half_magnitude = h.sub_bucket_half_count_magnitude
        self._half = h.sub_bucket_half_count
        self._shift = h.sub_bucket_half_count_magnitude + 1

    # -- recording -------------------------------------------------------------------------
    def record(self, latency_us: int | float) -> None:
        """Record one latency; a float is rounded to the nearest microsecond.

        A value outside 0 .. :data:`HIGHEST_US` is counted in :attr:`out_of_range` rather than
        recorded, so a broken clock or a stuck request shows up in the report.

        The hot path of every benchmark: hdrh's ``record_value`` index arithmetic (five Python
        calls) is inlined here, with the same result (a test compares the counts).
        """
        value = latency_us if type(latency_us) is int else round(latency_us)
        if value < 0 or value > HIGHEST_US:
            self.out_of_range += 1
            return
        bucket = (value | self._mask).bit_length() - self._shift
        index = ((bucket + 1) << self._half_magnitude) + (value >> bucket) - self._half
        self._counts[index] += 1
        h = self.histogram
        h.total_count += 1
        if self.count == 0:
            self.min_us = self.max_us = value
            h.min_value = min(h.min_value, value)
            h.max_value = max(h.max_value, value)
        elif value > self.max_us:
            self.max_us = h.max_value = value
        elif value < self.min_us:
            self.min_us = h.min_value = value
        self.count += 1
        self.sum_us += value
        self.sum_sq_us += value * value

    def record_many(self, latencies_us: Iterable[int | float]) -> None:
        """Record every value of an iterable (tests, imports of other tools' data)."""
        for value in latencies_us:
            self.record(value)

    def merge(self, other: LatencyRecorder) -> None:
        """Add another recorder's samples: the result equals one recorder fed every sample."""
        if other.count:
            self.histogram.add(other.histogram)
            if self.count == 0:
                self.min_us, self.max_us = other.min_us, other.max_us
            else:
                self.min_us = min(self.min_us, other.min_us)
                self.max_us = max(self.max_us, other.max_us)
            self.count += other.count
            self.sum_us += other.sum_us
            self.sum_sq_us += other.sum_sq_us
        self.out_of_range += other.out_of_range

    def reset(self) -> None:
        """Forget every sample (used between measurement intervals)."""
        self.histogram.reset()
        self.count = self.min_us = self.max_us = self.out_of_range = 0
        self.sum_us = self.sum_sq_us = 0

    def copy(self) -> LatencyRecorder:
        """An independent recorder holding the same samples."""
        clone = LatencyRecorder()
        clone.merge(self)
        return clone

    # -- shipping between processes ----------------------------------------------------------
    def encode(self) -> dict[str, Any]:
        """A JSON- and msgpack-safe dict; :meth:`decode` restores an identical recorder."""
        return {
            "hist": self.histogram.encode().decode("ascii"),
            "min_us": self.min_us,
            "max_us": self.max_us,
            "out_of_range": self.out_of_range,
            "count": self.count,
            # Sums can exceed 64 bits over a long run: strings keep them exact through msgpack.
            "sum_us": str(self.sum_us),
            "sum_sq_us": str(self.sum_sq_us),
        }

    @classmethod
    def decode(cls, data: dict[str, Any]) -> LatencyRecorder:
        """Rebuild a recorder from :meth:`encode` output.

        The blob is added into a fresh histogram (not used as decoded) because a decoded
        ``hdrh`` histogram may hold a truncated counts array that cannot record further values.
        """
        recorder = cls()
        blob = data["hist"]
        recorder.histogram.decode_and_add(blob.encode("ascii") if isinstance(blob, str) else blob)
        recorder.count = int(recorder.histogram.get_total_count())
        if "count" in data and int(data["count"]) != recorder.count:
            raise ValueError(
                f"encoded histogram holds {recorder.count} samples but says {data['count']}"
            )
        recorder.min_us = int(data.get("min_us", 0))
        recorder.max_us = int(data.get("max_us", 0))
        recorder.out_of_range = int(data.get("out_of_range", 0))
        if "sum_us" in data:
            recorder.sum_us = int(data["sum_us"])
            recorder.sum_sq_us = int(data.get("sum_sq_us", 0))
        else:  # an encoding without sums: fall back to the histogram's estimate
            mean = recorder.histogram.get_mean_value()
            std = recorder.histogram.get_stddev()
            recorder.sum_us = round(mean * recorder.count)
            recorder.sum_sq_us = round((std * std + mean * mean) * recorder.count)
        return recorder

    # -- reading -----------------------------------------------------------------------------
    def _clamp(self, value: int) -> int:
        # A bucket's top edge may lie above the exact max (or its bottom below the min).
        return max(self.min_us, min(int(value), self.max_us))

    def percentile_us(self, p: float) -> int:
        """Latency at percentile ``p`` (0..100), nearest rank (see the module), clamped."""
        return self.percentiles_us([p])[float(p)]

    def percentiles_us(self, ps: Iterable[float]) -> dict[float, int]:
        """Several percentiles at once: ``{50.0: 20031, 99.0: 23743}``.

        Nearest rank on the recorded values (see the module docstring); the cumulative counts
        are summed in C over the recorded span only (min .. max), so it stays cheap for
        per-interval use.
        """
        wanted = [float(p) for p in ps]
        for p in wanted:
            if not 0 <= p <= 100:
                raise ValueError(f"percentile must be within 0..100, got {p}")
        if self.count == 0:
            return {p: 0 for p in wanted}
        h = self.histogram
        lo = h.get_counts_array_index(self.min_us)
        hi = h.get_counts_array_index(self.max_us)
        cumulative = list(accumulate(h.counts[lo : hi + 1]))
        if not cumulative or cumulative[-1] != h.get_total_count():  # extremes out of step
            lo, cumulative = 0, list(accumulate(h.counts[: h.counts_len]))
        result = {}
        for p in wanted:
            index = lo + bisect_left(cumulative, nearest_rank(p, self.count))
            value = h.get_value_from_index(min(index, h.counts_len - 1))
            edge = (
                h.get_highest_equivalent_value(value) if p else h.get_lowest_equivalent_value(value)
            )
            result[p] = self._clamp(edge)
        return result

    @property
    def mean_us(self) -> float:
        """Exact arithmetic mean of the recorded latencies (0.0 when empty)."""
        return self.sum_us / self.count if self.count else 0.0

    @property
    def stdev_us(self) -> float:
        """Exact population standard deviation of the recorded latencies (0.0 when empty)."""
        if not self.count:
            return 0.0
        n = self.count
        # Integer arithmetic until the last step: no catastrophic cancellation.
        variance_n2 = n * self.sum_sq_us - self.sum_us * self.sum_us
        return math.sqrt(max(variance_n2, 0)) / n

    def __len__(self) -> int:
        return self.count

    def __repr__(self) -> str:
        return (
            f"LatencyRecorder(count={self.count}, min_us={self.min_us}, max_us={self.max_us}, "
            f"out_of_range={self.out_of_range})"
        )
