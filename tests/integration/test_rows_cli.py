"""Any input file, through the real ``amlc`` CLI and real HTTP on 127.0.0.1.

Every bad file gives one ``error:`` line naming the file (and line, where known), exit 2, no
traceback, and reaches the endpoint with no scoring request. Large files keep going past a
malformed line, resume after their tail was edited, and send exactly what the file says
(envelope, GlobalParameters) when no swagger is there to say otherwise.

The test server (tests/support/batch_servers.py) predicts ``id<duration>`` for a row whose
``duration`` is its 0-based position, and logs every request it scores.
"""

from __future__ import annotations

import csv
import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.batch_servers import (
    COLUMNS,
    TEST_KEY,
    Behaviour,
    ScoringServer,
    make_row,
    write_csv,
)

from aml_client import KeyCredential
from aml_client.batch import score_file
from aml_client.config import Target
from aml_client.journal import journal_path, partial_path, read_journal

REPO = Path(__file__).resolve().parents[2]
TRAINING = REPO / "aml_client" / "local" / "data" / "bankmarketing_train.csv.gz"
DEEP = "[" * 100_000 + "]" * 100_000


def env_for(server: ScoringServer) -> dict[str, str]:
    return {"AMLC_SCORING_URI": server.scoring_uri, "AMLC_KEY": TEST_KEY}


def target_for(uri: str) -> Target:
    return Target("test", uri, None, KeyCredential(TEST_KEY), source="test")


def typed_row(i: int) -> dict[str, Any]:
    """Row ``i`` with the swagger's types (as a JSON payload carries it)."""
    ints = {"age", "duration", "campaign", "pdays", "previous"}
    floats = {"emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"}
    return {
        k: int(v) if k in ints else float(v) if k in floats else v
        for k, v in make_row(i).items()
    }


