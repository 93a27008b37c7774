"""Bad input files, bad swaggers and bad arguments through every command, as a careless or
hostile user would give them.

Every run is a real ``amlc`` process against a real HTTP server on 127.0.0.1 (the scoring
test server of tests/support/batch_servers.py, which logs the rows it scores). What is checked,
for each:

- no traceback, ever, and no log line of another library (Locust, gevent, httpx …);
- the exit code the README documents (2 for bad input, swagger, arguments or configuration,
  3 for a refused credential, 4 for an unreachable endpoint or no local endpoint);
- a failure is one ``error:`` line naming what is wrong (file, line, option), and with
  ``--json`` also the ``{"error": …}`` object on stdout;
- a bad argument is refused before any work: the server never sees a scoring request;
- on the batch path (``-o``), nothing is lost and nothing is scored twice: every input row ends
  in the output or the errors file, and each good row was scored exactly once.

The runs are independent processes, so they go through a small thread pool.
"""

from __future__ import annotations

import codecs
import csv
import gzip
import json
import os
import re
import socket
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.batch_servers import (
    COLUMNS,
    SWAGGER_PATH,
    TEST_KEY,
    ScoringServer,
    ServerProcess,
    make_row,
)

Run = Any  # the root conftest's ``amlc`` fixture: (*args, env=, cwd=, timeout=) -> CliResult

REPO = Path(__file__).resolve().parents[2]
DATA = REPO / "examples" / "data.json"
#: Log lines of other libraries: ``INFO locust.runners: …``, ``[time] host/INFO/locust…``.
FOREIGN_LOG = re.compile(r"^(DEBUG|INFO|WARNING|ERROR|CRITICAL)[ :]|/(INFO|WARNING|ERROR)/")
POOL = 4


@dataclass(frozen=True)
class Case:
    """One command line and what the README says it must do."""

    args: tuple[str, ...]
    code: int
    needles: tuple[str, ...] = ()
    #: the environment: "server" (a working endpoint), "refusing" (wrong key), "dead"
    endpoint: str = "server"
    #: a failure that is the command's result (a report on stdout), not an ``error:`` line
    reported: bool = False

    def __str__(self) -> str:
        return " ".join(self.args)


def check(case: Case, result: Any, *, with_result: bool = False) -> None:
    """The rules of the module docstring, for one run (``with_result``: a batch run that
    failed some rows still prints its counts on stdout)."""
    shown = result.stdout + result.stderr
    assert "Traceback" not in shown, (case, shown)
    foreign = [line for line in result.stderr.splitlines() if FOREIGN_LOG.search(line)]
    assert not foreign, (case, foreign)
    assert result.returncode == case.code, (str(case), result.returncode, shown[-2000:])
    if case.code == 0:
        assert "error:" not in result.stderr, (case, result.stderr)
    elif case.reported:
        assert result.stdout and "error:" not in result.stderr, (case, result.stderr)
    elif with_result:
        errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
        assert len(errors) == 1 and all(n in errors[0] for n in case.needles), (case, errors)
    elif case.code in (2, 3) or case.needles:
        result.assert_error(case.code, *case.needles)


def run_cases(amlc: Run, cases: list[Case], envs: dict[str, dict[str, str]], cwd: Path) -> None:
    def run(case: Case) -> tuple[Case, Any]:
        return case, amlc(*case.args, env=envs[case.endpoint], cwd=cwd, timeout=120)

    failures = []
    with ThreadPoolExecutor(POOL) as pool:
        for case, result in pool.map(run, cases):
            try:
                check(case, result)
            except AssertionError as exc:
                failures.append(f"{case}\n    {str(exc)[:600]}")
    assert not failures, f"{len(failures)} of {len(cases)} runs:\n" + "\n".join(failures)


# -- endpoints ----------------------------------------------------------------------------------


def _endpoint_env(
    server: ScoringServer | ServerProcess | None, key: str = TEST_KEY
) -> dict[str, str]:
    uri = server.scoring_uri if server is not None else f"http://127.0.0.1:{_closed_port()}/score"
    return {"AMLC_SCORING_URI": uri, "AMLC_KEY": key}


