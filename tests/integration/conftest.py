"""Real local endpoints for integration tests, started once per test run and shared.

Fixtures (all start real servers on free 127.0.0.1 ports and stop them at the end):

``local_endpoint`` (session)
    The default contract ("inputs"): ``{"Inputs": {"data": rows}, "GlobalParameters":
    {"method": "predict"}}`` -> ``{"Results": [...]}``. Two workers. Do not stop it and do not
    rotate its keys: other tests share it (use ``scratch_local_endpoint`` for that).
``local_endpoint_v1`` (session)
    The 2020-era contract ("v1"): ``{"data": rows}`` -> a JSON *string* holding
    ``{"result": [...]}``. One worker.
``scratch_local_endpoint`` (function)
    A throwaway "inputs" endpoint (one worker) that a test may stop or re-key.
``blue_green_endpoint`` (session)
    Two deployments behind one scoring URI, as ``amlc local up --deployment blue --deployment
    green:onnx --traffic blue=50,green=50``: ``blue`` serves the scikit-learn pipeline,
    ``green`` its ONNX copy (onnxruntime); one worker each. Shared: do not stop it.
``local_model_cache`` (session)
    The cache directory holding the trained model; every endpoint's ``AMLC_HOME/cache`` points
    at it, so the model is trained once per test run (a few seconds) and then only loaded.
``home_with_model`` (function)
    An empty ``AMLC_HOME`` whose cache already holds the model: ``amlc local up`` starts fast.
``amlc_in`` / ``port_factory`` (function)
    ``amlc_in(home, *args)`` runs the real CLI with ``AMLC_HOME=home`` (a CompletedProcess);
    ``port_factory()`` gives a free port.

Each endpoint fixture yields a ``LocalEndpointHandle``:

- ``info`` — the ``aml_client.local.LocalEndpointInfo`` (``scoring_uri``, ``swagger_uri``,
  ``pid``, ``style``, ``model``, ``accuracy``, ``log_file``, ``deployments`` …; the default
  endpoints have one deployment, ``blue``);
- ``deployment_uri(name)`` — that deployment's own server (internal port; it checks the key);
- ``primary_key`` / ``secondary_key`` — its keys (never print them);
- ``home`` — its own ``AMLC_HOME``. The top-level conftest gives every test a fresh
  ``AMLC_HOME``, in which no endpoint runs: to let ``amlc`` or
  ``aml_client.local.running_endpoint()`` find this one, use ``handle.env()`` for a
  subprocess, ``handle.activate(monkeypatch)`` in-process, or ``handle.amlc(*args)``;
- ``headers(key=None)`` — ``{"Authorization": "Bearer <primary>"}`` (or the given key);
- ``access_log_lines()`` — the request log, one line per request; ``wait_for_log(needle)``
  waits for lines holding ``needle`` (a line lands just after its response is sent).
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aml_client.local import LocalEndpointInfo

REPO = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """A port nothing listens on right now (127.0.0.1)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
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


def amlc_env(home: Path) -> dict[str, str]:
    """Environment for a real ``amlc`` process working in ``home``."""
    env = dict(os.environ)
    env["AMLC_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p)
    env["COLUMNS"] = "200"
    for name in ("AMLC_SCORING_URI", "AMLC_KEY", "AMLC_TOKEN", "AMLC_SWAGGER_URI", "AMLC_DEBUG"):
        env.pop(name, None)
    return env


def run_amlc_in(home: Path, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
    """``python -m aml_client ARGS`` in a real process, with ``AMLC_HOME=home``."""
    return subprocess.run(
        [sys.executable, "-m", "aml_client", *args],
        capture_output=True,
        text=True,
        env=amlc_env(home),
        stdin=subprocess.DEVNULL,
        timeout=timeout,
        cwd=REPO,
    )


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

    def amlc(self, *args: str, timeout: float = 120.0) -> subprocess.CompletedProcess:
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


@pytest.fixture(scope="session")
def local_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the model once for the whole run; returns the cache directory holding it."""
    from aml_client.local import ensure_model

    home = tmp_path_factory.mktemp("amlc-model-home")
    with amlc_home(home):
        ensure_model("accuracy")
    return home / "cache"


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


@pytest.fixture(scope="session")
def local_endpoint(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> Iterator[LocalEndpointHandle]:
    """The default ("inputs") local endpoint, shared by the whole run."""
    handle = start_local_endpoint(tmp_path_factory, local_model_cache, style="inputs", workers=2)
    try:
        yield handle
    finally:
        stop_local_endpoint(handle)


@pytest.fixture(scope="session")
def local_endpoint_v1(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> Iterator[LocalEndpointHandle]:
    """The 2020-era ("v1") local endpoint, shared by the whole run."""
    handle = start_local_endpoint(tmp_path_factory, local_model_cache, style="v1", workers=1)
    try:
        yield handle
    finally:
        stop_local_endpoint(handle)


@pytest.fixture
def scratch_local_endpoint(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> Iterator[LocalEndpointHandle]:
    """A private "inputs" endpoint a test may stop or re-key."""
    handle = start_local_endpoint(tmp_path_factory, local_model_cache, style="inputs", workers=1)
    try:
        yield handle
    finally:
        stop_local_endpoint(handle)


@pytest.fixture(scope="session")
def blue_green_endpoint(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> Iterator[LocalEndpointHandle]:
    """blue (scikit-learn) and green (ONNX) behind one scoring URI, 50/50."""
    handle = start_local_endpoint(
        tmp_path_factory,
        local_model_cache,
        deployments=["blue", "green:onnx"],
        traffic="blue=50,green=50",
    )
    try:
        yield handle
    finally:
        stop_local_endpoint(handle)


@pytest.fixture
def amlc_in() -> Callable[..., subprocess.CompletedProcess]:
    """``amlc_in(home, *args)`` runs the real ``amlc`` with ``AMLC_HOME=home``."""
    return run_amlc_in


@pytest.fixture
def port_factory() -> Callable[[], int]:
    """``port_factory()`` returns a free 127.0.0.1 port."""
    return free_port


@pytest.fixture
def home_with_model(tmp_path: Path, local_model_cache: Path) -> Path:
    """An empty ``AMLC_HOME`` whose cache already holds the trained model."""
    home = tmp_path / "home-with-model"
    home.mkdir()
    (home / "cache").symlink_to(local_model_cache, target_is_directory=True)
    return home
