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
from aml_client.rows import BadRow, check_columns, iter_batches, read_rows, without_columns
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


@pytest.mark.parametrize(
    ("name", "text", "converts"),
    [
        ("rows.csv", "a\n1\n", True),
        ("rows.json", '[{"a": 1}]', False),
        ("rows.jsonl", '{"a": 1}\n', False),
    ],
)
def test_only_text_values_are_converted(
    tmp_path: Path, name: str, text: str, converts: bool
) -> None:
    path = tmp_path / name
    path.write_text(text)
    source = read_rows(path)
    assert source.converts_values() is converts
    assert source.converts_values(True) is True and source.converts_values(False) is False


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


# -- any input file: encodings, limits, bad lines -------------------------------------------------


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b"\xef\xbb\xbf"),
        ("utf-16-le", b"\xff\xfe"),
        ("utf-16-be", b"\xfe\xff"),
        ("utf-32-le", b"\xff\xfe\x00\x00"),
        ("utf-32-be", b"\x00\x00\xfe\xff"),
    ],
)
def test_byte_order_marks_are_honoured_in_every_format(
    tmp_path: Path, encoding: str, bom: bytes
) -> None:
    rows = [{"name": "Zoë", "city": "Zürich €"}, {"name": "Åsa", "city": "Malmö"}]
    texts = {
        "csv": "name,city\r\nZoë,Zürich €\r\nÅsa,Malmö\r\n",
        "jsonl": "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
        "json": json.dumps({"data": rows}, ensure_ascii=False, indent=1),
    }
    for suffix, text in texts.items():
        path = tmp_path / f"rows.{suffix}"
        path.write_bytes(bom + text.encode(encoding))
        assert list(read_rows(path)) == rows, (encoding, suffix)
        assert read_rows(path).columns() == ["name", "city"], (encoding, suffix)
    only_bom = tmp_path / "only-bom.csv"
    only_bom.write_bytes(bom)
    assert read_rows(only_bom).columns() == [] and list(read_rows(only_bom)) == []


def test_cp1252_needs_encoding_and_the_error_says_where(tmp_path: Path) -> None:
    path = tmp_path / "excel.csv"
    path.write_bytes("name,city\r\nZoe,Paris\r\nRené,Nîmes\r\n".encode("cp1252"))
    with pytest.raises(InputError) as err:
        list(read_rows(path))
    message = str(err.value)
    assert err.value.line == 3
    assert "byte offset 25" in message  # "name,city\r\n" (11) + "Zoe,Paris\r\n" (11) + "Ren"
    assert "--encoding" in message and "cp1252" in message
    assert list(read_rows(path, encoding="cp1252")) == [
        {"name": "Zoe", "city": "Paris"}, {"name": "René", "city": "Nîmes"}
    ]
    with pytest.raises(InputError, match="unknown encoding 'klingon'"):
        read_rows(path, encoding="klingon")


def test_an_undecodable_byte_in_a_json_document_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "latin1.json"
    path.write_bytes('{"data": [\n {"a": "x"},\n {"a": "é"}\n]}'.encode("latin-1"))
    with pytest.raises(InputError) as err:
        list(read_rows(path))
    assert err.value.line == 3 and "byte offset 32" in str(err.value)


def test_deep_nesting_is_refused_without_recursion_error(tmp_path: Path) -> None:
    deep = "[" * 100_000 + "]" * 100_000
    cases = {
        "doc.json": '{"data": [' + deep + "]}",
        "rows.json": '[{"a": ' + "[" * 100 + "]" * 100 + "}]",
        "params.json": '{"Inputs": {"data": []}, "GlobalParameters": {"a": ' + deep + "}}",
        "rows.jsonl": '{"a": 1}\n{"a": ' + deep + "}\n",
    }
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(InputError, match="nested more than 64 levels deep") as err:
            source = read_rows(path)
            list(source)
            source.global_parameters  # noqa: B018 - reading it is the test
        assert err.value.line is not None, name
    stdin_text = '{"data": [' + deep + "]}"
    assert rows_module._sniff(stdin_text) in ("json", "jsonl")  # no RecursionError either


