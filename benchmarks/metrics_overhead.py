"""What the live metrics cost ``amlc bench``: throughput with and without an exporter.

Not a test: run it by hand::

    python benchmarks/metrics_overhead.py [--seconds 6] [--rounds 4] [--users 16] [--workers 1]

Against one trivial endpoint on 127.0.0.1 (``bench_throughput.start_endpoint``: nginx when
installed, else a small asyncio server), the same closed-model run is repeated in interleaved
rounds, the order rotated each round so that neither variant always runs first:

* ``none`` — no exporter;
* ``prometheus`` — ``--metrics-port`` with a scraper reading ``/metrics`` every second;
* ``otlp`` — ``--otlp-endpoint`` pushing every second (``OTEL_METRIC_EXPORT_INTERVAL=1000``)
  to a local receiver that reads and acknowledges each push.

The load process computes the live numbers once a second whatever the exporter; ``amlc bench``
itself serves or pushes them. Each variant's figure is the median over rounds of its ratio to
the ``none`` run of the same round: throughput (the summary's requests/s; cost ``1 - ratio``)
and CPU per request (user + system time of ``amlc bench`` and its load process, start-up
included, over the requests sent; and the load process's own CPU while it ran, from the
summary; extra ``ratio - 1``). On a shared machine throughput swings
with the neighbours' load; CPU per request much less. Rounds are interleaved so drifts in the
background load touch every variant alike. Last, the CPU of one update, measured directly.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from bench_throughput import BODY, ROOT, _free_port, start_endpoint  # noqa: E402


class _Sink(BaseHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()


def _scrape(port: int, stop: threading.Event) -> None:
    while not stop.wait(1.0):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as r:
                r.read()
        except OSError:
            pass


def run(variant: str, url: str, args: argparse.Namespace, tmp: Path,
        sink: str) -> tuple[float, float, float]:
    """One run: requests/s, CPU µs per request of ``amlc bench`` and its load process (start-up
    included), and of the load process alone while it ran (the summary's mean CPU)."""
    env = dict(os.environ, AMLC_SCORING_URI=url, AMLC_HOME=str(tmp / "amlc-home"),
               OTEL_METRIC_EXPORT_INTERVAL="1000")
    env.pop("AMLC_KEY", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    payload = tmp / "rows.json"
    payload.write_bytes(BODY)
    extra: list[str] = []
    stop = threading.Event()
    scraper = None
    if variant == "prometheus":
        port = _free_port()
        extra = ["--metrics-port", str(port), "--metrics-linger", "5s"]
        scraper = threading.Thread(target=_scrape, args=(port, stop), daemon=True)
        scraper.start()
    elif variant == "otlp":
        extra = ["--otlp-endpoint", sink, "--metrics-linger", "5s"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(
        [sys.executable, "-m", "aml_client", "bench", "--payload", str(payload),
         "-u", str(args.users), "--duration", f"{args.seconds}s", "--workers", str(args.workers),
         "--json", "--report-dir", str(tmp / "reports"), *extra],
        env=env, capture_output=True, text=True,
    )
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    stop.set()
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    summary = json.loads(done.stdout)
    if summary["failures"]["total"]:
        raise RuntimeError(f"amlc bench saw failures: {summary['failures']}")
    cpu_s = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    load_s = (summary["validity"]["cpu_mean_percent"] or 0.0) / 100 * summary["duration_s"]
    return (float(summary["throughput_rps"]), cpu_s / summary["requests"] * 1e6,
            load_s / summary["requests"] * 1e6)


def per_second_cost_ms(windows: int = 120, per_window: int = 2000) -> dict[str, float]:
    """CPU milliseconds of one update on a long run's recording (``windows`` seconds of
    ``per_window`` requests): the load process's :func:`live_numbers` (once a second), and
    ``amlc bench``'s rendering of the Prometheus text (once a scrape)."""
    from prometheus_client import CollectorRegistry, generate_latest

    from aml_client.bench.metrics import LiveMetrics, live_numbers
    from aml_client.bench.metrics_export import _Collector
    from aml_client.bench.recording import Recording
    from aml_client.bench.report import slo

    rec = Recording(interval_s=1.0)
    t0 = 1_700_000_000.0
    for w in range(windows):
        for i in range(per_window):
            rec.record(1000 + (i * 7919) % 50_000, t0 + w + i / per_window,
                       failure="http_503" if i % 100 == 0 else None)
    state = LiveMetrics(objectives=slo.parse_slos(["p99<=200ms", "error_rate<=1%"]))
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_Collector(state))
    n = 50
    start = time.process_time()
    for k in range(n):
        numbers = live_numbers(rec, in_flight=16, sent=rec.requests, now=t0 + windows + k)
    numbers_ms = (time.process_time() - start) / n * 1000
    state.update(numbers)
    start = time.process_time()
    for _ in range(n):
        generate_latest(registry)
    render_ms = (time.process_time() - start) / n * 1000
    return {"live_numbers": numbers_ms, "prometheus_render": render_ms}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=6)
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--users", type=int, default=16)
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    variants = ["none", "prometheus", "otlp"]
    figures: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    load_cpu: dict[str, list[float]] = {v: [] for v in variants}
    sink_server = ThreadingHTTPServer(("127.0.0.1", 0), _Sink)
    threading.Thread(target=sink_server.serve_forever, daemon=True).start()
    sink = f"http://127.0.0.1:{sink_server.server_address[1]}"
    with tempfile.TemporaryDirectory() as tmp_text:
        tmp = Path(tmp_text)
        proc, port, kind = start_endpoint(tmp)
        url = f"http://127.0.0.1:{port}/score"
        print(f"endpoint: {kind}; {args.users} users, {args.workers} load process(es), "
              f"{args.seconds} s per run, {args.rounds} rounds on {os.cpu_count()} cores")
        try:
            for round_index in range(args.rounds):
                shift = round_index % len(variants)
                for variant in variants[shift:] + variants[:shift]:
                    rps, us, load_us = run(variant, url, args, tmp, sink)
                    figures[variant].append(rps)
                    cpu[variant].append(us)
                    load_cpu[variant].append(load_us)
                    print(f"round {round_index + 1}: {variant:<10} {rps:10,.1f} req/s "
                          f"{us:8.1f} CPU µs/request (load process while running: "
                          f"{load_us:.1f})", flush=True)
                    time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait()
            sink_server.shutdown()
    print()
    print(f"{'variant':<10} {'median req/s':>13} {'cost (median of rounds)':>24}   "
          "(each round: variant / none)")
    for variant in variants:
        median = statistics.median(figures[variant])
        ratios = [v / n for v, n in zip(figures[variant], figures["none"], strict=True)]
        cost = 1 - statistics.median(ratios)
        print(f"{variant:<10} {median:13,.1f} {cost:24.1%}   "
              f"({', '.join(f'{r:.3f}' for r in ratios)})")
    for label, table in (("CPU µs/request, all", cpu),
                         ("CPU µs/request, load process running", load_cpu)):
        print()
        print(f"{label:<38} {'extra (median of rounds)':>25}   (each round: variant / none)")
        for variant in variants:
            ratios = [v / n for v, n in zip(table[variant], table["none"], strict=True)]
            print(f"  {variant:<10} {statistics.median(table[variant]):25.1f} "
                  f"{statistics.median(ratios) - 1:25.1%}   "
                  f"({', '.join(f'{r:.3f}' for r in ratios)})")
    costs = per_second_cost_ms()
    print()
    print("CPU per update on a 120 s run's recording (240,000 requests, 120 windows):")
    print(f"  live_numbers (load process, once a second): {costs['live_numbers']:.2f} ms "
          f"= {costs['live_numbers'] / 10:.2f} % of one core")
    print(f"  Prometheus text (amlc bench, once a scrape): {costs['prometheus_render']:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
