"""Swagger loading, row validation, examples and pydantic models, against the real corpus."""

from __future__ import annotations

import csv
import json
import re
from collections import Counter
from pathlib import Path

import pydantic
import pytest

from aml_client import schema as schema_module
from aml_client.envelope import Convention, unwrap
from aml_client.errors import SchemaError, ValidationError
from aml_client.schema import ScoringSchema, load_schema
from aml_client.schema.locate import json_path

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
SWAGGERS = sorted((CORPUS / "swagger").glob("*.json"))


def _tsv(name: str) -> list[dict[str, str]]:
    with open(CORPUS / name, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle, delimiter="\t"))


CLASSIFICATION = {Path(r["filename"]).name: r for r in _tsv("swagger_classification.tsv")}


def test_public_api_is_pinned() -> None:
    assert sorted(schema_module.__all__) == [
        "Column",
        "ScoringSchema",
        "load_schema",
    ]


def test_corpus_is_complete() -> None:
    assert len(SWAGGERS) == 96
    assert {p.name for p in SWAGGERS} == set(CLASSIFICATION)


# -- every corpus swagger ------------------------------------------------------------------------


def _expected_shape(row: dict[str, str]) -> tuple[Convention, bool, str]:
    style = row["input_style"]
    convention = Convention.INPUTS if style.startswith("Inputs") else Convention.DATA
    method_field = style == "data+method"
    rows = row["rows"]
    if rows.startswith("records"):
        kind = "record"
    elif "array of array" in rows or "nested-arrays" in row["unusual"]:
        kind = "array"
    else:
        kind = "scalar"
    return convention, method_field, kind


def _expected_type_counts(row: dict[str, str]) -> Counter:
    mapping = {
        "integer/int64": "integer",
        "integer/int32": "integer",
        "number/double": "number",
        "string": "string",
        "string/date-time": "datetime",
        "boolean": "boolean",
    }
    return Counter({mapping[k]: v for k, v in json.loads(row["prop_types"]).items()})


@pytest.mark.parametrize("path", SWAGGERS, ids=lambda p: p.name)
def test_every_swagger_loads_with_the_documented_shape(path: Path) -> None:
    schema = load_schema(path)
    expected = CLASSIFICATION[path.name]
    convention, method_field, kind = _expected_shape(expected)
    assert schema.version == expected["version"].split()[-1]
    assert schema.convention is convention
    assert schema.method_field is method_field
    assert schema.row_kind == kind
    if kind == "record":
        assert Counter(c.type for c in schema.columns) == _expected_type_counts(expected)
        assert schema.column_names == list(schema.raw_example_rows[0]), (
            "columns keep the swagger's order"
        )
    if expected["global_params"] == "number/double":
        assert schema.global_parameters == 1.0
    elif expected["global_params"] == "object{method}":
        assert schema.global_parameters == {"method": "predict"}


@pytest.mark.parametrize("path", SWAGGERS, ids=lambda p: p.name)
def test_every_swagger_yields_a_valid_realistic_example(path: Path) -> None:
    schema = load_schema(path)
    payload = schema.example_payload(3)
    # the payload is in the endpoint's own convention and passes our own validation ...
    rows, convention, _ = unwrap(payload, schema)
    assert convention is schema.convention
    assert len(rows) == 3
    assert schema.validate_rows(rows) == rows
    # ... and the pydantic request model built from the same swagger
    schema.request_model().model_validate(payload)
    text = json.dumps(payload)
    assert "example_value" not in text
    if schema.row_kind == "record":
        for row in rows:
            numbers = [v for v in row.values() if type(v) in (int, float)]
            assert any(v != 0 for v in numbers), "all-zero placeholder rows are replaced"


@pytest.mark.parametrize("path", SWAGGERS, ids=lambda p: p.name)
def test_every_swagger_builds_models(path: Path) -> None:
    schema = load_schema(path)
    row_model = schema.row_model()
    example = schema.example_rows(1)[0]
    row_model.model_validate(example)
    response_model = schema.response_model()
    assert issubclass(response_model, pydantic.BaseModel)
    assert schema.row_model() is row_model, "models are built once"


