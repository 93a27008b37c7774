"""A scoring endpoint of exactly known capacity, for ``amlc bench --find-capacity``.

K slots of S ms each: at most K requests are served at once, so at most K / S per second
complete; past that the queue (and the latency) grows. One asyncio event loop (aiohttp), no
threads, no CPU-bound work: each request's start and end are computed on the monotonic clock
when it arrives (:class:`~support.calibrated.Slots`), and the handler only awaits its end. A
busy machine may delay a reply, never the schedule of the next one, so the capacity stays
K / S however little CPU the server gets.

    python tests/support/slots_server.py --slots 2 --service-ms 20 [--max-pending 16]

* ``--max-pending N`` answers 429 at once when N requests are already pending (served or
  queued), as the local endpoint and Azure do;
* ``GET /count`` returns the scoring requests by status; ``GET /swagger.json`` the same small
  Swagger 2.0 document as :mod:`support.calibrated`.

Prints ``PORT <n>`` on stdout once listening (on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import time
from collections import Counter
from pathlib import Path

from aiohttp import web

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from support.calibrated import SWAGGER, Slots


def make_app(slots: Slots, service_s: float) -> web.Application:
    counts: Counter[str] = Counter()

    async def score(request: web.Request) -> web.Response:
        await request.read()
        reserved = slots.reserve(time.monotonic(), service_s)
        if reserved is None:
            counts["429"] += 1
            return web.json_response({"message": "Too many pending requests"}, status=429)
        start, end = reserved
        delay = end - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        counts["200"] += 1
        return web.Response(body=b"[0.5]", content_type="application/json",
                            headers={"x-ms-run-fn-exec-ms": f"{(end - start) * 1000:.3f}"})

    async def count(_request: web.Request) -> web.Response:
        return web.json_response({"total": sum(counts.values()), "by_status": dict(counts)})

    async def swagger(_request: web.Request) -> web.Response:
        return web.Response(text=json.dumps(SWAGGER), content_type="application/json")

    app = web.Application()
    app.router.add_post("/score", score)
    app.router.add_get("/count", count)
    app.router.add_get("/swagger.json", swagger)
    return app


async def serve(args: argparse.Namespace) -> None:
    app = make_app(Slots(args.slots, args.max_pending), args.service_ms / 1000.0)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", args.port, backlog=1024)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    sys.stdout.write(f"PORT {port}\n")
    sys.stdout.flush()
    await asyncio.Event().wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--slots", type=int, required=True)
    parser.add_argument("--service-ms", type=float, required=True)
    parser.add_argument("--max-pending", type=int, default=0)
    args = parser.parse_args(argv)
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(serve(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
