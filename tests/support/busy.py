"""Run the test suite as a busy CI machine would: two CPU-bound processes beside it.

    .venv/bin/python tests/support/busy.py               # python -m pytest -q -n 4, two busy loops
    .venv/bin/python tests/support/busy.py -x tests/integration/test_batch_http.py
    BUSY_LOOPS=4 .venv/bin/python tests/support/busy.py  # busier still

A test that passes only on an idle machine (a fixed time window, a throughput floor, a sleep
long enough "usually") fails here. The loops start before pytest, stop when it ends whatever
happens, and the exit code is pytest's.
"""

from __future__ import annotations

import os
import subprocess
import sys


def main(argv: list[str]) -> int:
    count = int(os.environ.get("BUSY_LOOPS", "2"))
    loops = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(count)]
    try:
        return subprocess.call([sys.executable, "-m", "pytest", "-q", "-n", "4", *argv])
    finally:
        for loop in loops:
            loop.kill()
            loop.wait()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
