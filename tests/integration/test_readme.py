"""The README's quick start (its ``amlc`` half) and its whole tour, run as written.

Each ``bash`` block of "A short tour" runs line by line in ``bash``, in README order, one test
per section (each after the quick start, so sections run side by side), from a directory of
its own that looks like the clone (``examples/``, ``loadtests/``, ``.venv``), with the
virtual environment's ``bin`` first on the ``PATH`` (what ``source .venv/bin/activate`` does).
The sections one test process runs share an ``AMLC_HOME``, so the quick start's endpoint
starts once per process; the quick start runs twice in a row before the first of them (the
second run finds the endpoint running) and once before each later one. The
``python`` block runs with the virtual environment's Python. The quick start's
``.venv/bin/amlc`` is the installed console script, a fresh interpreter each time; the tour's
``amlc`` is that same script forked from a process that has imported its libraries
(support/amlc_launcher.py: same streams, exit status, Ctrl-C; ``AMLC_TEST_FRESH_PROCESS=1``
makes it a fresh interpreter too). What the README says about a command is what is checked:

- exit 0, unless its comment says ``→ exit N`` (exactly N) or ``exit 5 on …`` (0 or 5: a gate
  whose verdict depends on the machine);
- a command whose comment says ``(Ctrl-C ends)`` serves until interrupted: it must still run
  after it printed its first line, an address it prints must answer, and Ctrl-C must end it
  with exit 0;
- no traceback anywhere; no ``error:`` line from a command that succeeds; ``--json`` output
  is JSON; each ``error: …`` line the README shows in a ``text`` block is printed, exactly.

The Azure section needs a subscription and is the only one skipped (the test says so if that
changes); tests/integration/test_azure_cli.py covers those commands against replayed answers.
Ports come from ``AMLC_LOCAL_PORT``, ``AMLC_SWAGGER_PORT``, ``AMLC_WEB_PORT`` and Locust's
``LOCUST_WEB_PORT``, so the run never collides with another.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
from support import forked_cli
from support.local import amlc_env, free_port

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
#: The only section of the tour that is not run, and why.
SKIPPED_SECTIONS = {"Azure": "needs an Azure subscription"}
#: Longest a tour command may take (the slowest, the capacity search, takes about 30 s).
COMMAND_TIMEOUT_S = 240
#: How long a command that serves until Ctrl-C may take to print its first line.
SERVE_READY_S = 90
#: What a serving command prints once it listens.
_SERVING = re.compile(r"https?://[\w.\[\]:-]+:\d+")


@dataclass
class Step:
    section: str
    language: str  # "bash" or "python"
    code: str
    comment: str = ""

    @property
    def expected(self) -> set[int]:
        exact = re.search(r"→ exit (\d+)", self.comment)
        if exact:
            return {int(exact.group(1))}
        if re.search(r"\bexit 5 on\b", self.comment):
            return {0, 5}
        if re.search(r"\bexit 4 if\b", self.comment):
            return {0, 4}
        return {0}

    @property
    def serves(self) -> bool:
        return "(Ctrl-C ends)" in self.comment


@dataclass
class Tour:
    quick_start: list[str]
    steps: list[Step]
    skipped: set[str]
    error_lines: list[str] = field(default_factory=list)
    #: section -> the ``error: …`` lines its ``text`` blocks show
    section_errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def sections(self) -> list[str]:
        """The tour's sections that have steps, in README order."""
        return list(dict.fromkeys(step.section for step in self.steps))


def _split_comment(line: str) -> tuple[str, str]:
    """``command   # comment`` -> (command, comment); a ``#`` inside quotes is kept."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1] == " "):
            return line[:index].rstrip(), line[index + 1 :].strip()
    return line.rstrip(), ""


def read_tour(text: str) -> Tour:
    """The quick start's ``amlc`` commands and the tour's steps, from the README's text."""
    quick_start: list[str] = []
    steps: list[Step] = []
    skipped: set[str] = set()
    error_lines: list[str] = []
    section_errors: dict[str, list[str]] = {}
    part = section = ""
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("## "):
            part, section = line[3:].strip(), ""
        elif line.startswith("### "):
            section = line[4:].strip()
        elif line.startswith("```") and part in ("Quick start", "A short tour"):
            language = line[3:].strip()
            block = []
            for inner in lines:
                if inner.startswith("```"):
                    break
                block.append(inner)
            skip = next((name for name in SKIPPED_SECTIONS if section.startswith(name)), None)
            if skip is not None:
                skipped.add(skip)
            elif part == "Quick start" and language == "bash":
                for command in block:
                    command, _ = _split_comment(command)
                    quick_start += [
                        piece.strip() for piece in command.split("&&")
                        if piece.strip().startswith(".venv/bin/amlc")
                    ]  # fmt: skip
            elif language == "python":
                steps.append(Step(section, "python", "\n".join(block)))
            elif language == "bash":
                for command in block:
                    command, comment = _split_comment(command)
                    if command and command != "source .venv/bin/activate":
                        steps.append(Step(section, "bash", command, comment))
            elif language == "text":
                shown = [entry for entry in block if entry.startswith("error: ")]
                error_lines += shown
                section_errors.setdefault(section, []).extend(shown)
    return Tour(quick_start, steps, skipped, error_lines, section_errors)


