"""``amlc endpoint add | list | show | remove | use``: named endpoint profiles in config.toml.

A key is never a command-line value (it would land in shell history and ``ps``): it comes from
an environment variable named with ``--key-env`` (only the name is stored), from stdin with
``--key-stdin``, or from a hidden prompt, and is kept in the 0600 config file.

``amlc endpoint import`` finds an Azure online endpoint through Resource Manager and stores a
profile with no secret at all: its key or token is fetched from Azure each time it is used.
"""

from __future__ import annotations

import os
import sys
from enum import StrEnum
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from aml_client import config
from aml_client.cli import output
from aml_client.errors import ConfigError


class AuthKind(StrEnum):
    KEY = "key"
    TOKEN = "token"
    ENTRA = "entra"
    NONE = "none"


def _read_secret(
    name: str, auth: AuthKind, key_env: str | None, key_stdin: bool, token_command: str | None
) -> str | None:
    """The secret to store, or None when it lives elsewhere (``--key-env``, a token command,
    Entra, none)."""
    if token_command is not None:
        if auth is not AuthKind.TOKEN:
            raise ConfigError("--token-command goes with --auth token")
        if key_env or key_stdin:
            raise ConfigError("give --token-command or --key-env / --key-stdin, not both")
        return None
    if auth in (AuthKind.ENTRA, AuthKind.NONE):
        if key_env or key_stdin:
            raise ConfigError(f"--auth {auth} takes no key; drop --key-env / --key-stdin")
        return None
    if key_env and key_stdin:
        raise ConfigError("give --key-env or --key-stdin, not both")
    if key_env:
        return None
    if key_stdin:
        secret = sys.stdin.readline().strip()
        if not secret:
            raise ConfigError(f"--key-stdin: no {auth} on standard input")
        return secret
    if not sys.stdin.isatty():
        raise ConfigError(
            f"no {auth} given: use --key-env VAR, pipe it with --key-stdin, or run in a terminal"
        )
    secret = str(typer.prompt(f"{auth.capitalize()} for '{name}'", hide_input=True, err=True))
    secret = secret.strip()
    if not secret:
        raise ConfigError(f"empty {auth}")
    return secret


def _profile_dict(profile: config.Profile, default: str | None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": profile.name,
        "scoring_uri": profile.scoring_uri,
        "swagger_uri": profile.swagger_uri,
        "auth": profile.auth,
        "key": profile.masked_secret(),
        "key_env": profile.key_env,
        "token_command": profile.token_command,
        "deployment": profile.deployment,
        "verify": profile.verify,
        "default": profile.name == default,
    }
    if profile.azure:
        data["azure"] = profile.azure
    return data


def add(
    name: Annotated[str, typer.Argument(help="Profile name, e.g. prod.")],
    scoring_uri: Annotated[str, typer.Option("--scoring-uri", help="The endpoint's scoring URI.")],
    swagger_uri: Annotated[
        str | None, typer.Option("--swagger-uri", help="Swagger URI (default: beside /score).")
    ] = None,
    auth: Annotated[AuthKind, typer.Option("--auth", help="How to authenticate.")] = AuthKind.KEY,
    key_env: Annotated[
        str | None,
        typer.Option("--key-env", metavar="VAR", help="Read the key from $VAR at run time."),
    ] = None,
    key_stdin: Annotated[
        bool, typer.Option("--key-stdin", help="Read the key from standard input.")
    ] = False,
    default: Annotated[bool, typer.Option("--default", help="Make it the default.")] = False,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify the TLS certificate.")
    ] = False,
    token_command: Annotated[
        str | None,
        typer.Option(
            "--token-command",
            metavar="COMMAND",
            help="With --auth token: a command that prints a fresh token (run without a shell).",
        ),
    ] = None,
    deployment: Annotated[
        str | None,
        typer.Option("--deployment", help="Pin this deployment (azureml-model-deployment)."),
    ] = None,
) -> None:
    """Add or replace an endpoint profile (the first one becomes the default)."""
    config.validate_name(name)
    secret = _read_secret(name, auth, key_env, key_stdin, token_command)
    profile = config.Profile(
        name=name,
        scoring_uri=scoring_uri,
        swagger_uri=swagger_uri,
        auth=auth.value,
        key=secret,
        key_env=key_env,
        verify=not insecure,
        token_command=token_command,
        deployment=deployment,
    )
    path = config.add_profile(profile, make_default=default)
    is_default = config.default_profile_name() == name
    output.result(
        f"[green]saved[/] endpoint '{name}' ({escape(scoring_uri)}), {auth.value}: "
        f"{escape(profile.masked_secret())}{' (default)' if is_default else ''} → "
        f"{escape(str(path))}"
    )
    if key_env and not os.environ.get(key_env):
        output.warning(f"${key_env} is not set in this shell")


