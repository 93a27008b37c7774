"""An endpoint's swagger as an artifact: fetch it, summarise it, validate it for scoring.

The swagger is read by :func:`aml_client.schema.load_schema`; this module only adds what a
person looking at an API needs on top of that: where the document comes from (a file or the
endpoint, with its credential), a summary of routes, auth, convention, columns and output, and a
validation that combines the OpenAPI structure (openapi-spec-validator) with what matters for
scoring (a recognised convention, typed columns, examples that match their types). Each finding
names its place in the document as a JSON path, so a sloppy swagger can be fixed at the source.
"""

from __future__ import annotations

import json
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from aml_client.errors import (
    AuthenticationError,
    NotFoundError,
    SchemaError,
    ValidationError,
)

if TYPE_CHECKING:
    from aml_client.config import Target
    from aml_client.schema import ScoringSchema

__all__ = [
    "FetchedSwagger",
    "Finding",
    "ValidationReport",
    "describe_version",
    "fetch_swagger",
    "json_path",
    "load_document",
    "read_document",
    "request_shape",
    "response_shape",
    "summarize",
    "swagger_uri_for",
    "validate_document",
]

#: Column names that usually hold the training label; sending them is a sign of a sloppy export.
LABEL_NAMES = frozenset({"y", "label", "target", "class", "Churn"})

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


# --------------------------------------------------------------------------- reading and fetching


@dataclass
class FetchedSwagger:
    """A swagger as the endpoint served it: the exact text (to save) and the parsed document."""

    url: str
    text: str
    document: dict[str, Any]


def swagger_uri_for(scoring_uri: str) -> str:
    """Azure serves the swagger beside the scoring route: ``…/score`` -> ``…/swagger.json``."""
    parts = urlsplit(scoring_uri)
    path = parts.path.rstrip("/")
    if path.endswith("/score"):
        path = path[: -len("/score")]
    return urlunsplit((parts.scheme, parts.netloc, f"{path}/swagger.json", "", ""))


def read_document(source: str | Path, *, text: str | None = None) -> dict[str, Any]:
    """A swagger file (or text) as a dict; tolerates a BOM and CRLF, and names the line and
    column of bad JSON."""
    origin = str(source)
    if text is None:
        try:
            text = Path(source).read_bytes().decode("utf-8-sig")
        except FileNotFoundError:
            raise SchemaError(f"{origin}: no such file") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise SchemaError(f"{origin}: cannot read: {exc}") from None
    try:
        doc = json.loads(text.lstrip("\ufeff"))
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{origin}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    if not isinstance(doc, dict):
        raise SchemaError(f"{origin}: expected a JSON object, got {type(doc).__name__}")
    return doc


def fetch_swagger(
    target: Target, *, openapi: str | None = None, timeout_s: float = 30.0
) -> FetchedSwagger:
    """GET the endpoint's swagger (``?version=3`` etc. when ``openapi`` is given).

    Through the HTTP layer: the credential goes only to the scoring URI's origin (a swagger URI
    configured on another host or port gets none), redirects are followed within one origin
    only, and the body is read as JSON only, size-capped.
    """
    from aml_client.http.session import Session
    from aml_client.schema import MAX_DOCUMENT_BYTES, parse_document

    url = target.swagger_uri or swagger_uri_for(target.scoring_uri)
    params = {"version": openapi} if openapi else None
    session = Session(
        target.scoring_uri,
        target.credential,
        timeout_s=timeout_s,
        verify=target.verify,
        headers={"Accept": "application/json"},
    )
    try:
        reply = session.request("GET", url, params=params, max_bytes=MAX_DOCUMENT_BYTES)
    except NotFoundError as exc:
        hint = (
            f"version {openapi} is not offered"
            if openapi
            else "the scoring script may lack inference-schema decorators"
        )
        raise NotFoundError(
            f"no swagger at {url} (HTTP 404: {hint})", status_code=404, request_id=exc.request_id
        ) from None
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"{url} refused the credential (HTTP {exc.status_code})",
            status_code=exc.status_code,
            request_id=exc.request_id,
        ) from None
    finally:
        session.close()
    text = reply.content.decode("utf-8", "replace")
    return FetchedSwagger(
        url=reply.url, text=text, document=parse_document(reply.content, source=reply.url)
    )


