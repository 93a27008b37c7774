"""Masking, so a secret is never shown in full; the credentials themselves live in
:mod:`aml_client.http.credentials` and are re-exported here (loaded on first use, since they
are ``httpx.Auth`` flows and ``import aml_client`` must stay cheap).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aml_client.http.credentials import (
        Credential,
        KeyCredential,
        TokenCredential,
        entra_id_credential,
        token_command_credential,
    )

__all__ = [
    "Credential",
    "KeyCredential",
    "TokenCredential",
    "entra_id_credential",
    "mask",
    "token_command_credential",
]

_CREDENTIALS = frozenset(__all__) - {"mask"}


def mask(secret: str | None) -> str:
    """``abcd…`` — enough to tell two keys apart, never enough to use one."""
    if not secret:
        return "(none)"
    return f"{secret[:4]}…"


def __getattr__(name: str) -> Any:
    if name not in _CREDENTIALS:
        raise AttributeError(f"module 'aml_client.auth' has no attribute '{name}'")
    value = getattr(import_module("aml_client.http.credentials"), name)
    globals()[name] = value
    return value
