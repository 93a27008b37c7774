"""``amlc local up | down | status | logs | keys``: the embedded local endpoint."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated

import typer

from aml_client.cli import checks, output

if TYPE_CHECKING:
    from aml_client.local import DeploymentInfo, LocalEndpointInfo

#: Exit code of ``amlc local status`` when no endpoint answers (scripts: ``status || up``).
NOT_RUNNING_EXIT = 4


class Style(StrEnum):
    inputs = "inputs"
    v1 = "v1"


class Metric(StrEnum):
    accuracy = "accuracy"
    auc = "auc"
    f1 = "f1"
    balanced_accuracy = "balanced_accuracy"


class KeyName(StrEnum):
    both = "both"
    primary = "primary"
    secondary = "secondary"


def _say(message: str) -> None:
    """Progress for people on stderr, printed as is (log lines and paths may hold brackets)."""
    output.console.print(message, markup=False, highlight=False, soft_wrap=True)


def _show(message: str) -> None:
    """A line of the command's result on stdout, printed as is."""
    output.result(message, markup=False)


def register(app: typer.Typer) -> None:
    """Add the ``local`` command group to ``app``."""
    group = typer.Typer(
        help="Run a local Azure ML endpoint (Microsoft's inference server, a bank-marketing "
        "model, key auth, deployments with a traffic split) on 127.0.0.1.",
        no_args_is_help=True,
    )
    group.command("up")(up)
    group.command("down")(down)
    group.command("status")(status)
    group.command("logs")(logs)
    group.command("keys")(keys)
    app.add_typer(group, name="local")


_STYLE_HELP = (
    'Wire contract: \'inputs\' = today\'s AutoML ({"Inputs": {"data": rows}} -> '
    '{"Results": [...]}); \'v1\' = 2020-era AutoML ({"data": rows} -> a JSON string).'
)


_DEPLOYMENT_HELP = (
    "A deployment: NAME[:KIND][,option=value...]; KIND is sklearn (default) or onnx; options: "
    "workers, max_concurrent_requests_per_instance (or max_concurrent; default 16, 1 as on "
    "Azure), request_timeout_ms, "
    "and, to provoke 408/424/429 on purpose, delay_ms and fail_rate. Repeat for several "
    "[default: one sklearn deployment called blue]."
)
_TRAFFIC_HELP = (
    "Share of unpinned requests per deployment, e.g. blue=90,green=10 (adding up to 100) "
    "[default: all to the first deployment]. A request with the azureml-model-deployment "
    "header goes to that deployment whatever its share."
)


def up(
    port: Annotated[
        int,
        typer.Option(
            "--port", "-p", min=1, max=65535, envvar="AMLC_LOCAL_PORT", help="Port on 127.0.0.1."
        ),
    ] = 5001,
    deployment: Annotated[
        list[str] | None, typer.Option("--deployment", help=_DEPLOYMENT_HELP)
    ] = None,
    traffic: Annotated[str | None, typer.Option("--traffic", help=_TRAFFIC_HELP)] = None,
    workers: Annotated[
        int,
        typer.Option(
            "--workers",
            "-w",
            min=0,
            max=32,
            help="Server worker processes per deployment [default: min(2, CPUs)].",
        ),
    ] = 0,
    style: Annotated[Style, typer.Option("--style", help=_STYLE_HELP)] = Style.inputs,
    metric: Annotated[
        Metric, typer.Option("--metric", help="Rank the candidate models by this held-out metric.")
    ] = Metric.accuracy,
    detach: Annotated[
        bool,
        typer.Option("--detach", "-d", help="Run in the background; return once it answers."),
    ] = False,
    retrain: Annotated[
        bool, typer.Option("--retrain", help="Train again even if a model is cached.")
    ] = False,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            callback=checks.positive_seconds,
            help="Seconds to wait for the server to answer.",
        ),
    ] = 90.0,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the endpoint's description as JSON.")
    ] = False,
) -> None:
    """Start the local endpoint (trains the model on first start; Ctrl-C stops it).

    One scoring URI in front of one or more deployments, as a managed online endpoint:
    amlc local up --deployment blue --deployment green:onnx --traffic blue=90,green=10

    With --detach, an endpoint already running with the same settings is left as it is (exit
    0), so a script may run it every time.
    """
    from aml_client import local

    def ready(info: LocalEndpointInfo) -> None:
        if as_json:
            output.print_json(info.to_dict())
        else:
            _show_ready(info, detach)

    specs = [local.parse_deployment(text) for text in deployment or []]
    shares = local.parse_traffic(traffic) if traffic is not None else None
    if detach and not retrain:
        running = local.status()
        if running is not None:
            differs = local.differences(
                running, port=port, workers=workers or None, style=style.value,
                metric=metric.value, deployments=specs, traffic=shares,
            )  # fmt: skip
            if differs:
                from aml_client.errors import ConfigError

                raise ConfigError(
                    f"a local endpoint with other settings is already running at "
                    f"{running.scoring_uri} (pid {running.pid}: {'; '.join(differs)}); "
                    "stop it first with: amlc local down"
                )
            output.note(f"already running with these settings (pid {running.pid})")
            ready(running)
            return
    local.start(
        port=port,
        deployments=specs,
        traffic=shares,
        workers=workers or None,
        style=style.value,
        metric=metric.value,
        detach=detach,
        retrain=retrain,
        timeout_s=timeout,
        report=_say,
        on_ready=ready,
    )
    if not detach:
        output.note("local endpoint stopped")


