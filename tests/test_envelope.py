"""Request wrapping and response normalisation, for every response shape in responses.md."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aml_client import envelope
from aml_client.envelope import Convention, normalise_response, wrap
from aml_client.errors import ModelError, ResponseFormatError
from aml_client.schema import load_schema

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
RESPONSES_MD = (CORPUS / "responses.md").read_text(encoding="utf-8")
ROWS = [{"age": 17}, {"age": 87}]


def test_public_api_is_pinned() -> None:
    assert sorted(envelope.__all__) == [
        "Convention",
        "EnvelopeSpec",
        "json_kind",
        "normalise_response",
        "unwrap",
        "wrap",
    ]


# -- responses.md ---------------------------------------------------------------------------------

# (section, exact text as recorded, predictions)
RECORDED = [
    ("1 double-encoded string (ab -v capture)", r'"{\"result\": [\"no\", \"no\"]}"', ["no", "no"]),
    ("2 decoded once (resp.json)", '{"result": ["no", "no"]}', ["no", "no"]),
    ("3 response over the request file", '{"result": ["no"]}', ["no"]),
    (
        "4 Inputs endpoint, floats despite int64",
        '{\n    "Results": [\n      331.839379193704\n    ]\n  }',
        [331.839379193704],
    ),
    ("5 README expectation", '{"result": ["yes", "no"]}', ["yes", "no"]),
]


@pytest.mark.parametrize(("section", "text", "predictions"), RECORDED, ids=[r[0] for r in RECORDED])
def test_every_recorded_response_shape(section: str, text: str, predictions: list) -> None:
    assert text in RESPONSES_MD, "the body is quoted from responses.md, not invented"
    # as raw bytes off the wire, as text, and as what resp.json() returns
    assert normalise_response(text.encode()) == predictions
    assert normalise_response(text) == predictions
    assert normalise_response(json.loads(text)) == predictions


def test_double_encoded_body_is_exactly_32_bytes() -> None:
    body = b'"{\\"result\\": [\\"no\\", \\"no\\"]}"'
    assert len(body) == 32  # Content-Length in the ab capture
    assert normalise_response(body) == ["no", "no"]


@pytest.mark.parametrize(
    "body",
    [
        [1, 0, 1],
        {"Results": [1, 0, 1]},
        {"result": [1, 0, 1]},
        json.dumps(json.dumps(json.dumps({"result": [1, 0, 1]}))),  # three layers
        {"Results": {"WebServiceOutput0": [1, 0, 1]}},  # designer pipelines
        {"result": "[1, 0, 1]"},
        b"\xef\xbb\xbf[1, 0, 1]",
    ],
)
def test_other_shapes(body: object) -> None:
    assert normalise_response(body) == [1, 0, 1]


def test_single_prediction_becomes_a_list() -> None:
    assert normalise_response({"Results": 0.5}) == [0.5]


@pytest.mark.parametrize(
    "body",
    [
        {"error": "could not convert string to float: 'abc'"},
        json.dumps({"error": "could not convert string to float: 'abc'"}),
        json.dumps(json.dumps({"error": {"message": "could not convert string to float: 'abc'"}})),
    ],
)
def test_error_inside_a_200_is_a_model_error(body: object) -> None:
    with pytest.raises(ModelError, match="could not convert string to float: 'abc'"):
        normalise_response(body)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"<html>502 Bad Gateway</html>", "not JSON"),
        ("Healthy", "not predictions"),
        ({"foo": [1]}, "unrecognised response object"),
        (42, "unrecognised response"),
        ({"Results": {"a": [1], "b": [2]}}, "holds an object"),
        (b"\xff\xfe", "not UTF-8"),
    ],
)
def test_unrecognised_responses(body: object, message: str) -> None:
    with pytest.raises(ResponseFormatError, match=message):
        normalise_response(body)


# -- wrap ----------------------------------------------------------------------------------------


def test_wrap_data_convention() -> None:
    assert wrap(ROWS, Convention.DATA) == {"data": ROWS}
    assert wrap(ROWS, "data", method="predict_proba") == {"data": ROWS, "method": "predict_proba"}
    assert wrap(ROWS, "data", global_parameters={"method": "predict"}) == {
        "data": ROWS,
        "method": "predict",
    }


def test_wrap_inputs_convention() -> None:
    assert wrap(ROWS, Convention.INPUTS) == {"Inputs": {"data": ROWS}}
    assert wrap(ROWS, "inputs", method="predict_proba") == {
        "Inputs": {"data": ROWS},
        "GlobalParameters": {"method": "predict_proba"},
    }
    assert wrap(ROWS, "Inputs", global_parameters=1.0) == {
        "Inputs": {"data": ROWS},
        "GlobalParameters": 1.0,
    }


def test_wrap_uses_the_swagger_defaults() -> None:
    inputs = load_schema(CORPUS / "swagger" / "004-abhijit-kalita.json")
    assert wrap(ROWS, inputs) == {
        "Inputs": {"data": ROWS},
        "GlobalParameters": {"method": "predict"},
    }
    assert wrap(ROWS, inputs, method="predict_proba")["GlobalParameters"] == {
        "method": "predict_proba"
    }
    number = load_schema(CORPUS / "swagger" / "041-DiegoLimeiradaSilva.json")
    assert wrap(ROWS, number)["GlobalParameters"] == 1.0
    with_method = load_schema(CORPUS / "swagger" / "046-arnavkundu.json")
    assert wrap(ROWS, with_method) == {"data": ROWS, "method": "predict"}
    plain = load_schema(CORPUS / "swagger" / "052-aimazin.json")
    assert wrap(ROWS, plain) == {"data": ROWS}


def test_wrap_rejects_an_unknown_convention() -> None:
    with pytest.raises(ValueError):
        wrap(ROWS, "input_data")
