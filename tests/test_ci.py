"""CI (``.ci/run``) runs what the README tells a newcomer to run, verbatim, and the wheel check."""

from __future__ import annotations

import os
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def _readme_test_command() -> str:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quick_start = readme.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    commands = [line for line in quick_start.splitlines() if "-m pytest" in line]
    assert len(commands) == 1, commands
    return commands[0].strip()


def test_ci_runs_the_readme_test_command_verbatim() -> None:
    command = _readme_test_command()
    assert re.search(r"-m pytest -q -n \d+", command), command
    lines = (REPO / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert command in [line.strip() for line in lines]


def test_ci_checks_the_wheel_and_the_scripts_types() -> None:
    run = (REPO / ".ci" / "run").read_text(encoding="utf-8")
    assert ".ci/wheel-smoke" in run
    assert "mypy --strict loadtests benchmarks" in run
    assert os.access(REPO / ".ci" / "wheel-smoke", os.X_OK)


def test_grouped_tests_share_one_worker(tmp_path: Path) -> None:
    """The suite's ``xdist_group`` (capacity searches one after another) holds with the pytest
    and pytest-xdist installed: with some version pairs the group is silently ignored."""
    import subprocess
    import sys

    (tmp_path / "test_grouped.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.xdist_group('g')\n"
        "@pytest.mark.parametrize('i', range(4))\n"
        "def test_grouped(i):\n"
        "    with open(f'worker-{i}', 'w') as out:\n"
        "        out.write(os.environ['PYTEST_XDIST_WORKER'])\n",
        encoding="utf-8",
    )
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup",
         "-p", "no:randomly", "-p", "no:cacheprovider", "test_grouped.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    workers = {(tmp_path / f"worker-{i}").read_text() for i in range(4)}
    assert len(workers) == 1, workers
