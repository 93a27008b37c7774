"""How much load ``amlc bench`` can drive, next to plain Locust, ``wrk`` and ``ab``.

Not a test: run it by hand on an otherwise idle machine::

    python benchmarks/bench_throughput.py [--seconds 10] [--connections 32]

Against one trivial endpoint on 127.0.0.1 (nginx answering ``POST /score`` from memory when
``nginx`` is installed — Debian package ``nginx-light`` — else a small asyncio server), each tool
sends the same JSON body over the same number of keep-alive connections for the same time:

* ``amlc bench`` with one load process and with ``--workers 2`` (HdrHistogram recording of every
  request included);
* plain Locust ``FastHttpUser`` (one process, and ``--processes 2``), recording nothing but its
  own statistics;
* ``wrk`` (Debian ``wrk``) and ``ab -k`` (Debian ``apache2-utils``).

It prints requests/s per tool and ``amlc bench``'s ratio to each, then the cost of recording one
latency in the HdrHistogram (``LatencyRecorder.record``) and of the engine's whole bookkeeping
per request (``Recording.record``: histogram, failures, per-second interval), in nanoseconds.
All client processes share the machine with the endpoint, so absolute figures depend on the
core count; the ratios are the point.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = b'{"data":[{"x":1.5,"y":2}]}'
REPLY = b"[0.5]"

_ASYNC_SERVER = r"""
import asyncio, sys
REPLY = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n\r\n[0.5]"
class P(asyncio.Protocol):
    def connection_made(self, t): self.t, self.buf = t, b""
    def data_received(self, data):
        self.buf += data
        while True:
            head, sep, rest = self.buf.partition(b"\r\n\r\n")
            if not sep: return
            n = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:": n = int(line[15:])
            if len(rest) < n: return
            self.buf = rest[n:]
            self.t.write(REPLY)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    async with server: await server.serve_forever()
asyncio.run(main())
"""

_NGINX_CONF = """
worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    keepalive_requests 10000000;
    server {{
        listen 127.0.0.1:{port};
        location /score {{ default_type application/json; return 200 '[0.5]'; }}
    }}
}}
"""

_LOCUSTFILE = """
from locust import FastHttpUser, constant, task

BODY = {body!r}


class Plain(FastHttpUser):
    wait_time = constant(0)
    insecure = False
    concurrency = 1

    @task
    def score(self):
        self.client.post("/score", data=BODY, headers={{"Content-Type": "application/json"}})
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


def start_endpoint(tmp: Path) -> tuple[subprocess.Popen[bytes], int, str]:
    port = _free_port()
    nginx = shutil.which("nginx") or (
        "/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None
    )
    if nginx:
        (tmp / "body").mkdir()
        conf = tmp / "nginx.conf"
        conf.write_text(_NGINX_CONF.format(tmp=tmp, port=port))
        proc = subprocess.Popen([nginx, "-c", str(conf), "-p", str(tmp)], stderr=subprocess.DEVNULL)
        kind = "nginx (1 worker process)"
    else:
        proc = subprocess.Popen(
            [sys.executable, "-c", _ASYNC_SERVER, str(port)], stdout=subprocess.PIPE
        )
        kind = "python asyncio server"
    _wait_port(port)
    return proc, port, kind


