"""Benchmarks as a library: :func:`run_bench` and :func:`find_capacity`, and the steps
``amlc bench`` builds its runs from (the load plan, the process roles and what each load
process is told, the verdicts on a finished run).

A run happens in a load process (``python -m aml_client.bench.load.runner``) started and followed
from here, so the caller never imports Locust or gevent. The report files go under
``report_dir`` as with ``amlc bench``; the returned summary names its directory.

    from aml_client import run_bench

    summary = run_bench("local", users=4, requests=500)
    print(summary.judged.value_ms("p99"), summary.report_dir)
"""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aml_client.errors import AmlcError, ConfigError

if TYPE_CHECKING:
    from aml_client.bench.launch import LoadProcess
    from aml_client.bench.plan import BenchPlan
    from aml_client.bench.protocol import LoadConfig, MasterOptions, WorkerOptions
    from aml_client.bench.report.slo import Objective
    from aml_client.bench.report.summary import BenchSummary
    from aml_client.bench.target import RunTarget
    from aml_client.client import AsyncEndpoint, Endpoint
    from aml_client.config import Target

    #: What names an endpoint: a profile name, ``"local"``, ``"env"``, a resolved target or a
    #: client; None is the configured default (as ``amlc score`` picks it).
    EndpointSpec = str | Target | Endpoint | AsyncEndpoint | None

__all__ = [
    "DEFAULT_DURATION",
    "DEFAULT_MASTER_PORT",
    "BenchError",
    "CapacityOptions",
    "Distribution",
    "build_target",
    "failed_requests",
    "find_capacity",
    "load_config",
    "missed_objectives",
    "own_log_line",
    "parse_deployments",
    "parse_objectives",
    "parse_timeout",
    "plan_load",
    "run_bench",
    "start_load",
    "summary_of",
]

log = logging.getLogger(__name__)

#: A run's length when neither a duration nor a request count bounds it.
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


# --- settings -------------------------------------------------------------------------------


def parse_objectives(texts: Sequence[str] | None) -> list[Objective]:
    """The objectives (``p99<=200ms``, ``error_rate<=1%``…), with the implied error objective
    when they set no error rate."""
    from aml_client.bench.report import slo

    try:
        return slo.with_implied(slo.parse_slos(texts or []))
    except ValueError as exc:
        raise ConfigError(f"--slo {exc}") from exc


def parse_deployments(
    value: str | Sequence[str] | None, deployment: str | None = None
) -> list[str] | None:
    """The deployments of a blue/green run (``"blue,green"`` or a list); None when not given."""
    if value is None:
        return None
    from aml_client.bench.bluegreen import parse_deployments as parse

    if deployment is not None:
        raise ConfigError("--deployment and --deployments exclude each other")
    try:
        return parse(value if isinstance(value, str) else ",".join(value))
    except ValueError as exc:
        raise ConfigError(f"--deployments {exc}") from exc


def parse_timeout(value: str | float) -> float:
    """The per-request deadline in seconds (``"60s"``, ``"2m"`` or a number), above 0."""
    from aml_client.bench.plan import parse_duration

    try:
        timeout_s = parse_duration(value)
    except ValueError as exc:
        raise ConfigError(f"--timeout: {exc}") from exc
    if timeout_s <= 0:
        raise ConfigError(f"--timeout: {value!r} is not a duration above 0")
    return timeout_s


