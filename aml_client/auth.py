"""Masking, so a secret is never shown in full.

The credentials themselves are the HTTP layer's (:mod:`aml_client.http.credentials`, public as
``aml_client.KeyCredential`` and friends); this module sits below it and imports nothing.
"""

from __future__ import annotations

__all__ = ["mask"]


def mask(secret: str | None) -> str:
    """``abcd…`` — enough to tell two keys apart, never enough to use one."""
    if not secret:
        return "(none)"
    return f"{secret[:4]}…"
