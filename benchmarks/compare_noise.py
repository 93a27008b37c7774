"""Does ``amlc report compare`` cry wolf, and does it catch a real regression?

Against calibrated endpoints (``tests/support/calibrated.py``, a fixed service time, on
127.0.0.1) with one CPU-bound process beside the runs, it runs groups of back-to-back runs, each
group one ``amlc bench --repeat 3`` process (closed model, ``--users U -t D``), alternating the
baseline endpoint A and the same endpoint made slower, B:

    A A A | B B B | A A A | B B B | ...      (--groups G of each)

and judges each comparison with the gate ``--fail-on 'p99>+10%' --fail-on 'throughput<-10%'``:

* false alarms: the first two runs of every group, a pair of identical back-to-back runs with
  one run per side (``compare A1 A2``): the share of pairs whose gate fails (goal: at most
  5 %); and, with 3 runs per side, each A group against the next A group;
* detection: each B group against the A group before it and the A group after it, 3 runs per
  side (``compare A1 A2 A3 --vs B1 B2 B3``): the share of comparisons whose gate fails (goal:
  at least 95 %), and of the p99 gate alone.

B's added delay is calibrated on the first A group: 30 % of its median p99 (every request pays
the delay; nothing queues with U users). The regression the runs really showed (mean p99 of
the B runs over that of the A runs) is printed beside, with the run-to-run spread of p99 and
throughput (standard deviation of the log over the identical pairs: the figure
``aml_client.bench.report.compare.RUN_NOISE`` takes as its prior) and the machine's load average.

The comparisons are made by the library (``aml_client.bench.report.compare.compare``: what ``amlc
report compare`` calls) on the stored reports, so they cost no process each.

    python -m benchmarks.compare_noise [--groups 10] [--duration 8s] [--users 5] [--json]
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchmark_helpers import ROOT, Server, busy_loops, calibrated_server

GATES = ("p99>+10%", "throughput<-10%")


def _stop_all(servers: list[Server]) -> None:
    for server in servers:
        server.stop()


def _env(home: Path, uri: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AMLC_HOME=str(home), AMLC_SCORING_URI=uri, AMLC_KEY="compare-noise-key",
               COLUMNS="200")
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    for name in ("AMLC_TOKEN", "AMLC_TOKEN_COMMAND", "AMLC_SWAGGER_URI", "AMLC_DEBUG"):
        env.pop(name, None)
    return env


def _group(home: Path, uri: str, reports: Path, args: argparse.Namespace,
           repeat: int) -> dict[str, Any]:
    """One ``amlc bench --repeat N --json`` process: its group document."""
    done = subprocess.run(
        [sys.executable, "-m", "aml_client", "bench", "--users", str(args.users),
         "-t", args.duration, "--workers", "1", "--report-dir", str(reports),
         "--repeat", str(repeat), "--json"],
        env=_env(home, uri), capture_output=True, text=True, timeout=600,
        stdin=subprocess.DEVNULL, cwd=home,
    )
    if done.returncode != 0 or not done.stdout.strip():
        raise SystemExit(f"amlc bench failed (exit {done.returncode}): {done.stderr[-2000:]}")
    document = json.loads(done.stdout)
    if repeat == 1 and "runs" not in document:  # a single run prints its summary
        return {"group_dir": None, "runs": [document]}
    return dict(document)


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} = {hits / total:.1%}" if total else "-"


def _sd_log(pairs: list[tuple[float, float]]) -> float:
    """Run-to-run standard deviation of log(figure), from pairs of identical runs."""
    diffs = [math.log(b / a) for a, b in pairs if a > 0 and b > 0]
    return math.sqrt(sum(d * d for d in diffs) / (2 * len(diffs))) if diffs else float("nan")


def _measure(args: argparse.Namespace, reports: Path, home: Path) -> dict[str, Any]:
    """Run the alternating groups; return where they are (``groups``: side and directory)."""
    from aml_client.bench.report.directory import load_runs

    load_before = os.getloadavg()
    servers: list[Server] = []
    started = time.monotonic()
    groups: list[list[str]] = []
    delay_ms = 0.0
    with contextlib.ExitStack() as stack:
        stack.enter_context(busy_loops(1))
        stack.callback(_stop_all, servers)
        servers.append(calibrated_server(home, args.service_ms))
        uri_a, uri_b = servers[0].uri, ""
        for index in range(2 * args.groups):
            name = "AB"[index % 2]
            document = _group(home, uri_a if name == "A" else uri_b, reports, args, 3)
            _, runs = load_runs(document["group_dir"])
            groups.append([name, Path(document["group_dir"]).name])
            if index == 0:
                p99s = sorted(r.judged.value_ms("p99") or 0.0 for r in runs)
                delay_ms = args.regression * p99s[1]
                servers.append(calibrated_server(home, args.service_ms + delay_ms))
                uri_b = servers[1].uri
                print(f"baseline median p99 {p99s[1]:.2f} ms: B's service time "
                      f"+{delay_ms:.2f} ms", file=sys.stderr)
            print(f"group {index + 1}/{2 * args.groups} ({name}): p99 "
                  + ", ".join(f"{r.judged.value_ms('p99') or 0:.1f}" for r in runs)
                  + f" ms; load average {os.getloadavg()[0]:.1f}", file=sys.stderr)
    setup = {"groups": groups, "added_delay_ms": round(delay_ms, 2),
             "run": {"model": "closed", "users": args.users, "duration": args.duration,
                     "service_ms": args.service_ms},
             "beside": "one CPU-bound process (python busy loop)",
             "load_average_before": [round(x, 2) for x in load_before],
             "load_average_after": [round(x, 2) for x in os.getloadavg()],
             "cpus": os.cpu_count(), "wall_s": round(time.monotonic() - started, 1)}
    (reports / "compare_noise.json").write_text(json.dumps(setup, indent=2))
    return setup


def _stored(reports: Path) -> dict[str, Any]:
    """A kept run's setup; without its compare_noise.json, its groups in time order, A first."""
    file = reports / "compare_noise.json"
    if file.is_file():
        return dict(json.loads(file.read_text()))
    names = sorted(p.name for p in reports.iterdir() if (p / "group.json").is_file())
    return {"groups": [["AB"[i % 2], n] for i, n in enumerate(names)], "added_delay_ms": None,
            "run": {}, "beside": "one CPU-bound process (python busy loop)",
            "load_average_before": [], "load_average_after": [], "cpus": os.cpu_count(),
            "wall_s": None}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--groups", type=int, default=10, help="groups of 3 runs of A and of B")
    parser.add_argument("--duration", default="8s", help="each run's length")
    parser.add_argument("--users", type=int, default=5, help="closed-model users per run")
    parser.add_argument("--service-ms", type=float, default=50.0, help="A's service time")
    parser.add_argument("--regression", type=float, default=0.30,
                        help="B's p99 regression to calibrate (fraction)")
    parser.add_argument("--keep", type=Path, default=None, help="keep the reports here")
    parser.add_argument("--evaluate", type=Path, default=None,
                        help="judge the groups kept in this directory again (no new runs)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    from aml_client.bench.report.compare import compare, parse_gate
    from aml_client.bench.report.directory import load_runs

    gates = [parse_gate(g) for g in GATES]
    p99_gate = [parse_gate(GATES[0])]
    with tempfile.TemporaryDirectory(prefix="amlc-compare-noise-") as tmp:
        if args.evaluate is not None:
            reports = args.evaluate
            setup = _stored(reports)
        else:
            home = Path(tmp) / "home"
            home.mkdir()
            reports = args.keep or Path(tmp) / "reports"
            reports.mkdir(parents=True, exist_ok=True)
            setup = _measure(args, reports, home)
        groups = [(name, load_runs(reports / directory)[1]) for name, directory in
                  setup["groups"]]
    pairs = []
    for index, (name, runs) in enumerate(groups):
        verdict = compare(runs[0], runs[1], gates)
        pairs.append({"group": index, "side": name, "failed": verdict.failed,
                      "p99": [r.judged.value_ms("p99") for r in runs[:2]],
                      "throughput": [r.throughput_rps for r in runs[:2]],
                      "gates": [g.message for g in verdict.gates]})
    run_s = groups[0][1][0].duration_s
    delay_ms = setup["added_delay_ms"] or 0.0
    load_before = setup["load_average_before"] or [float("nan")]
    load_after = setup["load_average_after"] or [float("nan")]
    detections, same_groups = [], []
    for index, (name, runs) in enumerate(groups):
        if name != "B":
            continue
        for other in (index - 1, index + 1):
            if 0 <= other < len(groups):
                base = groups[other][1]
                verdict = compare(base, runs, gates)
                detections.append({"a_group": other, "b_group": index,
                                   "failed": verdict.failed,
                                   "p99_failed": compare(base, runs, p99_gate).failed,
                                   "gates": [g.message for g in verdict.gates]})
    a_groups = [runs for name, runs in groups if name == "A"]
    for first, second in itertools.pairwise(a_groups):
        verdict = compare(first, second, gates)
        same_groups.append({"failed": verdict.failed,
                            "gates": [g.message for g in verdict.gates]})
    p99 = {n: [r.judged.value_ms("p99") or 0.0 for name, runs in groups if name == n
               for r in runs] for n in "AB"}
    figures = {
        "runs": sum(len(runs) for _, runs in groups),
        "run": {**setup["run"], "measured_s": run_s},
        "beside": setup["beside"],
        "load_average_before": load_before,
        "load_average_after": load_after,
        "cpus": setup["cpus"],
        "gates": list(GATES),
        "false_alarms": {"pairs": len(pairs), "failed": sum(p["failed"] for p in pairs)},
        "false_alarms_3_runs": {"comparisons": len(same_groups),
                                "failed": sum(bool(c["failed"]) for c in same_groups)},
        "detection": {"comparisons": len(detections), "runs_per_side": 3,
                      "failed": sum(bool(d["failed"]) for d in detections),
                      "p99_gate_failed": sum(bool(d["p99_failed"]) for d in detections)},
        "p99_regression_measured_pct": round(
            (sum(p99["B"]) / len(p99["B"]) / (sum(p99["A"]) / len(p99["A"])) - 1) * 100, 1),
        "added_delay_ms": round(delay_ms, 2),
        "run_to_run_sd_pct": {
            "p99": round(_sd_log([tuple(p["p99"]) for p in pairs]) * 100, 1),
            "throughput": round(_sd_log([tuple(p["throughput"]) for p in pairs]) * 100, 1)},
        "wall_s": setup["wall_s"],
        "details": {"pairs": pairs, "detections": detections, "same_groups": same_groups},
    }
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    fa, det = figures["false_alarms"], figures["detection"]
    fa3 = figures["false_alarms_3_runs"]
    print(f"gate: --fail-on '{GATES[0]}' --fail-on '{GATES[1]}'")
    run = figures["run"]
    print(f"runs: closed model, {run.get('users')} users, {run.get('duration')} each "
          f"({run_s:.1f} s measured) against a {run.get('service_ms')} ms endpoint "
          f"({figures['runs']} runs, {figures['wall_s']} s), {figures['beside']} beside; "
          f"load average {load_before[0]:.1f} before, {load_after[0]:.1f} after, "
          f"{figures['cpus']} CPUs")
    print(f"false alarms, identical back-to-back pairs (1 run per side): "
          f"{_rate(fa['failed'], fa['pairs'])} (goal <= 5 %)")
    print(f"false alarms, consecutive A groups (3 runs per side): "
          f"{_rate(fa3['failed'], fa3['comparisons'])}")
    print(f"detection of a {figures['p99_regression_measured_pct']:+.1f} % p99 regression "
          f"(+{delay_ms:.1f} ms; 3 runs per side, each B group against the A groups beside it): "
          f"{_rate(det['failed'], det['comparisons'])} (goal >= 95 %); "
          f"p99 gate alone {_rate(det['p99_gate_failed'], det['comparisons'])}")
    print(f"run-to-run spread (sd of log, identical pairs): "
          f"p99 {figures['run_to_run_sd_pct']['p99']} %, "
          f"throughput {figures['run_to_run_sd_pct']['throughput']} %")
    return 0


if __name__ == "__main__":
    sys.exit(main())
