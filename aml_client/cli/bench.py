"""``amlc bench``: latency benchmarks on Locust + HdrHistogram, headless, in the web UI, or spread
over processes and machines.

This command never imports Locust (it patches the standard library with gevent when imported):
it resolves the endpoint, builds and validates the request bodies with the same code as
``amlc score``, then hands the run to a load process
(``python -m aml_client.bench.load.runner``) over a pipe and renders what that process reports.
"""

from __future__ import annotations

import math
import os
import re
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

from aml_client.cli import checks, output
from aml_client.errors import AmlcError, ConfigError

if TYPE_CHECKING:
    from aml_client.bench.report.summary import BenchSummary, Capacity

#: Exit code of a run that misses an objective.
EXIT_SLO_MISSED = 5
#: Exit code of a run in which requests failed, when nothing says failures are acceptable.
EXIT_REQUESTS_FAILED = 4
#: Exit code of a run whose result is partial: a load process (worker) was lost during it.
EXIT_PARTIAL = 6
DEFAULT_DURATION = "30s"
#: Locust's own default port for a master (``--master``, ``--worker``).
DEFAULT_MASTER_PORT = 5557


class BenchError(AmlcError):
    """The load process failed (exit 1, or the code the load process gave, e.g. 2 for a
    configuration it could not use)."""

    exit_code = 1

    def __init__(self, message: str, *, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


def _raise_interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _plan(
    *,
    users: int | None,
    spawn_rate: float | None,
    duration: str | None,
    requests: int | None,
    rate: float | None,
    arrival: str,
    seed: int,
    workers: int,
    timeout_s: float,
    bounded: bool,
    max_senders: int | None = None,
    capacity: dict[str, Any] | None = None,
    deployments: list[str] | None = None,
) -> Any:
    from aml_client.bench.plan import BenchPlan, default_max_senders, parse_duration

    try:
        duration_s = parse_duration(duration) if duration else None
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}") from exc
    if capacity is not None:
        # One load process runs every step; the search bounds the run.
        rate, duration_s, requests, workers = capacity["start_rps"], None, None, 1
        if max_senders is None:
            max_senders = default_max_senders(capacity["max_rps"])
    elif bounded and duration_s is None and requests is None:
        duration_s = parse_duration(DEFAULT_DURATION)
    mode = "open" if rate is not None else "closed"
    if mode == "open":
        # -u with --rate (0.1's "senders") caps the senders, as --max-senders does.
        if max_senders is None and users is not None:
            max_senders = users
        # One dispatcher per load process: it creates senders as the schedule needs them.
        users = max(1, workers)
    elif users is None:
        users = 10
    if spawn_rate is None:
        # Open model: every dispatcher at once, the schedule does the pacing.
        spawn_rate = float(users) if mode == "open" else float(min(users, 100))
    # Each load process needs at least one user, or its share would never be sent.
    workers = max(1, min(workers, users))
    interval_s = 1.0
    if duration_s is not None and duration_s > 300:
        interval_s = float(2 ** math.ceil(math.log2(duration_s / 300)))
    try:
        return BenchPlan(
            mode=mode,
            users=users,
            spawn_rate=spawn_rate,
            duration_s=duration_s,
            max_requests=requests,
            rate=rate,
            arrival=arrival,
            seed=seed,
            workers=workers,
            timeout_s=timeout_s,
            interval_s=interval_s,
            max_senders=max_senders,
            capacity=capacity,
            deployments=deployments,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


def _objectives(texts: list[str] | None) -> list[Any]:
    """The --slo objectives, with the implied error objective when they set no error rate."""
    from aml_client.bench.report import slo

    try:
        return slo.with_implied(slo.parse_slos(texts or []))
    except ValueError as exc:
        raise ConfigError(f"--slo {exc}") from exc


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


#: A load-process log line of amlc's own: ``LEVEL aml_client.module: message``.
_OWN_LOG_LINE = re.compile(r"(WARNING|ERROR|CRITICAL) aml_client[\w.]*: (.*)")


def _show_log_line(line: str) -> None:
    """The load process's stderr: amlc's own warnings and errors as one line each; everything
    else (Locust's and gevent's log lines, tracebacks) only with AMLC_DEBUG=1. The last lines
    are kept either way and quoted if the process fails."""
    if os.environ.get("AMLC_DEBUG") == "1":
        output.console.print(Text(line, style="dim"))
        return
    own = _OWN_LOG_LINE.fullmatch(line)
    if own is not None:
        level, message = own.groups()
        (output.warning if level == "WARNING" else output.error)(message)


def _follow(
    proc: Any, *, live: bool, total: str, web: bool = False, lines: bool = False,
    clock: Callable[[], float] = time.monotonic, observer: Any = None,
) -> tuple[list[dict[str, Any]], str | None, bool]:
    """Read the load process's events until it exits: (results, error message, interrupted).

    Progress goes to a live table on a terminal (``live``), else, with ``lines``, to a plain
    line on stderr every :data:`PROGRESS_EVERY_S` seconds. ``observer`` (the live metrics)
    sees every event first.
    """
    results: list[dict[str, Any]] = []
    last_line: float | None = None
    error: str | None = None
    error_code = BenchError.exit_code
    display: Live | None = None
    interrupted = 0
    if live:
        display = Live(
            Text("starting load…"), console=output.console, transient=True, refresh_per_second=4
        )
        display.start()
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
            kind = event.get("type")
            if observer is not None:
                observer(event)
            if kind == "progress" and display is not None:
                display.update(_live_view(event, total))
            elif kind == "progress" and lines:
                now = clock()
                if last_line is None or now - last_line >= PROGRESS_EVERY_S:
                    last_line = now
                    output.console.print(_progress_line(event, total), markup=False,
                                         soft_wrap=True)
            elif kind == "status":
                output.console.print(f"[dim]{event.get('message', '')}[/]")
            elif kind == "web":
                # Each address whole on its own line, so a terminal opens it in one click; the
                # secret in it is this run's own and dies with it.
                output.result("Locust web UI (Ctrl-C to quit):")
                for label, url in (("", event["url"]), ("HDR percentiles: ", event["hdr_url"])):
                    output.result(f"  {label}{url}", markup=False)
            elif kind == "result":
                results.append(event)
                if web:
                    output.result(f"test stopped — report: {event.get('report_dir')}", markup=False)
            elif kind == "error":
                error = str(event.get("message"))
                error_code = int(event.get("exit_code") or BenchError.exit_code)
            elif kind == "output":
                output.console.print(event.get("line", ""), markup=False)
    finally:
        if display is not None:
            display.stop()
    code = proc.wait()
    if error is None and code != 0 and not interrupted:
        tail = "; ".join(list(proc.log_tail)[-3:])
        error = f"the load process exited with code {code}" + (f": {tail}" if tail else "")
    if error is not None and error_code != BenchError.exit_code:
        raise BenchError(error, exit_code=error_code)
    return results, error, interrupted > 0


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
        int | None,
        typer.Option(
            "--workers",
            "-w",
            min=0,
            help="Local load processes under a Locust master (default: one per core; "
            "0 or 1: a single process).",
        ),
    ] = None,
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
    from aml_client.bench.launch import LoadProcess
    from aml_client.bench.plan import ARRIVALS, parse_duration
    from aml_client.bench.target import build_run_target

    if master and worker:
        raise ConfigError("--master and --worker exclude each other")
    if repeat > 1 and (web or master or worker or find_capacity or junit is not None):
        raise ConfigError("--repeat runs headless runs of its own: drop --web, --master, "
                          "--worker, --find-capacity and --junit")
    if arrival not in ARRIVALS:
        raise ConfigError(f"--arrival must be one of {', '.join(ARRIVALS)}")
    if rate is not None and rate <= 0:
        raise ConfigError("--rate must be above 0")
    lanes = _deployments(deployments, deployment)
    objectives = _objectives(slo_texts)
    try:
        timeout_s = parse_duration(timeout)
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from exc
    if timeout_s <= 0:
        raise ConfigError(f"--timeout: {timeout!r} is not a duration above 0")
    capacity = None
    if find_capacity:
        capacity = _capacity_settings(
            objectives, slo_texts or [], rate=rate, start_rate=start_rate, max_rate=max_rate,
            step_duration=step_duration, warmup=warmup, precision=precision,
            conflicts=master or worker or web or duration is not None or requests is not None
            or (workers or 1) > 1,
        )
        workers = 1
    if workers is None:
        workers = os.cpu_count() or 1
    if master:
        workers = expect_workers
    plan = _plan(
        users=users,
        spawn_rate=spawn_rate,
        duration=duration,
        requests=requests,
        rate=rate,
        arrival=arrival,
        seed=seed,
        workers=max(workers, 1),
        timeout_s=timeout_s,
        bounded=not web and not worker,
        max_senders=max_senders,
        capacity=capacity,
        deployments=lanes,
    )
    if master and plan.users < expect_workers:
        raise ConfigError(f"--users ({plan.users}) must be at least --expect-workers")
    if web and not worker:
        from aml_client.bench.launch import check_port_free

        check_port_free("127.0.0.1", web_port)
    local_master = plan.workers > 1 and not master and not worker
    if master_port is not None and not (master or worker or local_master):
        raise ConfigError(
            "--master-port needs --master, --worker or --workers N (N > 1): a single load "
            "process has no master"
        )
    if master or (local_master and master_port is not None):
        checks.free_port(master_port or DEFAULT_MASTER_PORT, "--master-port", host=master_bind)
    live_metrics = metrics_port is not None or otlp_endpoint is not None
    if live_metrics and worker:
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
    if not worker:  # a worker writes no report: its master does
        checks.writable_dir(report_dir, "--report-dir")
    if junit is not None:
        checks.writable_file(junit, "--junit", example="bench.xml")
    from aml_client.errors import ValidationError

    try:
        target = build_run_target(
            endpoint,
            str(payload) if payload is not None else None,
            swagger=swagger,
            rows_per_request=rows_per_request,
            encoding=encoding,
            timeout_s=timeout_s,
            insecure=insecure,
            deployment=deployment,
            deployments=lanes,
        )
    except ValidationError as exc:
        if exc.source is not None or payload is None:
            raise
        raise ValidationError(exc.problems, source=str(payload)) from exc  # name the file
    if not worker:  # a worker's master probed them
        from aml_client.bench.target import named_deployments, probe_deployments

        probe_deployments(target, named_deployments(target, lanes))
    config: dict[str, Any] = {
        "target": target.to_wire(),
        "plan": plan.to_dict(),
        "report_root": str(report_dir),
    }
    if worker:
        role = "worker"
        master_port = master_port or DEFAULT_MASTER_PORT
        config.update(master_host=master_host, master_port=master_port)
    elif master:
        role = "master"
        config.update(
            expect_workers=expect_workers,
            bind_host=master_bind,
            bind_port=master_port or DEFAULT_MASTER_PORT,
        )
    elif local_master:
        role = "master"
        config.update(local_workers=plan.workers, bind_port=master_port or 0)
    else:
        role = "local"
    if web:
        config["web"] = {"host": "127.0.0.1", "port": web_port}
    exporters = None
    if live_metrics:
        config["live_metrics"] = True
        exporters = _start_exporters(objectives, plan, deployment, metrics_host, metrics_port,
                                     otlp_endpoint)
    bodies = output.plural(
        int(target.payload["bodies"]), "distinct request body", "distinct request bodies"
    )
    if worker:
        output.console.print(
            f"[bold]amlc bench[/] worker for {target.name} ({target.scoring_uri}): the master at "
            f"{master_host}:{master_port} sets the load; {bodies} from {target.payload['source']}",
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
        proc = LoadProcess(
            role,
            config,
            on_log=_show_log_line,
            credential=target.credential,
            secret_env=target.secret_env,
        )
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
    # Ctrl-C is how the web UI is left: that ends the command normally (exit 0).
    if not results:
        if web:
            return
        if interrupted:
            raise KeyboardInterrupt
        raise BenchError("the load process ended without a result")
    from aml_client.bench.report.summary import BenchSummary

    final = results[-1]
    summary = BenchSummary.model_validate(final["summary"])
    directory = final.get("report_dir")
    summary.report_dir = directory
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
    if capacity is not None:
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
    summaries: list[BenchSummary], objectives: list[Any], *, allow_failures: bool
) -> None:
    """A run (or group of runs) in which requests failed exits 4, unless the user said
    failures are acceptable: ``--allow-failures``, or an ``error_rate`` objective the user
    wrote (judged already; the implied ``error_rate<=1%`` does not accept failures)."""
    failed = sum(s.failures.total for s in summaries)
    explicit = any(o.metric == "error_rate" and not o.implied for o in objectives)
    if not failed or allow_failures or explicit:
        return
    by_kind: dict[str, int] = {}
    for summary in summaries:
        for kind, count in summary.failures.by_kind.items():
            by_kind[kind] = by_kind.get(kind, 0) + count
    kinds = ", ".join(
        f"{kind} {count:,}" for kind, count in sorted(by_kind.items(), key=lambda item: -item[1])
    )
    output.error(
        f"{failed:,} of {sum(s.requests for s in summaries):,} requests failed ({kinds}): "
        "--allow-failures or --slo 'error_rate<=...' accepts failures"
    )
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
    count: int, role: str, config: dict[str, Any], target: Any, *, live: bool, total: str,
    as_json: bool, objectives: list[Any], allow_invalid: bool, allow_failures: bool = False,
) -> None:
    """``--repeat N``: N runs of the same load, one line each, then a group of them (written
    also when the runs are interrupted, with the runs that finished)."""
    from aml_client.bench.launch import LoadProcess
    from aml_client.bench.report.directory import write_group
    from aml_client.bench.report.summary import BenchSummary

    started = time.time()
    summaries: list[BenchSummary] = []
    interrupted = False
    for index in range(count):
        if not as_json:
            output.note(f"run {index + 1} of {count}")
        proc = LoadProcess(role, config, on_log=_show_log_line, credential=target.credential,
                           secret_env=target.secret_env)
        results, error, interrupted = _follow(proc, live=live, total=total, lines=not live)
        if error:
            raise BenchError(error)
        if results:
            summary = BenchSummary.model_validate(results[-1]["summary"])
            summary.report_dir = results[-1].get("report_dir")
            summaries.append(summary)
            if not as_json:
                output.result(_run_line(index + 1, count, summary), markup=False)
        if interrupted or not results:
            break
    members = [Path(s.report_dir) for s in summaries if s.report_dir]
    group = (write_group(config["report_root"], members, started_at=started,
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


def _deployments(text: str | None, deployment: str | None) -> list[str] | None:
    """``--deployments blue,green`` as a list (None when not given)."""
    if text is None:
        return None
    from aml_client.bench.bluegreen import parse_deployments

    if deployment is not None:
        raise ConfigError("--deployment and --deployments exclude each other")
    try:
        return parse_deployments(text)
    except ValueError as exc:
        raise ConfigError(f"--deployments {exc}") from exc


def _capacity_settings(
    objectives: list[Any], texts: list[str], *, rate: float | None, start_rate: float,
    max_rate: float, step_duration: str, warmup: str, precision: float, conflicts: bool,
) -> dict[str, Any]:
    from aml_client.bench.plan import parse_duration

    if not objectives:
        raise ConfigError("--find-capacity needs at least one --slo, e.g. --slo 'p99<=200ms'")
    if conflicts:
        raise ConfigError(
            "--find-capacity runs its own steps in one load process: drop --workers, "
            "--duration, --requests, --web, --master and --worker"
        )
    if rate is not None:
        raise ConfigError("--find-capacity chooses the rates: use --start-rate/--max-rate")
    if not 0 < start_rate <= max_rate:
        raise ConfigError("--start-rate must be above 0 and at most --max-rate")
    if not 0 < precision < 1:
        raise ConfigError("--precision must be between 0 and 1 (e.g. 0.05)")
    try:
        step_s, warmup_s = parse_duration(step_duration), parse_duration(warmup)
    except ValueError as exc:
        raise ConfigError(f"--step-duration/--warmup: {exc}") from exc
    if step_s <= 0 or warmup_s < 0:
        raise ConfigError("--step-duration must be above 0 and --warmup at least 0")
    return {"objectives": texts, "start_rps": start_rate, "max_rps": max_rate,
            "step_s": step_s, "warmup_s": warmup_s, "precision": precision}


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