def load_document(
    file: str | Path | None = None, *, endpoint: str | None = None, openapi: str | None = None
) -> tuple[dict[str, Any], str]:
    """The swagger document and a label for messages: from ``file`` when given, else fetched
    from the endpoint that :func:`aml_client.config.resolve_target` picks."""
    if file is not None:
        return read_document(file), str(file)
    from aml_client.config import resolve_target

    fetched = fetch_swagger(resolve_target(endpoint), openapi=openapi)
    return fetched.document, fetched.url


# --------------------------------------------------------------------------- summary


def describe_version(doc: dict[str, Any]) -> str:
    """``Swagger 2.0`` / ``OpenAPI 3.1.0`` — the dialect a reader needs to know."""
    if doc.get("swagger"):
        return f"Swagger {doc['swagger']}"
    if doc.get("openapi"):
        return f"OpenAPI {doc['openapi']}"
    return "unknown"


def summarize(schema: ScoringSchema) -> dict[str, Any]:
    """What a person needs to call the endpoint, as plain data (the CLI renders it)."""
    doc = schema.raw
    return {
        "title": schema.title,
        "description": (doc.get("info") or {}).get("description"),
        "version": describe_version(doc),
        "routes": _routes(doc),
        "auth": _auth(doc),
        "convention": str(schema.convention),
        "request_shape": request_shape(schema),
        "row_kind": schema.row_kind,
        "item_type": schema.item_type,
        "columns": [
            {
                "name": c.name,
                "type": c.type,
                "format": c.format,
                "required": c.required,
                "example": c.example,
            }
            for c in schema.columns
        ],
        "global_parameters": schema.global_parameters,
        "method_field": schema.method_field,
        "output": {
            "kind": schema.output_kind,
            "item_type": schema.output_item_type,
            "shape": response_shape(schema),
        },
    }


def request_shape(schema: ScoringSchema) -> str:
    """The request body's outline, e.g. ``{"Inputs": {"data": [row, …]}, …}``."""
    row = {"record": "row", "scalar": schema.item_type or "value", "array": "[values]"}.get(
        schema.row_kind, "row"
    )
    if str(schema.convention) == "inputs":
        gp = schema.global_parameters
        gp_text = json.dumps(gp) if gp is not None else "{…}"
        return f'{{"Inputs": {{"data": [{row}, …]}}, "GlobalParameters": {gp_text}}}'
    if schema.method_field:
        return f'{{"data": [{row}, …], "method": "predict"}}'
    return f'{{"data": [{row}, …]}}'


def response_shape(schema: ScoringSchema) -> str:
    item = schema.output_item_type or "value"
    if schema.output_kind in ("Results[]", "result[]"):
        return f'{{"{schema.output_kind[:-2]}": [{item}, …]}}'
    if schema.output_kind == "array":
        return f"[{item}, …]"
    if schema.output_kind == "object":
        return "{…}"
    return "not described"


def _routes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    top_security = doc.get("security")
    routes = []
    for path, item in (doc.get("paths") or {}).items():
        if not isinstance(item, dict):
            continue
        methods, secured, summary = [], False, None
        for method in ("get", "put", "post", "delete", "options", "head", "patch"):
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            methods.append(method.upper())
            security = op.get("security", top_security)
            secured = secured or bool(security and any(security))
            summary = summary or op.get("summary") or op.get("description")
        routes.append({"path": path, "methods": methods, "auth": secured, "summary": summary})
    return routes


