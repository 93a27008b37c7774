"""``amlc report show | compare | list | merge``: read stored benchmark runs (never imports
Locust)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich import box
from rich.table import Table
from rich.text import Text

from aml_client.cli import checks, output
from aml_client.errors import ConfigError, InputError

if TYPE_CHECKING:
    from aml_client.bench.report import slo
    from aml_client.bench.report.compare import Comparison
    from aml_client.bench.report.summary import BenchSummary

# The bench modules (pydantic models of the summary) load when a report command runs, not with
# every `amlc` command.

_ROOT_HELP = "Directory holding the reports."
_VERDICT_STYLE = {"better": "green", "worse": "red", "same": "dim", "n/a": ""}

#: Exit code of a run that misses an objective (shared with ``amlc bench``).
EXIT_SLO_MISSED = 5


def _resolve(directory: Path | None, root: Path) -> Path:
    from aml_client.bench.report import directory as report

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
        style = "bold red" if value.startswith("INVALID") else None
        table.add_row(label, Text(value, style=style or ""))
    return table


def _grid(header: list[str], rows: list[list[str]], title: str) -> Table:
    table = Table(title=title, title_justify="left")
    table.add_column(header[0], style="bold")
    for name in header[1:]:
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(*row)
    return table


def print_summary(summary: BenchSummary, report_dir: str | None = None) -> None:
    """The final tables of a run: overview, capacity, latency percentiles, ab's "served within"
    table, where the time goes, deployments, transfer.

    Shared by ``amlc bench`` (at the end of a run) and ``amlc report show``.
    """
    from aml_client.bench.report import render

    out = output.stdout
    out.print(f"[bold]Benchmark of {summary.endpoint}[/] — {render.describe_load(summary)}")
    output.table(_kv_table(render.overview_rows(summary)))
    out.print()
    if summary.capacity is not None:
        output.table(_kv_table(render.capacity_rows(summary), "Capacity"))
        header, rows = render.capacity_table(summary)
        output.table(_grid(header, rows, "Steps (req/s; latency in ms)"))
        out.print("[dim]The tables below are those of the step at capacity.[/]")
    if summary.blue_green is not None:
        _print_blue_green(summary)
    header, rows = render.latency_table(summary)
    output.table(_grid(header, rows, "Latency (ms)"))
    title, header, rows = render.ab_table(summary)
    output.table(_grid(header, rows, title))
    if summary.corrected is not None:
        out.print(
            "[dim]corrected: intended start -> reply (what a client on the schedule sees); "
            "uncorrected: actual send -> reply (hides endpoint stalls).[/]"
        )
    if summary.phases:
        title, header, rows = render.phase_table(summary)
        output.table(_grid(header, rows, title))
    if summary.deployments:
        header, rows = render.deployment_table(summary)
        output.table(_grid(header, rows, "Deployments (azureml-model-deployment)"))
    transfer = render.transfer_rows(summary)
    if transfer:
        output.table(_kv_table(transfer, "Transfer"))
    out.print(f"[dim]{summary.percentile_definition}[/]")
    if not summary.valid:
        output.console.print(Text(render.validity_line(summary), style="bold red"))
    for warning in summary.warnings:
        output.console.print(f"[yellow]warning:[/] {warning}")
    directory = report_dir or summary.report_dir
    if directory:
        output.result(f"report: {directory}", markup=False)


def _print_blue_green(summary: BenchSummary) -> None:
    """The deployments of a blue/green run side by side, the verdicts and the agreement."""
    from aml_client.bench.report import render

    section = summary.blue_green
    assert section is not None
    out = output.stdout
    header, rows = render.blue_green_capacity_table(summary)
    if rows:
        output.table(_grid(header, rows, "Capacity by deployment"))
        out.print("[dim]The side-by-side figures are each deployment's step at capacity; the "
                  "tables after them merge those steps.[/]")
    header, rows = render.blue_green_table(summary)
    output.table(_grid(header, rows, f"Deployments side by side (baseline {section.baseline})"))
    for verdict in section.verdicts:
        style = "" if verdict.significant is None else "bold" if verdict.significant else "dim"
        out.print(Text(verdict.text, style=style))
    agreement = render.agreement_line(summary)
    if agreement:
        out.print(Text(agreement))
        for example in section.agreement.examples if section.agreement else []:
            out.print(Text(f"  {example}", style="dim"))
    for run in section.runs:
        if run.failures.total:
            out.print(Text(f"{run.name} failures: {render.failures_text(run.failures)}"))
    out.print(f"[dim]{section.method}[/]" if section.method else "")


def _parse_slos(texts: list[str] | None) -> list[slo.Objective]:
    from aml_client.bench.report import slo

    try:
        return slo.parse_slos(texts or [])
    except ValueError as exc:
        raise ConfigError(f"--slo {exc}") from exc


def check_objectives(
    summary: BenchSummary,
    objectives: list[slo.Objective],
    *,
    allow_invalid: bool = False,
    quiet: bool = False,
    junit: Path | None = None,
    suite: str = "amlc bench",
) -> bool:
    """Print each objective's outcome (misses as errors); True when all hold.

    Objectives that set no error rate get the implied ``error_rate<=1%``. An INVALID run fails
    the check (the load generator, not the endpoint, may have set the numbers) unless
    ``allow_invalid``. ``junit`` writes one test case per objective (and one
    for the run's validity). In a blue/green run every objective applies to each deployment
    (one case per deployment and objective).
    """
    from aml_client.bench.report import render, slo
    from aml_client.bench.report.junit import Case, write_junit

    objectives = slo.with_implied(objectives)  # failures are never a pass
    section = summary.blue_green
    judged: list[tuple[str, slo.Measured]] = (
        [(f"{run.name}: ", run) for run in section.runs] if section is not None
        else [("", summary)]
    )
    cases = []
    ok = True
    for prefix, measured in judged:
        for outcome in slo.evaluate(measured, objectives):
            message = prefix + outcome.message
            if outcome.passed:
                if not quiet:
                    output.stdout.print(Text(message, style="green"))
                cases.append(Case(prefix + str(outcome.objective)))
            else:
                ok = False
                output.error(f"objective missed: {message}")
                cases.append(Case(prefix + str(outcome.objective), failure=message))
    if objectives and not summary.valid:
        reason = render.validity_line(summary)
        if allow_invalid:
            output.console.print(f"[yellow]warning:[/] {reason} (--allow-invalid)")
            cases.append(Case("valid run", output=f"{reason} (allowed)"))
        else:
            output.error(f"the run is {reason} (--allow-invalid to judge it anyway)")
            cases.append(Case("valid run", failure=reason))
            ok = False
    elif objectives:
        cases.append(Case("valid run"))
    if junit is not None:
        write_junit(junit, suite, cases, time_s=summary.duration_s)
    return ok


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
    allow_invalid: Annotated[
        bool, typer.Option("--allow-invalid", help="Judge objectives on an INVALID run too.")
    ] = False,
) -> None:
    """Print a stored benchmark run: summary, latency percentiles, ab-style table."""
    from aml_client.bench.report import directory as report

    parsed = _parse_slos(objectives)  # a bad objective fails before anything is printed
    summary = report.load_summary(_resolve(directory, root))
    if as_json:
        output.print_json(summary.to_data())
    else:
        print_summary(summary)
    if parsed and not check_objectives(summary, parsed, allow_invalid=allow_invalid):
        raise typer.Exit(EXIT_SLO_MISSED)


def _fmt_value(value: float | None, unit: str) -> str:
    from aml_client.bench.report import render

    if value is None:
        return "-"
    if unit == "ms":
        return render.fmt_ms(value)
    if unit in {"%", "s"}:
        return f"{value:,.3f}"
    if unit == "":
        return f"{value:,.0f}"
    return f"{value:,.2f}"


def _change(row: object) -> tuple[Text, Text, Text]:
    from aml_client.bench.report.compare import Row

    assert isinstance(row, Row)
    style = _VERDICT_STYLE.get(row.verdict, "")
    if row.change is None:
        return Text("-"), Text("-"), Text("-")
    sign = "+" if row.change > 0 else ""
    change = Text(f"{sign}{_fmt_value(row.change, row.unit)}", style=style)
    pct = row.change_pct
    pct_text = Text("-" if pct is None else f"{'+' if pct > 0 else ''}{pct:.1f} %", style=style)
    ci = Text("-")
    if row.ci_low_pct is not None and row.ci_high_pct is not None:
        ci = Text(f"{row.ci_low_pct:+.1f} .. {row.ci_high_pct:+.1f} %", style=style)
    return change, pct_text, ci


def _sides(paths: list[str]) -> tuple[list[Path], list[Path]]:
    """``A B``, or ``A1 A2 … --vs B1 B2 …``: the report or group directories of each side."""
    unknown = [p for p in paths if p.startswith("-") and p != "--vs"]
    if unknown:
        raise ConfigError(f"no such option: {unknown[0]}")
    if "--vs" in paths:
        cut = paths.index("--vs")
        a, b = paths[:cut], paths[cut + 1:]
        if "--vs" in b or not a or not b:
            raise ConfigError("give A's runs, then --vs and B's runs, e.g. "
                              "`amlc report compare A1 A2 A3 --vs B1 B2 B3`")
    elif len(paths) == 2:
        a, b = paths[:1], paths[1:]
    else:
        raise ConfigError("give two runs (A B), or each side's runs: A1 A2 … --vs B1 B2 …")
    return [Path(p) for p in a], [Path(p) for p in b]


def _load_side(paths: list[Path]) -> tuple[str | None, list[BenchSummary]]:
    """A side's runs (each path a report or a group directory) and its label (a lone group's
    id)."""
    from aml_client.bench.report import directory as report

    label: str | None = None
    runs: list[BenchSummary] = []
    for path in paths:
        group, loaded = report.load_runs(path)
        runs += loaded
        label = group if len(paths) == 1 else None
    return label, runs


def _parse_noise(text: str | None) -> float | None:
    if text is None:
        return None
    number = text.strip().removesuffix("%").strip()
    try:
        value = float(number)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 100 or not text.strip().endswith("%"):
        raise ConfigError(f"--run-noise {text!r}: give a percentage from 0% to 100%, e.g. 8%")
    return value


def compare(
    paths: Annotated[
        list[str],
        typer.Argument(
            metavar="A [B] | A1 A2 … --vs B1 B2 …",
            help="Baseline (A) then B: report or group directories (amlc bench --repeat N "
            "writes a group). Several runs per side: A's, then --vs and B's.",
            show_default=False,
        ),
    ],
    fail_on: Annotated[
        list[str] | None,
        typer.Option("--fail-on", help="Gate, e.g. 'p99>+10%' or 'throughput<-5%' "
                     "(repeatable): exit 5 on a significant regression past it."),
    ] = None,
    junit: Annotated[
        Path | None, typer.Option("--junit", help="Write JUnit XML (one test case per gate).")
    ] = None,
    run_noise: Annotated[
        str | None,
        typer.Option("--run-noise", metavar="PCT",
                     help="Prior run-to-run spread of every figure, e.g. 8% (default: one per "
                     "figure, measured on a busy 2-core machine); 0% trusts the within-run "
                     "noise alone."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the comparison as JSON.")] = False,
) -> None:
    """Runs side by side (B against A): the change in each figure with a 95 % confidence
    interval that counts the noise between runs (a hierarchical bootstrap over the runs and
    their measurement intervals), and a verdict per --fail-on gate.

    With one run per side the noise between runs is unknown and a prior is assumed; give
    several runs per side (amlc bench --repeat 3) to measure it.
    """
    from aml_client.bench.report.compare import compare as compare_runs
    from aml_client.bench.report.compare import parse_gate
    from aml_client.bench.report.junit import Case, write_junit

    side_a, side_b = _sides(paths)
    try:
        gates = [parse_gate(text) for text in fail_on or []]
    except ValueError as exc:
        raise ConfigError(f"--fail-on {exc}") from exc
    noise = _parse_noise(run_noise)
    if junit is not None:
        checks.writable_file(junit, "--junit", example="compare.xml")
    label_a, runs_a = _load_side(side_a)
    label_b, runs_b = _load_side(side_b)
    result = compare_runs(runs_a, runs_b, gates, run_noise_pct=noise, labels=(label_a, label_b))
    if junit is not None:
        write_junit(junit, "amlc report compare",
                    [Case(g.gate, failure=g.message if g.failed else None, output=g.message)
                     for g in result.gates])
    if as_json:
        output.print_json(result.model_dump(mode="json"))
    else:
        _print_comparison(result)
    for gate in result.gates:
        if gate.failed:
            output.error(gate.message)
        elif not as_json:
            output.stdout.print(Text(gate.message, style="green"))
    if result.failed:
        raise typer.Exit(EXIT_SLO_MISSED)


def _print_comparison(result: Comparison) -> None:
    """The two sides, a table per section of figures, the method and its notes."""
    out = output.stdout
    for name, side in (("A", result.a), ("B", result.b)):
        runs = f", {output.plural(side.runs, 'run')}" if side.runs > 1 else ""
        out.print(Text.assemble((name, "bold"), f" {side.report_id}  ({side.endpoint}, "
                                f"{side.mode}{runs})"))
        if side.runs > 1:
            for run_id in side.report_ids:
                out.print(Text(f"  {run_id}", style="dim"))
    for section in result.sections:
        table = Table(title=section.title, title_justify="left")
        for name in ("", "A", "B", "change", "change %", "95 % CI"):
            table.add_column(name, justify="left" if not name else "right",
                             style="bold" if not name else None)
        for row in section.rows:
            unit = f" ({row.unit})" if row.unit else ""
            table.add_row(f"{row.metric}{unit}", _fmt_value(row.a, row.unit),
                          _fmt_value(row.b, row.unit), *_change(row))
        output.table(table)
    out.print(Text(f"{result.method}; 'same' when the interval contains 0.", style="dim"))
    for note in result.notes:
        out.print(Text.assemble(("note:", "yellow"), f" {note}"))


def list_(
    root: Annotated[Path, typer.Argument(help=_ROOT_HELP)] = Path("reports"),
    as_json: Annotated[bool, typer.Option("--json", help="Print the list as JSON.")] = False,
) -> None:
    """The stored runs under ROOT, oldest first."""
    from aml_client.bench.report import directory as report
    from aml_client.bench.report import render

    if root.exists() and not root.is_dir():
        raise InputError("not a directory of reports", path=str(root))
    runs = report.list_reports(root)
    if as_json:
        output.print_json([
            {
                "report_dir": s.report_dir, "endpoint": s.endpoint, "mode": s.mode,
                "started_at": s.started_at, "requests": s.requests,
                "throughput_rps": s.throughput_rps, "error_rate": s.error_rate,
                "valid": s.validity.valid,
                "p50_ms": s.judged.value_ms("p50"), "p99_ms": s.judged.value_ms("p99"),
                "max_ms": s.judged.value_ms("max"),
                "capacity_rps": s.capacity.max_rate_rps if s.capacity else None,
            }
            for s in runs
        ])
        return
    if not runs:
        output.result(f"no reports under {root}", markup=False)
        return
    table = Table(title=f"Benchmark reports in {root} (latency in ms)", title_justify="left",
                  box=box.SIMPLE_HEAD, padding=(0, 1, 0, 0), pad_edge=False, show_edge=False)
    table.add_column("report", no_wrap=True, overflow="fold")
    table.add_column("load", no_wrap=True)
    for name in ("reqs", "req/s", "errors", "p50", "p99", "max"):
        table.add_column(name, justify="right", no_wrap=True)
    table.add_column("run", no_wrap=True)
    for s in runs:
        judged = s.judged
        rate = s.error_rate
        table.add_row(
            s.report_id or "-", render.describe_load(s, short=True), f"{s.requests:,}",
            "-" if s.throughput_rps is None else f"{s.throughput_rps:,.1f}",
            "-" if rate is None else f"{rate * 100:.2f}%",
            *(_short_ms(judged.value_ms(name)) for name in ("p50", "p99", "max")),
            "?" if s.validity.valid is None else "ok" if s.validity.valid else "INVALID",
        )
    output.table(table)


def _short_ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def merge(
    sources: Annotated[
        list[Path],
        typer.Argument(help="Results directories (or folders of them), or saved logs holding "
                       "printed results (kubectl logs, an engine's log)."),
    ],
    out: Annotated[
        Path, typer.Option("--out", "-o", help="Where the merged report directory goes.")
    ] = Path("reports"),
) -> None:
    """Merge load processes' results exactly: counts, max and percentiles equal one histogram
    over every request. Says which engines were merged and whether their windows overlap."""
    from aml_client.bench.report.merge import load_sources, merge_results, write_merged_report

    merged = merge_results(load_sources(list(sources)))
    directory, summary = write_merged_report(merged, out)
    for line in merged.lines():
        output.console.print(line, markup=False)
    print_summary(summary, str(directory))


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Show, compare and list stored benchmark reports.",
                        no_args_is_help=True)
    group.command("show")(show)
    group.command(
        "compare",
        # ``--vs`` separates the sides among the arguments, in order.
        context_settings={"ignore_unknown_options": True},
    )(compare)
    group.command("list")(list_)
    group.command("merge")(merge)
    app.add_typer(group, name="report")
