"""One exception tree for everything amlc raises, drawn once so callers know what to catch.

    AmlcError
    ├── ConfigError             no endpoint configured, unknown profile, unreadable config file
    ├── InputError              an input file that cannot be read (file, line)
    ├── SchemaError             a swagger / OpenAPI document that cannot be understood
    ├── ValidationError         rows that do not match the schema (row, column, message)
    ├── CredentialError         no credential could be obtained (a token command failed, ...)
    └── EndpointError           anything that went wrong talking to the endpoint
        ├── ConnectionFailedError      refused, DNS, TLS
        ├── EndpointTimeoutError       408, or the client's deadline passed
        ├── AuthenticationError        401 / 403
        ├── NotFoundError              404 (wrong URI, unknown deployment, no traffic)
        ├── BadRequestError            400, 415 and other 4xx the caller must fix
        │   └── PayloadTooLargeError   413
        ├── RateLimitError             429 (``retry_after_s``, ``cause``)
        ├── ModelError                 424 / 500: the scoring script failed (``model_status``)
        ├── UnavailableError           502 / 503 / 504 (``retry_after_s``)
        ├── RedirectError              a 3xx: never followed for a POST (``location``)
        ├── ResponseFormatError        a 2xx body that is not the predictions asked for
        └── SwaggerFetchError          the swagger could not be fetched (``kind`` "swagger")
            └── SwaggerNotFoundError   404 for the swagger (also a NotFoundError)

Every EndpointError says whether the request may be sent again (``retryable``): only when
the endpoint cannot have run the model. Messages never contain a credential.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


class AmlcError(Exception):
    """Base of every error amlc raises on purpose."""

    #: Process exit code the CLI uses for this error.
    exit_code: int = 1


class ConfigError(AmlcError):
    exit_code = 2


class InputError(AmlcError):
    """An input that cannot be read; says which file and, where known, which line."""

    exit_code = 2

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None):
        where = ""
        if path is not None:
            where = f"{path}:{line}: " if line is not None else f"{path}: "
        super().__init__(f"{where}{message}")
        self.path = path
        self.line = line


class SchemaError(AmlcError):
    exit_code = 2


class CredentialError(AmlcError):
    """No credential could be obtained (a token command failed, Entra ID refused): the user
    must log in again or fix the command, as after a refused key."""

    exit_code = 3


@dataclass(frozen=True)
class RowProblem:
    """One thing wrong with one row: ``row`` counts from 1, ``column`` may be None for the row."""

    row: int | None
    column: str | None
    message: str

    def __str__(self) -> str:
        parts = []
        if self.row is not None:
            parts.append(f"row {self.row}")
        if self.column is not None:
            parts.append(f"column '{self.column}'")
        prefix = ", ".join(parts)
        return f"{prefix}: {self.message}" if prefix else self.message


class ValidationError(AmlcError):
    """Rows that would be rejected by the endpoint, caught before anything is sent."""

    exit_code = 2

    def __init__(self, problems: list[RowProblem], *, source: str | None = None):
        self.problems = list(problems)
        self.source = source
        first = str(self.problems[0]) if self.problems else "invalid payload"
        more = len(self.problems) - 1
        suffix = f" (and {more} more problem{'s' if more != 1 else ''})" if more > 0 else ""
        where = f"{source}: " if source else ""
        super().__init__(f"{where}{first}{suffix}")


class EndpointError(AmlcError):
    """The endpoint answered with an error, or could not be reached."""

    exit_code = 4
    #: The server's ``Retry-After`` (or ``retry-after-ms``) in seconds, when it sent one.
    retry_after_s: float | None = None

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        request_id: str | None = None,
        body: str | None = None,
        retryable: bool = False,
    ):
        super().__init__(message)
        self.status_code = status_code
        self.request_id = request_id
        self.body = body
        #: True only when the endpoint cannot have run the model (see aml_client.http.retry).
        self.retryable = retryable

    def __str__(self) -> str:
        text = super().__str__()
        # Once per message, even when the message already quotes an error that named it.
        if self.request_id and f"request id {self.request_id}" not in text:
            text = f"{text} (request id {self.request_id})"
        return text


class ConnectionFailedError(EndpointError):
    pass


class EndpointTimeoutError(EndpointError):
    pass


class AuthenticationError(EndpointError):
    exit_code = 3


class NotFoundError(EndpointError):
    pass


class BadRequestError(EndpointError):
    pass


class PayloadTooLargeError(BadRequestError):
    pass


class RateLimitError(EndpointError):
    """429. ``cause`` is ``"concurrency"`` (too many requests pending for the deployment's
    ``max_concurrent_requests_per_instance``), ``"rate"`` (a requests-per-second limit) or
    None when the response does not say."""

    def __init__(
        self,
        message: str,
        *,
        retry_after_s: float | None = None,
        cause: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s
        self.cause = cause

    @staticmethod
    def cause_of(text: str) -> str | None:
        """The ``cause`` a 429's message (and reason phrase) points to, None when it does not
        say. Shared by the client and the benchmark, which reports it beside the 429 count."""
        lowered = text.lower()
        if "pending" in lowered or "concurren" in lowered:
            return "concurrency"
        if "rate" in lowered or "quota" in lowered or "per second" in lowered:
            return "rate"
        return None


class ModelError(EndpointError):
    """The scoring script failed. On a managed endpoint (424) Azure adds what the model
    container answered: ``model_status`` and ``model_reason``."""

    def __init__(
        self,
        message: str,
        *,
        model_status: int | None = None,
        model_reason: str | None = None,
        **kwargs: Any,
    ):
        super().__init__(message, **kwargs)
        self.model_status = model_status
        self.model_reason = model_reason


class UnavailableError(EndpointError):
    """The platform is overloaded or restarting; a 503 may say when to come back."""

    def __init__(self, message: str, *, retry_after_s: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after_s = retry_after_s


class RedirectError(EndpointError):
    """The endpoint answered 3xx. A POST is never re-sent elsewhere (the key would follow it,
    and the model might run twice): the message says where ``location`` pointed."""

    def __init__(self, message: str, *, location: str | None = None, **kwargs: Any):
        super().__init__(message, **kwargs)
        self.location = location


class ResponseFormatError(EndpointError):
    pass


class SwaggerFetchError(EndpointError):
    """The endpoint answered its swagger's URI with an error: a problem with the swagger, not
    with the model, whatever the status (``--json`` reports ``"kind": "swagger"``). A refused
    credential stays an :class:`AuthenticationError`."""

    kind = "swagger"


class SwaggerNotFoundError(SwaggerFetchError, NotFoundError):
    """404 for the swagger: the scoring script may lack inference-schema decorators."""


def swagger_fetch_error(exc: EndpointError, url: str) -> EndpointError:
    """What a failed swagger download is reported as: a :class:`SwaggerFetchError` naming
    ``url`` when the server answered with an error; ``exc`` itself when the credential was
    refused, a redirect was not followed (its own message says where it pointed and why), or
    nothing answered (no connection, TLS, timeout: the endpoint, not its swagger)."""
    kept = AuthenticationError | RedirectError | SwaggerFetchError
    if isinstance(exc, kept) or exc.status_code is None:
        return exc
    said = Exception.__str__(exc)
    kwargs: dict[str, Any] = {
        "status_code": exc.status_code,
        "request_id": exc.request_id,
        "body": exc.body,
        "retryable": exc.retryable,
    }
    if isinstance(exc, NotFoundError):
        return SwaggerNotFoundError(
            f"no swagger at {url} (HTTP 404: the scoring script may lack inference-schema "
            "decorators)",
            **kwargs,
        )
    error = SwaggerFetchError(f"cannot fetch the swagger at {url}: {said}", **kwargs)
    error.exit_code = exc.exit_code
    error.retry_after_s = exc.retry_after_s
    return error