def test_bank_marketing_placeholders_become_plausible_values() -> None:
    schema = load_schema(CORPUS / "swagger" / "004-abhijit-kalita.json")
    assert schema.raw_example_rows[0]["job"] == "example_value"
    row = schema.example_rows(1)[0]
    assert row["job"] in {"admin.", "blue-collar", "technician", "services", "management"}
    assert row["marital"] in {"married", "single", "divorced"}
    assert row["month"] in {"may", "jun", "jul", "aug", "nov"}
    assert 17 <= row["age"] <= 99
    assert row["pdays"] == 999
    assert isinstance(row["emp.var.rate"], float)


def test_real_examples_are_kept_and_type_mismatches_fixed() -> None:
    schema = load_schema(CORPUS / "swagger" / "143-Pogayo.json")
    assert schema.raw_example_rows[0]["Partner"] == "True"
    row = schema.example_rows(1)[0]
    assert row["Partner"] is True, "a boolean exemplified as 'True' becomes a real boolean"
    assert row["customerID"] == "7590-VHVEG", "real example values are kept"
    assert row["SeniorCitizen"] == 0, "a real zero in a real example is kept"


def test_pandas_style_dates_in_examples_are_valid() -> None:
    schema = load_schema(CORPUS / "swagger" / "137-nbelmokhtar.json")
    assert schema.column("date").type == "datetime"
    row = schema.example_rows(1)[0]
    assert row["date"] == "2011-01-01 00:00:00,000000"
    schema.validate_rows([row])


def test_example_rows_count_and_independence() -> None:
    schema = load_schema(CORPUS / "swagger" / "052-aimazin.json")
    rows = schema.example_rows(4)
    assert len(rows) == 4
    rows[0]["age"] = 99
    assert rows[1]["age"] != 99
    assert schema.example_rows(0) == []


# -- conventions and oddities ----------------------------------------------------------------------


def test_global_parameters_as_a_plain_number() -> None:
    schema = load_schema(CORPUS / "swagger" / "041-DiegoLimeiradaSilva.json")
    assert schema.convention is Convention.INPUTS
    assert schema.global_parameters == 1.0
    payload = schema.example_payload()
    assert payload["GlobalParameters"] == 1.0
    schema.request_model().model_validate(payload)
    assert schema.output_kind == "Results[]"
    assert schema.output_item_type == "integer"
    # declared int64, real response is a float (responses.md section 4)
    schema.response_model().model_validate({"Results": [331.839379193704]})


def test_method_field_convention() -> None:
    schema = load_schema(CORPUS / "swagger" / "046-arnavkundu.json")
    assert schema.convention is Convention.DATA
    assert schema.method_field
    payload = schema.example_payload()
    assert payload["method"] == "predict"
    assert set(payload) == {"data", "method"}


def test_scalar_and_nested_array_rows() -> None:
    scalars = load_schema(CORPUS / "swagger" / "001-microsoft.json")
    assert (scalars.row_kind, scalars.item_type) == ("scalar", "integer")
    assert scalars.columns == []
    scalars.validate_rows([1, 2, 3])
    with pytest.raises(ValidationError) as err:
        scalars.validate_rows([1, "two", 3.5])
    assert [str(p) for p in err.value.problems] == [
        "row 2: expected integer, got 'two'",
        "row 3: expected integer, got 3.5",
    ]

    arrays = load_schema(CORPUS / "swagger" / "142-MicrosoftDocs.json")
    assert (arrays.row_kind, arrays.item_type) == ("array", "integer")
    arrays.validate_rows([[1, 2], [3]])
    with pytest.raises(ValidationError) as err:
        arrays.validate_rows([[1, "x"], 5])
    assert [str(p) for p in err.value.problems] == [
        "row 1: item 1: expected integer, got 'x'",
        "row 2: expected an array, got 5",
    ]


