"""The column types amlc distinguishes, and everything that follows from each one.

A swagger ``type`` + ``format`` is folded into one word (``integer``, ``datetime``, …). For each
word this table holds, in one place: the pydantic-core schema a JSON value must pass, the one a
text cell (CSV) is converted by, what an output example must be, the wording of problems, the
Python annotation and prediction type that generated code uses, and a default example value.
Validation, examples, ``swagger validate`` and codegen all read it from here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pydantic_core import CoreSchema, PydanticCustomError, SchemaValidator
from pydantic_core import core_schema as cs

__all__ = [
    "COLUMN_TYPES",
    "DATETIME_PATTERN",
    "Bounds",
    "ColumnType",
    "classify",
    "column_type",
    "is_nullable",
    "numeric_bounds",
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


def value_schema(
    kind: str, *, nullable: bool = False, text: bool = False, bounds: Bounds | None = None
) -> CoreSchema:
    """The core schema of one value of ``kind`` (``text``: converting text cells), within
    ``bounds`` for an integer or number column."""
    entry = column_type(kind)
    if bounds is not None and kind in ("integer", "number"):
        schema = _bounded(kind, bounds, text=text)
    else:
        schema = entry.text if text else entry.strict
    return cs.nullable_schema(schema) if nullable else schema


@lru_cache(maxsize=64)
def value_validator(
    kind: str, *, nullable: bool = False, text: bool = False, bounds: Bounds | None = None
) -> SchemaValidator:
    """A compiled validator of one value of ``kind`` (cached: there are only a few)."""
    return SchemaValidator(value_schema(kind, nullable=nullable, text=text, bounds=bounds))


# -- numeric bounds ----------------------------------------------------------------------------

#: What an integer ``format`` allows (two's complement), and a ``float`` number (IEEE single).
_FORMAT_RANGES: dict[tuple[str, str], tuple[int | float, int | float]] = {
    ("integer", "int32"): (-(2**31), 2**31 - 1),
    ("integer", "int64"): (-(2**63), 2**63 - 1),
    ("number", "float"): (-3.4028234663852886e38, 3.4028234663852886e38),
}


@dataclass(frozen=True)
class Bounds:
    """The range a swagger allows a number in: its ``format``'s (int32, int64, float) and its
    ``minimum``/``maximum`` (``exclusive*`` as Swagger 2 / OpenAPI 3.0 booleans or OpenAPI 3.1
    numbers), the tighter of the two on each side."""

    low: int | float | None = None
    high: int | float | None = None
    low_exclusive: bool = False
    high_exclusive: bool = False
    #: The format whose range this is (``int64``), for messages; None for a declared bound.
    format: str | None = None

    def constraints(self) -> dict[str, int | float]:
        """pydantic-core's ``ge``/``gt``/``le``/``lt``."""
        found: dict[str, int | float] = {}
        if self.low is not None:
            found["gt" if self.low_exclusive else "ge"] = self.low
        if self.high is not None:
            found["lt" if self.high_exclusive else "le"] = self.high
        return found

    def allows(self, value: int | float) -> bool:
        if self.low is not None and (value <= self.low if self.low_exclusive else value < self.low):
            return False
        return not (
            self.high is not None
            and (value >= self.high if self.high_exclusive else value > self.high)
        )

    def describe(self) -> str:
        """``the int64 range [-9223372036854775808, 9223372036854775807]``, ``> 0``, …"""
        if self.format is not None and self.low is not None and self.high is not None:
            return f"the {self.format} range [{self.low}, {self.high}]"
        parts = []
        if self.low is not None:
            parts.append(f"{'>' if self.low_exclusive else '>='} {self.low}")
        if self.high is not None:
            parts.append(f"{'<' if self.high_exclusive else '<='} {self.high}")
        return " and ".join(parts) or "any number"


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def numeric_bounds(prop: Any, kind: str) -> Bounds | None:
    """The :class:`Bounds` of a swagger property of amlc type ``kind``, None when it has none
    (or is not a number). Bounds that are not numbers are ignored: sloppy swaggers are read
    leniently, rows strictly."""
    if kind not in ("integer", "number") or not isinstance(prop, dict):
        return None
    fmt = prop.get("format")
    low: int | float | None = None
    high: int | float | None = None
    low_x = high_x = False
    named: str | None = None
    if isinstance(fmt, str) and (kind, fmt) in _FORMAT_RANGES:
        low, high = _FORMAT_RANGES[(kind, fmt)]
        named = fmt

    def clean(value: Any) -> int | float | None:
        if _number(value) is None or not math.isfinite(value):
            return None
        number: int | float = value
        return number

    minimum, maximum = clean(prop.get("minimum")), clean(prop.get("maximum"))
    ex_min, ex_max = prop.get("exclusiveMinimum"), prop.get("exclusiveMaximum")
    lows: list[tuple[int | float, bool]] = []
    highs: list[tuple[int | float, bool]] = []
    if minimum is not None:
        lows.append((minimum, ex_min is True))
    if maximum is not None:
        highs.append((maximum, ex_max is True))
    low_31, high_31 = clean(ex_min), clean(ex_max)  # OpenAPI 3.1: the exclusive bound itself
    if low_31 is not None:
        lows.append((low_31, True))
    if high_31 is not None:
        highs.append((high_31, True))
    for value, exclusive in lows:
        if low is None or value > low or (value == low and exclusive):
            low, low_x, named = value, exclusive, None
    for value, exclusive in highs:
        if high is None or value < high or (value == high and exclusive):
            high, high_x, named = value, exclusive, None
    if low is None and high is None:
        return None
    return Bounds(low, high, low_x, high_x, named)


