"""``python -m aml_client ARGS`` as a real process, forked from one that has already imported amlc.

A fresh interpreter spends about half a second of CPU importing typer, rich, pydantic and httpx
before amlc does anything; the suite runs the CLI hundreds of times on a two-core machine. A
forked child (tests/support/cli_zygote.py) is still a process of its own, with its own
streams, environment, working directory, exit code and pid (a test can signal it), and imports
the CLI's own modules afresh; only the libraries' import is shared.

The zygote imports amlc from this checkout (the code under test), whatever the environment of
the call that started it. A call that would import amlc from elsewhere (its working directory
and ``PYTHONPATH`` name another copy first, or none, so the installed one) or whose environment
would change how the interpreter itself starts (a ``PYTHON*`` or locale variable other than the
zygote's) runs in a fresh interpreter instead, as does every call when
``AMLC_TEST_FRESH_PROCESS=1``.

On a timeout the child is killed (SIGKILL) and gone before ``TimeoutExpired`` is raised, as
``subprocess.run`` does; the processes it started are left to notice, as they would be then.

A shell's ``amlc`` (the README's tour, run as written) goes the same way through
:func:`launcher`: an ``amlc`` first on that shell's ``PATH`` (tests/support/amlc_launcher.py)
that has a zygote of its own fork the installed console script.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import locale
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO

from support import amlc_launcher

ZYGOTE = Path(__file__).with_name("cli_zygote.py")
#: The checkout whose ``aml_client`` the zygote imports.
ROOT = Path(__file__).resolve().parents[2]
LAUNCHER = Path(__file__).with_name("amlc_launcher.py")
_STARTUP_VARIABLES = ("PYTHON", "LANG", "LC_")


def _imports_this_checkout(env: dict[str, str], cwd: Path | str) -> bool:
    """Whether ``python -m aml_client`` run in ``cwd`` with ``env`` imports this checkout's
    package: the first of the working directory and the ``PYTHONPATH`` entries holding one."""
    for entry in [str(cwd), *env.get("PYTHONPATH", "").split(os.pathsep)]:
        folder = Path(cwd, entry)
        if entry and (folder / "aml_client" / "__init__.py").is_file():
            return folder.resolve() == ROOT
    return False  # the installed copy


class _Zygote:
    def __init__(self, env: dict[str, str], *, this_checkout: bool = True) -> None:
        """``this_checkout``: import amlc from this checkout whatever ``env``'s PYTHONPATH (the
        code under test); otherwise as ``env`` would (the installed one, for a shell)."""
        self.env = env
        self.folder = tempfile.mkdtemp(prefix="amlc-zygote-")
        self.path = os.path.join(self.folder, "socket")
        path = [str(ROOT)] if this_checkout else []
        path += [p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p]
        child_env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
        if path:
            child_env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
        self.process = subprocess.Popen(
            [sys.executable, str(ZYGOTE), self.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=self.folder, env=child_env,
        )  # fmt: skip
        assert self.process.stdout is not None
        ready = self.process.stdout.readline()
        if ready.strip() != b"ready":
            raise RuntimeError(f"the CLI zygote did not start: {ready!r}")
        atexit.register(self.close)

    def close(self) -> None:
        if self.process.poll() is None:
            assert self.process.stdin is not None
            self.process.stdin.close()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.folder, ignore_errors=True)

    def fits(self, env: dict[str, str]) -> bool:
        """Whether ``env`` starts an interpreter the way the zygote's did."""

        def startup(values: dict[str, str]) -> dict[str, str]:
            return {
                k: v for k, v in values.items()
                if k.startswith(_STARTUP_VARIABLES) and k != "PYTHONPATH"
            }  # fmt: skip

        return startup(env) == startup(self.env)


_zygote: _Zygote | None = None
_lock = threading.Lock()


def _zygote_for(env: dict[str, str], cwd: Path | str) -> _Zygote | None:
    global _zygote
    if os.environ.get("AMLC_TEST_FRESH_PROCESS") == "1" or not _imports_this_checkout(env, cwd):
        return None
    with _lock:
        if _zygote is None or _zygote.process.poll() is not None:
            _zygote = _Zygote(env)
    return _zygote if _zygote.fits(env) else None


