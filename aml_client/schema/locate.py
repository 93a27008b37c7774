"""Finding the scoring parts of a swagger, each with the JSON path of where it is written.

The loader needs the nodes (request schema, rows, output); ``amlc swagger validate`` needs the
same nodes *and* where they are, so a finding points at the place to fix; the Swagger UI needs
the scoring route. One :class:`Locator` serves all three, so they cannot disagree.

``$ref`` resolution is kept small and local on purpose: only ``#/…`` JSON pointers inside the
same document are followed (a swagger from an endpoint must not make amlc open files or URLs),
and the path returned is the target's, which is where a fix belongs. ``referencing`` and
``jsonschema-path`` resolve remote references by default and do not report the path they
landed on, which is the one thing needed here.
"""

from __future__ import annotations

import re
from typing import Any, NamedTuple
from urllib.parse import unquote

from aml_client.errors import SchemaError

__all__ = ["Located", "Locator", "json_path", "score_route"]

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
#: Keys whose value maps names to things (``properties``: column names to schemas): the map
#: is never a reference itself, so a column called ``$ref`` stays a column.
_NAME_MAPS = frozenset(
    {"properties", "definitions", "schemas", "paths", "responses", "content", "examples"}
)
#: Longest chain of ``$ref`` to ``$ref`` followed (real swaggers use one or two).
_MAX_REF_HOPS = 32


class Located(NamedTuple):
    """A node of the document and its JSON path (``$`` is the document itself)."""

    node: Any
    path: str


def json_path(parts: list[Any] | tuple[Any, ...], base: str = "$") -> str:
    """``$.definitions.ServiceInput.properties['emp.var.rate']`` from a list of keys/indexes."""
    out = base
    for part in parts:
        if isinstance(part, int) and not isinstance(part, bool):
            out += f"[{part}]"
        elif _IDENT.match(str(part)):
            out += f".{part}"
        else:
            quoted = str(part).replace("\\", "\\\\").replace("'", "\\'")
            out += f"['{quoted}']"
    return out


def _dict(value: Any) -> dict[str, Any]:
    """``value`` if it is an object, else an empty one: sloppy swaggers put lists, strings
    and nulls where objects belong, and reading them leniently beats failing."""
    return value if isinstance(value, dict) else {}


def score_route(doc: dict[str, Any]) -> str | None:
    """The key under ``paths`` of the scoring operation (a POST): ``/score`` when declared,
    else the first route whose name holds ``score``."""
    paths = _dict(doc.get("paths"))
    candidates = ["/score", "score", *(p for p in paths if isinstance(p, str) and "score" in p)]
    for name in candidates:
        item = paths.get(name)
        if isinstance(item, dict) and isinstance(item.get("post"), dict):
            return name
    return None


