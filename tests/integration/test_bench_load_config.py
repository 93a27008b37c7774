"""A load process checks the configuration it is sent before it starts anything: a bad one is
one ``error`` event and exit code 2, no traceback, no request sent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from aml_client.bench.plan import BenchPlan
from aml_client.bench.protocol import LoadConfig, TargetWire, parse_event


def _run(role: str, line: str) -> tuple[int, list[dict[str, object]], str]:
    done = subprocess.run(
        [sys.executable, "-m", "aml_client.bench.load.runner", "--role", role],
        input=line, capture_output=True, text=True, timeout=120,
    )
    events = [parse_event(text).wire() for text in done.stdout.splitlines() if text.strip()]
    return done.returncode, events, done.stderr


def _config() -> LoadConfig:
    # Nothing listens on port 9 (discard): the run must never get that far.
    target = TargetWire(name="nowhere", scoring_uri="http://127.0.0.1:9/score", bodies=["{}"])
    return LoadConfig(target=target, plan=BenchPlan(mode="closed", users=1, spawn_rate=1.0,
                                                    max_requests=1))


@pytest.mark.parametrize(("change", "where"), [
    ({"plan": {"mode": "closed", "users": 0, "spawn_rate": 1.0}}, "plan"),
    ({"target": {"name": "x", "scoring_uri": "http://127.0.0.1:9/score", "bodies": []}},
     "target.bodies"),
    ({"web": {"port": 70000}}, "web.port"),
    ({"workers": 3}, "workers"),
])
def test_a_bad_configuration_is_one_error_line(change: dict[str, object], where: str) -> None:
    data = {**_config().model_dump(mode="json"), **change}
    code, events, stderr = _run("local", json.dumps(data) + "\n")
    assert code == 2
    assert len(events) == 1 and events[0]["type"] == "error", events
    assert events[0]["exit_code"] == 2
    assert str(events[0]["message"]).startswith(f"invalid load configuration: {where}"), events
    assert "Traceback" not in stderr


def test_a_worker_without_its_master_is_refused() -> None:
    code, events, _ = _run("worker", _config().line())
    assert code == 2
    assert [e["type"] for e in events] == ["error"]
    assert "names no master" in str(events[0]["message"])
