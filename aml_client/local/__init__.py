"""The embedded local endpoint: Microsoft's inference server, a bank-marketing model, key auth.

``start()`` trains (first time) or loads the cached model, then runs one or more deployments —
each ``azureml-inference-server-http`` under gunicorn, serving the scikit-learn pipeline or its
ONNX copy — behind one front on 127.0.0.1 that behaves like a managed online endpoint: Bearer
keys, a traffic split, the ``azureml-model-deployment`` header, 408/424/429 as Azure answers
them. ``running_endpoint()`` finds it again from any process. Nothing heavy (pandas,
scikit-learn, the server) is imported until a function needs it.
"""

from __future__ import annotations

from aml_client.local._deployments import (
    DeploymentInfo,
    DeploymentSpec,
    parse_deployment,
    parse_traffic,
)
from aml_client.local._keys import keys_file, local_keys, regenerate_keys
from aml_client.local._logs import follow, log_file, tail
from aml_client.local._model import METRICS, SAMPLE_ROWS, Candidate, ModelInfo, ensure_model
from aml_client.local._server import (
    DEFAULT_PORT,
    STYLES,
    default_workers,
    differences,
    start,
    status,
    stop,
)
from aml_client.local._state import LocalEndpointInfo, running_endpoint
from aml_client.local._state import read_state as recorded_endpoint

__all__ = [
    "DEFAULT_PORT",
    "METRICS",
    "SAMPLE_ROWS",
    "STYLES",
    "Candidate",
    "DeploymentInfo",
    "DeploymentSpec",
    "LocalEndpointInfo",
    "ModelInfo",
    "default_workers",
    "differences",
    "ensure_model",
    "follow",
    "keys_file",
    "local_keys",
    "log_file",
    "parse_deployment",
    "parse_traffic",
    "recorded_endpoint",
    "regenerate_keys",
    "running_endpoint",
    "start",
    "status",
    "stop",
    "tail",
]