def test_openapi_3_0_and_3_1_read_like_swagger_2() -> None:
    v30 = load_schema(CORPUS / "swagger" / "001-microsoft.json")
    v31 = load_schema(CORPUS / "swagger" / "002-microsoft.json")
    v2 = load_schema(CORPUS / "swagger" / "140-microsoft.json")
    for schema in (v30, v31, v2):
        assert schema.row_kind == "scalar"
        assert schema.output_kind == "array"
        assert schema.output_item_type == "number"
    assert (v30.version, v31.version, v2.version) == ("3.0.3", "3.1.0", "2.0")


def test_output_object_without_properties() -> None:
    schema = load_schema(CORPUS / "swagger" / "139-udacity.json")
    assert schema.output_kind == "object"
    schema.response_model().model_validate({"anything": [1]})


def test_boolean_results_exemplified_as_strings_are_accepted_in_responses() -> None:
    schema = load_schema(CORPUS / "swagger" / "044-irafayabdul.json")
    assert schema.output_item_type == "boolean"
    schema.response_model().model_validate({"Results": ["False", True]})


def test_bom_and_crlf(tmp_path: Path) -> None:
    original = (CORPUS / "swagger" / "010-carmenscar.json").read_bytes()
    assert b"\r\n" in original, "the corpus file really has CRLF line ends"
    path = tmp_path / "bom.json"
    path.write_bytes(b"\xef\xbb\xbf" + original)
    schema = load_schema(path)
    assert schema.convention is Convention.INPUTS
    assert len(schema.columns) == 20
    assert load_schema(str(path)).title == schema.title
    text = "\ufeff" + original.decode()
    assert load_schema(text).column_names == schema.column_names


def test_sources_dict_text_and_path_agree() -> None:
    path = CORPUS / "swagger" / "068-carloshvp.json"
    doc = json.loads(path.read_text())
    a, b, c = load_schema(path), load_schema(doc), load_schema(path.read_text())
    assert a.column_names == b.column_names == c.column_names
    assert a.raw == doc


def _synthetic(input_schema: dict, definitions: dict | None = None) -> dict:
    return {
        "swagger": "2.0",
        "info": {"title": "synthetic", "version": "1.0"},
        "paths": {
            "/score": {
                "post": {
                    "parameters": [{"name": "body", "in": "body", "schema": input_schema}],
                    "responses": {"200": {"schema": {"$ref": "#/definitions/Out"}}},
                }
            }
        },
        "definitions": {
            "Out": {"type": "object", "properties": {"result": {"type": "array"}}},
            **(definitions or {}),
        },
    }


def test_refs_are_resolved_at_every_level() -> None:
    doc = _synthetic(
        {"$ref": "#/definitions/In"},
        {
            "In": {"type": "object", "properties": {"data": {"$ref": "#/definitions/Rows"}}},
            "Rows": {"type": "array", "items": {"$ref": "#/definitions/Row"}},
            "Row": {
                "type": "object",
                "required": ["when"],
                "properties": {
                    "when": {"$ref": "#/definitions/Stamp"},
                    "n": {"type": "integer", "format": "int32"},
                },
            },
            "Stamp": {"type": "string", "format": "date-time"},
        },
    )
    schema = load_schema(doc)
    assert [(c.name, c.type, c.required) for c in schema.columns] == [
        ("when", "datetime", True),
        ("n", "integer", False),
    ]
    assert schema.output_kind == "result[]"
    schema.validate_rows([{"when": "2024-02-29T10:00:00Z", "n": 3}])


def test_circular_and_dangling_refs_are_schema_errors() -> None:
    circular = _synthetic({"$ref": "#/definitions/A"}, {"A": {"$ref": "#/definitions/A"}})
    with pytest.raises(SchemaError, match="circular"):
        load_schema(circular)
    with pytest.raises(SchemaError, match="points at nothing"):
        load_schema(_synthetic({"$ref": "#/definitions/Nope"}))


