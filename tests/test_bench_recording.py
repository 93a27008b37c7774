"""Per-process recording: failure kinds, intervals, and exact merging of worker deltas."""

from __future__ import annotations

import json
import random
import socket
import ssl

import pytest

from aml_client.bench.recording import IntervalSeries, Recording, classify_failure


@pytest.mark.parametrize(
    ("status", "error", "kind"),
    [
        (200, None, None),
        (204, None, None),
        (401, None, "http_401"),
        (503, RuntimeError("503 Service Unavailable"), "http_503"),
        (0, TimeoutError("timed out"), "timeout"),
        (0, socket.timeout("timed out"), "timeout"),  # noqa: UP041 - the alias geventhttpclient raises
        (0, ssl.SSLCertVerificationError("certificate verify failed"), "tls"),
        (0, ConnectionRefusedError(111, "refused"), "connection"),
        (0, None, "connection"),
        (200, ConnectionResetError("reset while reading the body"), "connection"),
    ],
)
def test_classify_failure(status: int, error: BaseException | None, kind: str | None) -> None:
    assert classify_failure(status, error) == kind


def _samples(n: int, seed: int) -> list[tuple[int, float, str | None, int]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        latency = int(rng.lognormvariate(10, 0.8))  # ~22 ms median, long tail
        failure = rng.choice([None] * 30 + ["http_503", "timeout"])
        out.append((latency, 1_800_000_000 + i * 0.003, failure, latency + rng.randrange(0, 5000)))
    return out


def _fingerprint(rec: Recording) -> dict:
    ps = [0, 1, 25, 50, 75, 90, 99, 99.9, 99.99, 100]
    assert rec.corrected is not None
    return {
        "requests": rec.requests,
        "failures": rec.failures,
        "latency": (
            rec.latency.count,
            rec.latency.min_us,
            rec.latency.max_us,
            rec.latency.sum_us,
            rec.latency.percentiles_us(ps),
        ),
        "corrected": (rec.corrected.count, rec.corrected.max_us, rec.corrected.percentiles_us(ps)),
        "counts": list(rec.latency.histogram.counts),
        "intervals": [
            (
                i.start_s,
                i.requests,
                i.failures,
                i.latency.count,
                i.latency.max_us,
                i.latency.percentile_us(99),
            )
            for i in rec.series.intervals()
        ],
    }


def test_merged_worker_deltas_equal_one_recording_of_every_sample() -> None:
    samples = _samples(6000, seed=3)
    single = Recording(open_model=True)
    for s in samples:
        single.record(*s)

    workers = [Recording(open_model=True) for _ in range(3)]
    master = Recording(open_model=True)
    for n, s in enumerate(samples):
        workers[n % 3].record(*s)
        if n % 997 == 0:  # periodic reports, as Locust sends them, through JSON like the wire
            for w in workers:
                master.merge_delta(json.loads(json.dumps(w.take_delta())))
    for w in workers:  # the explicit final flush
        master.merge_delta(json.loads(json.dumps(w.take_delta())))

    assert _fingerprint(master) == _fingerprint(single)
    assert master.requests == 6000
    assert sum(master.failures.values()) == sum(1 for s in samples if s[2])


def test_take_delta_starts_afresh() -> None:
    rec = Recording()
    rec.record(1000, 1_800_000_000.5, "http_500")
    delta = rec.take_delta()
    assert delta["requests"] == 1 and delta["failures"] == {"http_500": 1}
    again = rec.take_delta()
    assert again["requests"] == 0 and again["failures"] == {} and again["series"]["windows"] == {}


def test_intervals_are_epoch_aligned_and_clipped_to_the_run() -> None:
    series = IntervalSeries(1.0)
    for t, lat in [(100.2, 10), (100.9, 20), (101.1, 30), (103.5, 40)]:
        series.add(t, lat, failed=lat == 30)
    intervals = series.intervals(started_at=100.2, ended_at=103.6)
    assert [(i.start_s, i.end_s, i.requests, i.failures) for i in intervals] == [
        (100.2, 101.0, 2, 0),
        (101.0, 102.0, 1, 1),
        (103.0, 103.6, 1, 0),
    ]


def test_series_coarsens_when_long_and_keeps_every_sample() -> None:
    series = IntervalSeries(1.0, max_windows=8)
    for second in range(40):
        series.add(1000.0 + second, 1000 + second, failed=False)
    assert series.width_s >= 8
    assert len(series.windows) <= 8
    assert sum(w.requests for w in series.windows.values()) == 40
    assert max(w.latency.max_us for w in series.windows.values()) == 1039


def test_merge_of_a_coarser_series_coarsens_the_receiver() -> None:
    fine, coarse = IntervalSeries(1.0), IntervalSeries(4.0)
    fine.add(1001.5, 10, False)
    coarse.add(1002.5, 20, True)
    fine.merge_encoded(coarse.encode())
    assert fine.width_s == 4.0
    (window,) = fine.windows.values()
    assert (window.requests, window.failures, window.latency.count) == (2, 1, 2)


def test_snapshot_reports_the_corrected_latency_in_an_open_model() -> None:
    rec = Recording(open_model=True)
    rec.record(20_000, 1.0, None, corrected_us=900_000)
    snap = rec.snapshot()
    assert snap["measure"] == "corrected"
    assert snap["max_us"] == 900_000
    assert rec.late == 1
