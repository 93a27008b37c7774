"""CI (``.ci/run``) runs what the README tells a newcomer to run, verbatim, and the wheel check."""

from __future__ import annotations

import ast
import os
import pkgutil
import re
from pathlib import Path

from support.cli_zygote import FRESH, NOT_PRELOADED

import aml_client

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


def test_the_modules_forked_commands_share_read_nothing_on_import() -> None:
    """The zygote of support/forked_cli.py imports amlc's modules once and forks each command
    from it, so a module it preloads must not read the environment, start a thread or install
    a handler on import: the forked command would see the zygote's, not its own."""
    root = Path(aml_client.__file__).parent
    shared = [
        module for module in pkgutil.walk_packages(aml_client.__path__, "aml_client.")
        if not module.name.startswith(NOT_PRELOADED + FRESH)
    ]  # fmt: skip
    assert len(shared) > 50
    for module in shared:
        relative = module.name.split(".")[1:]
        path = root.joinpath(*relative, "__init__.py") if module.ispkg else \
            root.joinpath(*relative[:-1], relative[-1] + ".py")
        for statement in ast.parse(path.read_text(encoding="utf-8")).body:
            if isinstance(statement, (ast.FunctionDef, ast.AsyncFunctionDef)):
                continue  # runs when called
            body = statement.body if isinstance(statement, ast.ClassDef) else [statement]
            for node in body:
                if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                    continue
                names = {n.attr if isinstance(n, ast.Attribute) else n.id
                         for n in ast.walk(node) if isinstance(n, (ast.Attribute, ast.Name))}
                read = names & {"environ", "getenv", "Thread", "signal", "register", "Console"}
                assert not read, f"{module.name} line {node.lineno}: {ast.unparse(node)[:100]}"