def test_huge_integers_and_lone_surrogates_are_refused_with_their_line(tmp_path: Path) -> None:
    huge = "9" * 5000
    path = tmp_path / "huge.json"
    path.write_text('{"data": [\n {"a": 1},\n {"a": ' + huge + "}\n]}")
    with pytest.raises(InputError, match="more than 4300 digits") as err:
        list(read_rows(path))
    assert err.value.line == 3
    path = tmp_path / "surrogate.json"
    path.write_text('[{"a": "ok \\ud83d\\ude00"},\n {"a": "\\ud800"}]')
    with pytest.raises(InputError, match="lone surrogate") as err:
        list(read_rows(path))
    assert err.value.line == 2
    path = tmp_path / "mixed.jsonl"
    path.write_text('{"a": ' + huge + '}\n{"a": "\\udfff"}\n{"a": "\\ud83d\\ude00"}\n')
    entries = list(read_rows(path).reader())
    assert [(e.line, "digits" in e.reason) for e in entries[:2]] == [(1, True), (2, False)]
    assert "lone surrogate" in entries[1].reason
    assert entries[2] == {"a": "\U0001f600"}  # a proper pair is fine


def test_reader_turns_malformed_lines_into_bad_rows_and_reads_on(tmp_path: Path) -> None:
    path = tmp_path / "rows.csv"
    path.write_text('a,b\n1,2\n3\n4,"5"x\n6,7\n8,"9\n10,11\n"12\n13,14\n')
    entries = list(read_rows(path).reader())
    bad = [(e.line, e.reason.split(":")[0], e.text) for e in entries if isinstance(e, BadRow)]
    assert bad == [
        (3, "1 value but the header has 2 columns", "3"),
        (4, "bad CSV", '4,"5"x'),
        (6, "bad CSV", '8,"9'),  # the stray quote took the next lines: only its line is blamed
        (8, "bad CSV", '"12'),
    ]
    good = [e for e in entries if not isinstance(e, BadRow)]
    assert good == [{"a": "1", "b": "2"}, {"a": "6", "b": "7"}, {"a": "10", "b": "11"},
                    {"a": "13", "b": "14"}]
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"a": 1}\n{oops\n\n{"a": 2}\n')
    entries = list(read_rows(jsonl).reader())
    assert entries[0] == {"a": 1} and entries[2] == {"a": 2}
    assert entries[1].line == 2 and entries[1].text == "{oops"
    assert entries[1].reason.startswith("not valid JSON")


def test_a_line_longer_than_the_limit_is_one_bad_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rows_module, "MAX_LINE_CHARS", 100)
    monkeypatch.setattr(rows_module, "_PIECE_BYTES", 16)
    path = tmp_path / "rows.jsonl"
    path.write_text('{"a": 1}\n{"a": "' + "x" * 500 + '"}\n{"a": 2}\n')
    entries = list(read_rows(path).reader())
    assert entries[0] == {"a": 1} and entries[2] == {"a": 2}
    assert entries[1].line == 2 and "longer than" in entries[1].reason


@pytest.mark.parametrize("piece", [3, 7, 64, 1 << 20])
@pytest.mark.parametrize("suffix", ["csv", "jsonl", "json"])
def test_positions_resume_exactly_after_any_row(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece: int, suffix: str
) -> None:
    """Byte offsets stay exact across piece boundaries, multi-byte characters included."""
    monkeypatch.setattr(rows_module, "_PIECE_BYTES", piece)
    rows = [{"id": str(i), "name": ["Zoë", "plain", "€uro", "日本"][i % 4]} for i in range(12)]
    path = tmp_path / f"rows.{suffix}"
    if suffix == "csv":
        text = "id,name\n" + "".join(f"{r['id']},{r['name']}\n" for r in rows)
    elif suffix == "jsonl":
        text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    else:
        text = json.dumps({"Inputs": {"data": rows}, "GlobalParameters": {"method": "predict"}},
                          ensure_ascii=False, indent=2)
    path.write_bytes(text.encode("utf-8"))
    source = read_rows(path)
    reader = source.reader()
    positions = []
    for entry in reader:
        assert entry == rows[len(positions)]
        positions.append(reader.position)
    assert len(positions) == len(rows)
    data = path.read_bytes()
    for index, position in enumerate(positions):
        assert data[: position.offset].count(b"\n") == position.line
        rest = list(source.reader(position))
        assert rest == rows[index + 1 :], (index, position)
    assert source.global_parameters == ({"method": "predict"} if suffix == "json" else None)


