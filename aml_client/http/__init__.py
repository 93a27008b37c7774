"""The one HTTP layer of amlc: credentials, where they may go, deadlines, retries, errors.

Everything that talks to an endpoint goes through here — the client (sync and async), batch
scoring, the swagger fetch and the Swagger UI proxy; the bench load processes share the policy
(credentials, deadline, no redirects) over Locust's own transport.

    credentials    key / token / fetched tokens (token command, Entra ID) as httpx.Auth flows
    token_command  AMLC_TOKEN_COMMAND: run a program that prints a token
    origin         a credential only ever goes to its own scheme://host:port
    deadline       a total deadline per attempt (connect + send + whole body)
    retry          the retry policy and the rule for "the model may have run"
    responses      HTTP status → typed error (Azure's semantics)
    jsonbody       the one JSON encoder for request bodies (NaN refused, with row and column)
    session        pooled sync / async sends applying all of the above
"""

from __future__ import annotations

from aml_client.http.credentials import (
    Credential,
    KeyCredential,
    TokenCredential,
    entra_id_credential,
    token_command_credential,
)
from aml_client.http.jsonbody import encode_json, non_finite_problems
from aml_client.http.origin import OriginAuth, same_origin
from aml_client.http.responses import error_for_response
from aml_client.http.retry import RetryPolicy, parse_retry_after, retryable_status
from aml_client.http.session import AsyncSession, Reply, Session

__all__ = [
    "AsyncSession",
    "Credential",
    "KeyCredential",
    "OriginAuth",
    "Reply",
    "RetryPolicy",
    "Session",
    "TokenCredential",
    "encode_json",
    "entra_id_credential",
    "error_for_response",
    "non_finite_problems",
    "parse_retry_after",
    "retryable_status",
    "same_origin",
    "token_command_credential",
]
