"""Is this response a success? The cheap checks run on every response in the load process.

A scoring endpoint can answer 200 and still have failed: the 2020-era scripts put
``{"error": ...}`` in a 200 (sometimes inside a JSON *string*), a proxy may answer an HTML
page, a connection may close mid-body, or the model may return the wrong number of
predictions. Each is its own failure kind, so the report says what went wrong:

========================  ================================================================
``http_<code>``           a 4xx/5xx (or 1xx) status
``redirect``              a 3xx: never followed (a POST must not be replayed elsewhere)
``truncated``             the body ended before its ``Content-Length`` (or its last chunk)
``run_function_failed``   ``x-ms-run-function-failed: True`` on a 2xx
``not_json``              the body is not JSON (an HTML error page, plain text, empty)
``model_error``           ``{"error": ...}`` (or ``errors``/``Error``), also inside a JSON string
``bad_response``          JSON, but no predictions in any shape amlc knows
``prediction_count``      a different number of predictions than the request had rows
``timeout``               no complete reply within the request's total deadline
``tls`` / ``connection``  no reply at all (handshake / refused, reset, closed)
========================  ================================================================

The response shapes are :func:`aml_client.envelope.normalise_response`'s rules, applied to the
body parsed once here. No Locust, no gevent: this runs (and is tested and timed) anywhere.
"""

from __future__ import annotations

import json
import socket
import ssl

from aml_client.envelope import normalise_response
from aml_client.errors import ModelError, ResponseFormatError

__all__ = ["FAILURE_KINDS", "check_response", "classify_error"]

#: Every failure kind the bench reports, apart from ``http_<code>``.
FAILURE_KINDS = (
    "redirect",
    "truncated",
    "run_function_failed",
    "not_json",
    "model_error",
    "bad_response",
    "prediction_count",
    "timeout",
    "tls",
    "connection",
)


def check_response(
    status: int,
    body: bytes,
    *,
    complete: bool = True,
    run_function_failed: bool = False,
    expected_rows: int | None = None,
) -> str | None:
    """``None`` for a good scoring response, else its failure kind (see the module table).

    ``complete`` is False when the body ended early; ``run_function_failed`` is the
    ``x-ms-run-function-failed`` header read as a boolean; ``expected_rows`` is the request's
    row count when known.
    """
    if not complete:
        return "truncated"
    if status >= 400 or status < 200:
        return f"http_{status}"
    if status >= 300:
        return "redirect"
    if run_function_failed:
        return "run_function_failed"
    try:
        value = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return "not_json"
    try:
        predictions = normalise_response(value)
    except ModelError:
        return "model_error"
    except ResponseFormatError:
        return "bad_response"
    if expected_rows is not None and len(predictions) != expected_rows:
        return "prediction_count"
    return None


def classify_error(error: BaseException, *, headers_received: bool = False) -> str:
    """The failure kind of a request that raised instead of completing."""
    name = type(error).__name__.lower()
    if isinstance(error, TimeoutError | socket.timeout) or "timeout" in name:
        return "timeout"
    if isinstance(error, ssl.SSLError) or "ssl" in name or "certificate" in str(error).lower():
        return "tls"
    if headers_received:
        # The status line and headers arrived, then the body did not.
        return "truncated"
    return "connection"
