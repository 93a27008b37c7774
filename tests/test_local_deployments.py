"""Deployments as written on the command line: names, kinds, options and traffic."""

from __future__ import annotations

import pytest

from aml_client.errors import ConfigError
from aml_client.local import DeploymentSpec, parse_deployment, parse_traffic
from aml_client.local._deployments import (
    DeploymentInfo,
    FrontPlan,
    default_max_concurrent,
    resolve,
)
from aml_client.local._server import differences
from aml_client.local._state import LocalEndpointInfo


def test_name_and_kind() -> None:
    assert parse_deployment("blue") == DeploymentSpec("blue", "sklearn")
    assert parse_deployment("green:onnx") == DeploymentSpec("green", "onnx")


def test_options_use_azures_names() -> None:
    spec = parse_deployment(
        "slow:sklearn, workers=1, max_concurrent_requests_per_instance=3,"
        "request_timeout_ms=300, delay_ms=800, fail_rate=0.25"
    )
    assert spec == DeploymentSpec(
        "slow",
        "sklearn",
        workers=1,
        max_concurrent_requests_per_instance=3,
        request_timeout_ms=300,
        delay_ms=800,
        fail_rate=0.25,
    )
    assert parse_deployment("a-b,max_concurrent=2").max_concurrent_requests_per_instance == 2
    assert DeploymentSpec("blue").request_timeout_ms == 5000  # Azure's default


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("b", "not valid"),  # shorter than Azure's 3 characters
        ("9lives", "not valid"),
        ("blue_green", "not valid"),
        ("x" * 33, "not valid"),
        ("green:tensorflow", "unknown kind"),
        ("blue,speed=3", "unknown option"),
        ("blue,workers", "option=value"),
        ("blue,workers=two", "must be a number"),
        ("blue,workers=0", "between 1 and"),
        ("blue,request_timeout_ms=180001", "between 1 and 180000"),
        ("blue,fail_rate=1.5", "between 0 and 1"),
        ("blue,delay_ms=1,delay_ms=2", "given twice"),
    ],
)
def test_bad_deployments_say_what_is_wrong(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_deployment(text)


def test_traffic() -> None:
    assert parse_traffic("blue=90,green=10") == {"blue": 90, "green": 10}
    assert parse_traffic(" blue = 100 ") == {"blue": 100}
    for text, says in (
        ("blue", "NAME=PERCENT"),
        ("blue=half", "whole number"),
        ("blue=101", "between 0 and 100"),
        ("blue=50,blue=50", "twice"),
    ):
        with pytest.raises(ConfigError, match=says):
            parse_traffic(text)


def test_defaults_one_blue_deployment_with_all_the_traffic() -> None:
    specs, shares = resolve(None, None)
    assert [s.name for s in specs] == ["blue"]
    assert shares == {"blue": 100}
    specs, shares = resolve([DeploymentSpec("blue"), DeploymentSpec("green", "onnx")], None)
    assert shares == {"blue": 100, "green": 0}


def test_traffic_must_name_deployments_and_add_up_to_100_or_0() -> None:
    two = [DeploymentSpec("blue"), DeploymentSpec("green", "onnx")]
    assert resolve(two, {"green": 100})[1] == {"blue": 0, "green": 100}
    assert resolve(two, {"blue": 0})[1] == {"blue": 0, "green": 0}
    with pytest.raises(ConfigError, match="add up to 90"):
        resolve(two, {"blue": 80, "green": 10})
    with pytest.raises(ConfigError, match="not a deployment"):
        resolve(two, {"red": 100})
    with pytest.raises(ConfigError, match="given twice"):
        resolve([DeploymentSpec("blue"), DeploymentSpec("blue", "onnx")], None)


def test_the_front_plan_survives_json() -> None:
    from aml_client.local import DeploymentInfo

    plan = FrontPlan(
        host="127.0.0.1",
        port=5001,
        listen_fd=7,
        style="inputs",
        keys_file="/k",
        access_log="/a",
        app_root="/r",
        ready_timeout_s=90.0,
        deployments=[
            DeploymentInfo("blue", "sklearn", 100, 2, 2, 5000, 4001, "GradientBoosting", "/m", 0.9)
        ],
        deployment_fds=[8],
    )
    assert FrontPlan.from_dict(plan.to_dict()) == plan


def test_the_default_queue_serves_twenty_users_and_azures_default_is_one_option_away() -> None:
    from aml_client.local._deployments import DEFAULT_MAX_CONCURRENT, default_max_concurrent

    # 2 x max_concurrent may be pending before a 429: 20 concurrent users fit.
    assert 2 * default_max_concurrent(2) >= 20
    assert default_max_concurrent(1) == default_max_concurrent(2) == DEFAULT_MAX_CONCURRENT
    assert default_max_concurrent(32) == 32  # never fewer than the workers
    assert parse_deployment("blue").max_concurrent_requests_per_instance is None
    assert parse_deployment("blue,max_concurrent=1").max_concurrent_requests_per_instance == 1


def _running(workers: int, max_concurrent: int) -> LocalEndpointInfo:
    deployment = DeploymentInfo(
        name="blue", kind="sklearn", traffic=100, workers=workers,
        max_concurrent_requests_per_instance=max_concurrent, request_timeout_ms=5000,
        port=6001, model="GradientBoosting", model_dir="", accuracy=0.9,
    )
    return LocalEndpointInfo(
        pid=1, host="127.0.0.1", port=5001, scoring_uri="", swagger_uri="", style="inputs",
        model="GradientBoosting", metric="accuracy", score=0.9, accuracy=0.9, workers=workers,
        log_file="", started_at="", deployments=[deployment],
    )


def test_an_endpoint_started_with_the_defaults_matches_the_defaults() -> None:
    # `amlc local up --detach` twice: the second finds the first alike (a no-op, not a refusal).
    running = _running(workers=2, max_concurrent=default_max_concurrent(2))
    assert differences(running, port=5001, workers=2) == []
    assert differences(running, port=5001, workers=2,
                       deployments=[parse_deployment("blue,max_concurrent=1")]) == [
        f"blue max_concurrent_requests_per_instance {default_max_concurrent(2)}, not 1"
    ]
    assert differences(_running(workers=2, max_concurrent=2), port=5001, workers=2) == [
        f"blue max_concurrent_requests_per_instance 2, not {default_max_concurrent(2)}"
    ]