def _describe_deployment(deployment: DeploymentInfo) -> str:
    """One line: kind, traffic, model, held-out accuracy (and ONNX agreement), settings."""
    kind = "ONNX copy of " if deployment.kind == "onnx" else ""
    agreement = (
        f", same label as scikit-learn on {deployment.agreement:.2%}"
        if deployment.agreement is not None
        else ""
    )
    settings = (
        f"{deployment.workers} worker{'s' if deployment.workers > 1 else ''}, "
        f"max_concurrent {deployment.max_concurrent_requests_per_instance}, "
        f"timeout {deployment.request_timeout_ms} ms"
    )
    on_purpose = [
        f"{name} {value}"
        for name, value in (("delay_ms", deployment.delay_ms), ("fail_rate", deployment.fail_rate))
        if value
    ]
    return (
        f"{deployment.traffic:>3} %  {kind}{deployment.model} (held-out accuracy "
        f"{deployment.accuracy:.4f}{agreement}); {settings}"
        + (f"; {', '.join(on_purpose)}" if on_purpose else "")
    )


def _show_ready(info: LocalEndpointInfo, detach: bool) -> None:
    count = len(info.deployments)
    output.result(
        f"[bold green]local endpoint ready[/] ({info.style} contract, "
        f"{output.plural(count, 'deployment')}, pid {info.pid})"
    )
    for name, value in (
        ("scoring URI", info.scoring_uri),
        ("swagger URI", info.swagger_uri),
        ("key", "amlc local keys --show   (send Authorization: Bearer <key>)"),
    ):
        _show(f"  {name:<12} {value}")
    for deployment in info.deployments:
        _show(f"  {deployment.name:<12} {_describe_deployment(deployment)}")
    if detach:
        output.note("stop it with: amlc local down · request log: amlc local logs -f")
    else:
        output.note("Ctrl-C stops it · request log: amlc local logs -f")


def down() -> None:
    """Stop the local endpoint (SIGTERM, then SIGKILL if it does not stop)."""
    from aml_client import local

    stopped = local.stop()
    if stopped is None:
        _show("no local endpoint is running")
    else:
        _show(f"stopped the local endpoint at {stopped.scoring_uri} (pid {stopped.pid})")


