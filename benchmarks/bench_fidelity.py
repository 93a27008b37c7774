"""What ``amlc bench`` costs and adds: throughput next to plain Locust, latency next to ``wrk``.

Not a test: run it by hand (on a shared machine, read the per-round figures as well as the
medians)::

    python benchmarks/bench_fidelity.py [--seconds 10] [--rounds 3] [--baseline DIR]

1. **Throughput** — ``amlc bench`` (one load process: every response checked, every phase in
   its own HdrHistogram) against plain Locust ``FastHttpUser`` (one process, its own statistics
   only), same trivial endpoint (an asyncio server answering at once), same body, same number
   of keep-alive connections and time. Target: amlc >= 1.3x Locust.
2. **Generator-added latency** — ``amlc bench`` (closed model) against ``wrk`` at the same
   concurrency on a calibrated endpoint that answers after 20 ms (asyncio, ~460 req/s at 10
   connections). Both see the same server, so the difference of their p50 / p99 is what each
   load generator adds. Targets: p99 within 1 ms, p50 within 0.5 ms. A bare gevent socket loop
   (no HTTP parsing, checks or recording) runs in the same rounds: the floor of any
   gevent-based generator on the machine that stamps in user space, which separates amlc's own
   cost from gevent's. What each one times: ``wrk`` from just before its ``write`` to the end
   of its parse of the reply, in C (its own user-space delay is a few µs); the gevent loop
   from just before ``sendall`` to the return of its ``recv`` (it waits while the other
   greenlets handle the replies that arrived with its own); ``amlc bench`` from just before
   ``sendall`` to the kernel's receive timestamp of the reply's last bytes (on a plain-TCP
   connection on Linux, see ``aml_client.bench.load.exchange``), so its queueing behind other
   replies is not counted and its figure can be below ``wrk``'s by ``wrk``'s own few µs. The
   same gevent loop stamped as amlc stamps (``gevent-k``: kernel receive timestamps) is the
   floor for that: what remains between it and ``wrk`` is not timing but the endpoint itself
   answering more slowly while a Python load process shares the machine's CPUs with it.
3. **Per-request costs** of the response checks (``check_response`` on a typical body) and of
   the engine's recording with all phases (``Recording.record`` with a ``Sample``).

Runs are interleaved (amlc, other, amlc, other, ...) over ``--rounds`` so a change in the
machine's load hits both tools alike; each round's figures and the medians are printed.
``--baseline DIR`` adds another amlc source tree (``git archive main | tar -x -C DIR``) to every
round, so a change is measured before and after in the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BODY = b'{"data":[{"x":1.5,"y":2}]}'

_SERVER = r"""
import asyncio, sys
DELAY = float(sys.argv[2])
REPLY = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 5\r\n"
         b"x-ms-run-fn-exec-ms: %.3f\r\n\r\n[0.5]" % (DELAY * 1000))
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
            if DELAY: asyncio.get_running_loop().call_later(DELAY, self.t.write, REPLY)
            else: self.t.write(REPLY)
async def main():
    server = await asyncio.get_running_loop().create_server(P, "127.0.0.1", int(sys.argv[1]))
    print("ready", flush=True)
    async with server: await server.serve_forever()
asyncio.run(main())
"""

# The floor of any gevent-based generator on this machine: N greenlets, one keep-alive
# connection each, one pre-built request, one recv per reply (no HTTP parsing, no checks, no
# recording). amlc above this line is amlc's own cost; this line above wrk is gevent's. With
# "kernel", the end of each reply is its kernel receive timestamp (SO_TIMESTAMPNS), as amlc's.
_GEVENT_FLOOR = r"""
from gevent import monkey; monkey.patch_all()
import gevent, json, socket, struct, sys, time
host, port, seconds, users, body = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), \
    int(sys.argv[4]), sys.argv[5].encode()
kernel = sys.argv[6] == "kernel"
request = (b"POST /score HTTP/1.1\r\nHost: %s:%d\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\n\r\n" % (host.encode(), port, len(body))) + body
latencies = []
end = time.monotonic() + seconds
def user():
    sock = socket.create_connection((host, port))
    if kernel:
        sock.setsockopt(socket.SOL_SOCKET, getattr(socket, "SO_TIMESTAMPNS", 35), 1)
    while time.monotonic() < end:
        if kernel:
            start = time.time_ns()
            sock.sendall(request)
            _, ancillary, _, _ = sock.recvmsg(65536, 64)
            done = [struct.unpack("@ll", data[:16]) for _, _, data in ancillary]
            arrived = done[0][0] * 10**9 + done[0][1] if done else time.time_ns()
            latencies.append((arrived - start) / 1e6)
            continue
        start = time.perf_counter_ns()
        sock.sendall(request)
        sock.recv(65536)
        latencies.append((time.perf_counter_ns() - start) / 1e6)
