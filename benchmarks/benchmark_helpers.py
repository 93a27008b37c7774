"""What several benchmarks share: CPU-bound processes beside a run (a busy machine, as CI is),
and the test servers of tests/support (importable as ``support``, as in the tests)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "tests") not in sys.path:
    sys.path.insert(0, str(ROOT / "tests"))

from support.bench import (  # noqa: E402
    Server,
    bench_env,
    run_bench,
    start_server,
    start_slots_server,
)

__all__ = [
    "ROOT",
    "Server",
    "bench_env",
    "busy_loops",
    "calibrated_server",
    "run_bench",
    "start_slots_server",
]


@contextlib.contextmanager
def busy_loops(count: int) -> Iterator[None]:
    """``count`` CPU-bound processes (Python busy loops) for the length of the block; they are
    stopped when it ends, whatever happens."""
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        yield
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


def calibrated_server(tmp: Path, service_ms: float) -> Server:
    """``tests/support/calibrated.py`` with a fixed service time, on 127.0.0.1; no request log
    (writing it would add to every request's time)."""
    return start_server(tmp, "--service-ms", f"{service_ms:.3f}", log=False)
