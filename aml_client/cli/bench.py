"""``amlc bench``: latency benchmarks on Locust + HdrHistogram, headless, in the web UI, or spread
over processes and machines.

This command never imports Locust (it patches the standard library with gevent when imported):
it reads its options, has the library (:mod:`aml_client.benchmark`) build and validate the plan,
the target and the load process's configuration, follows that process (``python -m
aml_client.bench.load.runner``) and renders what it reports.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich import box
from rich.live import Live
from rich.table import Table
from rich.text import Text

from aml_client import benchmark as lib
from aml_client.benchmark import DEFAULT_DURATION, DEFAULT_MASTER_PORT, BenchError
from aml_client.cli import checks, output
from aml_client.errors import ConfigError

if TYPE_CHECKING:
    from aml_client.bench.plan import BenchPlan
    from aml_client.bench.protocol import LoadConfig
    from aml_client.bench.report.slo import Objective
    from aml_client.bench.report.summary import BenchSummary, Capacity
    from aml_client.bench.target import RunTarget

__all__ = ["BenchError", "bench", "register"]

#: Exit code of a run that misses an objective.
EXIT_SLO_MISSED = 5
#: Exit code of a run in which requests failed, when nothing says failures are acceptable.
EXIT_REQUESTS_FAILED = 4
#: Exit code of a run whose result is partial: a load process (worker) was lost during it.
EXIT_PARTIAL = 6


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt

def _ms(us: float) -> str:
    return f"{us / 1000:,.1f} ms"


def _progress_table(event: dict[str, Any], total: str) -> Table:
    table = Table(box=box.SIMPLE, show_edge=False, pad_edge=False)
    label = " (corrected)" if event.get("measure") == "corrected" else ""
    for name in (
        "elapsed",
        "in flight" if "in_flight" in event else "users",
        "requests",
        "req/s",
        "failures",
        f"p50{label}",
        f"p99{label}",
        f"max{label}",
    ):
        table.add_column(name, justify="right")
    table.add_row(
        f"{event.get('elapsed_s', 0):.0f} s",
        str(event.get("in_flight", event.get("users", 0))),
        f"{event.get('requests', 0):,}{total}",
        f"{event.get('rps', 0):,.1f}",
        f"{event.get('failures', 0):,}",
        _ms(event.get("p50_us", 0)),
        _ms(event.get("p99_us", 0)),
        _ms(event.get("max_us", 0)),
    )
    return table


#: Seconds between two progress lines on a non-terminal (a CI log): the first comes at once.
PROGRESS_EVERY_S = 5.0


def _progress_line(event: dict[str, Any], total: str) -> str:
    """Progress as one plain line: what a CI log keeps of the live table."""
    label = " (corrected)" if event.get("measure") == "corrected" else ""
    busy = ("in flight", event["in_flight"]) if "in_flight" in event else (
        "users", event.get("users", 0))
    return (f"progress: {event.get('elapsed_s', 0):.0f} s, "
            f"{event.get('requests', 0):,}{total} requests, {event.get('rps', 0):,.1f} req/s, "
            f"{event.get('failures', 0):,} failures, {busy[1]} {busy[0]}, "
            f"p50{label} {_ms(event.get('p50_us', 0))}, p99{label} {_ms(event.get('p99_us', 0))}, "
            f"max{label} {_ms(event.get('max_us', 0))}")


def _live_view(event: dict[str, Any], total: str) -> Table | Text:
    """The live table, or its plain line on a terminal too narrow for the table."""
    table = _progress_table(event, total)
    if output.table_width(table, output.console) <= output.console.width:
        return table
    return Text(_progress_line(event, total))


def print_summary(summary: BenchSummary, report_dir: str | None) -> None:
    """The final tables, exactly as ``amlc report show`` prints them."""
    from aml_client.cli.report import print_summary as show

    show(summary, report_dir)

def _show_log_line(line: str) -> None:
    """The load process's stderr: amlc's own warnings and errors as one line each; everything
    else (Locust's and gevent's log lines, tracebacks) only with AMLC_DEBUG=1. The last lines
    are kept either way and quoted if the process fails."""
    if os.environ.get("AMLC_DEBUG") == "1":
        output.console.print(Text(line, style="dim"))
        return
    own = lib.own_log_line(line)
    if own is not None:
        level, message = own
        (output.warning if level == "WARNING" else output.error)(message)


class _Follower:
    """What a followed run shows of each event, and what it keeps: results and the error."""

    def __init__(self, *, live: bool, total: str, web: bool, lines: bool,
                 clock: Callable[[], float], observer: Any) -> None:
        self.total, self.web, self.lines, self.clock, self.observer = (
            total, web, lines, clock, observer)
        self.results: list[dict[str, Any]] = []
        self.error: str | None = None
        self.error_code = BenchError.exit_code
        self.last_line: float | None = None
        self.display: Live | None = None
        if live:
            self.display = Live(
                Text("starting load…"), console=output.console, transient=True,
                refresh_per_second=4,
            )
            self.display.start()

    def progress(self, event: dict[str, Any]) -> None:
        if self.display is not None:
            self.display.update(_live_view(event, self.total))
        elif self.lines:
            now = self.clock()
            if self.last_line is None or now - self.last_line >= PROGRESS_EVERY_S:
                self.last_line = now
                output.console.print(_progress_line(event, self.total), markup=False,
                                     soft_wrap=True)

    def show(self, event: dict[str, Any]) -> None:
        kind = event.get("type")
        if self.observer is not None:
            self.observer(event)
        if kind == "progress":
            self.progress(event)
        elif kind == "status":
            output.console.print(f"[dim]{event.get('message', '')}[/]")
        elif kind == "web":
            # Each address whole on its own line, so a terminal opens it in one click; the
            # secret in it is this run's own and dies with it.
            output.result("Locust web UI (Ctrl-C to quit):")
            for label, url in (("", event["url"]), ("HDR percentiles: ", event["hdr_url"])):
                output.result(f"  {label}{url}", markup=False)
        elif kind == "result":
            self.results.append(event)
            if self.web:
                output.result(f"test stopped — report: {event.get('report_dir')}", markup=False)
        elif kind == "error":
            self.error = str(event.get("message"))
            self.error_code = int(event.get("exit_code") or BenchError.exit_code)
        elif kind == "output":
            output.console.print(event.get("line", ""), markup=False)

    def stop(self) -> None:
        if self.display is not None:
            self.display.stop()


def _follow(
    proc: Any, *, live: bool, total: str, web: bool = False, lines: bool = False,
    clock: Callable[[], float] = time.monotonic, observer: Any = None,
) -> tuple[list[dict[str, Any]], str | None, bool]:
    """Read the load process's events until it exits: (results, error message, interrupted).

    Progress goes to a live table on a terminal (``live``), else, with ``lines``, to a plain
    line on stderr every :data:`PROGRESS_EVERY_S` seconds. ``observer`` (the live metrics)
    sees every event first. The first Ctrl-C asks the load process to stop (it still
    reports), the second abandons it.
    """
    follower = _Follower(live=live, total=total, web=web, lines=lines, clock=clock,
                         observer=observer)
    interrupted = 0
    try:
        events = proc.events()
        while True:
            try:
                event = next(events)
            except StopIteration:
                break
            except KeyboardInterrupt:
                interrupted += 1
                if interrupted > 1:
                    proc.kill()
                    break
                output.console.print("stopping… (Ctrl-C again to abandon the run)")
                proc.interrupt()
                events = proc.events()
                continue
            follower.show(event)
    finally:
        follower.stop()
    code = proc.wait()
    error = follower.error
    if error is None and code != 0 and not interrupted:
        tail = "; ".join(list(proc.log_tail)[-3:])
        error = f"the load process exited with code {code}" + (f": {tail}" if tail else "")
    if error is not None and follower.error_code != BenchError.exit_code:
        raise BenchError(error, exit_code=follower.error_code)
    return follower.results, error, interrupted > 0


def bench(
    endpoint: Annotated[
        str | None,
        typer.Option("--endpoint", "-e", help="Profile name or 'local' (default: as amlc score)."),
    ] = None,
    payload: Annotated[
        Path | None,
        typer.Option(
            "--payload",
            "-p",
            help="Rows or a payload, as amlc score takes them (JSON, JSONL, CSV, '-'); rows "
            "rotate across requests. Default: the swagger's example.",
        ),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding",
            metavar="NAME",
            help="The payload's text encoding when it has no byte-order mark (default UTF-8).",
        ),
    ] = None,
    swagger: Annotated[
        Path | None, typer.Option("--swagger", help="Swagger file (default: the endpoint's).")
    ] = None,
    rows_per_request: Annotated[
        int, typer.Option("--rows-per-request", min=1, help="Rows in each request body.")
    ] = 1,
    users: Annotated[
        int | None,
        typer.Option(
            "--users",
            "-u",
            min=1,
            help="Concurrent users (closed model; default 10). With --rate: as --max-senders.",
        ),
    ] = None,
    spawn_rate: Annotated[
        float | None,
        typer.Option(
            "--spawn-rate", "-r", callback=checks.positive_number, help="Users started per second."
        ),
    ] = None,
    duration: Annotated[
        str | None,
        typer.Option(
            "--duration",
            "-t",
            help=f"Run time, e.g. 60s, 2m (default {DEFAULT_DURATION} without --requests).",
        ),
    ] = None,
    requests: Annotated[
        int | None, typer.Option("--requests", "-n", min=1, help="Stop after N requests.")
    ] = None,
    rate: Annotated[
        float | None,
        typer.Option(
            "--rate",
            help="Open model: requests per second on a schedule; latency is "
            "also measured from each request's intended start.",
        ),
    ] = None,
    arrival: Annotated[
        str, typer.Option("--arrival", help="Open-model arrivals: constant or poisson.")
    ] = "constant",
    max_senders: Annotated[
        int | None,
        typer.Option(
            "--max-senders",
            min=1,
            help="Open model: most requests in flight at once (default: rate x 2 s, at least "
            "50). Senders start on demand; a run that needs more is INVALID.",
        ),
    ] = None,
    find_capacity: Annotated[
        bool,
        typer.Option(
            "--find-capacity",
            help="Search the highest rate at which every --slo holds (open-model steps, "
            "doubling then bisection). Exit 0 when found, 5 when the lowest rate misses.",
        ),
    ] = False,
    start_rate: Annotated[
        float, typer.Option("--start-rate", help="--find-capacity: first rate (req/s).")
    ] = 10.0,
    max_rate: Annotated[
        float, typer.Option("--max-rate", help="--find-capacity: highest rate tried (req/s).")
    ] = 10_000.0,
    step_duration: Annotated[
        str,
        typer.Option(
            "--step-duration",
            help="--find-capacity: least measured time per step (longer when the objectives' "
            "percentiles need more samples).",
        ),
    ] = "20s",
    warmup: Annotated[
        str, typer.Option("--warmup", help="--find-capacity: discarded warm-up per step.")
    ] = "2s",
    precision: Annotated[
        float,
        typer.Option("--precision", help="--find-capacity: stop when pass and fail rates are "
                     "within this fraction."),
    ] = 0.05,
    seed: Annotated[int, typer.Option("--seed", help="Seed of the poisson arrivals.")] = 1,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=0,
            help="Local load processes under a Locust master (0 or 1: a single process; "
            "a run that saturates its core says so).",
        ),
    ] = 1,
    timeout: Annotated[
        str,
        typer.Option(
            "--timeout",
            help="Per-request deadline: connecting, sending and reading the whole answer.",
        ),
    ] = "60s",
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            "-d",
            help="Send to this deployment of the endpoint (azureml-model-deployment).",
        ),
    ] = None,
    deployments: Annotated[
        str | None,
        typer.Option(
            "--deployments",
            metavar="A,B",
            help="Blue/green: the same bodies to each deployment in turn, under one load; "
            "per-deployment percentiles, prediction agreement and a verdict against the "
            "first. --slo applies to each; with --find-capacity, one search per deployment.",
        ),
    ] = None,
    insecure: Annotated[
        bool, typer.Option("--insecure", help="Do not verify TLS certificates.")
    ] = False,
    web: Annotated[bool, typer.Option("--web", help="Start Locust's web UI instead.")] = False,
    web_port: Annotated[
        int,
        typer.Option(
            "--web-port", min=1, max=65535, envvar="AMLC_WEB_PORT", help="Web UI port (127.0.0.1)."
        ),
    ] = 8089,
    master: Annotated[
        bool, typer.Option("--master", help="Be the master of workers on other machines.")
    ] = False,
    expect_workers: Annotated[
        int, typer.Option("--expect-workers", min=1, help="Workers a --master waits for.")
    ] = 1,
    master_bind: Annotated[
        str,
        typer.Option(
            "--master-bind", help="Interface a --master listens on (0.0.0.0 for other machines)."
        ),
    ] = "127.0.0.1",
    worker: Annotated[
        bool, typer.Option("--worker", help="Be a worker of a master on another machine.")
    ] = False,
    master_host: Annotated[
        str, typer.Option("--master-host", help="Master to connect to (--worker).")
    ] = "127.0.0.1",
    master_port: Annotated[
        int | None,
        typer.Option(
            "--master-port",
            min=1,
            max=65535,
            help="Master's port: --master listens on it, --worker connects to it (default "
            f"{DEFAULT_MASTER_PORT}); with --workers N the local master listens on it "
            "(default: any free port).",
        ),
    ] = None,
    report_dir: Annotated[
        Path, typer.Option("--report-dir", help="Where report directories go.")
    ] = Path("reports"),
    slo_texts: Annotated[
        list[str] | None,
        typer.Option(
            "--slo",
            help="Objective, e.g. 'p99<=200ms', 'error_rate<=1%' (repeatable); a miss exits 5.",
        ),
    ] = None,
    allow_invalid: Annotated[
        bool,
        typer.Option("--allow-invalid", help="Judge --slo on an INVALID run (generator behind)."),
    ] = False,
    allow_failures: Annotated[
        bool,
        typer.Option(
            "--allow-failures",
            help="Exit 0 even when requests failed (by default a run with any failed request "
            "exits 4, unless an --slo 'error_rate<=...' judges them).",
        ),
    ] = False,
    junit: Annotated[
        Path | None,
        typer.Option("--junit", help="Write JUnit XML: one test case per --slo, plus validity."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary JSON only.")] = False,
    metrics_port: Annotated[
        int | None,
        typer.Option("--metrics-port", min=0, max=65535,
                     help="Serve live metrics (Prometheus text) at http://HOST:PORT/metrics "
                     "while the run lasts (0: any free port)."),
    ] = None,
    metrics_host: Annotated[
        str, typer.Option("--metrics-host", help="Interface of --metrics-port.")
    ] = "127.0.0.1",
    otlp_endpoint: Annotated[
        str | None,
        typer.Option("--otlp-endpoint", metavar="URL",
                     help="Push the same live metrics with OpenTelemetry (OTLP/HTTP) to URL, "
                     "e.g. http://127.0.0.1:4318; headers from OTEL_EXPORTER_OTLP_HEADERS."),
    ] = None,
    metrics_linger: Annotated[
        str,
        typer.Option("--metrics-linger",
                     help="After the run, keep /metrics up until a scrape has read the final "
                     "values, at most this long (and give OTLP this long to take them)."),
    ] = "15s",
    repeat: Annotated[
        int,
        typer.Option(
            "--repeat",
            min=1,
            help="Run the same load N times, one after the other, and write a group of the N "
            "runs (amlc report compare takes it as one side, counting the noise between runs).",
        ),
    ] = 1,
) -> None:
    """Benchmark the endpoint's latency under load (Locust + HdrHistogram).

    Every latency is recorded to the microsecond; the report files go under --report-dir.

    Closed model, 20 users for a minute: amlc bench -u 20 -t 60s

    Open model, latency from each intended start: amlc bench --rate 50 -t 2m

    CI gate (exit 5 on a miss): amlc bench -n 10000 --slo 'p99<=200ms'

    Capacity under an objective: amlc bench --find-capacity --slo 'p99<=200ms'

    Blue/green, one run: amlc bench --deployments blue,green -t 60s

    Exit codes: 0 the run passed; 2 bad options or payload, or a named deployment the endpoint
    does not know (each is probed once before any load); 3 the credential was refused; 4 the
    endpoint cannot be reached, or requests failed during the run (unless --allow-failures or
    an --slo 'error_rate<=...'); 5 an objective was missed, or no capacity found; 6 a worker
    was lost (partial result).
    """
    spread = lib.Distribution(master=master, worker=worker, expect_workers=expect_workers,
                              master_bind=master_bind, master_host=master_host,
                              master_port=master_port)
    if repeat > 1 and (web or master or worker or find_capacity or junit is not None):
        raise ConfigError("--repeat runs headless runs of its own: drop --web, --master, "
                          "--worker, --find-capacity and --junit")
    lanes = lib.parse_deployments(deployments, deployment)
    objectives = lib.parse_objectives(slo_texts)
    timeout_s = lib.parse_timeout(timeout)
    capacity = None
    if find_capacity:
        search = lib.CapacityOptions(start_rate=start_rate, max_rate=max_rate,
                                     step_duration=step_duration, warmup=warmup,
                                     precision=precision)
        capacity = search.settings(
            objectives, slo_texts or [], rate=rate,
            conflicts=master or worker or web or duration is not None or requests is not None
            or workers > 1,
        )
        workers = 1
    plan = lib.plan_load(
        users=users, spawn_rate=spawn_rate, duration=duration, requests=requests, rate=rate,
        arrival=arrival, seed=seed,
        workers=spread.workers(workers),
        timeout_s=timeout_s, bounded=not web and not worker, max_senders=max_senders,
        capacity=capacity, deployments=lanes,
    )
    spread.check(plan)
    live_metrics = metrics_port is not None or otlp_endpoint is not None
    linger_s = _check_places(
        spread, plan, web_port=web_port if web else None, live_metrics=live_metrics,
        repeat=repeat, metrics_host=metrics_host, metrics_port=metrics_port,
        metrics_linger=metrics_linger, otlp_endpoint=otlp_endpoint, report_dir=report_dir,
        junit=junit,
    )
    target = lib.build_target(
        endpoint, payload, swagger=swagger, rows_per_request=rows_per_request, encoding=encoding,
        timeout_s=timeout_s, insecure=insecure, deployment=deployment, deployments=lanes,
        probe=not worker,  # a worker's master probed them
    )
    role, config = lib.load_config(target, plan, report_dir, distribution=spread,
                                   web_port=web_port if web else None, live_metrics=live_metrics)
    exporters = (_start_exporters(objectives, plan, deployment, metrics_host, metrics_port,
                                  otlp_endpoint) if live_metrics else None)
    _announce(target, plan, objectives, spread, as_json=as_json)
    live = not as_json and not web and role != "worker" and output.console.is_terminal
    total = f"/{plan.max_requests:,}" if plan.max_requests else ""
    started = time.monotonic()
    # A SIGTERM ends the run like Ctrl-C: the load process stops and still reports.
    signal.signal(signal.SIGTERM, _raise_interrupt)
    if repeat > 1:
        _repeat(repeat, role, config, target, live=live, total=total, as_json=as_json,
                objectives=objectives, allow_invalid=allow_invalid,
                allow_failures=allow_failures)
        return
    try:
        proc = lib.start_load(role, config, target, on_log=_show_log_line)
        results, error, interrupted = _follow(
            proc, live=live, total=total, web=web,
            lines=not live and not web and role != "worker",
            observer=exporters.state.observe if exporters is not None else None,
        )
    finally:
        if exporters is not None:
            for problem in exporters.close(linger_s):
                output.warning(problem)
    if error:
        raise BenchError(error)
    if role == "worker":
        output.result(f"worker finished after {time.monotonic() - started:.1f} s")
        return
    _conclude(results, interrupted, web=web, as_json=as_json, capacity=capacity is not None,
              junit=junit, objectives=objectives, allow_invalid=allow_invalid,
              allow_failures=allow_failures)


def _check_places(
    spread: lib.Distribution, plan: BenchPlan, *, web_port: int | None, live_metrics: bool,
    repeat: int, metrics_host: str, metrics_port: int | None, metrics_linger: str,
    otlp_endpoint: str | None, report_dir: Path, junit: Path | None,
) -> float:
    """Every port and file the run needs, checked before it starts; the metrics' linger (s)."""
    from aml_client.bench.plan import parse_duration

    if web_port is not None and not spread.worker:
        from aml_client.bench.launch import check_port_free

        check_port_free("127.0.0.1", web_port)
    if spread.master or (spread.local_master(plan) and spread.master_port is not None):
        checks.free_port(spread.master_port or DEFAULT_MASTER_PORT, "--master-port",
                         host=spread.master_bind)
    if live_metrics and spread.worker:
        raise ConfigError("--metrics-port/--otlp-endpoint go to the master: it serves the "
                          "workers' aggregate")
    if live_metrics and repeat > 1:
        raise ConfigError("--metrics-port/--otlp-endpoint serve one run: not with --repeat")
    if metrics_port is not None:
        checks.free_port(metrics_port, "--metrics-port", host=metrics_host)
    try:
        linger_s = parse_duration(metrics_linger)
    except ValueError as exc:
        raise ConfigError(f"--metrics-linger: {exc}") from exc
    if otlp_endpoint is not None:
        from aml_client.bench.metrics_export import otlp_metrics_url

        otlp_metrics_url(otlp_endpoint)
    if not spread.worker:  # a worker writes no report: its master does
        checks.writable_dir(report_dir, "--report-dir")
    if junit is not None:
        checks.writable_file(junit, "--junit", example="bench.xml")
    return linger_s


