"""A process that ends with its parent: Linux's parent-death signal (``PR_SET_PDEATHSIG``).

Used where a parent's death, even by SIGKILL, must not leave its child serving: the front
started by ``amlc local up`` in the foreground, each deployment's gunicorn started by the
front, and each gunicorn worker (:mod:`._gunicorn_hooks`).
"""

from __future__ import annotations

import contextlib
import ctypes
import signal
import sys

#: prctl option: the signal this process gets when its parent dies
PR_SET_PDEATHSIG = 1


def die_with_parent() -> None:
    """This process gets SIGTERM when its parent dies (Linux; elsewhere nothing). Safe as a
    ``preexec_fn``: it only makes the system call."""
    if sys.platform.startswith("linux"):
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
