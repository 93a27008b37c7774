"""Per-process measurement state: every request's latency, failures by kind, and intervals.

One :class:`Recording` lives in each load process. Workers ship it to the master as *deltas*
(:meth:`Recording.take_delta` returns what was recorded since the last call and starts afresh);
the master :meth:`Recording.merge_delta`-s them. Histograms travel encoded and are added, never
re-sampled, so the merged percentiles equal those of one histogram fed every sample.

Intervals are keyed by wall-clock windows aligned on the epoch (``floor(t / width)``), so windows
from different processes line up; widths are powers of two seconds and a long run coarsens by
merging neighbours, which keeps the number of windows (and the memory) bounded.

No Locust here: this module is imported by tests and by the master/worker glue alike.
"""

from __future__ import annotations

import math
import socket
import ssl
from dataclasses import dataclass, field
from typing import Any

from aml_client.bench.hdr import LatencyRecorder
from aml_client.bench.result import Interval

__all__ = ["IntervalSeries", "Recording", "classify_failure"]

#: Windows kept before neighbours are merged (each holds a full histogram, ~190 KB in memory).
MAX_INTERVALS = 400


def classify_failure(status_code: int, error: BaseException | None) -> str | None:
    """``None`` for a success, else the failure kind counted in the report.

    ``http_<code>`` for any non-2xx reply, ``redirect`` for a 3xx (never followed: the key
    must not go elsewhere), ``timeout`` when the request's deadline passed,
    ``tls`` for a certificate or handshake failure, ``connection`` for anything else that kept a
    reply from arriving (refused, reset, closed mid-reply).
    """
    if status_code >= 400:
        return f"http_{status_code}"
    if 300 <= status_code < 400:
        return "redirect"
    if error is None:
        return (
            None if status_code >= 200 else f"http_{status_code}" if status_code else "connection"
        )
    name = type(error).__name__.lower()
    if isinstance(error, TimeoutError | socket.timeout) or "timeout" in name:
        return "timeout"
    if isinstance(error, ssl.SSLError) or "ssl" in name or "certificate" in str(error).lower():
        return "tls"
    return "connection"


@dataclass
class _Window:
    latency: LatencyRecorder = field(default_factory=LatencyRecorder)
    requests: int = 0
    failures: int = 0

    def merge(self, other: _Window) -> None:
        self.latency.merge(other.latency)
        self.requests += other.requests
        self.failures += other.failures


