"""Real local endpoints for integration tests, started once per test run and shared.

Fixtures (all start real servers on free 127.0.0.1 ports and stop them at the end):

``local_endpoint`` (session)
    The default contract ("inputs"): ``{"Inputs": {"data": rows}, "GlobalParameters":
    {"method": "predict"}}`` -> ``{"Results": [...]}``. Two workers. Do not stop it and do not
    rotate its keys: other tests share it (use ``scratch_local_endpoint`` for that).
``local_endpoint_v1`` (session)
    The 2020-era contract ("v1"): ``{"data": rows}`` -> a JSON *string* holding
    ``{"result": [...]}``. One worker. Its tests carry ``xdist_group("local-v1")``: one
    pytest-xdist worker runs them all, so it starts once per run.
``scratch_local_endpoint`` (function)
    A throwaway "inputs" endpoint (one worker) that a test may stop or re-key.
``blue_green_endpoint`` (session)
    Two deployments behind one scoring URI, as ``amlc local up --deployment blue --deployment
    green:onnx --traffic blue=50,green=50``: ``blue`` serves the scikit-learn pipeline,
    ``green`` its ONNX copy (onnxruntime); one worker each. Shared: do not stop it. Its tests
    carry ``xdist_group("blue-green")``: one pytest-xdist worker runs them all, so it starts
    once per run.
``local_model_cache`` (session)
    The cache directory holding the trained model; every endpoint's ``AMLC_HOME/cache`` points
    at it, so the model is trained once per test run (a few seconds) and then only loaded.
``home_with_model`` (function)
    An empty ``AMLC_HOME`` whose cache already holds the model: ``amlc local up`` starts fast.
``chromium`` (function; one browser per module)
    A fresh context (its own cookies and storage) of a headless Chromium that the module's
    browser tests share: ``chromium.new_page()``. Those tests carry ``xdist_group("browser")``
    (``support.web.ON_THE_BROWSER_WORKER``), so one worker launches it once per module.
``amlc_in`` / ``port_factory`` (function)
    ``amlc_in(home, *args)`` runs the real CLI with ``AMLC_HOME=home`` (a CompletedProcess);
    ``port_factory()`` gives a free port.

A test that needs an endpoint of its own (other deployments, another contract) calls
``start_local_endpoint(tmp_path_factory, local_model_cache, deployments=[...], traffic=...)``
and ``stop_local_endpoint(handle)`` from ``tests/support/local.py``.

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

import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.local import (
    LocalEndpointHandle,
    amlc_home,
    free_port,
    run_amlc_in,
    shared_tmp_root,
    start_local_endpoint,
    stop_local_endpoint,
)


@pytest.fixture(scope="session")
def local_model_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Train the model once for the whole run; returns the cache directory holding it.

    With pytest-xdist every worker asks for it: the first trains under a file lock in the run's
    shared temporary root, the others wait for the lock and then only load the cached model.
    """
    from filelock import FileLock

    from aml_client.local import ensure_model

    root = shared_tmp_root(tmp_path_factory)
    home = root / "amlc-model-home"
    with FileLock(str(root / "amlc-model-home.lock")):
        home.mkdir(exist_ok=True)
        with amlc_home(home):
            ensure_model("accuracy")
    return home / "cache"


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
    """blue (scikit-learn) and green (ONNX) behind one scoring URI, 50/50, started by the CLI."""
    from aml_client import local

    home = tmp_path_factory.mktemp("amlc-local-blue-green")
    (home / "cache").symlink_to(local_model_cache, target_is_directory=True)
    result = run_amlc_in(
        home, "local", "up", "--detach", "--port", str(free_port()), "--workers", "1",
        "--deployment", "blue", "--deployment", "green:onnx", "--traffic", "blue=50,green=50",
    )  # fmt: skip
    with amlc_home(home):
        info = local.running_endpoint()
        keys = local.local_keys()
        if result.returncode != 0 or info is None or keys is None:
            local.stop()
            pytest.fail(f"amlc local up failed: {result.stderr}")
    handle = LocalEndpointHandle(info=info, primary_key=keys[0], secondary_key=keys[1], home=home)
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


@pytest.fixture(scope="module")
def _chromium_browser() -> Iterator[Any]:
    """Debian's Chromium, headless, launched once for the module's browser tests."""
    from playwright.sync_api import sync_playwright
    from support.web import CHROMIUM, CHROMIUM_ARGS

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def chromium(_chromium_browser: Any) -> Iterator[Any]:
    """A context of its own for one test: a new profile's cookies, storage and pages."""
    context = _chromium_browser.new_context()
    try:
        yield context
    finally:
        context.close()
