"""HTTP status → typed error, in one place, with what Azure says about the failure.

The wording follows CONTRACT.md's status table: a 424 carries the model container's own status
and reason (``ms-azureml-model-error-statuscode`` / ``-reason``); a 429 says whether too many
requests were pending or a rate limit was hit, when the response tells; a 404 explains the
managed-endpoint meanings (no deployment takes traffic, or the named deployment does not
exist); a 3xx says where it pointed and is never followed for a POST.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from aml_client import errors
from aml_client.http.retry import parse_retry_after, retryable_status

__all__ = ["error_for_response", "request_id", "server_message"]

MODEL_STATUS_HEADER = "ms-azureml-model-error-statuscode"
MODEL_REASON_HEADER = "ms-azureml-model-error-reason"
DEPLOYMENT_HEADER = "azureml-model-deployment"
_BODY_KEPT = 2000


class Answer(Protocol):
    """What the mapping reads of an answer (an ``httpx.Response`` or a session ``Reply``)."""

    @property
    def status_code(self) -> int: ...

    @property
    def reason_phrase(self) -> str: ...

    @property
    def headers(self) -> Mapping[str, str]: ...

    @property
    def text(self) -> str: ...


def request_id(headers: Mapping[str, str]) -> str | None:
    return headers.get("x-ms-request-id") or headers.get("x-request-id")


def server_message(text: str) -> str:
    """The server's own explanation: ``message``/``error``/``detail`` of a JSON body, else text."""
    text = text.strip()
    try:
        body = json.loads(text)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return text[:300]
    if isinstance(body, dict):
        for key in ("message", "error", "Message", "detail"):
            if key in body:
                value = body[key]
                if isinstance(value, dict):
                    value = value.get("message") or json.dumps(value)
                return str(value)[:300]
    if isinstance(body, str):
        return body[:300]
    return text[:300]


def error_for_response(
    response: Answer, *, method: str = "POST", deployment: str | None = None
) -> errors.EndpointError:
    """The typed error for an HTTP error status (any status ≥ 300), with the server's message,
    request id, ``Retry-After`` and whether the request may be sent again."""
    error = _error(response, method, deployment)
    if error.retry_after_s is None:
        error.retry_after_s = parse_retry_after(response.headers)
    return error


def _error(response: Answer, method: str, deployment: str | None) -> errors.EndpointError:
    status = response.status_code
    headers = response.headers
    text = response.text
    message = server_message(text)
    reason = response.reason_phrase or ""
    detail = f"HTTP {status} {reason}".strip() + (f": {message}" if message else "")
    kwargs: dict[str, Any] = {
        "status_code": status,
        "request_id": request_id(headers),
        "body": text[:_BODY_KEPT],
        "retryable": retryable_status(method, status),
    }
    if 300 <= status < 400:
        location = headers.get("location")
        where = f"redirected to {location}" if location else "a redirect without a Location"
        return errors.RedirectError(
            f"HTTP {status}: {where}; not followed (a credential must not leave the endpoint's "
            "origin): configure the final URI instead",
            location=location,
            **kwargs,
        )
    if status in (401, 403):
        hint = "the key or token was refused" if status == 401 else "no permission"
        return errors.AuthenticationError(f"{detail} ({hint})", **kwargs)
    if status == 404:
        if deployment:
            hint = (
                f"no deployment named '{deployment}' on this endpoint, or a wrong URI"
            )
        elif "traffic" in message.lower() or "deployment" in message.lower():
            hint = "no deployment takes traffic: name one with --deployment or set the traffic"
        else:
            hint = "a wrong URI, or no deployment takes traffic (name one with --deployment)"
        return errors.NotFoundError(f"{detail} ({hint})", **kwargs)
    if status == 408:
        return errors.EndpointTimeoutError(
            f"{detail} (the endpoint's request timeout, request_timeout_ms: not retried, "
            "since the model may have run)",
            **kwargs,
        )
    if status == 413:
        return errors.PayloadTooLargeError(detail, **kwargs)
    if status == 429:
        cause = errors.RateLimitError.cause_of(f"{reason} {message}")
        hint = {
            "concurrency": " (too many requests pending for the deployment's "
            "max_concurrent_requests_per_instance)",
            "rate": " (a rate limit)",
        }.get(cause or "", "")
        return errors.RateLimitError(
            f"{detail}{hint}",
            retry_after_s=parse_retry_after(headers),
            cause=cause,
            **kwargs,
        )
    if status in (424, 500):
        model_status = _int(headers.get(MODEL_STATUS_HEADER))
        model_reason = headers.get(MODEL_REASON_HEADER)
        if model_status is not None or model_reason:
            said = " ".join(str(p) for p in (model_status, model_reason) if p)
            detail = f"{detail} (the model container answered {said})"
        return errors.ModelError(
            detail, model_status=model_status, model_reason=model_reason, **kwargs
        )
    if status in (502, 504):
        what = "crashed" if status == 502 else "timed out"
        return errors.UnavailableError(
            f"{detail} (on Kubernetes endpoints: the scoring function {what}; "
            f"{'not retried, since the model may have run' if method != 'GET' else 'retried'})",
            **kwargs,
        )
    if status == 503:
        return errors.UnavailableError(detail, **kwargs)
    if 400 <= status < 500:
        return errors.BadRequestError(detail, **kwargs)
    return errors.EndpointError(detail, **kwargs)


def _int(value: str | None) -> int | None:
    try:
        return int(value) if value else None
    except ValueError:
        return None
