"""How long a person waits for ``amlc``: ``--help``, and ``amlc score`` on the two sample rows.

Each figure is the median of real processes (``python -m aml_client ...``), start to exit, so
it includes interpreter start-up, imports, reading the swagger and the scoring request. The
request alone (``elapsed_ms`` of ``amlc score --json``) is shown beside it.

    python benchmarks/cli_timing.py                 # against the running local endpoint
    python benchmarks/cli_timing.py --start         # start one (amlc local up --detach), stop after
    python benchmarks/cli_timing.py --runs 20 --json
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "tests" / "fixtures" / "samples" / "data_inputs.json"


def amlc(*args: str, check: bool = True) -> tuple[float, subprocess.CompletedProcess[str]]:
    """Run the CLI once; (wall seconds, process)."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    started = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-m", "aml_client", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=300,
    )
    wall = time.perf_counter() - started
    if check and proc.returncode != 0:
        raise SystemExit(f"amlc {' '.join(args)} failed ({proc.returncode}): {proc.stderr.strip()}")
    return wall, proc


def summary(values_s: list[float]) -> dict[str, float]:
    ms = [v * 1000 for v in values_s]
    return {
        "median_ms": round(statistics.median(ms), 1),
        "min_ms": round(min(ms), 1),
        "max_ms": round(max(ms), 1),
        "runs": len(ms),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=10, help="runs per figure (default 10)")
    parser.add_argument("--endpoint", default="local", help="profile name (default: local)")
    parser.add_argument("--start", action="store_true", help="start the local endpoint first")
    parser.add_argument("--json", action="store_true", help="print JSON")
    args = parser.parse_args()

    amlc("--help")  # warm the file-system cache and .pyc files, as any second run would be
    help_s = [amlc("--help")[0] for _ in range(args.runs)]

    started_here = False
    if args.start and args.endpoint == "local":
        status = amlc("local", "status", "--json", check=False)[1]
        if status.returncode != 0:
            amlc("local", "up", "--detach")
            started_here = True
    try:
        score_args = ("score", str(SAMPLE), "--endpoint", args.endpoint, "--json")
        _, first = amlc(*score_args)  # the first run may include the model's warm-up
        predictions = json.loads(first.stdout)["predictions"]
        score_s, request_ms = [], []
        for _ in range(args.runs):
            wall, proc = amlc(*score_args)
            score_s.append(wall)
            request_ms.append(json.loads(proc.stdout)["elapsed_ms"])
    finally:
        if started_here:
            amlc("local", "down", check=False)

    result = {
        "python": sys.version.split()[0],
        "help": summary(help_s),
        "score": summary(score_s),
        "score_request_median_ms": round(statistics.median(request_ms), 1),
        "sample": str(SAMPLE.relative_to(ROOT)),
        "predictions": predictions,
        "endpoint": args.endpoint,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"amlc --help                   median {result['help']['median_ms']:8.1f} ms "
          f"(min {result['help']['min_ms']:.1f}, max {result['help']['max_ms']:.1f}, "
          f"{args.runs} runs)")
    print(f"amlc score (2 rows, {args.endpoint:<6})  median {result['score']['median_ms']:8.1f} ms "
          f"(min {result['score']['min_ms']:.1f}, max {result['score']['max_ms']:.1f}, "
          f"{args.runs} runs); request alone median {result['score_request_median_ms']:.1f} ms")
    print(f"predictions: {predictions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
