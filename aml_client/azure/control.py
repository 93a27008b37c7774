"""Azure Machine Learning's control plane (Resource Manager) through Microsoft's generated SDK.

Four calls, each one ARM operation, all at API version :data:`ARM_API_VERSION` (the newest stable
one; the tests replay Microsoft's published examples of exactly these operations):

- :meth:`ControlPlane.describe_endpoint` — OnlineEndpoints_Get + OnlineDeployments_List;
- :meth:`ControlPlane.list_keys` — OnlineEndpoints_ListKeys;
- :meth:`ControlPlane.get_token` — OnlineEndpoints_GetToken;
- :meth:`ControlPlane.deployment_logs` — OnlineDeployments_GetLogs.

Why ``azure-mgmt-machinelearningservices`` and not ``azure-ai-ml``'s ``MLClient``: MLClient speaks
the 2022-02-01-preview API for online endpoints (fixed inside it), rejects the placeholder resource
ids of Microsoft's own examples, and brings ~85 MB of dependencies with a ~1 s import; the generated
client takes an ``api_version``, a ``base_url`` and azure-core's transport settings as documented
keywords, imports in ~0.1 s, and is the layer MLClient itself is generated from.

The management token goes only to the Resource Manager origin: a per-retry pipeline policy refuses
any request (a paging ``nextLink``, a redirect) bound for another scheme, host or port.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from aml_client.auth import mask
from aml_client.azure.reference import (
    DEFAULT_ARM_URL,
    ENV_ARM_URL,
    MAX_DEPLOYMENTS,
    DeploymentInfo,
    EndpointInfo,
    EndpointRef,
    auth_mode,
    check_arm_url,
    check_name,
    clean_int,
    clean_text,
    clean_traffic,
    clean_uri,
)
from aml_client.errors import (
    AuthenticationError,
    ConfigError,
    ConnectionFailedError,
    EndpointError,
    NotFoundError,
    ResponseFormatError,
)

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential as AzureTokenCredential
    from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient

log = logging.getLogger(__name__)

#: The ARM API version every call uses.
ARM_API_VERSION = "2025-12-01"
#: Containers ``amlc logs --container`` can read, in Azure's spelling.
CONTAINERS = {"inference-server": "InferenceServer", "storage-initializer": "StorageInitializer"}
#: Log content kept at most (characters); Azure's own tail is bounded too.
MAX_LOG_CHARS = 4_000_000

EXTRA_MESSAGE = "the Azure control plane needs the azure extra: pip install 'amlc[azure]'"


def arm_url_from_env() -> str:
    """``$AMLC_ARM_URL`` or the public cloud's Resource Manager."""
    return check_arm_url(os.environ.get(ENV_ARM_URL, "").strip() or DEFAULT_ARM_URL)


def management_credential() -> AzureTokenCredential:
    """azure-identity's ``DefaultAzureCredential``: az login, environment, managed identity…"""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(EXTRA_MESSAGE) from exc
    return DefaultAzureCredential()


@dataclass(frozen=True)
class EndpointKeys:
    """The endpoint's two keys; ``repr`` masks them."""

    primary: str
    secondary: str | None

    def __repr__(self) -> str:
        return f"EndpointKeys(primary={mask(self.primary)}, secondary={mask(self.secondary)})"


@dataclass(frozen=True)
class AmlToken:
    """An ``aml_token`` for the scoring URI, with Azure's two times as epoch seconds."""

    token: str
    expires_at: float
    refresh_after: float

    def __repr__(self) -> str:
        return f"AmlToken({mask(self.token)}, expires_at={self.expires_at:.0f})"


def _epoch_s(value: Any) -> float:
    """Azure's ``…TimeUtc`` integers are epoch seconds; a value that can only be milliseconds
    (after the year 5000 in seconds) is read as milliseconds rather than trusted blindly."""
    number = clean_int(value, low=0, high=10**15)
    if number is None:
        return 0.0
    return number / 1000.0 if number > 10**11 else float(number)


