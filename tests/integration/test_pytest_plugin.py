"""The pytest plugin as a model's CI meets it: a scratch project of its own (no conftest, no
file of this repository), amlc installed from this checkout into a directory of its own (so the
plugin comes only from the ``pytest11`` entry point of the installed distribution), a real
pytest run against the real local endpoint."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

# One worker runs both, so the installation (a module fixture) is built once.
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("pytest-plugin")]

ROOT = Path(__file__).resolve().parents[2]

SCRATCH_TESTS = '''
from pathlib import Path

import aml_client


def test_installed_copy_is_used():
    assert "{site}" in aml_client.__file__, aml_client.__file__


def test_endpoint_is_resolved(amlc_endpoint):
    assert amlc_endpoint.source == "local endpoint"
    assert amlc_endpoint.scoring_uri.startswith("http://127.0.0.1:")


def test_objective_held(amlc_bench):
    run = amlc_bench(users=2, requests=40)
    run.assert_slo("p99<=60s")
    run.assert_no_failures()
    assert run.summary.requests == 40
    assert (Path(run.report_dir) / "summary.json").is_file()


def test_objective_missed(amlc_bench):
    amlc_bench(requests=20).assert_slo("p99<=1us")


def test_plain_assert_on_p99(amlc_bench):
    assert amlc_bench(requests=20).p99_ms < 0.001
'''


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """amlc built from this checkout and installed (without dependencies: they are this
    interpreter's) into a directory of its own; the build runs on a copy of the sources, so
    the checkout gets no build directory."""
    root = tmp_path_factory.mktemp("amlc-installed")
    source = root / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", "venv", "reports", "tests", "benchmarks", "examples", "build", "dist",
        "__pycache__", "*.egg-info", ".*_cache"))
    site = root / "site"
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(site), str(source)],
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    entry_points = next(site.glob("amlc-*.dist-info")) / "entry_points.txt"
    assert "[pytest11]" in entry_points.read_text(encoding="utf-8")
    return site


def _scratch_pytest(
    project: Path, site: Path, env: dict[str, str], *args: str
) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in env.items() if not name.startswith("PYTEST_")}
    env["PYTHONPATH"] = str(site)  # the installed copy only, not this checkout
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-rfE", "-q",
         "--basetemp", str(project / "tmp"), *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=400,
    )


def test_a_scratch_project_benchmarks_with_the_installed_plugin(
    installed: Path, local_endpoint, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    project = tmp_path / "model-ci"
    project.mkdir()
    (project / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    (project / "test_model_latency.py").write_text(
        SCRATCH_TESTS.replace("{site}", str(installed)), encoding="utf-8")
    done = _scratch_pytest(project, installed, local_endpoint.env(), "--amlc-endpoint", "local")
    out = done.stdout + done.stderr
    assert done.returncode == 1, out  # the two tests meant to fail, and only those
    assert re.search(r"\b2 failed, 3 passed\b", out), out
    assert "FAILED test_model_latency.py::test_objective_missed" in out, out
    assert "FAILED test_model_latency.py::test_plain_assert_on_p99" in out, out
    # The missed objective says what was measured and where the report is.
    missed = re.search(r"objective missed: p99 = .*?MISSED \(report: (\S+)\)", out)
    assert missed, out
    assert (Path(missed.group(1)) / "summary.json").is_file()
    # A plain assert shows the run, and so its report directory.
    shown = re.search(r"BenchRun\(report='([^']+)', requests=20, failures=0", out)
    assert shown, out
    assert (Path(shown.group(1)) / "report.html").is_file()
    assert Path(shown.group(1)).is_relative_to(project / "tmp")


def test_the_endpoint_comes_from_the_environment_and_a_missing_one_is_one_line(
    installed: Path, local_endpoint, tmp_path: Path  # type: ignore[no-untyped-def]
) -> None:
    project = tmp_path / "model-ci"
    project.mkdir()
    (project / "test_endpoint.py").write_text(
        "def test_endpoint(amlc_endpoint):\n"
        "    assert amlc_endpoint.source == 'local endpoint'\n", encoding="utf-8")
    env = {**local_endpoint.env(), "AMLC_ENDPOINT": "local"}
    done = _scratch_pytest(project, installed, env)
    assert done.returncode == 0, done.stdout + done.stderr
    # No endpoint runs in an empty AMLC_HOME: the fixture fails with amlc's own message.
    env["AMLC_HOME"] = str(tmp_path / "empty-home")
    done = _scratch_pytest(project, installed, env)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "amlc_endpoint: no local endpoint is running" in done.stdout, done.stdout
    assert "Traceback" not in done.stdout