def test_empty_input_schema_accepts_any_rows() -> None:
    schema = load_schema(_synthetic({}))
    assert schema.row_kind == "any"
    assert schema.validate_rows([{"x": 1}, [1, 2], "text"]) == [{"x": 1}, [1, 2], "text"]
    payload = schema.example_payload()
    assert unwrap(payload, schema)[0] == [{}]


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ('{"openapi": ', "not valid JSON"),
        ('{"info": {}}', "not a swagger"),
        ('{"swagger": "1.2", "paths": {}}', "unsupported"),
        ("[1, 2]", "expected a JSON object"),
        ("/no/such/swagger.json", "no such file"),
    ],
)
def test_unreadable_documents_are_schema_errors(source: str, message: str) -> None:
    with pytest.raises(SchemaError, match=message):
        load_schema(source)


def test_invalid_json_error_names_the_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text('{\n  "swagger": "2.0",\n  "info": {,\n}\n')
    with pytest.raises(SchemaError) as err:
        load_schema(path)
    assert str(path) in str(err.value)
    assert "line 3" in str(err.value)


# -- validation ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def bank() -> ScoringSchema:
    """A bank-marketing swagger without any ``required`` list."""
    schema = load_schema(CORPUS / "swagger" / "052-aimazin.json")
    assert not any(c.required for c in schema.columns)
    return schema


def _good(schema: ScoringSchema) -> dict:
    return schema.example_rows(1)[0]


def test_precise_row_and_column_message(bank: ScoringSchema) -> None:
    rows = [_good(bank), _good(bank), {**_good(bank), "age": "abc"}]
    with pytest.raises(ValidationError) as err:
        bank.validate_rows(rows)
    assert str(err.value) == "row 3, column 'age': expected integer, got 'abc'"
    assert [(p.row, p.column) for p in err.value.problems] == [(3, "age")]


def test_missing_and_unknown_columns_without_required(bank: ScoringSchema) -> None:
    row = _good(bank)
    del row["emp.var.rate"]
    row["y"] = "no"
    with pytest.raises(ValidationError) as err:
        bank.validate_rows([row])
    assert sorted(str(p) for p in err.value.problems) == [
        "row 1, column 'emp.var.rate': missing column",
        "row 1, column 'y': unknown column (not in the swagger)",
    ]


def test_numbers_as_strings_are_errors_unless_coerced(bank: ScoringSchema) -> None:
    row = {**_good(bank), "age": "24", "euribor3m": "4.962"}
    with pytest.raises(ValidationError) as err:
        bank.validate_rows([row])
    assert [str(p) for p in err.value.problems] == [
        "row 1, column 'age': expected integer, got '24'",
        "row 1, column 'euribor3m': expected number, got '4.962'",
    ]
    (fixed,) = bank.validate_rows([row], coerce=True)
    assert fixed["age"] == 24 and fixed["euribor3m"] == 4.962
    assert row["age"] == "24", "the caller's row is not modified"


def test_numeric_types(bank: ScoringSchema) -> None:
    ok = {**_good(bank), "emp.var.rate": 1, "age": 30.0}
    bank.validate_rows([ok])  # an int is a number; an integral float is an integer
    with pytest.raises(ValidationError) as err:
        bank.validate_rows([{**_good(bank), "age": 30.5, "duration": True}])
    assert [str(p) for p in err.value.problems] == [
        "row 1, column 'age': expected integer, got 30.5",
        "row 1, column 'duration': expected integer, got true",
    ]
    with pytest.raises(ValidationError, match="expected string, got 5"):
        bank.validate_rows([{**_good(bank), "job": 5}])
    with pytest.raises(ValidationError, match="expected number, got null"):
        bank.validate_rows([{**_good(bank), "euribor3m": None}])


def test_booleans_must_be_booleans() -> None:
    schema = load_schema(CORPUS / "swagger" / "143-Pogayo.json")
    good = _good(schema)
    for bad, shown in (("True", "'True'"), (1, "1"), ("No", "'No'")):
        with pytest.raises(ValidationError) as err:
            schema.validate_rows([{**good, "Partner": bad}])
        assert str(err.value) == f"row 1, column 'Partner': expected boolean, got {shown}"
    (row,) = schema.validate_rows([{**good, "Partner": "True", "Dependents": "no"}], coerce=True)
    assert row["Partner"] is True and row["Dependents"] is False
    with pytest.raises(ValidationError, match="expected boolean, got 'maybe'"):
        schema.validate_rows([{**good, "Partner": "maybe"}], coerce=True)