class ControlPlane:
    """Calls to Resource Manager for online endpoints, one SDK client per subscription.

    ``credential`` is any azure-core token credential (default: :func:`management_credential`);
    ``connection_verify`` is azure-core's (a CA bundle path, or True); the SDK also honours
    ``REQUESTS_CA_BUNDLE``.
    """

    def __init__(
        self,
        credential: AzureTokenCredential | None = None,
        *,
        arm_url: str | None = None,
        connection_verify: bool | str = True,
        retry_total: int = 3,
    ):
        self._credential = credential
        self.arm_url = check_arm_url(arm_url) if arm_url else arm_url_from_env()
        self._verify = connection_verify
        self._retry_total = retry_total
        self._clients: dict[str, MachineLearningServicesMgmtClient] = {}

    def _client(self, subscription: str) -> MachineLearningServicesMgmtClient:
        client = self._clients.get(subscription)
        if client is not None:
            return client
        try:
            from azure.mgmt.machinelearningservices import MachineLearningServicesMgmtClient
        except ImportError as exc:
            raise ConfigError(EXTRA_MESSAGE) from exc
        if self._credential is None:
            self._credential = management_credential()
        client = MachineLearningServicesMgmtClient(
            self._credential,
            subscription,
            base_url=self.arm_url,
            api_version=ARM_API_VERSION,
            credential_scopes=[f"{self.arm_url}/.default"],
            connection_verify=self._verify,
            retry_total=self._retry_total,
            per_retry_policies=[_same_origin_policy(self.arm_url)],
        )
        self._clients[subscription] = client
        return client

    def _check_ref(self, ref: EndpointRef) -> None:
        if ref.arm_url != self.arm_url:
            raise ConfigError(
                f"{ref.describe()} lives behind {ref.arm_url}, not {self.arm_url}; "
                f"set {ENV_ARM_URL} accordingly"
            )

    # ------------------------------------------------------------------ the four operations

    def describe_endpoint(self, ref: EndpointRef) -> EndpointInfo:
        """Scoring URI, swagger URI, auth mode, traffic and deployments of one online endpoint."""
        self._check_ref(ref)
        client = self._client(ref.subscription)
        with _arm_errors(f"reading {ref.describe()}", self.arm_url):
            endpoint = client.online_endpoints.get(ref.resource_group, ref.workspace, ref.endpoint)
            deployments = []
            for item in client.online_deployments.list(
                ref.resource_group, ref.workspace, ref.endpoint
            ):
                deployments.append(item)
                if len(deployments) > MAX_DEPLOYMENTS:
                    raise ResponseFormatError(
                        f"{ref.describe()} lists more than {MAX_DEPLOYMENTS} deployments"
                    )
        props = endpoint.properties
        if props is None:
            raise ResponseFormatError(
                f"Azure Resource Manager described {ref.describe()} without properties"
            )
        if not props.scoring_uri:
            state = clean_text(props.provisioning_state) or "unknown"
            raise ResponseFormatError(
                f"{ref.describe()} has no scoring URI yet (provisioning state: {state})"
            )
        return EndpointInfo(
            ref=ref,
            scoring_uri=clean_uri(props.scoring_uri, "a scoring URI"),
            swagger_uri=clean_uri(props.swagger_uri, "a swagger URI")
            if props.swagger_uri
            else None,
            auth_mode=auth_mode(props.auth_mode),
            traffic=clean_traffic(props.traffic, "traffic"),
            mirror_traffic=clean_traffic(props.mirror_traffic, "mirror traffic"),
            deployments=tuple(_deployment_info(d) for d in deployments),
            provisioning_state=clean_text(props.provisioning_state),
        )

    def list_keys(self, ref: EndpointRef) -> EndpointKeys:
        """The endpoint's keys (``key`` auth). Each call asks Resource Manager afresh."""
        self._check_ref(ref)
        client = self._client(ref.subscription)
        with _arm_errors(f"listing the keys of {ref.describe()}", self.arm_url):
            keys = client.online_endpoints.list_keys(
                ref.resource_group, ref.workspace, ref.endpoint
            )
        primary = (keys.primary_key or "").strip()
        if not primary:
            raise ResponseFormatError(
                f"Azure Resource Manager returned no key for {ref.describe()}"
            )
        return EndpointKeys(primary=primary, secondary=(keys.secondary_key or "").strip() or None)

    def get_token(self, ref: EndpointRef) -> AmlToken:
        """A fresh ``aml_token`` for the scoring URI (``aml_token`` auth)."""
        self._check_ref(ref)
        client = self._client(ref.subscription)
        with _arm_errors(f"getting a token for {ref.describe()}", self.arm_url):
            token = client.online_endpoints.get_token(
                ref.resource_group, ref.workspace, ref.endpoint
            )
        access = (token.access_token or "").strip()
        if not access:
            raise ResponseFormatError(
                f"Azure Resource Manager returned no token for {ref.describe()}"
            )
        return AmlToken(
            access,
            expires_at=_epoch_s(token.expiry_time_utc),
            refresh_after=_epoch_s(token.refresh_after_time_utc),
        )

    def deployment_logs(
        self, ref: EndpointRef, deployment: str, *, lines: int, container: str = "inference-server"
    ) -> str:
        """The last ``lines`` lines a deployment's container wrote (OnlineDeployments_GetLogs)."""
        self._check_ref(ref)
        check_name(deployment, "deployment")
        if container not in CONTAINERS:
            raise ConfigError(
                f"container must be one of {', '.join(CONTAINERS)}, not '{container}'"
            )
        from azure.mgmt.machinelearningservices.models import DeploymentLogsRequest

        client = self._client(ref.subscription)
        request = DeploymentLogsRequest(container_type=CONTAINERS[container], tail=lines)
        with _arm_errors(
            f"reading the logs of deployment '{deployment}' of {ref.describe()}", self.arm_url
        ):
            logs = client.online_deployments.get_logs(
                ref.resource_group, ref.workspace, ref.endpoint, deployment, request
            )
        content = logs.content or ""
        return content[-MAX_LOG_CHARS:]


