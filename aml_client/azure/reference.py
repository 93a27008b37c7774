"""Where an online endpoint lives in Azure and what was discovered about it: plain, checked data.

Everything here came from the user (names on the command line) or from Azure Resource Manager
(scoring URI, deployment names, traffic). Both are checked before they are stored in a profile or
put into a URL or a header: names against Azure's own character rules, URIs for scheme and host,
sizes bounded. A profile keeps this as its ``[endpoints.NAME.azure]`` table (no secret in it).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from aml_client.errors import ConfigError, ResponseFormatError

#: Azure Resource Manager for the public cloud. ``AMLC_ARM_URL`` points elsewhere (a sovereign
#: cloud, or a test double); a profile remembers a non-default one.
DEFAULT_ARM_URL = "https://management.azure.com"
ENV_ARM_URL = "AMLC_ARM_URL"

#: Azure's auth modes (``EndpointAuthMode``) in amlc's words.
AUTH_MODES = {"key": "key", "amltoken": "aml_token", "aadtoken": "aad_token"}

MAX_DEPLOYMENTS = 100
_MAX_URI = 2048
_MAX_TEXT = 256

_SUBSCRIPTION = re.compile(
    r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$"
)
# Resource groups also allow parentheses; none of these may hold '/', '?', '#' or spaces.
_RESOURCE_GROUP = re.compile(r"^[A-Za-z0-9._()-]{1,90}$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,254}$")


def check_name(value: str, what: str) -> str:
    """A workspace, endpoint or deployment name, safe in a URL path and an HTTP header."""
    if not isinstance(value, str) or not _NAME.match(value):
        raise ConfigError(
            f"{what} {_show(value)} is not a valid Azure name "
            "(letters, digits, '-', '_' and '.', starting with a letter or digit)"
        )
    return value


def _show(value: object) -> str:
    """A short, printable rendering of an untrusted value for an error message."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "…"


def check_arm_url(url: str) -> str:
    """An ``https://host[:port]`` base URL for Resource Manager, without a trailing slash."""
    parts = urlsplit(url.strip())
    if parts.scheme != "https" or not parts.hostname or parts.query or parts.fragment:
        raise ConfigError(
            f"Azure Resource Manager URL must be https://host[:port], not {_show(url)}"
        )
    if parts.path not in ("", "/"):
        raise ConfigError(f"Azure Resource Manager URL takes no path: {_show(url)}")
    return f"https://{parts.netloc}"


@dataclass(frozen=True)
class EndpointRef:
    """One online endpoint: subscription, resource group, workspace, endpoint name."""

    subscription: str
    resource_group: str
    workspace: str
    endpoint: str
    arm_url: str = DEFAULT_ARM_URL

    def __post_init__(self) -> None:
        if not _SUBSCRIPTION.match(self.subscription or ""):
            raise ConfigError(
                f"subscription {_show(self.subscription)} is not a subscription id (a GUID)"
            )
        if not _RESOURCE_GROUP.match(self.resource_group or ""):
            raise ConfigError(f"resource group {_show(self.resource_group)} is not a valid name")
        check_name(self.workspace, "workspace")
        check_name(self.endpoint, "endpoint")
        object.__setattr__(self, "arm_url", check_arm_url(self.arm_url))

    def describe(self) -> str:
        return (
            f"endpoint '{self.endpoint}' in workspace '{self.workspace}' "
            f"(resource group '{self.resource_group}', subscription {self.subscription})"
        )


@dataclass(frozen=True)
class DeploymentInfo:
    """What Resource Manager says about one deployment; fields it left out stay None."""

    name: str
    compute_type: str | None = None
    instance_type: str | None = None
    instance_count: int | None = None
    provisioning_state: str | None = None
    max_concurrent_requests_per_instance: int | None = None
    request_timeout_ms: int | None = None

    def to_table(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if v is not None}


