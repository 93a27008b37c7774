"""What only the async client can show: concurrency, and waits that do not block the loop."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest
from support.faults import FaultServer, Reply

from aml_client import KeyCredential, errors
from aml_client.client import AsyncEndpoint, RetryPolicy
from aml_client.schema import load_schema

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
SWAGGER = json.loads((CORPUS / "swagger" / "046-arnavkundu.json").read_text())
ROWS = load_schema(SWAGGER).example_rows(2)


def test_concurrent_calls_share_one_client_and_one_swagger_fetch() -> None:
    async def go(uri: str) -> list[list]:
        async with AsyncEndpoint(uri, KeyCredential("secret-key")) as endpoint:
            await endpoint.schema()
            results = await asyncio.gather(*(endpoint.score(ROWS) for _ in range(20)))
            return [r.predictions for r in results]

    with FaultServer(swagger=SWAGGER) as server:
        server.default = Reply(200, ["no", "yes"])
        assert asyncio.run(go(server.scoring_uri)) == [["no", "yes"]] * 20
        assert [r.path for r in server.requests].count("/swagger.json") == 1
        assert all(r.json() == {"data": ROWS, "method": "predict"} for r in server.scores)


def test_retry_after_wait_does_not_block_other_requests() -> None:
    async def go(uri: str) -> tuple[float, float]:
        async with AsyncEndpoint(uri, swagger=SWAGGER, retry=RetryPolicy(max_retries=1)) as ep:
            started = time.monotonic()

            async def timed(delay: float) -> float:
                await asyncio.sleep(delay)
                await ep.score(ROWS)
                return time.monotonic() - started

            slow, fast = await asyncio.gather(timed(0), timed(0.2))
            return slow, fast

    with FaultServer() as server:
        server.default = Reply(200, ["no", "no"])
        server.queue(Reply(429, {"message": "later"}, {"Retry-After": "1"}))
        slow, fast = asyncio.run(go(server.scoring_uri))
    assert slow >= 0.95, "the first call waited for Retry-After"
    assert fast < 0.8, "the second call went through while the first was waiting"


def test_cancelled_call_leaves_the_client_usable() -> None:
    async def go(uri: str) -> list:
        async with AsyncEndpoint(uri, swagger=SWAGGER) as endpoint:
            task = asyncio.create_task(endpoint.score(ROWS))
            await asyncio.sleep(0.1)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            return (await endpoint.score(ROWS)).predictions

    with FaultServer() as server:
        server.default = Reply(200, ["no", "no"])
        server.queue(Reply(200, ["late", "late"], delay_s=2))
        assert asyncio.run(go(server.scoring_uri)) == ["no", "no"]


def test_async_errors_carry_the_same_details() -> None:
    async def go(uri: str) -> errors.EndpointError:
        async with AsyncEndpoint(uri, swagger=SWAGGER) as endpoint:
            try:
                await endpoint.score(ROWS)
            except errors.EndpointError as exc:
                return exc
        raise AssertionError("no error")

    with FaultServer() as server:
        server.queue(Reply(424, {"message": "model container answered 500"}))
        exc = asyncio.run(go(server.scoring_uri))
    assert type(exc) is errors.ModelError
    assert exc.request_id == "req-1"
    assert "model container answered 500" in str(exc)
