"""Swagger summaries (aml_client.swagger.summary): routes, auth, convention, columns, shapes."""

from __future__ import annotations

from pathlib import Path

from aml_client.schema import load_schema
from aml_client.swagger.fetch import read_document
from aml_client.swagger.summary import request_shape, summarize

CORPUS = Path(__file__).resolve().parent / "fixtures" / "corpus" / "swagger"
FILES = sorted(CORPUS.glob("*.json"))


def _doc(name: str) -> dict:
    return read_document(CORPUS / name)


def test_summary_of_an_inputs_swagger() -> None:
    summary = summarize(load_schema(_doc("005-Aduzona.json")))
    assert summary["version"] == "Swagger 2.0"
    assert summary["convention"] == "inputs"
    assert summary["request_shape"] == (
        '{"Inputs": {"data": [row, …]}, "GlobalParameters": {"method": "predict"}}'
    )
    routes = {r["path"]: r for r in summary["routes"]}
    assert routes["/score"]["methods"] == ["POST"] and routes["/score"]["auth"] is True
    assert routes["/"]["methods"] == ["GET"] and routes["/"]["auth"] is False
    assert summary["auth"] == {
        "bearer": True,
        "required": True,
        "schemes": [
            {"name": "Bearer", "type": "apiKey", "in": "header", "header": "Authorization"}
        ],
    }
    columns = {c["name"]: c for c in summary["columns"]}
    assert len(columns) == 20
    assert columns["emp.var.rate"]["type"] == "number"
    assert columns["age"] == {
        "name": "age",
        "type": "integer",
        "format": "int64",
        "required": True,
        "example": 0,  # the swagger's placeholder, shown as it is
    }
    assert summary["output"] == {
        "kind": "Results[]",
        "item_type": "string",
        "shape": '{"Results": [string, …]}',
    }


def test_summary_of_an_openapi_3_numpy_swagger() -> None:
    summary = summarize(load_schema(_doc("001-microsoft.json")))
    assert summary["version"] == "OpenAPI 3.0.3"
    assert summary["convention"] == "data"
    assert summary["row_kind"] == "scalar" and summary["item_type"] == "integer"
    assert summary["columns"] == []
    assert summary["output"]["shape"] == "[number, …]"
    assert "/swagger.json" in [r["path"] for r in summary["routes"]]


def test_summary_of_dates_and_booleans() -> None:
    bike = {c["name"]: c for c in summarize(load_schema(_doc("137-nbelmokhtar.json")))["columns"]}
    assert bike["date"]["type"] == "datetime" and bike["date"]["format"] == "date-time"
    telco = {c["name"]: c for c in summarize(load_schema(_doc("143-Pogayo.json")))["columns"]}
    assert telco["Partner"]["type"] == "boolean"
    assert telco["Partner"]["example"] == "True"  # shown as the swagger has it


def test_request_shape_with_a_method_field_and_a_numeric_global_parameter() -> None:
    with_method = next(
        p for p in FILES if load_schema(read_document(p)).method_field
    )  # the {"data": ..., "method": ...} style
    assert request_shape(load_schema(read_document(with_method))).endswith('"method": "predict"}')
    numeric = load_schema(_doc("041-DiegoLimeiradaSilva.json"))
    assert isinstance(numeric.global_parameters, float)
    assert request_shape(numeric).endswith('"GlobalParameters": 1.0}')
