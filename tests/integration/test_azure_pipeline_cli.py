"""``amlc pipeline run`` (a real process) against a local server that checks what it receives.

The Entra ID token comes from azure-identity's DefaultAzureCredential, limited by
``AZURE_TOKEN_CREDENTIALS`` to the Azure CLI double (tests/support/azure_cli.py).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from support.azure_cli import AzureCliDouble
from werkzeug import Request, Response

from aml_client.azure.pipeline import PipelineClient
from aml_client.errors import EndpointTimeoutError

Run = Callable[..., Any]
PREFIX = (
    "/pipelines/v1.0/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/rg"
    "/providers/Microsoft.MachineLearningServices/workspaces/ws/PipelineRuns"
)
SUBMIT = f"{PREFIX}/PipelineSubmit/5d0e7d2c-pipeline"
RUN_ID = "a1b2c3d4-run"


@pytest.fixture
def az(tmp_path: Path) -> AzureCliDouble:
    return AzureCliDouble(tmp_path, token="entra-token-for-arm")


def submit_expectation(httpserver: HTTPServer, body: dict[str, Any]) -> None:
    httpserver.expect_oneshot_request(
        SUBMIT,
        method="POST",
        json=body,
        headers={"Authorization": "Bearer entra-token-for-arm", "Content-Type": "application/json"},
    ).respond_with_json({"Id": RUN_ID, "Status": {"StatusCode": 0}, "ExperimentName": "bank"})


def test_run_posts_the_documented_body_and_prints_the_run_id(
    amlc: Run, httpserver: HTTPServer, az: AzureCliDouble
) -> None:
    submit_expectation(httpserver, {
        "ExperimentName": "bank",
        "ParameterAssignments": {"n_rows": 500, "rate": 0.25, "zip": "01234", "label": "y",
                                 "version": "3"},
        "Description": "nightly retrain",
        "Tags": {"team": "ml"},
    })  # fmt: skip

    result = amlc(
        "pipeline", "run", httpserver.url_for(SUBMIT), "--experiment", "bank",
        "--param", "n_rows=500", "--param", "rate=0.25", "--param", "zip=01234",
        "--param", "label=y", "--param-str", "version=3",
        "--description", "nightly retrain", "--tag", "team=ml",
        env=az.env(),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.stdout == f"{RUN_ID}\n"
    httpserver.check_assertions()
    assert az.resources() == ["https://management.azure.com"]


class RunWalk:
    """Answers status reads with the next status of a run, recording what it was sent."""

    def __init__(self, *codes: Any) -> None:
        self.codes = list(codes)
        self.seen: list[Request] = []

    def __call__(self, request: Request) -> Response:
        self.seen.append(request)
        code = self.codes.pop(0) if len(self.codes) > 1 else self.codes[0]
        body = {"Id": RUN_ID, "Status": {"StatusCode": code, "StatusDetail": None}}
        return Response(json.dumps(body), content_type="application/json")


def test_wait_follows_the_run_to_the_end(
    amlc: Run, httpserver: HTTPServer, az: AzureCliDouble
) -> None:
    submit_expectation(httpserver, {"ExperimentName": "bank", "ParameterAssignments": {}})
    walk = RunWalk(0, "Running", "Running", "Finished")
    httpserver.expect_request(f"{PREFIX}/{RUN_ID}", method="GET").respond_with_handler(walk)

    result = amlc(
        "pipeline", "run", httpserver.url_for(SUBMIT), "--experiment", "bank", "--wait",
        "--poll-interval", "0.05", "--json", env=az.env(),
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    assert result.json() == {
        "run_id": RUN_ID, "experiment": "bank", "status": "Finished", "detail": None,
    }
    assert len(walk.seen) == 4
    assert all(r.headers["Authorization"] == "Bearer entra-token-for-arm" for r in walk.seen)
    progress = [line for line in result.stderr_lines() if line.startswith(f"run {RUN_ID}:")]
    assert [line.split(": ")[1].split(" after")[0] for line in progress] == [
        "NotStarted", "Running", "Finished",
    ]


def test_wait_on_a_failed_run_is_exit_4(
    amlc: Run, httpserver: HTTPServer, az: AzureCliDouble
) -> None:
    submit_expectation(httpserver, {"ExperimentName": "bank", "ParameterAssignments": {}})
    httpserver.expect_request(f"{PREFIX}/{RUN_ID}", method="GET").respond_with_handler(
        RunWalk("Running", "Failed")
    )
    result = amlc("pipeline", "run", httpserver.url_for(SUBMIT), "--experiment", "bank",
                  "--wait", "--poll-interval", "0.05", env=az.env())
    assert result.returncode == 4, result.stderr
    assert result.stdout == f"{RUN_ID}\n"  # the run exists: its id is printed before waiting
    assert result.stderr_lines()[-1] == f"error: pipeline run {RUN_ID} ended Failed"


def test_bad_param_is_exit_2_and_nothing_is_sent(
    amlc: Run, httpserver: HTTPServer, az: AzureCliDouble
) -> None:
    result = amlc("pipeline", "run", httpserver.url_for(SUBMIT), "--experiment", "bank",
                  "--param", "n_rows", env=az.env())
    result.assert_error(2, "--param 'n_rows': expected NAME=VALUE")
    assert httpserver.log == [] and az.calls() == []


def test_forbidden_is_exit_3(amlc: Run, httpserver: HTTPServer, az: AzureCliDouble) -> None:
    httpserver.expect_request(SUBMIT, method="POST").respond_with_json(
        {"error": {"code": "AuthorizationFailed", "message": "No access to workspace ws."}},
        status=403,
    )
    result = amlc("pipeline", "run", httpserver.url_for(SUBMIT), "--experiment", "bank",
                  env=az.env())
    result.assert_error(3, "answered 403", "No access to workspace ws.")


def test_token_is_not_sent_over_plain_http_elsewhere(amlc: Run, az: AzureCliDouble) -> None:
    result = amlc("pipeline", "run", "http://westeurope.api.azureml.ms/pipelines/x",
                  "--experiment", "bank", env=az.env())
    result.assert_error(2, "must use https")
    assert az.calls() == []


def test_wait_needs_a_followable_url_before_submitting(
    amlc: Run, httpserver: HTTPServer, az: AzureCliDouble
) -> None:
    result = amlc("pipeline", "run", httpserver.url_for("/submit/p1"), "--experiment", "bank",
                  "--wait", env=az.env())
    result.assert_error(2, "no /PipelineRuns/ segment")
    assert httpserver.log == []


def test_wait_gives_up_after_its_timeout(httpserver: HTTPServer) -> None:
    """Injected clock and sleep: the bound is checked without waiting on the wall clock."""
    walk = RunWalk("Running")
    httpserver.expect_request(f"{PREFIX}/{RUN_ID}", method="GET").respond_with_handler(walk)
    now = [0.0]

    with (
        PipelineClient(httpserver.url_for(SUBMIT), token=lambda: "t") as client,
        pytest.raises(EndpointTimeoutError, match="still Running after 60 s"),
    ):
        client.wait(RUN_ID, poll_interval_s=15, timeout_s=70,
                    clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s))
    assert len(walk.seen) == 5  # at 0, 15, 30, 45, 60 s; the next would pass 70 s


def test_client_speaks_through_the_http_layer(httpserver: HTTPServer) -> None:
    """amlc's User-Agent and token on the pipeline's origin; a redirect is reported, never
    followed; an answer over the size limit is not read."""
    from aml_client.azure.pipeline import MAX_RESPONSE_BYTES, PipelineRequest
    from aml_client.errors import EndpointError, ResponseFormatError
    from aml_client.version import __version__

    httpserver.expect_oneshot_request(
        SUBMIT, method="POST",
        headers={"Authorization": "Bearer t", "User-Agent": f"amlc/{__version__}",
                 "Accept": "application/json"},
    ).respond_with_data("", status=307, headers={"Location": "http://elsewhere.example/x"})
    httpserver.expect_oneshot_request(f"{PREFIX}/{RUN_ID}", method="GET").respond_with_data(
        b'{"Status": "' + b"x" * MAX_RESPONSE_BYTES + b'"}', content_type="application/json"
    )
    with PipelineClient(httpserver.url_for(SUBMIT), token=lambda: "t") as client:
        with pytest.raises(EndpointError, match=r"redirected \(307\) to http://elsewhere"):
            client.submit(PipelineRequest(experiment="bank"))
        with pytest.raises(ResponseFormatError, match="larger than 1 MiB"):
            client.status(RUN_ID)
    httpserver.check_assertions()
    assert len(httpserver.log) == 2
