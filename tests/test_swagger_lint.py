"""Swagger lint (aml_client.swagger.lint): every real swagger of the corpus, and broken ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from support.swaggers import RESULTS, ROWS_OF_AGE, minimal_swagger

from aml_client.envelope import unwrap
from aml_client.errors import SchemaError
from aml_client.schema import load_schema
from aml_client.swagger.fetch import read_document
from aml_client.swagger.lint import validate_document
from aml_client.swagger.summary import summarize

CORPUS = Path(__file__).resolve().parent / "fixtures" / "corpus" / "swagger"
FILES = sorted(CORPUS.glob("*.json"))


def _doc(name: str) -> dict:
    return read_document(CORPUS / name)


def test_the_corpus_is_there() -> None:
    assert len(FILES) >= 90


# --------------------------------------------------------------------------- every corpus file


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_corpus_swagger_summarises_validates_and_gives_a_valid_example(path: Path) -> None:
    doc = read_document(path)
    schema = load_schema(doc)

    summary = summarize(schema)
    json.dumps(summary)  # plain data, ready for --json
    assert summary["title"]
    assert "/score" in [route["path"] for route in summary["routes"]]
    assert summary["auth"]["bearer"] is True
    assert summary["convention"] in ("data", "inputs")
    if schema.row_kind == "record":
        assert summary["columns"] and all(c["type"] != "any" for c in summary["columns"])

    report = validate_document(doc, source=path.name)
    assert report.ok, [str(f) for f in report.errors]
    assert all(f.path.startswith("$") for f in report.findings)

    for rows in (1, 3):
        payload = schema.example_payload(rows)
        json.dumps(payload)
        body_rows, convention, _gp = unwrap(payload, schema)
        assert convention is schema.convention
        assert len(body_rows) == rows
        schema.validate_rows(body_rows)  # raises on any problem
    # placeholders never reach the example
    assert "example_value" not in json.dumps(schema.example_payload(2))


# --------------------------------------------------------------------------- validation: oddities


def test_boolean_examples_written_as_strings_are_warnings_with_their_paths() -> None:
    report = validate_document(_doc("143-Pogayo.json"))
    assert report.ok
    paths = {f.path: f for f in report.warnings}
    for column in ("Partner", "Dependents", "PhoneService", "PaperlessBilling"):
        finding = paths[f"$.definitions.ServiceInput.example.data[0].{column}"]
        assert "expected boolean, got 'True'" in finding.message
    assert len(report.findings) == 4


@pytest.mark.parametrize(
    "name", ["055-Alinagaria825.json", "112-ons-cherif.json", "119-Sara-cos.json"]
)
def test_a_label_column_in_the_input_is_a_warning(name: str) -> None:
    report = validate_document(_doc(name))
    assert report.ok
    (finding,) = [f for f in report.warnings if "training label" in f.message]
    assert finding.path == "$.definitions.ServiceInput.properties.data.items.properties.y"


def test_an_output_example_of_the_wrong_type_is_a_warning() -> None:
    report = validate_document(_doc("044-irafayabdul.json"))
    assert report.ok
    (finding,) = report.warnings
    assert finding.path == "$.definitions.ServiceOutput.example.Results[0]"
    assert "not boolean" in finding.message


def test_clean_swaggers_have_no_findings() -> None:
    for name in ("005-Aduzona.json", "001-microsoft.json", "002-microsoft.json"):
        assert validate_document(_doc(name)).findings == [], name


# --------------------------------------------------------------------------- validation: errors


def test_structural_errors_come_from_openapi_spec_validator_with_paths() -> None:
    doc = minimal_swagger(ROWS_OF_AGE, RESULTS)
    del doc["info"]["version"]
    doc["paths"]["/score"]["post"]["responses"] = {}
    report = validate_document(doc)
    assert not report.ok
    messages = {(f.path, f.message) for f in report.errors}
    assert ("$.info", "'version' is a required property") in messages
    assert any(p == "$.paths['/score'].post.responses" for p, _ in messages)


def test_structural_errors_in_openapi_3() -> None:
    doc = _doc("002-microsoft.json")
    doc["paths"]["/score"]["post"]["responses"]["200"] = {"content": {}}  # no description
    report = validate_document(doc)
    assert any(f.path == "$.paths['/score'].post.responses['200']" for f in report.errors), [
        str(f) for f in report.findings
    ]


def test_an_unknown_convention_is_an_error() -> None:
    doc = minimal_swagger({"type": "object", "properties": {"rows": {"type": "array"}}}, RESULTS)
    report = validate_document(doc)
    (error,) = report.errors
    assert error.path == "$.paths['/score'].post.parameters[0].schema.properties"
    assert "neither 'data' nor 'Inputs'" in error.message and "'rows'" in error.message


def test_an_example_that_cannot_be_its_type_is_an_error() -> None:
    schema = json.loads(json.dumps(ROWS_OF_AGE))
    schema["example"] = {"data": [{"age": "old"}]}
    report = validate_document(minimal_swagger(schema, RESULTS))
    (error,) = report.errors
    assert error.path == "$.paths['/score'].post.parameters[0].schema.example.data[0].age"
    assert "expected integer, got 'old'" in error.message


def test_column_level_problems_are_located_through_refs() -> None:
    doc = minimal_swagger(
        {"$ref": "#/definitions/In"},
        RESULTS,
        definitions={
            "In": {
                "type": "object",
                "properties": {
                    "data": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["age", "ghost"],
                            "properties": {
                                "age": {"type": "integer", "example": "forty"},
                                "emp.var.rate": {},
                            },
                        },
                    }
                },
            }
        },
    )
    report = validate_document(doc)
    found = {(f.level, f.path) for f in report.findings}
    base = "$.definitions.In.properties.data.items"
    assert ("error", f"{base}.properties.age.example") in found
    assert ("warning", f"{base}.properties['emp.var.rate']") in found  # no type
    assert ("warning", f"{base}.required[1]") in found  # 'ghost' is not declared


def test_missing_and_extra_example_columns_are_warnings() -> None:
    schema = json.loads(json.dumps(ROWS_OF_AGE))
    schema["example"] = {"data": [{"agee": 3}]}
    report = validate_document(minimal_swagger(schema, RESULTS))
    assert report.ok
    found = {f.path: f.message for f in report.warnings}
    assert "no value" in found["$.paths['/score'].post.parameters[0].schema.example.data[0].age"]
    assert "lacks" in found["$.paths['/score'].post.parameters[0].schema.example.data[0].agee"]


def test_undescribed_rows_and_response_are_warnings() -> None:
    report = validate_document(minimal_swagger({"type": "object", "properties": {"data": {}}}))
    assert report.ok
    messages = [f.message for f in report.warnings]
    assert any("rows are not described" in m for m in messages)
    assert any("response is not described" in m for m in messages)


def test_no_score_operation_or_no_version() -> None:
    doc = minimal_swagger(ROWS_OF_AGE, RESULTS)
    doc["paths"] = {"/predict": doc["paths"]["/score"]}
    report = validate_document(doc)
    assert any(f.path == "$.paths" and "/score" in f.message for f in report.errors)
    report = validate_document({"info": {}})
    assert [str(f) for f in report.errors] == ["error: $: no 'swagger' or 'openapi' field"]


def test_report_as_json() -> None:
    data = validate_document(_doc("143-Pogayo.json"), source="x.json").to_dict()
    assert data["ok"] is True and data["errors"] == 0 and data["warnings"] == 4
    assert data["source"] == "x.json" and data["version"] == "Swagger 2.0"
    assert data["findings"][0]["level"] == "warning"


REFERENCE = sorted((CORPUS.parents[3] / "swagger").glob("*.json"))


@pytest.mark.parametrize("path", REFERENCE, ids=lambda p: p.stem)
def test_the_local_endpoint_reference_swaggers_are_clean(path: Path) -> None:
    report = validate_document(read_document(path), source=path.name)
    assert report.findings == [], [str(f) for f in report.findings]
    schema = load_schema(path)
    assert schema.columns and schema.validate_rows(schema.example_rows(2))


def test_validate_never_fetches_a_remote_or_file_ref(tmp_path: Path) -> None:
    """openapi-spec-validator follows http(s):// and file:// references by default; a swagger
    from an endpoint must not make amlc call other hosts or read local files."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hits: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            hits.append(self.path)
            body = json.dumps({"type": "object"}).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    secret = tmp_path / "secret.json"
    secret.write_text('{"type": "object"}')
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        for ref in (f"http://127.0.0.1:{httpd.server_port}/remote.json", secret.as_uri()):
            doc = minimal_swagger({"$ref": ref}, RESULTS)
            report = validate_document(doc)
            assert not report.ok
            assert any("only local references" in f.message for f in report.errors)
            with pytest.raises(SchemaError, match="only local references"):
                load_schema(doc)
    finally:
        httpd.shutdown()
        httpd.server_close()
    assert hits == []


