"""``amlc pipeline run``: submit a published pipeline (Azure ML SDK v1) and optionally wait for it.

The Entra ID token comes from azure-identity's DefaultAzureCredential for Resource Manager; it
goes only to the pipeline URL's origin, and only over https (http to 127.0.0.1 aside).
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from aml_client.cli import output
from aml_client.errors import EndpointError


def run(
    url: Annotated[str, typer.Argument(help="The published pipeline's REST endpoint.")],
    experiment: Annotated[str, typer.Option("--experiment", help="Experiment to run it in.")],
    param: Annotated[
        list[str] | None,
        typer.Option(
            "--param",
            metavar="NAME=VALUE",
            help="Pipeline parameter; 3 and 0.5 are sent as numbers, anything else as text.",
        ),
    ] = None,
    param_str: Annotated[
        list[str] | None,
        typer.Option("--param-str", metavar="NAME=VALUE", help="Pipeline parameter sent as text."),
    ] = None,
    description: Annotated[
        str | None, typer.Option("--description", help="Description of the run.")
    ] = None,
    tag: Annotated[
        list[str] | None, typer.Option("--tag", metavar="NAME=VALUE", help="Tag on the run.")
    ] = None,
    wait: Annotated[bool, typer.Option("--wait", help="Wait until the run ends.")] = False,
    poll_interval: Annotated[
        float, typer.Option("--poll-interval", min=0.01, help="Seconds between status checks.")
    ] = 15.0,
    wait_timeout: Annotated[
        float, typer.Option("--wait-timeout", min=0.0, help="Give up waiting after this long (s).")
    ] = 3600.0,
    timeout: Annotated[
        float, typer.Option("--timeout", min=0.1, help="Seconds per request.")
    ] = 60.0,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Submit a run of a published pipeline and print its run id.

    With --wait, follow it (progress on stderr) until it ends: exit 0 when it finished, 4 when
    it failed, was canceled, or is still running after --wait-timeout.
    """
    from aml_client.azure.pipeline import (
        PipelineClient,
        PipelineRequest,
        RunStatus,
        check_pipeline_url,
        collect,
        parse_assignment,
        status_url,
    )

    pairs = [parse_assignment(p) for p in param or []]
    pairs += [parse_assignment(p, option="--param-str", typed=False) for p in param_str or []]
    tags = collect(
        [parse_assignment(t, option="--tag", typed=False) for t in tag or []], option="--tag"
    )
    request = PipelineRequest(
        experiment=experiment,
        parameters=collect(pairs),
        description=description,
        tags={k: str(v) for k, v in tags.items()},
    )
    request.body()  # bad input fails before anything is sent
    url = check_pipeline_url(url)
    if wait:
        status_url(url, "probe")  # a URL whose runs cannot be followed fails before submitting

    def progress(status: RunStatus, elapsed_s: float) -> None:
        detail = f" ({status.detail})" if status.detail else ""
        output.console.print(
            f"run {status.run_id}: {status.status}{detail} after {elapsed_s:.0f} s",
            markup=False,
            highlight=False,
        )

    with PipelineClient(url, timeout_s=timeout) as client:
        submitted = client.submit(request)
        if not json_out:
            output.stdout.print(submitted.run_id, markup=False, highlight=False)
        final = None
        if wait:
            final = client.wait(
                submitted.run_id,
                poll_interval_s=poll_interval,
                timeout_s=wait_timeout,
                on_change=progress,
            )
    if json_out:
        result: dict[str, Any] = {
            "run_id": submitted.run_id,
            "experiment": experiment,
            "status": final.status if final else None,
            "detail": final.detail if final else None,
        }
        output.print_json(result)
    if final is not None and not final.succeeded:
        raise EndpointError(f"pipeline run {final.run_id} ended {final.status}")


def register(app: typer.Typer) -> None:
    group = typer.Typer(help="Published pipelines (Azure ML).", no_args_is_help=True)
    group.command("run")(run)
    app.add_typer(group, name="pipeline")
