"""An endpoint's scoring contract as read from its swagger: convention, columns, output.

The documents found in the wild are often sloppy (no ``required`` lists, placeholder examples,
``"True"`` for booleans, output types that do not match what comes back, fields of the wrong
type), so they are read leniently, while rows are checked strictly (see ``validation``).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import pydantic

from aml_client.envelope import Convention, json_kind, wrap
from aml_client.errors import RowProblem, SchemaError, ValidationError
from aml_client.schema import examples, models
from aml_client.schema.column_types import (
    Bounds,
    classify,
    column_type,
    is_nullable,
    numeric_bounds,
    value_validator,
)
from aml_client.schema.locate import Located, Locator
from aml_client.schema.reader import SwaggerSource, read_swagger
from aml_client.schema.validation import RowValidator, show_value

__all__ = [
    "Column",
    "GlobalParametersSpec",
    "ScoringSchema",
    "load_schema",
    "read_scoring_schema",
]


@dataclass
class Column:
    """One declared input column. ``required`` is what the swagger says; amlc expects every
    declared column anyway, because most generated swaggers omit ``required``."""

    name: str
    type: str
    format: str | None = None
    example: Any = None
    required: bool = False
    #: ``null`` allowed (``nullable``, ``x-nullable`` or an OpenAPI 3.1 ``"null"`` type).
    nullable: bool = False
    #: The range of an integer or number column: its ``format``'s and its declared bounds.
    bounds: Bounds | None = None


@dataclass(frozen=True)
class GlobalParametersSpec:
    """What the swagger declares for ``GlobalParameters``: its type, the properties it
    requires and the type of each declared property (``{"method": "string"}``)."""

    kind: str
    required: tuple[str, ...] = ()
    #: name -> (amlc type, nullable, bounds)
    properties: tuple[tuple[str, str, bool, Bounds | None], ...] = ()

    def problems(self, value: Any) -> list[RowProblem]:
        """What is wrong with ``value`` as this endpoint's ``GlobalParameters`` (none when it
        is absent: the swagger's own example is sent then)."""
        if value is None or self.kind == "any":
            return []
        where = "GlobalParameters"
        if self.kind != "object":
            if value_validator(self.kind).isinstance_python(value):
                return []
            expected = column_type(self.kind).expected
            got = show_value(value)
            return [RowProblem(None, None, f"{where}: expected {expected}, got {got}")]
        if not isinstance(value, dict):
            needs = ", ".join(f"'{name}'" for name in self.required)
            return [
                RowProblem(
                    None,
                    None,
                    f"{where}: expected an object{f' with {needs}' if needs else ''}, got "
                    f"{show_value(value)}",
                )
            ]
        found = [
            RowProblem(None, None, f"{where}: missing '{name}' (the swagger requires it)")
            for name in self.required
            if name not in value
        ]
        for name, kind, nullable, bounds in self.properties:
            if name not in value:
                continue
            item = value[name]
            checker = value_validator(kind, nullable=nullable, bounds=bounds)
            if not checker.isinstance_python(item):
                expected = column_type(kind).expected
                found.append(
                    RowProblem(
                        None,
                        None,
                        f"{where}.{name}: expected {expected}"
                        f"{f' within {bounds.describe()}' if bounds else ''}, got "
                        f"{show_value(item)}",
                    )
                )
        return found


