"""``amlc report show | compare | list``: read stored benchmark runs (never imports Locust)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from aml_client.bench import render, report, slo
from aml_client.cli import output
from aml_client.errors import ConfigError, InputError

_ROOT_HELP = "Directory holding the reports."
_VERDICT_STYLE = {"better": "green", "worse": "red", "same": "dim", "n/a": ""}

#: Exit code of a run that misses an objective (shared with ``amlc bench``).
EXIT_SLO_MISSED = 5


def _resolve(directory: Path | None, root: Path) -> Path:
    if directory is not None:
        return directory
    latest = report.latest_report(root)
    if latest is None:
        raise InputError("no benchmark report yet; run `amlc bench` first", path=str(root))
    return latest


def _kv_table(rows: list[tuple[str, str]], title: str | None = None) -> Table:
    table = Table(title=title, show_header=False, title_justify="left", box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    for label, value in rows:
        table.add_row(label, value)
    return table


def _grid(header: list[str], rows: list[list[str]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(header[0], style="bold")
    for name in header[1:]:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def print_summary(summary: dict[str, Any], report_dir: str | None = None) -> None:
    """The final tables of a run: overview, latency percentiles, and ab's "served within" table.

    Shared by ``amlc bench`` (at the end of a run) and ``amlc report show``.
    """
    out = output.stdout
    out.print(
        f"[bold]Benchmark of {summary.get('endpoint', '-')}[/] — {render.describe_load(summary)}"
    )
    out.print(_kv_table(render.overview_rows(summary)))
    out.print()
    header, rows = render.latency_table(summary)
    out.print(_grid(header, rows, "Latency (ms)"))
    title, header, rows = render.ab_table(summary)
    out.print(_grid(header, rows, title))
    if summary.get("corrected"):
        out.print(
            "[dim]corrected: intended start -> reply (what a client on the schedule sees); "
            "uncorrected: actual send -> reply (hides endpoint stalls).[/]"
        )
    locust = summary.get("locust") or {}
    if locust.get("num_requests"):
        out.print(
            f"[dim]Locust's own (rounded, approximate): median {locust.get('median_ms')} ms, "
            f"p99 {locust.get('p99_ms')} ms, max {locust.get('max_ms', 0):.1f} ms.[/]"
        )
    out.print(f"[dim]{summary.get('percentile_definition', '')}[/]")
    for warning in summary.get("warnings") or []:
        output.console.print(f"[yellow]warning:[/] {warning}")
    directory = report_dir or summary.get("report_dir")
    if directory:
        output.console.print(f"report: {directory}")


def _parse_slos(texts: list[str] | None) -> list[slo.Objective]:
    try:
        return slo.parse_slos(texts or [])
    except ValueError as exc:
        raise ConfigError(f"--slo {exc}") from exc


def _check_slos(summary: dict[str, Any], objectives: list[slo.Objective]) -> bool:
    outcomes = slo.evaluate(summary, objectives)
    for outcome in outcomes:
        if outcome.passed:
            output.console.print(Text(outcome.message, style="green"))
        else:
            output.error(f"objective missed: {outcome.message}")
    return all(outcome.passed for outcome in outcomes)


def show(
    directory: Annotated[
        Path | None, typer.Argument(help="Report directory (default: the latest under --root).")
    ] = None,
    root: Annotated[Path, typer.Option(help=_ROOT_HELP)] = Path("reports"),
    as_json: Annotated[bool, typer.Option("--json", help="Print summary.json to stdout.")] = False,
    objectives: Annotated[
        list[str] | None,
        typer.Option("--slo", help="Check an objective, e.g. 'p99<=200ms' (repeatable); "
                     "exit 5 when one is missed."),
    ] = None,
) -> None:
    """Print a stored benchmark run: summary, latency percentiles, ab-style table."""
    parsed = _parse_slos(objectives)  # a bad objective fails before anything is printed
    summary = report.load_summary(_resolve(directory, root))
    if as_json:
        output.print_json(summary)
    else:
        print_summary(summary)
    if parsed and not _check_slos(summary, parsed):
        raise typer.Exit(EXIT_SLO_MISSED)


def _fmt_value(value: Any, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return render.fmt_ms(value)
    if isinstance(value, float):
        return f"{value:,.3f}" if unit in {"%", "s"} else f"{value:,.2f}"
    return f"{value:,}"


def _change(row: dict[str, Any]) -> tuple[Text, Text]:
    style = _VERDICT_STYLE.get(row.get("verdict", "n/a"), "")
    if row.get("change") is None:
        return Text("-"), Text("-")
    sign = "+" if row["change"] > 0 else ""
    change = Text(f"{sign}{_fmt_value(row['change'], row['unit'])}", style=style)
    pct = row.get("change_pct")
    pct_text = Text("-" if pct is None else f"{'+' if pct > 0 else ''}{pct:.1f} %", style=style)
    return change, pct_text


def compare(
    a: Annotated[Path, typer.Argument(help="Baseline report directory (A).")],
    b: Annotated[Path, typer.Argument(help="Report directory to compare with it (B).")],
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Two runs side by side with the change in each percentile (green better, red worse)."""
    result = report.compare(report.load_summary(a), report.load_summary(b))
    if as_json:
        output.print_json(result)
        return
    out = output.stdout
    out.print(f"[bold]A[/] {result['a']['report_id']}  ({result['a']['endpoint']}, "
              f"{result['a']['mode']})")
    out.print(f"[bold]B[/] {result['b']['report_id']}  ({result['b']['endpoint']}, "
              f"{result['b']['mode']})")
    for section in result["sections"]:
        table = Table(title=section["title"], title_justify="left")
        for name in ("", "A", "B", "change", "change %"):
            table.add_column(name, justify="left" if not name else "right",
                             style="bold" if not name else None)
        for row in section["rows"]:
            unit = f" ({row['unit']})" if row["unit"] else ""
            table.add_row(f"{row['metric']}{unit}", _fmt_value(row["a"], row["unit"]),
                          _fmt_value(row["b"], row["unit"]), *_change(row))
        out.print(table)
    for note in result["notes"]:
        out.print(f"[yellow]note:[/] {note}")


