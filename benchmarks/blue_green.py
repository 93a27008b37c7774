"""scikit-learn vs ONNX, measured the way a user would: ``amlc bench --deployments blue,green``.

Starts the local endpoint exactly as the README does (real processes, a throwaway
``AMLC_HOME`` that reuses the model cache)::

    amlc local up --detach --workers 1 --deployment blue --deployment green:onnx \\
        --traffic blue=50,green=50

then runs two blue/green benchmarks against it, each one ``amlc bench`` process:

1. latency: ``--deployments blue,green --rate R -t D`` (open model: each deployment gets R/2
   requests per second, the same held-out rows, interleaved ABBA) -> per deployment p50, p99,
   max of the corrected latency, the server's own time, the verdicts (paired bootstrap) and the
   prediction agreement;
2. capacity: ``--deployments blue,green --find-capacity --slo S`` -> each deployment's highest
   rate meeting the objective, searched one after the other.

Both deployments, the load generator and whatever else runs on the machine share its CPUs:
the figures are this machine's, at this moment (its load average is printed with them).

    python -m benchmarks.blue_green [--rate 30] [--duration 60s] [--slo 'p90<=100ms'] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _env(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["AMLC_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["COLUMNS"] = "200"
    for name in ("AMLC_SCORING_URI", "AMLC_KEY", "AMLC_TOKEN", "AMLC_TOKEN_COMMAND",
                 "AMLC_SWAGGER_URI", "AMLC_DEBUG"):
        env.pop(name, None)
    return env


def _amlc(home: Path, *args: str, timeout_s: float = 1800) -> subprocess.CompletedProcess[str]:
    print(f"$ amlc {' '.join(args)}", file=sys.stderr)
    return subprocess.run(
        [sys.executable, "-m", "aml_client", *args], env=_env(home), capture_output=True,
        text=True, timeout=timeout_s, stdin=subprocess.DEVNULL, cwd=home,
    )


def _rows(path: Path, count: int) -> None:
    """``count`` held-out rows (never seen in training), one JSON object per line."""
    sys.path.insert(0, str(ROOT))
    from aml_client.local._model import splits

    _, _, (x_test, _) = splits()
    path.write_text(x_test.head(count).to_json(orient="records", lines=True))


def _summary(done: subprocess.CompletedProcess[str], what: str) -> dict[str, Any]:
    if done.returncode not in (0, 5) or not done.stdout.strip():
        raise SystemExit(f"{what} failed (exit {done.returncode}): {done.stderr[-2000:]}")
    return dict(json.loads(done.stdout))


def _figures(summary: dict[str, Any]) -> dict[str, Any]:
    section = summary["blue_green"]
    out: dict[str, Any] = {"deployments": {}}
    for run in section["runs"]:
        judged = run["corrected"] or run["latency"]
        server = run["phases"].get("server")
        out["deployments"][run["name"]] = {
            "requests": run["requests"],
            "failures": run["failures"]["total"],
            "p50_ms": judged["percentiles_ms"]["p50"],
            "p99_ms": judged["percentiles_ms"]["p99"],
            "max_ms": judged["max_ms"],
            "uncorrected_p50_ms": run["latency"]["percentiles_ms"]["p50"],
            "server_p50_ms": server["percentiles_ms"]["p50"] if server else None,
            "capacity_rps": run["capacity"]["max_rate_rps"] if run.get("capacity") else None,
        }
    out["verdicts"] = [v["text"] for v in section["verdicts"]]
    if section.get("agreement"):
        agreement = section["agreement"]
        out["agreement"] = {k: agreement[k] for k in (
            "rate", "compared_rows", "agreeing_rows", "compared_requests", "not_compared")}
    out["valid"] = summary["validity"]["valid"]
    out["report_dir"] = summary.get("report_dir")
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=30.0,
                        help="latency run: requests/s over both deployments")
    parser.add_argument("--duration", default="60s", help="latency run: how long")
    parser.add_argument("--rows", type=int, default=500, help="held-out rows to rotate over")
    parser.add_argument("--slo", default="p90<=100ms", help="capacity run: the objective")
    parser.add_argument("--step-duration", default="5s", help="capacity run: least per step")
    parser.add_argument("--start-rate", default="20", help="capacity run: first rate")
    parser.add_argument("--no-capacity", action="store_true", help="skip the capacity run")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from aml_client import paths

    cache = paths.cache_dir()  # the caller's cache: the model is trained once, ever
    cache.mkdir(parents=True, exist_ok=True)
    figures: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="amlc-bench-blue-green-") as tmp:
        home = Path(tmp)
        (home / "cache").symlink_to(cache, target_is_directory=True)
        rows = home / "held_out.jsonl"
        _rows(rows, args.rows)
        up = _amlc(home, "local", "up", "--detach", "--port", str(_free_port()), "--workers",
                   "1", "--deployment", "blue", "--deployment", "green:onnx", "--traffic",
                   "blue=50,green=50")
        if up.returncode != 0:
            raise SystemExit(f"amlc local up failed: {up.stderr[-2000:]}")
        try:
            latency = _summary(_amlc(
                home, "bench", "--endpoint", "local", "--deployments", "blue,green",
                "--payload", str(rows), "--rate", f"{args.rate:g}", "-t", args.duration,
                "--workers", "1", "--json", "--report-dir", str(ROOT / "reports"),
            ), "the latency run")
            figures["latency_run"] = {"rate_rps": args.rate, "duration": args.duration,
                                      **_figures(latency)}
            if not args.no_capacity:
                capacity = _summary(_amlc(
                    home, "bench", "--endpoint", "local", "--deployments", "blue,green",
                    "--payload", str(rows), "--find-capacity", "--slo", args.slo,
                    "--start-rate", args.start_rate, "--step-duration", args.step_duration,
                    "--warmup", "1s", "--json", "--report-dir", str(ROOT / "reports"),
                ), "the capacity run")
                figures["capacity_run"] = {"slo": args.slo, **_figures(capacity)}
        finally:
            _amlc(home, "local", "down")
    figures.update(python=sys.version.split()[0], cpus=os.cpu_count(),
                   load_average=[round(v, 2) for v in os.getloadavg()])
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    run = figures["latency_run"]
    print(f"latency: {args.rate:g} req/s over blue (scikit-learn) and green (ONNX) for "
          f"{args.duration}, {args.rows} held-out rows; python {figures['python']}, "
          f"{figures['cpus']} CPUs, load average {figures['load_average']}")
    print(f"{'deployment':<12}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}{'max ms':>9}"
          f"{'server p50':>12}{'capacity':>10}")
    capacities = figures.get("capacity_run", {}).get("deployments", {})
    for name, row in run["deployments"].items():
        cap = capacities.get(name, {}).get("capacity_rps")
        print(f"{name:<12}{row['requests']:>9}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
              f"{row['max_ms']:>9.2f}{row['server_p50_ms'] or 0:>12.2f}"
              f"{'-' if cap is None else f'{cap:.1f}':>10}")
    for line in run["verdicts"]:
        print(f"  {line}")
    if "agreement" in run:
        a = run["agreement"]
        print(f"  prediction agreement: {a['rate'] * 100:.2f} % of {a['compared_rows']} rows")
    if "capacity_run" in figures:
        print(f"capacity ({args.slo}): " + "; ".join(figures["capacity_run"]["verdicts"]))
    print(f"run valid: {run['valid']}; reports under {ROOT / 'reports'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