def _announce(target: RunTarget, plan: BenchPlan, objectives: list[Objective],
              spread: lib.Distribution, *, as_json: bool) -> None:
    """The run's first lines: what is benchmarked, how, and against which objectives."""
    bodies = output.plural(
        int(target.payload["bodies"]), "distinct request body", "distinct request bodies"
    )
    if spread.worker:
        output.console.print(
            f"[bold]amlc bench[/] worker for {target.name} ({target.scoring_uri}): the master at "
            f"{spread.master_host}:{spread.master_port or DEFAULT_MASTER_PORT} sets the load; "
            f"{bodies} from {target.payload['source']}",
            markup=False,
        )
    elif not as_json:
        output.console.print(
            f"amlc bench {target.name} ({target.scoring_uri}): {plan.describe()}; "
            f"{bodies} from {target.payload['source']}",
            markup=False,
        )
        if objectives:
            output.console.print(
                f"objectives: {', '.join(o.label for o in objectives)}", markup=False
            )


def _conclude(
    results: list[dict[str, Any]], interrupted: bool, *, web: bool, as_json: bool,
    capacity: bool, junit: Path | None, objectives: list[Objective], allow_invalid: bool,
    allow_failures: bool,
) -> None:
    """The finished run's summary and verdicts, and its exit code."""
    # Ctrl-C is how the web UI is left: that ends the command normally (exit 0).
    if not results:
        if web:
            return
        if interrupted:
            raise KeyboardInterrupt
        raise BenchError("the load process ended without a result")
    summary = lib.summary_of(results[-1])
    directory = summary.report_dir
    if as_json:
        output.print_json(summary.to_data())
        if directory:
            output.console.print(f"report: {directory}")
    elif not web:
        print_summary(summary, directory)
    if interrupted and not web:
        raise KeyboardInterrupt
    if summary.partial:
        from aml_client.bench.fleet import describe

        for lost in summary.lost_workers:
            output.error(describe(lost))
        raise typer.Exit(EXIT_PARTIAL)
    if capacity:
        _capacity_verdict(summary, junit, quiet=as_json)
        return
    if objectives or junit is not None:
        from aml_client.cli.report import check_objectives

        if not check_objectives(summary, objectives, allow_invalid=allow_invalid, quiet=as_json,
                                junit=junit):
            raise typer.Exit(EXIT_SLO_MISSED)
    if not web:
        _check_failures([summary], objectives, allow_failures=allow_failures)


