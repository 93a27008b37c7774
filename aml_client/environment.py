"""Settings read from environment variables: one rule per kind of value, so every variable of
the same kind accepts and refuses the same text."""

from __future__ import annotations

import os

from aml_client.errors import ConfigError

__all__ = ["seconds_from_env"]


def seconds_from_env(name: str, *, maximum: float) -> float | None:
    """The seconds in environment variable ``name``: None when it is unset or blank,
    ConfigError (naming the variable and the first characters of its value) unless it is a
    number above 0 and at most ``maximum``."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return None
    try:
        value = float(raw)
    except ValueError:
        value = float("nan")
    if not 0 < value <= maximum:  # also refuses nan
        raise ConfigError(
            f"{name}={raw[:20]!r}: expected seconds above 0 and at most {maximum:g}"
        )
    return value
