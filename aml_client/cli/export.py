"""``amlc export azure-load-testing | kubernetes DIR``: a load-test bundle for engines others
operate (never imports Locust; the key never goes in a bundle, only where it is kept)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from aml_client.cli import checks, output
from aml_client.errors import ConfigError

if TYPE_CHECKING:
    from aml_client.bench.export import ExportSettings

_ENDPOINT = typer.Option("--endpoint", "-e", help="Profile name or 'local' (default: as amlc "
                         "score).")
_PAYLOAD = typer.Option("--payload", "-p", help="Rows or a payload (JSON, JSONL, CSV), copied "
                        "into the bundle. Default: the swagger's example.")
_SWAGGER = typer.Option("--swagger", help="Swagger file (default: the endpoint's).")
_SPAWN = typer.Option("--spawn-rate", "-r", callback=checks.positive_number,
                      help="Users started per second (default: all within 10 s, or within "
                      "the first half of a shorter run).")
_DURATION = typer.Option("--duration", "-t", help="Run time, e.g. 60s, 5m.")
_SLO = typer.Option("--slo", help="Objective, e.g. 'p99<=200ms', 'error_rate<=1%' "
                    "(repeatable).")


def _azure_criteria(slo_texts: list[str] | None) -> None:
    """Objectives the service cannot judge are refused before the endpoint is asked."""
    from aml_client.bench.export import azure_failure_criteria
    from aml_client.bench.report import slo

    try:
        objectives = slo.parse_slos(slo_texts or [])
    except ValueError as exc:
        raise ConfigError(f"--slo: {exc}") from exc
    azure_failure_criteria(objectives)


def _check_out(directory: Path) -> None:
    if directory.exists() and not directory.is_dir():
        raise ConfigError(f"{directory}: exists and is not a directory")


def _settings(
    endpoint: str | None, payload: Path | None, swagger: Path | None, users: int,
    spawn_rate: float | None, duration: str, slo_texts: list[str] | None,
) -> ExportSettings:
    from aml_client.bench.export import ExportSettings, default_spawn_rate
    from aml_client.bench.plan import parse_duration
    from aml_client.bench.report import slo
    from aml_client.bench.target import build_run_target

    try:
        duration_s = parse_duration(duration)
    except ValueError as exc:
        raise ConfigError(f"--duration: {exc}") from exc
    if duration_s < 1:
        raise ConfigError(f"--duration: {duration!r} is under 1 s")
    try:
        objectives = slo.parse_slos(slo_texts or [])
    except ValueError as exc:
        raise ConfigError(f"--slo: {exc}") from exc
    if payload is not None and not payload.is_file():
        raise ConfigError(f"--payload {payload}: no such file")
    # Built as a bench run builds it: the rows are checked against the endpoint's schema.
    target = build_run_target(endpoint, payload, swagger=swagger)
    if payload is not None:
        data = payload.read_bytes()
        suffix = payload.suffix.lower() if payload.suffix.lower() in (
            ".json", ".jsonl", ".csv") else ".json"
        name = f"payload{suffix}"
    else:
        data, name = target.bodies[0], "payload.json"
    return ExportSettings(
        name=target.name, scoring_uri=target.scoring_uri, users=users,
        spawn_rate=spawn_rate or default_spawn_rate(users, duration_s),
        duration_s=max(1, round(duration_s)),
        payload_name=name, payload=data, objectives=objectives,
        authenticated=target.authenticated,
    )


def azure_load_testing(
    directory: Annotated[Path, typer.Argument(help="Where the bundle goes.")],
    key_secret: Annotated[
        str | None,
        typer.Option("--key-secret", help="Key Vault secret identifier of the endpoint's key "
                     "(https://VAULT.vault.azure.net/secrets/NAME): the engines read it as "
                     "AMLC_KEY."),
    ] = None,
    test_id: Annotated[
        str, typer.Option("--test-id", help="The test's id: 2-50 of a-z, 0-9, _ and -.")
    ] = "amlc-load-test",
    engines: Annotated[
        int, typer.Option("--engines", min=1, max=400, help="Test engine instances.")
    ] = 1,
    users: Annotated[
        int, typer.Option("--users", "-u", min=1, help="Users on EACH engine (the service's "
                          "rule).")
    ] = 10,
    duration: Annotated[str, _DURATION] = "5m",
    spawn_rate: Annotated[float | None, _SPAWN] = None,
    slo_texts: Annotated[list[str] | None, _SLO] = None,
    auto_stop_errors: Annotated[
        int, typer.Option("--auto-stop-errors", min=0, max=100, help="Stop the test when this "
                          "% of requests fail within --auto-stop-window (0: never).")
    ] = 90,
    auto_stop_window: Annotated[
        int, typer.Option("--auto-stop-window", min=1, help="Seconds of the error window.")
    ] = 60,
    endpoint: Annotated[str | None, _ENDPOINT] = None,
    payload: Annotated[Path | None, _PAYLOAD] = None,
    swagger: Annotated[Path | None, _SWAGGER] = None,
) -> None:
    """Write an Azure Load Testing bundle: loadtest.yaml (testType Locust), the locustfile,
    the payload and requirements.txt. Upload it with az load test create --load-test-config-file.
    """
    from aml_client.bench.export import check_azure_options, write_azure_load_testing

    check_azure_options(test_id, engines, key_secret, auto_stop_errors)
    _check_out(directory)
    _azure_criteria(slo_texts)
    settings = _settings(endpoint, payload, swagger, users, spawn_rate, duration, slo_texts)
    path = write_azure_load_testing(
        directory, settings, test_id=test_id, engines=engines, key_secret=key_secret,
        auto_stop_errors=auto_stop_errors, auto_stop_window_s=auto_stop_window)
    output.console.print(f"wrote {path} ({engines} engine(s) x {users} users, "
                         f"{settings.duration_s} s)", markup=False)


def kubernetes(
    directory: Annotated[Path, typer.Argument(help="Where the bundle goes.")],
    secret: Annotated[
        str | None,
        typer.Option("--secret", help="The Kubernetes Secret holding the endpoint's key "
                     "(read as AMLC_KEY)."),
    ] = None,
    secret_key: Annotated[str, typer.Option("--secret-key", help="Its key.")] = "key",
    name: Annotated[
        str, typer.Option("--name", help="The LocustTest's name.")
    ] = "amlc-load-test",
    namespace: Annotated[str | None, typer.Option("--namespace", help="Namespace.")] = None,
    workers: Annotated[
        int, typer.Option("--workers", "-w", min=1, max=500, help="Worker pods.")
    ] = 2,
    users: Annotated[
        int, typer.Option("--users", "-u", min=1, help="Users in all, spread over the workers.")
    ] = 10,
    duration: Annotated[str, _DURATION] = "5m",
    spawn_rate: Annotated[float | None, _SPAWN] = None,
    image: Annotated[
        str | None, typer.Option("--image", help="Image with amlc (default: the one the "
                                 "bundle's Dockerfile builds, amlc-locust:VERSION).")
    ] = None,
    endpoint: Annotated[str | None, _ENDPOINT] = None,
    payload: Annotated[Path | None, _PAYLOAD] = None,
    swagger: Annotated[Path | None, _SWAGGER] = None,
) -> None:
    """Write a Kubernetes bundle for the Locust operator: kubernetes.yaml (ConfigMap and
    LocustTest: a master and N workers, the key from a Secret), the locustfile, Dockerfile."""
    from aml_client.bench.export import check_kubernetes_options, write_kubernetes

    check_kubernetes_options(name, workers, secret)
    _check_out(directory)
    settings = _settings(endpoint, payload, swagger, users, spawn_rate, duration, None)
    path = write_kubernetes(directory, settings, name=name, workers=workers,
                            secret_name=secret, secret_key=secret_key, image=image,
                            namespace=namespace)
    output.console.print(f"wrote {path} (master + {workers} workers, {users} users, "
                         f"{settings.duration_s} s)", markup=False)


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Bundles that run this load test on Azure Load Testing or "
                        "Kubernetes.", no_args_is_help=True)
    group.command("azure-load-testing")(azure_load_testing)
    group.command("kubernetes")(kubernetes)
    app.add_typer(group, name="export")
