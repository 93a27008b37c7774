"""Scoring swaggers built in code, for tests that need a document the corpus does not have.

- :func:`wide_swagger`: a bank-marketing-like swagger widened to any number of columns, for scale
  tests and the validation benchmark (``benchmarks/validation_speed.py``). Shaped like the AutoML
  swaggers of the corpus: Swagger 2.0, ``$ref`` to ``ServiceInput`` and ``ServiceOutput``, typed
  columns with their own examples, and a whole-request example.
- :func:`minimal_swagger`: the smallest Swagger 2.0 scoring document around a given request (and
  response) schema, such as :data:`ROWS_OF_AGE` and :data:`RESULTS`, for lint and reader tests
  that break one thing at a time.
"""

from __future__ import annotations

from typing import Any

_KINDS: list[tuple[str, str | None, Any]] = [
    ("integer", "int64", 41),
    ("number", "double", -1.8),
    ("string", None, "blue-collar"),
    ("boolean", None, True),
    ("string", "date-time", "2011-01-01 00:00:00,000000"),
]


def wide_swagger(columns: int) -> dict[str, Any]:
    """A valid scoring swagger with ``columns`` columns named ``col.0``, ``col.1``, …"""
    props: dict[str, Any] = {}
    example: dict[str, Any] = {}
    for i in range(columns):
        kind, fmt, value = _KINDS[i % len(_KINDS)]
        prop: dict[str, Any] = {"type": kind, "example": value}
        if fmt:
            prop["format"] = fmt
        props[f"col.{i}"] = prop
        example[f"col.{i}"] = value
    return {
        "swagger": "2.0",
        "info": {"title": f"wide {columns}", "version": "1.0"},
        "paths": {
            "/score": {
                "post": {
                    "parameters": [
                        {
                            "name": "body",
                            "in": "body",
                            "schema": {"$ref": "#/definitions/ServiceInput"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "schema": {"$ref": "#/definitions/ServiceOutput"},
                        }
                    },
                }
            }
        },
        "definitions": {
            "ServiceInput": {
                "type": "object",
                "properties": {
                    "data": {
                        "type": "array",
                        "items": {"type": "object", "properties": props},
                    }
                },
                "example": {"data": [example]},
            },
            "ServiceOutput": {
                "type": "object",
                "properties": {"result": {"type": "array", "items": {"type": "integer"}}},
                "example": {"result": [1]},
            },
        },
    }


def minimal_swagger(
    input_schema: dict[str, Any], output_schema: dict[str, Any] | None = None, **extra: Any
) -> dict[str, Any]:
    """A Swagger 2.0 scoring document around the given request (and response) schema."""
    responses: dict[str, Any] = {"200": {"description": "ok"}}
    if output_schema is not None:
        responses["200"]["schema"] = output_schema
    return {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/score": {
                "post": {
                    "parameters": [{"name": "body", "in": "body", "schema": input_schema}],
                    "responses": responses,
                }
            }
        },
        **extra,
    }


#: A request schema of ``{"data": [{"age": integer}, …]}``.
ROWS_OF_AGE: dict[str, Any] = {
    "type": "object",
    "properties": {
        "data": {
            "type": "array",
            "items": {"type": "object", "properties": {"age": {"type": "integer"}}},
        }
    },
}
#: A response schema of ``{"Results": [string, …]}``.
RESULTS: dict[str, Any] = {
    "type": "object",
    "properties": {"Results": {"type": "array", "items": {"type": "string"}}},
}
