"""Batch scoring against real HTTP servers on 127.0.0.1, and ``amlc score`` in real processes.

The test server (tests/support/batch_servers.py) predicts ``id<duration>`` for a row whose
``duration`` is its 0-based position, so every check below can tell which row a prediction
belongs to.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.batch_servers import (
    TEST_KEY,
    Behaviour,
    ScoringServer,
    ServerProcess,
    write_csv,
)

from aml_client import KeyCredential, errors
from aml_client.batch import BatchProgress, score_file
from aml_client.config import Target
from aml_client.journal import journal_path, partial_path, read_journal

REPO = Path(__file__).resolve().parents[2]


def target_for(uri: str, key: str = TEST_KEY) -> Target:
    return Target("test", uri, None, KeyCredential(key), source="test")


def read_output(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_errors(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture
def server() -> Iterator[ScoringServer]:
    with ScoringServer(Behaviour(delay_s=0.002)) as running:
        yield running


def test_bad_rows_end_in_the_errors_file_and_nothing_else_is_lost(
    tmp_path: Path, server: ScoringServer
) -> None:
    n = 3000
    bad = {
        9: {"age": "abc"},  # refused by the swagger before anything is sent
        500: {"job": "BAD400"},  # the server answers 400 when this row is in a request
        1234: {"job": "BAD500"},  # ... and 500 for this one
        1235: {"campaign": ""},
        2999: {"job": "BAD400"},
    }
    source = write_csv(tmp_path / "in.csv", n, bad)
    out = tmp_path / "out.csv"
    seen: list[BatchProgress] = []

    summary = score_file(
        target_for(server.scoring_uri),
        str(source),
        str(out),
        batch_size=100,
        concurrency=4,
        progress=seen.append,
    )

    assert (summary.rows_in, summary.rows_out, summary.rows_failed) == (n, n - 5, 5)
    failed = read_errors(tmp_path / "out.errors.jsonl")
    assert [f["row"] for f in failed] == [10, 501, 1235, 1236, 3000]
    assert [f["kind"] for f in failed] == [
        "validation",
        "bad_request",
        "model_error",
        "validation",
        "bad_request",
    ]
    assert failed[0]["reason"] == "column 'age': expected integer, got 'abc'"
    assert "400" in failed[1]["reason"] and failed[1]["status"] == 400
    assert "could not convert" in failed[2]["reason"] and failed[2]["status"] == 500
    assert failed[0]["input"]["age"] == "abc" and failed[0]["input"]["duration"] == "9"

    rows = read_output(out)
    expected_ids = [i for i in range(n) if i not in bad]
    assert [int(r["duration"]) for r in rows] == expected_ids  # input order, no gaps
    assert all(r["prediction"] == f"id{r['duration']}" for r in rows)
    assert list(rows[0])[-1] == "prediction"
    # every good row was scored exactly once; bisection cost a handful of requests, not n
    assert Counter(server.scored_ids()) == Counter(expected_ids)
    assert server.requests < 30 + 3 * 2 * 7
    assert seen and seen[-1].rows_done == n and seen[-1].rows_failed == 5
    assert not journal_path(out).exists() and not partial_path(out).exists()


def test_payload_too_large_batches_are_split_until_they_fit(tmp_path: Path) -> None:
    n = 4000
    with ScoringServer(Behaviour(max_body=20_000)) as running:  # about 50 rows fit
        source = write_csv(tmp_path / "in.csv", n)
        out = tmp_path / "out.jsonl"
        summary = score_file(
            target_for(running.scoring_uri), str(source), str(out), batch_size=200,
            concurrency=2,
        )
        assert summary.rows_out == n and summary.rows_failed == 0
        assert sorted(running.scored_ids()) == list(range(n))
        # The first refusals taught it a request size that fits: not a 413 (and a split)
        # for each of the 20 batches.
        assert 1 <= running.statuses().count(413) <= 8
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["duration"] for r in records] == [str(i) for i in range(n)]
    assert all(r["prediction"] == f"id{i}" for i, r in enumerate(records))


def test_bursts_of_429_are_absorbed_and_pause_every_request(tmp_path: Path) -> None:
    burst = (6, 5, "2")  # requests 6..10 get 429 with Retry-After: 2
    with ScoringServer(Behaviour(delay_s=0.005, rate_limit_bursts=[burst])) as running:
        source = write_csv(tmp_path / "in.csv", 6000)
        out = tmp_path / "out.csv"
        summary = score_file(
            target_for(running.scoring_uri),
            str(source),
            str(out),
            batch_size=100,
            concurrency=8,
        )
        log = list(running.log)
    assert summary.rows_out == 6000 and summary.rows_failed == 0
    assert summary.retries == 5
    assert [int(r["duration"]) for r in read_output(out)] == list(range(6000))
    # Retry-After paused the whole pipeline: after the first 429, only requests already on
    # the wire finished (5 ms each; 0.6 s allowed, for a busy machine); nothing new was scored
    # until the 2 s were over.
    first_429 = min(e["t"] for e in log if e["status"] == 429)
    during = [e for e in log if e["status"] == 200 and first_429 + 0.6 < e["t"] < first_429 + 1.8]
    assert during == [], [(e["ids"][0], e["t"] - first_429) for e in during]
    assert summary.elapsed_s >= 2.0


def test_auto_concurrency_reaches_capacity_without_overloading(tmp_path: Path) -> None:
    """Measured where it happens, in the server, not as a throughput that depends on how
    busy this machine is: once past its start, the run keeps every worker of the server
    busy (each request arrives to find at least ``capacity`` requests there) and never
    piles up far more than the workers can take."""
    # Requests long enough on the server, and small enough on the client, that the client is
    # never what holds the server back, even sharing two cores with busy processes.
    capacity, service_s, batch = 4, 0.1, 20
    rows = 4_000
    source = write_csv(tmp_path / "in.csv", rows)
    log = tmp_path / "server.jsonl"
    with ServerProcess({"delay_s": service_s, "capacity": capacity}, log_path=log) as running:
        summary = score_file(
            target_for(running.scoring_uri),
            str(source),
            str(tmp_path / "out.csv"),
            batch_size=batch,
            concurrency="auto",
        )
        found = [e["in_system"] for e in running.log() if e["status"] == 200]
    assert summary.rows_out == rows
    assert len(found) == rows // batch
    steady = sorted(found[len(found) // 5 :])  # after the ramp-up
    # The workers stay busy: the median request finds the server full, or one short of it when
    # a busy machine holds the client off the CPU between two sends (the limiter's own final
    # concurrency, below, is what shows it grew to the capacity).
    assert steady[len(steady) // 2] >= capacity - 1, Counter(found)
    assert max(found) <= 4 * capacity, Counter(found)
    # it stopped growing near the capacity instead of running to the 64 cap
    assert capacity <= summary.concurrency_final <= 3 * capacity, summary
    assert summary.concurrency_peak <= 4 * capacity, summary


def test_auto_concurrency_backs_off_an_endpoint_that_sheds_load(tmp_path: Path) -> None:
    rows = 6000
    source = write_csv(tmp_path / "in.csv", rows)
    log = tmp_path / "server.jsonl"
    behaviour = {"delay_s": 0.03, "capacity": 4, "shed_above": 6}
    with ServerProcess(behaviour, log_path=log) as running:
        summary = score_file(
            target_for(running.scoring_uri),
            str(source),
            str(tmp_path / "out.csv"),
            batch_size=50,
            concurrency="auto",
        )
        statuses = Counter(e["status"] for e in running.log())
    assert summary.rows_out == rows and summary.rows_failed == 0
    assert statuses[200] == rows // 50
    assert summary.retries == statuses[503]
    assert statuses[503] <= 0.15 * statuses[200], statuses


def test_a_broken_endpoint_stops_the_run_instead_of_failing_every_row(tmp_path: Path) -> None:
    with ScoringServer(Behaviour(always_status=500)) as running:
        source = write_csv(tmp_path / "in.csv", 2000)
        out = tmp_path / "out.csv"
        with pytest.raises(errors.EndpointError, match="looks broken"):
            score_file(target_for(running.scoring_uri), str(source), str(out), batch_size=100)
        assert running.requests < 200  # it did not bisect all 2000 rows
    # nothing was committed, so nothing is left to resume
    assert not out.exists() and not journal_path(out).exists() and not partial_path(out).exists()


def test_a_refused_key_stops_at_once(tmp_path: Path, server: ScoringServer) -> None:
    source = write_csv(tmp_path / "in.csv", 1000)
    with pytest.raises(errors.AuthenticationError):
        score_file(
            target_for(server.scoring_uri, key="wrong-key-0000"),
            str(source),
            str(tmp_path / "out.csv"),
        )
    assert server.requests <= 8
    assert not journal_path(tmp_path / "out.csv").exists()


def test_jsonl_input_to_json_output(tmp_path: Path, server: ScoringServer) -> None:
    source = tmp_path / "in.jsonl"
    with source.open("w") as handle:
        for i in range(450):
            row = {
                "age": 30,
                "job": "admin.",
                "marital": "single",
                "education": "basic.4y",
                "default": "no",
                "housing": "no",
                "loan": "no",
                "contact": "cellular",
                "month": "may",
                "day_of_week": "mon",
                "duration": i,
                "campaign": 1,
                "pdays": 999,
                "previous": 0,
                "poutcome": "nonexistent",
                "emp.var.rate": 1.1,
                "cons.price.idx": 93.9,
                "cons.conf.idx": -36.4,
                "euribor3m": 4.8,
                "nr.employed": 5191.0,
            }
            if i == 7:
                row["age"] = "seven"
            handle.write(json.dumps(row) + "\n")
    out = tmp_path / "out.json"
    summary = score_file(
        target_for(server.scoring_uri), str(source), str(out), batch_size=64, concurrency="2"
    )
    records = json.loads(out.read_text())
    assert summary.rows_out == 449 and len(records) == 449
    assert [r["prediction"] for r in records] == [f"id{i}" for i in range(450) if i != 7]
    assert records[0]["duration"] == 0 and records[0]["age"] == 30


# -- interrupted runs, through the real CLI ----------------------------------------------------


def _cli(args: list[str], uri: str, *, home: Path | None = None) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        AMLC_SCORING_URI=uri,
        AMLC_KEY=TEST_KEY,  # from the environment, never the command line
    )
    if home is not None:  # the same amlc home across runs (where finished runs are recorded)
        env["AMLC_HOME"] = str(home)
    return subprocess.Popen(
        [sys.executable, "-m", "aml_client", "score", *args],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _commits(journal: Path) -> int:
    try:
        return journal.read_text().count('"kind":"commit"')
    except FileNotFoundError:
        return 0


@pytest.fixture(scope="module")
def slow_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A server slow enough to interrupt, a 20,000-row input, and an uninterrupted output."""
    root = tmp_path_factory.mktemp("resume")
    source = write_csv(root / "in.csv", 20_000, {4321: {"age": "abc"}})
    with ScoringServer(Behaviour(delay_s=0.03)) as running:
        reference = root / "reference.csv"
        summary = score_file(
            target_for(running.scoring_uri),
            str(source),
            str(reference),
            batch_size=100,
            concurrency=16,
        )
        assert summary.rows_failed == 1
        yield {"server": running, "source": source, "reference": reference}