@dataclass(frozen=True)
class CapacityOptions:
    """The capacity search: open-model steps from ``start_rate``, doubling then bisecting,
    until the highest rate at which every objective holds is known within ``precision``."""

    start_rate: float = 10.0
    max_rate: float = 10_000.0
    #: least measured time per step (longer when the objectives' percentiles need more samples)
    step_duration: str | float = "20s"
    #: discarded warm-up of each step
    warmup: str | float = "2s"
    precision: float = 0.05

    def settings(
        self, objectives: Sequence[Objective], texts: Sequence[str], *, rate: float | None = None,
        conflicts: bool = False,
    ) -> dict[str, Any]:
        """The search as the load process takes it, once every value is checked."""
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
        if not 0 < self.start_rate <= self.max_rate:
            raise ConfigError("--start-rate must be above 0 and at most --max-rate")
        if not 0 < self.precision < 1:
            raise ConfigError("--precision must be between 0 and 1 (e.g. 0.05)")
        try:
            step_s, warmup_s = parse_duration(self.step_duration), parse_duration(self.warmup)
        except ValueError as exc:
            raise ConfigError(f"--step-duration/--warmup: {exc}") from exc
        if step_s <= 0 or warmup_s < 0:
            raise ConfigError("--step-duration must be above 0 and --warmup at least 0")
        return {"objectives": list(texts), "start_rps": self.start_rate,
                "max_rps": self.max_rate, "step_s": step_s, "warmup_s": warmup_s,
                "precision": self.precision}


def plan_load(
    *,
    users: int | None = None,
    spawn_rate: float | None = None,
    duration: str | float | None = None,
    requests: int | None = None,
    rate: float | None = None,
    arrival: str = "constant",
    seed: int = 1,
    workers: int = 1,
    timeout_s: float = 60.0,
    bounded: bool = True,
    max_senders: int | None = None,
    capacity: dict[str, Any] | None = None,
    deployments: list[str] | None = None,
) -> BenchPlan:
    """The load to apply: closed model (``users``) or open model (``rate``), bounded by
    ``duration`` and/or ``requests`` (:data:`DEFAULT_DURATION` when ``bounded`` and neither is
    given), spread over ``workers`` load processes."""
    from aml_client.bench.plan import ARRIVALS, BenchPlan, default_max_senders, parse_duration

    if arrival not in ARRIVALS:
        raise ConfigError(f"--arrival must be one of {', '.join(ARRIVALS)}")
    if rate is not None and rate <= 0:
        raise ConfigError("--rate must be above 0")
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
        # users with a rate (0.1's "senders") caps the senders, as max_senders does.
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
            mode=mode, users=users, spawn_rate=spawn_rate, duration_s=duration_s,
            max_requests=requests, rate=rate, arrival=arrival, seed=seed, workers=workers,
            timeout_s=timeout_s, interval_s=interval_s, max_senders=max_senders,
            capacity=capacity, deployments=deployments,
        )
    except ValueError as exc:
        raise ConfigError(str(exc)) from exc


# --- the target and the load processes ----------------------------------------------------


def _resolved(endpoint: EndpointSpec) -> str | Target | None:
    """A client object as the target it calls; names and targets as they are."""
    from aml_client.client import AsyncEndpoint, Endpoint

    if isinstance(endpoint, Endpoint | AsyncEndpoint):
        return endpoint.to_target()
    return endpoint


def build_target(
    endpoint: EndpointSpec = None,
    payload: str | Path | None = None,
    *,
    swagger: str | Path | None = None,
    rows_per_request: int = 1,
    encoding: str | None = None,
    timeout_s: float = 60.0,
    insecure: bool = False,
    deployment: str | None = None,
    deployments: list[str] | None = None,
    probe: bool = True,
) -> RunTarget:
    """The endpoint and its request bodies, built and validated before any load (a bad
    payload names its file); with ``probe``, each deployment the run names is asked for once."""
    from aml_client.bench.target import build_run_target, named_deployments, probe_deployments
    from aml_client.errors import ValidationError

    try:
        target = build_run_target(
            _resolved(endpoint), str(payload) if payload is not None else None, swagger=swagger,
            rows_per_request=rows_per_request, encoding=encoding, timeout_s=timeout_s,
            insecure=insecure, deployment=deployment, deployments=deployments,
        )
    except ValidationError as exc:
        if exc.source is not None or payload is None:
            raise
        raise ValidationError(exc.problems, source=str(payload)) from exc  # name the file
    if probe:
        probe_deployments(target, named_deployments(target, deployments))
    return target


