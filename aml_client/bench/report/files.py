"""HdrHistogram's own file formats: the percentile distribution (.hgrm) and interval log (.hlog).

Other tools (HdrHistogram's plotter, ``hdrh``'s log reader) read these files, so they keep
HdrHistogram's formats exactly, with two fixes for ``hdrh`` 0.10.8 (see :class:`_LogWriter`).
:func:`read_hlog` reads the intervals back, for ``amlc report compare``'s confidence intervals.
"""

from __future__ import annotations

import io
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader, HistogramLogWriter

from aml_client.bench.hdr import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES, LatencyRecorder

__all__ = ["HlogInterval", "read_hlog", "write_hgrm", "write_hlog"]


def write_hgrm(recorder: LatencyRecorder, path: Path) -> None:
    """HdrHistogram's percentile distribution (.hgrm) in milliseconds.

    hdrh 0.10.8 leaves the StdDeviation footer in microseconds and prints the count as a float;
    the footer is rewritten in Java's format, with the exact mean, standard deviation and max.
    """
    buffer = io.BytesIO()
    if recorder.count:
        recorder.histogram.output_percentile_distribution(buffer, 1000.0)
    else:
        buffer.write(b"%12s %14s %10s %14s\n\n" % (
            b"Value", b"Percentile", b"TotalCount", b"1/(1-Percentile)"))
    body = b"".join(
        line for line in buffer.getvalue().splitlines(keepends=True) if not line.startswith(b"#[")
    )
    digits = SIGNIFICANT_FIGURES
    footer = (
        f"#[Mean    = {recorder.mean_us / 1000:12.{digits}f}, "
        f"StdDeviation   = {recorder.stdev_us / 1000:12.{digits}f}]\n"
        f"#[Max     = {recorder.max_us / 1000:12.{digits}f}, "
        f"Total count    = {recorder.count:12d}]\n"
        f"#[Buckets = {recorder.histogram.bucket_count:12d}, "
        f"SubBuckets     = {recorder.histogram.sub_bucket_count:12d}]\n"
    )
    with open(path, "wb") as handle:
        handle.write(body + footer.encode("ascii"))


class _LogWriter(HistogramLogWriter):  # type: ignore[misc]  # hdrh is untyped
    """hdrh's interval-log writer with two fixes for hdrh 0.10.8.

    Its ``output_start_time`` crashes (and would read milliseconds as seconds), and its interval
    lines floor the interval max to whole units; both are written as Java's writer does.
    """

    def output_start_time(self, start_time_msec: float) -> None:
        # Floored to the millisecond printed: a StartTime above the BaseTime would put the
        # first interval before the log's start, and hdrh's reader would skip it.
        seconds = math.floor(float(start_time_msec)) / 1000.0
        when = datetime.fromtimestamp(seconds, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
        self.log.write(f"#[StartTime: {seconds:.3f} (seconds since epoch), {when}]\n")

    def output_interval(self, recorder: LatencyRecorder, start_s: float, end_s: float) -> None:
        """One interval line: start and length in seconds (from the base time), max in ms.

        Never below zero: the base time's round trip through milliseconds can put the first
        interval a fraction of a microsecond before it, and hdrh's reader skips a line that
        starts "-0.000" without a word."""
        offset = max(0.0, start_s - self.base_time / 1000.0)
        blob = recorder.histogram.encode().decode("ascii")
        self.log.write(
            f"{offset:.3f},{max(0.0, end_s - start_s):.3f},{recorder.max_us / 1000.0:.3f},"
            f"{blob}\n"
        )


def write_hlog(
    intervals: Iterable[Any], started_at: float, path: Path, *, comment: str | None = None
) -> None:
    """The interval histograms as an HdrHistogram log (timestamps relative to ``started_at``).

    Interval max values are exact, in milliseconds (the convention of HdrHistogram's tools).
    """
    start_ms = started_at * 1000.0
    with open(path, "w", encoding="utf-8") as handle:
        writer = _LogWriter(handle)
        writer.output_comment("[Logged with amlc]")
        if comment:
            writer.output_comment(comment)
        writer.output_log_format_version()
        writer.output_start_time(start_ms)
        writer.base_time = start_ms
        writer.output_base_time(start_ms)
        writer.output_legend()
        for interval in intervals:
            writer.output_interval(interval.latency, interval.start_s, interval.end_s)


@dataclass
class HlogInterval:
    """One interval read back from a ``.hlog``: its start (s, from the log's base), length and
    histogram (values in µs)."""

    start_s: float
    length_s: float
    histogram: HdrHistogram


def read_hlog(path: Path) -> list[HlogInterval]:
    """Every interval of an amlc ``.hlog`` file, in order (empty when the file is missing)."""
    if not path.is_file():
        return []
    reader = HistogramLogReader(str(path), HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES))
    out = []
    try:
        while (interval := reader.get_next_interval_histogram()) is not None:
            start = interval.get_start_time_stamp() / 1000.0
            end = interval.get_end_time_stamp() / 1000.0
            out.append(HlogInterval(start, max(end - start, 0.0), interval))
    finally:
        reader.close()
    return out
