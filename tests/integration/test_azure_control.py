"""The control plane through the real SDK pipeline against Microsoft's replayed ARM examples.

The SDK is pointed at the replay server by its documented settings (``base_url``, azure-core's
``connection_verify`` CA bundle); the management credential is injected as an azure-core
credential object. Every test asserts the replay saw no mismatch (method, path, api-version,
body as in the example).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from azure.core.credentials import AccessToken
from support.arm_replay import ArmReplay, arm_error, example

from aml_client.azure import ARM_API_VERSION, ControlPlane, EndpointRef
from aml_client.azure.credentials import reported_expiry, scoring_credential
from aml_client.errors import (
    AuthenticationError,
    ConnectionFailedError,
    EndpointError,
    NotFoundError,
    ResponseFormatError,
)

#: The path parameters shared by the endpoint examples (get, list, listKeys, getToken).
EXAMPLE = example("OnlineEndpoints_Get")["parameters"]


class StaticManagementCredential:
    """An azure-core token credential that records the scopes it was asked for."""

    def __init__(self, token: str = "mgmt-token") -> None:
        self.token = token
        self.scopes: list[tuple[str, ...]] = []

    def get_token(self, *scopes: str, **kwargs: Any) -> AccessToken:
        self.scopes.append(scopes)
        return AccessToken(self.token, 4_000_000_000)


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[ArmReplay]:
    with ArmReplay(tmp_path) as server:
        yield server
    assert not server.mismatches, server.mismatches


def control_for(
    arm: ArmReplay, credential: StaticManagementCredential | None = None
) -> ControlPlane:
    return ControlPlane(
        credential or StaticManagementCredential(),
        arm_url=arm.url,
        connection_verify=str(arm.ca_file),
        retry_total=0,
    )


def ref_for(arm: ArmReplay, params: dict[str, Any] = EXAMPLE) -> EndpointRef:
    return EndpointRef(
        subscription=params["subscriptionId"],
        resource_group=params["resourceGroupName"],
        workspace=params["workspaceName"],
        endpoint=params["endpointName"],
        arm_url=arm.url,
    )


def test_client_speaks_the_examples_api_version() -> None:
    assert ARM_API_VERSION == EXAMPLE["api-version"] == "2025-12-01"


def test_describe_endpoint_replays_get_and_list(arm: ArmReplay) -> None:
    arm.replay("OnlineEndpoints_Get")
    # The example's nextLink points at management.azure.com under another subscription; the
    # replay serves the one page it has (see test_next_link_to_another_origin_is_refused).
    arm.replay("OnlineDeployments_List", drop=("nextLink",))
    credential = StaticManagementCredential()

    info = control_for(arm, credential).describe_endpoint(ref_for(arm))

    assert info.scoring_uri == "https://www.contoso.com/example"
    assert info.swagger_uri == "https://www.contoso.com/example"
    assert info.auth_mode == "aml_token"  # "AMLToken"
    assert info.traffic == {"string": 1}
    assert info.provisioning_state == "Creating"
    [deployment] = info.deployments
    assert deployment.name == "string"
    assert deployment.compute_type == "Kubernetes"
    assert deployment.instance_type == "string"
    assert deployment.instance_count == 1
    assert deployment.max_concurrent_requests_per_instance == 1
    assert deployment.request_timeout_ms == 300_000  # "PT5M"
    assert [seen.operation for seen in arm.requests] == [
        "OnlineEndpoints_Get", "OnlineDeployments_List",
    ]
    for seen in arm.requests:
        assert seen.headers["Authorization"] == "Bearer mgmt-token"
    assert credential.scopes[0] == (f"{arm.url}/.default",)


def test_list_keys_and_get_token(arm: ArmReplay) -> None:
    arm.replay("OnlineEndpoints_ListKeys")
    arm.replay("OnlineEndpoints_GetToken")
    control = control_for(arm)

    keys = control.list_keys(ref_for(arm))
    token = control.get_token(ref_for(arm))

    assert keys.primary == "string" and keys.secondary == "string"
    assert repr(keys) == "EndpointKeys(primary=stri…, secondary=stri…)"
    assert (token.token, token.expires_at, token.refresh_after) == ("string", 1.0, 1.0)


def test_deployment_logs_sends_the_examples_body(arm: ArmReplay) -> None:
    logs = example("OnlineDeployments_GetLogs")["parameters"]
    arm.replay("OnlineDeployments_GetLogs")

    text = control_for(arm).deployment_logs(
        ref_for(arm, logs), logs["deploymentName"], lines=0, container="storage-initializer"
    )

    assert text == "string"
    [seen] = arm.calls("OnlineDeployments_GetLogs")
    assert seen.headers["Content-Type"].startswith("application/json")


def test_replay_catches_a_body_unlike_the_example(arm: ArmReplay) -> None:
    """The checker itself: a request that differs from the example is refused and recorded."""
    logs = example("OnlineDeployments_GetLogs")["parameters"]
    arm.replay("OnlineDeployments_GetLogs")
    with pytest.raises(EndpointError, match="400"):
        control_for(arm).deployment_logs(
            ref_for(arm, logs), logs["deploymentName"], lines=5, container="inference-server"
        )
    assert arm.mismatches == [
        "OnlineDeployments_GetLogs: body {'containerType': 'InferenceServer', 'tail': 5}"
    ]
    arm.mismatches.clear()


def test_next_link_to_another_origin_is_refused(tmp_path: Path) -> None:
    with ArmReplay(tmp_path) as arm:
        arm.replay("OnlineEndpoints_Get")
        arm.replay("OnlineDeployments_List")  # unchanged: nextLink → https://management.azure.com

        with pytest.raises(ResponseFormatError, match=r"another origin \(management\.azure\.com\)"):
            control_for(arm).describe_endpoint(ref_for(arm))

    assert [seen.operation for seen in arm.requests] == [
        "OnlineEndpoints_Get", "OnlineDeployments_List",
    ]


def test_a_deployment_name_unfit_for_a_header_is_refused(arm: ArmReplay) -> None:
    listing = example("OnlineDeployments_List")["responses"]["200"]["body"]
    listing.pop("nextLink")
    listing["value"][0]["name"] = "blue\r\nX-Injected: 1"
    arm.replay("OnlineEndpoints_Get")
    arm.replay("OnlineDeployments_List", body=listing)
    with pytest.raises(ResponseFormatError, match="gave a deployment"):
        control_for(arm).describe_endpoint(ref_for(arm))


def test_forbidden_is_a_refused_credential(arm: ArmReplay) -> None:
    arm.replay(
        "OnlineEndpoints_Get",
        status="403",
        body=arm_error("AuthorizationFailed", "The client does not have authorization."),
    )
    with pytest.raises(AuthenticationError) as caught:
        control_for(arm).describe_endpoint(ref_for(arm))
    assert caught.value.exit_code == 3
    assert "403" in str(caught.value) and "AuthorizationFailed" in str(caught.value)


def test_unknown_endpoint_is_not_found(arm: ArmReplay) -> None:
    arm.replay(
        "OnlineEndpoints_Get",
        status="404",
        parameters={"endpointName": "no-such-endpoint"},
        body=arm_error("ResourceNotFound", "Online endpoint no-such-endpoint was not found."),
    )
    ref = EndpointRef(EXAMPLE["subscriptionId"], EXAMPLE["resourceGroupName"],
                      EXAMPLE["workspaceName"], "no-such-endpoint", arm.url)
    with pytest.raises(NotFoundError, match="no-such-endpoint"):
        control_for(arm).describe_endpoint(ref)


def test_certificate_is_verified_by_default(arm: ArmReplay) -> None:
    arm.replay("OnlineEndpoints_Get")
    control = ControlPlane(StaticManagementCredential(), arm_url=arm.url, retry_total=0)
    with pytest.raises(ConnectionFailedError, match="cannot reach Azure Resource Manager"):
        control.describe_endpoint(ref_for(arm))
    assert arm.requests == []


# --------------------------------------------------------------------------- scoring credentials


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_key_is_fetched_on_first_use_only(arm: ArmReplay) -> None:
    arm.replay("OnlineEndpoints_ListKeys")
    credential = scoring_credential("azure_key", ref_for(arm), control=control_for(arm))
    assert arm.calls("OnlineEndpoints_ListKeys") == []  # nothing fetched until used

    for _ in range(3):
        assert credential.auth_headers() == {"Authorization": "Bearer string"}
    assert len(arm.calls("OnlineEndpoints_ListKeys")) == 1

    credential.invalidate("string")  # after a 401: the key may have been regenerated
    credential.auth_headers()
    assert len(arm.calls("OnlineEndpoints_ListKeys")) == 2


def test_aml_token_refreshes_when_its_refresh_time_passes(arm: ArmReplay) -> None:
    t0 = 1_900_000_000.0
    clock = Clock(t0)
    token_times = {"expiryTimeUtc": int(t0) + 3600, "refreshAfterTimeUtc": int(t0) + 1800}
    arm.replay("OnlineEndpoints_GetToken", patch={"accessToken": "token-1", **token_times})
    credential = scoring_credential("aml_token", ref_for(arm), control=control_for(arm),
                                    clock=clock)

    assert credential.auth_headers()["Authorization"] == "Bearer token-1"
    clock.now = t0 + 1799  # before refreshAfterTimeUtc: cached
    assert credential.auth_headers()["Authorization"] == "Bearer token-1"
    assert len(arm.calls("OnlineEndpoints_GetToken")) == 1

    arm.replay("OnlineEndpoints_GetToken", patch={
        "accessToken": "token-2",
        "expiryTimeUtc": int(t0) + 7200,
        "refreshAfterTimeUtc": int(t0) + 5400,
    })
    clock.now = t0 + 1800  # refreshAfterTimeUtc reached
    assert credential.auth_headers()["Authorization"] == "Bearer token-2"
    assert len(arm.calls("OnlineEndpoints_GetToken")) == 2


def test_aml_token_is_refreshed_before_expiry_even_without_refresh_time(arm: ArmReplay) -> None:
    t0 = 1_900_000_000.0
    clock = Clock(t0)
    arm.replay("OnlineEndpoints_GetToken",
               patch={"accessToken": "short", "expiryTimeUtc": int(t0) + 600,
                      "refreshAfterTimeUtc": 0})
    credential = scoring_credential("aml_token", ref_for(arm), control=control_for(arm),
                                    clock=clock)
    credential.auth_headers()
    clock.now = t0 + 299  # more than five minutes left: kept
    credential.auth_headers()
    assert len(arm.calls("OnlineEndpoints_GetToken")) == 1
    clock.now = t0 + 301  # under five minutes left: replaced
    credential.auth_headers()
    assert len(arm.calls("OnlineEndpoints_GetToken")) == 2


def test_examples_expired_token_is_fetched_for_every_use(arm: ArmReplay) -> None:
    arm.replay("OnlineEndpoints_GetToken")  # expiryTimeUtc = refreshAfterTimeUtc = 1 (1970)
    credential = scoring_credential("aml_token", ref_for(arm), control=control_for(arm))
    assert credential.auth_headers()["Authorization"] == "Bearer string"
    credential.auth_headers()
    assert len(arm.calls("OnlineEndpoints_GetToken")) == 2


def test_reported_expiry_rule() -> None:
    from aml_client.azure import AmlToken

    assert reported_expiry(AmlToken("t", expires_at=10_000, refresh_after=5_000)) == 5_300
    assert reported_expiry(AmlToken("t", expires_at=5_100, refresh_after=5_000)) == 5_100
    assert reported_expiry(AmlToken("t", expires_at=0, refresh_after=0)) == 0
