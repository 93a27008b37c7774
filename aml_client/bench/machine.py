"""Tool versions and machine facts for a report, read without importing Locust."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from typing import Any

from aml_client.version import __version__

__all__ = ["environment_facts"]


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment_facts() -> dict[str, Any]:
    """Tool versions and machine facts, read without importing Locust."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        # The code actually running, not whatever distribution metadata is installed.
        "amlc": __version__,
        "locust": _version("locust"),
        "hdrhistogram": _version("hdrhistogram"),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "memory_bytes": _memory_bytes(),
    }