def _check_failures(
    summaries: list[BenchSummary], objectives: list[Objective], *, allow_failures: bool
) -> None:
    """A run (or group of runs) in which requests failed exits 4, unless the user said
    failures are acceptable (:func:`aml_client.benchmark.failed_requests`)."""
    problem = lib.failed_requests(summaries, objectives, allow_failures=allow_failures)
    if problem is not None:
        output.error(problem)
        raise typer.Exit(EXIT_REQUESTS_FAILED)


def _start_exporters(
    objectives: list[Any], plan: Any, deployment: str | None, host: str, port: int | None,
    otlp_endpoint: str | None,
) -> Any:
    """The live metrics and their exporters (announced on stderr)."""
    from aml_client.bench.metrics import LiveMetrics
    from aml_client.bench.metrics_export import Exporters

    state = LiveMetrics(
        objectives=objectives, deployment=deployment or "",
        scheduled_rate=plan.rate if plan.mode == "open" and plan.capacity is None else None,
        judged_on="corrected" if plan.mode == "open" else "latency",
    )
    exporters = Exporters(state, prometheus=(host, port) if port is not None else None,
                          otlp_endpoint=otlp_endpoint)
    if exporters.prometheus is not None:
        output.note(f"live metrics: {exporters.prometheus.url}")
    if exporters.otlp is not None:
        output.note(f"live metrics pushed to {exporters.otlp.url}")
    return exporters


