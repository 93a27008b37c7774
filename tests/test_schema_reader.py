"""Reading a swagger: JSON only for bodies from anywhere, bounded, one clean error each time."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aml_client.errors import SchemaError
from aml_client.schema import load_schema, parse_document
from aml_client.schema.reader import MAX_DEPTH, MAX_DOCUMENT_BYTES, MAX_NUMBER_DIGITS

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "swagger"
BANK = CORPUS / "052-aimazin.json"

_opened: list[str] | None = None


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _opened is not None and event == "open":
        _opened.append(str(args[0]))


sys.addaudithook(_audit)  # cannot be removed; records only while a test asks it to


@pytest.fixture
def opened() -> Iterator[list[str]]:
    """Every file path the process opens while the test runs."""
    global _opened
    _opened = []
    try:
        yield _opened
    finally:
        _opened = None


@pytest.mark.parametrize("body", ["/dev/zero", "/etc/passwd", b"/etc/passwd", str(BANK)])
def test_a_body_is_never_taken_for_a_path(body: str | bytes, opened: list[str]) -> None:
    with pytest.raises(SchemaError, match="endpoint: not valid JSON"):
        parse_document(body, source="endpoint")
    touched = [p for p in opened if p in ("/dev/zero", "/etc/passwd", str(BANK))]
    assert touched == []


def test_a_body_is_parsed_as_json_with_a_bom_and_crlf() -> None:
    raw = BANK.read_bytes()
    body = b"\xef\xbb\xbf" + raw.replace(b"\n", b"\r\n")
    assert parse_document(body) == json.loads(raw)
    assert parse_document(body.decode("utf-8")) == json.loads(raw)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"\xff\xfe{}", "endpoint: not UTF-8 text"),
        (b"[1, 2]", "endpoint: expected a JSON object, got an array"),
        (b"", "endpoint: not valid JSON: Expecting value (line 1, column 1)"),
        (b'{"a": NaN}', "endpoint: NaN is not JSON"),
        (b'{"a": -Infinity}', "endpoint: -Infinity is not JSON"),
        (b'{"a": 1e999}', "endpoint: 1e999 is too large"),
        (b'{"a": ' + b"9" * 5000 + b"}", f"longer than {MAX_NUMBER_DIGITS} digits"),
        (b'{"a": ' + b"9" * (MAX_NUMBER_DIGITS + 1) + b"}", "longer than"),
        (b'{"a": "\\ud800"}', "a lone surrogate"),
        (b'{"\\udfff": 1}', "a lone surrogate"),
    ],
)
def test_bad_bodies_are_one_clean_error(body: bytes, message: str) -> None:
    with pytest.raises(SchemaError) as err:
        parse_document(body, source="endpoint")
    assert str(err.value).startswith("endpoint: ")
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_size_limit() -> None:
    big = b'{"x": "' + b"a" * MAX_DOCUMENT_BYTES + b'"}'
    with pytest.raises(SchemaError, match="endpoint: larger than 32 MB"):
        parse_document(big, source="endpoint")
    with pytest.raises(SchemaError, match="larger than"):
        parse_document(big.decode("ascii"), source="endpoint")


@pytest.mark.parametrize("depth", [MAX_DEPTH + 1, 5000, 200_000])
def test_depth_limit(depth: int) -> None:
    body = '{"a": ' + "[" * depth + "]" * depth + "}"
    with pytest.raises(SchemaError, match=f"nested deeper than {MAX_DEPTH} levels"):
        parse_document(body, source="endpoint")
    deep: Any = {}
    node = deep
    for _ in range(min(depth, 5000)):
        node["a"] = {}
        node = node["a"]
    with pytest.raises(SchemaError, match="nested deeper"):
        load_schema({"swagger": "2.0", **deep})


def test_depth_within_the_limit_is_fine() -> None:
    nested: Any = "leaf"
    for _ in range(MAX_DEPTH - 2):
        nested = [nested]
    assert parse_document(json.dumps({"a": nested}))["a"]


def test_dicts_get_the_same_checks() -> None:
    with pytest.raises(SchemaError, match="nan is not a JSON number"):
        load_schema({"swagger": "2.0", "x": float("nan")})
    with pytest.raises(SchemaError, match="lone surrogate"):
        load_schema({"swagger": "2.0", "info": {"title": "\udc80"}})
    with pytest.raises(SchemaError, match="digits"):
        load_schema({"swagger": "2.0", "x": 10**5000})


def test_a_string_is_json_text_or_the_users_own_file(tmp_path: Path) -> None:
    text = BANK.read_text(encoding="utf-8")
    assert load_schema(text).column_names == load_schema(BANK).column_names
    assert load_schema(str(BANK)).column_names == load_schema(BANK).column_names
    with pytest.raises(SchemaError, match="no such file"):
        load_schema(str(tmp_path / "missing.json"))
    with pytest.raises(SchemaError, match="is a directory"):
        load_schema(tmp_path)


def test_a_huge_local_file_is_read_only_up_to_the_limit(opened: list[str]) -> None:
    with pytest.raises(SchemaError, match=r"^/dev/zero: larger than 32 MB"):
        load_schema("/dev/zero")  # the user's own choice of file: read, but bounded
    assert "/dev/zero" in opened