def _closed_port() -> int:
    with socket.socket() as probe:  # bound, never listening: connections are refused
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server() -> Iterator[ScoringServer]:
    with ScoringServer() as running:
        yield running


# -- bad input files ----------------------------------------------------------------------------


def _typed(i: int) -> dict[str, Any]:
    ints = {"age", "duration", "campaign", "pdays", "previous"}
    floats = {"emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"}
    return {k: int(v) if k in ints else float(v) if k in floats else v
            for k, v in make_row(i).items()}  # fmt: skip


def _csv_text(n: int, overrides: dict[int, dict[str, str]] | None = None) -> str:
    lines = [",".join(COLUMNS)]
    for i in range(n):
        row = {**make_row(i), **(overrides or {}).get(i, {})}
        lines.append(",".join(row[c] for c in COLUMNS))
    return "\n".join(lines) + "\n"


def bad_inputs(folder: Path) -> dict[str, tuple[Path, tuple[str, ...]]]:
    """name -> (file, what its one error line says). Every one is refused whole (exit 2,
    nothing sent) on every path: small, ``-o`` and ``bench --payload``."""
    folder.mkdir(exist_ok=True)
    deep = "[" * 5000 + "]" * 5000
    rows = [_typed(i) for i in range(3)]
    files: dict[str, bytes] = {
        "cp1252.csv": _csv_text(4, {2: {"job": "técnico"}}).encode("cp1252"),
        "cp1252.jsonl": "\n".join(json.dumps({**r, "job": "técnico"}, ensure_ascii=False)
                                  for r in rows).encode("cp1252"),
        "utf16-without-bom.csv": _csv_text(3).encode("utf-16-le"),
        "nested.json": ('{"data": [' + deep + "]}").encode(),
        "nested-rows.jsonl": (json.dumps(rows[0]) + '\n{"age": ' + deep + "}\n").encode(),
        "5000-digits.json": json.dumps({"data": rows}).replace(
            '"age": 18', '"age": ' + "9" * 5000).encode(),
        "surrogate.json": json.dumps({"data": [{**rows[0], "job": "X"}]}).replace(
            '"X"', '"\\ud800"').encode(),
        "binary.csv": bytes(range(256)) * 4,
        "gzipped.csv": gzip.compress(_csv_text(3).encode()),
        "empty.json": b"",
        "not-json.json": b'{"data": [{"age": 17,',
        "nan.json": json.dumps({"data": rows}).replace('"age": 18', '"age": NaN').encode(),
        "label-column.csv": _csv_text(3).replace("nr.employed\n", "nr.employed,y\n", 1)
        .replace("5099.1\n", "5099.1,no\n").encode(),
    }
    needles = {
        "cp1252.csv": ("cp1252.csv:4", "--encoding"),
        "cp1252.jsonl": ("cp1252.jsonl:1", "--encoding"),
        "utf16-without-bom.csv": ("utf16-without-bom.csv",),
        "nested.json": ("nested.json:1", "nested more than 64"),
        "nested-rows.jsonl": ("nested-rows.jsonl:2", "nested more than 64"),
        "5000-digits.json": ("5000-digits.json:1", "4300 digits"),
        "surrogate.json": ("surrogate.json:1", "surrogate"),
        "binary.csv": ("binary.csv",),
        "gzipped.csv": ("gzipped.csv",),
        "empty.json": ("empty.json",),
        "not-json.json": ("not-json.json:1",),
        "nan.json": ("nan.json",),
        "label-column.csv": ("label-column.csv", "'y'"),
    }
    for name, data in files.items():
        (folder / name).write_bytes(data)
    cases = {name: (folder / name, needles[name]) for name in files}
    cases["a directory"] = (folder, (str(folder), "directory"))
    cases["no such file"] = (folder / "nope.csv", ("nope.csv", "no such file"))
    return cases


#: Files that ``-o`` reads around: the bad row goes to the errors file, the others are scored
#: (test_the_batch_path_loses_nothing_and_scores_nothing_twice).
ROW_FAILURES = {"nested-rows.jsonl", "surrogate.json", "nan.json"}