@pytest.mark.parametrize("how", ["kill -9", "ctrl-c"])
def test_interrupted_run_resumes_without_losing_or_rescoring_a_row(
    tmp_path: Path, slow_run: dict, how: str
) -> None:
    server: ScoringServer = slow_run["server"]
    out = tmp_path / "out.csv"
    journal = journal_path(out)
    args = [str(slow_run["source"]), "-o", str(out), "--batch-size", "100", "--concurrency", "4"]

    log_start = len(server.log)
    proc = _cli(args, server.scoring_uri)
    deadline = time.monotonic() + 30
    while _commits(journal) < 8 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    assert proc.poll() is None, "the run finished before it could be interrupted"
    if how == "kill -9":
        proc.kill()
    else:
        proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=30)
    if how == "kill -9":
        assert proc.returncode == -signal.SIGKILL
    else:
        assert proc.returncode == 130, stderr
        assert "--resume" in stderr and "Traceback" not in stderr
    assert not out.exists()  # never a half-written output under the real name
    state = read_journal(journal)
    committed = state.checkpoint.rows
    assert 0 < committed < 20_000
    first_run = list(server.log[log_start:])

    again = _cli(args, server.scoring_uri)  # without --resume: refused, clearly
    _, stderr = again.communicate(timeout=30)
    assert again.returncode == 2
    assert "--resume" in stderr and "journal" in stderr and "Traceback" not in stderr

    log_resume = len(server.log)
    resumed = _cli([*args, "--resume"], server.scoring_uri)
    _, stderr = resumed.communicate(timeout=60)
    assert resumed.returncode == 2, stderr  # one row is bad: reported, exit 2
    assert "1 of 20,000 rows could not be scored" in stderr
    second_run = list(server.log[log_resume:])

    assert out.read_bytes() == slow_run["reference"].read_bytes()
    errors_file = tmp_path / "out.errors.jsonl"
    assert [e["row"] for e in read_errors(errors_file)] == [4322]
    assert not journal.exists() and not partial_path(out).exists()

    # No finished batch was scored again: rows committed before the interruption never
    # reached the server in the resumed run, and every other row did.
    ids_before = Counter(i for e in first_run if e["status"] == 200 for i in e["ids"])
    ids_after = Counter(i for e in second_run if e["status"] == 200 for i in e["ids"])
    assert all(i >= committed for i in ids_after)
    assert all(ids_before[i] == 1 for i in range(committed) if i != 4321)
    assert set(ids_after) == {i for i in range(committed, 20_000) if i != 4321}
    assert max(ids_after.values()) == 1


