"""Where amlc keeps its files, and how it writes the private ones.

Every directory can be redirected with one environment variable, ``AMLC_HOME``, so tests and
CI never touch a user's real configuration.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import platformdirs

_APP = "amlc"


def _home() -> Path | None:
    value = os.environ.get("AMLC_HOME")
    return Path(value).expanduser() if value else None


def config_dir() -> Path:
    """Profiles (``config.toml``) and the local endpoint's keys."""
    home = _home()
    return home / "config" if home else Path(platformdirs.user_config_dir(_APP))


def cache_dir() -> Path:
    """Trained models and other things that can be rebuilt."""
    home = _home()
    return home / "cache" if home else Path(platformdirs.user_cache_dir(_APP))


def state_dir() -> Path:
    """Running-process state (the local endpoint's PID file) and its request logs."""
    home = _home()
    return home / "state" if home else Path(platformdirs.user_state_dir(_APP))


def write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` atomically, readable by the owner only (0600).

    The file is created 0600 before any byte is written, so a secret is never world-readable,
    not even for an instant.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(fd, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