def test_bad_input_files_through_score_score_o_and_bench(
    amlc: Run, tmp_path: Path, server: ScoringServer
) -> None:
    inputs = bad_inputs(tmp_path / "in")
    cases = []
    for name, (path, needles) in inputs.items():
        cases.append(Case(("score", str(path)), 2, needles))
        if name in ("cp1252.csv", "nested.json", "a directory"):
            cases.append(Case(("score", str(path), "--json"), 2, needles))
        cases.append(Case(("bench", "--payload", str(path), "-n", "2", "--workers", "1",
                           "--report-dir", str(tmp_path / "reports")), 2, needles))  # fmt: skip
        if name not in ROW_FAILURES:
            out = tmp_path / "out" / f"{path.name}.csv"
            cases.append(Case(("score", str(path), "-o", str(out)), 2, needles))
    run_cases(amlc, cases, {"server": _endpoint_env(server)}, tmp_path)
    assert server.requests == 0  # every file was refused before a row was sent
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())
    assert not (tmp_path / "reports").exists() or not any((tmp_path / "reports").iterdir())


def _ids_in(path: Path) -> list[int]:
    if path.suffix == ".csv":
        with path.open(newline="", encoding="utf-8") as handle:
            return [int(row["duration"]) for row in csv.DictReader(handle)]
    return [int(json.loads(line)["duration"]) for line in path.read_text().splitlines()]


def _mixed_files(folder: Path, n: int) -> dict[str, tuple[Path, set[int]]]:
    """Files of ``n`` rows where some rows are bad: name -> (file, ids of the bad rows)."""
    folder.mkdir(exist_ok=True)
    lines = _csv_text(n).splitlines()
    lines[1 + 7] = "61,blue-collar,married"  # row 7: three fields
    lines[1 + 20] = lines[1 + 20].replace("university.degree", '"university."degree')
    malformed = folder / "malformed.csv"
    malformed.write_text("\n".join(lines) + "\n")
    rows = [json.dumps(_typed(i)) for i in range(n)]
    rows[5] = '{"age": ' + "[" * 5000 + "]" * 5000 + "}"
    rows[12] = json.dumps({**_typed(12), "job": "X"}).replace('"X"', '"\\ud800"')
    rows[30] = rows[30][:-1]  # cut short: not JSON
    jsonl = folder / "bad-lines.jsonl"
    jsonl.write_text("\n".join(rows) + "\n")
    typed = {"data": [_typed(i) for i in range(n)]}
    typed["data"][3]["age"] = "abc"
    typed["data"][40]["job"] = "BAD400"  # the test server answers 400 for this row
    invalid = folder / "invalid-rows.json"
    invalid.write_text(json.dumps(typed))
    utf16 = folder / "utf16-with-bom.csv"
    utf16.write_bytes(codecs.BOM_UTF16_LE + _csv_text(n).encode("utf-16-le"))
    return {
        "malformed.csv": (malformed, {7, 20}),
        "bad-lines.jsonl": (jsonl, {5, 12, 30}),
        "invalid-rows.json": (invalid, {3, 40}),
        "utf16-with-bom.csv": (utf16, set()),
    }


@pytest.mark.parametrize("name", ["malformed.csv", "bad-lines.jsonl", "invalid-rows.json",
                                  "utf16-with-bom.csv"])  # fmt: skip
def test_the_batch_path_loses_nothing_and_scores_nothing_twice(
    amlc: Run, tmp_path: Path, name: str
) -> None:
    n = 50
    path, bad = _mixed_files(tmp_path / "in", n)[name]
    out = tmp_path / "predictions.jsonl"
    with ScoringServer() as server:
        result = amlc(
            "score", str(path), "-o", str(out), "--batch-size", "8", "--concurrency", "3",
            env=_endpoint_env(server), cwd=tmp_path,
        )  # fmt: skip
        scored = Counter(server.scored_ids())
    expected_code = 2 if bad else 0
    check(Case(("score", name, "-o", str(out)), expected_code,
               (f"{len(bad)} of {n} rows could not be scored",) if bad else ()), result,
          with_result=True)
    good = [i for i in range(n) if i not in bad]
    assert _ids_in(out) == good  # in input order
    assert set(scored) == set(good) and set(scored.values()) == {1}  # each exactly once
    errors_file = tmp_path / "predictions.errors.jsonl"
    failed = [json.loads(line) for line in errors_file.read_text().splitlines()] if bad else []
    assert sorted(f["row"] for f in failed) == sorted(i + 1 for i in bad)  # rows count from 1
    assert len(good) + len(failed) == n  # nothing lost