@dataclass
class ScoringSchema:
    """An endpoint's input and output contract, as read from its swagger."""

    title: str
    version: str
    convention: Convention
    row_kind: str  # "record" | "scalar" | "array" | "any"
    columns: list[Column]
    global_parameters: dict[str, Any] | float | None
    method_field: bool
    output_kind: str  # "Results[]" | "result[]" | "array" | "object" | "unknown"
    output_item_type: str | None
    raw: dict[str, Any] = field(repr=False)
    #: Element type of scalar rows, or of the items of array rows.
    item_type: str | None = None
    #: The range of those elements when they are numbers with a ``format`` or bounds.
    item_bounds: Bounds | None = None
    #: Example rows exactly as the swagger gives them (may hold placeholders).
    raw_example_rows: list[Any] = field(default_factory=list, repr=False)
    #: The declared schema of ``GlobalParameters``, when the swagger gives one.
    global_parameters_spec: GlobalParametersSpec | None = None
    _cache: dict[str, Any] = field(default_factory=dict, init=False, repr=False, compare=False)

    # -- lookups -----------------------------------------------------------------------------

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None

    # -- validation --------------------------------------------------------------------------

    def row_validator(self) -> RowValidator:
        """The compiled row validator (rebuilt if ``columns`` were changed in place)."""
        key = (
            self.row_kind,
            self.item_type,
            tuple((c.name, c.type, c.nullable, c.bounds) for c in self.columns),
            self.item_bounds,
        )
        cached = self._cache.get("validator")
        if cached is None or cached[0] != key:
            built = RowValidator(self.row_kind, self.item_type, key[2], self.item_bounds)
            cached = (key, built)
            self._cache["validator"] = cached
        validator: RowValidator = cached[1]
        return validator

    def validate_rows(self, rows: list[Any], *, coerce: bool = False) -> list[Any]:
        """Check every row against the declared columns and return them (text converted to
        the declared types when ``coerce``); raise ValidationError listing each problem by
        row (1-based) and column.

        Strict on purpose: ``"24"`` for an integer column is a problem unless ``coerce``, since
        inference-schema casts it silently or fails inside ``run()`` with an opaque 500.
        """
        if not isinstance(rows, list):
            raise ValidationError(
                [RowProblem(None, None, f"expected a list of rows, got {json_kind(rows)}")]
            )
        checked, problems = self.row_validator().validate(rows, text=coerce)
        if problems:
            raise ValidationError(problems)
        return checked

    def check_global_parameters(self, value: Any) -> None:
        """Raise ValidationError when ``value`` is not what the swagger declares for
        ``GlobalParameters`` (``1.0`` where an object with a required ``method`` is
        declared); absent (None) is always fine."""
        spec = self.global_parameters_spec
        problems = spec.problems(value) if spec is not None else []
        if problems:
            raise ValidationError(problems)

    def coerce_row(self, row: dict[str, str]) -> dict[str, Any]:
        """Convert one row of text (a CSV line) to the declared types."""
        checked, problems = self.row_validator().validate_one(row, text=True)
        if problems:
            raise ValidationError([RowProblem(None, p.column, p.message) for p in problems])
        result: dict[str, Any] = checked
        return result

    # -- examples ----------------------------------------------------------------------------

    def example_rows(self, n: int = 1) -> list[Any]:
        """``n`` rows that pass :meth:`validate_rows`: the swagger's own example where it is
        real, placeholders (``"example_value"``, all zeros) replaced by plausible values."""
        columns = [(c.name, c.type, c.example) for c in self.columns]
        base = [
            examples.example_row(row, self.row_kind, self.item_type, columns)
            for row in (self.raw_example_rows or [None])
        ]
        bounded = [c for c in self.columns if c.bounds is not None]
        for row in base if self.row_kind == "record" and bounded else []:
            for col in bounded:
                assert col.bounds is not None
                row[col.name] = examples.within(row.get(col.name), col.type, col.bounds)
        return [copy.deepcopy(base[i % len(base)]) for i in range(max(n, 0))]

    def example_payload(self, n: int = 1) -> dict[str, Any]:
        """A complete request body in this endpoint's convention."""
        return wrap(self.example_rows(n), self)

    # -- pydantic models ---------------------------------------------------------------------

    def row_model(self) -> type[pydantic.BaseModel]:
        """A pydantic model of one row; field aliases keep names such as ``emp.var.rate``."""
        if "row" not in self._cache:
            specs = [(c.name, c.type, c.nullable, c.bounds) for c in self.columns]
            self._cache["row"] = models.row_model(self.title, self.row_kind, self.item_type, specs)
        model: type[pydantic.BaseModel] = self._cache["row"]
        return model

    def request_model(self) -> type[pydantic.BaseModel]:
        """A pydantic model of the whole request body, in this endpoint's convention."""
        if "request" not in self._cache:
            record = self.row_model() if self.row_kind == "record" else None
            row = models.row_type(self.row_kind, self.item_type, record, self.item_bounds)
            self._cache["request"] = models.request_model(
                self.title, self.convention, self.method_field, row
            )
        model: type[pydantic.BaseModel] = self._cache["request"]
        return model

    def response_model(self) -> type[pydantic.BaseModel]:
        """A lenient pydantic model of the response: swagger output types are often wrong
        (int64 declared, floats returned), so numbers accept any number."""
        if "response" not in self._cache:
            self._cache["response"] = models.response_model(
                self.title, self.output_kind, self.output_item_type
            )
        model: type[pydantic.BaseModel] = self._cache["response"]
        return model