def test_a_crash_between_done_and_rename_is_completed_by_resume(
    tmp_path: Path, server: ScoringServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aml_client import journal

    source = write_csv(tmp_path / "in.csv", 500, {3: {"age": "abc"}})
    out = tmp_path / "out.csv"
    target = target_for(server.scoring_uri)

    def crash(self: journal.CommittedFile, trailer: bytes = b"") -> None:
        raise KeyboardInterrupt  # the process dies right after the "done" record

    with monkeypatch.context() as patch:
        patch.setattr(journal.CommittedFile, "finalise", crash)
        with pytest.raises(KeyboardInterrupt):
            score_file(target, str(source), str(out), batch_size=100)
    assert read_journal(journal_path(out)).done and not out.exists()
    requests = server.requests

    summary = score_file(target, str(source), str(out), batch_size=100, resume=True)

    assert server.requests == requests  # nothing sent again
    assert (summary.rows_in, summary.rows_out, summary.rows_failed) == (500, 499, 1)
    assert len(read_output(out)) == 499
    assert [e["row"] for e in read_errors(tmp_path / "out.errors.jsonl")] == [4]
    assert not journal_path(out).exists() and not partial_path(out).exists()


def _peak_rss_of_amlc_score(source: Path, out: Path, uri: str) -> int:
    """VmHWM (KiB) of a real ``amlc score`` process scoring ``source``."""
    proc = _cli([str(source), "-o", str(out), "--concurrency", "8"], uri)
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            break
        match = re.search(r"VmHWM:\s+(\d+)", status)
        peak = max(peak, int(match.group(1)) if match else 0)
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 0, stderr
    return peak


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_memory_stays_flat_as_the_input_grows(tmp_path: Path) -> None:
    small = write_csv(tmp_path / "small.csv", 10_000)
    large = write_csv(tmp_path / "large.csv", 150_000)
    with ServerProcess({}) as running:
        small_kib = _peak_rss_of_amlc_score(small, tmp_path / "small-out.csv",
                                            running.scoring_uri)
        large_kib = _peak_rss_of_amlc_score(large, tmp_path / "large-out.csv",
                                            running.scoring_uri)
    assert len(read_output(tmp_path / "large-out.csv")) == 150_000
    # 15 times the rows (and 17 MB more input): allocator noise (8 MiB seen on a busy machine),
    # not a copy of it (the parsed rows would take several times the 17 MB of text)
    assert large_kib - small_kib < 16 * 1024, (small_kib, large_kib)


def _files_state(*paths: Path) -> dict[str, tuple[bytes, int] | None]:
    """Each file's bytes and modification time (None when absent)."""
    return {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns) if p.exists() else None for p in paths
    }


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """A 20,000-row input scored to the end by ``amlc score -o`` (one row fails), and the
    server that counts every request."""
    root = tmp_path_factory.mktemp("finished")
    source = write_csv(root / "in.csv", 20_000, {4321: {"age": "abc"}})
    out = root / "out.csv"
    with ScoringServer(Behaviour(delay_s=0.001)) as running:
        args = [str(source), "-o", str(out), "--batch-size", "200"]
        first = _cli(args, running.scoring_uri, home=root / "home")
        _, stderr = first.communicate(timeout=120)
        assert first.returncode == 2, stderr  # the bad row is reported
        assert running.requests >= 100
        yield {"server": running, "source": source, "out": out, "args": args, "root": root}