class Locator:
    """Walks one document: follows local ``$ref``s and keeps the JSON path of every node."""

    def __init__(self, doc: dict[str, Any]):
        self.doc = doc
        version = doc.get("swagger") or doc.get("openapi") or ""
        self.version = version if isinstance(version, str) else str(version)
        self.v2 = self.version.startswith("2")

    # -- references ------------------------------------------------------------------------

    def follow(self, node: Any, path: str) -> Located:
        """``node`` with its ``$ref`` chain followed; keys written beside a ``$ref`` (an
        ``example``) are kept over the target's. Raises SchemaError for a reference that is
        not local, points at nothing, or loops."""
        seen: list[str] = []
        siblings: dict[str, Any] = {}
        while isinstance(node, dict) and "$ref" in node:
            ref = node["$ref"]
            if not isinstance(ref, str) or not ref.startswith("#"):
                raise SchemaError(
                    f"unsupported $ref {_show(ref)}: only local references are followed"
                )
            if ref in seen or len(seen) >= _MAX_REF_HOPS:
                raise SchemaError(f"circular $ref {_show(ref)}")
            seen.append(ref)
            siblings = {**{k: v for k, v in node.items() if k != "$ref"}, **siblings}
            parts = _pointer(ref)
            target: Any = self.doc
            for part in parts:
                if isinstance(target, dict) and part in target:
                    target = target[part]
                elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
                    target = target[int(part)]
                else:
                    raise SchemaError(f"$ref {_show(ref)} points at nothing")
            node, path = target, json_path(parts)
        if siblings and isinstance(node, dict):
            node = {**node, **siblings}
        return Located(node, path)

    def child(self, parent: Located, *keys: str | int) -> Located:
        """``parent[key1][key2]…`` with references followed at every step; a missing key
        gives ``None`` at the path it would have."""
        node, path = parent
        for key in keys:
            if isinstance(node, dict):
                node = node.get(key)
            elif isinstance(node, list) and isinstance(key, int) and 0 <= key < len(node):
                node = node[key]
            else:
                node = None
            path = json_path([key], path)
            if key not in _NAME_MAPS:
                node, path = self.follow(node, path)
        return Located(node, path)

    # -- the scoring operation -------------------------------------------------------------

    def score_operation(self) -> Located | None:
        route = score_route(self.doc)
        if route is None:
            return None
        return Located(self.doc["paths"][route]["post"], json_path(["paths", route, "post"]))

    def definition(self, name: str) -> Located | None:
        """``#/definitions/NAME`` (Swagger 2) or ``#/components/schemas/NAME`` (OpenAPI 3)."""
        parts = ["definitions", name] if self.v2 else ["components", "schemas", name]
        node: Any = self.doc
        for part in parts:
            node = node.get(part) if isinstance(node, dict) else None
        if not isinstance(node, dict):
            return None
        return self.follow(node, json_path(parts))

    def input_schema(self) -> tuple[Located | None, Located | None]:
        """The request body's schema and the example of a whole request body, if any.

        OpenAPI 3 media-level ``example``/``examples`` win over the schema's own ``example``.
        """
        schema: Located | None = None
        example: Located | None = None
        op = self.score_operation()
        if op is not None and self.v2:
            params = op.node.get("parameters")
            for index, raw in enumerate(params if isinstance(params, list) else []):
                param = self.follow(raw, json_path(["parameters", index], op.path))
                if isinstance(param.node, dict) and param.node.get("in") == "body":
                    found = self.child(param, "schema")
                    schema = found if found.node is not None else None
                    break
        elif op is not None:
            body = self.child(op, "requestBody")
            media = self.child(body, "content", "application/json")
            if isinstance(media.node, dict):
                found = self.child(media, "schema")
                schema = found if found.node is not None else None
                if media.node.get("example") is not None:
                    example = Located(media.node["example"], json_path(["example"], media.path))
                elif isinstance(media.node.get("examples"), dict):
                    example = self._first_example(self.child(media, "examples"))
        if schema is None:
            schema = self.definition("ServiceInput")
        if schema is None:
            return None, None
        if not isinstance(schema.node, dict):
            raise SchemaError(f"the request schema at {schema.path} is not an object")
        if (example is None or example.node is None) and "example" in schema.node:
            example = Located(schema.node["example"], json_path(["example"], schema.path))
        return schema, example

    def _first_example(self, examples: Located) -> Located | None:
        for name in _dict(examples.node):
            first = self.child(examples, name)
            if isinstance(first.node, dict) and "value" in first.node:
                return Located(first.node["value"], json_path(["value"], first.path))
            return None
        return None

    def rows_schema(self, body: Located) -> Located:
        """The schema of the row list: ``data``, or ``Inputs.data``."""
        props = self.child(body, "properties")
        if "Inputs" in _dict(props.node):
            return self.child(props, "Inputs", "properties", "data")
        return self.child(props, "data")

    def row_items(self, rows: Located) -> Located:
        """The schema of one row (the ``items`` of the row list)."""
        return self.child(rows, "items")

    def output_schema(self) -> Located | None:
        """The schema of a 200 response: ``responses['200']`` of the operation, else the
        ``ServiceOutput`` definition."""
        op = self.score_operation()
        if op is not None:
            responses = self.child(op, "responses")
            table: dict[Any, Any] = _dict(responses.node)  # JSON keys are str; dicts may say 200
            key: str | int | None = "200" if "200" in table else 200 if 200 in table else None
            if key is not None:
                ok = self.child(responses, key)
                if self.v2:
                    found = self.child(ok, "schema")
                else:
                    found = self.child(ok, "content", "application/json", "schema")
                if found.node is not None:
                    return found
        return self.definition("ServiceOutput")


def _pointer(ref: str) -> list[str]:
    """The keys of a local JSON pointer ``#/a/b~1c`` (URI-escaped, RFC 6901 ``~0``/``~1``)."""
    fragment = unquote(ref[1:])
    if not fragment:
        return []
    if not fragment.startswith("/"):
        raise SchemaError(f"unsupported $ref {_show(ref)}: not a JSON pointer")
    return [p.replace("~1", "/").replace("~0", "~") for p in fragment[1:].split("/")]


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