# -- bad swaggers -------------------------------------------------------------------------------


def bad_swaggers(folder: Path) -> dict[str, bytes]:
    """name -> document. Each is refused with one line, or read with what can be read."""
    base = json.loads(SWAGGER_PATH.read_text(encoding="utf-8-sig"))
    text = json.dumps(base)

    def changed(**parts: Any) -> bytes:
        document = json.loads(text)
        for dotted, value in parts.items():
            node = document
            *path, last = dotted.split("__")
            for key in path:
                node = node[key]
            node[last] = value
        return json.dumps(document).encode()

    return {
        "not-json.json": b'{"swagger": "2.0", "info": ',
        "array.json": b"[1, 2, 3]",
        "empty.json": b"",
        "no-version.json": b"{}",
        "binary.json": bytes(range(256)),
        "latin1.json": text.replace('"title": "', '"title": "\xe9', 1).encode("latin-1"),
        "nested.json": ('{"swagger": "2.0", "x": ' + "[" * 500 + "]" * 500 + "}").encode(),
        "5000-digits.json": text.replace('"2.0"', '"2.0", "n": ' + "9" * 5000, 1).encode(),
        "surrogate.json": text.replace('"title":', '"zz": "\\ud800", "title":', 1).encode(),
        "ref-to-nothing.json": changed(
            definitions__ServiceInput__properties__Inputs={"$ref": "#/definitions/Nope"}),
        "remote-ref.json": changed(
            definitions__ServiceInput__properties__Inputs={"$ref": "http://example.com/x"}),
        # Fields of the wrong type: read as far as they can be, then refused by `validate`.
        "paths-a-list.json": changed(paths=["/score"]),
        "info-a-string.json": changed(info="nope"),
        "properties-a-string.json": changed(definitions__ServiceInput__properties="x"),
    }


#: Documents that can still be read (show/example/codegen work); `validate` reports them.
READABLE = {"paths-a-list.json", "info-a-string.json", "properties-a-string.json"}
#: Documents that are JSON objects: `validate` reports what is wrong with them (exit 2, the
#: report on stdout); the others cannot be read at all (one `error:` line).
OBJECTS = READABLE | {"no-version.json", "ref-to-nothing.json", "remote-ref.json"}


def test_bad_swagger_files_through_every_swagger_command(amlc: Run, tmp_path: Path) -> None:
    folder = tmp_path / "swaggers"
    folder.mkdir()
    cases = []
    for name, document in bad_swaggers(folder).items():
        path = str(folder / name)
        (folder / name).write_bytes(document)
        readable = name in READABLE
        code, needles = (0, ()) if readable else (2, (name,))
        cases += [
            Case(("swagger", "show", path), code, needles),
            Case(("swagger", "example", path), code, needles),
            Case(("swagger", "codegen", path, "-o", str(tmp_path / "gen" / f"{name}.py")),
                 code, needles),
            Case(("swagger", "validate", path), 2, () if name in OBJECTS else (name,),
                 reported=name in OBJECTS),
        ]  # fmt: skip
        if not readable:  # (a readable one would be served until Ctrl-C)
            cases.append(Case(("swagger", "serve", path, "--port", "0"), 2, (name,)))
        if name in ("not-json.json", "no-version.json", "info-a-string.json"):
            cases.append(Case(("swagger", "show", path, "--json"), code, needles))
    run_cases(amlc, cases, {"server": {}}, tmp_path)


@pytest.mark.parametrize("name", ["not-json.json", "binary.json", "surrogate.json",
                                  "ref-to-nothing.json"])  # fmt: skip
