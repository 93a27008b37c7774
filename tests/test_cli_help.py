"""``amlc … --help`` as a person reads it in an 80-column terminal: every command's help, rendered
by the real CLI in one process; paragraphs that break only where the width runs out, no type
beside a flag, and a root help that lists every command without building any of them."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aml_client.cli.app import COMMANDS, load_commands

REPO = Path(__file__).resolve().parent.parent
WIDTH = 80

#: Renders ``amlc --help`` first (and notes which command modules that loaded), then the help of
#: every command and subcommand, each through ``main`` as the ``amlc`` script runs it.
_RENDER = """
import contextlib, io, json, sys
from aml_client.cli.app import COMMANDS, load_commands, main

def render(args):
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        try:
            main([*args, "--help"])
        except SystemExit:
            pass
    return out.getvalue()

pages = {"": render([])}
always = {"aml_client.cli.app", "aml_client.cli.output"}
loaded = sorted(m for m in sys.modules if m.startswith("aml_client.cli.") and m not in always)
for name, (module, _) in COMMANDS.items():
    command = load_commands(module)[name]
    pages[name] = render([name])
    for sub in getattr(command, "commands", {}):
        pages[f"{name} {sub}"] = render([name, sub])
print(json.dumps({"pages": pages, "loaded_by_root_help": loaded}))
"""


@pytest.fixture(scope="module")
def rendered() -> dict[str, object]:
    env = {"PYTHONPATH": str(REPO), "COLUMNS": str(WIDTH), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(
        [sys.executable, "-c", _RENDER], capture_output=True, text=True, env=env, cwd=REPO,
        timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    result: dict[str, object] = json.loads(proc.stdout)
    return result


def _pages(rendered: dict[str, object]) -> dict[str, str]:
    pages = rendered["pages"]
    assert isinstance(pages, dict)
    return pages


def _description(page: str) -> list[str]:
    """The prose between the usage line and the first panel, as rendered lines."""
    lines = page.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip().startswith("Usage:"))
    end = next((i for i, line in enumerate(lines) if line.startswith("╭")), len(lines))
    return [line.rstrip() for line in lines[start + 1 : end]]


def test_every_command_has_a_help_page(rendered: dict[str, object]) -> None:
    pages = _pages(rendered)
    assert {"", "score", "bench", "local up", "swagger serve", "report compare"} <= set(pages)
    for path, page in pages.items():
        assert "Usage: amlc" in page, (path, page)
        assert "Traceback" not in page, (path, page)


def test_paragraphs_break_only_where_the_line_is_full(rendered: dict[str, object]) -> None:
    """A rendered line ends early only at the end of a sentence (or before an ``amlc`` example):
    otherwise the next word would have fitted, and the break came from the source's newlines."""
    for path, page in _pages(rendered).items():
        lines = _description(page)
        for line, following in itertools.pairwise(lines):
            if not line.strip() or not following.strip():
                continue
            next_word = following.split()[0]
            full = len(line) + 1 + len(next_word) > WIDTH - 1
            ends_sentence = line.endswith((".", ":", "?", "!", ")")) or next_word == "amlc"
            assert full or ends_sentence, (
                f"amlc {path} --help breaks mid-sentence:\n{line}\n{following}"
            )


def test_no_type_is_shown_beside_a_flag(rendered: dict[str, object]) -> None:
    for path, page in _pages(rendered).items():
        assert "<bool>" not in page, f"amlc {path} --help"
        flag_rows = [line for line in page.splitlines() if re.search(r"│ +(--json|-h)\b", line)]
        for row in flag_rows:
            assert "<" not in row, (path, row)


def test_brackets_in_help_are_shown_as_written(rendered: dict[str, object]) -> None:
    """Help text is not rich markup: ``[default: …]`` written in a help string stays."""
    squashed = " ".join(_pages(rendered)["local up"].replace("│", " ").split())
    assert "Repeat for several [default: one sklearn deployment called blue]" in squashed


def test_the_root_help_builds_no_command(rendered: dict[str, object]) -> None:
    """``amlc --help`` lists every command from its summary: no command module is imported."""
    assert rendered["loaded_by_root_help"] == []
    root = _pages(rendered)[""]
    for name in COMMANDS:
        assert re.search(rf"│ {name} ", root), name


def test_each_summary_is_the_commands_own_first_paragraph() -> None:
    for name, (module, summary) in COMMANDS.items():
        command = load_commands(module)[name]
        first = (command.help or "").split("\n\n")[0]
        assert first == summary, f"COMMANDS[{name!r}] says {summary!r}; the command says {first!r}"


def test_every_registered_command_is_listed() -> None:
    """A module that registers commands is in COMMANDS, with every command it adds."""
    cli = REPO / "aml_client" / "cli"
    registering = {p.stem for p in cli.glob("*.py") if "def register(" in p.read_text()}
    assert registering == {module for module, _ in COMMANDS.values()}
    for module in registering:
        assert set(load_commands(module)) <= set(COMMANDS), module