@contextlib.contextmanager
def launcher(
    env: dict[str, str], folder: Path, *, fresh: bool | None = None
) -> Iterator[dict[str, str]]:
    """``env`` for a shell whose ``amlc`` is the installed one forked from a zygote: ``folder``
    gets that ``amlc`` (tests/support/amlc_launcher.py, run by this Python) and comes first on
    the ``PATH``, and a zygote started with ``env`` (so it imports what the installed ``amlc``
    imports: no ``PYTHONPATH`` of the tests' own) serves it until the ``with`` ends. With
    ``fresh`` (by default, ``AMLC_TEST_FRESH_PROCESS=1``), ``env`` as it is: every ``amlc`` a
    fresh interpreter."""
    if fresh is None:
        fresh = os.environ.get("AMLC_TEST_FRESH_PROCESS") == "1"
    if fresh:
        yield dict(env)
        return
    zygote = _Zygote(env, this_checkout=False)
    try:
        environb = {os.fsencode(k): os.fsencode(v) for k, v in env.items()}
        Path(zygote.folder, "startup").write_bytes(amlc_launcher.startup(environb))
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "amlc"
        code = LAUNCHER.read_text(encoding="utf-8").split("\n", 1)[1]
        script.write_text(f"#!{sys.executable} -IS\n{code}", encoding="utf-8")
        script.chmod(0o755)
        yield {
            **env,
            "PATH": os.pathsep.join([str(folder), env.get("PATH", os.defpath)]),
            amlc_launcher.VARIABLE: zygote.path,
        }
    finally:
        zygote.close()


def _stdin(input: str | None) -> IO[bytes]:
    if input is None:
        return open(os.devnull, "rb")
    handle = tempfile.TemporaryFile()  # noqa: SIM115 (the caller closes it)
    handle.write(input.encode(locale.getpreferredencoding(False)))
    handle.seek(0)
    return handle


def _text(handle: IO[bytes]) -> str:
    handle.seek(0)
    data = handle.read().decode(locale.getpreferredencoding(False))
    return data.replace("\r\n", "\n").replace("\r", "\n")


def _kill(conn: socket.socket, answer: bytes) -> None:
    """Kill the child whose answer so far is ``answer``, and wait until it has gone (the
    connection it holds closes)."""
    conn.settimeout(30)
    with contextlib.suppress(OSError):  # TimeoutError included: the zygote itself is stuck
        while b"\n" not in answer:  # the child sends its pid as soon as it starts
            chunk = conn.recv(4096)
            if not chunk:
                return
            answer += chunk
        os.kill(int(answer.split(b"\n")[0]), signal.SIGKILL)
        while conn.recv(4096):
            pass


def run(
    args: list[str], *, env: dict[str, str], cwd: Path | str, input: str | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """What ``subprocess.run([python, -m, aml_client, *args], capture_output=True, text=True)``
    returns, from a forked process when it can be one."""
    zygote = _zygote_for(env, cwd)
    if zygote is None:
        return subprocess.run(
            [sys.executable, "-m", "aml_client", *args], input=input,
            stdin=None if input is not None else subprocess.DEVNULL,
            capture_output=True, text=True, env=env, timeout=timeout, cwd=cwd,
        )  # fmt: skip
    request = json.dumps({"args": args, "env": env, "cwd": str(cwd)}).encode() + b"\n"
    with (
        _stdin(input) as stdin,
        tempfile.TemporaryFile() as stdout,
        tempfile.TemporaryFile() as stderr,
        socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as conn,
    ):
        conn.connect(zygote.path)
        socket.send_fds(conn, [request], [stdin.fileno(), stdout.fileno(), stderr.fileno()])
        deadline = time.monotonic() + timeout
        answer = b""
        try:
            while True:  # "PID\n", later "exit N\n", then the end of the connection
                conn.settimeout(max(0.01, deadline - time.monotonic()))
                chunk = conn.recv(4096)
                if not chunk:
                    break
                answer += chunk
        except TimeoutError:
            _kill(conn, answer)
            raise subprocess.TimeoutExpired(args, timeout, _text(stdout), _text(stderr)) from None
        lines = answer.decode().splitlines()
        returncode = int(lines[1].split()[1]) if len(lines) > 1 else -signal.SIGKILL
        return subprocess.CompletedProcess(args, returncode, _text(stdout), _text(stderr))