def test_an_endpoint_serving_a_bad_swagger(amlc: Run, tmp_path: Path, name: str) -> None:
    """What the endpoint publishes is untrusted: every command that reads it says so in one
    line, and nothing is scored on a swagger that cannot be read. ``swagger fetch`` saves any
    JSON object as it came (it is for looking at) and refuses the rest."""
    document = bad_swaggers(tmp_path)[name]
    fetched = tmp_path / "fetched.json"
    with ScoringServer() as server:
        server.swagger = document
        env = {"server": _endpoint_env(server)}
        cases = [
            Case(("swagger", "show"), 2),
            Case(("swagger", "example", "--rows", "2"), 2),
            Case(("swagger", "codegen", "-o", str(tmp_path / "client.py")), 2),
            Case(("swagger", "serve", "--port", "0"), 2),
            Case(("score", str(DATA)), 2),
            Case(("score", str(DATA), "--json"), 2),
            Case(("score", str(DATA), "-o", str(tmp_path / "out.csv")), 2),
            Case(("bench", "-n", "2", "--workers", "1", "--report-dir", str(tmp_path / "r")), 2),
            Case(("swagger", "fetch", "-o", str(fetched)), 0 if name in OBJECTS else 2),
        ]
        run_cases(amlc, cases, env, tmp_path)
        assert server.requests == 0
    assert fetched.read_bytes() == document if name in OBJECTS else not fetched.exists()


# -- bad arguments ------------------------------------------------------------------------------


