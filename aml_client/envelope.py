"""The envelope: how rows travel in a request body and how predictions come back.

Azure ML scoring scripts disagree on both ends. Requests are ``{"data": rows}`` (2020-era
AutoML, sometimes with ``"method"``) or ``{"Inputs": {"data": rows}, "GlobalParameters": ...}``
(current AutoML). Responses are ``{"Results": [...]}``, ``{"result": [...]}``, a bare list, or
a JSON *string* holding one of those, because the old scoring script returned ``json.dumps(...)``
and the server serialised it again. Model failures may even come back as ``{"error": ...}``
inside an HTTP 200.

This module knows nothing of swaggers: what it needs from one (the convention, the example
``GlobalParameters``, whether ``data`` bodies carry ``method``) is the small
:class:`EnvelopeSpec` protocol, which :class:`~aml_client.schema.ScoringSchema` satisfies.
"""

from __future__ import annotations

import json
from enum import StrEnum
from typing import Any, Protocol

from aml_client.errors import ModelError, ResponseFormatError, RowProblem, ValidationError

__all__ = ["Convention", "EnvelopeSpec", "json_kind", "normalise_response", "unwrap", "wrap"]


class Convention(StrEnum):
    """How rows are wrapped in a request body."""

    DATA = "data"  # {"data": [rows]} (optionally "method")
    INPUTS = "inputs"  # {"Inputs": {"data": [rows]}, "GlobalParameters": {...}}


class EnvelopeSpec(Protocol):
    """What wrapping needs to know about an endpoint (a ScoringSchema has all of it)."""

    @property
    def convention(self) -> Convention: ...

    @property
    def global_parameters(self) -> dict[str, Any] | float | None: ...

    @property
    def method_field(self) -> bool: ...


# Keys under which scoring scripts put their predictions, most common first.
_PREDICTION_KEYS = (
    "Results",
    "result",
    "results",
    "predictions",
    "prediction",
    "output",
    "outputs",
)
_ERROR_KEYS = ("error", "errors", "Error")
_MAX_DECODE = 3


def wrap(
    rows: list[Any],
    spec: EnvelopeSpec | Convention | str,
    *,
    method: str | None = None,
    global_parameters: dict[str, Any] | float | None = None,
) -> dict[str, Any]:
    """The request body for ``rows`` in the endpoint's convention.

    ``method`` ("predict", "predict_proba") goes where the convention puts it; otherwise the
    swagger's example GlobalParameters are sent, since some scripts fail without them.
    """
    schema = None if isinstance(spec, str) else spec  # Convention is a str too
    convention = schema.convention if schema is not None else Convention(str(spec).lower())
    if convention is Convention.INPUTS:
        body: dict[str, Any] = {"Inputs": {"data": rows}}
        params: Any = global_parameters
        if method is not None:
            base = params if isinstance(params, dict) else {}
            params = {**base, "method": method}
        if params is None and schema is not None:
            params = schema.global_parameters
        if params is not None:
            body["GlobalParameters"] = params
        return body
    body = {"data": rows}
    if method is None and isinstance(global_parameters, dict):
        method = global_parameters.get("method")
    if method is None and schema is not None and schema.method_field:
        example = schema.global_parameters
        method = example.get("method") if isinstance(example, dict) else None
    if method is not None:
        body["method"] = method
    return body


def normalise_response(body: Any) -> list[Any]:
    """Predictions as a plain list, whatever shape the endpoint chose.

    Raises ModelError for an ``{"error": ...}`` body (the 2020-era scripts report failures that
    way with status 200) and ResponseFormatError for anything unrecognised.
    """
    value = body
    if isinstance(value, bytes | bytearray):
        try:
            value = value.decode("utf-8-sig")
        except UnicodeDecodeError:
            raise ResponseFormatError("the response is not UTF-8 text") from None
        value = _decode(value, first=True)
    for _ in range(_MAX_DECODE):
        if not isinstance(value, str):
            break
        value = _decode(value, first=False)
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        for key in _ERROR_KEYS:
            if key in value and not any(k in value for k in _PREDICTION_KEYS):
                raise ModelError(f"the model reported an error: {_message(value[key])}")
        for key in _PREDICTION_KEYS:
            if key in value:
                return _as_list(value[key], key)
        keys = ", ".join(repr(k) for k in list(value)[:5])
        raise ResponseFormatError(f"unrecognised response object (keys: {keys or 'none'})")
    if isinstance(value, str):
        raise ResponseFormatError(f"the response is a string, not predictions: {value[:80]!r}")
    raise ResponseFormatError(f"unrecognised response: {json.dumps(value)[:80]}")


