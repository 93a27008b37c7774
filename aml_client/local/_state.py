"""Where a running local endpoint is recorded, and how to tell whether it still runs.

One local endpoint per ``AMLC_HOME``: its description lives in
``paths.state_dir()/local/endpoint.json`` beside its logs. A record is trusted only while its
process is alive and ``GET /`` answers, so a crashed server or a reused PID is never reported
as running.
"""

from __future__ import annotations

import contextlib
import dataclasses
import http.client
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aml_client import paths
from aml_client.local._deployments import DeploymentInfo

#: A marker of our server (the front) in its command line, checked before any signal is sent.
SERVER_MARKER = "aml_client.local._front"


@dataclass
class LocalEndpointInfo:
    """A running (or just started) local endpoint, as recorded in its state file.

    ``pid`` is the front's; ``model``, ``accuracy`` and ``workers`` describe the first
    deployment (the only one by default); ``deployments`` describes each one.
    """

    pid: int
    host: str
    port: int
    scoring_uri: str
    swagger_uri: str
    style: str  # "inputs" | "v1"
    model: str
    metric: str
    score: float  # held-out value of ``metric``
    accuracy: float  # held-out accuracy
    workers: int
    log_file: str  # the request (access) log
    started_at: str
    server_log: str = ""  # the server's own output (detached runs)
    model_dir: str = ""
    keys_file: str = ""
    server_version: str = ""
    deployments: list[DeploymentInfo] = field(default_factory=list)

    @property
    def health_uri(self) -> str:
        return f"http://{self.host}:{self.port}/"

    def deployment(self, name: str) -> DeploymentInfo:
        """The deployment called ``name`` (KeyError if there is none)."""
        for deployment in self.deployments:
            if deployment.name == name:
                return deployment
        raise KeyError(name)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LocalEndpointInfo:
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["deployments"] = [
            DeploymentInfo.from_dict(d) for d in values.get("deployments") or []
        ]
        return cls(**values)


def local_dir() -> Path:
    return paths.state_dir() / "local"


def state_file() -> Path:
    return local_dir() / "endpoint.json"


def access_log_file() -> Path:
    return local_dir() / "access.log"


def server_log_file() -> Path:
    return local_dir() / "server.log"


def plan_file() -> Path:
    return local_dir() / "front-plan.json"


def read_state() -> LocalEndpointInfo | None:
    """The recorded endpoint, running or not (None when there is no readable record)."""
    try:
        return LocalEndpointInfo.from_dict(json.loads(state_file().read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError, AttributeError):
        return None


def write_state(info: LocalEndpointInfo) -> None:
    path = state_file()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def clear_state() -> None:
    state_file().unlink(missing_ok=True)


def pid_alive(pid: int) -> bool:
    """True while ``pid`` runs; a zombie counts as gone (no init may be reaping it)."""
    if pid <= 0:
        return False
    with contextlib.suppress(ChildProcessError, OSError):
        # Reap it if it is our own child, so it does not linger as a zombie.
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return True


def is_our_server(pid: int) -> bool:
    """Whether ``pid`` is a local-endpoint server (so a reused PID is never signalled)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return pid_alive(pid)  # no /proc (macOS): trust the record
    return SERVER_MARKER in cmdline


def answers(host: str, port: int, timeout_s: float = 2.0) -> bool:
    """Whether ``GET /`` on the endpoint returns 200 (the health route needs no key)."""
    connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
    try:
        connection.request("GET", "/")
        response = connection.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        connection.close()


def running_endpoint() -> LocalEndpointInfo | None:
    """The local endpoint if it is running and answering, else None."""
    info = read_state()
    if info is None or not pid_alive(info.pid):
        return None
    return info if answers(info.host, info.port) else None
