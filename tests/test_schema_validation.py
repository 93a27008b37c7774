"""Row validation runs on pydantic; amlc's messages are a thin mapping of pydantic's errors."""

from __future__ import annotations

import math
from typing import Any

import pytest
from pydantic_core import SchemaValidator
from pydantic_core import ValidationError as PydanticValidationError

from aml_client.errors import ValidationError
from aml_client.schema import ScoringSchema, load_schema
from aml_client.schema.column_types import COLUMN_TYPES, classify, value_validator
from aml_client.schema.validation import RowValidator, problems_from


def _schema(columns: dict[str, Any]) -> ScoringSchema:
    return load_schema(
        {
            "swagger": "2.0",
            "info": {"title": "t", "version": "1"},
            "paths": {
                "/score": {
                    "post": {
                        "parameters": [
                            {
                                "name": "body",
                                "in": "body",
                                "schema": {
                                    "type": "object",
                                    "properties": {
                                        "data": {
                                            "type": "array",
                                            "items": {"type": "object", "properties": columns},
                                        }
                                    },
                                },
                            }
                        ],
                        "responses": {"200": {"description": "ok"}},
                    }
                }
            },
        }
    )


MIXED = _schema(
    {
        "n": {"type": "integer"},
        "x": {"type": "number"},
        "s": {"type": "string"},
        "b": {"type": "boolean"},
        "d": {"type": "string", "format": "date-time"},
        "a": {"type": "array"},
        "o": {"type": "object"},
        "z": {"type": "number", "x-nullable": True},
    }
)
GOOD = {"n": 1, "x": 0.5, "s": "a", "b": True, "d": "2011-01-01", "a": [], "o": {}, "z": None}


def test_the_validator_is_pydantic_and_its_errors_map_to_amlc_messages() -> None:
    validator = MIXED.row_validator()
    compiled = validator._validator(text=False)
    assert isinstance(compiled, SchemaValidator)
    rows = [GOOD, {**GOOD, "n": "abc", "extra": 1}, {k: v for k, v in GOOD.items() if k != "s"}]
    with pytest.raises(PydanticValidationError) as raw:
        compiled.validate_python(rows)
    located = {(e["loc"][0], e["loc"][1], e["type"]) for e in raw.value.errors()}
    assert (1, "extra", "extra_forbidden") in located
    assert (2, "s", "missing") in located
    assert any(loc[:2] == (1, "n") for loc in located)
    assert [str(p) for p in problems_from(raw.value, rows, validator)] == [
        "row 2, column 'n': expected integer, got 'abc'",
        "row 2, column 'extra': unknown column (not in the swagger)",
        "row 3, column 's': missing column",
    ]


@pytest.mark.parametrize(
    ("column", "value", "shown"),
    [
        ("n", 1.5, "expected integer, got 1.5"),
        ("n", 3.0000000001, "expected integer, got 3.0000000001"),
        ("n", 5e-324, "expected integer, got 5e-324"),
        ("n", True, "expected integer, got true"),
        ("n", "1", "expected integer, got '1'"),
        ("n", math.inf, "Infinity cannot be sent as JSON"),
        ("x", math.nan, "NaN cannot be sent as JSON"),
        ("x", "0.5", "expected number, got '0.5'"),
        ("x", None, "expected number, got null"),
        ("s", 5, "expected string, got 5"),
        ("b", "True", "expected boolean, got 'True'"),
        ("b", 1, "expected boolean, got 1"),
        ("d", "tomorrow", "expected a date-time string, got 'tomorrow'"),
        ("a", "[1]", "expected an array, got '[1]'"),
        ("o", [1], "expected an object, got [1]"),
        ("s", ["y" * 100], 'expected string, got ["' + "y" * 35 + "..."),
    ],
)
def test_strict_json_values(column: str, value: Any, shown: str) -> None:
    with pytest.raises(ValidationError) as err:
        MIXED.validate_rows([{**GOOD, column: value}])
    assert str(err.value) == f"row 1, column '{column}': {shown}"


def test_integral_floats_and_ints_pass_unchanged() -> None:
    (row,) = MIXED.validate_rows([{**GOOD, "n": 30.0, "x": 2}])
    assert row["n"] == 30.0 and isinstance(row["n"], float)
    assert row["x"] == 2 and isinstance(row["x"], int)