@dataclass(frozen=True)
class EndpointInfo:
    """An online endpoint as discovered: where to score, how to authenticate, who gets traffic."""

    ref: EndpointRef
    scoring_uri: str
    swagger_uri: str | None
    auth_mode: str
    traffic: dict[str, int] = field(default_factory=dict)
    mirror_traffic: dict[str, int] = field(default_factory=dict)
    deployments: tuple[DeploymentInfo, ...] = ()
    provisioning_state: str | None = None

    def to_table(self) -> dict[str, Any]:
        """The profile's ``azure`` table: where the endpoint lives and what it looked like."""
        table: dict[str, Any] = {
            "subscription": self.ref.subscription,
            "resource_group": self.ref.resource_group,
            "workspace": self.ref.workspace,
            "endpoint": self.ref.endpoint,
            "auth_mode": self.auth_mode,
            "traffic": dict(self.traffic),
        }
        if self.ref.arm_url != DEFAULT_ARM_URL:
            table["arm_url"] = self.ref.arm_url
        if self.mirror_traffic:
            table["mirror_traffic"] = dict(self.mirror_traffic)
        if self.provisioning_state:
            table["provisioning_state"] = self.provisioning_state
        table["deployments"] = [d.to_table() for d in self.deployments]
        return table


def ref_from_table(table: Any, *, profile: str) -> EndpointRef:
    """The :class:`EndpointRef` stored in a profile's ``azure`` table (ConfigError if broken)."""
    if not isinstance(table, dict):
        raise ConfigError(
            f"profile '{profile}' was not imported from Azure: run `amlc endpoint import`"
        )
    missing = [
        k for k in ("subscription", "resource_group", "workspace", "endpoint") if not table.get(k)
    ]
    if missing:
        raise ConfigError(f"profile '{profile}': the azure table lacks {', '.join(missing)}")
    return EndpointRef(
        subscription=str(table["subscription"]),
        resource_group=str(table["resource_group"]),
        workspace=str(table["workspace"]),
        endpoint=str(table["endpoint"]),
        arm_url=str(table.get("arm_url") or DEFAULT_ARM_URL),
    )


# --------------------------------------------------------------------------- untrusted values


def clean_text(value: Any, limit: int = _MAX_TEXT) -> str | None:
    """A printable one-line string from Resource Manager, or None; control characters dropped."""
    if value is None:
        return None
    text = "".join(ch if ch.isprintable() else " " for ch in str(value)).strip()
    return text[:limit] or None


def clean_uri(value: Any, what: str) -> str:
    """An http(s) URI from Resource Manager; anything else is refused rather than stored."""
    text = value if isinstance(value, str) else ""
    parts = urlsplit(text)
    ok = (
        0 < len(text) <= _MAX_URI
        and parts.scheme in ("http", "https")
        and bool(parts.hostname)
        and text.isprintable()
        and " " not in text
    )
    if not ok:
        raise ResponseFormatError(
            f"Azure Resource Manager gave {what} {_show(value)}, not an http(s) URI"
        )
    return text


def clean_int(value: Any, *, low: int = 0, high: int = 10**9) -> int | None:
    """A bounded integer, or None when absent or not a number."""
    if isinstance(value, bool) or value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if not math.isfinite(number) or number != int(number) or not low <= number <= high:
        return None
    return int(number)


def clean_traffic(value: Any, what: str) -> dict[str, int]:
    """``{deployment: percent}`` with checked names and 0–100 integer shares."""
    if value is None:
        return {}
    if not isinstance(value, dict) or len(value) > MAX_DEPLOYMENTS:
        raise ResponseFormatError(f"Azure Resource Manager gave {what} that is not a small map")
    traffic: dict[str, int] = {}
    for name, share in value.items():
        percent = clean_int(share, high=100)
        if not isinstance(name, str) or not _NAME.match(name) or percent is None:
            raise ResponseFormatError(
                f"Azure Resource Manager gave {what} entry {_show(name)}: {_show(share)}"
            )
        traffic[name] = percent
    return traffic


def auth_mode(value: Any) -> str:
    """``Key`` / ``AMLToken`` / ``AADToken`` → ``key`` / ``aml_token`` / ``aad_token``."""
    key = str(value or "").replace("_", "").lower()
    if key not in AUTH_MODES:
        raise ResponseFormatError(
            f"Azure Resource Manager gave an unknown auth mode {_show(value)}"
        )
    return AUTH_MODES[key]