@dataclass(frozen=True)
class Distribution:
    """Where the load processes run: one process (the default), local workers under a Locust
    master (a plan with several workers), or a master and workers on several machines."""

    #: be the master of ``expect_workers`` workers on other machines
    master: bool = False
    #: be a worker of the master at ``master_host:master_port``
    worker: bool = False
    expect_workers: int = 1
    master_bind: str = "127.0.0.1"
    master_host: str = "127.0.0.1"
    master_port: int | None = None

    def __post_init__(self) -> None:
        if self.master and self.worker:
            raise ConfigError("--master and --worker exclude each other")

    def workers(self, requested: int) -> int:
        """The load processes a plan is spread over (a master's are the workers it expects)."""
        return self.expect_workers if self.master else max(requested, 1)

    def local_master(self, plan: BenchPlan) -> bool:
        """Whether this machine runs a master of its own local workers."""
        return plan.workers > 1 and not self.master and not self.worker

    def check(self, plan: BenchPlan) -> None:
        """The combinations no run can use, as one clear line each."""
        if self.master and plan.users < self.expect_workers:
            raise ConfigError(f"--users ({plan.users}) must be at least --expect-workers")
        if self.master_port is not None and not (
            self.master or self.worker or self.local_master(plan)
        ):
            raise ConfigError(
                "--master-port needs --master, --worker or --workers N (N > 1): a single load "
                "process has no master"
            )

    def role(self, plan: BenchPlan) -> tuple[str, MasterOptions | WorkerOptions | None]:
        """The load process's role and what that role needs to know."""
        from aml_client.bench.protocol import MasterOptions, WorkerOptions

        port = self.master_port or DEFAULT_MASTER_PORT
        if self.worker:
            return "worker", WorkerOptions(master_host=self.master_host, master_port=port)
        if self.master:
            return "master", MasterOptions(expect_workers=self.expect_workers,
                                           bind_host=self.master_bind, bind_port=port)
        if self.local_master(plan):
            return "master", MasterOptions(local_workers=plan.workers,
                                           bind_port=self.master_port or 0)
        return "local", None


def load_config(
    target: RunTarget, plan: BenchPlan, report_root: str | Path, *,
    distribution: Distribution | None = None, web_port: int | None = None,
    live_metrics: bool = False,
) -> tuple[str, LoadConfig]:
    """The role of the load process and the configuration it reads from its stdin (no
    secret: the credential follows on the same pipe, from :func:`start_load`)."""
    from aml_client.bench.protocol import LoadConfig, MasterOptions, WebOptions, WorkerOptions

    role, placement = (distribution or Distribution()).role(plan)
    config = LoadConfig(target=target.to_wire(), plan=plan, report_root=str(report_root),
                        live_metrics=live_metrics)
    if isinstance(placement, MasterOptions):
        config.master = placement
    elif isinstance(placement, WorkerOptions):
        config.worker = placement
    if web_port is not None:
        config.web = WebOptions(host="127.0.0.1", port=web_port)
    return role, config


def start_load(
    role: str, config: LoadConfig, target: RunTarget, *,
    on_log: Callable[[str], None] | None = None,
) -> LoadProcess:
    """Start the load process with the target's credential (never in its environment)."""
    from aml_client.bench.launch import LoadProcess

    return LoadProcess(role, config, on_log=on_log, credential=target.credential,
                       secret_env=target.secret_env)


def summary_of(result: dict[str, Any]) -> BenchSummary:
    """The summary in a load process's ``result`` event, with its report directory."""
    from aml_client.bench.report.summary import BenchSummary

    summary = BenchSummary.model_validate(result["summary"])
    summary.report_dir = result.get("report_dir")
    return summary


#: A load-process log line of amlc's own: ``LEVEL aml_client.module: message``.
_OWN_LOG_LINE = re.compile(r"(WARNING|ERROR|CRITICAL) aml_client[\w.]*: (.*)")


def own_log_line(line: str) -> tuple[str, str] | None:
    """``(level, message)`` of a load-process log line of amlc's own (a warning or an error);
    None for Locust's and gevent's lines and tracebacks."""
    own = _OWN_LOG_LINE.fullmatch(line)
    return None if own is None else (own.group(1), own.group(2))


