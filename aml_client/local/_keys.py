"""The local endpoint's primary and secondary keys, kept in a 0600 file.

Azure gives every key-auth endpoint two keys so one can be rotated while clients use the
other; the local endpoint does the same. The running server re-reads the file when it changes,
so a rotation takes effect without a restart.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path

from aml_client import paths

KEYS_FILE = "local-keys.json"
KEY_NAMES = ("primary", "secondary")


def keys_file() -> Path:
    return paths.config_dir() / KEYS_FILE


def _new_key() -> str:
    # 32 random bytes, URL-safe: the same strength as Azure's endpoint keys.
    return secrets.token_urlsafe(32)


def read_keys(path: Path) -> tuple[str, str] | None:
    """(primary, secondary) from ``path``, or None if it is missing or unreadable."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        primary, secondary = str(data["primary"]), str(data["secondary"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not primary or not secondary:
        return None
    return primary, secondary


def _write(primary: str, secondary: str) -> None:
    document = {
        "primary": primary,
        "secondary": secondary,
        "updated_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    paths.write_private(keys_file(), json.dumps(document, indent=2) + "\n")


def local_keys(create: bool = False) -> tuple[str, str] | None:
    """The local endpoint's (primary, secondary) keys; with ``create`` they are made if missing."""
    keys = read_keys(keys_file())
    if keys is None and create:
        keys = (_new_key(), _new_key())
        _write(*keys)
    return keys


def regenerate_keys(which: str = "both") -> tuple[str, str]:
    """Replace the primary, the secondary or both keys; returns the new (primary, secondary).

    Rotating one key at a time lets clients move to the other key first, as on Azure.
    """
    if which not in (*KEY_NAMES, "both"):
        from aml_client.errors import ConfigError

        raise ConfigError(f"unknown key {which!r}; choose primary, secondary or both")
    current = local_keys(create=False) or (_new_key(), _new_key())
    primary = _new_key() if which in ("primary", "both") else current[0]
    secondary = _new_key() if which in ("secondary", "both") else current[1]
    _write(primary, secondary)
    return primary, secondary