@pytest.mark.parametrize(
    ("value", "ok"),
    [
        ("2011-01-01 00:00:00,000000", True),
        ("2011-01-01T00:00:00.000Z", True),
        ("2011-01-01T00:00:00+01:00", True),
        ("2011-01-01", True),
        ("yesterday", False),
        ("01/02/2011", False),
        (20110101, False),
    ],
)
def test_datetime_columns(value: object, ok: bool) -> None:
    schema = load_schema(CORPUS / "swagger" / "137-nbelmokhtar.json")
    row = {**_good(schema), "date": value}
    if ok:
        schema.validate_rows([row])
    else:
        with pytest.raises(ValidationError, match="column 'date': expected a date-time string"):
            schema.validate_rows([row])


def test_rows_must_be_objects_and_a_list(bank: ScoringSchema) -> None:
    with pytest.raises(ValidationError) as err:
        bank.validate_rows([_good(bank), [1, 2]])
    assert str(err.value) == "row 2: expected an object with named columns, got an array"
    with pytest.raises(ValidationError, match="expected a list of rows"):
        bank.validate_rows({"age": 1})  # type: ignore[arg-type]


def test_every_problem_is_reported(bank: ScoringSchema) -> None:
    rows = [{**_good(bank), "age": "x"}, _good(bank), {**_good(bank), "pdays": "y", "job": 1}]
    with pytest.raises(ValidationError) as err:
        bank.validate_rows(rows)
    assert [(p.row, p.column) for p in err.value.problems] == [
        (1, "age"),
        (3, "job"),
        (3, "pdays"),
    ]
    assert str(err.value).endswith("(and 2 more problems)")


def test_coerce_row_converts_csv_strings(bank: ScoringSchema) -> None:
    strings = {k: str(v) for k, v in _good(bank).items()}
    row = bank.coerce_row(strings)
    assert row == _good(bank)
    with pytest.raises(ValidationError) as err:
        bank.coerce_row({**strings, "campaign": "two"})
    assert str(err.value) == "column 'campaign': expected integer, got 'two'"


# -- payloads ------------------------------------------------------------------------------------