def _log_own_line(line: str) -> None:
    """amlc's own warnings from the load process, to this process's log."""
    own = own_log_line(line)
    if own is not None:
        log.log(logging.WARNING if own[0] == "WARNING" else logging.ERROR, "%s", own[1])


def _run(role: str, config: LoadConfig, target: RunTarget,
         on_event: Callable[[dict[str, Any]], None] | None) -> BenchSummary:
    """Run one load process to its end: its last result, or :class:`BenchError`."""
    proc = start_load(role, config, target, on_log=_log_own_line)
    results: list[dict[str, Any]] = []
    error: BenchError | None = None
    try:
        for event in proc.events():
            if on_event is not None:
                on_event(event)
            if event.get("type") == "result":
                results.append(event)
            elif event.get("type") == "error":
                error = BenchError(str(event.get("message")),
                                   exit_code=int(event.get("exit_code") or BenchError.exit_code))
    except BaseException:
        proc.kill()  # an interrupted caller leaves no load running
        raise
    code = proc.wait()
    if error is not None:
        raise error
    if code != 0:
        tail = "; ".join(list(proc.log_tail)[-3:])
        raise BenchError(f"the load process exited with code {code}"
                         + (f": {tail}" if tail else ""))
    if not results:
        raise BenchError("the load process ended without a result")
    return summary_of(results[-1])


# --- verdicts --------------------------------------------------------------------------------


def failed_requests(
    summaries: Sequence[BenchSummary], objectives: Sequence[Objective], *,
    allow_failures: bool = False,
) -> str | None:
    """Why the runs fail for their failed requests (None when none failed, or the caller said
    failures are acceptable: ``allow_failures``, or an ``error_rate`` objective of their own —
    the implied ``error_rate<=1%`` does not accept failures)."""
    failed = sum(s.failures.total for s in summaries)
    explicit = any(o.metric == "error_rate" and not o.implied for o in objectives)
    if not failed or allow_failures or explicit:
        return None
    by_kind: dict[str, int] = {}
    for summary in summaries:
        for kind, count in summary.failures.by_kind.items():
            by_kind[kind] = by_kind.get(kind, 0) + count
    kinds = ", ".join(
        f"{kind} {count:,}" for kind, count in sorted(by_kind.items(), key=lambda item: -item[1])
    )
    return (f"{failed:,} of {sum(s.requests for s in summaries):,} requests failed ({kinds}): "
            "--allow-failures or --slo 'error_rate<=...' accepts failures")


def missed_objectives(
    summary: BenchSummary, slo: Sequence[str | Objective], *, allow_invalid: bool = False
) -> list[str]:
    """Each objective the run missed, as one line (for each deployment of a blue/green run);
    an INVALID run (the load generator fell behind) misses unless ``allow_invalid``."""
    from aml_client.bench.report import render
    from aml_client.bench.report import slo as slos

    objectives = slos.with_implied(
        o if isinstance(o, slos.Objective) else parse_objectives([o])[0] for o in slo
    )
    section = summary.blue_green
    judged: list[tuple[str, slos.Measured]] = (
        [(f"{run.name}: ", run) for run in section.runs] if section is not None
        else [("", summary)]
    )
    missed = [prefix + outcome.message for prefix, measured in judged
              for outcome in slos.evaluate(measured, objectives) if not outcome.passed]
    if objectives and not summary.valid and not allow_invalid:
        missed.append(f"the run is {render.validity_line(summary)}")
    return missed


# --- the library's entry points ---------------------------------------------------------------


