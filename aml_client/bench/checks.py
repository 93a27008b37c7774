"""Is this response a success? The cheap checks run on every response in the load process.

A scoring endpoint can answer 200 and still have failed: the 2020-era scripts put
``{"error": ...}`` in a 200 (sometimes inside a JSON *string*), a proxy may answer an HTML
page, a connection may close mid-body, or the model may return the wrong number of
predictions. Each is its own failure kind, so the report says what went wrong:

========================  ================================================================
``http_<code>``           a 4xx/5xx (or 1xx) status
``redirect``              a 3xx: never followed (a POST must not be replayed elsewhere)
``truncated``             the body ended before its ``Content-Length`` (or its last chunk)
``encoding``              a success with a ``Content-Encoding`` that was not asked for, or a
                          gzip/deflate body that does not decode (within 100 MiB)
``run_function_failed``   ``x-ms-run-function-failed: True`` on a 2xx
``not_json``              the body is not JSON (an HTML error page, plain text, empty)
``model_error``           ``{"error": ...}`` (or ``errors``/``Error``), also inside a JSON string
``bad_response``          JSON, but no predictions in any shape amlc knows
``prediction_count``      a different number of predictions than the request had rows
``timeout``               no complete reply within the request's total deadline
``tls`` / ``connection``  no reply at all (handshake / refused, reset, closed)
========================  ================================================================

Content codings follow the client's one rule (``aml_client.http.session.ACCEPT_ENCODING``):
every request asks for ``gzip, deflate``, a body in either is decoded before it is checked
(:func:`decode_body`), and any other coding on a success is the ``encoding`` failure, as it is
a ``ResponseFormatError`` for ``amlc score``.

The response shapes are :func:`aml_client.envelope.normalise_response`'s rules, applied to the
body parsed once here. No Locust, no gevent: this runs (and is tested and timed) anywhere.

For the failures a managed endpoint explains, :func:`failure_reason` keeps Azure's reason so the
report can show it beside the count: a 424's model status and reason
(``ms-azureml-model-error-statuscode`` / ``-reason``), a 429's cause (too many pending requests,
or a rate limit), a 408's message.
"""

from __future__ import annotations

import json
import socket
import ssl
import zlib
from collections.abc import Callable
from typing import Any

from aml_client.envelope import normalise_response
from aml_client.errors import ModelError, RateLimitError, ResponseFormatError

__all__ = [
    "FAILURE_KINDS",
    "REASON_KINDS",
    "check_response",
    "classify_error",
    "decode_body",
    "failure_reason",
    "read_response",
]

#: Failure kinds whose reason (as the endpoint gives it) is kept; computed only on failures.
REASON_KINDS = frozenset({"http_408", "http_424", "http_429"})
#: Longest reason kept (it comes from the endpoint: untrusted, shown in reports).
MAX_REASON_CHARS = 120
MODEL_STATUS_HEADER = "ms-azureml-model-error-statuscode"
MODEL_REASON_HEADER = "ms-azureml-model-error-reason"
_CAUSES = {
    "concurrency": "too many pending requests (max_concurrent_requests_per_instance)",
    "rate": "rate limit",
}

#: What every request asks for (the client's ``aml_client.http.session.ACCEPT_ENCODING``; not
#: imported from there, which would bring httpx into the load processes).
ACCEPT_ENCODING = "gzip, deflate"
#: Largest decoded body (the client's ``MAX_RESPONSE_BYTES``).
MAX_DECODED_BYTES = 100 * 1024 * 1024

#: Every failure kind the bench reports, apart from ``http_<code>``.
FAILURE_KINDS = (
    "redirect",
    "truncated",
    "encoding",
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
    return read_response(
        status, body, complete=complete, run_function_failed=run_function_failed,
        expected_rows=expected_rows,
    )[0]


def read_response(
    status: int,
    body: bytes,
    *,
    complete: bool = True,
    run_function_failed: bool = False,
    expected_rows: int | None = None,
) -> tuple[str | None, list[Any] | None]:
    """:func:`check_response`'s verdict and, for a good response, its predictions (one per
    row): what a blue/green run compares between deployments, from the same single parse."""
    if not complete:
        return "truncated", None
    if status >= 400 or status < 200:
        return f"http_{status}", None
    if status >= 300:
        return "redirect", None
    if run_function_failed:
        return "run_function_failed", None
    try:
        value = json.loads(body)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError alike
        return "not_json", None
    try:
        predictions = normalise_response(value)
    except ModelError:
        return "model_error", None
    except ResponseFormatError:
        return "bad_response", None
    if expected_rows is not None and len(predictions) != expected_rows:
        return "prediction_count", None
    return None, predictions


def decode_body(body: bytes, content_encoding: str) -> bytes | None:
    """``body`` decoded from ``content_encoding`` (gzip, deflate, identity, or a list of them),
    or ``None`` when it is a coding that was not asked for, does not decode, or decodes to more
    than :data:`MAX_DECODED_BYTES`."""
    for coding in reversed(content_encoding.lower().split(",")):
        coding = coding.strip()
        if coding in ("", "identity"):
            continue
        if coding in ("gzip", "x-gzip"):
            wbits = [zlib.MAX_WBITS | 16]
        elif coding == "deflate":
            wbits = [zlib.MAX_WBITS, -zlib.MAX_WBITS]  # zlib-wrapped, as specified, or raw
        else:
            return None
        for bits in wbits:
            decoder = zlib.decompressobj(bits)
            try:
                decoded = decoder.decompress(body, MAX_DECODED_BYTES)
            except zlib.error:
                continue
            if decoder.eof and not decoder.unconsumed_tail:
                body = decoded
                break
            return None  # cut short, or larger than the limit
        else:
            return None
    return body


def failure_reason(status: int, header: Callable[[str], Any], body: bytes) -> str | None:
    """Azure's reason for a 424, 429 or 408 (None for other statuses, or when it gives none).

    ``header(name)`` reads a response header (None when absent). The text is the endpoint's:
    it is cut to :data:`MAX_REASON_CHARS` printable characters.
    """
    if status == 424:
        said = [value.strip() for value in (header(MODEL_STATUS_HEADER),
                                            header(MODEL_REASON_HEADER))
                if isinstance(value, str) and value.strip()]
        return _clean("model answered " + " ".join(said)) if said else None
    if status not in (408, 429):
        return None
    message = _message(body)
    if status == 429:
        cause = RateLimitError.cause_of(message)
        if cause is not None:
            return _CAUSES[cause]
    return _clean(message) if message else None


def _message(body: bytes) -> str:
    """The ``message`` (or ``error``) of a JSON error body, else the body's start."""
    head = body[:4096]
    try:
        value = json.loads(head)
    except ValueError:
        return head.decode("utf-8", "replace").strip()
    if isinstance(value, dict):
        for key in ("message", "error", "Message", "detail"):
            found = value.get(key)
            if isinstance(found, dict):
                found = found.get("message")
            if isinstance(found, str):
                return found
        return ""
    return value if isinstance(value, str) else ""


def _clean(text: str) -> str | None:
    cleaned = " ".join("".join(ch if ch.isprintable() else " " for ch in text).split())
    cleaned = cleaned.rstrip(". ")
    if len(cleaned) > MAX_REASON_CHARS:
        cleaned = cleaned[: MAX_REASON_CHARS - 1] + "…"
    return cleaned or None


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
