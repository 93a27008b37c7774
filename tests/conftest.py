"""Every test runs against its own empty amlc home, never the user's real configuration.

``amlc`` runs the CLI in a real subprocess (``python -m aml_client``), as a user would.

The suite runs on several processes at once (pytest-xdist, ``-n 4``: see the README's Tests
section), unit tests first. Every test must hold when any other test runs beside it, in another
process:

- no fixed port: ask for a free one (``support.local.free_port()``, the ``port_factory``
  fixture, or bind to port 0), and pass it by environment (``AMLC_LOCAL_PORT`` …) or option;
- no shared mutable state: write only under ``tmp_path`` (and the ``amlc_home`` it gets), never
  in the clone, the user's home or a fixed path under /tmp; a session fixture is per process,
  so anything it makes must not collide with another process's copy;
- something expensive that every process would build alike (the trained model) is built once
  under a file lock in the run's shared temporary root (``support.local.shared_tmp_root``);
- wait for a condition (a line in a log, a port that answers), never for a fixed time.
"""

from __future__ import annotations

import compileall
import json
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, settings
from support import forked_cli

# Property-based tests run a few hundred examples in the normal suite; HYPOTHESIS_PROFILE=thorough
# runs thousands (e.g. before a release, or after touching the swagger reader or codegen).
# The autouse amlc_home fixture is per test, not per example: sharing it is harmless.
_SLOW_DATA = [HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.function_scoped_fixture]
settings.register_profile(
    "default", max_examples=200, deadline=None, suppress_health_check=_SLOW_DATA
)
settings.register_profile(
    "thorough", max_examples=2500, deadline=None, suppress_health_check=_SLOW_DATA
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

#: Variables that would point a test at a real endpoint or change where amlc keeps files.
_AMLC_ENV = (
    "AMLC_SCORING_URI", "AMLC_KEY", "AMLC_TOKEN", "AMLC_SWAGGER_URI", "AMLC_DEBUG",
    "AMLC_LOCAL_PORT", "AMLC_SWAGGER_PORT", "AMLC_WEB_PORT",
)  # fmt: skip


_INTEGRATION = Path(__file__).resolve().parent / "integration"


def pytest_configure(config: pytest.Config) -> None:
    """Ctrl-C reaches the processes the tests start, however the suite itself was started.

    A shell starts a background job (``pytest … &``, ``nohup``) with SIGINT ignored, and every
    process started from it inherits that: the tests that interrupt a run as a user would then
    see it go on. A handled signal is reset to its default in a started program.

    Python's bytecode of the clone is cached even where ``PYTHONDONTWRITEBYTECODE`` is set
    (:func:`_cache_bytecode`)."""
    if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    _cache_bytecode(is_worker="PYTEST_XDIST_WORKER" in os.environ)


#: The clone's packages that the processes a test starts import: the CLI, load processes,
#: local endpoints, test servers.
_BYTECODE_DIRECTORIES = ("aml_client", "loadtests", "tests/support")


def _cache_bytecode(*, is_worker: bool) -> None:
    """The suite starts some hundreds of Python processes, and each would compile amlc's
    modules again where ``PYTHONDONTWRITEBYTECODE`` is set (as on some CI machines): about
    0.2 s of CPU per load process. The first pytest process compiles them once into
    ``__pycache__`` (ignored by git), which every process reads whatever that variable says;
    the pytest processes themselves write bytecode as Python does by default (pytest's
    rewritten test modules included)."""
    sys.dont_write_bytecode = False
    if not is_worker:
        for name in _BYTECODE_DIRECTORIES:
            compileall.compile_dir(REPO / name, quiet=2, workers=1)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Unit tests run (and report) before the integration tests, whatever the file names; of
    the integration tests, the slow ones start first, so that none of them is left running
    alone at the end.

    The sort is stable, so each group keeps its collection order; with pytest-xdist's
    ``--dist loadgroup`` (pyproject.toml) the workers take tests in this order too.

    Every integration test starts servers or processes (seconds each on a busy machine), so
    all of them count as ``slow``: ``-m "not slow"`` (the fast subset) is the unit tests that
    take less than a few seconds. This runs before pytest deselects by marker.
    """

    def rank(item: pytest.Item) -> tuple[bool, bool]:
        integration = item.path.is_relative_to(_INTEGRATION)
        return integration, integration and item.get_closest_marker("slow") is None

    items.sort(key=rank)
    for item in items:
        if item.path.is_relative_to(_INTEGRATION):
            item.add_marker(pytest.mark.slow)


@pytest.fixture(autouse=True)
def amlc_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh ``AMLC_HOME`` (config, cache, state) per test; no endpoint from the environment."""
    home = tmp_path / "amlc-home"
    home.mkdir()
    monkeypatch.setenv("AMLC_HOME", str(home))
    for name in _AMLC_ENV:
        monkeypatch.delenv(name, raising=False)
    return home


REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "fixtures" / "samples"


@dataclass
class CliResult:
    """What a real ``amlc`` process did."""

    args: list[str]
    returncode: int
    stdout: str
    stderr: str

    def json(self) -> Any:
        return json.loads(self.stdout)

    def stderr_lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def assert_error(self, code: int, *needles: str) -> str:
        """Exit ``code``, one ``error:`` line on stderr holding every needle, and nothing on
        stdout, or, with ``--json``, only the error object (``{"error": {"message",
        "exit_code", "kind", …}}``) with the same message."""
        assert self.returncode == code, (self.args, self.returncode, self.stdout, self.stderr)
        assert "Traceback" not in self.stderr
        lines = self.stderr_lines()
        assert len(lines) == 1, self.stderr
        assert lines[0].startswith("error: "), lines[0]
        for needle in needles:
            assert needle in lines[0], lines[0]
        if "--json" in self.args:
            error = self.json()["error"]
            assert error["exit_code"] == code and isinstance(error["kind"], str), error
            assert "error: " + error["message"] == lines[0], (error, lines[0])
        else:
            assert self.stdout == ""
        return lines[0]


def run_amlc(
    *args: str,
    input: str | None = None,
    env: dict[str, str] | None = None,
    timeout: float = 60.0,
    cwd: Path | None = None,
) -> CliResult:
    """Run ``python -m aml_client ARGS`` in a real process (support/forked_cli.py), with this
    process's environment."""
    full_env = dict(os.environ)
    full_env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO), full_env.get("PYTHONPATH", "")) if p
    )
    full_env["COLUMNS"] = "200"  # rich wraps at 80 without a terminal; keep one error per line
    full_env.update(env or {})
    proc = forked_cli.run(list(args), input=input, env=full_env, timeout=timeout, cwd=cwd or REPO)
    return CliResult(list(args), proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def amlc() -> Callable[..., CliResult]:
    """``amlc(*args, input=..., env=...)`` runs the CLI as a user would."""
    return run_amlc


@pytest.fixture(scope="session")
def mypy_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One mypy cache for the session's type checks (their tests share an ``xdist_group``):
    the standard library and pydantic are analysed once, not by every check."""
    return tmp_path_factory.mktemp("mypy-cache")


@pytest.fixture
def samples() -> Path:
    """The original project's two sample rows in every input format (tests/fixtures/samples)."""
    return SAMPLES