def run_bench(
    endpoint: EndpointSpec = None,
    *,
    users: int | None = None,
    rate: float | None = None,
    duration: str | float | None = None,
    requests: int | None = None,
    slo: Sequence[str] = (),
    deployments: str | Sequence[str] | None = None,
    workers: int = 1,
    report_dir: str | Path = "reports",
    payload: str | Path | None = None,
    swagger: str | Path | None = None,
    rows_per_request: int = 1,
    deployment: str | None = None,
    arrival: str = "constant",
    max_senders: int | None = None,
    seed: int = 1,
    timeout: str | float = "60s",
    insecure: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> BenchSummary:
    """Benchmark ``endpoint`` as ``amlc bench`` does, and return the run's summary.

    Closed model with ``users`` (default 10), or open model with ``rate`` requests per second
    (latency also measured from each request's intended start); bounded by ``duration``
    (``"30s"``, ``"2m"`` or seconds) and/or ``requests`` (30 s when neither is given).
    ``slo`` objectives (``"p99<=200ms"``) are checked for syntax here and written to the
    report's verdicts; judge them with :func:`missed_objectives`. ``deployments`` sends the
    same bodies to each deployment of a blue/green run. ``workers`` > 1 spreads the load over
    local processes under a Locust master. ``on_event`` sees each progress event.

    Raises :class:`~aml_client.errors.ConfigError` for settings no run can use, the client's
    errors for an endpoint that cannot be reached or refuses the credential, and
    :class:`BenchError` when the load process fails. Failed requests are not an error: they
    are counted in ``summary.failures`` (see :func:`failed_requests`).
    """
    lanes = parse_deployments(deployments, deployment)
    parse_objectives(slo)
    plan = plan_load(users=users, duration=duration, requests=requests, rate=rate,
                     arrival=arrival, seed=seed, workers=max(workers, 1),
                     timeout_s=parse_timeout(timeout), max_senders=max_senders, deployments=lanes)
    return _run_plan(endpoint, plan, report_dir, payload=payload, swagger=swagger,
                     rows_per_request=rows_per_request, deployment=deployment, lanes=lanes,
                     insecure=insecure, on_event=on_event)


def find_capacity(
    endpoint: EndpointSpec = None,
    *,
    slo: Sequence[str],
    start_rate: float = 10.0,
    max_rate: float = 10_000.0,
    step_duration: str | float = "20s",
    warmup: str | float = "2s",
    precision: float = 0.05,
    deployments: str | Sequence[str] | None = None,
    report_dir: str | Path = "reports",
    payload: str | Path | None = None,
    swagger: str | Path | None = None,
    rows_per_request: int = 1,
    deployment: str | None = None,
    timeout: str | float = "60s",
    insecure: bool = False,
    on_event: Callable[[dict[str, Any]], None] | None = None,
) -> BenchSummary:
    """The highest rate at which every ``slo`` objective holds, as ``amlc bench
    --find-capacity`` searches it: the answer is ``summary.capacity`` (``found``,
    ``max_rate_rps``, every step), one search per deployment of a blue/green run
    (``summary.blue_green.runs[i].capacity``). The search starts at ``start_rate`` req/s and
    never goes above ``max_rate``; each step measures at least ``step_duration`` after a
    discarded ``warmup``; it stops when the passing and failing rates are within
    ``precision`` (a fraction) of each other."""
    lanes = parse_deployments(deployments, deployment)
    objectives = parse_objectives(slo)
    search = CapacityOptions(start_rate=start_rate, max_rate=max_rate,
                             step_duration=step_duration, warmup=warmup, precision=precision)
    capacity = search.settings(objectives, list(slo))
    plan = plan_load(timeout_s=parse_timeout(timeout), capacity=capacity, deployments=lanes)
    return _run_plan(endpoint, plan, report_dir, payload=payload, swagger=swagger,
                     rows_per_request=rows_per_request, deployment=deployment, lanes=lanes,
                     insecure=insecure, on_event=on_event)


def _run_plan(
    endpoint: EndpointSpec, plan: BenchPlan, report_dir: str | Path, *,
    payload: str | Path | None, swagger: str | Path | None, rows_per_request: int,
    deployment: str | None, lanes: list[str] | None, insecure: bool,
    on_event: Callable[[dict[str, Any]], None] | None,
) -> BenchSummary:
    target = build_target(endpoint, payload, swagger=swagger, rows_per_request=rows_per_request,
                          timeout_s=plan.timeout_s, insecure=insecure, deployment=deployment,
                          deployments=lanes)
    Path(report_dir).mkdir(parents=True, exist_ok=True)
    role, config = load_config(target, plan, report_dir)
    return _run(role, config, target, on_event)
