"""Deployments of the local endpoint: what each one serves, its traffic and request settings.

A managed online endpoint on Azure has one scoring URI and several deployments, each with its
own model, a share of the traffic and ``request_settings`` (``max_concurrent_requests_per_
instance``, ``request_timeout_ms``). The local endpoint copies that shape. On the command line a
deployment is ``NAME[:KIND][,option=value...]``, for example ``green:onnx`` or
``slow,delay_ms=800,request_timeout_ms=300``; traffic is ``blue=90,green=10``.

``delay_ms`` and ``fail_rate`` do not exist on Azure: they make the scoring function slow or
failing on purpose, so the endpoint's 408, 429 and 424 answers can be produced by real requests.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aml_client.errors import ConfigError

#: What a deployment serves: the scikit-learn pipeline, or its ONNX copy run by onnxruntime.
KINDS = ("sklearn", "onnx")
DEFAULT_NAME = "blue"
#: Azure's rule for deployment names: 3 to 32 characters, a letter first, then letters,
#: digits and hyphens.
NAME_PATTERN = re.compile(r"[A-Za-z][A-Za-z0-9-]{2,31}")
#: Azure's documented default and maximum scoring timeout.
DEFAULT_REQUEST_TIMEOUT_MS = 5000
MAX_REQUEST_TIMEOUT_MS = 180_000
MAX_WORKERS = 32
MAX_DELAY_MS = 600_000
#: Requests a deployment takes at once unless told otherwise. Azure's default is 1 (and 429
#: past 2 pending), which turns a modest load test such as ``amlc bench --users 20`` into 429s;
#: the local endpoint is meant to be usable as it comes, so it admits 16 (32 pending). The
#: requests beyond the worker count wait in the deployment's listen queue. ``max_concurrent=1``
#: reproduces Azure's default.
DEFAULT_MAX_CONCURRENT = 16

#: The options a deployment accepts after its name, with their bounds.
_INT_OPTIONS: dict[str, tuple[int, int]] = {
    "workers": (1, MAX_WORKERS),
    "max_concurrent_requests_per_instance": (1, 1000),
    "request_timeout_ms": (1, MAX_REQUEST_TIMEOUT_MS),
    "delay_ms": (0, MAX_DELAY_MS),
}
_FLOAT_OPTIONS = {"fail_rate": (0.0, 1.0)}


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment as asked for; ``None`` means "the endpoint's default".

    ``max_concurrent_requests_per_instance`` defaults to :func:`default_max_concurrent` (on
    Azure it is 1; ``max_concurrent=1`` reproduces that); the endpoint answers 429 once more
    than twice that many requests are pending for the deployment.
    """

    name: str
    kind: str = "sklearn"
    workers: int | None = None
    max_concurrent_requests_per_instance: int | None = None
    request_timeout_ms: int = DEFAULT_REQUEST_TIMEOUT_MS
    delay_ms: int = 0
    fail_rate: float = 0.0

    def __post_init__(self) -> None:
        if not NAME_PATTERN.fullmatch(self.name):
            raise ConfigError(
                f"deployment name {self.name!r} is not valid: 3 to 32 letters, digits or "
                "hyphens, starting with a letter"
            )
        if self.kind not in KINDS:
            raise ConfigError(
                f"deployment {self.name}: unknown kind {self.kind!r}; choose {' or '.join(KINDS)}"
            )
        for name, (low, high) in _INT_OPTIONS.items():
            value = getattr(self, name)
            if value is not None and not low <= value <= high:
                raise ConfigError(
                    f"deployment {self.name}: {name} must be between {low} and {high}"
                )
        low_f, high_f = _FLOAT_OPTIONS["fail_rate"]
        if not low_f <= self.fail_rate <= high_f:
            raise ConfigError(f"deployment {self.name}: fail_rate must be between 0 and 1")


@dataclass
class DeploymentInfo:
    """A running deployment, as recorded in the endpoint's state file."""

    name: str
    kind: str
    traffic: int  # percent of unpinned requests
    workers: int
    max_concurrent_requests_per_instance: int
    request_timeout_ms: int
    port: int  # internal, on 127.0.0.1; it checks the same keys as the endpoint
    model: str  # the model's name (e.g. GradientBoosting)
    model_dir: str
    accuracy: float  # held-out accuracy of what this deployment serves
    agreement: float | None = None  # ONNX: share of held-out rows labelled as scikit-learn does
    delay_ms: int = 0
    fail_rate: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DeploymentInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


