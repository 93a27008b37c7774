"""Reading rows from JSON, JSON Lines, CSV and stdin, and the errors for broken files."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

import pytest

from aml_client import rows as rows_module
from aml_client.envelope import Convention
from aml_client.errors import InputError, ValidationError
from aml_client.rows import iter_batches, read_rows
from aml_client.schema import load_schema

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
BANK = load_schema(CORPUS / "swagger" / "052-aimazin.json")
GOOD = BANK.example_rows(1)[0]


def test_public_api_is_pinned() -> None:
    assert sorted(rows_module.__all__) == [
        "BadRow",
        "MAX_DEPTH",
        "Position",
        "RowReader",
        "RowSource",
        "check_columns",
        "iter_batches",
        "read_rows",
        "without_columns",
    ]


def _matches() -> list[dict[str, str]]:
    with open(CORPUS / "payload_matches.tsv", encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


GOOD_PAYLOADS = [r for r in _matches() if "malformed" not in r["filename"]]
MALFORMED = [r for r in _matches() if "malformed" in r["filename"]]


@pytest.mark.parametrize("record", GOOD_PAYLOADS, ids=lambda r: Path(r["filename"]).name)
def test_every_corpus_payload_reads(record: dict[str, str]) -> None:
    klass = record["class"]
    if klass.startswith('{"Inputs":[...]}'):
        with pytest.raises(InputError, match="'Inputs' must be an object holding 'data'"):
            read_rows(CORPUS / record["filename"])
        return
    source = read_rows(CORPUS / record["filename"])
    expected_rows = int(re.search(r"(\d+) row\(s\)", record["notes"]).group(1))
    assert source.format == "json"
    assert len(list(source)) == expected_rows
    assert len(list(source)) == expected_rows, "a RowSource can be iterated again"
    expected = Convention.INPUTS if klass.startswith('{"Inputs"') else Convention.DATA
    assert source.convention is expected
    if '"method"' in klass:
        assert source.global_parameters == {"method": "predict"}


def test_inputs_as_a_list_is_an_input_error() -> None:
    with pytest.raises(InputError, match="'Inputs' must be an object holding 'data'") as err:
        read_rows(CORPUS / "payloads" / "001-fische57.json")
    assert err.value.path.endswith("001-fische57.json")


@pytest.mark.parametrize("record", MALFORMED, ids=lambda r: Path(r["filename"]).name)
def test_malformed_corpus_payloads_name_file_and_line(record: dict[str, str]) -> None:
    path = CORPUS / record["filename"]
    with pytest.raises(InputError) as err:
        list(read_rows(path))  # the error is after the rows: found while streaming them
    assert err.value.path == str(path)
    assert err.value.line is not None
    message = str(err.value)
    assert message.startswith(f"{path}:{err.value.line}: not valid JSON")
    assert "second JSON document" in message


def test_malformed_json_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "data.json"
    path.write_text('{"data": [\n  {"age": 17},\n  {"age": 87,}\n]}\n')
    with pytest.raises(InputError) as err:
        list(read_rows(path))
    assert err.value.line == 3
    assert str(err.value).endswith("Expecting property name enclosed in double quotes at column 14")


def test_empty_and_missing_files(tmp_path: Path) -> None:
    empty = tmp_path / "empty.json"
    empty.write_text("  \n")
    with pytest.raises(InputError, match="empty file"):
        read_rows(empty)
    with pytest.raises(InputError, match="no such file"):
        read_rows(tmp_path / "nope.json")
    with pytest.raises(InputError, match="no such file"):
        read_rows(tmp_path / "nope")


def test_json_bare_list_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "rows.json"
    text = json.dumps([GOOD, GOOD], indent=2).replace("\n", "\r\n")
    path.write_bytes(b"\xef\xbb\xbf" + text.encode())
    source = read_rows(path)
    assert list(source) == [GOOD, GOOD]
    assert source.convention is None


def test_jsonl_streams_and_reports_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text(json.dumps(GOOD) + "\n\n" + json.dumps(GOOD) + "\n{oops\n" + json.dumps(GOOD))
    source = read_rows(path)
    assert source.format == "jsonl"
    iterator = iter(source)
    assert next(iterator) == GOOD
    assert next(iterator) == GOOD  # rows before the bad line arrive first: streaming
    with pytest.raises(InputError) as err:
        next(iterator)
    assert err.value.line == 4
    assert str(err.value).startswith(f"{path}:4: not valid JSON")


def _write_csv(path: Path, rows: list[dict], *, bom: bool = False, crlf: bool = True) -> None:
    buffer = io.StringIO()
    ending = "\r\n" if crlf else "\n"
    writer = csv.DictWriter(buffer, fieldnames=list(rows[0]), lineterminator=ending)
    writer.writeheader()
    writer.writerows(rows)
    path.write_bytes((b"\xef\xbb\xbf" if bom else b"") + buffer.getvalue().encode())


def test_csv_coerced_with_a_schema(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    _write_csv(path, [GOOD, {**GOOD, "age": 87}], bom=True)
    source = read_rows(path, schema=BANK)
    assert source.format == "csv"
    rows = list(source)
    assert rows == [GOOD, {**GOOD, "age": 87}]
    BANK.validate_rows(rows)
    raw = list(read_rows(path))
    assert raw[0]["age"] == str(GOOD["age"]), "without a schema values stay strings"
    assert "age" in raw[0], "the BOM is not part of the first column name"


def test_csv_coercion_error_names_row_column_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    _write_csv(path, [GOOD, GOOD, {**GOOD, "age": "abc"}])
    iterator = iter(read_rows(path, schema=BANK))
    assert next(iterator) == GOOD
    assert next(iterator) == GOOD
    with pytest.raises(ValidationError) as err:
        next(iterator)
    assert str(err.value) == f"{path}:4: row 3, column 'age': expected integer, got 'abc'"


def test_csv_with_a_wrong_number_of_fields(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,b\n1,2\n3\n")
    with pytest.raises(InputError) as err:
        list(read_rows(path))
    assert err.value.line == 3
    assert "1 value but the header has 2 columns" in str(err.value)


def test_csv_with_a_broken_quote(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text('a,b\n1,"2"x\n3,4\n')
    with pytest.raises(InputError) as err:
        list(read_rows(path))
    assert err.value.line == 2


def test_csv_duplicate_header(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text("a,a\n1,2\n")
    with pytest.raises(InputError, match="duplicate column"):
        list(read_rows(path))


@pytest.mark.parametrize(
    ("text", "fmt", "expected"),
    [
        ('{"data": [{"a": 1}]}', "json", [{"a": 1}]),
        (
            '{"Inputs": {"data": [{"a": 1}]}, "GlobalParameters": {"method": "predict"}}',
            "json",
            [{"a": 1}],
        ),
        ('[{"a": 1}, {"a": 2}]', "json", [{"a": 1}, {"a": 2}]),
        ('{"a": 1}\n{"a": 2}\n', "jsonl", [{"a": 1}, {"a": 2}]),
        ("a,b\n1,x\n", "csv", [{"a": "1", "b": "x"}]),
    ],
)
def test_stdin(monkeypatch: pytest.MonkeyPatch, text: str, fmt: str, expected: list) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    source = read_rows("-")
    assert source.path == "<stdin>"
    assert source.format == fmt
    assert list(source) == expected


def test_stdin_with_a_broken_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    text = (CORPUS / "payloads" / "malformed" / "032-ketcx.json").read_text()
    monkeypatch.setattr("sys.stdin", io.StringIO(text))
    with pytest.raises(InputError) as err:
        list(read_rows("-"))  # its first line is valid JSON: read as JSON Lines, fails on line 2
    assert str(err.value).startswith("<stdin>:2: not valid JSON")


def test_format_override_and_unknown_suffix(tmp_path: Path) -> None:
    path = tmp_path / "rows.txt"
    path.write_text('{"a": 1}\n{"a": 2}\n')
    assert read_rows(path).format == "jsonl"
    assert list(read_rows(path, format="jsonl")) == [{"a": 1}, {"a": 2}]
    with pytest.raises(InputError, match="unknown format"):
        read_rows(path, format="parquet")


def test_iter_batches() -> None:
    assert list(iter_batches(range(7), 3)) == [[0, 1, 2], [3, 4, 5], [6]]
    assert list(iter_batches([], 3)) == []
    with pytest.raises(ValueError):
        list(iter_batches([1], 0))
