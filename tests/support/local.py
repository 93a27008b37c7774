"""Starting real local endpoints for integration tests (used by the fixtures of
tests/integration/conftest.py, which says what a handle offers, and by tests that need an
endpoint of their own)."""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aml_client.local import LocalEndpointInfo
from support import forked_cli

REPO = Path(__file__).resolve().parents[2]


def _ephemeral_low() -> int:
    try:
        return int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


#: Ports handed out by :func:`free_port`: below the kernel's ephemeral range, where a port given
#: to a test and bound by it only later cannot meanwhile become some connection's local port.
_PORTS = range(20000, _ephemeral_low())
_handed_out = itertools.count(os.getpid())


def _own_ports() -> range:
    """This test process's slice of :data:`_PORTS`: no other xdist worker hands them out."""
    worker = os.environ.get("PYTEST_XDIST_WORKER", "gw0").removeprefix("gw")
    count = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1") or 1)
    index = int(worker) if worker.isdigit() else 0
    span = len(_PORTS) // max(count, 1)
    start = _PORTS.start + (index % max(count, 1)) * span
    return range(start, start + span)


def free_port() -> int:
    """A 127.0.0.1 port nothing listens on, that no other test process hands out and no
    outgoing connection takes while the test gets round to binding it."""
    ports = _own_ports()
    for _ in range(len(ports)):
        port = ports[next(_handed_out) % len(ports)]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:  # all taken: any port
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextlib.contextmanager
def amlc_home(home: Path) -> Iterator[None]:
    """Point ``AMLC_HOME`` at ``home`` for the duration (the library reads it at call time)."""
    previous = os.environ.get("AMLC_HOME")
    os.environ["AMLC_HOME"] = str(home)
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("AMLC_HOME", None)
        else:
            os.environ["AMLC_HOME"] = previous


def shared_tmp_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The temporary directory shared by every process of this test run.

    Without pytest-xdist it is the run's base temporary directory; with it, each worker has its
    own base (``.../pytest-N/popen-gwK``) and their common parent is shared by the run.
    """
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


def amlc_env(home: Path) -> dict[str, str]:
    """Environment for a real ``amlc`` process working in ``home``."""
    env = dict(os.environ)
    env["AMLC_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["COLUMNS"] = "200"
    for name in (
        "AMLC_SCORING_URI", "AMLC_KEY", "AMLC_TOKEN", "AMLC_SWAGGER_URI", "AMLC_DEBUG",
        "AMLC_LOCAL_PORT", "AMLC_SWAGGER_PORT", "AMLC_WEB_PORT",
    ):  # fmt: skip
        env.pop(name, None)
    return env


def run_amlc_in(home: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
    """``python -m aml_client ARGS`` in a real process, with ``AMLC_HOME=home``."""
    return forked_cli.run(list(args), env=amlc_env(home), cwd=REPO, input=None, timeout=timeout)


@dataclass
class LocalEndpointHandle:
    """A running local endpoint started by a fixture (see the module docstring)."""

    info: LocalEndpointInfo
    primary_key: str
    secondary_key: str
    home: Path

    @property
    def scoring_uri(self) -> str:
        return self.info.scoring_uri

    @property
    def swagger_uri(self) -> str:
        return self.info.swagger_uri

    @property
    def base_uri(self) -> str:
        return f"http://{self.info.host}:{self.info.port}"

    @property
    def style(self) -> str:
        return self.info.style

    def headers(self, key: str | None = None, deployment: str | None = None) -> dict[str, str]:
        headers = {"Authorization": f"Bearer {key or self.primary_key}"}
        if deployment is not None:
            headers["azureml-model-deployment"] = deployment
        return headers

    def deployment_uri(self, name: str) -> str:
        """The scoring URI of one deployment's own server, bypassing the front."""
        return f"http://127.0.0.1:{self.info.deployment(name).port}/score"

    def env(self) -> dict[str, str]:
        """Environment for a subprocess (``amlc ...``) that should find this endpoint."""
        return amlc_env(self.home)

    def activate(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Make in-process library calls (``running_endpoint()``, profiles "local") find it."""
        monkeypatch.setenv("AMLC_HOME", str(self.home))

    def amlc(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess[str]:
        return run_amlc_in(self.home, *args, timeout=timeout)

    def access_log_lines(self) -> list[str]:
        path = Path(self.info.log_file)
        return path.read_text(encoding="utf-8").splitlines() if path.exists() else []

    def wait_for_log(self, needle: str, timeout_s: float = 5.0) -> list[str]:
        """Request-log lines holding ``needle``, waiting up to ``timeout_s`` for them.

        The server writes a line before it sends the response, so this rarely waits; it
        guards against a slow file system.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            found = [line for line in self.access_log_lines() if needle in line]
            if found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def server_log_text(self) -> str:
        path = Path(self.info.server_log)
        return path.read_text(encoding="utf-8", errors="replace") if path.exists() else ""


def start_local_endpoint(
    tmp_path_factory: pytest.TempPathFactory,
    cache: Path,
    *,
    style: str = "inputs",
    workers: int = 1,
    deployments: list[str] | None = None,
    traffic: str | None = None,
) -> LocalEndpointHandle:
    """Start a local endpoint in its own ``AMLC_HOME`` (stop it with ``stop_local_endpoint``).

    ``deployments`` and ``traffic`` are written as on the command line (``green:onnx``,
    ``blue=50,green=50``).
    """
    from aml_client import local

    home = tmp_path_factory.mktemp(f"amlc-local-{style}")
    (home / "cache").symlink_to(cache, target_is_directory=True)
    with amlc_home(home):
        info = local.start(
            port=free_port(),
            workers=workers,
            style=style,
            detach=True,
            deployments=[local.parse_deployment(d) for d in deployments or []],
            traffic=local.parse_traffic(traffic) if traffic else None,
        )
        keys = local.local_keys()
    assert keys is not None
    return LocalEndpointHandle(info=info, primary_key=keys[0], secondary_key=keys[1], home=home)


def stop_local_endpoint(handle: LocalEndpointHandle) -> None:
    from aml_client import local

    with amlc_home(handle.home):
        local.stop()