# -- loading ---------------------------------------------------------------------------------


def load_schema(source: SwaggerSource) -> ScoringSchema:
    """Read a swagger (a dict, a file path, or JSON text) into a ScoringSchema.

    Accepts Swagger 2.0 and OpenAPI 3.0/3.1, with a BOM, CRLF line ends, local ``$ref``s and
    empty schemas; raises SchemaError when the document is not a scoring swagger at all. A
    body received from an endpoint goes through ``parse_document`` first, never as a str here
    (a str that does not look like JSON is taken for a file name).
    """
    doc, _name = read_swagger(source)
    return read_scoring_schema(doc)


def read_scoring_schema(doc: dict[str, Any]) -> ScoringSchema:
    """The scoring contract of an already parsed and checked document."""
    loc = Locator(doc)
    version = loc.version
    if not version:
        raise SchemaError("not a swagger/OpenAPI document (no 'swagger' or 'openapi' field)")
    if not (version.startswith("2") or version.startswith("3")):
        raise SchemaError(f"unsupported swagger/OpenAPI version {version[:40]!r}")
    info = doc.get("info")
    title_value = info.get("title") if isinstance(info, dict) else None
    title = str(title_value or "scoring endpoint")
    body, example_at = loc.input_schema()
    input_schema: dict[str, Any] = body.node if body is not None else {}
    example: Any = example_at.node if example_at is not None else None
    if not isinstance(example, dict):
        example = {}
    props = _object(input_schema.get("properties"))

    global_parameters: dict[str, Any] | float | None
    if "Inputs" in props and body is not None:
        convention = Convention.INPUTS
        ex_inputs = example.get("Inputs")
        ex_rows = ex_inputs.get("data") if isinstance(ex_inputs, dict) else ex_inputs
        gp_at = loc.child(loc.child(body, "properties"), "GlobalParameters")
        global_parameters = _global_parameters(_object(gp_at.node), example)
        gp_spec = _global_parameters_spec(loc, gp_at)
        method_field = False
    else:
        convention = Convention.DATA
        ex_rows = example.get("data")
        global_parameters = None
        gp_spec = None
        method_field = "method" in props
        if method_field and isinstance(example.get("method"), str):
            global_parameters = {"method": example["method"]}

    if body is not None and props:
        row_kind, columns, item_type, item_bounds = _rows(loc, loc.rows_schema(body))
    else:
        row_kind, columns, item_type, item_bounds = "any", [], None, None
    ex_list = ex_rows if isinstance(ex_rows, list) else []
    if row_kind == "record":
        first = next((r for r in ex_list if isinstance(r, dict)), {})
        for col in columns:
            if col.example is None and col.name in first:
                col.example = first[col.name]
    output_kind, output_item_type = _output(loc, loc.output_schema())
    return ScoringSchema(
        title=title,
        version=version,
        convention=convention,
        row_kind=row_kind,
        columns=columns,
        global_parameters=global_parameters,
        method_field=method_field,
        output_kind=output_kind,
        output_item_type=output_item_type,
        raw=doc,
        item_type=item_type,
        item_bounds=item_bounds,
        raw_example_rows=list(ex_list),
        global_parameters_spec=gp_spec,
    )