def bad_arguments(tmp: Path, busy_port: int) -> list[Case]:
    """Every command with each kind of bad argument: ranges, unwritable outputs, busy ports,
    conflicting options, unknown names. All refused before any work, with exit 2."""
    data, folder, a_file = str(DATA), str(tmp / "folder"), str(tmp / "a-file")
    proc = "/proc/amlc-robustness/x"
    busy = str(busy_port)
    c = Case
    return [
        # score
        c(("score", data, "--timeout", "-5"), 2, ("--timeout",)),
        c(("score", data, "--timeout", "0"), 2, ("--timeout",)),
        c(("score", data, "--timeout", "nan"), 2, ("--timeout",)),
        c(("score", data, "--timeout", "abc", "--json"), 2, ("--timeout",)),
        c(("score", data, "--retries", "-1"), 2, ("--retries",)),
        c(("score", data, "--batch-size", "0"), 2, ("--batch-size",)),
        c(("score", data, "--concurrency", "0"), 2, ("--concurrency",)),
        c(("score", data, "--concurrency", "many"), 2, ("--concurrency",)),
        c(("score", data, "-o", folder), 2, ("directory",)),
        c(("score", data, "-o", folder, "--resume"), 2, ("directory",)),
        c(("score", data, "-o", f"{proc}.csv"), 2, ("cannot write", "/proc/amlc-robustness")),
        c(("score", data, "-o", "/proc/x.csv", "--json"), 2, ("cannot write", "/proc/x.csv")),
        c(("score", data, "-o", str(tmp / "ok.csv"), "--errors", f"{proc}.jsonl"), 2,
          ("cannot write",)),
        c(("score", data, "--resume"), 2, ("-o",)),
        c(("score", "-", "-o", str(tmp / "x.csv"), "--resume"), 2, ("stdin",)),
        c(("score", data, "--encoding", "no-such-codec"), 2, ("no-such-codec",)),
        c(("score", data, "--method", "explain"), 2, ("--method",)),
        c(("score", data, "-e", "no-such-profile"), 2, ("no-such-profile",)),
        c(("score", data, "--columns", "nope"), 2, ("--columns", "nope")),
        c(("score", data, "--no-such-option"), 2, ("--no-such-option",)),
        c(("score",), 2, ("INPUT",)),
        # health
        c(("health", "--timeout", "0"), 2, ("--timeout",)),
        c(("health", "--timeout", "-1", "--json"), 2, ("--timeout",)),
        c(("health", "-e", "no-such-profile"), 2, ("no-such-profile",)),
        # bench
        c(("bench", "-n", "5", "--timeout", "-5"), 2, ("--timeout",)),
        c(("bench", "-n", "5", "--timeout", "0"), 2, ("--timeout",)),
        c(("bench", "-t", "5x"), 2, ("--duration", "5x")),
        c(("bench", "--users", "0"), 2, ("--users",)),
        c(("bench", "--rate", "-1"), 2, ("--rate",)),
        c(("bench", "--rate", "0", "--json"), 2, ("--rate",)),
        c(("bench", "--spawn-rate", "0"), 2, ("--spawn-rate",)),
        c(("bench", "-n", "0"), 2, ("--requests",)),
        c(("bench", "--rows-per-request", "0"), 2, ("--rows-per-request",)),
        c(("bench", "--max-senders", "0"), 2, ("--max-senders",)),
        c(("bench", "--workers", "-1"), 2, ("--workers",)),
        c(("bench", "-n", "5", "--report-dir", a_file), 2, ("--report-dir", "not a directory")),
        c(("bench", "-n", "5", "--report-dir", proc), 2, ("--report-dir", "cannot write")),
        c(("bench", "-n", "5", "--junit", f"{proc}.xml"), 2, ("--junit", "cannot write")),
        c(("bench", "-n", "5", "--junit", folder), 2, ("--junit", "directory")),
        c(("bench", "--web", "--web-port", busy), 2, (busy,)),
        c(("bench", "--web", "--web-port", "70000"), 2, ("--web-port",)),
        c(("bench", "--master-port", "70000"), 2, ("--master-port",)),
        c(("bench", "--master", "--worker"), 2, ("--master", "--worker")),
        c(("bench", "--arrival", "bursty"), 2, ("--arrival",)),
        c(("bench", "--slo", "p99 under 200"), 2, ("--slo",)),
        c(("bench", "--find-capacity"), 2, ("--slo",)),
        c(("bench", "--find-capacity", "--slo", "p99<=1s", "--precision", "2"), 2,
          ("--precision",)),
        c(("bench", "-n", "5", "--payload", str(tmp / "nope.json")), 2, ("no such file",)),
        c(("bench", "-n", "5", "--swagger", str(tmp / "nope.json")), 2, ("no such file",)),
        # swagger
        c(("swagger", "fetch", "-o", proc), 2, ("-o", "cannot write")),
        c(("swagger", "fetch", "-o", folder), 2, ("-o", "directory")),
        c(("swagger", "fetch", "-o", str(tmp / "not-yet") + "/"), 2, ("-o", "directory")),
        c(("swagger", "fetch", "-e", "no-such-profile"), 2, ("no-such-profile",)),
        c(("swagger", "show", str(tmp / "nope.json")), 2, ("no such file",)),
        c(("swagger", "show", folder, "--json"), 2, ("directory",)),
        c(("swagger", "validate", str(tmp / "nope.json")), 2, ("no such file",)),
        c(("swagger", "example", "--rows", "0"), 2, ("--rows",)),
        c(("swagger", "example", "--rows", "100000000"), 2, ("--rows",)),
        c(("swagger", "codegen", "-o", folder + "/"), 2, ("-o", "directory")),
        c(("swagger", "codegen", "-o", f"{proc}.py"), 2, ("-o", "cannot write")),
        c(("swagger", "serve", "--port", "70000"), 2, ("--port",)),
        c(("swagger", "serve", "--port", "-1"), 2, ("--port",)),
        c(("swagger", "serve", "--port", busy), 2, ("--port", busy)),
        # local
        c(("local", "up", "--port", "70000"), 2, ("--port",)),
        c(("local", "up", "--port", "0"), 2, ("--port",)),
        c(("local", "up", "--port", busy), 2, (busy, "in use")),
        c(("local", "up", "--port", busy, "--json"), 2, (busy, "in use")),
        c(("local", "up", "--timeout", "0"), 2, ("--timeout",)),
        c(("local", "up", "--workers", "-1"), 2, ("--workers",)),
        c(("local", "up", "--style", "v3"), 2, ("--style",)),
        c(("local", "up", "--metric", "speed"), 2, ("--metric",)),
        c(("local", "up", "--deployment", "no spaces allowed"), 2, ("deployment",)),
        c(("local", "up", "--deployment", "blue,workers=0"), 2, ("workers",)),
        c(("local", "up", "--traffic", "blue=50"), 2, ("--traffic",)),
        c(("local", "status"), 4, ()),
        c(("local", "keys", "--which", "primary"), 2, ("--regenerate",)),
        c(("local", "keys", "--show", "--json"), 2, ("--show",)),
        c(("local", "logs", "--lines", "-3"), 2, ("--lines",)),
        # endpoint profiles
        c(("endpoint", "add", "bad name", "--scoring-uri", "https://x/score", "--key-env", "K"),
          2, ("bad name",)),
        c(("endpoint", "add", "p", "--scoring-uri", "not-a-uri", "--key-env", "K"), 2,
          ("not-a-uri",)),
        c(("endpoint", "add", "p", "--scoring-uri", "https://x/score", "--key-env", "K",
           "--key-stdin"), 2, ("--key-env", "--key-stdin")),
        c(("endpoint", "add", "p", "--scoring-uri", "https://x/score", "--auth", "magic"), 2,
          ("--auth",)),
        c(("endpoint", "show", "no-such-profile"), 2, ("no-such-profile",)),
        c(("endpoint", "show", "no-such-profile", "--json"), 2, ("no-such-profile",)),
        # reports
        c(("report", "show", str(tmp / "nope")), 2, ("nope",)),
        c(("report", "show", a_file, "--json"), 2, ("a-file",)),
        c(("report", "show", str(tmp / "corrupt")), 2, ("corrupt",)),
        c(("report", "compare", str(tmp / "nope"), str(tmp / "nope")), 2, ("nope",)),
        c(("report", "compare", str(tmp / "corrupt"), str(tmp / "corrupt"), "--fail-on",
           "p99 worse"), 2, ("--fail-on",)),
        c(("report", "compare", folder, folder, "--junit", f"{proc}.xml"), 2, ("--junit",)),
        c(("report", "list", a_file), 2, ("a-file",)),
        c(("report", "merge", str(tmp / "nope")), 2, ("nope", "no such file")),
        c(("report", "merge", a_file), 2, ("a-file", "no AMLC-RESULTS lines")),
        c(("report", "merge", folder), 2, ("folder", "no results directory")),
        c(("report", "merge", str(tmp / "corrupt")), 2, ("corrupt", "no results directory")),
        # export bundles: refused before the endpoint is asked for its swagger
        c(("export", "azure-load-testing", f"{folder}/alt", "--test-id", "Not Valid"), 2,
          ("--test-id",)),
        c(("export", "azure-load-testing", f"{folder}/alt", "--key-secret", "the-key-itself"),
          2, ("--key-secret", "Key Vault")),
        c(("export", "azure-load-testing", f"{folder}/alt", "--slo", "p99.9<=1s"), 2,
          ("p99.9", "p50, p90, p95, p99")),
        c(("export", "azure-load-testing", f"{folder}/alt", "--engines", "401"), 2,
          ("--engines",)),
        c(("export", "azure-load-testing", a_file), 2, ("a-file", "not a directory")),
        c(("export", "kubernetes", f"{folder}/k8s", "--name", "Upper_Case"), 2, ("--name",)),
        c(("export", "kubernetes", f"{folder}/k8s", "--workers", "0"), 2, ("--workers",)),
        c(("export", "kubernetes", f"{folder}/k8s", "--secret", "bad name"), 2, ("--secret",)),
        c(("export", "kubernetes", f"{folder}/k8s", "-t", "0s"), 2, ("--duration",)),
        c(("export", "kubernetes", f"{folder}/k8s", "--payload", str(tmp / "nope.json")), 2,
          ("nope.json",)),
        # Azure commands: refused before Azure is asked anything
        c(("logs", "-d", "blue"), 2, ("--endpoint",)),
        c(("logs", "-d", "blue", "--lines", "-1"), 2, ("--lines",)),
        c(("pipeline", "run", "not-a-url", "--experiment", "e"), 2, ("not-a-url",)),
        c(("pipeline", "run", "https://x/p", "--experiment", "e", "--timeout", "0"), 2,
          ("--timeout",)),
        c(("pipeline", "run", "https://x/p", "--experiment", "e", "--param", "n"), 2,
          ("--param",)),
        c(("no-such-command",), 2, ("no-such-command",)),
    ]


