"""Endpoint profiles and the one rule that decides which endpoint a command talks to.

Resolution order (first match wins):

1. an explicit name — a profile in ``config.toml``, or ``"local"`` for the running local endpoint;
2. the environment — ``AMLC_SCORING_URI`` with ``AMLC_KEY``, ``AMLC_TOKEN`` or
   ``AMLC_TOKEN_COMMAND`` (and optionally ``AMLC_SWAGGER_URI``, ``AMLC_DEPLOYMENT``), so CI jobs
   and containers need no file;
3. the default profile in ``config.toml``;
4. the local endpoint, if one is running;
5. otherwise a :class:`~aml_client.errors.ConfigError` that says how to get one.

``config.toml`` lives in :func:`aml_client.paths.config_dir` and is always written 0600, because a
profile may hold a key. A profile can instead name an environment variable (``key_env``) so the
secret never touches the disk, or a ``token_command`` that prints a fresh token when one is
needed. A config file that others can read is refused when it holds a key.

This module is plain data below the client: it builds credentials through
:func:`aml_client.http.credentials.credential_for` (or :mod:`aml_client.azure` for imported
profiles), finds the local endpoint through :mod:`aml_client.local`, and never imports the
client; endpoints are opened from a :class:`Target` by
:meth:`aml_client.client.Endpoint.from_target`.
"""

from __future__ import annotations

import logging
import os
import stat
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from aml_client import paths
from aml_client.auth import mask
from aml_client.environment import seconds_from_env
from aml_client.errors import ConfigError

if TYPE_CHECKING:
    from aml_client.azure.control import ControlPlane
    from aml_client.azure.reference import EndpointInfo
    from aml_client.http.credentials import Credential

log = logging.getLogger(__name__)

#: Ways a profile authenticates; ``azure_key`` and ``aml_token`` are fetched from Azure on use.
AUTH_KINDS = ("key", "token", "entra", "none", "azure_key", "aml_token")
_FROM_AZURE = ("azure_key", "aml_token")
#: Names with a fixed meaning that a profile cannot take.
RESERVED_NAMES = frozenset({"local", "env"})

ENV_SCORING_URI = "AMLC_SCORING_URI"
ENV_KEY = "AMLC_KEY"
ENV_TOKEN = "AMLC_TOKEN"
ENV_SWAGGER_URI = "AMLC_SWAGGER_URI"
ENV_TOKEN_COMMAND = "AMLC_TOKEN_COMMAND"
#: Seconds a token command may run (a profile's ``token_command_timeout`` wins).
ENV_TOKEN_COMMAND_TIMEOUT = "AMLC_TOKEN_COMMAND_TIMEOUT"
#: Longest deadline a token command may be given.
MAX_TOKEN_COMMAND_TIMEOUT_S = 3600.0
ENV_DEPLOYMENT = "AMLC_DEPLOYMENT"

NO_ENDPOINT_MESSAGE = (
    "no endpoint configured: run `amlc local up --detach`, set AMLC_SCORING_URI, "
    "or `amlc endpoint add`"
)


def check_scoring_uri(scoring_uri: str) -> None:
    """Refuse a scoring URI amlc cannot call (a profile is checked when stored, an endpoint
    when opened)."""
    if not scoring_uri.startswith(("http://", "https://")):
        raise ConfigError(f"scoring URI must start with http:// or https://: {scoring_uri}")


def sibling_uri(scoring_uri: str, name: str) -> str:
    """A route Azure serves beside the scoring route: ``https://h/api/x/score`` ->
    ``https://h/api/x/<name>`` (``swagger.json``; ``""`` is the health route). A URI that does
    not end in ``/score`` gets ``/<name>`` appended; query and fragment are dropped."""
    parts = urlsplit(scoring_uri)
    path = parts.path.rstrip("/")
    path = path[: -len("score")] if path.endswith("/score") else path + "/"
    return urlunsplit((parts.scheme, parts.netloc, path + name, "", ""))


def swagger_uri_for(scoring_uri: str) -> str:
    """Where the endpoint's swagger is when nothing says otherwise: beside ``…/score``."""
    return sibling_uri(scoring_uri, "swagger.json")


