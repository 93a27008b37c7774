"""What a person needs to call an endpoint, read from its swagger: routes, auth, convention,
columns and output, as plain data the CLI renders."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aml_client.schema import ScoringSchema

__all__ = ["describe_version", "request_shape", "response_shape", "summarize"]


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
        "description": _obj(doc.get("info")).get("description"),
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
    for path, item in _obj(doc.get("paths")).items():
        if not isinstance(item, dict):
            continue
        methods, secured, summary = [], False, None
        for method in ("get", "put", "post", "delete", "options", "head", "patch"):
            op = item.get(method)
            if not isinstance(op, dict):
                continue
            methods.append(method.upper())
            security = op.get("security", top_security)
            secured = secured or (isinstance(security, list) and any(security))
            text = op.get("summary") or op.get("description")
            summary = summary or (text if isinstance(text, str) else None)
        routes.append({"path": path, "methods": methods, "auth": secured, "summary": summary})
    return routes


def _auth(doc: dict[str, Any]) -> dict[str, Any]:
    defs = doc.get("securityDefinitions") or _obj(doc.get("components")).get("securitySchemes")
    schemes = []
    bearer = False
    for name, scheme in _obj(defs).items():
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


def _obj(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one (sloppy swaggers put anything anywhere)."""
    return value if isinstance(value, dict) else {}
