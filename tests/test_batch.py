"""Batch scoring's parts that need no server: the journal, the limiters, the output formats."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from aml_client import errors
from aml_client.batch import _OutputFormat, _parse_concurrency, default_errors_path
from aml_client.concurrency import AimdSettings, ConcurrencyLimiter, PauseGate
from aml_client.journal import (
    Checkpoint,
    CommittedFile,
    Journal,
    PrefixHash,
    journal_path,
    partial_path,
    read_journal,
)

# -- journal -----------------------------------------------------------------------------------


def test_journal_records_commits_and_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "out.csv")
    assert path.name == "out.csv.journal"
    journal = Journal.create(path, {"input": {"path": "x"}})
    journal.commit(Checkpoint(rows=100, out=2000, rows_out=99, rows_failed=1, batches=1))
    journal.commit(Checkpoint(rows=200, out=4000, rows_out=199, rows_failed=1, batches=2))
    journal.close()
    with path.open("ab") as handle:  # a crash in the middle of the third commit
        handle.write(b'{"kind":"commit","rows":300,"out":60')
    state = read_journal(path)
    assert state.checkpoint == Checkpoint(
        rows=200, out=4000, rows_out=199, rows_failed=1, batches=2
    )
    assert not state.done
    assert state.header["input"] == {"path": "x"}

    reopened, state = Journal.reopen(path)
    reopened.commit(Checkpoint(rows=300, out=6000, rows_out=299, rows_failed=1, batches=3))
    reopened.finish(Checkpoint(rows=300, out=6000, rows_out=299, rows_failed=1, batches=3))
    reopened.close()
    lines = path.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # the torn tail was cut, not continued
    final = read_journal(path)
    assert final.done and final.checkpoint.rows == 300
    assert [c.rows for c in final.commits] == [100, 200, 300, 300]


def test_journal_refuses_to_overwrite_and_to_read_garbage(tmp_path: Path) -> None:
    path = tmp_path / "out.csv.journal"
    Journal.create(path, {}).close()
    with pytest.raises(FileExistsError):
        Journal.create(path, {})
    path.write_text("hello\n")
    with pytest.raises(errors.InputError, match="not a batch journal"):
        read_journal(path)
    path.write_text('{"kind": "start", "version": 99}\n')
    with pytest.raises(errors.InputError, match="version 99"):
        read_journal(path)


def test_committed_file_truncates_uncommitted_bytes_and_renames_atomically(tmp_path: Path) -> None:
    final = tmp_path / "out.csv"
    out = CommittedFile(final)
    out.write(b"a,b\n1,2\n")
    committed = out.sync()
    out.write(b"3,4\n")  # written, never committed: a kill -9 here
    out.close()
    assert not final.exists()
    resumed = CommittedFile(final, resume_at=committed)
    resumed.write(b"5,6\n")
    resumed.finalise()
    assert final.read_bytes() == b"a,b\n1,2\n5,6\n"
    assert not partial_path(final).exists()


def test_committed_file_notices_a_partial_file_shorter_than_its_commit(tmp_path: Path) -> None:
    final = tmp_path / "out.csv"
    partial_path(final).write_bytes(b"abc")
    with pytest.raises(errors.InputError, match="shorter"):
        CommittedFile(final, resume_at=10)
    partial_path(final).unlink()
    with pytest.raises(errors.InputError, match="missing"):
        CommittedFile(final, resume_at=10)


def test_prefix_hash_checks_only_the_committed_prefix(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"a\n1\n2\n3\n")
    committed = PrefixHash(source)
    digest = committed.extend_to(6)  # "a\n1\n2\n": the header and two rows
    assert committed.extend_to(6) == digest and committed.offset == 6
    source.write_bytes(b"a\n1\n2\n33\n4\n")  # the tail changed and grew: still resumable
    assert PrefixHash(source).matches(6, digest)
    source.write_bytes(b"a\n9\n2\n3\n")  # a committed row changed
    assert not PrefixHash(source).matches(6, digest)
    source.write_bytes(b"a\n1\n")  # shorter than the committed prefix
    assert not PrefixHash(source).matches(6, digest)


def test_journal_keeps_the_input_position_of_each_commit(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "out.csv")
    journal = Journal.create(path, {})
    checkpoint = Checkpoint(rows=2, input_offset=6, input_line=3, input_sha256="ab" * 32)
    journal.commit(checkpoint)
    journal.close()
    assert read_journal(path).checkpoint == checkpoint


# -- limiters ----------------------------------------------------------------------------------


async def _drive(limiter: ConcurrencyLimiter, *, capacity: int, service_s: float,
                 requests: int, shed_above: int | None = None) -> dict[str, float]:
    """A simulated endpoint: ``capacity`` workers, a queue, optional 503 above a depth."""
    workers = asyncio.Semaphore(capacity)
    state = {"in_system": 0, "peak": 0, "shed": 0, "done": 0}

    async def one() -> None:
        while True:
            async with limiter.slot() as epoch:
                if shed_above is not None and state["in_system"] >= shed_above:
                    state["shed"] += 1
                    limiter.record_overload(epoch)
                    continue
                state["in_system"] += 1
                state["peak"] = max(state["peak"], state["in_system"])
                started = time.perf_counter()
                async with workers:
                    await asyncio.sleep(service_s)
                state["in_system"] -= 1
                limiter.record_success(time.perf_counter() - started, epoch)
                state["done"] += 1
                return

    started = time.perf_counter()
    pending: set[asyncio.Task[None]] = set()
    for _ in range(requests):  # a bounded window of tasks, as the batch reader keeps
        while len(pending) >= 2 * limiter.cap + 2:
            _, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        pending.add(asyncio.create_task(one()))
    await asyncio.gather(*pending)
    state["elapsed"] = time.perf_counter() - started
    state["throughput"] = requests / state["elapsed"]
    return state


def test_fixed_limiter_never_exceeds_its_cap() -> None:
    limiter = ConcurrencyLimiter(3)
    state = asyncio.run(_drive(limiter, capacity=10, service_s=0.002, requests=60))
    assert state["peak"] == 3
    assert limiter.cap == 3 and limiter.peak_in_flight == 3


def test_adaptive_limiter_finds_the_capacity_without_piling_up_a_queue() -> None:
    capacity, service_s = 4, 0.01
    limiter = ConcurrencyLimiter(None, settings=AimdSettings(initial=1))
    state = asyncio.run(_drive(limiter, capacity=capacity, service_s=service_s, requests=400))
    best = capacity / service_s
    assert state["throughput"] >= 0.8 * best, state
    # enough in flight to keep every worker busy, never a long queue
    assert capacity <= limiter.cap <= capacity + 6, (limiter.cap, state)
    assert state["peak"] <= capacity + 10


def test_adaptive_limiter_backs_off_when_the_endpoint_sheds_load() -> None:
    limiter = ConcurrencyLimiter(None, settings=AimdSettings(initial=8))
    state = asyncio.run(
        _drive(limiter, capacity=4, service_s=0.01, requests=300, shed_above=6)
    )
    assert limiter.decreases >= 1
    assert state["shed"] < 60, state  # it learned, instead of hammering
    assert state["throughput"] >= 0.6 * 400


def test_one_decrease_per_round_trip() -> None:
    async def scenario() -> None:
        limiter = ConcurrencyLimiter(None, settings=AimdSettings(initial=16))
        async with limiter.slot() as first, limiter.slot() as second:
            limiter.record_overload(first)
            limiter.record_overload(second)  # sent before the first cut: no second cut
        assert limiter.cap == 8
        async with limiter.slot() as third:
            limiter.record_overload(third)
        assert limiter.cap == 4

    asyncio.run(scenario())


def test_fixed_limiter_ignores_feedback() -> None:
    async def scenario() -> None:
        limiter = ConcurrencyLimiter(5)
        async with limiter.slot() as epoch:
            limiter.record_overload(epoch)
            limiter.record_success(10.0, epoch)
        assert limiter.cap == 5

    asyncio.run(scenario())


def test_pause_gate_holds_everyone_until_the_date() -> None:
    async def scenario() -> float:
        gate = PauseGate()
        gate.pause(0.2)
        gate.pause(0.05)  # a shorter pause never shortens the one in force
        started = time.perf_counter()
        await asyncio.gather(gate.wait(), gate.wait())
        return time.perf_counter() - started

    assert 0.18 <= asyncio.run(scenario()) < 1.0


# -- options and formats -----------------------------------------------------------------------


def test_concurrency_option() -> None:
    assert _parse_concurrency("auto") is None
    assert _parse_concurrency("AUTO") is None
    assert _parse_concurrency("12") == 12
    assert _parse_concurrency(3) == 3
    for bad in ("0", "many", 0, -1):
        with pytest.raises(errors.ConfigError):
            _parse_concurrency(bad)


def test_default_errors_path() -> None:
    assert default_errors_path("out/predictions.csv") == Path("out/predictions.errors.jsonl")


def test_csv_output_keeps_input_text_and_appends_the_prediction() -> None:
    fmt = _OutputFormat(Path("p.csv"))
    fmt.learn({"id": "7", "prediction": "old", "x": "1.50"})
    assert fmt.prologue() == b"id,prediction,x,_prediction\n"
    data = fmt.encode([({"id": "7", "prediction": "old", "x": "1.50"}, "yes"),
                       ({"id": "8", "prediction": "", "x": "a,b"}, [0.1, 0.9])], 0)
    assert data == b'7,old,1.50,yes\n8,,"a,b","[0.1, 0.9]"\n'


def test_jsonl_and_json_outputs_are_valid_documents() -> None:
    rows = [({"a": 1}, "yes"), ([1, 2], 0.5)]
    jsonl = _OutputFormat(Path("p.jsonl"))
    jsonl.learn(rows[0][0])
    lines = jsonl.encode(rows, 0).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"a": 1, "prediction": "yes"}, {"input": [1, 2], "prediction": 0.5},
    ]
    js = _OutputFormat(Path("p.json"))
    js.learn(rows[0][0])
    text = js.prologue() + js.encode(rows[:1], 0) + js.encode(rows[1:], 1) + js.epilogue(2)
    assert json.loads(text) == [{"a": 1, "prediction": "yes"}, {"input": [1, 2], "prediction": 0.5}]
    empty = _OutputFormat(Path("p.json"))
    assert json.loads(empty.prologue() + empty.epilogue(0)) == []