def status(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON on stdout.")] = False,
) -> None:
    """Show the running local endpoint; exits 4 when none answers."""
    from aml_client import local

    info = local.status()
    if info is None:
        stuck = local.recorded_endpoint()
        if as_json:
            output.print_json({"running": False})
        elif stuck is not None:
            _show(
                f"the local endpoint (pid {stuck.pid}) does not answer on {stuck.scoring_uri}; "
                "see amlc local logs --server, stop it with amlc local down"
            )
        else:
            _show("no local endpoint is running (start one: amlc local up --detach)")
        raise typer.Exit(NOT_RUNNING_EXIT)
    if as_json:
        output.print_json({"running": True, **info.to_dict()})
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(show_header=False, box=None, pad_edge=False)
    table.add_column(style="bold")
    table.add_column()
    rows = [
        ("scoring URI", info.scoring_uri),
        ("swagger URI", info.swagger_uri),
        ("PID", str(info.pid)),
        ("style", info.style),
        ("model", info.model),
        ("metric", f"{info.metric} {info.score:.4f} (held-out)"),
        ("accuracy", f"{info.accuracy:.4f} (held-out)"),
        ("workers", str(info.workers)),
        ("started", info.started_at),
        ("request log", info.log_file),
        ("server", f"azmlinfsrv {info.server_version}".strip()),
    ]
    for name, value in rows:
        table.add_row(name, Text(value))
    output.table(table)

    deployments = Table(title="deployments", title_justify="left", box=None, pad_edge=False)
    for column in ("name", "kind", "traffic", "model", "accuracy", "ONNX agreement", "settings"):
        deployments.add_column(column, justify="right" if column == "traffic" else "left")
    for d in info.deployments:
        settings = (
            f"workers {d.workers}, max_concurrent {d.max_concurrent_requests_per_instance}, "
            f"timeout {d.request_timeout_ms} ms"
        )
        if d.delay_ms or d.fail_rate:
            settings += f", delay_ms {d.delay_ms}, fail_rate {d.fail_rate:g}"
        deployments.add_row(
            Text(d.name),
            d.kind,
            f"{d.traffic} %",
            Text(d.model),
            f"{d.accuracy:.4f}",
            f"{d.agreement:.2%}" if d.agreement is not None else "-",
            settings,
        )
    output.table(deployments)


def logs(
    follow: Annotated[
        bool, typer.Option("--follow", "-f", help="Keep printing new lines (Ctrl-C ends).")
    ] = False,
    lines: Annotated[
        int,
        typer.Option("--lines", "-n", min=0, help="How many recent lines to print first."),
    ] = 20,
    server: Annotated[
        bool, typer.Option("--server", help="The server's own output instead of the request log.")
    ] = False,
) -> None:
    """Print (or follow) the request log: one line per request with status, latency, ids."""
    from aml_client import local

    path = local.log_file("server" if server else "access")
    if not path.exists() and not follow:
        _say(f"no log yet at {path}")
        return
    for line in local.tail(path, lines):
        sys.stdout.write(line + "\n")
    sys.stdout.flush()
    if not follow:
        return
    try:
        for line in local.follow(path):
            sys.stdout.write(line + "\n")
            sys.stdout.flush()
    except KeyboardInterrupt:
        return


def keys(
    show: Annotated[
        bool,
        typer.Option("--show", help="Print the primary key in full on the first line of stdout."),
    ] = False,
    regenerate: Annotated[
        bool,
        typer.Option(
            "--regenerate", help="Replace the keys; a running endpoint uses them at once."
        ),
    ] = False,
    which: Annotated[
        KeyName, typer.Option("--which", help="With --regenerate: which key to replace.")
    ] = KeyName.both,
    as_json: Annotated[bool, typer.Option("--json", help="Print the masked keys as JSON.")] = False,
) -> None:
    """Show the local endpoint's keys, masked; --show prints the primary key in full."""
    from aml_client import local
    from aml_client.auth import mask
    from aml_client.errors import ConfigError

    if show and as_json:
        raise ConfigError("--show prints the key itself; it does not go with --json")
    if which is not KeyName.both and not regenerate:
        raise ConfigError("--which chooses the key --regenerate replaces: add --regenerate")
    if regenerate:
        primary, secondary = local.regenerate_keys(which.value)
    else:
        found = local.local_keys(create=True)
        assert found is not None
        primary, secondary = found
    if show:  # the first line of stdout, whatever follows
        sys.stdout.write(primary + "\n")
        sys.stdout.flush()
    if regenerate:
        replaced = "both keys" if which is KeyName.both else f"the {which.value} key"
        (output.note if as_json else _show)(f"regenerated {replaced}")
    if as_json:
        document = {"primary": mask(primary), "secondary": mask(secondary)}
        output.print_json({**document, "file": str(local.keys_file())})
        return
    _show(f"primary    {mask(primary)}")
    _show(f"secondary  {mask(secondary)}")
    _show(f"file       {local.keys_file()} (0600)")
