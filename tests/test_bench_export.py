"""The export bundles' rules: objectives become Azure Load Testing fail criteria (or a clear
refusal), names and secret references are checked before anything is written."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from aml_client.bench.export import (
    ExportSettings,
    azure_failure_criteria,
    default_spawn_rate,
    write_azure_load_testing,
    write_kubernetes,
)
from aml_client.bench.report.slo import parse_slos
from aml_client.errors import ConfigError

VAULT = "https://my-vault.vault.azure.net/secrets/endpoint-key"


def _settings(**kw: object) -> ExportSettings:
    base: dict[str, object] = dict(name="ep", scoring_uri="https://ep.example/score", users=3,
                                   spawn_rate=1.0, duration_s=60, payload_name="payload.json",
                                   payload=b'{"data": [{"x": 1}]}')
    base.update(kw)
    return ExportSettings(**base)  # type: ignore[arg-type]


def test_objectives_become_the_criteria_that_fail_the_test() -> None:
    objectives = parse_slos(["p99<=200ms", "p50 < 1s", "mean<=80ms", "max<=2s",
                             "error_rate<=0.5%", "throughput>=100", "p95>=1ms"])
    assert azure_failure_criteria(objectives) == [
        "p99(response_time_ms) > 200", "p50(response_time_ms) > 1000",
        "avg(response_time_ms) > 80", "max(response_time_ms) > 2000",
        "percentage(error) > 0.5", "avg(requests_per_sec) < 100", "p95(response_time_ms) < 1",
    ]


@pytest.mark.parametrize(("slo", "message"), [
    ("p99.9<=200ms", "judges p50, p90, p95, p99"),
    ("p75<=200ms", "judges p50, p90, p95, p99"),
    ("p99<=200.5ms", "whole milliseconds"),
    ("error_rate>=1%", "bounds from above"),
])
def test_objectives_the_service_cannot_judge_are_refused(slo: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        azure_failure_criteria(parse_slos([slo]))


def test_the_key_is_referenced_never_written(tmp_path: Path) -> None:
    path = write_azure_load_testing(tmp_path, _settings(), test_id="t-1", engines=3,
                                    key_secret=VAULT, auto_stop_errors=0)
    config = yaml.safe_load(path.read_text())
    assert config["secrets"] == [{"name": "AMLC_KEY", "value": VAULT}]
    assert config["autoStop"] == "disable" and config["engineInstances"] == 3
    assert "AMLC_KEY" not in {e["name"] for e in config["env"]}


@pytest.mark.parametrize(("kw", "message"), [
    ({"test_id": "Has Spaces"}, "--test-id"),
    ({"test_id": "x"}, "--test-id"),
    ({"key_secret": None}, "needs a key"),
    ({"key_secret": "plain-secret-value"}, "not a Key Vault secret identifier"),
    ({"key_secret": "https://evil.example/secrets/k"}, "not a Key Vault secret identifier"),
    ({"engines": 401}, "--engines"),
])
def test_bad_azure_settings_are_one_clear_error(tmp_path: Path, kw: dict[str, object],
                                                message: str) -> None:
    args: dict[str, object] = {"test_id": "ok-id", "engines": 1, "key_secret": VAULT, **kw}
    with pytest.raises(ConfigError, match=message):
        write_azure_load_testing(tmp_path / "b", _settings(), **args)  # type: ignore[arg-type]
    assert not (tmp_path / "b").exists()  # nothing written


def test_kubernetes_refuses_what_a_cluster_would(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--name"):
        write_kubernetes(tmp_path / "x", _settings(), name="Upper_Case", workers=1, secret_name="s")
    with pytest.raises(ConfigError, match="needs a key"):
        write_kubernetes(tmp_path / "x", _settings(), name="t", workers=1, secret_name=None)
    with pytest.raises(ConfigError, match="ConfigMap holds"):
        big = _settings(payload=b"[" + b"1," * 400_000 + b"1]")
        write_kubernetes(tmp_path / "x", big, name="t", workers=1, secret_name="s")
    with pytest.raises(ConfigError, match="--workers"):
        write_kubernetes(tmp_path / "x", _settings(), name="t", workers=501, secret_name="s")
    assert not (tmp_path / "x").exists()



@pytest.mark.parametrize(("users", "duration_s", "ramp_s"),
                         [(4, 4, 2.0), (4, 60, 4.0), (100, 60, 10.0), (100, 8, 4.0), (1, 1, 0.5)])
def test_the_default_ramp_ends_within_10_s_and_the_first_half_of_the_run(
    users: int, duration_s: int, ramp_s: float
) -> None:
    # A ramp ending as the run time does races Locust's master (rebalancing restarts the test).
    rate = default_spawn_rate(users, duration_s)
    assert rate >= 1.0
    assert users / rate == pytest.approx(ramp_s)
    assert users / rate <= min(10.0, duration_s / 2)
