"""How close ``amlc bench --find-capacity`` comes to a capacity known in advance.

Each server (``tests/support/slots_server.py --slots K --service-ms S``, asyncio) completes at
most K / S requests per second: its slots are a model on the monotonic clock, so that figure
holds on a busy machine too. For every server and start rate (the default 10 req/s, and twice
the capacity) one real ``amlc bench --find-capacity`` process searches it; the table gives the
capacity found, its error against the truth, the steps run and the wall time of the search.

    python -m benchmarks.capacity_accuracy [--slo 'p90<=250ms'] [--step 3s] [--warmup 1s]
        [--busy 2] [--servers 2x20,8x80,1x5] [--steps] [--json]

``--busy N`` runs N CPU-bound processes beside the searches (as CI does); ``--steps`` prints
each search's step lines (the judged figures and why a step missed).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_helpers import bench_env, busy_loops, run_bench, start_slots_server

SERVERS = "2x20,8x80,1x5"


def _search(tmp: Path, slots: int, service_ms: float, start: float | None,
            args: argparse.Namespace) -> dict[str, Any]:
    true_rps = slots / (service_ms / 1000)
    srv = start_slots_server(tmp, slots, service_ms)
    try:
        extra = [] if start is None else ["--start-rate", f"{start:g}"]
        began = time.monotonic()
        done = run_bench(
            ["--find-capacity", "--slo", args.slo, "--step-duration", args.step, "--warmup",
             args.warmup, "--json", "--report-dir", str(tmp / "reports"), *extra],
            bench_env(srv), tmp, timeout_s=900,
        )
        took = time.monotonic() - began
    finally:
        srv.stop()
    if done.returncode not in (0, 5):
        raise SystemExit(f"amlc bench failed ({done.returncode}): {done.stderr[-2000:]}")
    capacity = json.loads(done.stdout)["capacity"]
    found = capacity["max_rate_rps"] if capacity["found"] else None
    return {
        "server": f"{slots} x {service_ms:g} ms",
        "true_rps": true_rps,
        "start_rps": start if start is not None else 10.0,
        "found_rps": found,
        "error_pct": None if found is None else round((found - true_rps) / true_rps * 100, 1),
        "steps": len(capacity["steps"]),
        "ended_early": sum(1 for s in capacity["steps"] if s["ended_early"]),
        "seconds": round(took, 1),
        "stopped_because": capacity["stopped_because"],
        "step_lines": [line for line in done.stderr.splitlines() if line.startswith("step ")],
        "step_notes": {f"{s['rate_rps']:g}": s["notes"] for s in capacity["steps"]
                       if not s["passed"]},
        "load_average": round(os.getloadavg()[0], 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--slo", default="p90<=250ms")
    parser.add_argument("--step", default="3s")
    parser.add_argument("--warmup", default="1s")
    parser.add_argument("--busy", type=int, default=0)
    parser.add_argument("--servers", default=SERVERS, help="SLOTSxMS,...")
    parser.add_argument("--steps", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    import tempfile

    rows = []
    with busy_loops(args.busy), tempfile.TemporaryDirectory() as directory:
        for item in args.servers.split(","):
            slots_text, _, ms_text = item.partition("x")
            slots, service_ms = int(slots_text), float(ms_text)
            for start in (None, 2 * slots / (service_ms / 1000)):
                tmp = Path(directory) / f"{slots}-{service_ms:g}-{start}"
                tmp.mkdir()
                rows.append(_search(tmp, slots, service_ms, start, args))
                if args.steps:
                    print("\n".join(rows[-1]["step_lines"]), file=sys.stderr)
                    print(json.dumps(rows[-1]["step_notes"], indent=1), file=sys.stderr)
    if args.json:
        print(json.dumps(rows, indent=2))
        return 0
    print(f"--find-capacity --slo '{args.slo}' --step-duration {args.step} --warmup "
          f"{args.warmup}; {args.busy} CPU-bound processes beside; load average "
          f"{os.getloadavg()[0]:.1f}")
    print(f"{'server':<12} {'true':>6} {'start':>6} {'found':>7} {'error':>7} {'steps':>5} "
          f"{'early':>5} {'time':>7} {'load':>5}")
    for r in rows:
        found = "-" if r["found_rps"] is None else f"{r['found_rps']:.1f}"
        error = "-" if r["error_pct"] is None else f"{r['error_pct']:+.1f}%"
        print(f"{r['server']:<12} {r['true_rps']:>6.0f} {r['start_rps']:>6.0f} {found:>7} "
              f"{error:>7} {r['steps']:>5} {r['ended_early']:>5} {r['seconds']:>6.1f}s "
              f"{r['load_average']:>5.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
