"""``amlc logs``: what a deployment's container wrote, read through Azure Resource Manager."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import Annotated

import typer

from aml_client import config
from aml_client.errors import ConfigError


class Container(StrEnum):
    INFERENCE_SERVER = "inference-server"
    STORAGE_INITIALIZER = "storage-initializer"


def terminal_safe(text: str) -> str:
    """Log text as it may be printed: control characters (escape sequences) are shown, not run."""
    return "".join(ch if ch.isprintable() or ch in "\n\t" else f"\\x{ord(ch):02x}" for ch in text)


def logs(
    deployment: Annotated[str, typer.Option("--deployment", "-d", help="Deployment name.")],
    lines: Annotated[
        int, typer.Option("--lines", "-n", min=0, max=10_000, help="Lines from the end.")
    ] = 100,
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", "-e", help="Imported profile (default: the default profile)."),
    ] = None,
    container: Annotated[
        Container, typer.Option("--container", help="Which container's log.")
    ] = Container.INFERENCE_SERVER,
) -> None:
    """Print the end of a deployment's log (profiles made by `amlc endpoint import`)."""
    name = endpoint or config.default_profile_name()
    if not name:
        raise ConfigError("no endpoint profile given and no default: use --endpoint NAME")
    profile = config.get_profile(name)

    from aml_client.azure.control import ControlPlane
    from aml_client.azure.reference import ref_from_table

    ref = ref_from_table(profile.azure, profile=profile.name)
    text = ControlPlane(arm_url=ref.arm_url).deployment_logs(
        ref, deployment, lines=lines, container=container.value
    )
    sys.stdout.write(terminal_safe(text))
    if text and not text.endswith("\n"):
        sys.stdout.write("\n")
    sys.stdout.flush()


def register(app: typer.Typer) -> None:
    app.command("logs")(logs)
