"""scikit-learn vs ONNX deployment, and what the local endpoint's front adds: one blue/green run.

Starts one local endpoint as ``amlc local up --deployment blue --deployment green:onnx
--traffic blue=50,green=50`` (one worker each, in a throwaway ``AMLC_HOME`` that reuses the
model cache), then sends the same payload, one request at a time, in four ways interleaved in
random order within every round, so drift (CPU frequency, other load on a shared machine) hits
all four alike:

    front -> blue    pinned with ``azureml-model-deployment: blue``   (scikit-learn)
    front -> green   pinned with ``azureml-model-deployment: green``  (ONNX, onnxruntime)
    direct -> blue   the deployment's own port, bypassing the front
    direct -> green

Latencies go into HdrHistogram (``aml_client.bench.hdr``: 3 significant figures, exact max);
the server's own ``run()`` time (``x-ms-run-fn-exec-ms``) is recorded too. Headline figures:

* ONNX vs scikit-learn: p50 / p99 / max through the front, and the ratio of medians;
* the front's added latency per deployment: median(front) - median(direct);
* capacity: requests per second each deployment sustains with twice as many clients as it has
  workers (every worker busy, one request waiting for each) for ``--capacity-s`` seconds, blue
  and green alternated twice.

    python -m benchmarks.local_deployments [-n 1000] [--rows 2] [--capacity-s 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
PERCENTILES = (50.0, 90.0, 99.0)


def _rows(count: int) -> list[dict[str, Any]]:
    """``count`` held-out rows (the test split), or the two sample rows when ``count`` is 2."""
    from aml_client.local import SAMPLE_ROWS

    if count == 2:
        return list(SAMPLE_ROWS)
    from aml_client.local._model import splits

    _, _, (x_test, _) = splits()
    rows: list[dict[str, Any]] = json.loads(x_test.head(count).to_json(orient="records"))
    return rows


def _start(home: Path) -> Any:
    from aml_client import local, paths

    cache = paths.cache_dir()  # the caller's cache: the model is trained once, ever
    cache.mkdir(parents=True, exist_ok=True)
    (home / "cache").symlink_to(cache, target_is_directory=True)
    os.environ["AMLC_HOME"] = str(home)
    return local.start(
        port=_free_port(),
        workers=1,
        detach=True,
        deployments=[local.parse_deployment("blue"), local.parse_deployment("green:onnx")],
        traffic=local.parse_traffic("blue=50,green=50"),
        report=lambda line: print(f"  {line}", file=sys.stderr),
    )


def _free_port() -> int:
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _summary(recorder: Any) -> dict[str, Any]:
    values = recorder.percentiles_us(PERCENTILES)
    return {
        "requests": recorder.count,
        "p50_ms": values[50.0] / 1000,
        "p90_ms": values[90.0] / 1000,
        "p99_ms": values[99.0] / 1000,
        "max_ms": recorder.max_us / 1000,
        "mean_ms": round(recorder.mean_us / 1000, 3),
    }


def measure_latency(info: Any, key: str, body: bytes, n: int, warmup: int) -> dict[str, Any]:
    import httpx

    from aml_client.bench.hdr import LatencyRecorder

    base = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    cases = {}
    for name in ("blue", "green"):
        port = info.deployment(name).port
        cases[f"front->{name}"] = (info.scoring_uri, {**base, "azureml-model-deployment": name})
        cases[f"direct->{name}"] = (f"http://127.0.0.1:{port}/score", base)
    latency = {case: LatencyRecorder() for case in cases}
    run_time = {case: LatencyRecorder() for case in cases}
    answers: dict[str, Any] = {}
    with httpx.Client(timeout=60) as client:

        def send(case: str) -> tuple[float, httpx.Response]:
            url, headers = cases[case]
            started = time.perf_counter_ns()
            response = client.post(url, content=body, headers=headers)
            elapsed_us = (time.perf_counter_ns() - started) / 1000
            if response.status_code != 200:
                raise SystemExit(f"{case}: HTTP {response.status_code} {response.text[:200]}")
            return elapsed_us, response

        for _ in range(warmup):
            for case in cases:
                send(case)
        for _ in range(n):
            order = list(cases)
            random.shuffle(order)
            for case in order:
                elapsed_us, response = send(case)
                latency[case].record(elapsed_us)
                run_time[case].record(float(response.headers["x-ms-run-fn-exec-ms"]) * 1000)
                answers.setdefault(case, response.json())
    results = {
        case: {**_summary(latency[case]), "run_p50_ms": run_time[case].percentile_us(50) / 1000}
        for case in cases
    }
    same = answers["front->blue"] == answers["front->green"]
    return {"results": results, "same_answer_blue_green": same}


def _load(
    url: str,
    body: bytes,
    headers: dict[str, str],
    deadline: float,
    slot: int,
    done: list[int],
    refused: list[int],
) -> None:
    """One closed-loop client until ``deadline``, counting answers in its own ``slot``."""
    import httpx

    with httpx.Client(timeout=60) as client:
        while time.monotonic() < deadline:
            response = client.post(url, content=body, headers=headers)
            if response.status_code == 200:
                done[slot] += 1
            else:
                refused[slot] += 1


def measure_capacity(info: Any, key: str, body: bytes, seconds: float) -> dict[str, float]:
    """Completed requests per second per deployment, 2 clients per worker, alternated."""

    totals = {"blue": [0, 0.0], "green": [0, 0.0]}
    for name in ("blue", "green", "blue", "green"):
        deployment = info.deployment(name)
        clients = 2 * deployment.workers
        headers = {
            "Authorization": f"Bearer {key}",
            "Content-Type": "application/json",
            "azureml-model-deployment": name,
        }
        done = [0] * clients
        refused = [0] * clients
        deadline = time.monotonic() + seconds

        started = time.monotonic()
        threads = [
            threading.Thread(
                target=_load, args=(info.scoring_uri, body, headers, deadline, i, done, refused)
            )
            for i in range(clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        totals[name][0] += sum(done)
        totals[name][1] += time.monotonic() - started
        if sum(refused):
            print(f"  capacity {name}: {sum(refused)} requests not answered 200", file=sys.stderr)
    return {name: round(count / elapsed, 1) for name, (count, elapsed) in totals.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--rounds", type=int, default=1000, help="rounds of 4 requests")
    parser.add_argument("--warmup", type=int, default=30, help="rounds not recorded")
    parser.add_argument("--rows", type=int, default=2, help="rows per request (2: samples)")
    parser.add_argument("--capacity-s", type=float, default=5.0, help="0 skips capacity")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from aml_client import local

    body = json.dumps({"Inputs": {"data": _rows(args.rows)}}).encode()
    with tempfile.TemporaryDirectory(prefix="amlc-bench-deployments-") as tmp:
        print("starting blue (scikit-learn) and green (ONNX)...", file=sys.stderr)
        info = _start(Path(tmp))
        try:
            keys = local.local_keys()
            assert keys is not None
            figures = measure_latency(info, keys[0], body, args.rounds, args.warmup)
            if args.capacity_s > 0:
                figures["capacity_rps"] = measure_capacity(info, keys[0], body, args.capacity_s)
        finally:
            local.stop()
    results = figures["results"]
    figures.update(
        {
            "rounds": args.rounds,
            "rows_per_request": args.rows,
            "model": info.model,
            "python": sys.version.split()[0],
            "cpus": os.cpu_count(),
            "load_average": [round(v, 2) for v in os.getloadavg()],
            "onnx_vs_sklearn_p50": round(
                results["front->green"]["p50_ms"] / results["front->blue"]["p50_ms"], 3
            ),
            "onnx_vs_sklearn_p99": round(
                results["front->green"]["p99_ms"] / results["front->blue"]["p99_ms"], 3
            ),
            "front_added_p50_ms": {
                name: round(
                    results[f"front->{name}"]["p50_ms"] - results[f"direct->{name}"]["p50_ms"], 3
                )
                for name in ("blue", "green")
            },
        }
    )
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"{args.rounds} rounds of 4 interleaved requests, {args.rows} rows each, model "
        f"{info.model}; python {figures['python']}, {figures['cpus']} CPUs, load average "
        f"{figures['load_average']} (HdrHistogram, 3 significant figures)"
    )
    header = f"{'path':<15}{'p50 ms':>9}{'p90 ms':>9}{'p99 ms':>9}{'max ms':>9}{'run() p50':>11}"
    print(header)
    for case, row in results.items():
        print(
            f"{case:<15}{row['p50_ms']:>9.2f}{row['p90_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['max_ms']:>9.2f}{row['run_p50_ms']:>11.2f}"
        )
    print(
        f"ONNX / scikit-learn through the front: p50 x{figures['onnx_vs_sklearn_p50']:.2f}, "
        f"p99 x{figures['onnx_vs_sklearn_p99']:.2f}; same answer: "
        f"{figures['same_answer_blue_green']}"
    )
    added = figures["front_added_p50_ms"]
    print(f"front's added p50: blue +{added['blue']:.2f} ms, green +{added['green']:.2f} ms")
    if "capacity_rps" in figures:
        rps = figures["capacity_rps"]
        print(f"capacity (req/s, 1 worker each): blue {rps['blue']}, green {rps['green']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
