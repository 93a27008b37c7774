"""The column types amlc distinguishes, and everything that follows from each one.

A swagger ``type`` + ``format`` is folded into one word (``integer``, ``datetime``, …). For each
word this table holds, in one place: the pydantic-core schema a JSON value must pass, the one a
text cell (CSV) is converted by, what an output example must be, the wording of problems, the
Python annotation and prediction type that generated code uses, and a default example value.
Validation, examples, ``swagger validate`` and codegen all read it from here.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic_core import CoreSchema, PydanticCustomError, SchemaValidator
from pydantic_core import core_schema as cs

__all__ = [
    "COLUMN_TYPES",
    "DATETIME_PATTERN",
    "ColumnType",
    "classify",
    "column_type",
    "is_nullable",
    "output_validator",
    "value_schema",
    "value_validator",
]

#: ISO 8601, and pandas timestamps as inference-schema writes them (``2011-01-01 00:00:00,000000``).
DATETIME_PATTERN = (
    r"^\s*[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:[.,][0-9]{1,9})?)?)?"
    r"(?:Z|[+-][0-9]{2}:?[0-9]{2})?\s*$"
)


@dataclass(frozen=True)
class ColumnType:
    """One amlc column type."""

    name: str
    #: How a problem names it: ``expected <expected>, got 'abc'``.
    expected: str
    #: A JSON value of this type (strict: ``"24"`` is not an integer).
    strict: CoreSchema
    #: Text that converts to this type (``"24"`` -> 24, ``"yes"`` -> True), or a JSON value of
    #: it. Text is tried first: it is what this schema is mostly given (CSV cells).
    text: CoreSchema
    #: What an output example declared with this type must be.
    output: CoreSchema
    #: Annotation of a row field in generated code.
    python: str
    #: Annotation of a prediction in generated code: declared output types are often wrong
    #: (int64 declared, floats or labels returned), so numbers stay open.
    prediction: str
    #: Python type of a prediction in the run-time response model (same leniency).
    response: Any
    #: Example value when the swagger gives none (or a placeholder).
    default: Any


def _stripped_text() -> CoreSchema:
    return cs.str_schema(strict=True, strip_whitespace=True)


def _from_text(target: CoreSchema) -> CoreSchema:
    """A text cell, stripped, then validated (and converted) as ``target`` in lax mode."""
    return cs.chain_schema([_stripped_text(), target])


def _or(*choices: CoreSchema) -> CoreSchema:
    return cs.union_schema(list(choices), mode="left_to_right")


_STRICT_INT = cs.int_schema(strict=True)
_STRICT_FLOAT = cs.float_schema(strict=True, allow_inf_nan=False)
_STRICT_STR = cs.str_schema(strict=True)
_STRICT_BOOL = cs.bool_schema(strict=True)
_DATETIME = cs.str_schema(strict=True, pattern=DATETIME_PATTERN)
_LIST = cs.list_schema(strict=True)
_DICT = cs.dict_schema(strict=True)
_ANY = cs.any_schema()


def _integral(value: float) -> float:
    # Exact, unlike float_schema(multiple_of=1.0), which lets 3.0000000001 and 5e-324 through.
    if not value.is_integer():
        raise PydanticCustomError("int_from_float", "Input should be an integral number")
    return value


# An integer column takes 30.0 (inference-schema casts it) but not 30.5, True or "30".
_INTEGER = _or(_STRICT_INT, cs.no_info_after_validator_function(_integral, _STRICT_FLOAT))
_NUMBER = _or(_STRICT_INT, _STRICT_FLOAT)
# "42" stays an integer in a number column; "4.5" and "1e3" are floats; "nan" and "inf" are
# refused (JSON cannot carry them).
_NUMBER_TEXT = _or(
    cs.chain_schema([cs.str_schema(pattern=r"^[+-]?[0-9]+$"), cs.int_schema()]),
    cs.float_schema(allow_inf_nan=False),
)

COLUMN_TYPES: dict[str, ColumnType] = {
    t.name: t
    for t in (
        ColumnType(
            name="integer",
            expected="integer",
            strict=_INTEGER,
            text=_or(_from_text(cs.int_schema()), _INTEGER),
            output=_STRICT_INT,
            python="int",
            prediction="int | float | str",
            response=int | float | str,
            default=1,
        ),
        ColumnType(
            name="number",
            expected="number",
            strict=_NUMBER,
            text=_or(_from_text(_NUMBER_TEXT), _NUMBER),
            output=_NUMBER,
            python="float",
            prediction="float | str",
            response=int | float | str,
            default=0.5,
        ),
        ColumnType(
            name="string",
            expected="string",
            strict=_STRICT_STR,
            text=_STRICT_STR,
            output=_STRICT_STR,
            python="str",
            prediction="str",
            response=Any,
            default="text",
        ),
        ColumnType(
            name="boolean",
            expected="boolean",
            strict=_STRICT_BOOL,
            text=_or(_from_text(cs.bool_schema()), _STRICT_BOOL),
            output=_STRICT_BOOL,
            python="bool",
            prediction="bool | str",
            response=bool | str | int,
            default=False,
        ),
        ColumnType(
            name="datetime",
            expected="a date-time string",
            strict=_DATETIME,
            text=_DATETIME,
            output=_STRICT_STR,
            python="datetime",
            prediction="str",
            response=Any,
            default="2020-01-01T00:00:00",
        ),
        ColumnType(
            name="array",
            expected="an array",
            strict=_LIST,
            text=_or(_from_text(cs.json_schema(_LIST)), _LIST),
            output=_LIST,
            python="list[Any]",
            prediction="Any",
            response=Any,
            default=[],
        ),
        ColumnType(
            name="object",
            expected="an object",
            strict=_DICT,
            text=_or(_from_text(cs.json_schema(_DICT)), _DICT),
            output=_ANY,
            python="dict[str, Any]",
            prediction="Any",
            response=Any,
            default={},
        ),
        ColumnType(
            name="any",
            expected="a value",
            strict=_ANY,
            text=_ANY,
            output=_ANY,
            python="Any",
            prediction="Any",
            response=Any,
            default=None,
        ),
    )
}

_SWAGGER_TYPES = ("integer", "number", "string", "boolean", "array", "object")


def column_type(name: str | None) -> ColumnType:
    """The entry for ``name``; unknown names are ``any``."""
    return COLUMN_TYPES.get(name or "any", COLUMN_TYPES["any"])


def classify(prop: Any) -> str:
    """The amlc type of a swagger property schema (``{"type": "string", "format": "date"}``
    -> ``datetime``); anything unrecognised is ``any``."""
    if not isinstance(prop, dict):
        return "any"
    kind = prop.get("type")
    if isinstance(kind, list):  # OpenAPI 3.1: ["integer", "null"]
        kind = next((k for k in kind if k != "null"), None)
    if not isinstance(kind, str):
        kind = None
    if kind == "string" and prop.get("format") in ("date-time", "date"):
        return "datetime"
    if kind in _SWAGGER_TYPES:
        return kind
    if prop.get("properties"):
        return "object"
    return "any"


def is_nullable(prop: Any) -> bool:
    """``null`` allowed: ``nullable``, ``x-nullable`` or an OpenAPI 3.1 ``"null"`` type."""
    if not isinstance(prop, dict):
        return False
    kind = prop.get("type")
    return bool(
        prop.get("nullable")
        or prop.get("x-nullable")
        or (isinstance(kind, list) and "null" in kind)
    )


def value_schema(kind: str, *, nullable: bool = False, text: bool = False) -> CoreSchema:
    """The core schema of one value of ``kind`` (``text``: converting text cells)."""
    entry = column_type(kind)
    schema = entry.text if text else entry.strict
    return cs.nullable_schema(schema) if nullable else schema


@lru_cache(maxsize=64)
def value_validator(kind: str, *, nullable: bool = False, text: bool = False) -> SchemaValidator:
    """A compiled validator of one value of ``kind`` (cached: there are only a few)."""
    return SchemaValidator(value_schema(kind, nullable=nullable, text=text))


@lru_cache(maxsize=16)
def output_validator(kind: str) -> SchemaValidator:
    """Whether an output example is what the swagger declares."""
    return SchemaValidator(column_type(kind).output)
