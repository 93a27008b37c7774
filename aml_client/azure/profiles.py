"""From an online endpoint in Azure to an amlc profile that fetches its credential when used."""

from __future__ import annotations

from pathlib import Path

from aml_client import config
from aml_client.azure.control import ControlPlane
from aml_client.azure.reference import EndpointInfo, EndpointRef

#: Azure's auth mode → the profile's ``auth``. Entra ID needs no control-plane call: the profile
#: asks azure-identity for a token for https://ml.azure.com, as ``--auth entra`` does.
PROFILE_AUTH = {"key": "azure_key", "aml_token": "aml_token", "aad_token": "entra"}


def profile_for(name: str, info: EndpointInfo) -> config.Profile:
    """The profile for a discovered endpoint: URIs, auth kind and the ``azure`` table, no secret."""
    return config.Profile(
        name=name,
        scoring_uri=info.scoring_uri,
        swagger_uri=info.swagger_uri,
        auth=PROFILE_AUTH[info.auth_mode],
        azure=info.to_table(),
    )


def import_endpoint(
    name: str,
    *,
    subscription: str,
    resource_group: str,
    workspace: str,
    endpoint: str | None = None,
    make_default: bool = False,
    control: ControlPlane | None = None,
) -> tuple[config.Profile, EndpointInfo, Path]:
    """Discover ``endpoint`` (default: ``name``) through Resource Manager; store it as ``name``."""
    config.validate_name(name)
    control = control or ControlPlane()
    ref = EndpointRef(
        subscription=subscription,
        resource_group=resource_group,
        workspace=workspace,
        endpoint=endpoint or name,
        arm_url=control.arm_url,
    )
    info = control.describe_endpoint(ref)
    profile = profile_for(name, info)
    path = config.add_profile(profile, make_default=make_default)
    return profile, info, path
