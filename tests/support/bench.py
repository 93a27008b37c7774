"""Shared by the bench integration tests: the calibrated server and an ``amlc bench`` runner."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from support import forked_cli
from support.local import free_port

ROOT = Path(__file__).resolve().parents[2]
SERVER = ROOT / "tests" / "support" / "calibrated.py"
SLOTS_SERVER = ROOT / "tests" / "support" / "slots_server.py"
KEY = "calibrated-KEY-7f3a9c1e5b2d4f6a8c0e"

#: The real command line: ``amlc bench`` (this checkout first on the path).
AMLC_BENCH = [sys.executable, "-m", "aml_client", "bench"]


@dataclass
class Server:
    proc: subprocess.Popen[str]
    port: int
    log: Path

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}/score"

    def count(self) -> dict[str, Any]:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/count", timeout=5) as r:
            counts: dict[str, Any] = json.load(r)
            return counts

    def log_lines(self) -> list[str]:
        return self.log.read_text().splitlines() if self.log.exists() else []

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def start_slots_server(tmp_path: Path, slots: int, service_ms: float, *args: str) -> Server:
    """The asyncio endpoint of exactly ``slots`` / ``service_ms`` capacity
    (``support/slots_server.py``), for capacity searches."""
    return start_server(tmp_path, "--slots", str(slots), "--service-ms", f"{service_ms:g}",
                        *args, script=SLOTS_SERVER)


def start_server(
    tmp_path: Path, *args: str, script: Path = SERVER, log: bool = True
) -> Server:
    """``script`` on a free port of 127.0.0.1; the calibrated server appends each scoring
    request to a log under ``tmp_path`` unless ``log`` is False.

    In a session of its own, as amlc's local endpoint and load processes are: where the kernel
    shares CPU time between sessions (Linux's autogroup), the suite's busy processes would
    otherwise delay its replies, as an endpoint on another machine is never delayed."""
    log_path = tmp_path / f"server-{time.monotonic_ns()}.log"
    logging = ["--log", str(log_path)] if script == SERVER and log else []
    proc = subprocess.Popen(
        [sys.executable, str(script), *logging, *args],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    if not line.startswith("PORT "):
        proc.kill()
        raise RuntimeError(f"calibrated server did not start: {line!r}")
    return Server(proc, int(line.split()[1]), log_path)


def bench_env(server: Server, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(AMLC_SCORING_URI=server.uri, AMLC_KEY=KEY, PYTHONPATH=str(ROOT))
    env.pop("AMLC_DEBUG", None)
    # A web UI of its own: tests run side by side, and the default port is one for all.
    env["AMLC_WEB_PORT"] = str(free_port())
    env.update(extra)
    return env


def run_bench(
    args: list[str], env: dict[str, str], cwd: Path, timeout_s: float = 120
) -> subprocess.CompletedProcess[str]:
    """``amlc bench ARGS`` as a real process of its own (``env``, ``cwd``, no stdin), forked
    from one that has already imported amlc's libraries (support/forked_cli.py): what
    ``subprocess.run([*AMLC_BENCH, *args], capture_output=True, text=True)`` returns. Killed
    after ``timeout_s`` (``subprocess.TimeoutExpired``)."""
    return forked_cli.run(["bench", *args], env=env, cwd=cwd, input=None, timeout=timeout_s)


def files_under(path: Path) -> list[Path]:
    return [p for p in path.rglob("*") if p.is_file()]