def _auth(doc: dict[str, Any]) -> dict[str, Any]:
    defs = doc.get("securityDefinitions") or (doc.get("components") or {}).get("securitySchemes")
    schemes = []
    bearer = False
    for name, scheme in (defs or {}).items():
        if not isinstance(scheme, dict):
            continue
        kind = scheme.get("type")
        entry = {"name": name, "type": kind}
        if kind == "apiKey":
            entry.update({"in": scheme.get("in"), "header": scheme.get("name")})
            bearer = bearer or (
                scheme.get("in") == "header"
                and str(scheme.get("name", "")).lower() == "authorization"
            )
        elif kind == "http":
            entry["scheme"] = scheme.get("scheme")
            bearer = bearer or str(scheme.get("scheme", "")).lower() == "bearer"
        schemes.append(entry)
    required = any(route["auth"] for route in _routes(doc))
    return {"bearer": bearer, "required": required, "schemes": schemes}


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
    """
    report = ValidationReport(source=source, version=describe_version(doc))
    findings = report.findings
    version = str(doc.get("swagger") or doc.get("openapi") or "")
    if not version:
        findings.append(Finding("error", "$", "no 'swagger' or 'openapi' field"))
        return report
    findings.extend(_structural(doc, version))

    from aml_client.schema import load_schema

    try:
        schema = load_schema(doc)
    except SchemaError as exc:
        findings.append(Finding("error", "$", str(exc)))
        return report
    findings.extend(_scoring_findings(doc, schema, version))
    return report


def _structural(doc: dict[str, Any], version: str) -> list[Finding]:
    from openapi_spec_validator import (
        OpenAPIV2SpecValidator,
        OpenAPIV30SpecValidator,
        OpenAPIV31SpecValidator,
    )

    if version.startswith("2"):
        validator_cls: Any = OpenAPIV2SpecValidator
    elif version.startswith("3.0"):
        validator_cls = OpenAPIV30SpecValidator
    elif version.startswith("3.1"):
        validator_cls = OpenAPIV31SpecValidator
    else:
        return [Finding("error", "$.openapi", f"unsupported version {version!r}")]
    findings = []
    try:
        for error in validator_cls(doc).iter_errors():
            where = json_path(list(getattr(error, "absolute_path", []) or []))
            findings.append(Finding("error", where, _short(getattr(error, "message", str(error)))))
    except Exception as exc:  # unresolvable $ref and the like abort the validator itself
        findings.append(Finding("error", "$", f"cannot validate the structure: {_short(str(exc))}"))
    return findings


def _scoring_findings(doc: dict[str, Any], schema: ScoringSchema, version: str) -> list[Finding]:
    findings: list[Finding] = []
    loc = _Locator(doc, version)
    op_path = loc.score_operation()
    if op_path is None:
        findings.append(Finding("error", "$.paths", "no POST operation for /score"))
    body, body_path, example, example_path = loc.input_schema()
    props = body.get("properties") if isinstance(body, dict) else None
    if not isinstance(props, dict) or not props:
        if body_path is not None and not body.get("type"):
            findings.append(
                Finding(
                    "warning",
                    body_path,
                    'the request schema is empty; amlc assumes {"data": [rows]}',
                )
            )
        elif body_path is None:
            findings.append(Finding("error", "$", "no request schema for /score"))
        else:
            findings.append(
                Finding("error", body_path, "input convention not recognised: no properties")
            )
        return findings + _output_findings(loc, schema)
    if "data" not in props and "Inputs" not in props:
        keys = ", ".join(repr(k) for k in list(props)[:5])
        findings.append(
            Finding(
                "error",
                f"{body_path}.properties",
                f"input convention not recognised: neither 'data' nor 'Inputs' (found {keys})",
            )
        )
        return findings + _output_findings(loc, schema)

    rows_node, rows_path = loc.rows_schema(body, body_path)
    if schema.row_kind == "any":
        findings.append(
            Finding("warning", rows_path, "rows are not described (no 'items'); anything goes")
        )
    elif schema.row_kind == "record":
        findings.extend(_column_findings(loc, rows_node, rows_path, schema))
    elif schema.item_type in (None, "any"):
        findings.append(Finding("warning", rows_path, "the row items have no type"))

    example_rows, ex_rows_path = _example_rows(example, example_path, schema)
    findings.extend(_example_findings(schema, example_rows, ex_rows_path))
    return findings + _output_findings(loc, schema)


def _column_findings(
    loc: _Locator, rows_node: dict[str, Any], rows_path: str, schema: ScoringSchema
) -> list[Finding]:
    findings = []
    items, items_path = loc.follow(rows_node.get("items"), f"{rows_path}.items")
    props = items.get("properties") if isinstance(items, dict) else None
    if not schema.columns:
        findings.append(Finding("warning", items_path, "rows are objects without columns"))
        return findings
    props_path = f"{items_path}.properties"
    for col in schema.columns:
        col_path = json_path([col.name], props_path)
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
        prop = (props or {}).get(col.name)
        if isinstance(prop, dict) and "example" in prop:
            problems = _value_problems(schema, {col.name: prop["example"]}, only=col.name)
            findings.extend(
                Finding(level, f"{col_path}.example", message) for level, _, message in problems
            )
    required = items.get("required") if isinstance(items, dict) else None
    if isinstance(required, list):
        for index, name in enumerate(required):
            if name not in (props or {}):
                findings.append(
                    Finding(
                        "warning",
                        f"{items_path}.required[{index}]",
                        f"'{name}' is required but not declared",
                    )
                )
    return findings


def _example_rows(
    example: Any, example_path: str | None, schema: ScoringSchema
) -> tuple[list[Any], str | None]:
    if not isinstance(example, dict) or example_path is None:
        return [], None
    if str(schema.convention) == "inputs":
        inputs = example.get("Inputs")
        rows = inputs.get("data") if isinstance(inputs, dict) else None
        return (rows, f"{example_path}.Inputs.data") if isinstance(rows, list) else ([], None)
    rows = example.get("data")
    return (rows, f"{example_path}.data") if isinstance(rows, list) else ([], None)


def _example_findings(
    schema: ScoringSchema, rows: list[Any], rows_path: str | None
) -> list[Finding]:
    findings = []
    for index, row in enumerate(rows):
        row_path = f"{rows_path}[{index}]"
        for level, column, message in _value_problems(schema, row):
            where = json_path([column], row_path) if column else row_path
            findings.append(Finding(level, where, message))
    return findings


def _value_problems(
    schema: ScoringSchema, row: Any, *, only: str | None = None
) -> list[tuple[str, str | None, str]]:
    """Check one example row with the schema's own row validation: a value the endpoint would
    coerce (``"True"`` for a boolean) is a warning, one it cannot is an error; a missing or
    undeclared column in an example is a warning."""
    strict = _problems(schema, row, coerce=False)
    if not strict:
        return []
    lenient = {(p.column, p.message) for p in _problems(schema, row, coerce=True)}
    out = []
    for problem in strict:
        if only is not None and problem.column != only:
            continue
        message = problem.message
        if message.startswith("missing"):
            out.append(("warning", problem.column, "the example has no value for this column"))
        elif message.startswith("unknown column"):
            out.append(("warning", problem.column, "the example has a column the schema lacks"))
        elif (problem.column, message) in lenient:
            out.append(("error", problem.column, f"example does not match its type: {message}"))
        else:
            out.append(("warning", problem.column, f"example needs coercion: {message}"))
    return out


def _problems(schema: ScoringSchema, row: Any, *, coerce: bool) -> list[Any]:
    try:
        schema.validate_rows([row], coerce=coerce)
    except ValidationError as exc:
        return exc.problems
    return []


def _output_findings(loc: _Locator, schema: ScoringSchema) -> list[Finding]:
    out_node, out_path = loc.output_schema()
    if out_node is None or out_path is None or schema.output_kind == "unknown":
        return [Finding("warning", out_path or "$", "the response is not described")]
    findings = []
    example = out_node.get("example") if isinstance(out_node, dict) else None
    items: Any = None
    items_path = f"{out_path}.example"
    if schema.output_kind in ("Results[]", "result[]") and isinstance(example, dict):
        key = schema.output_kind[:-2]
        items, items_path = example.get(key), f"{out_path}.example.{key}"
    elif schema.output_kind == "array":
        items = example
    kind = schema.output_item_type
    if isinstance(items, list) and kind:
        for index, value in enumerate(items):
            if not _fits_output(value, kind):
                findings.append(
                    Finding(
                        "warning",
                        f"{items_path}[{index}]",
                        f"output example {json.dumps(value)} is not {kind}; "
                        "expect either from the endpoint",
                    )
                )
    return findings


def _fits_output(value: Any, kind: str) -> bool:
    if kind == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if kind == "number":
        return isinstance(value, int | float) and not isinstance(value, bool)
    if kind in ("string", "datetime"):
        return isinstance(value, str)
    if kind == "boolean":
        return isinstance(value, bool)
    if kind == "array":
        return isinstance(value, list)
    return True


class _Locator:
    """Finds the scoring parts of the raw document *with their JSON paths*, following local
    ``$ref``s, so findings point at the place to fix (the loader itself does not keep paths)."""

    def __init__(self, doc: dict[str, Any], version: str):
        self.doc = doc
        self.v2 = version.startswith("2")

    def follow(self, node: Any, path: str) -> tuple[Any, str]:
        seen: set[str] = set()
        while isinstance(node, dict) and isinstance(node.get("$ref"), str):
            ref = node["$ref"]
            if not ref.startswith("#/") or ref in seen:
                break
            seen.add(ref)
            parts = [p.replace("~1", "/").replace("~0", "~") for p in ref[2:].split("/")]
            target: Any = self.doc
            for part in parts:
                target = target.get(part) if isinstance(target, dict) else None
            if target is None:
                break
            node, path = target, json_path(parts)
        return node, path

    def score_operation(self) -> str | None:
        paths = self.doc.get("paths") or {}
        candidates = ["/score", "score"] + [p for p in paths if "score" in str(p)]
        for name in candidates:
            item = paths.get(name)
            if isinstance(item, dict) and isinstance(item.get("post"), dict):
                return json_path(["paths", name, "post"])
        return None

    def _definitions_path(self) -> list[str]:
        return ["definitions"] if self.v2 else ["components", "schemas"]

    def _definition(self, name: str) -> tuple[Any, str | None]:
        node: Any = self.doc
        parts = [*self._definitions_path(), name]
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        return (node, json_path(parts)) if isinstance(node, dict) else (None, None)

    def input_schema(self) -> tuple[Any, str | None, Any, str | None]:
        """(schema, path, example, example path) of the request body."""
        op_path = self.score_operation()
        op = self._at(op_path) if op_path else None
        schema: Any = None
        path: str | None = None
        example: Any = None
        example_path: str | None = None
        if isinstance(op, dict):
            if self.v2:
                for index, param in enumerate(op.get("parameters") or []):
                    param, param_path = self.follow(param, f"{op_path}.parameters[{index}]")
                    if isinstance(param, dict) and param.get("in") == "body":
                        schema, path = param.get("schema"), f"{param_path}.schema"
                        break
            else:
                body, body_path = self.follow(op.get("requestBody") or {}, f"{op_path}.requestBody")
                media = (body.get("content") or {}).get("application/json")
                if isinstance(media, dict):
                    media_path = json_path(["content", "application/json"], body_path)
                    schema, path = media.get("schema"), f"{media_path}.schema"
                    if "example" in media:
                        example, example_path = media["example"], f"{media_path}.example"
        if schema is None:
            schema, path = self._definition("ServiceInput")
        if schema is None or path is None:
            return {}, None, None, None
        schema, path = self.follow(schema, path)
        if not isinstance(schema, dict):
            return {}, path, None, None
        if example_path is None and "example" in schema:
            example, example_path = schema["example"], f"{path}.example"
        return schema, path, example, example_path

    def rows_schema(
        self, body: dict[str, Any], body_path: str | None
    ) -> tuple[dict[str, Any], str]:
        props = body.get("properties") or {}
        base = f"{body_path}.properties"
        if "Inputs" in props:
            inputs, inputs_path = self.follow(props["Inputs"], f"{base}.Inputs")
            inner = (inputs.get("properties") or {}) if isinstance(inputs, dict) else {}
            node, path = self.follow(inner.get("data") or {}, f"{inputs_path}.properties.data")
        else:
            node, path = self.follow(props.get("data") or {}, f"{base}.data")
        return (node if isinstance(node, dict) else {}), path

    def output_schema(self) -> tuple[Any, str | None]:
        op_path = self.score_operation()
        op = self._at(op_path) if op_path else None
        schema: Any = None
        path: str | None = None
        if isinstance(op, dict):
            responses = op.get("responses") or {}
            key = "200" if "200" in responses else 200 if 200 in responses else None
            if key is not None:
                ok, ok_path = self.follow(responses[key], f"{op_path}.responses['200']")
                if self.v2 and isinstance(ok, dict):
                    schema, path = ok.get("schema"), f"{ok_path}.schema"
                elif isinstance(ok, dict):
                    media = (ok.get("content") or {}).get("application/json")
                    if isinstance(media, dict):
                        media_path = json_path(["content", "application/json"], ok_path)
                        schema, path = media.get("schema"), f"{media_path}.schema"
        if schema is None:
            schema, path = self._definition("ServiceOutput")
        if schema is None or path is None:
            return None, f"{op_path}.responses" if op_path else None
        return self.follow(schema, path)

    def _at(self, path: str) -> Any:
        # Only paths built by json_path from ["paths", name, "post"] reach here.
        paths = self.doc.get("paths") or {}
        for name, item in paths.items():
            if json_path(["paths", name, "post"]) == path and isinstance(item, dict):
                return item.get("post")
        return None


def json_path(parts: list[Any], base: str = "$") -> str:
    """``$.definitions.ServiceInput.properties['emp.var.rate']`` from a list of keys/indexes."""
    out = base
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _IDENT.match(str(part)):
            out += f".{part}"
        else:
            quoted = str(part).replace("\\", "\\\\").replace("'", "\\'")
            out += f"['{quoted}']"
    return out


def _short(message: str, limit: int = 300) -> str:
    message = " ".join(message.split())
    return message if len(message) <= limit else message[: limit - 1] + "…"