@dataclass
class Target:
    """Everything needed to call one endpoint; its ``repr`` never shows a secret."""

    name: str
    scoring_uri: str
    swagger_uri: str | None
    credential: Credential | None
    verify: bool = True
    #: Where it came from: "profile", "environment", "default profile" or "local endpoint".
    source: str = "profile"
    #: The deployment to pin (``azureml-model-deployment``); None lets the endpoint's traffic
    #: rules choose.
    deployment: str | None = None
    #: The environment variable the secret was read from (kept out of child processes).
    secret_env: str | None = None

    def describe(self) -> str:
        """``name (uri)`` — safe to print."""
        return f"{self.name} ({self.scoring_uri})"


@dataclass
class Profile:
    """One ``[endpoints.NAME]`` table of ``config.toml``."""

    name: str
    scoring_uri: str
    swagger_uri: str | None = None
    auth: str = "key"
    #: The secret itself, stored only in the 0600 config file.
    key: str | None = field(default=None, repr=False)
    #: Name of an environment variable holding the secret (preferred over a stored key).
    key_env: str | None = None
    verify: bool = True
    #: ``[endpoints.NAME.azure]``: where an imported endpoint lives (aml_client.azure reads it).
    azure: dict[str, Any] | None = None
    #: A command that prints a token (``auth = "token"``), run when a token is needed.
    token_command: str | None = None
    #: Seconds the token command may run before it is killed (default 60).
    token_command_timeout: float | None = None
    #: The deployment requests are pinned to.
    deployment: str | None = None

    def to_toml(self) -> dict[str, Any]:
        table: dict[str, Any] = {"scoring_uri": self.scoring_uri, "auth": self.auth}
        if self.swagger_uri:
            table["swagger_uri"] = self.swagger_uri
        if self.token_command:
            table["token_command"] = self.token_command
        if self.token_command_timeout is not None:
            table["token_command_timeout"] = self.token_command_timeout
        if self.deployment:
            table["deployment"] = self.deployment
        if self.key_env:
            table["key_env"] = self.key_env
        if self.key:
            table["key"] = self.key
        if not self.verify:
            table["verify"] = False
        if self.azure:
            table["azure"] = self.azure
        return table

    @classmethod
    def from_toml(cls, name: str, table: dict[str, Any]) -> Profile:
        if not isinstance(table, dict) or not table.get("scoring_uri"):
            raise ConfigError(f"{config_path()}: profile '{name}' has no scoring_uri")
        auth = str(table.get("auth", "key"))
        if auth not in AUTH_KINDS:
            raise ConfigError(
                f"{config_path()}: profile '{name}' has auth = '{auth}'; "
                f"expected one of {', '.join(AUTH_KINDS)}"
            )
        azure = table.get("azure")
        if azure is not None and not isinstance(azure, dict):
            raise ConfigError(f"{config_path()}: profile '{name}': azure must be a table")
        if auth in _FROM_AZURE and not azure:
            raise ConfigError(
                f"{config_path()}: profile '{name}' has auth = '{auth}' but no azure table; "
                f"run `amlc endpoint import {name} ...`"
            )
        return cls(
            name=name,
            scoring_uri=str(table["scoring_uri"]),
            swagger_uri=table.get("swagger_uri") or None,
            auth=auth,
            key=table.get("key") or None,
            key_env=table.get("key_env") or None,
            verify=bool(table.get("verify", True)),
            azure=azure,
            token_command=_optional_str(table, "token_command", name),
            token_command_timeout=_optional_seconds(table, "token_command_timeout", name),
            deployment=_optional_str(table, "deployment", name),
        )

    def secret(self) -> str | None:
        """The key or token: from ``key_env`` when set, else the stored one."""
        if self.key_env:
            value = os.environ.get(self.key_env, "").strip()
            if not value:
                raise ConfigError(
                    f"profile '{self.name}' reads its {self.auth} from ${self.key_env}, "
                    "which is not set"
                )
            return value
        return self.key

    def credential(self) -> Credential | None:
        from aml_client.http.credentials import credential_for

        if self.auth in _FROM_AZURE:
            from aml_client.azure.credentials import profile_credential

            return profile_credential(self.auth, self.azure, profile=self.name)
        if self.auth == "token" and self.token_command and not (self.key or self.key_env):
            return credential_for(
                "token",
                token_command=self.token_command,
                token_command_timeout=self.token_command_timeout or token_command_timeout(),
            )
        secret = self.secret() if self.auth in ("key", "token") else None
        if self.auth in ("key", "token") and not secret:
            raise ConfigError(
                f"profile '{self.name}' has no {self.auth}: "
                f"run `amlc endpoint add {self.name} ... --key-env VAR` or `--key-stdin`"
            )
        return credential_for(self.auth, secret=secret)

    def masked_secret(self) -> str:
        """How the secret is shown in ``amlc endpoint list/show``: where it lives, masked."""
        if self.auth in ("none", "entra"):
            return "-"
        if self.auth in _FROM_AZURE:
            return "(from Azure when used)"
        if self.auth == "token" and self.token_command and not (self.key or self.key_env):
            return "(token command)"
        if self.key_env:
            value = os.environ.get(self.key_env)
            return f"${self.key_env} ({mask(value) if value else 'not set'})"
        return mask(self.key)

    def target(self, source: str = "profile") -> Target:
        return Target(
            name=self.name,
            scoring_uri=self.scoring_uri,
            swagger_uri=self.swagger_uri,
            credential=self.credential(),
            verify=self.verify,
            source=source,
            deployment=self.deployment,
            secret_env=self.key_env,
        )


