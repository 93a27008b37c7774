"""The small path (``Endpoint.score``, ``amlc score``) and the batch path (``score_file``,
``amlc score -o``) check rows the same way: JSON strictly, text (CSV cells) converted.

Against the real test server on 127.0.0.1 (tests/support/batch_servers.py), which serves the
bank-marketing swagger; ``amlc`` runs in real processes.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.batch_servers import TEST_KEY, Behaviour, ScoringServer, make_row, write_csv

from aml_client import KeyCredential
from aml_client.batch import score_file
from aml_client.client import Endpoint
from aml_client.config import Target
from aml_client.errors import ValidationError

TYPED = {
    "age": int,
    "duration": int,
    "campaign": int,
    "pdays": int,
    "previous": int,
    "emp.var.rate": float,
    "cons.price.idx": float,
    "cons.conf.idx": float,
    "euribor3m": float,
    "nr.employed": float,
}


def typed_row(i: int, **changes: Any) -> dict[str, Any]:
    """Row ``i`` with JSON types, as a careful caller would write it."""
    row: dict[str, Any] = {k: TYPED.get(k, str)(v) for k, v in make_row(i).items()}
    row.update(changes)
    return row


@pytest.fixture
def server() -> Iterator[ScoringServer]:
    with ScoringServer(Behaviour()) as running:
        yield running


def _env(server: ScoringServer) -> dict[str, str]:
    return {"AMLC_SCORING_URI": server.scoring_uri, "AMLC_KEY": TEST_KEY}


def _errors(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"job": 5}, "column 'job': expected string, got 5"),
        ({"age": "24"}, "column 'age': expected integer, got '24'"),
        ({"housing": "yes", "loan": True}, "column 'loan': expected string, got true"),
    ],
)
def test_json_rows_are_strict_on_both_library_paths(
    server: ScoringServer, tmp_path: Path, change: dict[str, Any], message: str
) -> None:
    rows = [typed_row(0), typed_row(1, **change), typed_row(2)]
    with (
        Endpoint(server.scoring_uri, KeyCredential(TEST_KEY)) as endpoint,
        pytest.raises(ValidationError) as small,
    ):
        endpoint.score(rows)
    assert [str(p) for p in small.value.problems] == [f"row 2, {message}"]

    source = tmp_path / "rows.json"
    source.write_text(json.dumps({"Inputs": {"data": rows}}), encoding="utf-8")
    target = Target("test", server.scoring_uri, None, KeyCredential(TEST_KEY), source="test")
    summary = score_file(target, str(source), str(tmp_path / "out.jsonl"))
    assert (summary.rows_out, summary.rows_failed) == (2, 1)
    (failed,) = _errors(Path(summary.errors_path))
    assert (failed["row"], failed["kind"]) == (2, "validation")
    assert failed["reason"] == message
    assert sorted(server.scored_ids()) == [0, 2], "the bad row never reached the endpoint"


def test_text_cells_are_converted_on_both_library_paths(
    server: ScoringServer, tmp_path: Path
) -> None:
    csv_path = write_csv(tmp_path / "rows.csv", 3, {1: {"age": " 24 ", "housing": "yes"}})
    from aml_client.rows import read_rows

    with Endpoint(server.scoring_uri, KeyCredential(TEST_KEY)) as endpoint:
        rows = read_rows(csv_path, schema=endpoint.schema()).to_list()
        assert rows[1]["age"] == 24 and rows[1]["cons.price.idx"] == 92.893
        assert len(endpoint.score(rows).predictions) == 3
    target = Target("test", server.scoring_uri, None, KeyCredential(TEST_KEY), source="test")
    summary = score_file(target, str(csv_path), str(tmp_path / "out.csv"))
    assert (summary.rows_out, summary.rows_failed) == (3, 0)


def test_amlc_score_with_and_without_output_agree(
    server: ScoringServer, tmp_path: Path, amlc: Callable[..., Any]
) -> None:
    """The report that started this: ``{"job": 5}`` was refused without ``-o`` and sent as
    ``"5"`` with it."""
    source = tmp_path / "rows.json"
    source.write_text(json.dumps({"data": [typed_row(0), typed_row(1, job=5)]}), encoding="utf-8")
    small = amlc("score", str(source), env=_env(server))
    assert small.returncode == 2, small.stderr
    assert "row 2, column 'job': expected string, got 5" in small.stderr
    assert "Traceback" not in small.stderr

    out = tmp_path / "out.csv"
    batch = amlc("score", str(source), "-o", str(out), env=_env(server))
    assert batch.returncode == 2, batch.stderr
    (failed,) = _errors(tmp_path / "out.errors.jsonl")
    assert (failed["row"], failed["reason"]) == (2, "column 'job': expected string, got 5")
    assert server.scored_ids() == [0]


# -- the swagger's ranges, GlobalParameters and empty input, on every path -------------------
# A server that counts requests (support.faults.FaultServer) and serves a real corpus swagger:
# int64 columns and ``GlobalParameters`` declared as an object with a required ``method``.

CORPUS_SWAGGER = json.loads(
    (Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "swagger"
     / "004-abhijit-kalita.json").read_text(encoding="utf-8")
)  # fmt: skip


def _bounded_swagger() -> dict[str, Any]:
    """The corpus swagger with ``duration`` an int32 and ``euribor3m`` bounded (0, 10]."""
    swagger = json.loads(json.dumps(CORPUS_SWAGGER))
    props = swagger["definitions"]["ServiceInput"]["properties"]["Inputs"]["properties"]
    columns = props["data"]["items"]["properties"]
    columns["duration"]["format"] = "int32"
    columns["euribor3m"].update(minimum=0, exclusiveMinimum=True, maximum=10)
    return swagger


@pytest.fixture
def counting() -> Iterator[Any]:
    from support.faults import FaultServer, Reply

    with FaultServer(swagger=_bounded_swagger()) as srv:
        srv.default = Reply(200, {"Results": ["no"]})
        yield srv


def _counting_env(srv: Any) -> dict[str, str]:
    return {"AMLC_SCORING_URI": srv.scoring_uri, "AMLC_KEY": TEST_KEY}


def _write(tmp_path: Path, name: str, rows: list[dict[str, Any]], extra: str = "") -> Path:
    path = tmp_path / name
    if name.endswith(".csv"):
        header = list(rows[0]) if rows else list(typed_row(0))
        lines = [",".join(header)] + [",".join(str(r[k]) for k in header) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif name.endswith(".jsonl"):
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    else:
        path.write_text(extra or json.dumps({"data": rows}), encoding="utf-8")
    return path


#: Every way ``amlc score`` reads rows: (input file name, read from stdin, with ``-o``).
PATHS = [
    ("rows.json", False, False),
    ("rows.json", False, True),
    ("rows.json", True, False),
    ("rows.json", True, True),
    ("rows.csv", False, False),
    ("rows.csv", False, True),
    ("rows.jsonl", False, True),
]
PATH_IDS = ["json", "json -o", "stdin", "stdin -o", "csv", "csv -o", "jsonl -o"]


def _score_on(
    amlc: Callable[..., Any], srv: Any, tmp_path: Path, path: tuple[str, bool, bool],
    rows: list[dict[str, Any]],
) -> tuple[Any, Path]:
    name, stdin, batch = path
    source = _write(tmp_path, name, rows)
    out = tmp_path / "out.jsonl"
    args = ["score", "-" if stdin else str(source), *(["-o", str(out)] if batch else [])]
    text = source.read_text(encoding="utf-8") if stdin else None
    return amlc(*args, input=text, env=_counting_env(srv)), out


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"age": 10**39}, "column 'age': 1000000000000000000000000000000000000000 is outside "
         "the int64 range [-9223372036854775808, 9223372036854775807]"),
        ({"duration": 2**31}, "column 'duration': 2147483648 is outside the int32 range "
         "[-2147483648, 2147483647]"),
        ({"euribor3m": 0}, "column 'euribor3m': 0 is outside > 0 and <= 10"),
        ({"euribor3m": 10.5}, "column 'euribor3m': 10.5 is outside > 0 and <= 10"),
    ],
    ids=["int64", "int32", "exclusive minimum", "maximum"],
)  # fmt: skip
def test_out_of_range_numbers_are_refused_on_every_path_before_sending(
    counting: Any, tmp_path: Path, amlc: Callable[..., Any],
    path: tuple[str, bool, bool], change: dict[str, Any], message: str,
) -> None:  # fmt: skip
    rows = [typed_row(0), typed_row(1, **change)]
    done, _out = _score_on(amlc, counting, tmp_path, path, rows)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    value = str(next(iter(change.values())))
    expected = message.replace(value, repr(value), 1) if path[0].endswith(".csv") else message
    if path[2]:  # -o: the row goes to the errors file with its reason, the other is scored
        (failed,) = _errors(tmp_path / "out.errors.jsonl")
        assert (failed["row"], failed["reason"]) == (2, expected), failed
        assert len(counting.scores) == 1 and len(counting.scores[0].json()["Inputs"]["data"]) == 1
    else:
        assert f"row 2, {expected}" in done.stderr, done.stderr
        assert counting.scores == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ("1.0", "GlobalParameters: expected an object with 'method', got 1.0"),
        ("{}", "GlobalParameters: missing 'method' (the swagger requires it)"),
        ('{"method": 3}', "GlobalParameters.method: expected string, got 3"),
    ],
)
@pytest.mark.parametrize("batch", [False, True], ids=["score", "score -o"])
@pytest.mark.parametrize("stdin", [False, True], ids=["file", "stdin"])
def test_global_parameters_are_checked_against_the_swagger(
    counting: Any, tmp_path: Path, amlc: Callable[..., Any],
    params: str, message: str, batch: bool, stdin: bool,
) -> None:  # fmt: skip
    body = f'{{"Inputs": {{"data": [{json.dumps(typed_row(0))}]}}, "GlobalParameters": {params}}}'
    source = _write(tmp_path, "gp.json", [], extra=body)
    args = ["score", "-" if stdin else str(source)]
    if batch:
        args += ["-o", str(tmp_path / "out.jsonl")]
    done = amlc(*args, input=body if stdin else None, env=_counting_env(counting))
    done.assert_error(2, f"{'<stdin>' if stdin else source}: {message}")
    assert counting.scores == []
    ok = body.replace(f'"GlobalParameters": {params}', '"GlobalParameters": {"method": "predict"}')
    good = amlc("score", "-", input=ok, env=_counting_env(counting))
    assert good.returncode == 0, good.stderr
    assert counting.scores[0].json()["GlobalParameters"] == {"method": "predict"}


def test_global_parameters_are_checked_before_a_benchmark(
    counting: Any, tmp_path: Path, amlc: Callable[..., Any]
) -> None:
    body = {"Inputs": {"data": [typed_row(0)]}, "GlobalParameters": 1.0}
    source = _write(tmp_path, "gp.json", [], extra=json.dumps(body))
    done = amlc(
        "bench", "--payload", str(source), "-n", "5", "--workers", "1",
        "--report-dir", str(tmp_path / "reports"), env=_counting_env(counting),
    )  # fmt: skip
    done.assert_error(2, "GlobalParameters: expected an object with 'method', got 1.0")
    assert counting.scores == []


@pytest.mark.parametrize("path", PATHS, ids=PATH_IDS)
def test_empty_input_is_the_same_error_on_every_path(
    counting: Any, tmp_path: Path, amlc: Callable[..., Any], path: tuple[str, bool, bool]
) -> None:
    done, out = _score_on(amlc, counting, tmp_path, path, [])
    where = "<stdin>" if path[1] else str(tmp_path / path[0])
    done.assert_error(2, f"{where}: no rows to score")
    assert counting.scores == []
    assert not out.exists() and not (tmp_path / "out.errors.jsonl").exists()
