"""Inside a load process: leave this process's results directory when its test stops.

:func:`attach_from_environment` is called by :func:`aml_client.bench.load.engine.install`. When
``AMLC_RESULTS_DIR`` names a folder, each process writes ``<folder>/<role>-<host>-<pid>-<r>``; when
``AMLC_RESULTS_LOG`` is set, a single process or a master also prints its results to standard
output as :data:`~aml_client.bench.report.results_dir.MARKER` lines, so a pod's or a managed
engine's log carries them.
A worker keeps a copy of every delta it ships to its master, so its directory holds exactly what
it measured; a master's (or a single process's) holds the whole run it saw. Merge either the
master's results or its workers', not both (``amlc report merge`` refuses a master with its own
workers).
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import gevent
from locust.env import Environment
from locust.runners import MasterRunner, WorkerRunner

from aml_client.bench.recording import Recording
from aml_client.bench.report.results_dir import Identity, log_lines, write_results
from aml_client.version import __version__

__all__ = ["ENV_RESULTS_DIR", "ENV_RESULTS_LOG", "attach"]

log = logging.getLogger(__name__)

#: Folder where each load process writes its results directory.
ENV_RESULTS_DIR = "AMLC_RESULTS_DIR"
#: Set (to anything but "" or "0"): print the results to standard output as well.
ENV_RESULTS_LOG = "AMLC_RESULTS_LOG"
#: How long a master waits for its workers' last measurements before writing.
_WORKER_WAIT_S = 15.0


def _engine_name(role: str) -> str:
    # Containers often share a host name pattern and pid 1: a random tail keeps names apart.
    return f"{role}-{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"


class _Keeper:
    def __init__(self, environment: Environment, engine: Any, root: str | None,
                 to_log: bool) -> None:
        self.environment = environment
        self.engine = engine
        self.root = root
        # Under ``amlc bench`` standard output is the protocol with the parent: no printing.
        self.to_log = to_log and engine.emit is None
        #: a worker's copy of what it shipped to the master since the test started
        self.shipped = Recording(open_model=engine.plan.mode == "open")
        engine.delta_taps.append(lambda delta: self.shipped.merge_delta(delta))

    def begin(self) -> None:
        self.shipped = Recording(open_model=self.engine.plan.mode == "open")

    def end(self) -> None:
        engine = self.engine
        runner = self.environment.runner
        if engine.role == "master":
            # Workers send their last delta when told to stop: wait (bounded) for all of them.
            deadline = time.monotonic() + _WORKER_WAIT_S
            while len(engine._done_workers) < engine._share_count \
                    and time.monotonic() < deadline:
                gevent.sleep(0.2)
        if engine.role == "worker" and not self.to_log and self.root is None:
            return
        recording = self.shipped if engine.role == "worker" else engine.recording
        identity = Identity(
            engine=_engine_name(engine.role),
            host=socket.gethostname(),
            pid=os.getpid(),
            role=engine.role,
            started_at=engine.started_at,
            ended_at=engine.ended_at or time.time(),
            amlc_version=__version__,
            node_id=runner.client_id if isinstance(runner, WorkerRunner) else None,
            workers=sorted(engine._done_workers) if isinstance(runner, MasterRunner) else [],
            config=engine._config(),
        )
        try:
            self._write(identity, recording)
        except Exception:  # reported; the run's own report is already written
            log.exception("could not write the results directory")

    def _write(self, identity: Identity, recording: Recording) -> None:
        from aml_client.bench.report.merge import result_of
        from aml_client.bench.report.summarize import summarize

        summary = summarize(result_of(recording, identity.config, identity.started_at,
                                      identity.ended_at)).to_data()
        if self.root is not None:
            directory = write_results(self.root, identity, recording, summary)
            log.info("results directory: %s", directory)
            if self.to_log and self.engine.role != "worker":
                self._print(directory)
        elif self.to_log and self.engine.role != "worker":
            with tempfile.TemporaryDirectory(prefix="amlc-results-") as tmp:
                self._print(write_results(tmp, identity, recording, summary))

    @staticmethod
    def _print(directory: Path) -> None:
        out = sys.stdout
        for line in log_lines(directory):
            out.write(line + "\n")
        out.flush()


def attach(environment: Environment, engine: Any, root: str | None, *,
           to_log: bool = False) -> None:
    """Write this process's results when each test stops (after the engine's own report)."""
    keeper = _Keeper(environment, engine, root, to_log)
    events = environment.events
    events.test_start.add_listener(lambda **_kw: keeper.begin())
    events.test_stop.add_listener(lambda **_kw: keeper.end())


def _requested() -> tuple[str | None, bool]:
    """(results directory root or None, whether to print them into the log), as the
    environment asks (``AMLC_RESULTS_DIR`` / ``AMLC_RESULTS_LOG``)."""
    root = os.environ.get(ENV_RESULTS_DIR) or None
    return root, os.environ.get(ENV_RESULTS_LOG, "") not in ("", "0")


def results_wanted() -> bool:
    """Whether this run's load processes write results (``AMLC_RESULTS_DIR`` / ``_LOG``)."""
    root, to_log = _requested()
    return root is not None or to_log


def attach_from_environment(environment: Environment, engine: Any, **_kw: Any) -> None:
    """:func:`attach` as ``AMLC_RESULTS_DIR`` / ``AMLC_RESULTS_LOG`` ask (nothing if unset)."""
    root, to_log = _requested()
    if root is not None or to_log:
        attach(environment, engine, root, to_log=to_log)