gevent.joinall([gevent.spawn(user) for _ in range(users)])
latencies.sort()
rank = lambda p: latencies[max(0, -(-len(latencies) * p // 100) - 1)]
print(json.dumps({"rps": len(latencies) / seconds, "p50": rank(50), "p99": rank(99)}))
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


def start_server(delay_s: float) -> tuple[subprocess.Popen[bytes], str]:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", _SERVER, str(port), str(delay_s)],
                            stdout=subprocess.PIPE)
    assert proc.stdout is not None
    proc.stdout.readline()
    return proc, f"http://127.0.0.1:{port}"


def run_amlc(
    url: str, seconds: int, users: int, tmp: Path, tree: Path = ROOT
) -> dict[str, float]:
    env = dict(os.environ, AMLC_SCORING_URI=f"{url}/score", AMLC_HOME=str(tmp / "home"))
    env.pop("AMLC_KEY", None)
    env["PYTHONPATH"] = str(tree)
    payload = tmp / "rows.json"
    payload.write_bytes(BODY)
    done = subprocess.run(
        [sys.executable, "-m", "aml_client", "bench", "--payload", str(payload), "-u",
         str(users), "--duration", f"{seconds}s", "--workers", "1", "--json", "--report-dir",
         str(tmp / "reports")],
        env=env, capture_output=True, text=True, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr)
    summary = json.loads(done.stdout)
    if summary["failures"]["total"]:
        raise RuntimeError(f"amlc bench saw failures: {summary['failures']}")
    latency = summary["latency"]
    return {"rps": float(summary["throughput_rps"]), "p50": latency["percentiles_ms"]["p50"],
            "p99": latency["percentiles_ms"]["p99"],
            "phases": len(summary["phases"])}


def run_locust(url: str, seconds: int, users: int, tmp: Path) -> float:
    locustfile = tmp / "plain_locustfile.py"
    locustfile.write_text(_LOCUSTFILE.format(body=BODY))
    prefix = tmp / "locust"
    subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-H", url, "-u",
         str(users), "-r", str(users), "-t", f"{seconds}s", "--only-summary", "--csv",
         str(prefix), "--loglevel", "ERROR"],
        capture_output=True, text=True, check=True,
    )
    for line in Path(f"{prefix}_stats.csv").read_text().splitlines():
        cells = line.split(",")
        if cells[1].strip('"') == "Aggregated":
            return int(cells[2]) / seconds
    raise RuntimeError("no Aggregated row in Locust's CSV")


def _ms(text: str) -> float:
    value = float(re.match(r"[\d.]+", text).group(0))  # type: ignore[union-attr]
    return value * {"us": 0.001, "ms": 1.0, "s": 1000.0}[re.sub(r"[\d.]", "", text)]


