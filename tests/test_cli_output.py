"""``aml_client.cli.output``: tables that never cut a figure, an id or a name, in a terminal of
any width, on a pipe (a CI log), in a file; and the report commands' tables through it."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console
from rich.table import Table
from support.bench_results import synthetic_result

from aml_client.bench.report import directory as report
from aml_client.cli import output

ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")
LONG_ID = "20261206T032024Z-localhost-endpoint-blue-deployment-2"


def _table() -> Table:
    table = Table(title="Benchmark reports (latency in ms)", title_justify="left")
    for name in ("report", "load", "requests", "p99", "run"):
        table.add_column(name, justify="right" if name in ("requests", "p99") else "left")
    table.add_row(LONG_ID, "closed 4 users", "1,234,567", "12,345.678", "MISSED")
    table.add_row("short", "open 50 req/s", "12", "0.125", "offered")
    return table


def _render(width: int, *, terminal: bool) -> str:
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, force_terminal=terminal, color_system=None,
                      highlight=False, soft_wrap=True)
    output.table(_table(), console)
    return ANSI.sub("", buffer.getvalue())


WHOLE = (LONG_ID, "1,234,567", "12,345.678", "MISSED", "offered", "closed 4 users", "0.125")


@pytest.mark.parametrize("width", [40, 80])
@pytest.mark.parametrize("terminal", [True, False])
def test_no_cell_is_ever_cut(width: int, terminal: bool) -> None:
    text = _render(width, terminal=terminal)
    assert "…" not in text
    for whole in WHOLE:
        assert whole in text, (whole, text)


def test_a_table_that_fits_is_drawn_as_it_is() -> None:
    text = _render(200, terminal=True)
    assert "┃ report" in text and LONG_ID in text
    assert text.count("\n") > 4


def test_a_narrow_terminal_gets_plain_lines() -> None:
    lines = _render(40, terminal=True).splitlines()
    assert lines[0] == "Benchmark reports (latency in ms)"
    assert lines[1] == (f"report {LONG_ID}: load closed 4 users; requests 1,234,567; "
                        "p99 12,345.678; run MISSED")
    assert "┃" not in "".join(lines)


def test_a_pipe_gets_the_table_at_its_own_width() -> None:
    lines = _render(40, terminal=False).splitlines()
    assert max(len(line) for line in lines) == output.table_width(_table())
    assert any(LONG_ID in line and "12,345.678" in line for line in lines)


def test_a_table_without_headers_reads_label_value() -> None:
    table = Table(show_header=False, box=None)
    table.add_column()
    table.add_column()
    table.add_row("report", LONG_ID)
    assert output.plain_lines(table) == [f"report: {LONG_ID}"]


# -- the report commands, as a user runs them ----------------------------------------------------
#: A pipe at 80 and 40 columns, and a terminal of 40 (rich honours TTY_COMPATIBLE).
LAYOUTS = [
    {"COLUMNS": "80"},
    {"COLUMNS": "40"},
    {"COLUMNS": "40", "TTY_COMPATIBLE": "1", "NO_COLOR": "1"},
]


@pytest.fixture
def stored(tmp_path: Path) -> tuple[Path, list[Path]]:
    root = tmp_path / "reports"
    runs = [report.write_report(synthetic_result(seed=1, endpoint="a-rather-long-endpoint-name"),
                                root),
            report.write_report(synthetic_result(seed=2, open_model=True), root)]
    return root, runs


@pytest.mark.parametrize("env", LAYOUTS, ids=["pipe-80", "pipe-40", "terminal-40"])
def test_report_tables_keep_every_id_and_figure_whole(amlc, stored, env) -> None:
    root, runs = stored
    listed = amlc("report", "list", str(root), env=env)
    assert listed.returncode == 0, listed.stderr
    summaries = [report.load_summary(run) for run in runs]
    text = ANSI.sub("", listed.stdout)
    assert "…" not in text
    for summary in summaries:
        assert summary.report_id in text
        assert f"{summary.throughput_rps:,.1f}" in text
        assert f"{summary.judged.value_ms('p99'):.1f}" in text
    shown = amlc("report", "show", str(runs[1]), env=env)
    assert shown.returncode == 0, shown.stderr
    text = ANSI.sub("", shown.stdout)
    assert "…" not in text
    open_run = summaries[1]
    assert open_run.corrected is not None
    for value in (open_run.latency.value_ms("p99"), open_run.corrected.value_ms("p99"),
                  open_run.corrected.max_ms):
        assert f"{value:,.3f}" in text, value
    assert str(runs[1]) in text
    compared = amlc("report", "compare", str(runs[0]), str(runs[1]), env=env)
    assert compared.returncode == 0, compared.stderr
    text = ANSI.sub("", compared.stdout)
    assert "…" not in text
    assert runs[0].name in text and runs[1].name in text
    for summary in summaries:
        assert f"{summary.latency.value_ms('p99'):,.3f}" in text


@pytest.mark.parametrize("env", LAYOUTS, ids=["pipe-80", "pipe-40", "terminal-40"])
def test_swagger_tables_keep_every_route_and_column_whole(amlc, env) -> None:
    bank = str(Path(__file__).parent / "fixtures" / "corpus" / "swagger" / "005-Aduzona.json")
    data = amlc("swagger", "show", bank, "--json").json()
    shown = amlc("swagger", "show", bank, env=env)
    assert shown.returncode == 0, shown.stderr
    text = ANSI.sub("", shown.stdout)
    names = [column["name"] for column in data["columns"]]
    assert len(names) == 20
    for name in names:
        assert re.search(rf"(^|[\s│:]){re.escape(name)}([\s│:;]|$)", text, re.M), name
    for route in data["routes"]:
        assert route["summary"] in text  # whole, on one line
