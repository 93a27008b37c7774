"""Azure Machine Learning beyond scoring: find an online endpoint and its credential through
Resource Manager, read a deployment's logs, and submit a published pipeline.

Needs the ``azure`` extra (``pip install 'amlc[azure]'``); nothing here imports the Azure SDK
until a call needs it, and a missing extra is a :class:`~aml_client.errors.ConfigError` naming it.

    from aml_client.azure import ControlPlane, EndpointRef
    info = ControlPlane().describe_endpoint(EndpointRef(sub, "rg", "ws", "my-endpoint"))
"""

from __future__ import annotations

from aml_client.azure.control import ARM_API_VERSION, AmlToken, ControlPlane, EndpointKeys
from aml_client.azure.credentials import scoring_credential
from aml_client.azure.reference import DeploymentInfo, EndpointInfo, EndpointRef

__all__ = [
    "ARM_API_VERSION",
    "AmlToken",
    "ControlPlane",
    "DeploymentInfo",
    "EndpointInfo",
    "EndpointKeys",
    "EndpointRef",
    "scoring_credential",
]