def run_wrk(url: str, seconds: int, connections: int, tmp: Path) -> dict[str, float]:
    script = tmp / "post.lua"
    script.write_text(
        'wrk.method = "POST"\n'
        f"wrk.body = '{BODY.decode()}'\n"
        'wrk.headers["Content-Type"] = "application/json"\n'
    )
    out = subprocess.run(
        ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(script),
         f"{url}/score"],
        capture_output=True, text=True, check=True,
    ).stdout
    p50 = re.search(r"^\s+50%\s+(\S+)", out, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", out, re.M)
    rps = re.search(r"Requests/sec:\s+([\d.]+)", out)
    assert p50 and p99 and rps, out
    return {"rps": float(rps.group(1)), "p50": _ms(p50.group(1)), "p99": _ms(p99.group(1))}


def run_gevent_floor(url: str, seconds: int, users: int, stamp: str) -> dict[str, float]:
    host, port = url.removeprefix("http://").split(":")
    out = subprocess.run(
        [sys.executable, "-c", _GEVENT_FLOOR, host, port, str(seconds), str(users),
         BODY.decode(), stamp],
        capture_output=True, text=True, check=True,
    ).stdout
    return dict(json.loads(out))


def per_request_costs(n: int = 200_000) -> tuple[float, float, float]:
    """ns per call: check_response on a typical body, Recording.record with all phases, and
    Recording.record with the total latency only (what 0.1 recorded)."""
    sys.path.insert(0, str(ROOT))
    from aml_client.bench.checks import check_response
    from aml_client.bench.recording import Recording
    from aml_client.bench.result import Sample

    body = b'{"Results": ["no"]}'
    t0 = time.perf_counter_ns()
    for _ in range(n):
        check_response(200, body, expected_rows=1)
    checks = (time.perf_counter_ns() - t0) / n
    recording, plain = Recording(open_model=True), Recording()
    base = time.time()
    sample = Sample(connect_us=-1, ttfb_us=20_000, body_us=3, server_us=19_000,
                    bytes_sent=200, bytes_received=150, body_bytes=19, deployment="blue",
                    server="nginx", slip_us=40)
    t0 = time.perf_counter_ns()
    for i in range(n):
        recording.record(20_000 + i % 5000, base + i * 1e-5, None, 20_050 + i % 5000, sample)
    full = (time.perf_counter_ns() - t0) / n
    t0 = time.perf_counter_ns()
    for i in range(n):
        plain.record(20_000 + i % 5000, base + i * 1e-5, None)
    bare = (time.perf_counter_ns() - t0) / n
    return checks, full, bare


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--users", type=int, default=16, help="connections, throughput part")
    parser.add_argument("--latency-connections", type=int, default=10)
    parser.add_argument("--baseline", type=Path, default=None,
                        help="another amlc source tree, measured in the same rounds")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        print("missing: wrk (apt-get install wrk)", file=sys.stderr)
        return 2
    s, r = args.seconds, args.rounds
    trees = {"amlc": ROOT}
    if args.baseline is not None:
        trees = {"before": args.baseline.resolve(), "amlc": ROOT}
    rps: dict[str, list[float]] = {name: [] for name in (*trees, "locust")}
    lat: dict[str, list[dict[str, float]]] = {
        name: [] for name in (*trees, "gevent", "gevent-k", "wrk")
    }
    with tempfile.TemporaryDirectory(prefix="amlc-fidelity-") as name:
        tmp = Path(name)
        fast, fast_url = start_server(0.0)
        slow, slow_url = start_server(0.020)
        try:
            for round_no in range(1, r + 1):
                for tool, tree in trees.items():
                    rps[tool].append(run_amlc(fast_url, s, args.users, tmp, tree)["rps"])
                rps["locust"].append(run_locust(fast_url, s, args.users, tmp))
                for tool, tree in trees.items():
                    lat[tool].append(run_amlc(slow_url, s, args.latency_connections, tmp, tree))
                for tool, stamp in (("gevent", "user"), ("gevent-k", "kernel")):
                    lat[tool].append(
                        run_gevent_floor(slow_url, s, args.latency_connections, stamp)
                    )
                lat["wrk"].append(run_wrk(slow_url, s, args.latency_connections, tmp))
                print(f"round {round_no}: throughput "
                      + "  ".join(f"{t} {v[-1]:,.0f}" for t, v in rps.items())
                      + " req/s; p50/p99 ms "
                      + "  ".join(f"{t} {v[-1]['p50']:.3f}/{v[-1]['p99']:.3f}"
                                  for t, v in lat.items()), file=sys.stderr)
        finally:
            for proc in (fast, slow):
                proc.terminate()
                proc.wait(timeout=10)
    med = statistics.median
    lo = med(rps["locust"])
    print(f"\n{os.cpu_count()} CPUs shared by the load generator and the endpoint (and, on a "
          f"shared machine, others); {r} interleaved rounds of {s} s; medians (per round).\n")
    print(f"Throughput ({args.users} connections, endpoint answers at once):")
    for tool in trees:
        ratios = ", ".join(
            f"{a / b:.2f}" for a, b in zip(rps[tool], rps["locust"], strict=True)
        )
        print(f"  {tool:<8} amlc bench (checks + phases) {med(rps[tool]):>9,.0f} req/s  "
              f"ratio to Locust {med(rps[tool]) / lo:5.2f} ({ratios})")
    print(f"  plain Locust FastHttpUser              {lo:>9,.0f} req/s  "
          "(target: amlc >= 1.30x)")
    print(f"\nLatency at {args.latency_connections} connections, endpoint answers after 20 ms "
          "(targets: p50 within 0.5 ms, p99 within 1 ms of wrk):")
    for tool in (*trees, "gevent", "gevent-k"):
        for key in ("p50", "p99"):
            am, wr = med(x[key] for x in lat[tool]), med(x[key] for x in lat["wrk"])
            rounds = ", ".join(
                f"{a[key] - w[key]:+.3f}" for a, w in zip(lat[tool], lat["wrk"], strict=True)
            )
            print(f"  {tool:<8} {key}: {am:7.3f} ms   wrk {wr:7.3f} ms   difference "
                  f"{am - wr:+.3f} ms  (per round {rounds})")
        print(f"  {tool:<8} throughput: {med(x['rps'] for x in lat[tool]):,.0f} req/s, "
              f"wrk {med(x['rps'] for x in lat['wrk']):,.0f} req/s")
    print("  (gevent: a bare gevent socket loop, no HTTP parsing, checks or recording: the floor "
          "of any gevent-based generator here; gevent-k: the same, stamped as amlc stamps, with "
          "the kernel's receive timestamps)")
    checks, full, bare = per_request_costs()
    print(f"\nPer request: response checks {checks:,.0f} ns; recording with every phase "
          f"{full:,.0f} ns (total latency only: {bare:,.0f} ns)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