def _int_limits(limits: dict[str, int | float]) -> dict[str, int]:
    """The same limits for an integer (pydantic-core wants integer bounds there): ``<= 2.5``
    is ``<= 2``, ``> 2.5`` is ``>= 3``."""
    found: dict[str, int] = {}
    for name, value in limits.items():
        if isinstance(value, int) or value.is_integer():
            found[name] = int(value)
        elif name in ("ge", "gt"):
            found["ge"] = math.ceil(value)
        else:
            found["le"] = math.floor(value)
    return found


def _bounded(kind: str, bounds: Bounds, *, text: bool) -> CoreSchema:
    """The integer or number schemas of :data:`COLUMN_TYPES`, with the bounds applied."""
    limits = _int_limits(bounds.constraints())
    float_limits = {name: float(value) for name, value in bounds.constraints().items()}
    strict_int = cs.int_schema(strict=True, **limits)  # type: ignore[arg-type]
    # Only a real float goes this way: a strict float schema takes ints too, and would pass
    # 2**63 as 9.223372036854776e18, which equals the int64 bound once rounded.
    strict_float = cs.chain_schema(
        [
            cs.is_instance_schema(float),
            cs.float_schema(
                strict=True, allow_inf_nan=False, **float_limits  # type: ignore[arg-type]
            ),
        ]
    )
    if kind == "integer":
        strict = _or(strict_int, cs.no_info_after_validator_function(_integral, strict_float))
        if not text:
            return strict
        return _or(_from_text(cs.int_schema(**limits)), strict)  # type: ignore[arg-type]
    strict = _or(strict_int, strict_float)
    if not text:
        return strict
    number_text = _or(
        cs.chain_schema(
            [cs.str_schema(pattern=r"^[+-]?[0-9]+$"), cs.int_schema(**limits)]  # type: ignore[arg-type]
        ),
        cs.float_schema(allow_inf_nan=False, **float_limits),  # type: ignore[arg-type]
    )
    return _or(_from_text(number_text), strict)


@lru_cache(maxsize=16)
def output_validator(kind: str) -> SchemaValidator:
    """Whether an output example is what the swagger declares."""
    return SchemaValidator(column_type(kind).output)