def list_(
    root: Annotated[Path, typer.Argument(help=_ROOT_HELP)] = Path("reports"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """The stored runs under ROOT, oldest first."""
    runs = report.list_reports(root)
    if as_json:
        output.print_json([
            {
                "report_dir": s["report_dir"], "endpoint": s.get("endpoint"),
                "mode": s.get("mode"), "started_at": s.get("started_at"),
                "requests": s.get("requests"), "throughput_rps": s.get("throughput_rps"),
                "error_rate": s.get("error_rate"),
                "p50_ms": _judged(s).get("p50_ms"), "p99_ms": _judged(s).get("p99_ms"),
                "max_ms": _judged(s).get("max_ms"),
            }
            for s in runs
        ])
        return
    if not runs:
        output.note(f"no reports under {root}")
        return
    table = Table(title=f"Benchmark reports in {root} (latency in ms)", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    table.add_column("report", no_wrap=True, overflow="fold")
    table.add_column("load", no_wrap=True)
    for name in ("reqs", "req/s", "errors", "p50", "p99", "max"):
        table.add_column(name, justify="right", no_wrap=True)
    for s in runs:
        judged = _judged(s)
        rate = s.get("error_rate")
        table.add_row(
            s["report_id"], render.describe_load(s, short=True), f"{s.get('requests', 0):,}",
            "-" if s.get("throughput_rps") is None else f"{s['throughput_rps']:,.1f}",
            "-" if rate is None else f"{rate * 100:.2f}%",
            *(_short_ms(judged.get(f"{name}_ms")) for name in ("p50", "p99", "max")),
        )
    output.stdout.print(table)


def _short_ms(value: Any) -> str:
    return "-" if value is None else f"{value:.1f}"


def _judged(summary: dict[str, Any]) -> dict[str, Any]:
    return summary.get("corrected") or summary.get("latency") or {}


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Show, compare and list stored benchmark reports.",
                        no_args_is_help=True)
    group.command("show")(show)
    group.command("compare")(compare)
    group.command("list")(list_)
    app.add_typer(group, name="report")
