"""Argument checks every command makes before it does any work.

A bad value is one ``error:`` line and exit 2 *before* an endpoint is called, a model trained
or a load process started: out-of-range numbers (typer callbacks below), outputs that could
never be written, ports something else already holds.
"""

from __future__ import annotations

import contextlib
import math
import os
import socket
import tempfile
from pathlib import Path

import typer

from aml_client.errors import ConfigError


def positive_seconds(value: float | None) -> float | None:
    """Callback of ``--timeout``-like options: a finite number of seconds above 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value:g} is not a number of seconds above 0")
    return value


def positive_number(value: float | None) -> float | None:
    """Callback of rates and similar: a finite number above 0."""
    if value is not None and not (math.isfinite(value) and value > 0):
        raise typer.BadParameter(f"{value:g} is not a number above 0")
    return value


def _probe(path: Path) -> None:
    """Raise OSError unless a file can be created at ``path`` (a directory, or the nearest
    one above a directory that does not exist yet), without creating anything that stays.

    Creating and removing a file is the only check that holds for root and on read-only or
    virtual file systems (``/proc``), where permission bits say nothing.
    """
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise NotADirectoryError(20, f"{existing} is not a directory")
    with tempfile.NamedTemporaryFile(dir=existing, prefix=".amlc-probe-"):
        pass


def writable_file(path: str | Path, option: str, *, example: str = "out.json") -> Path:
    """The file ``option`` names, once it is sure it can be written: not a directory (nor a
    name ending in ``/``), in a directory that exists or can be made, that takes files."""
    text = str(path)
    target = Path(text)
    if text.endswith(("/", os.sep)) or target.is_dir():
        raise ConfigError(
            f"{option} {text}: is a directory; name a file in it, e.g. {target / example}"
        )
    try:
        _probe(target.parent)
        if target.exists() and not os.access(target, os.W_OK):
            raise PermissionError(13, "Permission denied")
    except OSError as exc:
        raise ConfigError(
            f"{option} {text}: cannot write there ({exc.strerror or exc})"
        ) from None
    return target


def writable_dir(path: str | Path, option: str) -> Path:
    """The directory ``option`` names, once files can be written in it (it is not created:
    only its nearest existing parent is tried)."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise ConfigError(f"{option} {path}: is a file, not a directory")
    try:
        _probe(target)
    except OSError as exc:
        raise ConfigError(
            f"{option} {path}: cannot write there ({exc.strerror or exc})"
        ) from None
    return target


def write_file(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` whole or not at all (a temporary file renamed into place),
    creating its directory if need be."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        with contextlib.suppress(OSError):  # the mode open() would give it, not mkstemp's 0600
            mask = os.umask(0)
            os.umask(mask)
            os.chmod(tmp, 0o666 & ~mask)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def free_port(port: int, option: str, host: str = "127.0.0.1") -> None:
    """Refuse a port something already listens on (port 0, "any", is always free)."""
    if port == 0:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # Servers set SO_REUSEADDR too: a port in TIME_WAIT counts as free, as it is for them.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(
                f"{option} {port}: cannot listen on {host}:{port} "
                f"({exc.strerror or exc}); choose another port"
            ) from None
