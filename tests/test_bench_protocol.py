"""The protocol between ``amlc bench`` and its load process: one typed configuration in, typed
events out, both validated."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from aml_client.bench.plan import BenchPlan
from aml_client.bench.protocol import (
    AuthRequestEvent,
    ErrorEvent,
    LoadConfig,
    MasterOptions,
    OutputEvent,
    ProgressEvent,
    ResultEvent,
    TargetWire,
    WebOptions,
    WorkerOptions,
    parse_event,
)
from aml_client.bench.target import RunTarget


def _target() -> RunTarget:
    return RunTarget(
        name="prod",
        scoring_uri="http://127.0.0.1:5001/score",
        headers={"Content-Type": "application/json"},
        bodies=[b'{"data": [[1, 2]]}', b'{"data": [[3, 4]]}'],
        rows=[1, 1],
        authenticated=True,
    )


def test_a_configuration_crosses_the_pipe_unchanged() -> None:
    plan = BenchPlan(mode="open", users=4, spawn_rate=4.0, rate=50.0, duration_s=10.0,
                     deployments=["blue", "green"], capacity=None)
    config = LoadConfig(
        target=_target().to_wire(), plan=plan, report_root="out",
        web=WebOptions(port=8089), live_metrics=True, parent_pid=42,
        master=MasterOptions(local_workers=2),
    )
    line = config.line()
    assert line.endswith("\n") and line.count("\n") == 1
    back = LoadConfig.model_validate_json(line)
    assert back == config
    assert back.plan == plan and isinstance(back.plan, BenchPlan)
    assert RunTarget.from_wire(back.target) == _target()
    assert back.master is not None and back.master.expect_workers == 1
    assert back.worker is None


def test_a_configuration_is_checked_where_it_arrives() -> None:
    config = LoadConfig(target=_target().to_wire(), plan=BenchPlan(mode="closed", users=1,
                                                                    spawn_rate=1.0))
    data = config.model_dump(mode="json")
    with pytest.raises(ValidationError, match="users must be at least 1"):
        LoadConfig.model_validate({**data, "plan": {**data["plan"], "users": 0}})
    with pytest.raises(ValidationError, match="bodies"):
        LoadConfig.model_validate({**data, "target": {**data["target"], "bodies": []}})
    with pytest.raises(ValidationError, match="master_port"):
        LoadConfig.model_validate({**data, "worker": {"master_host": "127.0.0.1",
                                                      "master_port": 70000}})
    # A field one side does not know is an error, never silently dropped.
    with pytest.raises(ValidationError, match="extra"):
        LoadConfig.model_validate({**data, "local_workers": 2})
    with pytest.raises(ValidationError, match="master_host"):
        WorkerOptions.model_validate({"master_port": 5557})
    with pytest.raises(ValidationError):
        TargetWire.model_validate({**data["target"], "timeout_s": 0})


def test_events_are_read_back_as_they_were_sent() -> None:
    progress = ProgressEvent(elapsed_s=1.5, users=2, in_flight=1, rps=10.0, requests=15,
                             failures=0, p50_us=1200, p99_us=None)
    # As the load process writes it: the fields it set, and the event's type.
    event = parse_event(json.dumps(progress.wire()) + "\n")
    assert isinstance(event, ProgressEvent)
    assert event.wire() == {"type": "progress", "elapsed_s": 1.5, "users": 2, "in_flight": 1,
                            "rps": 10.0, "requests": 15, "failures": 0, "p50_us": 1200,
                            "p99_us": None}
    result = parse_event(ResultEvent(report_dir=None, summary={"requests": 3}).model_dump_json())
    assert isinstance(result, ResultEvent) and result.summary == {"requests": 3}
    error = parse_event(ErrorEvent(message="port busy", exit_code=2).model_dump_json())
    assert error.wire() == {"type": "error", "message": "port busy", "exit_code": 2}
    assert isinstance(parse_event('{"type": "auth_request"}'), AuthRequestEvent)


@pytest.mark.parametrize("line", [
    "a library printed this",
    '{"type": "progress"}',  # no figures
    '{"type": "status", "message": "x", "secret": "k"}',  # unknown field
    '{"type": "nonsense"}',
    "[1, 2]",
])
def test_anything_else_on_stdout_is_passed_on_as_output(line: str) -> None:
    event = parse_event(line + "\n")
    assert isinstance(event, OutputEvent)
    assert event.wire() == {"type": "output", "line": line}
