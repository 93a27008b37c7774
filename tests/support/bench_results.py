"""A benchmark result with known latencies, built without running a load test, for the report
and ``amlc report`` tests. Its configuration and environment hold :data:`SECRET` in every place
a credential could hide, so a test can check that no written file keeps it."""

from __future__ import annotations

import random

from aml_client.bench.hdr import LatencyRecorder
from aml_client.bench.result import BenchResult, Interval

START = 1_790_000_000.25  # 2026-09-21T14:13:20.25Z
SECRET = "sekrit-9f8e7d6c5b4a-key"


def synthetic_result(
    *,
    seconds: int = 20,
    per_second: int = 100,
    open_model: bool = False,
    seed: int = 1,
    base_us: int = 20_000,
    endpoint: str = "local",
) -> BenchResult:
    """A run with known latencies; in the open model second 5 holds a 1 s stall."""
    rng = random.Random(seed)
    latency, corrected = LatencyRecorder(), LatencyRecorder()
    intervals = []
    for sec in range(seconds):
        window = LatencyRecorder()
        for i in range(per_second):
            value = int(rng.gauss(base_us, base_us / 20))
            stall = max(1_000_000 - i * 10_000, 0) if open_model and sec == 5 else 0
            latency.record(value)
            corrected.record(value + stall)
            window.record(value + stall)
        failures = 2 if sec == 3 else 0
        intervals.append(Interval(START + sec, START + sec + 1, window, per_second, failures))
    config = {
        "mode": "open" if open_model else "closed",
        "users": 10,
        "rate": per_second if open_model else None,
        "arrival": "constant" if open_model else None,
        "endpoint": endpoint,
        "scoring_uri": f"http://127.0.0.1:5001/score?code={SECRET}",
        "api_key": SECRET,
        "headers": {"Authorization": f"Bearer {SECRET}", "X-Other": "ok"},
        "auth_header": f"Bearer {SECRET}",
        "payload": {"rows": 2, "bytes": 431},
    }
    return BenchResult(
        config=config,
        started_at=START,
        ended_at=START + seconds,
        latency=latency,
        corrected=corrected if open_model else None,
        requests=seconds * per_second,
        failures={"http_503": 2},
        intervals=intervals,
        environment={"workers": 1, "proxy_key": SECRET},
    )
