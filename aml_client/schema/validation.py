"""Checking rows against the swagger, with pydantic.

For each schema, two pydantic-core validators over a whole list of rows are compiled once: a
strict one for JSON values (``"24"`` is not an integer; an endpoint would cast it silently or
fail inside ``run()`` with an opaque 500) and a converting one for text cells (CSV), which
turns ``"24"`` into 24 and ``"yes"`` into True. Record rows are typed dicts keyed by the real
column names (``emp.var.rate`` needs no alias), closed to unknown columns, every declared column
required (most generated swaggers omit ``required``, yet the scoring script reads them all).

pydantic reports each error with its location, type and input; :func:`problems_from` turns
them into amlc's messages (``row 2, column 'age': expected integer, got 'abc'``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any, cast

from pydantic_core import CoreSchema, SchemaValidator
from pydantic_core import ValidationError as PydanticValidationError
from pydantic_core import core_schema as cs

from aml_client.envelope import json_kind
from aml_client.errors import RowProblem
from aml_client.schema.column_types import Bounds, column_type, value_schema

__all__ = ["ColumnSpec", "RowValidator", "problems_from", "show_value"]

#: (name, type, nullable, numeric bounds) of one declared column.
ColumnSpec = tuple[str, str, bool, Bounds | None]
#: Up to this many columns, column schemas are written inline rather than referenced.
_INLINE_COLUMNS = 200


class RowValidator:
    """Validates lists of rows of one shape: ``record`` (named columns), ``scalar`` (one value
    per row), ``array`` (a list of values per row) or ``any`` (not described: anything goes)."""

    def __init__(
        self,
        row_kind: str,
        item_type: str | None,
        columns: Sequence[ColumnSpec],
        item_bounds: Bounds | None = None,
    ):
        self.row_kind = row_kind
        self.item_kind = item_type or "any"
        self.item_bounds = item_bounds
        self.columns = list(columns)
        self._validators: dict[tuple[bool, bool], SchemaValidator | None] = {}

    def _validator(self, text: bool, *, one: bool = False) -> SchemaValidator | None:
        """The compiled validator of a list of rows (``one``: of a single row)."""
        key = (text, one)
        if key not in self._validators:
            row = self._row_schema(text)
            if row is not None and not one:
                row = cs.list_schema(row, strict=True)
            self._validators[key] = None if row is None else SchemaValidator(row)
        return self._validators[key]

    def _row_schema(self, text: bool) -> CoreSchema | None:
        if self.row_kind == "record":
            if len(self.columns) <= _INLINE_COLUMNS:  # inline is a little faster to run
                fields = {
                    name: cs.typed_dict_field(
                        value_schema(kind, nullable=nullable, text=text, bounds=bounds)
                    )
                    for name, kind, nullable, bounds in self.columns
                }
                return cs.typed_dict_schema(fields, extra_behavior="forbid", strict=True)
            # Wide rows: each column type is defined once and referenced by every column of
            # that type, since compiling 20,000 inline copies (each with its regex) takes seconds.
            definitions: dict[str, CoreSchema] = {}
            fields = {}
            bounded = {b: i for i, b in enumerate({c[3] for c in self.columns} - {None})}
            for name, kind, nullable, bounds in self.columns:
                ref = f"amlc.{kind}{'?' if nullable else ''}"
                if bounds is not None and kind in ("integer", "number"):
                    ref += f"#{bounded[bounds]}"
                if ref not in definitions:
                    schema = value_schema(kind, nullable=nullable, text=text, bounds=bounds)
                    definitions[ref] = cast(CoreSchema, {**schema, "ref": ref})
                fields[name] = cs.typed_dict_field(cs.definition_reference_schema(ref))
            rows = cs.typed_dict_schema(fields, extra_behavior="forbid", strict=True)
            return cs.definitions_schema(rows, list(definitions.values()))
        item = value_schema(self.item_kind, text=text, bounds=self.item_bounds)
        if self.row_kind == "scalar":
            return item
        if self.row_kind == "array":
            return cs.list_schema(item, strict=True)
        return None

    def validate(
        self, rows: list[Any], *, text: bool = False
    ) -> tuple[list[Any], list[RowProblem]]:
        """``(rows as validated, problems)``; rows are 1-based in problems."""
        validator = self._validator(text)
        if validator is None:
            return list(rows), []
        try:
            return validator.validate_python(rows), []
        except PydanticValidationError as exc:
            return list(rows), problems_from(exc, rows, self, text=text)

    def validate_one(self, row: Any, *, text: bool = False) -> tuple[Any, list[RowProblem]]:
        """One row (a CSV line), without wrapping it in a list; problems say ``row 1``."""
        validator = self._validator(text, one=True)
        if validator is None:
            return row, []
        try:
            return validator.validate_python(row), []
        except PydanticValidationError as exc:
            return row, problems_from(exc, [row], self, single=True, text=text)


def problems_from(
    exc: PydanticValidationError,
    rows: list[Any],
    spec: RowValidator,
    *,
    single: bool = False,
    text: bool = False,
) -> list[RowProblem]:
    """amlc's problems for pydantic's errors: one per row and column (a union reports one
    error per alternative), in the order a person reads them: row by row, the row's own
    columns first, then the missing ones in the swagger's order. ``single``: the errors of
    one row validated on its own (no row index in their locations); ``text``: the rows were
    text cells (CSV), so a cell holding a number out of range is named as such."""
    kinds = {name: kind for name, kind, _, _ in spec.columns}
    limits = {name: bounds for name, _, _, bounds in spec.columns if bounds is not None}
    order = {name: index for index, (name, _, _, _) in enumerate(spec.columns)}
    found: dict[tuple[int, Any], tuple[tuple[int, int, int], RowProblem]] = {}
    positions: dict[int, dict[Any, int]] = {}
    for error in exc.errors(include_url=False, include_context=False):
        loc = (0, *error["loc"]) if single else error["loc"]
        if not loc or not isinstance(loc[0], int):
            continue
        index = loc[0]
        row = rows[index]
        where: Any = None
        if spec.row_kind == "record":
            if len(loc) == 1:
                message = f"expected an object with named columns, got {json_kind(row)}"
                sort = (index, 0, -1)
            else:
                where = loc[1]
                kind = error["type"]
                if kind == "missing":
                    message = "missing column"
                    sort = (index, 1, order.get(where, 0))
                else:
                    if kind == "extra_forbidden":
                        message = "unknown column (not in the swagger)"
                    else:
                        value = row.get(where)
                        message = _outside(limits.get(where), value, text) or _expected(
                            kinds.get(where), value
                        )
                    if index not in positions:
                        positions[index] = {name: i for i, name in enumerate(row)}
                    sort = (index, 0, positions[index].get(where, 0))
        elif spec.row_kind == "array" and len(loc) > 1 and isinstance(row, list):
            where = loc[1]
            value = row[where]
            said = _outside(spec.item_bounds, value, text) or _expected(spec.item_kind, value)
            message = f"item {where}: {said}"
            sort = (index, 0, where)
        elif spec.row_kind == "array":
            message = f"expected an array, got {show_value(row)}"
            sort = (index, 0, -1)
        else:
            message = _outside(spec.item_bounds, row, text) or _expected(spec.item_kind, row)
            sort = (index, 0, -1)
        key = (index, where)
        if key not in found:
            column = None if where is None or spec.row_kind != "record" else str(where)
            found[key] = (sort, RowProblem(index + 1, column, message))
    return [problem for _, problem in sorted(found.values(), key=lambda item: item[0])]


def _outside(bounds: Bounds | None, value: Any, text: bool) -> str | None:
    """``40 is outside the int32 range [...]`` when ``value`` is a number (or a text cell
    holding one) that only its range refuses; None otherwise."""
    if bounds is None or isinstance(value, bool):
        return None
    number: Any = value
    if isinstance(value, str) and text:
        cell = value.strip()
        try:
            number = int(cell) if cell.lstrip("+-").isdigit() else float(cell)
        except ValueError:
            return None
    if not isinstance(number, int | float) or (
        isinstance(number, float) and not math.isfinite(number)
    ):
        return None
    if bounds.allows(number):
        return None
    return f"{show_value(value)} is outside {bounds.describe()}"


def _expected(kind: str | None, value: Any) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        # the same words as the JSON encoder's, whichever check meets it first
        return f"{show_value(value)} cannot be sent as JSON"
    return f"expected {column_type(kind).expected}, got {show_value(value)}"


def show_value(value: Any) -> str:
    """A value as the user wrote it: strings quoted, JSON spellings for the rest, clipped."""
    if isinstance(value, str):
        return repr(value if len(value) <= 40 else value[:37] + "...")
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    try:
        text = json.dumps(value)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