def _repeat(
    count: int, role: str, config: LoadConfig, target: RunTarget, *, live: bool, total: str,
    as_json: bool, objectives: list[Objective], allow_invalid: bool, allow_failures: bool = False,
) -> None:
    """``--repeat N``: N runs of the same load, one line each, then a group of them (written
    also when the runs are interrupted, with the runs that finished)."""
    from aml_client.bench.report.directory import write_group

    started = time.time()
    summaries: list[BenchSummary] = []
    interrupted = False
    for index in range(count):
        if not as_json:
            output.note(f"run {index + 1} of {count}")
        proc = lib.start_load(role, config, target, on_log=_show_log_line)
        results, error, interrupted = _follow(proc, live=live, total=total, lines=not live)
        if error:
            raise BenchError(error)
        if results:
            summary = lib.summary_of(results[-1])
            summaries.append(summary)
            if not as_json:
                output.result(_run_line(index + 1, count, summary), markup=False)
        if interrupted or not results:
            break
    members = [Path(s.report_dir) for s in summaries if s.report_dir]
    group = (write_group(config.report_root or "reports", members, started_at=started,
                         endpoint=str(target.name)) if members else None)
    if as_json:
        output.print_json({"group_id": group.name if group else None,
                           "group_dir": str(group) if group else None,
                           "runs": [s.to_data() for s in summaries]})
    elif group is not None:
        output.result(f"group of {output.plural(len(members), 'run')}: {group}", markup=False)
    if interrupted:
        raise KeyboardInterrupt
    if len(summaries) < count:
        raise BenchError("the load process ended without a result")
    if objectives:
        from aml_client.cli.report import check_objectives

        held = [check_objectives(s, objectives, allow_invalid=allow_invalid, quiet=as_json)
                for s in summaries]
        if not all(held):
            raise typer.Exit(EXIT_SLO_MISSED)
    _check_failures(summaries, objectives, allow_failures=allow_failures)