def read_output(path: Path) -> list[dict[str, str]]:
    with path.open(newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def read_errors(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def no_files_but(folder: Path, *names: str) -> None:
    assert sorted(p.name for p in folder.iterdir()) == sorted(names)


@pytest.fixture
def server() -> Iterator[ScoringServer]:
    with ScoringServer(Behaviour(delay_s=0.001)) as running:
        yield running


# -- bad files: one line, exit 2, nothing sent --------------------------------------------------


def _bad_inputs(folder: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """name -> (file, what its one error line must say)."""
    cp1252 = folder / "excel.csv"
    write_csv(cp1252, 5, {2: {"job": "técnico"}})
    cp1252.write_bytes(cp1252.read_text(encoding="utf-8").encode("cp1252"))
    rows = [typed_row(i) for i in range(3)]
    huge = json.dumps({"data": rows}, indent=1).replace('"age": 18', '"age": ' + "9" * 5000)
    surrogate = json.dumps([typed_row(0), {**typed_row(1), "job": "PLACEHOLDER"}], indent=1)
    texts = {
        "nested.json": '{"data": [' + DEEP + "]}",
        "nested.jsonl": json.dumps(rows[0]) + "\n" + '{"age": ' + DEEP + "}\n",
        "huge.json": huge,
        "surrogate.json": surrogate.replace("PLACEHOLDER", "\\ud800"),
        "pasted.json": json.dumps({"Results": ["no"]}) + "\n" + json.dumps({"data": rows}),
        "utf16-nested.json": "\ufeff" + '{"Inputs": {"data": [' + DEEP + "]}}",
    }
    cases: dict[str, tuple[Path, tuple[str, ...]]] = {
        "cp1252": (cp1252, ("excel.csv:4", "byte offset", "--encoding")),
        "nested.json": (folder / "nested.json", ("nested.json:1", "nested more than 64")),
        "nested.jsonl": (folder / "nested.jsonl", ("nested.jsonl:2", "nested more than 64")),
        "huge.json": (folder / "huge.json", ("huge.json:3", "more than 4300 digits")),
        "surrogate.json": (folder / "surrogate.json", ("surrogate.json:", "lone surrogate")),
        "pasted.json": (folder / "pasted.json", ("pasted.json:2", "second JSON document")),
        "utf16-nested.json": (folder / "utf16-nested.json", ("utf16-nested.json:1", "nested")),
    }
    for name, text in texts.items():
        encoding = "utf-16-le" if name.startswith("utf16") else "utf-8"
        (folder / name).write_bytes(text.encode(encoding))
    return cases


CASES = ["cp1252", "nested.json", "nested.jsonl", "huge.json", "surrogate.json", "pasted.json",
         "utf16-nested.json"]


@pytest.mark.parametrize("path_kind", ["small", "-o", "bench --payload"])
@pytest.mark.parametrize("case", CASES)
def test_a_bad_file_is_one_line_exit_2_and_nothing_is_sent(
    amlc: Any, tmp_path: Path, server: ScoringServer, case: str, path_kind: str
) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    path, needles = _bad_inputs(inputs)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    if path_kind == "small":
        args = ["score", str(path)]
    elif path_kind == "-o":
        args = ["score", str(path), "-o", str(out_dir / "out.csv")]
    else:
        args = ["bench", "--payload", str(path), "-n", "1", "--report-dir", str(out_dir)]
    result = amlc(*args, env=env_for(server))
    if path_kind == "-o" and case in ("nested.jsonl", "surrogate.json"):
        # A large run goes on past a row it can read around: one failed row, with its line.
        assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
        assert "1 of 2 rows could not be scored" in result.stderr
        (failure,) = read_errors(out_dir / "out.errors.jsonl")
        assert failure["kind"] == "malformed" and needles[1] in failure["reason"]
        assert failure["line"] == (2 if case == "nested.jsonl" else 24)  # where the row starts
        assert len(read_output(out_dir / "out.csv")) == 1
        return
    result.assert_error(2, *needles)
    assert server.requests == 0  # no scoring request: the file was refused first
    no_files_but(out_dir)  # no output, partial file, journal or errors file left behind


def test_cp1252_scores_with_encoding_and_utf16_needs_nothing(
    amlc: Any, tmp_path: Path, server: ScoringServer
) -> None:
    cp1252 = _bad_inputs(tmp_path)["cp1252"][0]
    result = amlc("score", str(cp1252), "--encoding", "cp1252", "--json",
                      env=env_for(server))
    assert result.returncode == 0, result.stderr
    assert result.json()["predictions"] == [f"id{i}" for i in range(5)]
    utf16 = tmp_path / "excel-utf16.csv"
    utf16.write_bytes(b"\xff\xfe" + cp1252.read_bytes().decode("cp1252").encode("utf-16-le"))
    out = tmp_path / "out.csv"
    result = amlc("score", str(utf16), "-o", str(out), env=env_for(server))
    assert result.returncode == 0, result.stderr
    assert [r["job"] for r in read_output(out)][2] == "técnico"


@pytest.mark.parametrize("resume", [False, True])
def test_outputs_that_cannot_be_written_are_refused_before_scoring(
    amlc: Any, tmp_path: Path, server: ScoringServer, resume: bool
) -> None:
    source = write_csv(tmp_path / "in.csv", 300)
    folder = tmp_path / "predictions"
    folder.mkdir()
    extra = ["--resume"] if resume else []
    cases = [
        (["-o", str(folder)], ("is a directory",)),
        (["-o", "/proc/amlc-test/x.csv"], ("cannot write", "/proc/amlc-test")),
        (["-o", "/proc/x.csv"], ("cannot write", "/proc/x.csv")),
        (["-o", str(source)], ("would overwrite the input",)),
        (["-o", str(tmp_path / "ok.csv"), "--errors", str(source)], ("overwrite the input",)),
        (["-o", str(tmp_path / "ok.csv"), "--errors", str(folder)], ("is a directory",)),
    ]
    for args, needles in cases:
        result = amlc("score", str(source), *args, *extra, env=env_for(server))
        result.assert_error(2, *needles)
    assert server.requests == 0
    no_files_but(folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["amlc-home", "in.csv", "predictions"]


# -- large files --------------------------------------------------------------------------------


def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines(keepends=True)
    lines[number - 1] = text + "\n"
    path.write_text("".join(lines), encoding="utf-8")


def test_malformed_lines_go_to_the_errors_file_and_the_run_goes_on(
    amlc: Any, tmp_path: Path, server: ScoringServer
) -> None:
    n = 3000
    source = write_csv(tmp_path / "in.csv", n)
    _replace_line(source, 1501, "61,blue-collar,married")  # row 1500: three fields
    _replace_line(source, 2501, '40,"admin."x,' + ",".join(make_row(2499).values()))
    out = tmp_path / "out.csv"
    result = amlc("score", str(source), "-o", str(out), "--batch-size", "100",
                      env=env_for(server))
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert "2 of 3,000 rows could not be scored" in result.stderr
    failed = read_errors(tmp_path / "out.errors.jsonl")
    assert [(f["row"], f["line"], f["kind"]) for f in failed] == [
        (1500, 1501, "malformed"), (2500, 2501, "malformed")
    ]
    assert "3 values but the header has 20 columns" in failed[0]["reason"]
    assert failed[0]["input"] == "61,blue-collar,married"
    assert failed[1]["reason"].startswith("bad CSV")
    rows = read_output(out)
    expected = [i for i in range(n) if i not in (1499, 2499)]
    assert [int(r["duration"]) for r in rows] == expected  # every other row, in order
    assert Counter(server.scored_ids()) == Counter(expected)  # each scored once


def test_a_broken_json_document_keeps_what_was_scored_and_resumes_once_fixed(
    amlc: Any, tmp_path: Path, server: ScoringServer
) -> None:
    n = 3000
    rows = [typed_row(i) for i in range(n)]
    # GlobalParameters first: the rows stream from the start, so the break is met mid-run.
    good = json.dumps({"GlobalParameters": {"method": "predict_proba"},
                       "Inputs": {"data": rows}}, indent=1)
    source = tmp_path / "payload.json"
    broken = good.replace('"duration": 2500,', '"duration": 2500,,')
    source.write_text(broken)
    out = tmp_path / "out.jsonl"
    args = ["score", str(source), "-o", str(out), "--batch-size", "100", "--concurrency", "2"]
    result = amlc(*args, env=env_for(server))
    bad_line = broken[: broken.index(",,")].count("\n") + 1
    line = result.assert_error(2, f"payload.json:{bad_line}", "--resume")
    assert "not valid JSON" in line
    committed = read_journal(journal_path(out)).checkpoint.rows
    assert 0 < committed <= 2500
    first_run = Counter(server.scored_ids())
    assert set(first_run) == set(range(committed)) and max(first_run.values()) == 1

    source.write_text(good)  # fixed after the committed rows
    before = len(server.log)
    result = amlc(*args, "--resume", env=env_for(server))
    assert result.returncode == 0, result.stderr
    assert f"({committed:,} from the earlier run)" in result.stdout
    second_run = [i for e in server.log[before:] if e["status"] == 200 for i in e["ids"]]
    assert sorted(second_run) == list(range(committed, n))  # nothing committed sent again
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["prediction"] for r in records] == [f"id{i}" for i in range(n)]
    assert {json.dumps(e["params"]) for e in server.log} == {'{"method": "predict_proba"}'}


def test_a_broken_document_whose_parameters_follow_the_rows_is_refused_before_sending(
    amlc: Any, tmp_path: Path, server: ScoringServer
) -> None:
    rows = [typed_row(i) for i in range(3000)]
    text = json.dumps({"Inputs": {"data": rows},
                       "GlobalParameters": {"method": "predict_proba"}}, indent=1)
    source = tmp_path / "payload.json"
    source.write_text(text.replace('"duration": 2500,', '"duration": 2500,,'))
    out = tmp_path / "out.jsonl"
    result = amlc("score", str(source), "-o", str(out), env=env_for(server))
    # Finding the parameters reads the document through first: its break shows before any row
    # is sent, and there is nothing to resume.
    result.assert_error(2, "payload.json:", "not valid JSON")
    assert server.requests == 0
    no_files_but(tmp_path, "amlc-home", "payload.json")


def _cli(args: list[str], uri: str) -> subprocess.Popen[str]:
    env = dict(os.environ)
    env.update(
        PYTHONPATH=os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
        AMLC_SCORING_URI=uri,
        AMLC_KEY=TEST_KEY,
    )
    return subprocess.Popen(
        [sys.executable, "-m", "aml_client", "score", *args],
        env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def _commits(journal: Path) -> int:
    try:
        return journal.read_text().count('"kind":"commit"')
    except FileNotFoundError:
        return 0


def test_kill_9_then_an_edited_tail_resumes_without_rescoring_a_committed_row(
    amlc: Any, tmp_path: Path,
) -> None:
    n = 20_000
    source = write_csv(tmp_path / "in.csv", n)
    _replace_line(source, 19_001, "oops,only,three")  # row 19,000 is malformed
    out = tmp_path / "out.csv"
    journal = journal_path(out)
    args = [str(source), "-o", str(out), "--batch-size", "100", "--concurrency", "4"]
    with ScoringServer(Behaviour(delay_s=0.03)) as slow:
        proc = _cli(args, slow.scoring_uri)
        deadline = time.monotonic() + 60
        while _commits(journal) < 8 and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        assert proc.poll() is None, "the run finished before it could be interrupted"
        proc.kill()
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        state = read_journal(journal)
        committed = state.checkpoint.rows
        assert 0 < committed < 19_000
        first_run = Counter(slow.scored_ids())

        # The tail is edited: the bad line fixed, a later row changed, rows appended.
        _replace_line(source, 19_001, ",".join(make_row(18_999).values()))
        changed = make_row(19_500)
        changed["duration"] = "77777"
        _replace_line(source, 19_502, ",".join(changed.values()))  # row i is on line i + 2
        with source.open("a", encoding="utf-8") as handle:
            for i in range(n, n + 50):
                handle.write(",".join(make_row(i).values()) + "\n")

        # A row inside the committed prefix changed: refused, clearly, and nothing is lost.
        original = source.read_bytes()
        _replace_line(source, 2, ",".join({**make_row(0), "age": "99"}.values()))
        refused = amlc("score", *args, "--resume", env=env_for(slow))
        refused.assert_error(2, "in.csv", "cannot resume", "changed")
        source.write_bytes(original)

        before = len(slow.log)
        resumed = _cli([*args, "--resume"], slow.scoring_uri)
        stdout, stderr = resumed.communicate(timeout=120)
        assert resumed.returncode == 0, stderr
        assert f"({committed:,} from the earlier run)" in stdout
        second_run = Counter(i for e in slow.log[before:] if e["status"] == 200
                             for i in e["ids"])

    # No committed row reached the server again; every other row did, once.
    expected_ids = [i for i in range(n + 50) if i != 19_500] + [77777]
    assert set(second_run) == {i for i in expected_ids if i >= committed}
    assert max(second_run.values()) == 1
    assert all(first_run[i] == 1 for i in range(committed))
    # The output is what a clean run on the edited file gives.
    reference = tmp_path / "reference.csv"
    with ScoringServer(Behaviour()) as fresh:
        score_file(target_for(fresh.scoring_uri), str(source), str(reference), batch_size=100)
    assert out.read_bytes() == reference.read_bytes()
    assert not journal.exists() and not partial_path(out).exists()
    assert not (tmp_path / "out.errors.jsonl").exists()


def test_503_retry_after_pauses_every_sender(tmp_path: Path) -> None:
    burst = (6, 5, "1")  # requests 6..10 get 503 with Retry-After: 1
    concurrency = 8
    with ScoringServer(Behaviour(delay_s=0.005, unavailable_bursts=[burst])) as running:
        source = write_csv(tmp_path / "in.csv", 6000)
        summary = score_file(target_for(running.scoring_uri), str(source),
                             str(tmp_path / "out.csv"), batch_size=100,
                             concurrency=concurrency)
        log = list(running.log)
    assert summary.rows_out == 6000 and summary.retries == 5
    first_503 = min(e["t"] for e in log if e["status"] == 503)
    # Only requests already on the wire may land during the pause; without it, the other
    # senders would go on (hundreds of 5 ms requests in half a second).
    during = [e for e in log if e["status"] == 200 and first_503 < e["t"] < first_503 + 0.5]
    assert len(during) <= 2 * concurrency, len(during)
    assert summary.elapsed_s >= 1.0


# -- extra columns ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def training_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 32,950-row training file, label column ``y`` included."""
    path = tmp_path_factory.mktemp("training") / "bankmarketing_train.csv"
    with gzip.open(TRAINING, "rb") as packed, path.open("wb") as plain:
        shutil.copyfileobj(packed, plain)
    return path


def test_the_training_file_is_refused_once_then_scored_with_drop_columns(
    amlc: Any, tmp_path: Path, server: ScoringServer, training_csv: Path
) -> None:
    out = tmp_path / "out.csv"
    for extra in ([], ["-o", str(out)]):
        result = amlc("score", str(training_csv), *extra, env=env_for(server))
        result.assert_error(2, "bankmarketing_train.csv", "'y'", "--drop-columns y")
    assert server.requests == 0  # detected from the header: nothing scored
    no_files_but(tmp_path, "amlc-home")  # no errors file, no journal

    result = amlc("score", str(training_csv), "--drop-columns", "y", "-o", str(out),
                      "--batch-size", "500", env=env_for(server))
    assert result.returncode == 0, result.stderr
    rows = read_output(out)
    assert len(rows) == 32_950
    assert list(rows[0]) == [*COLUMNS, "y", "prediction"]  # the label stays beside it
    assert all(r["prediction"] == f"id{r['duration']}" for r in rows)
    assert len(server.scored_ids()) == 32_950

    ignored = tmp_path / "ignored.jsonl"
    result = amlc("score", str(training_csv), "--ignore-extra-columns", "-o",
                      str(ignored), "--batch-size", "1000", env=env_for(server))
    assert result.returncode == 0, result.stderr
    assert sum(1 for _ in ignored.open()) == 32_950


# -- what is sent -------------------------------------------------------------------------------


def _payload(tmp_path: Path, n: int) -> Path:
    path = tmp_path / "payload.json"
    rows = [typed_row(i) for i in range(n)]
    path.write_text(json.dumps({"Inputs": {"data": rows},
                                "GlobalParameters": {"method": "predict_proba"}}))
    return path


def test_without_a_swagger_the_files_own_envelope_is_sent(
    amlc: Any, tmp_path: Path
) -> None:
    with ScoringServer(Behaviour(swagger=False)) as bare:
        payload = _payload(tmp_path, 3)
        result = amlc("score", str(payload), "--json", env=env_for(bare))
        assert result.returncode == 0, result.stderr  # the server accepts only {"Inputs": ...}
        assert result.json()["predictions"] == ["id0", "id1", "id2"]
        lines = result.stderr_lines()
        assert len(lines) == 1 and lines[0].startswith("warning: the endpoint publishes no")
        assert "WARNING" not in result.stderr
        out = tmp_path / "out.csv"
        big = _payload(tmp_path, 450)
        result = amlc("score", str(big), "-o", str(out), "--batch-size", "100",
                          env=env_for(bare))
        assert result.returncode == 0, result.stderr
        assert "warning: the endpoint publishes no swagger" in result.stderr
        assert len(read_output(out)) == 450
        assert {json.dumps(e["params"]) for e in bare.log} == {'{"method": "predict_proba"}'}


@pytest.mark.parametrize("validate", ["--validate", "--no-validate"])
def test_global_parameters_are_honoured_on_every_path(
    amlc: Any, tmp_path: Path, server: ScoringServer, validate: str
) -> None:
    payload = _payload(tmp_path, 450)  # GlobalParameters after the rows, as AutoML writes them
    small = tmp_path / "small.json"
    small.write_text(json.dumps({"Inputs": {"data": [typed_row(0)]},
                                 "GlobalParameters": {"method": "predict_proba"}}))
    runs = [
        ["score", str(small), validate],
        ["score", str(payload), validate, "--batch-size", "100"],  # more than a batch
        ["score", str(payload), validate, "-o", str(tmp_path / "out.csv")],
    ]
    for args in runs:
        result = amlc(*args, env=env_for(server))
        assert result.returncode == 0, result.stderr
    piped = amlc("score", "-", validate, "--batch-size", "100", "--json",
                 input=payload.read_text(), env=env_for(server))  # stdin, more than a batch
    assert piped.returncode == 0, piped.stderr
    assert piped.json()["predictions"] == [f"id{i}" for i in range(450)]
    assert len(server.log) >= 1 + 5 + 3 + 5
    assert {json.dumps(e["params"]) for e in server.log} == {'{"method": "predict_proba"}'}


def test_all_problems_lists_every_validation_problem(
    amlc: Any, tmp_path: Path, server: ScoringServer
) -> None:
    source = write_csv(tmp_path / "in.csv", 5,
                       {1: {"age": "abc"}, 3: {"age": "x"}, 4: {"campaign": "many"}})
    one = amlc("score", str(source), env=env_for(server))
    one.assert_error(2, "in.csv", "row 2", "age", "--all-problems")
    every = amlc("score", str(source), "--all-problems", env=env_for(server))
    assert every.returncode == 2 and "Traceback" not in every.stderr
    lines = every.stderr_lines()
    assert len(lines) == 4, every.stderr
    assert [line.strip().split(",")[0] for line in lines[:3]] == ["row 2", "row 4", "row 5"]
    assert lines[3].startswith("error: ") and "3 problems" in lines[3]
    assert server.requests == 0


def _peak_rss_of_amlc_score(source: Path, out: Path, uri: str) -> int:
    """VmHWM (KiB) of a real ``amlc score`` process scoring ``source``."""
    # Small batches: what is in flight (the same for any file size) stays small beside a copy
    # of the file, so the comparison is not lost in allocator noise.
    proc = _cli([str(source), "-o", str(out), "--batch-size", "100"], uri)
    peak = 0
    while proc.poll() is None:
        try:
            status = Path(f"/proc/{proc.pid}/status").read_text()
        except OSError:
            break
        for line in status.splitlines():
            if line.startswith("VmHWM:"):
                peak = max(peak, int(line.split()[1]))
        time.sleep(0.01)
    _, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 0, stderr
    return peak


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs /proc")
def test_a_json_document_is_streamed_with_flat_memory(tmp_path: Path) -> None:
    """GlobalParameters after the rows, as AutoML writes them: found without keeping rows."""
    def payload(path: Path, n: int) -> Path:
        with path.open("w", encoding="utf-8") as handle:
            handle.write('{"Inputs": {"data": [\n')
            handle.write(",\n".join(json.dumps(typed_row(i)) for i in range(n)))
            handle.write('\n]}, "GlobalParameters": {"method": "predict_proba"}}\n')
        return path

    small = payload(tmp_path / "small.json", 5_000)
    large = payload(tmp_path / "large.json", 75_000)  # 30 MB: json.load alone needs ~125 MiB
    with ScoringServer(Behaviour()) as running:
        small_kib = _peak_rss_of_amlc_score(small, tmp_path / "small.jsonl", running.scoring_uri)
        large_kib = _peak_rss_of_amlc_score(large, tmp_path / "large.jsonl", running.scoring_uri)
        params = {json.dumps(e["params"]) for e in running.log}
    assert sum(1 for _ in (tmp_path / "large.jsonl").open()) == 75_000
    assert params == {'{"method": "predict_proba"}'}
    # 15 times the rows (28 MB more input, ~110 MiB more for json.load): allocator noise at
    # most (the rows in flight are the same; tracemalloc shows no growth), not a copy of it
    assert large_kib - small_kib < 16 * 1024, (small_kib, large_kib)


KILLED_AT_FIRST_COMMIT = """
import os, signal, sys
from aml_client import journal
from aml_client import KeyCredential
from aml_client.batch import score_file
from aml_client.config import Target

def die(self, checkpoint):
    os.kill(os.getpid(), signal.SIGKILL)  # kill -9 just before the first commit lands

journal.Journal.commit = die
uri, key, source, out = sys.argv[1:]
score_file(Target("t", uri, None, KeyCredential(key), source="t"), source, out, batch_size=100)
"""


def test_a_run_killed_before_its_first_commit_resumes_from_the_start(
    tmp_path: Path, server: ScoringServer
) -> None:
    source = write_csv(tmp_path / "in.csv", 500)
    out = tmp_path / "out.csv"
    env = dict(os.environ, PYTHONPATH=str(REPO))
    killed = subprocess.run(
        [sys.executable, "-c", KILLED_AT_FIRST_COMMIT, server.scoring_uri, TEST_KEY,
         str(source), str(out)],
        env=env, capture_output=True, text=True, timeout=60,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert read_journal(journal_path(out)).commits == []
    summary = score_file(target_for(server.scoring_uri), str(source), str(out), batch_size=100,
                         resume=True)
    assert summary.rows_out == 500 and summary.resumed_rows == 0
    assert [int(r["duration"]) for r in read_output(out)] == list(range(500))


ODD_FILES: dict[str, bytes] = {
    "bom-only.csv": b"\xef\xbb\xbf",
    "bom16-only.json": b"\xff\xfe",
    "truncated-utf8.csv": "age,job\n1,é".encode()[:-1],
    "odd-utf16.csv": b"\xff\xfe" + "age,job\n1,2\n".encode("utf-16-le") + b"\x00",
    "carriage-returns.csv": b"age,job\r1,x\r2,y\r",
    "blank.json": b"   \n\t ",
    "null.json": b"null",
    "inputs-null.json": b'{"Inputs": null}',
    "duplicate-data.json": b'{"data": [], "data": []}',
    "nan.json": b'[{"age": NaN}]',
    "random.csv": bytes((i * 7919 + 13) % 256 for i in range(5000)),
    "random.json": b"[" + bytes((i * 104729 + 7) % 256 for i in range(5000)),
    "open-quote-header.csv": b'"age,job\n1,2\n',
    "mlflow.json": b'{"input_data": {"columns": [], "data": []}}',
}


@pytest.mark.parametrize("name", sorted(ODD_FILES))
def test_odd_files_never_show_a_traceback(
    amlc: Any, tmp_path: Path, server: ScoringServer, name: str
) -> None:
    path = tmp_path / name
    path.write_bytes(ODD_FILES[name])
    for extra in ([], ["-o", str(tmp_path / "out.csv")], ["--no-validate"]):
        result = amlc("score", str(path), *extra, env=env_for(server))
        assert "Traceback" not in result.stderr, (extra, result.stderr)
        assert result.returncode in (0, 2), (extra, result.returncode, result.stderr)
        if result.returncode:
            lines = result.stderr_lines()
            assert lines[-1].startswith("error: ") and name in lines[-1], (extra, lines)
            assert len(lines) == 1, (extra, lines)
