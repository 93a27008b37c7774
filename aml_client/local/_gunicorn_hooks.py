"""gunicorn server hooks for each deployment (``--config python:aml_client.local._gunicorn_hooks``).

A sync worker learns that its master died only when its wait for a connection times out: half
the worker timeout, 150 s by default. Until then it holds the deployment's listening socket
and answers on it, for a deployment the front already reports stopped. So each worker asks the
kernel for SIGTERM the moment its master dies (Linux's parent-death signal).
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

#: prctl option: the signal this process gets when its parent dies
PR_SET_PDEATHSIG = 1


def post_fork(server: Any, worker: Any) -> None:
    """In each worker, just forked: end with the master."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != worker.ppid:  # the master died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
