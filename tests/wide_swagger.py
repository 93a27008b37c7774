"""A bank-marketing-like swagger widened to any number of columns, for scale tests and the
validation benchmark (``benchmarks/validation_speed.py``).

Shaped like the AutoML swaggers of the corpus: Swagger 2.0, ``$ref`` to ``ServiceInput`` and
``ServiceOutput``, typed columns with their own examples, and a whole-request example.
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