def list_(
    json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """List endpoint profiles; keys are masked."""
    profiles = config.list_profiles()
    default = config.default_profile_name()
    if json_out:
        output.print_json([_profile_dict(p, default) for p in profiles])
        return
    if not profiles:
        output.result(
            "no endpoint profiles yet: `amlc endpoint add NAME --scoring-uri URI`", markup=False
        )
        return
    table = Table(title=f"Endpoints ({escape(str(config.config_path()))})", title_justify="left")
    for column in ("", "name", "scoring URI", "auth", "key"):
        table.add_column(column)
    for p in profiles:
        table.add_row("*" if p.name == default else "", p.name, escape(p.scoring_uri), p.auth,
                      escape(p.masked_secret()))
    output.table(table)


def show(
    name: Annotated[str, typer.Argument(help="Profile name.")],
    json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Show one profile; the key is masked."""
    data = _profile_dict(config.get_profile(name), config.default_profile_name())
    if json_out:
        output.print_json(data)
        return
    azure = data.pop("azure", None)
    table = Table(show_header=False, box=None)
    table.add_column(style="bold")
    table.add_column()
    for field, value in data.items():
        table.add_row(field, "-" if value is None else escape(str(value)))
    if isinstance(azure, dict):
        for field in ("subscription", "resource_group", "workspace", "endpoint", "auth_mode",
                      "arm_url", "provisioning_state"):
            if azure.get(field):
                table.add_row(f"azure {field.replace('_', ' ')}", escape(str(azure[field])))
    output.table(table)
    if isinstance(azure, dict):
        output.table(_deployments_table(azure))


def _deployments_table(azure: dict[str, Any]) -> Table:
    """Deployments as discovered at import, with their share of traffic (and mirrored traffic)."""
    traffic = azure.get("traffic") or {}
    mirror = azure.get("mirror_traffic") or {}
    deployments = [d for d in azure.get("deployments") or [] if isinstance(d, dict)]
    names = [str(d.get("name")) for d in deployments]
    names += [n for n in list(traffic) + list(mirror) if n not in names]
    table = Table(title="Deployments (as imported)", title_justify="left")
    for column in ("deployment", "traffic", "mirror", "compute", "instance type", "instances",
                   "state"):
        table.add_column(column)
    by_name = {str(d.get("name")): d for d in deployments}
    for name in names:
        d = by_name.get(name, {})
        cells = (
            name,
            f"{traffic.get(name, 0)} %",
            f"{mirror[name]} %" if name in mirror else "-",
            str(d.get("compute_type") or "-"),
            str(d.get("instance_type") or "-"),
            str(d.get("instance_count") or "-"),
            str(d.get("provisioning_state") or "-"),
        )
        table.add_row(*(escape(cell) for cell in cells))
    return table


def import_(
    name: Annotated[str, typer.Argument(help="Profile name to store it under, e.g. prod.")],
    subscription: Annotated[
        str, typer.Option("--subscription", help="Azure subscription id.")
    ],
    resource_group: Annotated[
        str, typer.Option("--resource-group", "-g", help="Resource group of the workspace.")
    ],
    workspace: Annotated[str, typer.Option("--workspace", "-w", help="Azure ML workspace.")],
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", help="Online endpoint name (default: the profile name)."),
    ] = None,
    default: Annotated[bool, typer.Option("--default", help="Make it the default.")] = False,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Import an Azure ML online endpoint: URIs, auth mode, deployments and traffic.

    Resource Manager is reached with azure-identity's DefaultAzureCredential (az login,
    environment, managed identity); AMLC_ARM_URL points at another cloud. No key or token is
    stored: the profile fetches it from Azure whenever it is used.
    """
    profile, info, path = config.import_endpoint(
        name,
        subscription=subscription,
        resource_group=resource_group,
        workspace=workspace,
        endpoint=endpoint,
        make_default=default,
    )
    if json_out:
        output.print_json(_profile_dict(profile, config.default_profile_name()))
        return
    split = ", ".join(f"{k} {v} %" for k, v in info.traffic.items()) or "no traffic"
    is_default = config.default_profile_name() == name
    # Everything but the two names came from Azure: escaped so it cannot be read as markup.
    output.result(
        f"[green]imported[/] endpoint '{info.ref.endpoint}' as '{name}' "
        f"({escape(info.scoring_uri)}), auth {info.auth_mode} → {profile.auth}, "
        f"{output.plural(len(info.deployments), 'deployment')}: {escape(split)}"
        f"{' (default)' if is_default else ''} → {escape(str(path))}"
    )


def remove(name: Annotated[str, typer.Argument(help="Profile name.")]) -> None:
    """Delete a profile (and its stored key)."""
    config.remove_profile(name)
    output.result(f"removed endpoint '{name}'", markup=False)


def use(name: Annotated[str, typer.Argument(help="Profile name.")]) -> None:
    """Make a profile the default."""
    config.set_default(name)
    output.result(f"default endpoint: '{name}'", markup=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(
        help="Manage endpoint profiles (config.toml, keys kept 0600).", no_args_is_help=True
    )
    group.command("add")(add)
    group.command("list")(list_)
    group.command("show")(show)
    group.command("import")(import_)
    group.command("remove")(remove)
    group.command("use")(use)
    app.add_typer(group, name="endpoint")