def test_resume_on_a_complete_output_sends_nothing_and_touches_nothing(
    finished_run: dict,
) -> None:
    server: ScoringServer = finished_run["server"]
    out: Path = finished_run["out"]
    errors_file = out.with_name("out.errors.jsonl")
    before = _files_state(out, errors_file)
    assert before["out.errors.jsonl"] is not None
    requests = server.requests

    for extra in ([], ["--json"]):
        again = _cli([*finished_run["args"], "--resume", *extra], server.scoring_uri,
                     home=finished_run["root"] / "home")
        stdout, stderr = again.communicate(timeout=60)
        assert again.returncode == 0, stderr
        if extra:
            report = json.loads(stdout)
            assert report["already_complete"] is True
            assert (report["rows_in"], report["rows_out"], report["rows_failed"]) == (
                20_000, 19_999, 1)
        else:
            assert stdout.startswith("already complete: 20,000 rows, nothing sent"), stdout
            assert "error" not in stderr

    assert server.requests == requests
    assert _files_state(out, errors_file) == before  # byte-identical, mtime unchanged
    assert not journal_path(out).exists() and not partial_path(out).exists()
    assert not partial_path(errors_file).exists()


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        ("output", "changed since the run that finished it"),
        ("input", "the input has changed since"),
        ("settings", "had another errors"),
        ("no record", "no finished run is known to have written it"),
    ],
)
def test_resume_refuses_an_output_it_cannot_vouch_for(
    tmp_path: Path, server: ScoringServer, change: str, needle: str
) -> None:
    """Rather than score every row again (billed twice), a resume that cannot show the output
    is complete says why and sends nothing."""
    home = tmp_path / "home"
    source = write_csv(tmp_path / "in.csv", 300)
    out = tmp_path / "out.csv"
    args = [str(source), "-o", str(out), "--batch-size", "100"]
    first = _cli(args, server.scoring_uri, home=home)
    assert first.wait(timeout=60) == 0
    if change == "output":
        with out.open("a") as handle:
            handle.write("an,extra,line\n")
    elif change == "input":
        write_csv(source, 301)
    elif change == "settings":
        args += ["--errors", str(tmp_path / "other.errors.jsonl")]
    else:
        for record in (home / "state" / "batch-runs").iterdir():
            record.unlink()
    before = _files_state(out, source)
    requests = server.requests

    again = _cli([*args, "--resume"], server.scoring_uri, home=home)
    _, stderr = again.communicate(timeout=60)

    assert again.returncode == 2, stderr
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0] and "without --resume" in lines[0], stderr
    assert server.requests == requests
    assert _files_state(out, source) == before


def test_resume_of_a_complete_output_in_the_library(tmp_path: Path, server: ScoringServer) -> None:
    source = write_csv(tmp_path / "in.csv", 500, {3: {"age": "abc"}})
    out = tmp_path / "out.jsonl"
    target = target_for(server.scoring_uri)
    first = score_file(target, str(source), str(out), batch_size=100)
    assert not first.already_complete
    requests = server.requests
    again = score_file(target, str(source), str(out), batch_size=100, resume=True)
    assert again.already_complete and again.requests == 0 and server.requests == requests
    assert (again.rows_in, again.rows_out, again.rows_failed) == (500, 499, 1)
    assert again.resumed_rows == 500