def default_max_concurrent(workers: int) -> int:
    """A deployment's ``max_concurrent_requests_per_instance`` when none is given: at least
    :data:`DEFAULT_MAX_CONCURRENT`, and never fewer than its workers."""
    return max(DEFAULT_MAX_CONCURRENT, workers)


def parse_deployment(text: str) -> DeploymentSpec:
    """``NAME[:KIND][,option=value...]`` -> a DeploymentSpec (ConfigError says what is wrong)."""
    head, *options = [part.strip() for part in text.split(",")]
    name, _, kind = head.partition(":")
    values: dict[str, Any] = {"name": name.strip(), "kind": kind.strip() or "sklearn"}
    for option in options:
        key, sep, raw = option.partition("=")
        key, raw = key.strip(), raw.strip()
        if not sep or not key:
            raise ConfigError(f"--deployment {text!r}: expected option=value, got {option!r}")
        if key == "max_concurrent":  # a shorter spelling of Azure's long name
            key = "max_concurrent_requests_per_instance"
        if key in values:
            raise ConfigError(f"--deployment {text!r}: {key} is given twice")
        try:
            if key in _INT_OPTIONS:
                values[key] = int(raw)
            elif key in _FLOAT_OPTIONS:
                values[key] = float(raw)
            else:
                known = ", ".join([*_INT_OPTIONS, *_FLOAT_OPTIONS])
                raise ConfigError(f"--deployment {text!r}: unknown option {key!r} ({known})")
        except ValueError:
            raise ConfigError(f"--deployment {text!r}: {key} must be a number") from None
    return DeploymentSpec(**values)


def parse_traffic(text: str) -> dict[str, int]:
    """``blue=90,green=10`` -> ``{"blue": 90, "green": 10}`` (whole percentages)."""
    traffic: dict[str, int] = {}
    for part in text.split(","):
        if not part.strip():
            continue
        name, sep, raw = part.partition("=")
        name = name.strip()
        if not sep or not name:
            raise ConfigError(f"--traffic {text!r}: expected NAME=PERCENT, got {part.strip()!r}")
        try:
            share = int(raw.strip())
        except ValueError:
            raise ConfigError(
                f"--traffic {text!r}: {name}'s share must be a whole number"
            ) from None
        if not 0 <= share <= 100:
            raise ConfigError(f"--traffic {text!r}: {name}'s share must be between 0 and 100")
        if name in traffic:
            raise ConfigError(f"--traffic {text!r}: {name} is given twice")
        traffic[name] = share
    return traffic


def resolve(
    deployments: Sequence[DeploymentSpec] | None, traffic: Mapping[str, int] | None
) -> tuple[list[DeploymentSpec], dict[str, int]]:
    """The deployments to run (one ``blue`` by default) and every deployment's share.

    Without ``traffic`` the first deployment takes all of it, as the first deployment of an
    Azure endpoint usually does. As on Azure, shares must add up to 100 (or all be 0: then only
    requests that name a deployment are answered).
    """
    specs = list(deployments) if deployments else [DeploymentSpec(DEFAULT_NAME)]
    names = [spec.name for spec in specs]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ConfigError(f"deployment {duplicates[0]} is given twice")
    if traffic is None:
        shares = {name: (100 if i == 0 else 0) for i, name in enumerate(names)}
    else:
        unknown = [name for name in traffic if name not in names]
        if unknown:
            raise ConfigError(
                f"--traffic names {unknown[0]}, which is not a deployment ({', '.join(names)})"
            )
        shares = {name: traffic.get(name, 0) for name in names}
        total = sum(shares.values())
        if total not in (0, 100):
            raise ConfigError(f"--traffic shares add up to {total}; they must add up to 100")
    return specs, shares


@dataclass
class FrontPlan:
    """Everything the front process needs, written by ``start`` and read by the front."""

    host: str
    port: int
    listen_fd: int  # the public socket, bound by ``start`` (so a busy port fails there)
    style: str
    keys_file: str
    access_log: str
    app_root: str
    ready_timeout_s: float
    deployments: list[DeploymentInfo]
    #: Internal listening socket of each deployment (same order), handed to its gunicorn.
    deployment_fds: list[int] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["deployments"] = [d.to_dict() for d in self.deployments]
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> FrontPlan:
        values = dict(data)
        values["deployments"] = [DeploymentInfo.from_dict(d) for d in values["deployments"]]
        return cls(**values)
