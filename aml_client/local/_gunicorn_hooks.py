"""gunicorn server hooks for each deployment (``--config python:aml_client.local._gunicorn_hooks``).

A sync worker learns that its master died only when its wait for a connection times out: half
the worker timeout, 150 s by default. Until then it holds the deployment's listening socket
and answers on it, for a deployment the front already reports stopped. So each worker asks the
kernel for SIGTERM the moment its master dies (:mod:`._parent`).
"""

from __future__ import annotations

import os
import signal
from typing import Any

from aml_client.local._parent import die_with_parent


def post_fork(server: Any, worker: Any) -> None:
    """In each worker, just forked: end with the master."""
    die_with_parent()
    if os.getppid() != worker.ppid:  # the master died before the request took effect
        os.kill(os.getpid(), signal.SIGTERM)