def _decode(text: str, *, first: bool) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        if first:
            raise ResponseFormatError(f"the response is not JSON: {text[:80]!r}") from None
        raise ResponseFormatError(
            f"the response is a string, not predictions: {text[:80]!r}"
        ) from None


def _as_list(value: Any, key: str) -> list[Any]:
    if isinstance(value, str):
        # {"result": "[1, 2]"} - one more layer of encoding
        try:
            value = json.loads(value)
        except json.JSONDecodeError:
            return [value]
    if isinstance(value, list):
        return value
    if isinstance(value, dict):
        # {"Results": {"WebServiceOutput0": [...]}} (designer pipelines): one named output
        lists = [v for v in value.values() if isinstance(v, list)]
        if len(lists) == 1:
            return lists[0]
        raise ResponseFormatError(f"'{key}' holds an object, not a list of predictions")
    return [value]


def _message(error: Any) -> str:
    if isinstance(error, dict):
        return str(error.get("message") or error.get("Message") or json.dumps(error))[:500]
    return str(error)[:500]


# -- requests --------------------------------------------------------------------------------


def unwrap(
    body: Any, schema: EnvelopeSpec | None = None
) -> tuple[list[Any], Convention, dict[str, Any] | float | None]:
    """Unwrap a request body in either convention into ``(rows, convention, global_parameters)``.

    A bare list of rows is taken as-is (in the schema's convention, else ``data``). With a
    schema, a body in the other convention is a ValidationError: the endpoint would answer 400
    or, worse, score nothing.
    """
    problem = None
    if isinstance(body, list):
        convention = schema.convention if schema else Convention.DATA
        return body, convention, None
    if not isinstance(body, dict):
        problem = f"expected a JSON object or a list of rows, got {json_kind(body)}"
        raise ValidationError([RowProblem(None, None, problem)])
    if "Inputs" in body:
        inputs = body["Inputs"]
        if not isinstance(inputs, dict) or "data" not in inputs:
            problem = (
                "'Inputs' must be an object holding 'data': "
                '{"Inputs": {"data": [rows]}, "GlobalParameters": {...}}'
            )
        else:
            rows, convention = inputs["data"], Convention.INPUTS
            extra = set(body) - {"Inputs", "GlobalParameters"}
            global_parameters = body.get("GlobalParameters")
    elif "data" in body:
        rows, convention = body["data"], Convention.DATA
        extra = set(body) - {"data", "method"}
        global_parameters = {"method": body["method"]} if "method" in body else None
    elif "input_data" in body:
        problem = "an MLflow 'input_data' body; Azure ML scoring scripts expect 'data' or 'Inputs'"
    else:
        keys = ", ".join(repr(k) for k in list(body)[:5]) or "none"
        problem = f"no 'data' or 'Inputs' key in the payload (keys: {keys})"
    if problem:
        raise ValidationError([RowProblem(None, None, problem)])
    if extra:
        names = ", ".join(repr(k) for k in sorted(extra))
        raise ValidationError([RowProblem(None, None, f"unexpected top-level key(s) {names}")])
    if not isinstance(rows, list):
        raise ValidationError(
            [RowProblem(None, None, f"'data' must be a list of rows, got {json_kind(rows)}")]
        )
    if schema is not None and convention is not schema.convention:
        raise ValidationError(
            [
                RowProblem(
                    None,
                    None,
                    f"payload uses the {_describe(convention)} convention but the endpoint's "
                    f"swagger expects {_describe(schema.convention)}",
                )
            ]
        )
    return rows, convention, global_parameters


def _describe(convention: Convention) -> str:
    if convention is Convention.INPUTS:
        return '{"Inputs": {"data": [...]}, "GlobalParameters": ...}'
    return '{"data": [...]}'


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