def test_global_parameters_after_the_rows_are_found_without_keeping_rows(tmp_path: Path) -> None:
    path = tmp_path / "payload.json"
    rows = [{"a": i} for i in range(1000)]
    path.write_text(json.dumps({"Inputs": {"data": rows},
                                "GlobalParameters": {"method": "predict_proba"}}))
    source = read_rows(path)
    assert source.convention is Convention.INPUTS
    assert source.global_parameters == {"method": "predict_proba"}
    before = tmp_path / "before.json"
    before.write_text(json.dumps({"method": "predict_proba", "data": rows}))
    assert read_rows(before).global_parameters == {"method": "predict_proba"}
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps(rows))
    assert read_rows(bare).global_parameters is None
    stray = tmp_path / "stray.json"
    stray.write_text(json.dumps({"data": rows, "extra": 1}))
    with pytest.raises(InputError, match="unexpected top-level key 'extra'"):
        list(read_rows(stray))


def test_check_columns() -> None:
    declared = ["age", "job"]
    assert check_columns(["age", "job"], declared) == frozenset()
    with pytest.raises(InputError) as err:
        check_columns(["age", "job", "y"], declared, path="train.csv")
    assert str(err.value) == (
        "train.csv: header: column 'y' not in the endpoint's swagger (a label or an id?): "
        "score without it with --drop-columns y, or --ignore-extra-columns"
    )
    assert check_columns(["age", "job", "y"], declared, drop=["y"]) == {"y"}
    assert check_columns(["age", "y", "job", "id"], declared, ignore_extra=True) == {"y", "id"}
    with pytest.raises(InputError, match="--drop-columns: no column 'z'"):
        check_columns(["age", "job"], declared, drop=["z"])
    with pytest.raises(InputError, match="missing column 'job'"):
        check_columns(["age"], declared)
    with pytest.raises(InputError, match="row 1: column 'agee' for 'age'"):
        check_columns(["agee", "job"], declared, from_header=False)
    assert check_columns(["x"], [], drop=["x"]) == {"x"}  # no swagger: nothing else to check
    assert without_columns({"a": 1, "y": 2}, frozenset({"y"})) == {"a": 1}


@pytest.mark.parametrize(
    ("encoding", "bom"), [("shift_jis", b""), ("cp1252", b""), ("utf-16-le", b"\xff\xfe")]
)
def test_positions_are_exact_in_other_encodings(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, encoding: str, bom: bytes
) -> None:
    monkeypatch.setattr(rows_module, "_PIECE_BYTES", 5)
    names = ["日本", "plain", "カナ"] if encoding == "shift_jis" else ["Zoë", "plain", "€"]
    rows = [{"id": str(i), "name": names[i % 3]} for i in range(9)]
    path = tmp_path / "rows.csv"
    text = "id,name\r\n" + "".join(f"{r['id']},{r['name']}\r\n" for r in rows)
    path.write_bytes(bom + text.encode(encoding))
    source = read_rows(path, encoding=None if bom else encoding)
    reader = source.reader()
    positions = []
    for entry in reader:
        assert entry == rows[len(positions)]
        positions.append(reader.position)
    for index, position in enumerate(positions):
        assert list(source.reader(position)) == rows[index + 1 :], (index, position)
    assert positions[-1].offset == path.stat().st_size
