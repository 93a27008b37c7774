"""The pieces of ``amlc score`` that decide what a person sees, tested in-process."""

from __future__ import annotations

import pytest
import typer

from aml_client.cli import score
from aml_client.errors import InputError

ROWS = [
    {"age": 17, "job": "blue-collar", "marital": "married", "education": "x", "duration": 971},
    {"age": 87, "job": "blue-collar", "marital": "married", "education": "x", "duration": 471},
]


def test_identifying_columns_default_to_the_first_four() -> None:
    assert score.identifying_columns(ROWS, None) == ["age", "job", "marital", "education"]


def test_identifying_columns_prefer_an_id() -> None:
    rows = [{"age": 1, "customer_id": "c-1"}, {"age": 2, "customer_id": "c-2"}]
    assert score.identifying_columns(rows, None) == ["customer_id"]


def test_identifying_columns_chosen() -> None:
    assert score.identifying_columns(ROWS, ["duration", "age"]) == ["duration", "age"]
    with pytest.raises(InputError, match="no column 'nope'"):
        score.identifying_columns(ROWS, ["nope"])


def test_identifying_columns_of_scalar_rows() -> None:
    assert score.identifying_columns([[1, 2], [3, 4]], None) == []


def test_table_shows_rows_and_predictions(capsys: pytest.CaptureFixture[str]) -> None:
    score.render_table(ROWS, ["yes", "no"], ["age", "job"])
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if "blue-collar" in line]
    assert len(lines) == 2
    assert "17" in lines[0] and "yes" in lines[0]
    assert "87" in lines[1] and "no" in lines[1]
    assert "marital" not in out


def test_table_of_array_rows_and_probabilities(capsys: pytest.CaptureFixture[str]) -> None:
    score.render_table([[1.5, 2.0]], [[0.25, 0.75]], [])
    out = capsys.readouterr().out
    assert "[1.5, 2.0]" in out and "[0.25, 0.75]" in out


def test_long_cells_are_cut() -> None:
    assert score._cell("x" * 100).endswith("…")
    assert len(score._cell("x" * 100)) == score.MAX_CELL


@pytest.mark.parametrize(
    ("value", "expected"), [("auto", "auto"), ("1", 1), ("16", 16)]
)
def test_concurrency_values(value: str, expected: int | str) -> None:
    assert score._parse_concurrency(value) == expected


@pytest.mark.parametrize("value", ["0", "-1", "two", "1.5", ""])
def test_bad_concurrency_values(value: str) -> None:
    with pytest.raises(typer.BadParameter):
        score._parse_concurrency(value)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [(None, "-"), (float("nan"), "-"), (-1, "-"), (0, "0:00"), (61.4, "1:01"), (3725, "1:02:05")],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert score._duration(seconds) == text
