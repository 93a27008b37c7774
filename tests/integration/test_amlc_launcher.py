"""A shell's ``amlc`` forked from a zygote (tests/support/amlc_launcher.py, which the README
test puts first on its shell's ``PATH``) is the installed ``amlc``: the same standard output,
standard error and exit status for the same shell lines, Ctrl-C reaches the command and ends it
as it would end the installed one, a killed launcher leaves nothing running, and an environment
the zygote cannot stand in for runs the installed console script itself."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import psutil
import pytest
from support import forked_cli

REPO = Path(__file__).resolve().parents[2]
SWAGGER = REPO / "swagger" / "local-inputs.swagger2.json"
#: The installed console script (what the quick start's ``.venv/bin/amlc`` is).
INSTALLED = Path(sys.executable).parent / "amlc"
_ADDRESS = re.compile(r"http://127\.0\.0\.1:\d+/\S*")
#: A shell's environment with the installed ``amlc`` first on its ``PATH``, and the same with
#: the launcher before it.
Shells = tuple[dict[str, str], dict[str, str]]


@pytest.fixture(scope="module")
def shells(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shells]:
    """(a shell's environment with the installed ``amlc`` on its ``PATH``, the same with the
    launcher first), as the README test makes them."""
    if not INSTALLED.exists():
        pytest.skip(f"no installed amlc at {INSTALLED}")
    env = dict(os.environ, COLUMNS="200")
    env.pop("PYTHONPATH", None)
    env.pop("AMLC_TEST_FRESH_PROCESS", None)
    env["PATH"] = os.pathsep.join([str(INSTALLED.parent), env.get("PATH", "")])
    with forked_cli.launcher(env, tmp_path_factory.mktemp("bin"), fresh=False) as launched:
        yield env, launched


def _zygote(env: dict[str, str]) -> psutil.Process:
    socket_path = env["AMLC_TEST_ZYGOTE"]
    return next(p for p in psutil.Process().children() if socket_path in p.cmdline())


def _wait_for(condition, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def _in_shell(line: str, env: dict[str, str], home: Path) -> tuple[int, str, str]:
    shutil.rmtree(home, ignore_errors=True)
    home.mkdir()
    proc = subprocess.run(
        ["bash", "-o", "pipefail", "-c", line], env=dict(env, AMLC_HOME=str(home)),
        cwd=home.parent, capture_output=True, text=True, stdin=subprocess.DEVNULL, timeout=120,
    )  # fmt: skip
    return proc.returncode, proc.stdout, proc.stderr


@pytest.mark.parametrize(
    "line",
    [
        "amlc --version",
        "amlc nope",  # an unknown command: exit 2, one error line
        "amlc score missing.json",
        f"amlc swagger example {SWAGGER} --rows 2 | head -c 30",  # a pipe that closes early
        'echo "[$(amlc --version)]"',
        "printf k0123456789 | amlc endpoint add bank --scoring-uri https://x.example/score"
        " --key-stdin && amlc endpoint show bank",  # standard input from a pipe
        f"amlc swagger show {SWAGGER} --json > shown.json < /dev/null && wc -c < shown.json",
    ],
)
def test_the_same_output_and_exit_status_as_the_installed_amlc(
    line: str, shells: Shells, tmp_path: Path
) -> None:
    installed, launched = shells
    expected = _in_shell(line, installed, tmp_path / "home")
    assert _in_shell(line, launched, tmp_path / "home") == expected
    assert "Traceback" not in expected[2]
    zygote = _zygote(launched)
    _wait_for(lambda: not zygote.children(), "a forked amlc outlived its launcher")


@contextmanager
def _serving(amlc: str, env: dict[str, str]) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """``amlc swagger serve`` in a session of its own, once it listens: (the process, its
    address)."""
    proc = subprocess.Popen(
        [amlc, "swagger", "serve", str(SWAGGER), "--port", "0"], env=env,
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        address = _ADDRESS.search(first)
        assert address, first
        assert httpx.get(address.group(0), timeout=10).status_code == 200
        yield proc, address.group(0)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=30)


def _answers(address: str) -> bool:
    try:
        httpx.get(address, timeout=5)
    except httpx.TransportError:
        return False
    return True


@pytest.mark.parametrize("how", ["the group", "the launcher"])
def test_ctrl_c_reaches_the_command(
    how: str, shells: Shells, tmp_path: Path
) -> None:
    """SIGINT to the launcher's process group (a terminal's Ctrl-C) or to the launcher alone
    reaches the forked ``amlc``, which stops as the installed one does on Ctrl-C."""
    _, launched = shells
    env = dict(launched, AMLC_HOME=str(tmp_path))
    launcher = shutil.which("amlc", path=launched["PATH"])
    assert launcher is not None and Path(launcher).parent != INSTALLED.parent
    zygote = _zygote(launched)
    with _serving(launcher, env) as (proc, address):
        assert [child.pid for child in zygote.children()] != [], "not forked by the zygote"
        if how == "the group":
            os.killpg(proc.pid, signal.SIGINT)
        else:
            os.kill(proc.pid, signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, (out, err)
    assert out.splitlines()[-1] == "stopped" and "Traceback" not in err
    assert not _answers(address)
    _wait_for(lambda: not zygote.children(), "the forked amlc is still running")


def test_a_signal_that_ends_the_command_ends_the_launcher_alike(
    shells: Shells, tmp_path: Path
) -> None:
    """SIGTERM, which ``amlc swagger serve`` does not handle: the launcher ends as the
    installed ``amlc`` does (by that signal), and the command with it."""
    installed, launched = shells
    statuses = []
    for env in (installed, launched):
        amlc = shutil.which("amlc", path=env["PATH"])
        assert amlc is not None
        with _serving(amlc, dict(env, AMLC_HOME=str(tmp_path))) as (proc, _):
            proc.terminate()
            proc.wait(timeout=60)
        statuses.append(proc.returncode)
    assert statuses[0] == statuses[1], statuses
    zygote = _zygote(launched)
    _wait_for(lambda: not zygote.children(), "the forked amlc outlived its launcher")


def test_a_killed_launcher_leaves_nothing_running(
    shells: Shells, tmp_path: Path
) -> None:
    """A test's timeout kills the launcher (SIGKILL): the forked ``amlc`` ends with it."""
    _, launched = shells
    launcher = shutil.which("amlc", path=launched["PATH"])
    assert launcher is not None
    zygote = _zygote(launched)
    with _serving(launcher, dict(launched, AMLC_HOME=str(tmp_path))) as (proc, address):
        assert zygote.children()
        proc.kill()
        proc.wait(timeout=10)
        _wait_for(lambda: not zygote.children(), "the forked amlc outlived its launcher")
        assert not _answers(address)


@pytest.mark.parametrize(
    "change",
    [
        {"PYTHONHASHSEED": "4242"},  # would start Python otherwise than the zygote did
        {"AMLC_TEST_ZYGOTE": "/nonexistent/socket"},  # no zygote there
    ],
)
def test_without_a_zygote_that_fits_the_installed_amlc_runs(
    change: dict[str, str], shells: Shells, tmp_path: Path
) -> None:
    """The launcher becomes the installed console script (same process), which gets the
    environment without the launcher's own variable."""
    _, launched = shells
    launcher = shutil.which("amlc", path=launched["PATH"])
    assert launcher is not None
    zygote = _zygote(launched)
    assert all(launched.get(name) != value for name, value in change.items())
    env = dict(launched, AMLC_HOME=str(tmp_path), **change)
    with _serving(launcher, env) as (proc, _):
        process = psutil.Process(proc.pid)
        assert process.cmdline()[1:4] == [str(INSTALLED), "swagger", "serve"]
        assert "AMLC_TEST_ZYGOTE" not in process.environ()
        assert not zygote.children()
        os.killpg(proc.pid, signal.SIGINT)
        proc.wait(timeout=60)
    assert proc.returncode == 0