@pytest.mark.parametrize(
    ("column", "text", "value"),
    [
        ("n", "24", 24),
        ("n", " 24 ", 24),
        ("n", "24.0", 24),
        ("n", "-7", -7),
        ("x", "4.962", 4.962),
        ("x", "42", 42),
        ("x", "1e3", 1000.0),
        ("b", "yes", True),
        ("b", "True", True),
        ("b", "1", True),
        ("b", "no", False),
        ("b", " F ", False),
        ("d", "2011-01-01 00:00:00,000000", "2011-01-01 00:00:00,000000"),
        ("d", "2011-01-01T00:00:00Z", "2011-01-01T00:00:00Z"),
        ("a", "[1, 2]", [1, 2]),
        ("o", '{"k": 1}', {"k": 1}),
        ("s", "24", "24"),
    ],
)
def test_text_cells_are_converted(column: str, text: str, value: Any) -> None:
    cells = {"n": "1", "x": "0.5", "s": "a", "b": "true", "d": "2011-01-01", "a": "[]"}
    converted = MIXED.coerce_row({**cells, "o": "{}", "z": "1.5", column: text})
    assert converted[column] == value
    assert type(converted[column]) is type(value)


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("n", "24.5"),
        ("n", "abc"),
        ("x", "nan"),
        ("x", "inf"),
        ("x", "-Infinity"),
        ("b", "maybe"),
        ("d", "01/02/2011"),
        ("a", "{}"),
        ("o", "[1]"),
    ],
)
def test_text_that_does_not_convert(column: str, text: str) -> None:
    cells = {"n": "1", "x": "0.5", "s": "a", "b": "true", "d": "2011-01-01", "a": "[]"}
    row = {**cells, "o": "{}", "z": "", column: text}
    with pytest.raises(ValidationError) as err:
        MIXED.coerce_row(row)
    problems = {p.column: p.message for p in err.value.problems}
    assert problems[column].endswith(f"got {text!r}")


def test_coercion_converts_text_only() -> None:
    """JSON numbers are never turned into strings: a string column given 5 is refused with or
    without coercion, so the small and the batch path cannot disagree on it."""
    for coerce in (False, True):
        with pytest.raises(ValidationError, match="column 's': expected string, got 5"):
            MIXED.validate_rows([{**GOOD, "s": 5}], coerce=coerce)
        with pytest.raises(ValidationError, match="column 'b': expected boolean, got 1"):
            MIXED.validate_rows([{**GOOD, "b": 1}], coerce=coerce)
    original = {**GOOD, "n": "3"}
    (row,) = MIXED.validate_rows([original], coerce=True)
    assert row["n"] == 3 and original["n"] == "3"


def test_problem_order_is_row_by_row_columns_as_written_then_missing() -> None:
    bad = {"o": 1, "s": 2, "extra": 3, "n": "x"}
    with pytest.raises(ValidationError) as err:
        MIXED.validate_rows([GOOD, bad])
    assert [(p.row, p.column) for p in err.value.problems] == [
        (2, "o"),
        (2, "s"),
        (2, "extra"),
        (2, "n"),
        (2, "x"),
        (2, "b"),
        (2, "d"),
        (2, "a"),
        (2, "z"),
    ]


def test_column_names_are_used_as_they_are() -> None:
    names = ["", "emp.var.rate", "__class__", "__pydantic_config__", "a b", "über", "1", "$ref"]
    schema = _schema({name: {"type": "integer"} for name in names})
    row = {name: i for i, name in enumerate(names)}
    assert schema.validate_rows([row]) == [row]
    with pytest.raises(ValidationError) as err:
        schema.validate_rows([{**row, "__class__": "x"}])
    assert str(err.value) == "row 1, column '__class__': expected integer, got 'x'"


def test_scalar_array_and_any_rows() -> None:
    scalars = RowValidator("scalar", "number", [])
    assert scalars.validate([1, 2.5])[1] == []
    assert [str(p) for p in scalars.validate([1, "2", None])[1]] == [
        "row 2: expected number, got '2'",
        "row 3: expected number, got null",
    ]
    assert scalars.validate(["2"], text=True) == ([2], [])
    arrays = RowValidator("array", "boolean", [])
    assert [str(p) for p in arrays.validate([[True, "no"], {}], text=False)[1]] == [
        "row 1: item 1: expected boolean, got 'no'",
        "row 2: expected an array, got {}",
    ]
    anything = RowValidator("any", None, [])
    assert anything.validate([{}, 1, "x"]) == ([{}, 1, "x"], [])


