"""The HTTP layer (aml_client.http) against real HTTP servers on 127.0.0.1.

Where the key may go, the retry rule ("the model may have run"), the total deadline per attempt,
tokens refreshed before expiry and once after a 401, Azure's error semantics, the JSON encoder
and the prediction count — through the sync and async clients alike. Token commands are in
test_http_token_command.py.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.faults import FaultServer, Reply, refused_port

from aml_client import errors
from aml_client.client import AsyncEndpoint, Endpoint, RetryPolicy
from aml_client.http import KeyCredential, TokenCredential, encode_json
from aml_client.schema import load_schema

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
SWAGGER = json.loads((CORPUS / "swagger" / "004-abhijit-kalita.json").read_text())
ROWS = load_schema(SWAGGER).example_rows(2)
KEY = "http-layer-KEY-2b7e151628aed2a6"
FAST = RetryPolicy(max_retries=2, backoff_base_s=0.02, backoff_max_s=0.05)


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(swagger=SWAGGER) as srv:
        srv.default = Reply(200, {"Results": ["no", "yes"]})
        yield srv


@pytest.fixture
def other() -> Iterator[FaultServer]:
    """Another origin (same host, another port): it must never see the key."""
    with FaultServer(swagger=SWAGGER) as srv:
        yield srv


@pytest.fixture(params=["sync", "async"])
def call(request: pytest.FixtureRequest) -> Any:
    """``call(uri, method, *args, **endpoint_kw)`` through Endpoint or AsyncEndpoint."""

    def run(uri: str, name: str, *args: Any, **kw: Any) -> Any:
        kw.setdefault("retry", FAST)
        kw.setdefault("credential", KeyCredential(KEY))
        credential = kw.pop("credential")
        if request.param == "sync":
            with Endpoint(uri, credential, **kw) as endpoint:
                return getattr(endpoint, name)(*args)

        async def go() -> Any:
            async with AsyncEndpoint(uri, credential, **kw) as endpoint:
                return await getattr(endpoint, name)(*args)

        return asyncio.run(go())

    return run


def _auths(srv: FaultServer) -> list[str | None]:
    return [r.headers.get("Authorization") for r in srv.requests]


# -- where the key goes ---------------------------------------------------------------------


def test_a_swagger_uri_on_another_port_never_receives_the_key(
    call: Any, server: FaultServer, other: FaultServer
) -> None:
    result = call(server.scoring_uri, "score", ROWS, swagger_uri=f"{other.url}/swagger.json")
    assert result.predictions == ["no", "yes"]
    assert [r.path for r in other.requests] == ["/swagger.json"]
    assert _auths(other) == [None], "the other origin got no Authorization header"
    assert _auths(server) == [f"Bearer {KEY}"], "the scoring origin did"


def test_the_swagger_on_the_scoring_origin_gets_the_key(call: Any, server: FaultServer) -> None:
    call(server.scoring_uri, "schema")
    assert _auths(server) == [f"Bearer {KEY}"]


def test_every_request_names_this_release_in_its_user_agent(
    call: Any, server: FaultServer
) -> None:
    import aml_client

    call(server.scoring_uri, "score", ROWS)
    agents = {r.headers.get("User-Agent") for r in server.requests}
    assert agents == {f"amlc/{aml_client.__version__}"}, agents


def test_a_post_redirect_is_not_followed_and_says_where(
    call: Any, server: FaultServer, other: FaultServer
) -> None:
    server.queue(Reply(307, "", {"Location": f"{other.url}/score"}))
    with pytest.raises(errors.RedirectError, match=f"redirected to {other.url}/score") as caught:
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    assert caught.value.location == f"{other.url}/score"
    assert other.requests == [], "nothing reached the redirect's target"
    assert len(server.scores) == 1


def test_a_swagger_redirect_to_another_origin_is_refused(
    call: Any, server: FaultServer, other: FaultServer
) -> None:
    server.swagger = None
    with FaultServer() as mover:
        mover.reply_for = lambda method, path: Reply(  # type: ignore[method-assign]
            302, "", {"Location": f"{other.url}/swagger.json"}
        )
        with pytest.raises(errors.RedirectError, match="not followed"):
            call(server.scoring_uri, "schema", swagger_uri=f"{mover.url}/swagger.json")
    assert other.requests == []


def test_a_swagger_redirect_within_the_origin_is_followed_with_the_key(call: Any) -> None:
    with FaultServer(swagger=SWAGGER) as srv:
        original = srv.reply_for

        def moved(method: str, path: str) -> Reply:
            if path == "/old/swagger.json":
                return Reply(301, "", {"Location": "/swagger.json"})
            return original(method, path)

        srv.reply_for = moved  # type: ignore[method-assign]
        schema = call(srv.scoring_uri, "schema", swagger_uri=f"{srv.url}/old/swagger.json")
    assert len(schema.columns) == 20
    assert [r.path for r in srv.requests] == ["/old/swagger.json", "/swagger.json"]
    assert _auths(srv) == [f"Bearer {KEY}"] * 2


def test_a_non_json_swagger_body_is_never_read_as_a_path(call: Any, server: FaultServer) -> None:
    server.swagger = None
    server.reply_for = lambda method, path: Reply(  # type: ignore[method-assign]
        200, "/etc/passwd", content_type="text/plain"
    )
    with pytest.raises(errors.SchemaError, match="not valid JSON"):
        call(server.scoring_uri, "schema")


# -- the retry rule ---------------------------------------------------------------------------


@pytest.mark.parametrize("status", [500, 502, 504, 408, 424, 400])
def test_a_post_whose_answer_came_is_not_sent_again(
    call: Any, server: FaultServer, status: int
) -> None:
    server.queue(Reply(status, {"message": f"status {status}"}))
    with pytest.raises(errors.EndpointError) as caught:
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    assert len(server.scores) == 1, "the model may have run: one request only"
    assert caught.value.status_code == status and not caught.value.retryable


@pytest.mark.parametrize("status", [429, 503, 409])
def test_statuses_that_prove_the_model_did_not_run_are_retried(
    call: Any, server: FaultServer, status: int
) -> None:
    server.queue(Reply(status, {"message": "not now"}))
    result = call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    assert result.predictions == ["no", "yes"] and result.attempts == 2
    assert len(server.scores) == 2


def test_retry_after_is_honoured(call: Any, server: FaultServer) -> None:
    server.queue(Reply(429, {"message": "Too many pending requests"}, {"Retry-After": "1"}))
    result = call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    first, second = server.scores
    assert second.at - first.at >= 0.95, "waited for the Retry-After"
    assert result.attempts == 2


def test_retry_after_ms_wins(call: Any, server: FaultServer) -> None:
    server.queue(Reply(503, {"message": "busy"}, {"retry-after-ms": "300", "Retry-After": "30"}))
    call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    first, second = server.scores
    assert second.at - first.at >= 0.28
    assert second.at - first.at < 20, "the 30 s Retry-After was not the one used"


def test_a_read_timeout_is_not_retried_for_a_post(call: Any, server: FaultServer) -> None:
    server.queue(Reply(200, {"Results": ["late", "late"]}, delay_s=3))
    with pytest.raises(errors.EndpointTimeoutError):
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER, timeout_s=0.3)
    assert len(server.scores) == 1


def test_a_refused_connection_is_retried(call: Any) -> None:
    uri = f"http://127.0.0.1:{refused_port()}/score"
    started = time.monotonic()
    with pytest.raises(errors.ConnectionFailedError) as caught:
        call(uri, "score", ROWS, swagger=SWAGGER, retry=RetryPolicy(2, 0.1, 0.1, 0.0))
    assert caught.value.retryable
    assert time.monotonic() - started >= 0.19, "two backoffs of 0.1 s"


# -- the deadline -----------------------------------------------------------------------------


def test_a_trickling_body_is_cut_at_the_timeout(call: Any, server: FaultServer) -> None:
    body = {"Results": ["x" * 20, "y" * 20]}  # ~50 bytes at 1 byte/s: ~50 s if never cut
    server.queue(Reply(200, body, trickle_s=1.0))
    started = time.monotonic()
    with pytest.raises(errors.EndpointTimeoutError, match=r"within 1\.5 s"):
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER, timeout_s=1.5)
    took = time.monotonic() - started
    assert took < 20, f"cut long before the body ended ({took:.1f} s)"
    assert server.trickle_cut.wait(10), "the client hung up mid-body"
    assert len(server.scores) == 1


# -- tokens -----------------------------------------------------------------------------------


class _Tokens:
    """Issues numbered tokens; the server accepts only those in ``valid``."""

    def __init__(self, life_s: float = 3600.0) -> None:
        self.issued = 0
        self.life_s = life_s
        self.valid: set[str] = set()
        self.lock = threading.Lock()

    def fetch(self) -> tuple[str, float]:
        with self.lock:
            self.issued += 1
            token = f"token-{self.issued}"
        return token, time.time() + self.life_s

    def check(self, header: str | None) -> bool:
        return header is not None and header.removeprefix("Bearer ") in self.valid


def test_a_refused_token_is_refreshed_once_then_the_call_succeeds(
    call: Any, server: FaultServer
) -> None:
    tokens = _Tokens()
    tokens.valid = {"token-2"}  # the first token was revoked
    server.auth_check = tokens.check
    result = call(
        server.scoring_uri, "score", ROWS, swagger=SWAGGER,
        credential=TokenCredential(fetch=tokens.fetch),
    )
    assert result.predictions == ["no", "yes"]
    assert _auths(server) == ["Bearer token-1", "Bearer token-2"]


def test_a_second_401_surfaces(call: Any, server: FaultServer) -> None:
    tokens = _Tokens()
    server.auth_check = tokens.check  # nothing is valid
    with pytest.raises(errors.AuthenticationError) as caught:
        call(
            server.scoring_uri, "score", ROWS, swagger=SWAGGER,
            credential=TokenCredential(fetch=tokens.fetch),
        )
    assert caught.value.exit_code == 3
    assert _auths(server) == ["Bearer token-1", "Bearer token-2"], "refreshed once, no more"


def test_a_key_is_not_retried_on_401(call: Any, server: FaultServer) -> None:
    server.auth_check = lambda header: False
    with pytest.raises(errors.AuthenticationError):
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    assert len(server.scores) == 1


def test_tokens_are_refreshed_before_they_expire() -> None:
    now = [1000.0]
    fetched: list[float] = []

    def fetch() -> tuple[str, float]:
        fetched.append(now[0])
        return f"t{len(fetched)}", now[0] + 4.0  # a 4 s life: refreshed halfway

    credential = TokenCredential(fetch=fetch, clock=lambda: now[0])
    assert credential.secret() == "t1"
    now[0] += 1.9
    assert credential.secret() == "t1"
    now[0] += 0.2
    assert credential.secret() == "t2"
    credential.invalidate("t1")  # an old token refused: the current one stays
    assert credential.secret() == "t2"
    credential.invalidate("t2")
    assert credential.secret() == "t3"
    assert credential.refresh_due_at() == pytest.approx(now[0] + 2.0)


def test_concurrent_callers_fetch_once() -> None:
    calls = []

    def fetch() -> tuple[str, float]:
        calls.append(1)
        time.sleep(0.2)
        return "shared", time.time() + 3600

    credential = TokenCredential(fetch=fetch)
    results: list[str] = []
    threads = [
        threading.Thread(target=lambda: results.append(credential.secret())) for _ in range(8)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == ["shared"] * 8 and len(calls) == 1


# -- Azure semantics, deployments, counts, JSON -----------------------------------------------


def test_a_424_carries_the_model_containers_status_and_reason(
    call: Any, server: FaultServer
) -> None:
    server.queue(
        Reply(
            424,
            {"message": "model container failed"},
            {"ms-azureml-model-error-statuscode": "500",
             "ms-azureml-model-error-reason": "ValueError: bad input"},
        )
    )
    with pytest.raises(errors.ModelError) as caught:
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    assert caught.value.model_status == 500
    assert caught.value.model_reason == "ValueError: bad input"
    assert "answered 500 ValueError: bad input" in str(caught.value)


@pytest.mark.parametrize(
    ("message", "cause"),
    [
        ("Too many pending requests: max_concurrent_requests_per_instance", "concurrency"),
        ("Rate limit exceeded for this endpoint", "rate"),
        ("slow down", None),
    ],
)
def test_429_causes_are_told_apart(
    call: Any, server: FaultServer, message: str, cause: Any
) -> None:
    server.queue(*[Reply(429, {"message": message}, {"Retry-After": "0"})] * 3)
    with pytest.raises(errors.RateLimitError) as caught:
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    assert caught.value.cause == cause
    assert message in str(caught.value), "the server's own message is kept"


def test_a_deployment_is_pinned_and_the_answering_one_recorded(
    call: Any, server: FaultServer
) -> None:
    server.default = Reply(200, {"Results": ["no", "no"]}, {"azureml-model-deployment": "blue"})
    result = call(server.scoring_uri, "score", ROWS, swagger=SWAGGER, deployment="blue")
    assert server.scores[0].headers["azureml-model-deployment"] == "blue"
    assert result.deployment == "blue"


def test_an_unknown_deployment_404_is_worded(call: Any, server: FaultServer) -> None:
    server.queue(Reply(404, {"message": "Not found"}))
    with pytest.raises(errors.NotFoundError, match="no deployment named 'green'"):
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER, deployment="green")


def test_without_a_deployment_the_answer_may_not_say(call: Any, server: FaultServer) -> None:
    result = call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    assert result.deployment is None
    assert "azureml-model-deployment" not in server.scores[0].headers


@pytest.mark.parametrize("body", [{"Results": ["one"]}, {"Results": [1, 2, 3]}, {"Results": 7}])
def test_the_prediction_count_must_match_the_rows(
    call: Any, server: FaultServer, body: Any
) -> None:
    server.default = Reply(200, body)
    with pytest.raises(errors.ResponseFormatError, match="2 rows sent but") as caught:
        call(server.scoring_uri, "score", ROWS, swagger=SWAGGER)
    assert caught.value.exit_code == 4


@pytest.mark.parametrize(("value", "name"), [(math.nan, "NaN"), (math.inf, "Infinity")])
def test_nan_is_refused_with_row_and_column(
    call: Any, server: FaultServer, value: float, name: str
) -> None:
    rows = [dict(ROWS[0]), dict(ROWS[1]), dict(ROWS[0])]
    rows[2]["euribor3m"] = value
    with pytest.raises(errors.ValidationError) as caught:
        call(server.scoring_uri, "score", rows, swagger=SWAGGER)
    assert str(caught.value) == f"row 3, column 'euribor3m': {name} cannot be sent as JSON"
    assert server.scores == [], "nothing was sent"


def test_encode_json_elsewhere_in_a_payload() -> None:
    with pytest.raises(errors.ValidationError, match="GlobalParameters/x: -Infinity"):
        encode_json({"data": [], "GlobalParameters": {"x": -math.inf}})
    assert encode_json({"data": [{"é": 1.5}]}) == '{"data":[{"é":1.5}]}'.encode()


def test_the_http_layers_public_api_is_pinned() -> None:
    import aml_client.http as http

    assert sorted(http.__all__) == [
        "AsyncSession", "Credential", "KeyCredential", "OriginAuth", "Reply", "RetryPolicy",
        "Session", "TokenCredential", "encode_json", "entra_id_credential",
        "error_for_response", "non_finite_problems", "parse_retry_after", "retryable_status",
        "same_origin", "token_command_credential",
    ]  # fmt: skip
    for name in http.__all__:
        assert getattr(http, name) is not None