def test_unwrap_both_conventions() -> None:
    rows = [{"a": 1}]
    assert unwrap({"data": rows}) == (rows, Convention.DATA, None)
    assert unwrap({"data": rows, "method": "predict_proba"}) == (
        rows,
        Convention.DATA,
        {"method": "predict_proba"},
    )
    assert unwrap({"Inputs": {"data": rows}, "GlobalParameters": 1.0}) == (
        rows,
        Convention.INPUTS,
        1.0,
    )
    assert unwrap({"Inputs": {"data": rows}}) == (rows, Convention.INPUTS, None)
    assert unwrap(rows) == (rows, Convention.DATA, None)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"Inputs": [{"a": 1}]}, "'Inputs' must be an object holding 'data'"),
        ({"rows": []}, "no 'data' or 'Inputs' key"),
        ({"input_data": {"columns": []}}, "MLflow"),
        ({"data": {"a": 1}}, "'data' must be a list of rows"),
        ({"data": [], "extra": 1}, "unexpected top-level key"),
        ("text", "expected a JSON object"),
    ],
)
def test_unwrap_rejects_bad_shapes(body: object, message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        unwrap(body)


def test_wrong_convention_is_caught() -> None:
    inputs_schema = load_schema(CORPUS / "swagger" / "004-abhijit-kalita.json")
    body = json.loads((CORPUS / "payloads" / "030-udacity.json").read_text())
    rows, convention, _ = unwrap(body)
    assert convention is Convention.DATA
    inputs_schema.validate_rows(rows)  # the rows themselves are fine ...
    with pytest.raises(ValidationError) as err:  # ... the wrapping is not
        unwrap(body, inputs_schema)
    assert 'expects {"Inputs"' in str(err.value)


# payload_matches.tsv: each payload against each swagger of the same repository.

_PAIR = re.compile(r"(\d{3}-[^:]+\.json): (.*)")


def _payload_cases() -> list:
    cases = []
    for record in _tsv("payload_matches.tsv"):
        name = Path(record["filename"]).name
        if "malformed" in record["filename"]:
            continue
        verdicts = record["match_vs_same_repo_swagger(s)"]
        for part in verdicts.split(" | "):
            match = _PAIR.match(part)
            if match is None:
                reason = "no swagger from this repo in corpus"
                cases.append(
                    pytest.param(
                        name,
                        None,
                        part,
                        id=f"{name}~SKIP-{reason.replace(' ', '-')}",
                        marks=pytest.mark.skip(reason=f"{name}: {reason}"),
                    )
                )
                continue
            swagger, verdict = match.groups()
            if not (CORPUS / "swagger" / swagger).exists():
                reason = f"swagger {swagger} named in payload_matches.tsv is not in the corpus"
                cases.append(
                    pytest.param(
                        name,
                        swagger,
                        verdict,
                        id=f"{name}~{swagger}~SKIP-swagger-not-in-corpus",
                        marks=pytest.mark.skip(reason=reason),
                    )
                )
                continue
            cases.append(pytest.param(name, swagger, verdict, id=f"{name}~{swagger}"))
    return cases


@pytest.mark.parametrize(("payload", "swagger", "verdict"), _payload_cases())
def test_payload_matches_its_repository_swagger(payload: str, swagger: str, verdict: str) -> None:
    schema = load_schema(CORPUS / "swagger" / swagger)
    body = json.loads((CORPUS / "payloads" / payload).read_text(encoding="utf-8"))

    if "convention DIFFERENT" in verdict:
        with pytest.raises(ValidationError, match="convention"):
            unwrap(body, schema)
        return
    rows, _, _ = unwrap(body, schema)

    if "columns differ" in verdict:
        # jsonschema calls some of these valid (no `required`); amlc compares the declared columns
        extra, missing = re.search(r"columns differ\(\+([^ ]*) -([^)]*)\)", verdict).groups()
        with pytest.raises(ValidationError) as err:
            schema.validate_rows(rows)
        unknown = {p.column for p in err.value.problems if "unknown column" in p.message}
        absent = {p.column for p in err.value.problems if p.message == "missing column"}
        # the tsv truncates its column lists; every complete name it shows must be reported
        for name in extra.split(",")[:-1]:
            assert name in unknown
        for name in missing.split(",")[:-1]:
            assert name in absent
        return

    errors = re.search(r"schema-errors=(\d+) \(e\.g\. '([^']*)' is not of type '(\w+)'\)", verdict)
    if errors:
        count, value, kind = errors.groups()
        with pytest.raises(ValidationError) as err:
            schema.validate_rows(rows)
        messages = [str(p) for p in err.value.problems]
        assert len(messages) == int(count), "same number of problems as jsonschema found"
        assert any(m.endswith(f"expected {kind}, got '{value}'") for m in messages)
        assert all(re.match(r"row \d+, column '[^']+': expected ", m) for m in messages)
        if kind in ("integer", "number"):
            schema.validate_rows(rows, coerce=True)  # numbers-as-strings are fixable
        return

    assert "schema-valid" in verdict and "columns equal" in verdict
    assert schema.validate_rows(rows) == rows


# Payloads whose own swagger is not in the corpus, checked against a bank-marketing swagger of
# the same convention (expectations read off the payloads by hand).
_INPUTS, _METHOD, _DATA = "004-abhijit-kalita.json", "046-arnavkundu.json", "052-aimazin.json"
_STAND_IN = {
    "001-fische57.json": (_INPUTS, "'Inputs' must be an object holding 'data'"),
    "003-ajzellar.json": (_INPUTS, None),
    "005-gomiles.json": (_INPUTS, "row 1, column 'job_admin.': unknown column"),  # one-hot columns
    "008-leonchen34.json": (_INPUTS, None),
    "009-Nazeer2013.json": (_INPUTS, None),
    "012-Klimorg.json": (_INPUTS, None),
    "013-bhattajo.json": (_METHOD, None),
    "014-gbayer-1.json": (_METHOD, None),
    "015-abhijit-kalita.json": (_DATA, None),
    "020-JCForszp.json": (_DATA, None),
    "023-lustraka.json": (_DATA, None),
    "025-Mufumi.json": (_DATA, None),
    "029-temiwale88.json": (_DATA, "row 1, column 'age': expected integer, got '57'"),
    "030-udacity.json": (_DATA, None),
    "031-yash256.json": (_DATA, "row 1, column 'age': expected integer, got '0'"),
}


@pytest.mark.parametrize(("payload", "stand_in"), sorted(_STAND_IN.items()))
def test_payloads_without_their_swagger_against_a_stand_in(
    payload: str, stand_in: tuple[str, str | None]
) -> None:
    swagger, problem = stand_in
    schema = load_schema(CORPUS / "swagger" / swagger)
    body = json.loads((CORPUS / "payloads" / payload).read_text(encoding="utf-8"))
    if problem is None:
        rows, _, _ = unwrap(body, schema)
        assert schema.validate_rows(rows) == rows
        return
    with pytest.raises(ValidationError) as err:
        rows, _, _ = unwrap(body, schema)
        schema.validate_rows(rows)
    assert any(str(p).startswith(problem) for p in err.value.problems), err.value.problems


def test_nullable_columns_accept_null() -> None:
    doc = _synthetic(
        {
            "type": "object",
            "properties": {
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "a": {"type": "number", "x-nullable": True},
                            "b": {"type": ["integer", "null"]},
                            "c": {"type": "number"},
                        },
                    },
                }
            },
        }
    )
    schema = load_schema(doc)
    assert [(c.type, c.nullable) for c in schema.columns] == [
        ("number", True),
        ("integer", True),
        ("number", False),
    ]
    schema.validate_rows([{"a": None, "b": None, "c": 1.5}])
    schema.row_model().model_validate({"a": None, "b": None, "c": 1.5})
    with pytest.raises(ValidationError, match="column 'c': expected number, got null"):
        schema.validate_rows([{"a": 1, "b": 2, "c": None}])


