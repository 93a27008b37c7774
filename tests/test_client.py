"""Endpoint and AsyncEndpoint against a real HTTP server on 127.0.0.1 that misbehaves on cue.

Every behaviour is checked through both clients: the ``client`` fixture runs the same calls
through ``Endpoint`` or, via ``asyncio.run``, through ``AsyncEndpoint``.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.faults import FaultServer, Reply, refused_port

from aml_client import KeyCredential, TokenCredential, errors
from aml_client import client as client_module
from aml_client.client import AsyncEndpoint, Endpoint, RetryPolicy, ScoreResult
from aml_client.http import parse_retry_after
from aml_client.schema import load_schema

CORPUS = Path(__file__).parent / "fixtures" / "corpus"
INPUTS_SWAGGER = json.loads((CORPUS / "swagger" / "004-abhijit-kalita.json").read_text())
DATA_SWAGGER = json.loads((CORPUS / "swagger" / "052-aimazin.json").read_text())
KEY = "k3y-do-not-print-7f9a2c1e5b"
FAST = RetryPolicy(max_retries=2, backoff_base_s=0.02, backoff_max_s=0.05)


class Driver:
    """The same calls through the sync or the async client."""

    def __init__(self, mode: str, uri: str, **kw: Any):
        self.mode = mode
        kw.setdefault("retry", FAST)
        self.kw = kw
        self.uri = uri
        self.sync = Endpoint(uri, **kw) if mode == "sync" else None

    def _run(self, name: str, *args: Any, **kw: Any) -> Any:
        if self.sync is not None:
            return getattr(self.sync, name)(*args, **kw)

        async def go() -> Any:
            async with AsyncEndpoint(self.uri, **self.kw) as endpoint:
                return await getattr(endpoint, name)(*args, **kw)

        return asyncio.run(go())

    def score(self, rows: Any, **kw: Any) -> ScoreResult:
        return self._run("score", rows, **kw)

    def score_raw(self, body: Any) -> ScoreResult:
        return self._run("score_raw", body)

    def health(self) -> str:
        return self._run("health")

    def close(self) -> None:
        if self.sync is not None:
            self.sync.close()


@pytest.fixture(params=["sync", "async"])
def mode(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(swagger=INPUTS_SWAGGER) as srv:
        yield srv


@pytest.fixture
def make(mode: str, server: FaultServer) -> Iterator[Any]:
    drivers: list[Driver] = []

    def factory(uri: str | None = None, **kw: Any) -> Driver:
        kw.setdefault("credential", KeyCredential(KEY))
        credential = kw.pop("credential")
        driver = Driver(mode, uri or server.scoring_uri, credential=credential, **kw)
        drivers.append(driver)
        return driver

    yield factory
    for driver in drivers:
        driver.close()


def rows(n: int = 2) -> list[dict]:
    return load_schema(INPUTS_SWAGGER).example_rows(n)


def test_public_api_is_pinned() -> None:
    assert sorted(client_module.__all__) == [
        "AsyncEndpoint",
        "Endpoint",
        "RetryPolicy",
        "ScoreResult",
        "open_async_endpoint",
        "open_endpoint",
    ]


# -- the happy path --------------------------------------------------------------------------------


def test_score_validates_wraps_and_normalises(make: Any, server: FaultServer) -> None:
    server.queue(Reply(200, json.dumps({"result": ["yes", "no"]})))  # double-encoded string
    result = make().score(rows(2))
    assert result.predictions == ["yes", "no"]
    assert result.status_code == 200
    assert result.attempts == 1
    assert result.request_id and result.request_id.startswith("req-")
    swagger_get, post = server.requests
    assert swagger_get.path == "/swagger.json"
    assert swagger_get.headers["Authorization"] == f"Bearer {KEY}", "swagger fetched with auth"
    assert post.headers["Authorization"] == f"Bearer {KEY}"
    assert post.headers["Content-Type"] == "application/json"
    assert len(post.headers["x-ms-client-request-id"]) == 32
    assert post.json() == {"Inputs": {"data": rows(2)}, "GlobalParameters": {"method": "predict"}}


def test_a_payload_in_the_other_convention_is_rewrapped(make: Any, server: FaultServer) -> None:
    make().score({"data": rows(1), "method": "predict_proba"})
    assert server.scores[0].json() == {
        "Inputs": {"data": rows(1)},
        "GlobalParameters": {"method": "predict_proba"},
    }


def test_invalid_rows_are_never_sent(make: Any, server: FaultServer) -> None:
    bad = rows(3)
    bad[2]["age"] = "abc"
    with pytest.raises(errors.ValidationError) as err:
        make().score(bad)
    assert str(err.value) == "row 3, column 'age': expected integer, got 'abc'"
    assert server.scores == []


def test_coerce_converts_strings(make: Any, server: FaultServer) -> None:
    strings = [{k: str(v) for k, v in row.items()} for row in rows(1)]
    make().score(strings, coerce=True)
    assert server.scores[0].json()["Inputs"]["data"] == rows(1)


def test_validate_false_sends_as_given(make: Any, server: FaultServer) -> None:
    make(swagger=DATA_SWAGGER).score([{"anything": "goes"}], validate=False)
    assert server.scores[0].json() == {"data": [{"anything": "goes"}]}


def test_score_raw_sends_bytes_untouched(make: Any, server: FaultServer) -> None:
    body = b'{"data": [{"x": 1}]}'
    result = make().score_raw(body)
    assert server.scores[0].body == body
    assert result.predictions == ["no"]
    assert [r.path for r in server.requests] == ["/score"], "no swagger needed"


def test_health_needs_no_key(make: Any, server: FaultServer) -> None:
    assert make().health() == "Healthy"
    assert "Authorization" not in server.requests[0].headers
    assert server.requests[0].path == "/"


def test_no_swagger_means_no_validation(make: Any, server: FaultServer) -> None:
    server.swagger = None
    driver = make()
    driver.score([{"free": "form"}])
    assert server.scores[0].json() == {"data": [{"free": "form"}]}
    if driver.sync is not None:
        driver.score([{"free": "again"}])
        paths = [r.path for r in server.requests]
        assert paths == ["/swagger.json", "/score", "/score"], "a missing swagger is remembered"


def test_a_row_source_keeps_its_global_parameters(
    make: Any, server: FaultServer, tmp_path: Path
) -> None:
    from aml_client.rows import read_rows

    path = tmp_path / "payload.json"
    path.write_text(json.dumps({"data": rows(2), "method": "predict_proba"}))
    server.queue(Reply(200, {"Results": ["no", "yes"]}))
    make().score(read_rows(path))
    assert server.scores[0].json() == {
        "Inputs": {"data": rows(2)},
        "GlobalParameters": {"method": "predict_proba"},
    }


def test_a_named_swagger_that_is_missing_is_an_error(make: Any, server: FaultServer) -> None:
    server.swagger = None
    with pytest.raises(errors.NotFoundError):
        make(swagger=f"{server.url}/swagger.json").score([{"free": "form"}])


def test_swagger_from_a_file_is_not_fetched(make: Any, server: FaultServer) -> None:
    make(swagger=CORPUS / "swagger" / "052-aimazin.json").score(rows(1))
    assert [r.path for r in server.requests] == ["/score"]
    assert set(server.scores[0].json()) == {"data"}


# -- faults ---------------------------------------------------------------------------------------


def test_429_retry_after_seconds_is_honoured(make: Any, server: FaultServer) -> None:
    server.queue(Reply(429, {"message": "Too many requests"}, {"Retry-After": "1"}))
    result = make(retry=RetryPolicy(max_retries=2, backoff_base_s=0.01)).score(rows(1))
    first, second = server.scores
    waited = second.at - first.at
    assert 0.95 <= waited < 2.0, waited
    assert result.attempts == 2
    assert first.headers["x-ms-client-request-id"] == second.headers["x-ms-client-request-id"]


def test_429_retry_after_http_date_is_honoured(make: Any, server: FaultServer) -> None:
    when = email.utils.formatdate(time.time() + 2, usegmt=True)  # whole seconds: waits 1-2 s
    server.queue(Reply(429, {"message": "slow down"}, {"Retry-After": when}))
    make(retry=RetryPolicy(max_retries=1, backoff_base_s=0.01)).score(rows(1))
    first, second = server.scores
    assert 0.9 <= second.at - first.at < 2.5


def test_429_out_of_retries_is_a_rate_limit_error(make: Any, server: FaultServer) -> None:
    server.queue(*[Reply(429, {"message": "quota"}, {"Retry-After": "0"})] * 3)
    with pytest.raises(errors.RateLimitError) as err:
        make().score(rows(1))
    assert err.value.retry_after_s == 0
    assert err.value.status_code == 429
    assert len(server.scores) == 3


def test_503_is_retried_then_surfaced(make: Any, server: FaultServer) -> None:
    server.queue(*[Reply(503, {"message": "Service Unavailable: queue full"})] * 3)
    with pytest.raises(errors.UnavailableError) as err:
        make().score(rows(1))
    assert len(server.scores) == 3, "one try + max_retries (2)"
    assert "queue full" in str(err.value)
    assert err.value.request_id == "req-4"


def test_503_then_success(make: Any, server: FaultServer) -> None:
    server.queue(Reply(503, {"message": "busy"}), Reply(429, "slow down"), Reply(200, [1]))
    result = make().score(rows(1))
    assert result.predictions == [1]
    assert result.attempts == 3


def test_backoff_grows_without_retry_after(make: Any, server: FaultServer) -> None:
    server.queue(*[Reply(503, {"message": "busy"})] * 3)
    policy = RetryPolicy(max_retries=2, backoff_base_s=0.2, backoff_max_s=8, jitter=0.0)
    with pytest.raises(errors.UnavailableError):
        make(retry=policy).score(rows(1))
    a, b, c = (r.at for r in server.scores)
    assert 0.18 <= b - a < 0.6
    assert 0.38 <= c - b < 0.9


def test_500_is_a_model_error_with_message_and_request_id(make: Any, server: FaultServer) -> None:
    server.queue(
        Reply(
            500,
            {"message": "An unexpected error occurred in scoring script. could not convert 'abc'"},
            {"x-ms-run-function-failed": "True"},
        )
    )
    with pytest.raises(errors.ModelError) as err:
        make().score(rows(1))
    assert len(server.scores) == 1, "500 is not retried by default"
    assert "could not convert 'abc'" in str(err.value)
    assert err.value.request_id == "req-2"
    assert "(request id req-2)" in str(err.value)


def test_error_inside_a_200_is_a_model_error(make: Any, server: FaultServer) -> None:
    server.queue(Reply(200, json.dumps({"error": "Input contains NaN"})))
    with pytest.raises(errors.ModelError, match="Input contains NaN") as err:
        make().score(rows(1))
    assert err.value.status_code == 200


def test_401_is_an_authentication_error_without_the_key(
    make: Any, server: FaultServer, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    server.queue(Reply(401, {"message": "Invalid key"}))
    driver = make()
    with pytest.raises(errors.AuthenticationError) as err:
        driver.score(rows(1))
    assert err.value.exit_code == 3
    assert "Invalid key" in str(err.value)
    for text in (str(err.value), repr(err.value), err.value.body or "", caplog.text):
        assert KEY not in text
        assert KEY[5:] not in text
    if driver.sync is not None:
        assert KEY not in repr(driver.sync)
        assert "k3y-" in repr(driver.sync), "the masked prefix is shown"


def test_expired_token_is_refreshed_once(make: Any, server: FaultServer) -> None:
    fetched: list[str] = []

    def fetch() -> tuple[str, float]:
        fetched.append(f"token-{len(fetched)}")
        return fetched[-1], time.time() + 3600

    server.queue(Reply(401, {"message": "token expired"}))
    result = make(credential=TokenCredential(fetch=fetch)).score(rows(1))
    assert result.predictions == ["no"]
    assert fetched == ["token-0", "token-1"]
    assert server.scores[-1].headers["Authorization"] == "Bearer token-1"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (400, errors.BadRequestError),
        (403, errors.AuthenticationError),
        (404, errors.NotFoundError),
        (408, errors.EndpointTimeoutError),
        (413, errors.PayloadTooLargeError),
        (415, errors.BadRequestError),
        (424, errors.ModelError),
        (502, errors.UnavailableError),
        (504, errors.UnavailableError),
    ],
)
def test_status_codes_map_to_typed_errors(
    make: Any, server: FaultServer, status: int, error: type[errors.EndpointError]
) -> None:
    server.queue(*[Reply(status, {"message": f"status {status} said so"})] * 3)
    with pytest.raises(error) as err:
        make(retry=RetryPolicy(max_retries=0)).score(rows(1))
    assert type(err.value) is error
    assert err.value.status_code == status
    assert f"status {status} said so" in str(err.value)


def test_a_redirect_is_reported_not_followed(make: Any, server: FaultServer) -> None:
    server.queue(Reply(301, "", {"Location": "https://elsewhere/score"}))
    with pytest.raises(errors.EndpointError, match="redirected to https://elsewhere/score"):
        make().score(rows(1))


def test_client_timeout(make: Any, server: FaultServer) -> None:
    server.queue(Reply(200, ["late"], delay_s=3))
    started = time.monotonic()
    with pytest.raises(errors.EndpointTimeoutError, match="client's timeout"):
        make(timeout_s=0.3).score(rows(1))
    assert time.monotonic() - started < 2
    assert len(server.scores) == 1, "a read timeout may have run the model: not retried"


def test_connection_refused(make: Any) -> None:
    uri = f"http://127.0.0.1:{refused_port()}/score"
    with pytest.raises(errors.ConnectionFailedError, match="cannot connect") as err:
        make(uri, swagger=INPUTS_SWAGGER).score(rows(1))
    assert err.value.exit_code == 4


def test_non_json_200_is_a_response_format_error(make: Any, server: FaultServer) -> None:
    html = b"<html><body>Welcome to nginx</body></html>"
    server.queue(Reply(200, html, content_type="text/html"))
    with pytest.raises(errors.ResponseFormatError, match="not JSON") as err:
        make().score(rows(1))
    assert err.value.request_id == "req-2"


def test_tls_is_verified_by_default(make: Any, tmp_path: Path) -> None:
    pytest.importorskip("cryptography")
    from support.faults import self_signed_cert

    with FaultServer(swagger=INPUTS_SWAGGER, tls=self_signed_cert(tmp_path)) as tls_server:
        with pytest.raises(errors.ConnectionFailedError, match="CERTIFICATE_VERIFY_FAILED"):
            make(tls_server.scoring_uri).score(rows(1))
        result = make(tls_server.scoring_uri, verify=False).score(rows(1))
        assert result.predictions == ["no"]


# -- units ----------------------------------------------------------------------------------------


def test_retry_policy_delays() -> None:
    policy = RetryPolicy(backoff_base_s=0.5, backoff_max_s=8.0, jitter=0.25)
    for n, full in enumerate([0.5, 1.0, 2.0, 4.0, 8.0, 8.0]):
        for _ in range(20):
            assert full * 0.75 <= policy.delay_s(n) <= full
    assert policy.delay_s(0, retry_after_s=7) == 7
    assert policy.delay_s(0, retry_after_s=600) <= 0.5, "absurd Retry-After falls back"
    assert policy.delay_s(0, retry_after_s=-1) <= 0.5


def test_parse_retry_after() -> None:
    import httpx

    assert parse_retry_after(httpx.Headers({"Retry-After": "3"})) == 3
    assert parse_retry_after(httpx.Headers({"retry-after-ms": "250"})) == 0.25
    date = email.utils.formatdate(1_000_010, usegmt=True)
    assert parse_retry_after(httpx.Headers({"Retry-After": date}), now=1_000_000) == 10
    assert parse_retry_after(httpx.Headers({"Retry-After": "soon"})) is None
    assert parse_retry_after(httpx.Headers({})) is None


@pytest.mark.parametrize(
    ("scoring", "swagger", "health"),
    [
        ("http://h:5001/score", "http://h:5001/swagger.json", "http://h:5001/"),
        (
            "https://x.westeurope.inference.ml.azure.com/score",
            "https://x.westeurope.inference.ml.azure.com/swagger.json",
            "https://x.westeurope.inference.ml.azure.com/",
        ),
        (
            "http://10.0.0.4:80/api/v1/service/bank/score",
            "http://10.0.0.4:80/api/v1/service/bank/swagger.json",
            "http://10.0.0.4:80/api/v1/service/bank/",
        ),
    ],
)
def test_sibling_uris(scoring: str, swagger: str, health: str) -> None:
    with Endpoint(scoring) as endpoint:
        assert endpoint.swagger_uri == swagger
        assert endpoint._core.health_uri == health
        endpoint.swagger_uri = "http://elsewhere/swagger.json"
        assert endpoint.swagger_uri == "http://elsewhere/swagger.json"


def test_bad_scoring_uri_is_a_config_error() -> None:
    with pytest.raises(errors.ConfigError):
        Endpoint("ftp://nope/score")


def test_from_profile_uses_resolve_target(
    server: FaultServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AMLC_SCORING_URI", server.scoring_uri)
    monkeypatch.setenv("AMLC_KEY", KEY)
    with Endpoint.from_profile() as endpoint:
        assert endpoint.scoring_uri == server.scoring_uri
        assert endpoint.score(rows(1)).predictions == ["no"]
    assert server.scores[0].headers["Authorization"] == f"Bearer {KEY}"

    async def go() -> list:
        async with AsyncEndpoint.from_profile() as endpoint:
            return (await endpoint.score(rows(1))).predictions

    assert asyncio.run(go()) == ["no"]


@pytest.mark.parametrize("body", [b"/etc/passwd", b"/dev/zero", b"\xef\xbb\xbf ./swagger.json"])
def test_a_swagger_body_is_parsed_as_json_never_opened_as_a_path(
    make: Any, server: FaultServer, body: bytes
) -> None:
    server.swagger = body  # type: ignore[assignment]
    with pytest.raises(errors.SchemaError, match=r"/swagger.json: not valid JSON"):
        make().score(rows(1))
    assert [r.path for r in server.requests] == ["/swagger.json"], "nothing was sent to score"
