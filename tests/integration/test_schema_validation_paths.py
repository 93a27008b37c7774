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