def test_the_table_covers_every_type_the_reader_yields() -> None:
    assert set(COLUMN_TYPES) == {
        "integer",
        "number",
        "string",
        "boolean",
        "datetime",
        "array",
        "object",
        "any",
    }
    for prop in ({"type": "string", "format": "date"}, {"type": ["null", "integer"]}, {}, []):
        assert classify(prop) in COLUMN_TYPES
    assert value_validator("integer").isinstance_python(3)
    assert not value_validator("integer", text=True).isinstance_python("3.5")


# -- ranges: integer formats and declared bounds ------------------------------------------------

RANGED = _schema(
    {
        "i32": {"type": "integer", "format": "int32"},
        "i64": {"type": "integer", "format": "int64"},
        "f32": {"type": "number", "format": "float"},
        "pct": {"type": "number", "minimum": 0, "maximum": 100},
        "pos": {"type": "integer", "minimum": 0, "exclusiveMinimum": True, "format": "int32"},
        "lt1": {"type": "number", "exclusiveMaximum": 1},  # OpenAPI 3.1: the bound itself
        "sloppy": {"type": "integer", "minimum": "0", "maximum": True},  # not numbers: ignored
    }
)
RANGED_OK = {"i32": 1, "i64": 1, "f32": 1.5, "pct": 50, "pos": 1, "lt1": 0.5, "sloppy": -5}


@pytest.mark.parametrize(
    ("column", "value"),
    [
        ("i32", 2**31 - 1), ("i32", -(2**31)), ("i64", 2**63 - 1), ("i64", -(2**63)),
        ("i64", 10**18), ("f32", 3.4e38), ("pct", 0), ("pct", 100.0), ("pos", 1),
        ("lt1", 0.999), ("sloppy", 10**30),
    ],
)  # fmt: skip
def test_values_at_the_edges_of_their_range_pass(column: str, value: Any) -> None:
    assert RANGED.validate_rows([{**RANGED_OK, column: value}])[0][column] == value
    text = {k: str(v) for k, v in {**RANGED_OK, column: value}.items()}
    assert RANGED.coerce_row(text)[column] == value


@pytest.mark.parametrize(
    ("column", "value", "message"),
    [
        ("i32", 2**31, "2147483648 is outside the int32 range [-2147483648, 2147483647]"),
        ("i32", -(2**31) - 1, "-2147483649 is outside the int32 range"),
        ("i64", 2**63, "9223372036854775808 is outside the int64 range"),
        ("i64", 10**39, "1000000000000000000000000000000000000000 is outside the int64 range"),
        ("i64", 1e19, "1e+19 is outside the int64 range"),
        ("f32", 3.5e38, "3.5e+38 is outside the float range"),
        ("pct", -0.5, "-0.5 is outside >= 0 and <= 100"),
        ("pct", 101, "101 is outside >= 0 and <= 100"),
        ("pos", 0, "0 is outside > 0 and <= 2147483647"),
        ("lt1", 1, "1 is outside < 1"),
    ],
)
def test_values_outside_their_range_are_refused_with_row_and_column(
    column: str, value: Any, message: str
) -> None:
    with pytest.raises(ValidationError) as refused:
        RANGED.validate_rows([RANGED_OK, {**RANGED_OK, column: value}])
    assert str(refused.value.problems[0]).startswith(f"row 2, column '{column}': {message}")
    text = {k: str(v) for k, v in {**RANGED_OK, column: value}.items()}
    with pytest.raises(ValidationError) as cell:
        RANGED.coerce_row(text)
    assert f"'{value}' is outside" in str(cell.value.problems[0])


def test_a_range_does_not_hide_a_wrong_type() -> None:
    for value, shown in [(30.5, "30.5"), (True, "true"), ("5", "'5'"), (float("inf"), "Infinity")]:
        with pytest.raises(ValidationError) as refused:
            RANGED.validate_rows([{**RANGED_OK, "i32": value}])
        message = refused.value.problems[0].message
        assert "outside" not in message and shown in message, message


def test_wide_rows_keep_each_columns_own_range() -> None:
    """Over 200 columns, column schemas are shared by reference: bounded ones by their range."""
    columns = {f"c{i}": {"type": "integer", "maximum": i} for i in range(250)}
    wide = _schema(columns)
    row = {f"c{i}": i for i in range(250)}
    assert wide.validate_rows([row]) == [row]
    with pytest.raises(ValidationError) as refused:
        wide.validate_rows([{**row, "c7": 8}])
    assert str(refused.value.problems[0]) == "row 1, column 'c7': 8 is outside <= 7"


# -- GlobalParameters ---------------------------------------------------------------------------


