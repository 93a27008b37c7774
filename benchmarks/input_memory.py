"""Peak memory and read speed of large JSON inputs: streamed, so memory stays flat.

For JSON documents of ``--rows`` sizes (default 10,000 and 1,000,000 rows, about 400 bytes
each, in the ``{"Inputs": {"data": [...]}, "GlobalParameters": {...}}`` order AutoML writes,
so the parameters must be found after the rows), each in a fresh process, the peak RSS
(VmHWM) of:

- ``reader``: ``read_rows(path)``, its ``global_parameters`` (found by a pass that keeps no
  row) and every row through ``RowSource.reader()``: the library's reading alone;
- ``json.load``: the whole document parsed at once, as amlc did before streaming: the baseline,
  measured in the same run on the same file;
- ``amlc score -o``: the real CLI scoring the file into JSON Lines against the fast test server
  (tests/support/batch_servers.py, in its own process on 127.0.0.1).

Flat means the 1M-row figures are within a few MiB of the 10k-row ones while the file is
100 times larger. ``json.load`` is skipped above ``--baseline-max-rows`` (it needs GBs).

    python benchmarks/input_memory.py [--rows 10000,1000000] [--skip-cli]
        [--baseline-max-rows 1000000] [--json results.json]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "tests"))

READER = """
import sys, time
from aml_client.rows import read_rows
started = time.perf_counter()
source = read_rows(sys.argv[1])
params = source.global_parameters
count = sum(1 for _ in source.reader())
print(count, time.perf_counter() - started, params)
"""

BASELINE = """
import json, sys, time
started = time.perf_counter()
with open(sys.argv[1], encoding="utf-8") as handle:
    body = json.load(handle)
print(len(body["Inputs"]["data"]), time.perf_counter() - started)
"""


def write_payload(path: Path, rows: int) -> int:
    """A bank-marketing payload of ``rows`` typed rows, GlobalParameters last; its size."""
    from support.batch_servers import make_row

    ints = {"age", "duration", "campaign", "pdays", "previous"}
    floats = {"emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"}
    with path.open("w", encoding="utf-8") as handle:
        handle.write('{"Inputs": {"data": [\n')
        for i in range(rows):
            row = {
                k: int(v) if k in ints else float(v) if k in floats else v
                for k, v in make_row(i).items()
            }
            handle.write(("" if i == 0 else ",\n") + json.dumps(row))
        handle.write('\n]}, "GlobalParameters": {"method": "predict_proba"}}\n')
    return path.stat().st_size


def peak_kib(command: list[str], env: dict[str, str] | None = None) -> tuple[int, str, float]:
    """Run ``command``; its VmHWM (KiB), stdout and wall seconds."""
    started = time.perf_counter()
    proc = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO
    )
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            break
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
        time.sleep(0.005)
    out, err = proc.communicate()
    if proc.returncode != 0:
        raise RuntimeError(f"{command[:3]} failed ({proc.returncode}): {err.strip()[-500:]}")
    return peak, out.strip(), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10000,1000000")
    parser.add_argument("--skip-cli", action="store_true")
    parser.add_argument("--baseline-max-rows", type=int, default=1_000_000)
    parser.add_argument("--json", dest="json_path")
    args = parser.parse_args()
    sizes = [int(n) for n in args.rows.split(",")]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    results: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="amlc-input-memory-") as tmp:
        server = None
        if not args.skip_cli:
            from support.batch_servers import TEST_KEY, ServerProcess

            server = ServerProcess({})
            env.update(AMLC_SCORING_URI=server.scoring_uri, AMLC_KEY=TEST_KEY,
                       AMLC_HOME=str(Path(tmp) / "home"))
        try:
            for rows in sizes:
                path = Path(tmp) / f"payload-{rows}.json"
                size = write_payload(path, rows)
                result: dict[str, Any] = {"rows": rows, "bytes": size}
                kib, out, wall = peak_kib([sys.executable, "-c", READER, str(path)], env)
                count, seconds, *_ = out.split(" ", 2)
                assert int(count) == rows, out
                result["reader"] = {"peak_mib": round(kib / 1024, 1),
                                    "seconds": round(float(seconds), 2)}
                if rows <= args.baseline_max_rows:
                    kib, out, wall = peak_kib([sys.executable, "-c", BASELINE, str(path)], env)
                    result["json_load"] = {"peak_mib": round(kib / 1024, 1),
                                           "seconds": round(float(out.split()[1]), 2)}
                if server is not None:
                    output = Path(tmp) / f"out-{rows}.jsonl"
                    command = [sys.executable, "-m", "aml_client", "score", str(path), "-o",
                               str(output), "--batch-size", "500"]
                    kib, _, wall = peak_kib(command, env)
                    with output.open("rb") as handle:
                        scored = sum(1 for _ in handle)
                    assert scored == rows, (scored, rows)
                    result["amlc_score"] = {"peak_mib": round(kib / 1024, 1),
                                            "seconds": round(wall, 1)}
                    output.unlink()
                path.unlink()
                results.append(result)
                print(json.dumps(result), flush=True)
        finally:
            if server is not None:
                server.stop()
    if len(results) >= 2:
        small, large = results[0], results[-1]
        print(f"\n{small['rows']:,} -> {large['rows']:,} rows "
              f"({large['bytes'] / small['bytes']:.0f}x the bytes):")
        for key in ("reader", "amlc_score", "json_load"):
            if key in small and key in large:
                print(f"  {key:<11} peak {small[key]['peak_mib']:>7.1f} -> "
                      f"{large[key]['peak_mib']:>7.1f} MiB")
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