class IntervalSeries:
    """Latency and throughput per wall-clock window (``width_s`` seconds, epoch-aligned)."""

    def __init__(self, width_s: float = 1.0, max_windows: int = MAX_INTERVALS) -> None:
        # Power-of-two widths let windows from different processes (and coarsened series) align.
        self.width_s = float(2 ** max(0, math.ceil(math.log2(max(width_s, 1.0)))))
        self.max_windows = max_windows
        self.windows: dict[int, _Window] = {}

    def add(self, end_epoch_s: float, latency_us: int, failed: bool) -> None:
        key = int(end_epoch_s // self.width_s)
        window = self.windows.get(key)
        if window is None:
            window = self.windows[key] = _Window()
            if len(self.windows) > self.max_windows:
                self.coarsen()
                return self.add(end_epoch_s, latency_us, failed)
        window.latency.record(latency_us)
        window.requests += 1
        if failed:
            window.failures += 1
        return None

    def coarsen(self) -> None:
        """Double the window width, merging neighbours."""
        merged: dict[int, _Window] = {}
        for key, window in self.windows.items():
            target = merged.get(key // 2)
            if target is None:
                merged[key // 2] = window
            else:
                target.merge(window)
        self.width_s *= 2
        self.windows = merged

    def encode(self) -> dict[str, Any]:
        return {
            "width_s": self.width_s,
            "windows": {
                str(k): {
                    "latency": w.latency.encode(),
                    "requests": w.requests,
                    "failures": w.failures,
                }
                for k, w in self.windows.items()
            },
        }

    def merge_encoded(self, data: dict[str, Any]) -> None:
        width = float(data["width_s"])
        while width > self.width_s:
            self.coarsen()
        factor = round(self.width_s / width)
        for key_text, item in data["windows"].items():
            key = int(key_text) // factor
            incoming = _Window(
                LatencyRecorder.decode(item["latency"]),
                int(item["requests"]),
                int(item["failures"]),
            )
            window = self.windows.get(key)
            if window is None:
                self.windows[key] = incoming
            else:
                window.merge(incoming)
        while len(self.windows) > self.max_windows:
            self.coarsen()

    def intervals(
        self, started_at: float | None = None, ended_at: float | None = None
    ) -> list[Interval]:
        """Windows in time order as :class:`Interval` (first/last clipped to the run)."""
        out = []
        for key in sorted(self.windows):
            window = self.windows[key]
            start, end = key * self.width_s, (key + 1) * self.width_s
            if started_at is not None:
                start = max(start, started_at)
            if ended_at is not None:
                end = min(end, max(ended_at, start))
            out.append(Interval(start, end, window.latency, window.requests, window.failures))
        return out

    def clear(self) -> None:
        self.windows = {}


class Recording:
    """What one process measured: latency (and corrected latency), counts, failures, windows."""

    def __init__(self, *, open_model: bool = False, interval_s: float = 1.0) -> None:
        self.open_model = open_model
        self.interval_s = interval_s
        self.latency = LatencyRecorder()
        self.corrected: LatencyRecorder | None = LatencyRecorder() if open_model else None
        self.requests = 0
        self.failures: dict[str, int] = {}
        self.series = IntervalSeries(interval_s)
        #: open model: requests sent later than due by more than 10 ms (load generator behind)
        self.late = 0

    def record(
        self,
        latency_us: int,
        end_epoch_s: float,
        failure: str | None = None,
        corrected_us: int | None = None,
    ) -> None:
        """One completed request. ``corrected_us`` (open model) is due time -> reply."""
        self.latency.record(latency_us)
        if corrected_us is not None and self.corrected is not None:
            self.corrected.record(corrected_us)
            if corrected_us - latency_us > 10_000:
                self.late += 1
        self.requests += 1
        if failure is not None:
            self.failures[failure] = self.failures.get(failure, 0) + 1
        # Over time, show what a client waiting on the schedule sees (the corrected latency).
        self.series.add(
            end_epoch_s,
            corrected_us if corrected_us is not None else latency_us,
            failure is not None,
        )

    def encode(self) -> dict[str, Any]:
        return {
            "open_model": self.open_model,
            "latency": self.latency.encode(),
            "corrected": self.corrected.encode() if self.corrected is not None else None,
            "requests": self.requests,
            "failures": dict(self.failures),
            "series": self.series.encode(),
            "late": self.late,
        }

    def take_delta(self) -> dict[str, Any]:
        """Everything recorded since the previous call, encoded; this recording starts afresh."""
        data = self.encode()
        self.latency = LatencyRecorder()
        self.corrected = LatencyRecorder() if self.open_model else None
        self.requests = 0
        self.failures = {}
        self.late = 0
        self.series.clear()
        return data

    def merge_delta(self, data: dict[str, Any]) -> None:
        """Add a delta from :meth:`take_delta` (another process's, typically)."""
        self.latency.merge(LatencyRecorder.decode(data["latency"]))
        if data.get("corrected") is not None:
            if self.corrected is None:
                self.corrected = LatencyRecorder()
                self.open_model = True
            self.corrected.merge(LatencyRecorder.decode(data["corrected"]))
        self.requests += int(data["requests"])
        for kind, count in data.get("failures", {}).items():
            self.failures[kind] = self.failures.get(kind, 0) + int(count)
        self.late += int(data.get("late", 0))
        self.series.merge_encoded(data["series"])

    @property
    def failure_count(self) -> int:
        return sum(self.failures.values())

    def snapshot(self) -> dict[str, Any]:
        """Numbers for live progress (cheap enough for once a second)."""
        source = self.corrected if self.corrected is not None else self.latency
        p = source.percentiles_us([50, 99]) if source.count else {50.0: 0, 99.0: 0}
        snap = {
            "requests": self.requests,
            "failures": self.failure_count,
            "p50_us": p[50.0],
            "p99_us": p[99.0],
            "max_us": source.max_us,
            "measure": "corrected" if self.corrected is not None else "latency",
        }
        return snap