def test_bad_arguments_are_refused_before_any_work(
    amlc: Run, tmp_path: Path, server: ScoringServer
) -> None:
    (tmp_path / "folder").mkdir()
    (tmp_path / "a-file").write_text("not a directory")
    (tmp_path / "corrupt").mkdir()
    (tmp_path / "corrupt" / "summary.json").write_text('{"schema_version": [')
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen(1)
        cases = bad_arguments(tmp_path, holder.getsockname()[1])
        run_cases(amlc, cases, {"server": _endpoint_env(server)}, tmp_path)
    assert server.requests == 0  # nothing was sent for a bad argument
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "a-file", "amlc-home", "corrupt", "folder"
    ]  # no output, report or module was written
    assert not any((tmp_path / "folder").iterdir())


def test_endpoint_failures_have_their_own_exit_codes(
    amlc: Run, tmp_path: Path, server: ScoringServer
) -> None:
    envs = {
        "refusing": _endpoint_env(server, key="wrong-key"),
        "dead": _endpoint_env(None),
    }
    cases = [
        Case(("score", str(DATA)), 3, ("401",), endpoint="refusing"),
        Case(("score", str(DATA), "--json"), 3, ("401",), endpoint="refusing"),
        Case(("score", str(DATA), "--no-validate"), 3, ("401",), endpoint="refusing"),
        Case(("score", str(DATA)), 4, ("127.0.0.1",), endpoint="dead"),
        Case(("score", str(DATA), "-o", str(tmp_path / "o.csv")), 4, (), endpoint="dead"),
        Case(("health",), 4, ("127.0.0.1",), endpoint="dead"),
        Case(("health", "--json"), 4, ("127.0.0.1",), endpoint="dead"),
        Case(("swagger", "fetch"), 4, ("127.0.0.1",), endpoint="dead"),
        Case(("bench", "-n", "2", "--workers", "1"), 4, ("swagger",), endpoint="dead"),
    ]
    run_cases(amlc, cases, envs, tmp_path)
    assert server.scored_ids() == []


