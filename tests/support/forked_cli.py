"""``python -m aml_client ARGS`` as a real process, forked from one that has already imported amlc.

A fresh interpreter spends about half a second of CPU importing typer, rich, pydantic and httpx
before amlc does anything; the suite runs the CLI hundreds of times on a two-core machine. A
forked child (tests/support/cli_zygote.py) is still a process of its own, with its own
streams, environment, working directory, exit code and pid (a test can signal it), and imports
the CLI's own modules afresh; only the libraries' import is shared.

A call whose environment would change how the interpreter itself starts (a ``PYTHON*`` or
locale variable other than the zygote's) runs in a fresh interpreter instead, as does every
call when ``AMLC_TEST_FRESH_PROCESS=1``.

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
LAUNCHER = Path(__file__).with_name("amlc_launcher.py")
_STARTUP_VARIABLES = ("PYTHON", "LANG", "LC_")


class _Zygote:
    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.folder = tempfile.mkdtemp(prefix="amlc-zygote-")
        self.path = os.path.join(self.folder, "socket")
        self.process = subprocess.Popen(
            [sys.executable, str(ZYGOTE), self.path],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=self.folder,
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


def _zygote_for(env: dict[str, str]) -> _Zygote | None:
    global _zygote
    if os.environ.get("AMLC_TEST_FRESH_PROCESS") == "1":
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
    zygote = _Zygote(env)
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


def run(
    args: list[str], *, env: dict[str, str], cwd: Path | str, input: str | None, timeout: float
) -> subprocess.CompletedProcess[str]:
    """What ``subprocess.run([python, -m, aml_client, *args], capture_output=True, text=True)``
    returns, from a forked process when it can be one."""
    zygote = _zygote_for(env)
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
            if b"\n" in answer:
                os.kill(int(answer.split(b"\n")[0]), signal.SIGKILL)
            raise subprocess.TimeoutExpired(args, timeout, _text(stdout), _text(stderr)) from None
        lines = answer.decode().splitlines()
        returncode = int(lines[1].split()[1]) if len(lines) > 1 else -signal.SIGKILL
        return subprocess.CompletedProcess(args, returncode, _text(stdout), _text(stderr))