def _optional_str(table: dict[str, Any], key: str, name: str) -> str | None:
    value = table.get(key)
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ConfigError(f"{config_path()}: profile '{name}' has a {key} that is not a string")
    return value


def _optional_seconds(table: dict[str, Any], key: str, name: str) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (
        0 < value <= MAX_TOKEN_COMMAND_TIMEOUT_S
    ):
        raise ConfigError(
            f"{config_path()}: profile '{name}' has {key} = {value!r}; expected seconds "
            f"above 0 and at most {MAX_TOKEN_COMMAND_TIMEOUT_S:g}"
        )
    return float(value)


def token_command_timeout() -> float | None:
    """``AMLC_TOKEN_COMMAND_TIMEOUT`` in seconds, if set."""
    return seconds_from_env(ENV_TOKEN_COMMAND_TIMEOUT, maximum=MAX_TOKEN_COMMAND_TIMEOUT_S)


# --------------------------------------------------------------------------- the file


def config_path() -> Path:
    return paths.config_dir() / "config.toml"


def _check_private(path: Path, data: dict[str, Any]) -> None:
    """Refuse a key that others could read; a file without secrets only earns a warning."""
    if os.name != "posix":
        return
    mode = stat.S_IMODE(path.stat().st_mode)
    if not mode & 0o077:
        return
    holds_key = any(
        isinstance(table, dict) and table.get("key")
        for table in (data.get("endpoints") or {}).values()
    )
    message = f"{path} is readable by other users (mode {mode:03o}): run `chmod 600 {path}`"
    if holds_key:
        raise ConfigError(f"{message}; refusing to use the keys in it")
    log.warning("%s", message)


def load_config() -> dict[str, Any]:
    """The parsed ``config.toml``, or an empty config when there is none yet."""
    path = config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from exc
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
    _check_private(path, data)
    return data


def save_config(data: dict[str, Any]) -> Path:
    """Write ``config.toml`` atomically with mode 0600."""
    import tomli_w

    path = config_path()
    paths.write_private(path, tomli_w.dumps(data))
    return path


def list_profiles() -> list[Profile]:
    endpoints = load_config().get("endpoints") or {}
    return [Profile.from_toml(name, table) for name, table in endpoints.items()]


def default_profile_name() -> str | None:
    default = load_config().get("default") or {}
    name = default.get("endpoint") if isinstance(default, dict) else None
    return str(name) if name else None


def get_profile(name: str) -> Profile:
    endpoints = load_config().get("endpoints") or {}
    if name not in endpoints:
        known = ", ".join(sorted(endpoints)) or "none"
        raise ConfigError(f"no endpoint profile named '{name}' (known: {known})")
    return Profile.from_toml(name, endpoints[name])


def validate_name(name: str) -> None:
    if name in RESERVED_NAMES:
        raise ConfigError(f"'{name}' is reserved; choose another profile name")
    if not name or not all(ch.isalnum() or ch in "-_." for ch in name):
        raise ConfigError(f"profile name '{name}' may use letters, digits, '-', '_' and '.' only")


def add_profile(profile: Profile, *, make_default: bool = False, replace: bool = True) -> Path:
    """Store ``profile``; the first profile added becomes the default."""
    validate_name(profile.name)
    if profile.auth not in AUTH_KINDS:
        raise ConfigError(f"auth must be one of {', '.join(AUTH_KINDS)}, not '{profile.auth}'")
    check_scoring_uri(profile.scoring_uri)
    data = load_config()
    endpoints = data.setdefault("endpoints", {})
    if not replace and profile.name in endpoints:
        raise ConfigError(f"profile '{profile.name}' exists already")
    endpoints[profile.name] = profile.to_toml()
    default = data.setdefault("default", {})
    if make_default or not default.get("endpoint"):
        default["endpoint"] = profile.name
    return save_config(data)