def test_a_run_cut_by_a_dead_endpoint_says_resume_and_resumes_without_rescoring(
    amlc: Run, tmp_path: Path
) -> None:
    from aml_client.journal import journal_path, read_journal

    n = 6000
    source = tmp_path / "in.csv"
    source.write_text(_csv_text(n))
    out = tmp_path / "out.csv"
    args = ("score", str(source), "-o", str(out), "--batch-size", "50", "--concurrency", "4")
    first = ServerProcess({"delay_s": 0.005}, log_path=tmp_path / "first.jsonl")
    try:
        proc = subprocess.Popen(
            [sys.executable, "-m", "aml_client", *args],
            env={**os.environ, **_endpoint_env(first), "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(first.log()) < 10 and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.02)
    finally:
        first.proc.kill()  # the endpoint dies mid-run
        first.stop()
    stdout, stderr = proc.communicate(timeout=120)
    check(Case(args, 4, ("--resume",)), _Done(proc.returncode, stdout, stderr, list(args)))
    committed = read_journal(journal_path(out)).checkpoint.rows
    assert 0 < committed < n
    with ServerProcess({}, log_path=tmp_path / "second.jsonl") as second:
        resumed = amlc(*args, "--resume", env=_endpoint_env(second), cwd=tmp_path)
        check(Case((*args, "--resume"), 0), resumed)
        again = Counter(second.scored_ids())
    assert f"({committed:,} from the earlier run)" in resumed.stdout
    assert set(again) == set(range(committed, n)) and set(again.values()) == {1}
    assert _ids_in(out) == list(range(n))  # every row once, in order


@dataclass
class _Done:
    """A finished process, shaped like the ``amlc`` fixture's result."""

    returncode: int
    stdout: str
    stderr: str
    args: list[str]

    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def assert_error(self, code: int, *needles: str) -> str:
        lines = self.stderr_lines()
        assert self.returncode == code and len(lines) == 1, (self.returncode, self.stderr)
        assert lines[0].startswith("error: ") and all(n in lines[0] for n in needles), lines
        return lines[0]
