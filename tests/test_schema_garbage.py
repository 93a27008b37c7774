"""Garbage swaggers: corpus files with fields of the wrong type, deep nesting, huge numbers and
bad strings put anywhere. Everything that reads a swagger either copes (a lenient reading) or
raises SchemaError; never AttributeError, TypeError, RecursionError or a crash in a library.

The normal suite runs a few hundred examples; ``HYPOTHESIS_PROFILE=thorough`` runs thousands.
"""

from __future__ import annotations

import copy
import json
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import event, given
from hypothesis import strategies as st

from aml_client.errors import SchemaError
from aml_client.schema import load_schema
from aml_client.swagger.codegen import generate_client
from aml_client.swagger.lint import validate_document
from aml_client.swagger.summary import summarize

CORPUS = Path(__file__).parent / "fixtures" / "corpus" / "swagger"
FILES = sorted(CORPUS.glob("*.json"))

#: Keys amlc reads; a mutation lands on one of them most of the time.
READ_KEYS = {
    "swagger",
    "openapi",
    "info",
    "title",
    "description",
    "paths",
    "post",
    "parameters",
    "in",
    "schema",
    "requestBody",
    "content",
    "application/json",
    "example",
    "examples",
    "value",
    "responses",
    "200",
    "definitions",
    "components",
    "schemas",
    "ServiceInput",
    "ServiceOutput",
    "properties",
    "data",
    "Inputs",
    "GlobalParameters",
    "method",
    "items",
    "type",
    "format",
    "required",
    "nullable",
    "x-nullable",
    "$ref",
    "Results",
    "result",
    "security",
    "securityDefinitions",
    "securitySchemes",
    "name",
    "scheme",
    "summary",
}


@cache
def _corpus(name: str) -> dict[str, Any]:
    return json.loads((CORPUS / name).read_text(encoding="utf-8-sig"))


def _paths(node: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in ``node`` a value can be replaced (dict keys and list indexes)."""
    out = []
    if isinstance(node, dict):
        for key, value in node.items():
            out.append((*prefix, key))
            out.extend(_paths(value, (*prefix, key)))
    elif isinstance(node, list):
        for index, value in enumerate(node):
            out.append((*prefix, index))
            out.extend(_paths(value, (*prefix, index)))
    return out


def _nested(depth: int) -> Any:
    value: Any = "leaf"
    for level in range(depth):
        value = [value] if level % 2 else {"k": value}
    return value


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=10**60, max_value=10**400),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=20),
    st.sampled_from(["\ud800", "a\udfffb", "#/definitions/ServiceInput", "#/nowhere", "#", "#/"]),
    st.sampled_from(["http://127.0.0.1:9/x.json#/a", "file:///etc/passwd", "/etc/passwd"]),
)
_garbage = st.one_of(
    _scalars,
    st.lists(_scalars, max_size=4),
    st.dictionaries(st.text(max_size=8), _scalars, max_size=4),
    st.builds(lambda ref: {"$ref": ref}, st.sampled_from(["#/definitions", "#/paths", "#/"])),
    st.builds(_nested, st.sampled_from([10, 70, 150])),
)


@st.composite
def garbage_swaggers(draw: st.DrawFn) -> dict[str, Any]:
    doc = copy.deepcopy(_corpus(draw(st.sampled_from([p.name for p in FILES]))))
    places = _paths(doc)
    read = [p for p in places if p[-1] in READ_KEYS]
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        if not places:
            break
        path = draw(st.sampled_from(read if read and draw(st.booleans()) else places))
        parent: Any = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            parent[path[-1]] = draw(_garbage)
        except (KeyError, IndexError, TypeError):
            continue  # an earlier mutation replaced a parent on this path
    return doc


def _either(action: Any) -> Any:
    try:
        return action()
    except SchemaError as exc:
        assert str(exc) and "\n" not in str(exc).strip()
        return None


@pytest.mark.slow  # tens of seconds on a busy 2-core machine
@given(garbage_swaggers())
def test_garbage_swaggers_are_read_or_refused_cleanly(doc: dict[str, Any]) -> None:
    schema = _either(lambda: load_schema(doc))
    report = validate_document(doc, source="garbage.json")  # never raises: findings
    json.dumps(report.to_dict())
    event("refused" if schema is None else "read")
    if schema is None:
        assert not report.ok, "a swagger amlc cannot read is not valid either"
        return
    json.dumps(summarize(schema), default=str)
    payload = _either(lambda: schema.example_payload(2))
    if payload is not None:
        json.dumps(payload, allow_nan=False)
    code = _either(lambda: generate_client(schema, source="garbage.json"))
    if code is not None:
        compile(code, "generated.py", "exec")


@given(st.sampled_from([p.name for p in FILES]), st.sampled_from(["json", "text"]))
def test_unmutated_corpus_reads_the_same_from_text(name: str, form: str) -> None:
    doc = _corpus(name)
    source = doc if form == "json" else json.dumps(doc)
    assert load_schema(source).column_names == load_schema(CORPUS / name).column_names


def _set(doc: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    node: Any = doc
    keys = path.split("/")
    for key in keys[:-1]:
        node = node[int(key)] if isinstance(node, list) else node[key]
    node[keys[-1]] = value
    return doc


_ROW = "definitions/ServiceInput/properties/Inputs/properties/data/items"
NAMED_GARBAGE = {
    "paths a list": ("paths", [1, 2]),
    "properties a string": (f"{_ROW}/properties", "abc"),
    "required a number": (f"{_ROW}/required", 5),
    "info a string": ("info", "bank"),
    "title a number": ("info/title", 42),
    "type a list of numbers": (f"{_ROW}/properties/age/type", [1, 2]),
    "example rows an object": ("definitions/ServiceInput/example", {"Inputs": {"data": 5}}),
    "deeply nested example": ("definitions/ServiceInput/example", _nested(150)),
    "huge number": (f"{_ROW}/properties/age/example", 10**80),
    "lone surrogate": ("info/title", "\udc00"),
    "ref to nowhere": (f"{_ROW}/properties/age", {"$ref": "#/definitions/Nope"}),
    "ref loop": ("definitions/ServiceInput", {"$ref": "#/definitions/ServiceInput"}),
}


@pytest.mark.parametrize("case", sorted(NAMED_GARBAGE))
def test_named_garbage(case: str) -> None:
    path, value = NAMED_GARBAGE[case]
    doc = _set(copy.deepcopy(_corpus("004-abhijit-kalita.json")), path, value)
    schema = _either(lambda: load_schema(doc))
    report = validate_document(doc)
    if schema is not None:
        json.dumps(summarize(schema), default=str)
        compile(generate_client(schema), "generated.py", "exec")
        json.dumps(schema.example_payload(1), allow_nan=False)
    else:
        assert not report.ok
