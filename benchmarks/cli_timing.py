"""How long a person waits for ``amlc``: ``--help``, and ``amlc score`` on the two sample rows.

Each figure is the median of real processes (``python -m aml_client ...``), start to exit, so
it includes interpreter start-up, imports, reading the swagger and the scoring request. The
request alone (``elapsed_ms`` of ``amlc score --json``) is shown beside it.

``amlc --help`` is also compared with a minimal typer app (two commands) run by the same
interpreter: the runs alternate (amlc, app, app, amlc, …) so that a busy machine slows both
alike, and the ratio of the medians is the figure to keep at most 1.3.

    python benchmarks/cli_timing.py                 # against the running local endpoint
    python benchmarks/cli_timing.py --start         # start one (amlc local up --detach), stop after
    python benchmarks/cli_timing.py --help-only --runs 40   # only --help against the minimal app
    python benchmarks/cli_timing.py --runs 20 --json
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


MINIMAL_TYPER_APP = """
import typer

app = typer.Typer()


@app.command()
def hello(name: str) -> None:
    \"\"\"Say hello.\"\"\"


@app.command()
def bye() -> None:
    \"\"\"Say goodbye.\"\"\"


app()
"""


def timed(argv: list[str]) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one process, start to exit, output discarded.

    On a busy machine the wall time mostly measures the wait for a core; the CPU time is the
    work the process itself did.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env,
                   cwd=ROOT, timeout=300, check=True)  # fmt: skip
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def help_against_minimal_app(
    runs: int,
) -> tuple[list[float], list[float], list[float], list[float]]:
    """``amlc --help`` and a minimal typer app's ``--help``, interleaved (ABBA order): wall
    seconds of each, then CPU seconds of each."""
    with tempfile.TemporaryDirectory() as scratch:
        app = Path(scratch) / "minimal_typer_app.py"
        app.write_text(MINIMAL_TYPER_APP, encoding="utf-8")
        amlc_argv = [sys.executable, "-m", "aml_client", "--help"]
        app_argv = [sys.executable, str(app), "--help"]
        timed(amlc_argv), timed(app_argv)  # warm the file-system cache and .pyc files
        amlc_s: list[tuple[float, float]] = []
        app_s: list[tuple[float, float]] = []
        for index in range(runs):
            pair = [(amlc_argv, amlc_s), (app_argv, app_s)]
            for argv, into in pair if index % 2 == 0 else reversed(pair):
                into.append(timed(argv))
    return ([w for w, _ in amlc_s], [w for w, _ in app_s],
            [c for _, c in amlc_s], [c for _, c in app_s])  # fmt: skip


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
    parser.add_argument(
        "--help-only", action="store_true", help="only amlc --help against a minimal typer app"
    )
    args = parser.parse_args()

    help_s, app_s, help_cpu, app_cpu = help_against_minimal_app(args.runs)
    ratio = statistics.median(help_s) / statistics.median(app_s)
    cpu_ratio = statistics.median(help_cpu) / statistics.median(app_cpu)
    help_line = (
        f"amlc --help                   median {statistics.median(help_s) * 1000:8.1f} ms; "
        f"a minimal typer app {statistics.median(app_s) * 1000:.1f} ms: "
        f"ratio {ratio:.2f} (CPU time: {statistics.median(help_cpu) * 1000:.0f} vs "
        f"{statistics.median(app_cpu) * 1000:.0f} ms, ratio {cpu_ratio:.2f}; "
        f"{args.runs} interleaved runs each)"
    )
    help_figures = {
        "help": summary(help_s),
        "minimal_typer_app": summary(app_s),
        "help_ratio": round(ratio, 3),
        "help_cpu": summary(help_cpu),
        "minimal_typer_app_cpu": summary(app_cpu),
        "help_cpu_ratio": round(cpu_ratio, 3),
    }
    if args.help_only:
        if args.json:
            print(json.dumps({"python": sys.version.split()[0], **help_figures}, indent=2))
        else:
            print(help_line)
        return 0

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
        **help_figures,
        "score": summary(score_s),
        "score_request_median_ms": round(statistics.median(request_ms), 1),
        "sample": str(SAMPLE.relative_to(ROOT)),
        "predictions": predictions,
        "endpoint": args.endpoint,
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(help_line)
    print(f"amlc score (2 rows, {args.endpoint:<6})  median {result['score']['median_ms']:8.1f} ms "
          f"(min {result['score']['min_ms']:.1f}, max {result['score']['max_ms']:.1f}, "
          f"{args.runs} runs); request alone median {result['score_request_median_ms']:.1f} ms")
    print(f"predictions: {predictions}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
