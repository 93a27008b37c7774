"""Imported profiles as plain data: what is checked, what is stored, what is shown (no server)."""

from __future__ import annotations

import pytest
from rich.console import Console

from aml_client import config
from aml_client.azure import DeploymentInfo, EndpointInfo, EndpointRef
from aml_client.azure.reference import auth_mode, clean_traffic, clean_uri, ref_from_table
from aml_client.cli.endpoint import _deployments_table
from aml_client.errors import ConfigError, ResponseFormatError

SUB = "00000000-1111-2222-3333-444444444444"


def info(mode: str = "key") -> EndpointInfo:
    return EndpointInfo(
        ref=EndpointRef(SUB, "rg", "ws", "bank"),
        scoring_uri="https://bank.westeurope.inference.ml.azure.com/score",
        swagger_uri="https://bank.westeurope.inference.ml.azure.com/swagger.json",
        auth_mode=mode,
        traffic={"blue": 90, "green": 10},
        deployments=(DeploymentInfo("blue", "Managed", "Standard_DS3_v2", 2, "Succeeded"),
                     DeploymentInfo("green", "Managed")),
    )


@pytest.mark.parametrize(("mode", "auth"), [("key", "azure_key"), ("aml_token", "aml_token"),
                                            ("aad_token", "entra")])
def test_profile_auth_follows_the_endpoints_auth_mode(mode: str, auth: str) -> None:
    assert config.profile_for("bank", info(mode)).auth == auth


def test_imported_profile_round_trips_without_a_secret() -> None:
    profile = config.profile_for("bank", info())
    config.add_profile(profile)
    loaded = config.get_profile("bank")
    assert loaded.azure == profile.azure
    assert loaded.key is None and loaded.key_env is None
    assert loaded.masked_secret() == "(from Azure when used)"
    assert ref_from_table(loaded.azure, profile="bank") == EndpointRef(SUB, "rg", "ws", "bank")
    assert "arm_url" not in (loaded.azure or {})  # the public cloud is the default
    assert loaded.azure is not None and loaded.azure["deployments"][1] == {
        "name": "green", "compute_type": "Managed",
    }


def test_azure_auth_without_its_table_is_refused() -> None:
    plain = {"scoring_uri": "https://h/score", "auth": "aml_token"}
    config.save_config({"endpoints": {"x": plain}})
    with pytest.raises(ConfigError, match="no azure table; run `amlc endpoint import x"):
        config.get_profile("x")
    config.save_config({"endpoints": {"x": {"scoring_uri": "https://h/score", "azure": "s"}}})
    with pytest.raises(ConfigError, match="azure must be a table"):
        config.get_profile("x")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("subscription", "my-sub", "not a subscription id"),
        ("resource_group", "rg/../x", "resource group"),
        ("workspace", "ws?x=1", "workspace"),
        ("endpoint", "-leading", "endpoint"),
        ("arm_url", "http://management.azure.com", "must be https"),
        ("arm_url", "https://management.azure.com/x", "takes no path"),
    ],
)
def test_endpoint_ref_checks_every_part(field: str, value: str, message: str) -> None:
    parts = {"subscription": SUB, "resource_group": "rg", "workspace": "ws", "endpoint": "ep"}
    with pytest.raises(ConfigError, match=message):
        EndpointRef(**{**parts, field: value})


def test_values_from_resource_manager_are_checked() -> None:
    assert clean_uri("https://h.example/score", "a scoring URI") == "https://h.example/score"
    for bad in ("file:///etc/passwd", "javascript:alert(1)", "https://", "https://h/\x1b[2J", 7):
        with pytest.raises(ResponseFormatError):
            clean_uri(bad, "a scoring URI")
    assert clean_traffic({"blue": 90, "green": 10.0}, "traffic") == {"blue": 90, "green": 10}
    for bad_map in ({"blue\r\nX-Evil: 1": 10}, {"blue": 101}, {"blue": "ten"}, ["blue"]):
        with pytest.raises(ResponseFormatError):
            clean_traffic(bad_map, "traffic")
    assert [auth_mode(m) for m in ("Key", "AMLToken", "AADToken")] == [
        "key", "aml_token", "aad_token",
    ]
    with pytest.raises(ResponseFormatError, match="unknown auth mode"):
        auth_mode("Anonymous")


def test_deployment_table_shows_markup_from_azure_as_text() -> None:
    azure = {"traffic": {"blue": 100}, "deployments": [
        {"name": "blue", "instance_type": "[red]Standard[/red]", "provisioning_state": "[b]"},
    ]}  # fmt: skip
    console = Console(record=True, width=200)
    console.print(_deployments_table(azure))
    text = console.export_text()
    assert "[red]Standard[/red]" in text and "100 %" in text
