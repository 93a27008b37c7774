"""A swagger checked for scoring: the OpenAPI structure and what a client depends on.

Combines the OpenAPI structure (openapi-spec-validator, never following a remote or file
reference) with what matters for scoring: a recognised convention, typed columns, examples that
match their types. Each finding names its place in the document as a JSON path, so a sloppy
swagger can be fixed at the source. The document itself is read by :mod:`aml_client.schema`.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import TYPE_CHECKING, Any

from aml_client.errors import SchemaError
from aml_client.schema.column_types import column_type, output_validator, value_validator
from aml_client.schema.locate import Located, Locator, json_path
from aml_client.schema.reader import check_document
from aml_client.schema.validation import show_value
from aml_client.swagger.summary import describe_version

if TYPE_CHECKING:
    from aml_client.schema import ScoringSchema

__all__ = ["Finding", "ValidationReport", "validate_document"]

#: Column names that usually hold the training label; sending them is a sign of a sloppy export.
LABEL_NAMES = frozenset({"y", "label", "target", "class", "Churn"})


# --------------------------------------------------------------------------- validation


@dataclass(frozen=True)
class Finding:
    """One problem in a swagger, located by a JSON path (``$`` is the whole document)."""

    level: str  # "error" | "warning"
    path: str
    message: str

    def __str__(self) -> str:
        return f"{self.level}: {self.path}: {self.message}"


@dataclass
class ValidationReport:
    """Everything wrong with one swagger; ``ok`` when nothing is an error."""

    source: str
    version: str
    findings: list[Finding] = field(default_factory=list)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "error"]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.level == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def to_dict(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "version": self.version,
            "ok": self.ok,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "findings": [asdict(f) for f in self.findings],
        }


def validate_document(doc: dict[str, Any], *, source: str = "swagger") -> ValidationReport:
    """Validate the OpenAPI structure, then what scoring depends on.

    Errors are what breaks a client (an invalid document, no scoring operation, an unknown
    convention, examples that contradict their types); warnings are the oddities real
    endpoints publish and a client copes with (``"True"`` for a boolean, a label column in the
    input, no ``required``, an output example that does not match its type).

    Linear in the size of the document: each column is checked on its own.
    """
    report = ValidationReport(source=source, version=describe_version(doc))
    findings = report.findings
    version = doc.get("swagger") or doc.get("openapi") or ""
    if not version:
        findings.append(Finding("error", "$", "no 'swagger' or 'openapi' field"))
        return report
    try:
        check_document(doc, source=source)
    except SchemaError as exc:
        findings.append(Finding("error", "$", str(exc)))
        return report
    findings.extend(_structural(doc, str(version)))

    from aml_client.schema.scoring import read_scoring_schema

    try:
        schema = read_scoring_schema(doc)
        findings.extend(_scoring_findings(Locator(doc), schema))
    except SchemaError as exc:
        findings.append(Finding("error", "$", str(exc)))
    return report


def _structural(doc: dict[str, Any], version: str) -> list[Finding]:
    validators = _spec_validators()
    if version.startswith("2"):
        validator_cls = validators["2"]
    elif version.startswith("3.0"):
        validator_cls = validators["3.0"]
    elif version.startswith("3.1"):
        validator_cls = validators["3.1"]
    else:
        return [Finding("error", "$.openapi", f"unsupported version {version[:40]!r}")]
    findings = []
    condensed, stands_for = _condense(doc)
    try:
        for error in validator_cls(condensed).iter_errors():
            message = _short(getattr(error, "message", str(error)))
            for parts in _expand(list(getattr(error, "absolute_path", []) or []), stands_for):
                findings.append(Finding("error", json_path(parts), message))
    except Exception as exc:  # unresolvable $ref and the like abort the validator itself
        findings.append(Finding("error", "$", f"cannot validate the structure: {_short(str(exc))}"))
    return findings


#: ``properties`` maps larger than this are condensed before the structural validation.
_CONDENSE_OVER = 64
_Group = dict[str, list[str]]


def _condense(doc: dict[str, Any]) -> tuple[dict[str, Any], dict[tuple[Any, ...], _Group]]:
    """The document with each large ``properties`` map cut down to one property per distinct
    schema, and, for each map cut, which properties each kept one stands for.

    The structural validation checks each property schema on its own, and a property's
    ``example`` may be any value, so properties equal but for their example are validated
    once: a swagger with 20,000 columns of a few types costs what one with a few columns
    does. Maps that a ``$ref`` points into, or whose schema combines others (``allOf`` …,
    which relate ``required`` to the properties), are left whole.
    """
    refs: list[str] = []
    stack: list[Any] = [doc]
    while stack:
        node = stack.pop()
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str) and "/properties/" in ref:
                refs.append(ref)
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
    groups: dict[tuple[Any, ...], _Group] = {}

    def walk(node: Any, path: tuple[Any, ...]) -> Any:
        if isinstance(node, list):
            items = [walk(item, (*path, index)) for index, item in enumerate(node)]
            return items if any(a is not b for a, b in zip(items, node, strict=True)) else node
        if not isinstance(node, dict):
            return node
        out: dict[str, Any] = {}
        for key, value in node.items():
            here = (*path, key)
            if key == "properties" and _condensable(node, value, here, refs):
                out[key] = _condense_properties(value, here, groups, walk)
            else:
                out[key] = walk(value, here)
        return out if any(out[k] is not node[k] for k in node) else node

    return walk(doc, ()), groups


def _condensable(
    schema: dict[str, Any], props: Any, path: tuple[Any, ...], refs: list[str]
) -> bool:
    if not isinstance(props, dict) or len(props) <= _CONDENSE_OVER:
        return False
    if any(k in schema for k in ("allOf", "anyOf", "oneOf", "not", "discriminator")):
        return False
    pointer = "#/" + "/".join(str(p).replace("~", "~0").replace("/", "~1") for p in path) + "/"
    return not any(ref.startswith(pointer) for ref in refs)


def _condense_properties(
    props: dict[str, Any], path: tuple[Any, ...], groups: dict[tuple[Any, ...], _Group], walk: Any
) -> dict[str, Any]:
    kept: dict[str, Any] = {}
    group: _Group = {}
    by_shape: dict[str, str] = {}
    for name, prop in props.items():
        if isinstance(prop, dict) and "$ref" not in prop:
            shape_of = {k: v for k, v in prop.items() if k != "example"}
            try:
                shape = json.dumps(shape_of, sort_keys=True)
            except (TypeError, ValueError):
                shape = None
            if shape is not None and shape in by_shape:
                group[by_shape[shape]].append(name)
                continue
            if shape is not None:
                by_shape[shape] = name
        kept[name] = walk(prop, (*path, name))
        group[name] = [name]
    groups[path] = group
    return kept


def _expand(parts: list[Any], groups: dict[tuple[Any, ...], _Group]) -> list[list[Any]]:
    """The path of an error in the condensed document, for every property it stands for."""
    for end in range(len(parts) - 1, 0, -1):
        group = groups.get(tuple(parts[:end]))
        if group is not None and parts[end] in group:
            return [[*parts[:end], name, *parts[end + 1 :]] for name in group[parts[end]]]
    return [parts]


@cache
def _spec_validators() -> dict[str, Any]:
    """openapi-spec-validator's validators, changed in two ways for documents from endpoints.

    - ``$ref``s are resolved within the document only: by default the validator fetches
      ``http(s)://``, ``file://`` and any other URI it is given (with requests or urllib),
      which would let a swagger make amlc read local files or call other hosts.
    - The schema walker remembers visited schemas in lists and looks them up with ``in``, which
      is quadratic in the number of schemas (20,000 columns: minutes); a list with set-speed
      membership makes it linear.
    """
    from openapi_spec_validator import (
        OpenAPIV2SpecValidator,
        OpenAPIV30SpecValidator,
        OpenAPIV31SpecValidator,
    )

    class SeenIds(list[int]):
        def __init__(self) -> None:
            super().__init__()
            self._members: set[int] = set()

        def append(self, value: int) -> None:
            self._members.add(value)
            super().append(value)

        def __contains__(self, value: object) -> bool:
            return value in self._members

    def linear(schema_validator: Any) -> Any:
        def __init__(self: Any, registry: Any) -> None:
            schema_validator.__init__(self, registry)
            self.visited_schema_ids = SeenIds()
            self.meta_checked_schema_ids = SeenIds()

        return type(schema_validator.__name__, (schema_validator,), {"__init__": __init__})

    def refuse(uri: str) -> Any:
        raise SchemaError(f"$ref {uri[:80]!r}: only local references are followed")

    class EverySchemeRefused(dict[str, Any]):
        """Handlers for every URI scheme, each refusing: for a scheme it has no handler for,
        jsonschema-path falls back to requests/urllib."""

        def __contains__(self, scheme: object) -> bool:
            return True

        def __getitem__(self, scheme: str) -> Any:
            return refuse

    def local(spec_validator: Any) -> Any:
        keywords = dict(spec_validator.keyword_validators)
        keywords["schema"] = linear(keywords["schema"])
        attributes = {"resolver_handlers": EverySchemeRefused(), "keyword_validators": keywords}
        return type(spec_validator.__name__, (spec_validator,), attributes)

    return {
        "2": local(OpenAPIV2SpecValidator),
        "3.0": local(OpenAPIV30SpecValidator),
        "3.1": local(OpenAPIV31SpecValidator),
    }


def _scoring_findings(loc: Locator, schema: ScoringSchema) -> list[Finding]:
    findings: list[Finding] = []
    if loc.score_operation() is None:
        findings.append(Finding("error", "$.paths", "no POST operation for /score"))
    body, example = loc.input_schema()
    props = body.node.get("properties") if body is not None else None
    if body is None or not isinstance(props, dict) or not props:
        if body is None:
            findings.append(Finding("error", "$", "no request schema for /score"))
        elif not body.node.get("type"):
            findings.append(
                Finding(
                    "warning",
                    body.path,
                    'the request schema is empty; amlc assumes {"data": [rows]}',
                )
            )
        else:
            findings.append(
                Finding("error", body.path, "input convention not recognised: no properties")
            )
        return findings + _output_findings(loc, schema)
    if "data" not in props and "Inputs" not in props:
        keys = ", ".join(_short(repr(k), 60) for k in list(props)[:5])
        findings.append(
            Finding(
                "error",
                json_path(["properties"], body.path),
                f"input convention not recognised: neither 'data' nor 'Inputs' (found {keys})",
            )
        )
        return findings + _output_findings(loc, schema)

    rows = loc.rows_schema(body)
    if schema.row_kind == "any":
        findings.append(
            Finding("warning", rows.path, "rows are not described (no 'items'); anything goes")
        )
    elif schema.row_kind == "record":
        findings.extend(_column_findings(loc, rows, schema))
    elif schema.item_type in (None, "any"):
        findings.append(Finding("warning", rows.path, "the row items have no type"))

    findings.extend(_example_findings(schema, _example_rows(example, schema)))
    return findings + _output_findings(loc, schema)


def _column_findings(loc: Locator, rows: Located, schema: ScoringSchema) -> list[Finding]:
    findings = []
    items = loc.row_items(rows)
    if not schema.columns:
        findings.append(Finding("warning", items.path, "rows are objects without columns"))
        return findings
    props = loc.child(items, "properties")
    for col in schema.columns:
        col_path = json_path([col.name], props.path)
        if col.type == "any":
            findings.append(Finding("warning", col_path, "no type: any value is accepted"))
        if col.name in LABEL_NAMES:
            findings.append(
                Finding(
                    "warning",
                    col_path,
                    f"column '{col.name}' looks like the training label left in the input; "
                    "requests must still send it",
                )
            )
        prop = loc.child(props, col.name)
        if isinstance(prop.node, dict) and "example" in prop.node:
            problem = _value_problem(col.type, col.nullable, prop.node["example"])
            if problem is not None:
                level, message = problem
                findings.append(Finding(level, json_path(["example"], prop.path), message))
    required = items.node.get("required") if isinstance(items.node, dict) else None
    if isinstance(required, list):
        declared = set(schema.column_names)
        for index, name in enumerate(required):
            if not isinstance(name, str) or name not in declared:
                findings.append(
                    Finding(
                        "warning",
                        json_path(["required", index], items.path),
                        f"{_short(repr(name), 60)} is required but not declared",
                    )
                )
    return findings


def _value_problem(kind: str, nullable: bool, value: Any) -> tuple[str, str] | None:
    """A column's own example: fine (None), one the endpoint would convert (a warning), or
    one it cannot (an error)."""
    if value_validator(kind, nullable=nullable).isinstance_python(value):
        return None
    message = f"expected {column_type(kind).expected}, got {show_value(value)}"
    if value_validator(kind, nullable=nullable, text=True).isinstance_python(value):
        return "warning", f"example needs coercion: {message}"
    return "error", f"example does not match its type: {message}"


def _example_rows(example: Located | None, schema: ScoringSchema) -> list[Located]:
    """The rows of the request example, each with its path."""
    if example is None or not isinstance(example.node, dict):
        return []
    if str(schema.convention) == "inputs":
        inputs = example.node.get("Inputs")
        rows = inputs.get("data") if isinstance(inputs, dict) else None
        base = json_path(["Inputs", "data"], example.path)
    else:
        rows = example.node.get("data")
        base = json_path(["data"], example.path)
    if not isinstance(rows, list):
        return []
    return [Located(row, json_path([index], base)) for index, row in enumerate(rows)]


def _example_findings(schema: ScoringSchema, rows: list[Located]) -> list[Finding]:
    """Each example row checked as rows are: a value the endpoint would convert (``"True"`` for
    a boolean) is a warning, one it cannot is an error; a missing or undeclared column in an
    example is a warning."""
    findings = []
    validator = schema.row_validator()
    for row, row_path in rows:
        _, strict = validator.validate([row])
        if not strict:
            continue
        _, lenient = validator.validate([row], text=True)
        unconvertible = {(p.column, p.message) for p in lenient}
        for problem in strict:
            where = json_path([problem.column], row_path) if problem.column else row_path
            message = problem.message
            if message == "missing column":
                findings.append(
                    Finding("warning", where, "the example has no value for this column")
                )
            elif message.startswith("unknown column"):
                findings.append(
                    Finding("warning", where, "the example has a column the schema lacks")
                )
            elif (problem.column, message) in unconvertible:
                findings.append(
                    Finding("error", where, f"example does not match its type: {message}")
                )
            else:
                findings.append(Finding("warning", where, f"example needs coercion: {message}"))
    return findings


def _output_findings(loc: Locator, schema: ScoringSchema) -> list[Finding]:
    out = loc.output_schema()
    if out is None or schema.output_kind == "unknown":
        op = loc.score_operation()
        where = out.path if out is not None else json_path(["responses"], op.path) if op else "$"
        return [Finding("warning", where, "the response is not described")]
    findings = []
    example = out.node.get("example") if isinstance(out.node, dict) else None
    items: Any = None
    items_path = json_path(["example"], out.path)
    if schema.output_kind in ("Results[]", "result[]") and isinstance(example, dict):
        key = schema.output_kind[:-2]
        items, items_path = example.get(key), json_path(["example", key], out.path)
    elif schema.output_kind == "array":
        items = example
    kind = schema.output_item_type
    if isinstance(items, list) and kind:
        check = output_validator(kind)
        for index, value in enumerate(items):
            if not check.isinstance_python(value):
                findings.append(
                    Finding(
                        "warning",
                        json_path([index], items_path),
                        f"output example {show_value(value)} is not {kind}; "
                        "expect either from the endpoint",
                    )
                )
    return findings


def _short(message: str, limit: int = 300) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"
