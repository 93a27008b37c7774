"""How much time does amlc's client add to a scoring call, compared with a bare httpx POST?

Both sides send the same two bank-marketing rows to the same trivial HTTP server on 127.0.0.1
(a separate process, so the server never competes with the client for the GIL), over a kept-alive
connection. The calls are interleaved in random order so drift (CPU frequency, other load) hits
both sides alike. The headline figure is the ratio of medians:

    Endpoint.score (validate against the swagger, wrap, send, normalise)  /  httpx.Client.post

Also shown, for reference: ``Endpoint.score_raw`` (no validation) and module-level
``httpx.post`` (a new connection per call, which is what a naive script does).

    python -m benchmarks.client_overhead [-n 2000] [--json]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SWAGGERS = (
    ROOT / "swagger" / "local-inputs.swagger2.json",
    ROOT / "tests" / "fixtures" / "corpus" / "swagger" / "004-abhijit-kalita.json",
)
# The original project's two sample rows.
ROWS = [
    {
        "age": age,
        "job": "blue-collar",
        "marital": "married",
        "education": "university.degree",
        "default": "no",
        "housing": "yes",
        "loan": "yes",
        "contact": "cellular",
        "month": "may",
        "day_of_week": "mon",
        "duration": duration,
        "campaign": 1,
        "pdays": 999,
        "previous": 1,
        "poutcome": "failure",
        "emp.var.rate": -1.8,
        "cons.price.idx": 92.893,
        "cons.conf.idx": -46.2,
        "euribor3m": 1.299,
        "nr.employed": 5099.1,
    }
    for age, duration in ((17, 971), (87, 471))
]
REPLY = b'{"Results": ["no", "no"]}'


# -- the trivial server (runs in a child process) -------------------------------------------------


async def _handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            length = 0
            for line in head.split(b"\r\n"):
                if line[:15].lower() == b"content-length:":
                    length = int(line[15:])
            if length:
                await reader.readexactly(length)
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"x-ms-request-id: 0\r\nContent-Length: %d\r\n\r\n%s" % (len(REPLY), REPLY)
            )
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


async def _serve() -> None:
    server = await asyncio.start_server(_handle, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


def _start_server() -> tuple[subprocess.Popen[str], int]:
    proc = subprocess.Popen(
        [sys.executable, str(Path(__file__).resolve()), "--serve"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.strip():
        proc.kill()
        raise SystemExit("the benchmark server did not start")
    return proc, int(line)


# -- measurement ----------------------------------------------------------------------------------


def _percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def measure(n: int, warmup: int = 200) -> dict[str, Any]:
    """Run the comparison once and return the figures (microseconds)."""
    sys.path.insert(0, str(ROOT))
    import httpx

    from aml_client import KeyCredential
    from aml_client.client import Endpoint, RetryPolicy
    from aml_client.envelope import wrap
    from aml_client.http import encode_json
    from aml_client.schema import load_schema

    swagger = next(p for p in SWAGGERS if p.exists())
    schema = load_schema(swagger)
    proc, port = _start_server()
    url = f"http://127.0.0.1:{port}/score"
    headers = {
        "Authorization": "Bearer benchmark-key",
        "Content-Type": "application/json",
        "x-ms-client-request-id": "0" * 32,
    }
    body = encode_json(wrap(ROWS, schema))
    try:
        endpoint = Endpoint(
            url, KeyCredential("benchmark-key"), swagger=schema, retry=RetryPolicy(max_retries=0)
        )
        bare = httpx.Client()

        def amlc_score() -> None:
            assert endpoint.score(ROWS).predictions == ["no", "no"]

        def amlc_raw() -> None:
            endpoint.score_raw(body)

        def httpx_client_post() -> None:
            response = bare.post(url, content=body, headers=headers)
            assert response.json()["Results"] == ["no", "no"]

        def httpx_post() -> None:
            response = httpx.post(url, content=body, headers=headers)
            assert response.json()["Results"] == ["no", "no"]

        cases: dict[str, Callable[[], None]] = {
            "Endpoint.score": amlc_score,
            "Endpoint.score_raw": amlc_raw,
            "httpx.Client.post": httpx_client_post,
            "httpx.post": httpx_post,
        }
        samples: dict[str, list[float]] = {name: [] for name in cases}
        for _ in range(warmup // 10):
            httpx_post()
        for _ in range(warmup):
            for name in ("Endpoint.score", "Endpoint.score_raw", "httpx.Client.post"):
                cases[name]()
        for i in range(n):
            # httpx.post opens a new client and connection each time (~100x slower): sample it
            # on every tenth round only, so a run stays short
            names = [name for name in cases if name != "httpx.post" or i % 10 == 0]
            random.shuffle(names)
            for name in names:
                started = time.perf_counter_ns()
                cases[name]()
                samples[name].append((time.perf_counter_ns() - started) / 1000)
        endpoint.close()
        bare.close()
    finally:
        proc.terminate()
        proc.wait(timeout=10)

    summary = {
        name: {
            "median_us": round(statistics.median(values), 1),
            "p90_us": round(_percentile(values, 90), 1),
            "p99_us": round(_percentile(values, 99), 1),
            "requests": len(values),
        }
        for name, values in samples.items()
    }
    base = summary["httpx.Client.post"]["median_us"]
    return {
        "requests_each": n,
        "swagger": str(swagger.relative_to(ROOT)),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
        "results": summary,
        "ratio_score_vs_httpx_client_post": round(summary["Endpoint.score"]["median_us"] / base, 3),
        "ratio_score_raw_vs_httpx_client_post": round(
            summary["Endpoint.score_raw"]["median_us"] / base, 3
        ),
        "ratio_score_vs_httpx_post": round(
            summary["Endpoint.score"]["median_us"] / summary["httpx.post"]["median_us"], 3
        ),
        "overhead_us": round(summary["Endpoint.score"]["median_us"] - base, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--requests", type=int, default=2000, help="requests per client")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(_serve())  # until the parent terminates it
        return 0
    figures = measure(args.requests)
    if args.json:
        print(json.dumps(figures, indent=2))
        return 0
    print(
        f"{figures['requests_each']} requests each, interleaved; server on 127.0.0.1 "
        f"(python {figures['python']}, {figures['cpus']} CPUs)"
    )
    print(f"{'client':<22}{'requests':>9}{'median µs':>12}{'p90 µs':>12}{'p99 µs':>12}")
    for name, row in figures["results"].items():
        print(
            f"{name:<22}{row['requests']:>9}{row['median_us']:>12.1f}"
            f"{row['p90_us']:>12.1f}{row['p99_us']:>12.1f}"
        )
    print(
        f"ratio Endpoint.score / httpx.Client.post (medians): "
        f"{figures['ratio_score_vs_httpx_client_post']:.2f} "
        f"(+{figures['overhead_us']:.0f} µs per request; "
        f"score_raw: {figures['ratio_score_raw_vs_httpx_client_post']:.2f})"
    )
    print(
        f"ratio Endpoint.score / httpx.post (new connection per call): "
        f"{figures['ratio_score_vs_httpx_post']:.3f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
