"""Published-pipeline request rules (typing of parameters, URLs, run status), no server."""

from __future__ import annotations

import pytest

from aml_client.azure.pipeline import (
    PipelineRequest,
    check_pipeline_url,
    collect,
    parse_assignment,
    read_status,
    status_url,
    typed_value,
)
from aml_client.errors import ConfigError, InputError, ResponseFormatError

SUBMIT = (
    "https://westeurope.api.azureml.ms/pipelines/v1.0/subscriptions/s/resourceGroups/g"
    "/providers/Microsoft.MachineLearningServices/workspaces/w/PipelineRuns/PipelineSubmit/p-1"
)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("3", 3), ("-12", -12), ("0", 0), ("0.5", 0.5), ("-2.25", -2.25),
        ("007", "007"), ("1e3", "1e3"), ("3.", "3."), (".5", ".5"), ("nan", "nan"),
        ("inf", "inf"), ("true", "true"), ("", ""), ("12 ", "12 "), ("+3", "+3"),
        ("1_000", "1_000"), ("0x10", "0x10"), ("2024-01-01", "2024-01-01"),
    ],
)  # fmt: skip
def test_numbers_stay_numbers_only_when_unambiguous(text: str, value: object) -> None:
    result = typed_value(text)
    assert result == value and type(result) is type(value)


def test_assignments() -> None:
    assert parse_assignment("n=3") == ("n", 3)
    assert parse_assignment("path=a=b") == ("path", "a=b")
    assert parse_assignment("n=3", typed=False) == ("n", "3")
    with pytest.raises(InputError, match="--param 'n': expected NAME=VALUE"):
        parse_assignment("n")
    with pytest.raises(InputError, match="expected NAME=VALUE"):
        parse_assignment("=3")
    with pytest.raises(InputError, match="a name uses letters"):
        parse_assignment("bad name=3")
    with pytest.raises(InputError, match="--param n: given twice"):
        collect([("n", 1), ("n", 2)])


def test_body_is_the_documented_shape() -> None:
    request = PipelineRequest("bank", {"n": 3}, description="nightly", tags={"team": "ml"})
    assert request.body() == {
        "ExperimentName": "bank",
        "ParameterAssignments": {"n": 3},
        "Description": "nightly",
        "Tags": {"team": "ml"},
    }
    assert PipelineRequest("bank").body() == {"ExperimentName": "bank", "ParameterAssignments": {}}
    with pytest.raises(InputError, match="--experiment"):
        PipelineRequest(" ").body()


def test_token_never_goes_over_plain_http_off_this_machine() -> None:
    assert check_pipeline_url(SUBMIT) == SUBMIT
    assert check_pipeline_url("http://127.0.0.1:5000/x/PipelineRuns/PipelineSubmit/p")
    with pytest.raises(ConfigError, match="must use https"):
        check_pipeline_url("http://westeurope.api.azureml.ms/pipelines/x")
    with pytest.raises(ConfigError, match="http"):
        check_pipeline_url("file:///etc/passwd")


def test_status_url_keeps_origin_and_prefix() -> None:
    assert status_url(SUBMIT, "run-42") == SUBMIT.rsplit("/PipelineSubmit", 1)[0] + "/run-42"
    endpoint = SUBMIT.replace("PipelineSubmit/p-1", "PipelineEndpointSubmit/Id/e-1") + "?x=1"
    assert status_url(endpoint, "r").endswith("/workspaces/w/PipelineRuns/r")
    with pytest.raises(ConfigError, match="no /PipelineRuns/ segment"):
        status_url("https://example.org/submit", "r")
    with pytest.raises(ResponseFormatError, match="unusable run id"):
        status_url(SUBMIT, "../../other")


def test_status_by_name_or_number() -> None:
    assert read_status("r", {"Status": {"StatusCode": "Running"}}).finished is False
    finished = read_status("r", {"Status": {"StatusCode": 3, "StatusDetail": "done"}})
    assert (finished.status, finished.detail, finished.succeeded) == ("Finished", "done", True)
    failed = read_status("r", {"Status": {"StatusCode": "2"}})
    assert (failed.status, failed.finished, failed.succeeded) == ("Failed", True, False)
    assert read_status("r", {"Status": {"StatusCode": "Canceled"}}).finished
    with pytest.raises(ResponseFormatError, match="no status"):
        read_status("r", {"Id": "r"})