def _inputs_schema(global_parameters: dict[str, Any]) -> ScoringSchema:
    body = {
        "type": "object",
        "properties": {
            "Inputs": {
                "type": "object",
                "properties": {
                    "data": {"type": "array", "items": {"type": "object",
                                                        "properties": {"x": {"type": "number"}}}}
                },
            },
            "GlobalParameters": global_parameters,
        },
    }  # fmt: skip
    return load_schema(
        {
            "swagger": "2.0",
            "info": {"title": "t", "version": "1"},
            "paths": {"/score": {"post": {"parameters": [
                {"name": "body", "in": "body", "schema": {"$ref": "#/definitions/In"}}],
                "responses": {"200": {"description": "ok"}}}}},
            "definitions": {"In": body},
        }
    )  # fmt: skip


METHOD = {"type": "object", "required": ["method"], "properties": {"method": {"type": "string"}}}


@pytest.mark.parametrize(
    ("declared", "value", "message"),
    [
        (METHOD, 1.0, "GlobalParameters: expected an object with 'method', got 1.0"),
        (METHOD, [], "GlobalParameters: expected an object with 'method', got []"),
        (METHOD, {}, "GlobalParameters: missing 'method' (the swagger requires it)"),
        (METHOD, {"method": None}, "GlobalParameters.method: expected string, got null"),
        ({"type": "number"}, {"method": "predict"}, "GlobalParameters: expected number, got"),
        ({"type": "object", "properties": {"k": {"type": "integer", "format": "int32"}}},
         {"k": 2**40}, "GlobalParameters.k: expected integer within the int32 range"),
    ],
)  # fmt: skip
def test_global_parameters_must_be_what_the_swagger_declares(
    declared: dict[str, Any], value: Any, message: str
) -> None:
    schema = _inputs_schema(declared)
    with pytest.raises(ValidationError) as refused:
        schema.check_global_parameters(value)
    assert str(refused.value).startswith(message), str(refused.value)


@pytest.mark.parametrize(
    ("declared", "value"),
    [
        (METHOD, None),  # absent: the swagger's example is sent
        (METHOD, {"method": "predict_proba", "extra": 1}),
        ({"type": "number"}, 1.0),
        ({}, 1.0),  # nothing declared: anything goes
    ],
)
def test_global_parameters_that_fit_pass(declared: dict[str, Any], value: Any) -> None:
    _inputs_schema(declared).check_global_parameters(value)


def test_examples_stay_within_the_declared_ranges() -> None:
    """A bounded column's example is moved inside its range, so the example payload (and
    ``amlc bench`` without --payload) passes the same checks as any input."""
    schema = _schema(
        {
            "age": {"type": "integer", "minimum": 18, "maximum": 99, "example": 5},
            "rate": {"type": "number", "exclusiveMinimum": 10},  # OpenAPI 3.1 style
            "cap": {"type": "integer", "maximum": -3},
            "n": {"type": "integer", "format": "int32"},
        }
    )
    rows = schema.example_rows(2)
    assert schema.validate_rows(rows) == rows
    assert rows[0]["age"] == 58 and rows[0]["rate"] > 10 and rows[0]["cap"] <= -3


def test_scalar_and_array_rows_honour_their_items_range() -> None:
    def rows_of(items: dict[str, Any]) -> ScoringSchema:
        return load_schema({
            "swagger": "2.0", "info": {"title": "t", "version": "1"},
            "paths": {"/score": {"post": {"parameters": [{"name": "b", "in": "body", "schema": {
                "type": "object", "properties": {"data": {"type": "array", "items": items}}}}],
                "responses": {"200": {"description": "ok"}}}}},
        })  # fmt: skip

    scalars = rows_of({"type": "integer", "format": "int32"})
    assert scalars.validate_rows([1, 2**31 - 1]) == [1, 2**31 - 1]
    with pytest.raises(ValidationError) as refused:
        scalars.validate_rows([1, 2**31])
    assert str(refused.value.problems[0]).startswith("row 2: 2147483648 is outside the int32")
    arrays = rows_of({"type": "array", "items": {"type": "number", "minimum": 0, "maximum": 1}})
    assert arrays.validate_rows([[0, 0.5, 1]]) == [[0, 0.5, 1]]
    with pytest.raises(ValidationError) as refused:
        arrays.validate_rows([[0.5, 1.5]])
    assert str(refused.value.problems[0]) == "row 1: item 1: 1.5 is outside >= 0 and <= 1"
    assert arrays.validate_rows(arrays.example_rows(2))