def run_wrk(url: str, seconds: int, connections: int, tmp: Path) -> float:
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{BODY.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "-s", str(script), url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def run_ab(url: str, seconds: int, connections: int, tmp: Path) -> float:
    body = tmp / "body.json"
    body.write_bytes(BODY)
    out = subprocess.run(
        [
            "ab",
            "-q",
            "-k",
            "-t",
            str(seconds),
            "-n",
            "50000000",
            "-c",
            str(connections),
            "-p",
            str(body),
            "-T",
            "application/json",
            url,
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return float(re.search(r"Requests per second:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]


def run_locust(base: str, seconds: int, connections: int, tmp: Path, processes: int) -> float:
    locustfile = tmp / "plain_locustfile.py"
    locustfile.write_text(_LOCUSTFILE.format(body=BODY))
    prefix = tmp / f"locust{processes}"
    cmd = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(locustfile),
        "--headless",
        "-H",
        base,
        "-u",
        str(connections),
        "-r",
        str(connections),
        "-t",
        f"{seconds}s",
        "--only-summary",
        "--csv",
        str(prefix),
        "--loglevel",
        "ERROR",
    ]
    if processes > 1:
        cmd += ["--processes", str(processes)]
    subprocess.run(cmd, capture_output=True, text=True, check=True)
    for line in (Path(f"{prefix}_stats.csv")).read_text().splitlines():
        cells = line.split(",")
        if cells[1] == '"Aggregated"' or cells[1] == "Aggregated":
            requests = int(cells[2])
            break
    else:
        raise RuntimeError("no Aggregated row in Locust's CSV")
    # Locust's Requests/s column divides by the whole run; use the request count over the run
    # time the same way for every tool that reports a count.
    return requests / seconds


def run_amlc(url: str, seconds: int, connections: int, tmp: Path, workers: int) -> float:
    env = dict(os.environ, AMLC_SCORING_URI=url, AMLC_HOME=str(tmp / "amlc-home"))
    env.pop("AMLC_KEY", None)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH")) if p)
    payload = tmp / "rows.json"
    payload.write_bytes(BODY)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "aml_client",
            "bench",
            "--payload",
            str(payload),
            "-u",
            str(connections),
            "--duration",
            f"{seconds}s",
            "--workers",
            str(workers),
            "--json",
            "--report-dir",
            str(tmp / "reports"),
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    summary = json.loads(done.stdout)
    if summary["failures"]["total"]:
        raise RuntimeError(f"amlc bench saw failures: {summary['failures']}")
    return float(summary["throughput_rps"])


def hdr_cost_ns(n: int = 1_000_000) -> tuple[float, float]:
    """(LatencyRecorder.record, Recording.record) in ns per call, loop overhead subtracted."""
    sys.path.insert(0, str(ROOT))
    from aml_client.bench.hdr import LatencyRecorder
    from aml_client.bench.recording import Recording

    values = [20_000 + (i * 7919) % 5000 for i in range(n)]
    base = time.time()
    recorder, recording = LatencyRecorder(), Recording()
    t0 = time.perf_counter_ns()
    for _v in values:
        pass
    loop = time.perf_counter_ns() - t0
    record = recorder.record
    t0 = time.perf_counter_ns()
    for v in values:
        record(v)
    hdr = time.perf_counter_ns() - t0 - loop
    rec = recording.record
    t0 = time.perf_counter_ns()
    for i, v in enumerate(values):
        rec(v, base + i * 1e-5, None)
    full = time.perf_counter_ns() - t0 - loop
    return hdr / n, full / n


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    args = parser.parse_args()
    missing = [tool for tool in ("wrk", "ab") if shutil.which(tool) is None]
    if missing:
        print(f"missing: {', '.join(missing)} (apt-get install wrk apache2-utils)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="amlc-bench-") as name:
        tmp = Path(name)
        proc, port, kind = start_endpoint(tmp)
        base, url = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{port}/score"
        results: dict[str, float] = {}
        try:
            s, c = args.seconds, args.connections
            runs: list[tuple[str, Callable[[], float]]] = [
                ("amlc bench (1 process)", lambda: run_amlc(url, s, c, tmp, 1)),
                ("amlc bench --workers 2", lambda: run_amlc(url, s, c, tmp, 2)),
                ("locust FastHttpUser (1 process)", lambda: run_locust(base, s, c, tmp, 1)),
                ("locust FastHttpUser --processes 2", lambda: run_locust(base, s, c, tmp, 2)),
                ("wrk -t1", lambda: run_wrk(url, s, c, tmp)),
                ("ab -k", lambda: run_ab(url, s, c, tmp)),
            ]
            for label, run in runs:
                results[label] = run()
                print(f"  {label:<36} {results[label]:>10,.0f} req/s", file=sys.stderr)
                time.sleep(1)
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=10)
    one, two = results["amlc bench (1 process)"], results["amlc bench --workers 2"]
    print(
        f"\nEndpoint: {kind} on 127.0.0.1; {args.connections} connections/users; "
        f"{args.seconds} s per tool; {os.cpu_count()} CPUs shared by clients and endpoint.\n"
    )
    print(f"{'tool':<36} {'req/s':>10} {'amlc 1 proc ÷':>14} {'amlc 2 procs ÷':>15}")
    for label, rps in results.items():
        print(f"{label:<36} {rps:>10,.0f} {one / rps:>14.2f} {two / rps:>15.2f}")
    hdr_ns, full_ns = hdr_cost_ns()
    print(
        f"\nHDR recording per request: LatencyRecorder.record {hdr_ns:,.0f} ns; "
        f"engine bookkeeping (Recording.record: histogram + failures + interval) {full_ns:,.0f} ns"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
