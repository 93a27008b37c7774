"""Batch scoring throughput and memory, measured in one run on this machine.

Against the local endpoint (``amlc local up --detach --workers 2``, in a scratch ``AMLC_HOME``),
scoring the full 32,950-row bank-marketing file (the ``y`` column dropped):

- (a) one request per row in a loop, as the original ``endpoint.py`` did it (``requests.post``
  per row, a new connection each time) — timed on the first rows and extrapolated;
- (b) one batch request at a time (``score_file`` with ``concurrency=1``);
- ``score_file`` with a fixed concurrency and with ``concurrency="auto"``;
- the endpoint's saturated capacity: ``wrk`` sending the same batch payload at several
  connection counts, the best one kept; each mode is reported as a fraction of it.

Two placements: ``shared`` (endpoint, client and wrk on all cores: on a small machine the
client's own CPU then competes with the endpoint's workers, which wrk's barely does) and
``pinned`` (the endpoint on core 0, client and wrk on core 1, as when the endpoint is another
machine). Each ``score_file`` mode runs ``--repeats`` times; the median is reported. Workers get
``OMP_NUM_THREADS=1``: two workers each spinning an OpenMP thread per core stall requests.

Then peak RSS of ``amlc score`` (a real process; its VmHWM) for synthetic
100,000- and 1,000,000-row CSVs against a trivial, fast test server: memory must stay flat.

The endpoint's key is a throwaway one generated in the scratch home; it reaches ``wrk`` through
the environment (read by the Lua script), never a command line, and is never printed.

    python benchmarks/batch_throughput.py [--per-row-sample 2000] [--rss-rows 1000000]
        [--placements shared,pinned] [--repeats 3] [--skip-endpoint] [--skip-rss]
        [--json results.json]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

BANK = REPO / "aml_client" / "local" / "data" / "bankmarketing_train.csv.gz"
BATCH = 200

WRK_SCRIPT = """
wrk.method = "POST"
local f = assert(io.open(os.getenv("BATCH_BENCH_PAYLOAD"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. os.getenv("BATCH_BENCH_KEY")
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def bank_csv(path: Path) -> int:
    """The bank-marketing training file without its label column; returns the row count."""
    with gzip.open(BANK, "rt", encoding="utf-8", newline="") as src, path.open(
        "w", newline="", encoding="utf-8"
    ) as dst:
        reader = csv.reader(src)
        header = next(reader)
        keep = [i for i, name in enumerate(header) if name != "y"]
        writer = csv.writer(dst, lineterminator="\n")
        writer.writerow([header[i] for i in keep])
        rows = 0
        for values in reader:
            writer.writerow([values[i] for i in keep])
            rows += 1
    return rows


def per_row_loop(uri: str, key: str, rows: list[dict[str, Any]], schema: Any) -> float:
    """Seconds for the original endpoint.py approach: one ``requests.post`` per row."""
    import requests

    from aml_client.envelope import wrap

    bodies = [json.dumps(wrap([row], schema)) for row in rows]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {key}"}
    started = time.perf_counter()
    for body in bodies:
        response = requests.post(uri, body, headers=headers, timeout=60)
        response.raise_for_status()
    return time.perf_counter() - started


def run_score_file(target: Any, source: Path, out: Path, concurrency: int | str) -> dict[str, Any]:
    from aml_client.batch import score_file

    for leftover in out.parent.glob(out.name + "*"):
        leftover.unlink()
    summary = score_file(target, str(source), str(out), batch_size=BATCH, concurrency=concurrency)
    assert summary.rows_failed == 0 and summary.rows_out == summary.rows_in
    return {
        "rows": summary.rows_in,
        "seconds": round(summary.elapsed_s, 2),
        "rows_per_s": round(summary.rows_in / summary.elapsed_s, 1),
        "requests": summary.requests,
        "concurrency_peak": summary.concurrency_peak,
        "concurrency_final": summary.concurrency_final,
    }


def wrk_capacity(
    uri: str, key: str, payload: Path, seconds: int, core: int | None
) -> dict[str, Any]:
    """Requests/s of ``wrk`` sending the batch payload; best over a few connection counts."""
    script = payload.with_name("post.lua")
    script.write_text(WRK_SCRIPT)
    env = dict(os.environ, BATCH_BENCH_PAYLOAD=str(payload), BATCH_BENCH_KEY=key)
    sweep = {}
    for connections in (1, 2, 3, 4, 6, 8, 16):
        pin = ["taskset", "-c", str(core)] if core is not None else []
        result = subprocess.run(
            [*pin, "wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s",
             "-s", str(script), uri],
            env=env, capture_output=True, text=True, check=True,
        )
        match = re.search(r"Requests/sec:\s+([\d.]+)", result.stdout)
        bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", result.stdout)
        if match is None or bad is not None:
            raise RuntimeError(f"wrk failed at -c{connections}:\n{result.stdout}{result.stderr}")
        sweep[connections] = float(match.group(1))
    best_c = max(sweep, key=sweep.__getitem__)
    return {"requests_per_s": sweep, "best_connections": best_c,
            "rows_per_s": round(sweep[best_c] * BATCH, 1)}


def _median_run(target: Any, source: Path, out: Path, concurrency: int | str,
                repeats: int) -> dict[str, Any]:
    """``score_file`` ``repeats`` times; the median run, with every rate for the record."""
    runs = [run_score_file(target, source, out, concurrency) for _ in range(repeats)]
    runs.sort(key=lambda r: r["rows_per_s"])
    median = dict(runs[len(runs) // 2])
    median["all_rows_per_s"] = [r["rows_per_s"] for r in runs]
    return median


def endpoint_benchmark(scratch: Path, args: argparse.Namespace, placement: str) -> dict[str, Any]:
    """Every mode against one local endpoint.

    ``placement="shared"``: endpoint, client and wrk share both cores (the client's own CPU
    then competes with the endpoint's workers). ``placement="pinned"``: the endpoint (both
    workers) on core 0, the client and wrk on core 1, as when the endpoint is another machine.
    """
    from aml_client import KeyCredential
    from aml_client.client import Endpoint
    from aml_client.config import Target
    from aml_client.envelope import wrap

    home = scratch / f"home-{placement}"
    env = dict(os.environ, AMLC_HOME=str(home))
    for name in ("AMLC_SCORING_URI", "AMLC_KEY", "AMLC_TOKEN", "AMLC_SWAGGER_URI"):
        env.pop(name, None)
    # One OpenMP thread per worker: two workers each spinning a thread per core would
    # oversubscribe the machine and stall requests for seconds.
    env.setdefault("OMP_NUM_THREADS", "1")
    os.environ["AMLC_HOME"] = str(home)
    pinned = placement == "pinned"
    every_core = os.sched_getaffinity(0)
    port = free_port()
    print(f"[{placement}] starting the local endpoint on port {port} (2 workers)…",
          file=sys.stderr)
    prefix = ["taskset", "-c", "0"] if pinned else []
    subprocess.run(
        [*prefix, sys.executable, "-m", "aml_client", "local", "up", "--detach", "--workers", "2",
         "--port", str(port)],
        env=env, cwd=REPO, capture_output=True, text=True, check=True,
    )
    try:
        if pinned:
            os.sched_setaffinity(0, {1})
        from aml_client.local import local_keys, running_endpoint

        info = running_endpoint()
        keys = local_keys()
        assert info is not None and keys is not None
        key = keys[0]
        target = Target("local", info.scoring_uri, info.swagger_uri, KeyCredential(key),
                        source="benchmark")
        source = scratch / "bank.csv"
        rows_total = bank_csv(source)
        with source.open(newline="", encoding="utf-8") as handle:
            raw = list(csv.DictReader(handle))
        with Endpoint(info.scoring_uri, target.credential, swagger_uri=info.swagger_uri) as ep:
            schema = ep.schema()
            for _ in range(5):  # warm both workers
                ep.score(schema.validate_rows(raw[:BATCH], coerce=True))
        typed = schema.validate_rows(raw, coerce=True)
        payload = scratch / "batch.json"
        payload.write_text(json.dumps(wrap(typed[:BATCH], schema)))

        results: dict[str, Any] = {"rows": rows_total, "batch_size": BATCH, "workers": 2,
                                   "placement": placement}
        modes = ["sequential_batches", "score_file_c4", "score_file_c8", "score_file_auto"]
        if args.per_row_sample and not pinned:
            sample = min(args.per_row_sample, rows_total)
            print(f"[{placement}] (a) one request per row, {sample} rows…", file=sys.stderr)
            seconds = per_row_loop(info.scoring_uri, key, typed[:sample], schema)
            results["per_row_loop"] = {
                "rows_timed": sample, "seconds": round(seconds, 2),
                "rows_per_s": round(sample / seconds, 1),
                "extrapolated_seconds_full_file": round(seconds * rows_total / sample, 1),
            }
            modes.insert(0, "per_row_loop")
        out = scratch / "out.csv"
        for label, concurrency in (("sequential_batches", 1), ("score_file_c4", 4),
                                   ("score_file_c8", 8), ("score_file_auto", "auto")):
            print(f"[{placement}] score_file concurrency={concurrency}…", file=sys.stderr)
            results[label] = _median_run(target, source, out, concurrency, args.repeats)
        print(f"[{placement}] wrk capacity sweep…", file=sys.stderr)
        capacity = wrk_capacity(info.scoring_uri, key, payload, args.wrk_seconds,
                                core=1 if pinned else None)
        results["capacity_wrk"] = capacity
        for label in modes:
            results[label]["fraction_of_capacity"] = round(
                results[label]["rows_per_s"] / capacity["rows_per_s"], 3
            )
        return results
    finally:
        os.sched_setaffinity(0, every_core)
        subprocess.run([sys.executable, "-m", "aml_client", "local", "down"], env=env, cwd=REPO,
                       capture_output=True, check=False)


def _vm_hwm_kib(pid: int) -> int:
    """Peak resident set size so far of process ``pid`` (0 once it is gone)."""
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_benchmark(scratch: Path, row_counts: list[int]) -> dict[int, dict[str, float]]:
    """Peak RSS of ``amlc score`` (a real process) for inputs of growing size."""
    from support.batch_servers import TEST_KEY, ServerProcess, write_csv

    results = {}
    with ServerProcess({"require_key": TEST_KEY}) as server:
        env = dict(os.environ, AMLC_HOME=str(scratch / "rss-home"),
                   AMLC_SCORING_URI=server.scoring_uri, AMLC_KEY=TEST_KEY)
        env["PYTHONPATH"] = str(REPO)
        for rows in row_counts:
            source = scratch / f"synthetic-{rows}.csv"
            print(f"writing {rows:,} synthetic rows…", file=sys.stderr)
            write_csv(source, rows)
            out = scratch / f"synthetic-{rows}-out.csv"
            print(f"amlc score {rows:,} rows…", file=sys.stderr)
            started = time.perf_counter()
            proc = subprocess.Popen(
                [sys.executable, "-m", "aml_client", "score", str(source), "-o", str(out),
                 "--concurrency", "8", "--json"],
                env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
            )
            # VmHWM of the process's own address space. (wait4's ru_maxrss would not do: Linux
            # carries the parent's high-water mark across the fork/exec into the child's.)
            peak_kib = 0
            while proc.poll() is None:
                peak_kib = max(peak_kib, _vm_hwm_kib(proc.pid))
                time.sleep(0.02)
            seconds = time.perf_counter() - started
            stdout = proc.stdout.read() if proc.stdout else b""
            if proc.returncode != 0:
                raise RuntimeError(f"amlc score failed on {rows} rows: {stdout!r}")
            summary = json.loads(stdout)
            assert summary["rows_out"] == rows
            results[rows] = {
                "peak_rss_mib": round(peak_kib / 1024, 1),
                "seconds": round(seconds, 1),
                "rows_per_s": round(rows / seconds, 1),
                "input_mib": round(source.stat().st_size / 2**20, 1),
            }
            source.unlink()
            out.unlink()
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-row-sample", type=int, default=2000)
    parser.add_argument("--wrk-seconds", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--placements", default="shared,pinned",
                        help="shared (all cores for everyone) and/or pinned (endpoint core 0)")
    parser.add_argument("--rss-rows", type=int, default=1_000_000)
    parser.add_argument("--skip-endpoint", action="store_true")
    parser.add_argument("--skip-rss", action="store_true")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    for tool in ("wrk", "taskset"):
        if not args.skip_endpoint and shutil.which(tool) is None:
            parser.error(f"{tool} is not installed (apt-get install {tool})")
    scratch = Path(tempfile.mkdtemp(prefix="amlc-batch-bench-"))
    # Other work on the machine skews every figure: record how busy it was.
    results: dict[str, Any] = {"load_average_before": [round(x, 2) for x in os.getloadavg()]}
    try:
        if not args.skip_endpoint:
            for placement in args.placements.split(","):
                results[f"endpoint_{placement}"] = endpoint_benchmark(scratch, args, placement)
        if not args.skip_rss:
            counts = sorted({10_000, 100_000, args.rss_rows})
            results["peak_rss"] = rss_benchmark(scratch, counts)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