@dataclass
class Ran:
    step: Step
    returncode: int
    stdout: str
    stderr: str

    def describe(self) -> str:
        return (
            f"[{self.step.section}] {self.step.code}\nexit {self.returncode}\n"
            f"--- stdout\n{self.stdout[-3000:]}\n--- stderr\n{self.stderr[-3000:]}"
        )


def _run(step: Step, cwd: Path, env: dict[str, str]) -> Ran:
    if step.language == "python":
        command = [sys.executable, "-c", step.code]
    else:
        command = ["bash", "-o", "pipefail", "-c", step.code]
    if not step.serves:
        proc = subprocess.run(
            command, cwd=cwd, env=env, capture_output=True, text=True,
            stdin=subprocess.DEVNULL, timeout=COMMAND_TIMEOUT_S,
        )  # fmt: skip
        return Ran(step, proc.returncode, proc.stdout, proc.stderr)
    return _serve_then_interrupt(step, command, cwd, env)


def _serve_then_interrupt(step: Step, command: list[str], cwd: Path, env: dict[str, str]) -> Ran:
    """Run a command that serves until Ctrl-C: once it printed, check it, then interrupt it."""
    proc = subprocess.Popen(
        command, cwd=cwd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        stdin=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    out: list[str] = []
    err: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=lambda: out.extend(proc.stdout), daemon=True),
        threading.Thread(target=lambda: err.extend(proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        deadline = time.monotonic() + SERVE_READY_S
        # Serving means an address printed (amlc on stdout, Locust on stderr), or, for a command
        # that prints no address (logs -f), a quiet moment after its first lines (it printed, so
        # it is past its start-up): Ctrl-C sent while a command is still importing would test
        # its start-up, not the documented stop.
        first_output: float | None = None
        while proc.poll() is None and time.monotonic() < deadline:
            printed = "".join(out + err)
            if _SERVING.search(printed):
                break
            if printed and first_output is None:
                first_output = time.monotonic()
            if first_output is not None and time.monotonic() - first_output > 3:
                break
            time.sleep(0.1)
        assert proc.poll() is None, f"{step.code} ended by itself: {''.join(out + err)}"
        assert out or err, f"{step.code} printed nothing within {SERVE_READY_S} s"
        time.sleep(1.0)  # the rest of what it prints at start (an address follows a title)
        for url in re.findall(r"http://127\.0\.0\.1:\d+/[^\s)]*", "".join(out)):
            assert httpx.get(url, timeout=10).status_code == 200, url
        if step.code.startswith("locust "):
            # Locust prints its web UI's address before amlc's start-up hook has run: Ctrl-C is
            # the documented stop of a started run, not of a start.
            while "amlc ready:" not in "".join(err):
                assert time.monotonic() < deadline and proc.poll() is None, "".join(err)
                time.sleep(0.1)
        os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C reaches the terminal's foreground group
        proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    for reader in readers:
        reader.join(timeout=5)
    return Ran(step, proc.returncode, "".join(out), "".join(err))


def _check(ran: Ran) -> None:
    assert ran.returncode in ran.step.expected, ran.describe()
    assert "Traceback" not in ran.stdout + ran.stderr, ran.describe()
    if ran.returncode == 0:
        assert not any(line.startswith("error:") for line in ran.stderr.splitlines()), (
            ran.describe()
        )
        if "--json" in ran.step.code:
            json.loads(ran.stdout)
    else:
        errors = [line for line in ran.stderr.splitlines() if line.startswith("error: ")]
        assert ran.step.expected == {0, 5} or len(errors) == 1, ran.describe()


def test_the_tour_is_read_from_the_readme() -> None:
    """What the README test runs: the quick start's two amlc commands, every section of the
    tour but Azure's, the library examples, the error line it shows."""
    tour = read_tour(README.read_text(encoding="utf-8"))
    assert tour.quick_start == [
        ".venv/bin/amlc local up --detach",
        ".venv/bin/amlc score examples/data.json",
    ]
    assert tour.skipped == set(SKIPPED_SECTIONS)
    sections = {step.section for step in tour.steps}
    assert {"Score from the command line", "Use it as a library", "The local endpoint",
            "Swagger tools", "Benchmarks", "Benchmarks in Python and in a model's CI",
            "Scoring large files"} <= sections  # fmt: skip
    assert [step.language for step in tour.steps].count("python") == 2
    assert tour.error_lines == [
        "error: examples/bad.json: row 2, column 'age': expected integer, got 'abc'"
    ]
    assert set(tour.section_errors) <= set(tour.sections), "an error line no section prints"
    serving = [step.code for step in tour.steps if step.serves]
    assert "amlc bench --web" in serving and "amlc swagger serve --open" in serving


TOUR = read_tour(README.read_text(encoding="utf-8"))


@pytest.fixture(scope="session")
def tour_home(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> Iterator[tuple[Path, dict[str, str]]]:
    """The ``AMLC_HOME`` and environment of the tour in this test process: after the quick
    start, as ``source .venv/bin/activate`` leaves a shell. The sections this process runs, one
    after another, share it, so the quick start's endpoint starts once per process; each
    section leaves it as the quick start did (or, when it failed, stopped). The shell's
    ``amlc`` is the installed one, forked from a zygote of this process (forked_cli.launcher)."""
    home = tmp_path_factory.mktemp("tour-home")
    (home / "cache").symlink_to(local_model_cache, target_is_directory=True)
    env = amlc_env(home)
    env.pop("PYTHONPATH", None)  # the installed amlc, as after the quick start
    env.update(
        PATH=os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        VIRTUAL_ENV=str(Path(sys.executable).parent.parent),
        AMLC_LOCAL_PORT=str(free_port()),
        AMLC_SWAGGER_PORT=str(free_port()),
        AMLC_WEB_PORT=str(free_port()),
        LOCUST_WEB_PORT=str(free_port()),
        LOCUST_WEB_HOST="127.0.0.1",
        BROWSER="true",  # `swagger serve --open` opens nothing here
    )
    for name in ("BANK_KEY", "AMLC_ENDPOINT", "AMLC_DEPLOYMENT", "AMLC_TOKEN_COMMAND"):
        env.pop(name, None)
    try:
        with forked_cli.launcher(env, tmp_path_factory.mktemp("tour-bin")) as shell_env:
            yield home, shell_env
    finally:
        _local_down(home)


def _local_down(home: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "aml_client", "local", "down"],
        env=amlc_env(home), capture_output=True, timeout=60,
    )  # fmt: skip


#: The sections this test process has run, in order.
_SECTIONS_RUN: list[str] = []


@pytest.mark.slow
@pytest.mark.parametrize("section", TOUR.sections)
def test_the_quick_start_then_every_tour_command_as_written(
    section: str, tmp_path: Path, tour_home: tuple[Path, dict[str, str]]
) -> None:
    """One section of the tour after the quick start, in a clone of its own (own reports and
    files): sections start from the quick start's state, not from each other's, so they run
    side by side."""
    tour = read_tour(README.read_text(encoding="utf-8"))
    clone = tmp_path / "clone"
    clone.mkdir()
    for name in ("examples", "loadtests"):
        (clone / name).symlink_to(REPO / name, target_is_directory=True)
    (clone / ".venv").symlink_to(Path(sys.executable).parent.parent, target_is_directory=True)
    home, env = tour_home
    ran: list[Ran] = []
    passed = False
    # The quick start twice in a row in this process's first section (both succeed, the
    # second finds the endpoint running); once before each later section, which starts from
    # the state it leaves.
    first = not _SECTIONS_RUN
    _SECTIONS_RUN.append(section)
    try:
        for attempt in (1, 2) if first else (1,):
            for command in tour.quick_start:
                result = _run(Step("Quick start", "bash", command), clone, env)
                assert result.returncode == 0, (attempt, result.describe())
                assert "Traceback" not in result.stdout + result.stderr
                ran.append(result)
        if first:
            assert "already running with these settings" in ran[2].stderr
        for step in tour.steps:
            if step.section != section:
                continue
            started = time.monotonic()
            result = _run(step, clone, env)
            if os.environ.get("AMLC_README_TIMES"):
                print(f"{time.monotonic() - started:6.1f} s  {step.code[:100]}")
            _check(result)
            ran.append(result)
        printed = {line for result in ran for line in result.stderr.splitlines()}
        for line in tour.section_errors.get(section, []):
            assert line in printed, line
        passed = True
    finally:
        if not passed:  # the next section starts from a fresh quick start
            _local_down(home)