def remove_profile(name: str) -> None:
    data = load_config()
    endpoints = data.get("endpoints") or {}
    if name not in endpoints:
        raise ConfigError(f"no endpoint profile named '{name}'")
    del endpoints[name]
    default = data.get("default") or {}
    if default.get("endpoint") == name:
        default.pop("endpoint")
    save_config(data)


def set_default(name: str) -> None:
    get_profile(name)  # fails clearly for an unknown name
    data = load_config()
    data.setdefault("default", {})["endpoint"] = name
    save_config(data)


# --------------------------------------------------------------------------- imported from Azure

#: Azure's auth mode → the profile's ``auth``. Entra ID needs no control-plane call: the profile
#: asks azure-identity for a token for https://ml.azure.com, as ``--auth entra`` does.
PROFILE_AUTH = {"key": "azure_key", "aml_token": "aml_token", "aad_token": "entra"}


def profile_for(name: str, info: EndpointInfo) -> Profile:
    """The profile for a discovered endpoint: URIs, auth kind and the ``azure`` table, no secret."""
    return Profile(
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
) -> tuple[Profile, EndpointInfo, Path]:
    """Discover ``endpoint`` (default: ``name``) through Resource Manager; store it as ``name``."""
    # Imported on use: most commands never talk to Resource Manager.
    from aml_client.azure.control import ControlPlane
    from aml_client.azure.reference import EndpointRef

    validate_name(name)
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
    path = add_profile(profile, make_default=make_default)
    return profile, info, path


# --------------------------------------------------------------------------- resolution


def local_target() -> Target | None:
    """The running local endpoint with its primary key, or None when none is running."""
    # Imported here: the local package is optional and pulls in process tooling.
    try:
        from aml_client.local import local_keys, running_endpoint
    except ImportError:  # pragma: no cover - depends on the install
        return None
    from aml_client.http.credentials import credential_for

    info = running_endpoint()
    if info is None:
        return None
    keys = local_keys()
    return Target(
        name="local",
        scoring_uri=info.scoring_uri,
        swagger_uri=info.swagger_uri,
        credential=credential_for("key", secret=keys[0]) if keys else None,
        source="local endpoint",
    )


def env_target() -> Target | None:
    """The endpoint named by ``AMLC_SCORING_URI`` (+ ``AMLC_KEY`` / ``AMLC_TOKEN`` /
    ``AMLC_TOKEN_COMMAND``), if set."""
    from aml_client.http.credentials import credential_for

    uri = os.environ.get(ENV_SCORING_URI, "").strip()
    if not uri:
        return None
    key = os.environ.get(ENV_KEY, "").strip()
    token = os.environ.get(ENV_TOKEN, "").strip()
    command = os.environ.get(ENV_TOKEN_COMMAND, "").strip()
    credential: Credential | None = None
    if key:
        credential = credential_for("key", secret=key)
    elif token:
        credential = credential_for("token", secret=token)
    elif command:
        credential = credential_for(
            "token", token_command=command, token_command_timeout=token_command_timeout()
        )
    return Target(
        name="env",
        scoring_uri=uri,
        swagger_uri=os.environ.get(ENV_SWAGGER_URI, "").strip() or None,
        credential=credential,
        source="environment",
        deployment=os.environ.get(ENV_DEPLOYMENT, "").strip() or None,
    )


def resolve_target(name: str | None = None) -> Target:
    """Pick the endpoint to call; see the module docstring for the order."""
    if name:
        if name == "local":
            target = local_target()
            if target is None:
                raise ConfigError("no local endpoint is running: run `amlc local up --detach`")
            return target
        if name == "env":
            target = env_target()
            if target is None:
                raise ConfigError(f"endpoint 'env' needs {ENV_SCORING_URI} to be set")
            return target
        return get_profile(name).target("profile")
    target = env_target()
    if target is not None:
        return target
    default = default_profile_name()
    if default:
        return get_profile(default).target("default profile")
    target = local_target()
    if target is not None:
        return target
    raise ConfigError(NO_ENDPOINT_MESSAGE)