@pytest.mark.parametrize(
    "breakage",
    [
        {},
        {"col.3": {"type": "integr"}, "col.53": {"type": "integr"}, "col.278": {"type": "integr"}},
        {"col.10": {"format": 5}},
        {"col.20": {"default": "not a number"}, "col.21": {"default": 1.5}},
        {"col.30": {"$ref": "#/definitions/Nope"}},
        {"col.40": {"items": 3}},
    ],
)
def test_large_property_maps_are_validated_once_per_distinct_schema(
    monkeypatch: pytest.MonkeyPatch, breakage: dict[str, Any]
) -> None:
    """The structural check condenses 300 columns of five types to those five types (a
    column's example aside); it finds what checking every column finds, at the same paths."""
    from support.swaggers import wide_swagger

    import aml_client.swagger.lint as tools

    doc = wide_swagger(300)
    props = doc["definitions"]["ServiceInput"]["properties"]["data"]["items"]["properties"]
    for name, change in breakage.items():
        props[name] = change if "$ref" in change else {**props[name], **change}
    condensed, groups = tools._condense(doc)
    kept = condensed["definitions"]["ServiceInput"]["properties"]["data"]["items"]["properties"]
    assert len(kept) <= 5 + len(breakage)
    assert sum(len(names) for group in groups.values() for names in group.values()) == 300

    def structural() -> tuple[bool, list[str]]:
        findings = tools._structural(doc, "2.0")
        return not findings, sorted(f.path for f in findings)

    fast = structural()
    monkeypatch.setattr(tools, "_CONDENSE_OVER", 10**9)
    assert fast == structural()
    assert fast[0] is (not breakage), fast