def _object(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _global_parameters(
    gp_schema: dict[str, Any], example: dict[str, Any]
) -> dict[str, Any] | float | None:
    if "GlobalParameters" in example:
        value = example["GlobalParameters"]
        if isinstance(value, dict | int | float) and not isinstance(value, bool):
            return value
    if gp_schema.get("type") in ("number", "integer"):
        return 1.0
    if "method" in _object(gp_schema.get("properties")):
        return {"method": "predict"}
    return None


def _global_parameters_spec(loc: Locator, at: Located) -> GlobalParametersSpec | None:
    """The declared ``GlobalParameters`` (None when the swagger says nothing of them)."""
    schema = at.node
    if not isinstance(schema, dict) or not schema:
        return None
    kind = classify(schema)
    if kind != "object":
        return GlobalParametersSpec(kind)
    required = schema.get("required")
    props_at = loc.child(at, "properties")
    properties = []
    for name in _object(props_at.node):
        if isinstance(name, str):
            prop = loc.child(props_at, name).node
            prop_kind = classify(prop)
            properties.append((name, prop_kind, is_nullable(prop), numeric_bounds(prop, prop_kind)))
    return GlobalParametersSpec(
        kind,
        tuple(r for r in required if isinstance(r, str)) if isinstance(required, list) else (),
        tuple(properties),
    )


def _rows(
    loc: Locator, rows: Located
) -> tuple[str, list[Column], str | None, Bounds | None]:
    """(row kind, columns, item type, item bounds) from the schema of the row list."""
    if not isinstance(rows.node, dict):
        return "any", [], None, None
    items_at = loc.row_items(rows)
    items = items_at.node
    if not isinstance(items, dict) or not items:
        return "any", [], None, None
    props = items.get("properties")
    if items.get("type") == "object" or isinstance(props, dict):
        required = items.get("required")
        required_names = (
            {r for r in required if isinstance(r, str)} if isinstance(required, list) else set()
        )
        columns = []
        props_at = loc.child(items_at, "properties")
        for name in _object(props_at.node):
            if not isinstance(name, str):
                continue
            prop = loc.child(props_at, name).node
            prop = prop if isinstance(prop, dict) else {}
            fmt = prop.get("format")
            kind = classify(prop)
            columns.append(
                Column(
                    name=name,
                    type=kind,
                    format=fmt if isinstance(fmt, str) else None,
                    example=prop.get("example"),
                    required=name in required_names,
                    nullable=is_nullable(prop),
                    bounds=numeric_bounds(prop, kind),
                )
            )
        return "record", columns, None, None
    if items.get("type") == "array":
        inner = loc.child(items_at, "items").node
        kind = classify(inner)
        return "array", [], kind, numeric_bounds(inner, kind)
    kind = classify(items)
    return "scalar", [], kind, numeric_bounds(items, kind)


def _output(loc: Locator, schema_at: Located | None) -> tuple[str, str | None]:
    schema = schema_at.node if schema_at is not None else None
    if not isinstance(schema, dict) or not schema or schema_at is None:
        return "unknown", None
    props_at = loc.child(schema_at, "properties")
    props = _object(props_at.node)
    for key in ("Results", "result"):
        if key in props:
            inner = loc.child(props_at, key)
            items = loc.child(inner, "items").node if isinstance(inner.node, dict) else None
            return f"{key}[]", classify(items) if isinstance(items, dict) else None
    if schema.get("type") == "array":
        items = loc.child(schema_at, "items").node
        return "array", classify(items) if isinstance(items, dict) else None
    if schema.get("type") == "object":
        return "object", None
    return "unknown", None