def _run_line(index: int, count: int, summary: BenchSummary) -> str:
    """One line per run of a group: id, rate, judged p50/p99, validity."""
    judged = summary.judged
    p50, p99 = judged.value_ms("p50"), judged.value_ms("p99")
    rate = summary.throughput_rps
    return (f"run {index}/{count} {summary.report_id}: {summary.requests:,} requests, "
            + ("-" if rate is None else f"{rate:,.1f}") + " req/s, "
            + f"p50 {'-' if p50 is None else f'{p50:,.1f}'} ms, "
            + f"p99 {'-' if p99 is None else f'{p99:,.1f}'} ms"
            + ("" if summary.valid else ", INVALID"))

def _capacity_verdict(summary: BenchSummary, junit: Path | None, *, quiet: bool) -> None:
    """Exit 0 when a capacity was found (for every deployment of a blue/green run), 5 when
    even the lowest rate missed or the load generator's limit came first (then the answer is
    only a lower bound)."""
    from aml_client.bench.report import render
    from aml_client.bench.report.junit import Case, write_junit

    searches: list[tuple[str, Capacity | None]] = (
        [("", summary.capacity)] if summary.capacity is not None else []
    )
    if summary.blue_green is not None:
        searches += [(f"{run.name}: ", run.capacity) for run in summary.blue_green.runs]
    cases = []
    missing = []
    for prefix, capacity in searches:
        if capacity is None:
            missing.append(f"{prefix}the search did not run")
            cases.append(Case(f"{prefix}capacity found", failure="the search did not run"))
            continue
        cases += [
            Case(f"{prefix}{step.rate_rps:g} req/s",
                 failure=None if step.passed else "; ".join(step.notes))
            for step in capacity.steps
        ]
        if capacity.found:
            line = (f"{prefix}capacity: {capacity.max_rate_rps:,.1f} req/s with "
                    f"{', '.join(capacity.objectives)} ({capacity.stopped_because})")
            cases.append(Case(f"{prefix}capacity found", output=line))
            if not quiet:
                output.stdout.print(Text(line, style="green"))
        elif capacity.at_least_rps is not None:
            # A lower bound, not an answer: the load generator, not the endpoint, gave out.
            line = f"{prefix}{render.capacity_answer(capacity)}"
            missing.append(f"{line}; {capacity.stopped_because}")
            cases.append(Case(f"{prefix}capacity found", failure=line))
        else:
            missing.append(f"{prefix}{capacity.stopped_because}")
            cases.append(Case(f"{prefix}capacity found", failure=capacity.stopped_because))
    if not quiet and summary.blue_green is not None:
        for verdict in summary.blue_green.verdicts:
            output.stdout.print(verdict.text)
    if junit is not None:
        write_junit(junit, "amlc bench --find-capacity", cases, time_s=summary.duration_s)
    if missing or not searches:
        output.error(f"no capacity found: {'; '.join(missing) or 'no search ran'}")
        raise typer.Exit(EXIT_SLO_MISSED)


def register(app: typer.Typer) -> None:
    app.command("bench")(bench)
