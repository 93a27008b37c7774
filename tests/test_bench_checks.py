"""The per-response checks of the load process: each fault is its own failure kind."""

from __future__ import annotations

import json
import socket
import ssl

import pytest

from aml_client.bench.checks import check_response, classify_error


@pytest.mark.parametrize(
    ("status", "body", "kwargs", "kind"),
    [
        (200, b'{"Results": ["no", "yes"]}', {"expected_rows": 2}, None),
        (200, b"[0.5]", {"expected_rows": 1}, None),
        (200, json.dumps(json.dumps({"result": [1, 2]})).encode(), {"expected_rows": 2}, None),
        (200, b'{"Results": ["no"]}', {}, None),  # row count unknown: not checked
        (200, b'{"error": "boom"}', {}, "model_error"),
        (200, json.dumps(json.dumps({"error": "boom"})).encode(), {}, "model_error"),
        (200, b"<html>502 Bad Gateway</html>", {}, "not_json"),
        (200, b"", {}, "not_json"),
        (200, b"\xff\xfe", {}, "not_json"),
        (200, b'{"unexpected": 1}', {}, "bad_response"),
        (200, b'"just text"', {}, "bad_response"),
        (200, b"[0.5, 0.7]", {"expected_rows": 1}, "prediction_count"),
        (200, b"0.5", {"expected_rows": 2}, "bad_response"),  # a scalar: not predictions
        (200, b"[0.5]", {"run_function_failed": True}, "run_function_failed"),
        (200, b"[0.5", {"complete": False}, "truncated"),
        (307, b"", {}, "redirect"),
        (302, b"", {}, "redirect"),
        (500, b'{"message": "x"}', {"run_function_failed": True}, "http_500"),
        (429, b"", {}, "http_429"),
        (101, b"", {}, "http_101"),
    ],
)
def test_check_response(status, body, kwargs, kind):
    assert check_response(status, body, **kwargs) == kind


@pytest.mark.parametrize(
    ("error", "headers", "kind"),
    [
        (TimeoutError("timed out"), False, "timeout"),
        (socket.timeout("timed out"), True, "timeout"),  # noqa: UP041
        (ssl.SSLCertVerificationError("certificate verify failed"), False, "tls"),
        (ConnectionRefusedError(111, "refused"), False, "connection"),
        (ConnectionResetError("reset"), True, "truncated"),
    ],
)
def test_classify_error(error, headers, kind):
    assert classify_error(error, headers_received=headers) == kind


def test_the_bench_asks_for_the_encodings_the_client_asks_for() -> None:
    from aml_client.bench.checks import ACCEPT_ENCODING
    from aml_client.http.session import ACCEPT_ENCODING as CLIENT

    assert ACCEPT_ENCODING == CLIENT == "gzip, deflate"


def test_decode_body_reads_what_was_asked_for_and_nothing_else(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import gzip
    import zlib

    from aml_client.bench import checks
    from aml_client.bench.checks import decode_body

    body = b'{"Results": ["no", "yes"]}'
    raw = zlib.compressobj(wbits=-zlib.MAX_WBITS)
    assert decode_body(gzip.compress(body), "gzip") == body
    assert decode_body(gzip.compress(body), " GZIP ") == body
    assert decode_body(zlib.compress(body), "deflate") == body
    assert decode_body(raw.compress(body) + raw.flush(), "deflate") == body  # raw, as some send
    assert decode_body(body, "identity") == body
    assert decode_body(gzip.compress(zlib.compress(body)), "deflate, gzip") == body
    assert decode_body(body, "br") is None  # not asked for
    assert decode_body(body, "gzip") is None  # not gzip at all
    assert decode_body(gzip.compress(body)[:-12], "gzip") is None  # cut short
    monkeypatch.setattr(checks, "MAX_DECODED_BYTES", 10)
    assert decode_body(gzip.compress(body), "gzip") is None  # larger than the limit