def _deployment_info(item: Any) -> DeploymentInfo:
    props = item.properties
    settings = getattr(props, "request_settings", None)
    timeout = getattr(settings, "request_timeout", None)
    sku = getattr(item, "sku", None)
    try:
        name = check_name(item.name, "deployment")
    except ConfigError as exc:  # it came from Azure, not from the user
        raise ResponseFormatError(f"Azure Resource Manager gave a {exc}") from exc
    return DeploymentInfo(
        name=name,
        compute_type=clean_text(getattr(props, "endpoint_compute_type", None)),
        instance_type=clean_text(getattr(props, "instance_type", None)),
        instance_count=clean_int(getattr(sku, "capacity", None)),
        provisioning_state=clean_text(getattr(props, "provisioning_state", None)),
        max_concurrent_requests_per_instance=clean_int(
            getattr(settings, "max_concurrent_requests_per_instance", None)
        ),
        request_timeout_ms=(
            round(timeout.total_seconds() * 1000) if isinstance(timeout, timedelta) else None
        ),
    )


# --------------------------------------------------------------------------- safety and errors


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme.lower(), (parts.hostname or "").lower(), port


def _same_origin_policy(base_url: str) -> Any:
    """An azure-core policy that stops any request leaving Resource Manager's origin."""
    from azure.core.pipeline.policies import SansIOHTTPPolicy

    allowed = _origin(base_url)

    class SameOriginPolicy(SansIOHTTPPolicy):  # type: ignore[type-arg]
        def on_request(self, request: Any) -> None:
            url = request.http_request.url
            if _origin(url) != allowed:
                host = urlsplit(url).netloc
                raise ResponseFormatError(
                    f"Azure Resource Manager pointed to another origin ({clean_text(host, 100)}); "
                    "refusing to send the credential there"
                )

    return SameOriginPolicy()


def _arm_message(exc: Any) -> str:
    """``Code: message`` from an azure-core error, on one bounded line."""
    error = getattr(exc, "error", None)
    code = clean_text(getattr(error, "code", None), 80)
    message = clean_text(getattr(error, "message", None), 300)
    if not message:
        message = clean_text(
            str(getattr(exc, "message", "") or exc).splitlines()[0] if str(exc) else "", 300
        )
    return f"{code}: {message}" if code and message else (message or code or "no details")


def sign_in_details(exc: BaseException) -> str:
    """What azure-identity tried, on one bounded line (its message spans several)."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    tried = [line for line in lines[1:] if re.match(r"^\w+Credential: ", line)]
    return clean_text("; ".join(tried) or (lines[0] if lines else ""), 240) or "no details"


@contextmanager
def _arm_errors(doing: str, arm_url: str) -> Iterator[None]:
    """Turn azure-core / azure-identity exceptions into amlc's error tree, one line each."""
    from azure.core.exceptions import (
        AzureError,
        ClientAuthenticationError,
        DecodeError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    try:
        yield
    except ResponseFormatError:
        raise
    except ClientAuthenticationError as exc:
        status = getattr(exc, "status_code", None)
        if status is None:
            # azure-identity could not produce a token: Azure was never asked, so this is the
            # caller's setup (no az login, no AZURE_* variables), not a refused credential.
            raise ConfigError(
                f"no usable Azure sign-in for {doing}: run `az login` or set AZURE_* variables "
                f"({sign_in_details(exc)})"
            ) from exc
        raise AuthenticationError(
            f"Azure Resource Manager refused the credential ({status}) while {doing}: "
            f"{_arm_message(exc)}",
            status_code=status,
        ) from exc
    except ResourceNotFoundError as exc:
        raise NotFoundError(
            f"not found while {doing}: {_arm_message(exc)}", status_code=404
        ) from exc
    except DecodeError as exc:
        raise ResponseFormatError(
            f"unreadable answer from Azure Resource Manager while {doing}"
        ) from exc
    except HttpResponseError as exc:
        status = exc.status_code
        kind = AuthenticationError if status in (401, 403) else EndpointError
        what = "refused the credential" if status in (401, 403) else "answered"
        raise kind(
            f"Azure Resource Manager {what} ({status}) while {doing}: {_arm_message(exc)}",
            status_code=status,
        ) from exc
    except ServiceRequestError as exc:
        reason = clean_text(str(exc).splitlines()[0] if str(exc) else "", 200) or "no details"
        raise ConnectionFailedError(
            f"cannot reach Azure Resource Manager at {arm_url}: {reason}"
        ) from exc
    except ServiceResponseError as exc:
        raise EndpointError(f"Azure Resource Manager broke off while {doing}") from exc
    except AzureError as exc:
        raise EndpointError(f"Azure error while {doing}: {_arm_message(exc)}") from exc