def test_row_model_keeps_dotted_names_as_aliases(bank: ScoringSchema) -> None:
    model = bank.row_model()
    assert model.model_fields["emp_var_rate"].alias == "emp.var.rate"
    good = _good(bank)
    row = model.model_validate(good)
    assert row.emp_var_rate == good["emp.var.rate"]  # type: ignore[attr-defined]
    assert row.model_dump(by_alias=True) == good
    for bad in ({**good, "age": "24"}, {**good, "y": "no"}, {**good, "job": None}):
        with pytest.raises(pydantic.ValidationError):
            model.model_validate(bad)
    request = bank.request_model()
    request.model_validate({"data": [good]})
    with pytest.raises(pydantic.ValidationError):
        request.model_validate({"Inputs": {"data": [good]}})


def test_field_names_that_clash_with_python_or_pydantic() -> None:
    doc = _synthetic(
        {
            "type": "object",
            "properties": {
                "data": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            name: {"type": "string"}
                            for name in ("class", "model_config", "json", "2nd", "a-b", "a_b")
                        },
                    },
                }
            },
        }
    )
    schema = load_schema(doc)
    row = {name: "x" for name in schema.column_names}
    assert schema.row_model().model_validate(row).model_dump(by_alias=True) == row


def test_json_path() -> None:
    assert json_path(["paths", "/score", "post", "parameters", 0]) == (
        "$.paths['/score'].post.parameters[0]"
    )
    assert json_path(["emp.var.rate"], "$.x") == "$.x['emp.var.rate']"
    assert json_path(["it's", 2]) == "$['it\\'s'][2]"
