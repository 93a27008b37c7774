"""amlc: call, prove and load-test machine-learning scoring endpoints (Azure ML first).

The public API is this module's ``__all__``; the modules behind it may move. The client and
schema classes are loaded on first use, so ``import aml_client`` (and ``amlc --help``) stays
cheap: no httpx or pydantic until they are needed, and never Locust, pandas or scikit-learn.

    from aml_client import Endpoint, KeyCredential
    with Endpoint("https://…/score", KeyCredential(key)) as endpoint:
        print(endpoint.score(rows).predictions)
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

from aml_client.errors import (
    AmlcError,
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConnectionFailedError,
    CredentialError,
    EndpointError,
    EndpointTimeoutError,
    InputError,
    ModelError,
    NotFoundError,
    PayloadTooLargeError,
    RateLimitError,
    RedirectError,
    ResponseFormatError,
    RowProblem,
    SchemaError,
    SwaggerFetchError,
    UnavailableError,
    ValidationError,
)
from aml_client.version import __version__

if TYPE_CHECKING:
    from aml_client.batch import (
        BatchOptions,
        BatchProgress,
        ScoreFileResult,
        score_file,
        score_file_async,
    )
    from aml_client.client import (
        AsyncEndpoint,
        Endpoint,
        RetryPolicy,
        ScoreResult,
        open_async_endpoint,
        open_endpoint,
    )
    from aml_client.config import Target, resolve_target
    from aml_client.envelope import Convention
    from aml_client.http.credentials import (
        KeyCredential,
        TokenCredential,
        entra_id_credential,
        token_command_credential,
    )
    from aml_client.schema import ScoringSchema, load_schema

# name -> module that defines it; imported on first attribute access (PEP 562).
_LAZY = {
    "Endpoint": "aml_client.client",
    "AsyncEndpoint": "aml_client.client",
    "ScoreResult": "aml_client.client",
    "RetryPolicy": "aml_client.client",
    "ScoringSchema": "aml_client.schema",
    "Convention": "aml_client.envelope",
    "load_schema": "aml_client.schema",
    "Target": "aml_client.config",
    "resolve_target": "aml_client.config",
    "open_endpoint": "aml_client.client",
    "open_async_endpoint": "aml_client.client",
    "BatchOptions": "aml_client.batch",
    "BatchProgress": "aml_client.batch",
    "score_file": "aml_client.batch",
    "score_file_async": "aml_client.batch",
    "ScoreFileResult": "aml_client.batch",
    "KeyCredential": "aml_client.http.credentials",
    "TokenCredential": "aml_client.http.credentials",
    "entra_id_credential": "aml_client.http.credentials",
    "token_command_credential": "aml_client.http.credentials",
}

__all__ = [
    "AmlcError",
    "AsyncEndpoint",
    "AuthenticationError",
    "BadRequestError",
    "BatchOptions",
    "BatchProgress",
    "ConfigError",
    "ConnectionFailedError",
    "Convention",
    "CredentialError",
    "Endpoint",
    "EndpointError",
    "EndpointTimeoutError",
    "InputError",
    "KeyCredential",
    "ModelError",
    "NotFoundError",
    "PayloadTooLargeError",
    "RateLimitError",
    "RedirectError",
    "ResponseFormatError",
    "RetryPolicy",
    "RowProblem",
    "SchemaError",
    "ScoreFileResult",
    "ScoreResult",
    "ScoringSchema",
    "SwaggerFetchError",
    "Target",
    "TokenCredential",
    "UnavailableError",
    "ValidationError",
    "__version__",
    "entra_id_credential",
    "load_schema",
    "open_async_endpoint",
    "open_endpoint",
    "resolve_target",
    "score_file",
    "score_file_async",
    "token_command_credential",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aml_client' has no attribute '{name}'")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
