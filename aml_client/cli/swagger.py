"""``amlc swagger …``: fetch, show, validate, example, codegen and serve an endpoint's swagger.

Each command takes the swagger from a FILE or, without one, from the endpoint that
``--endpoint`` (or the default resolution) picks, calls one library function
(aml_client.swagger) and renders the result.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from aml_client.cli import checks, output

if TYPE_CHECKING:
    from aml_client.config import Target
    from aml_client.schema import ScoringSchema
    from aml_client.swagger.lint import ValidationReport

FileArg = Annotated[
    Path | None,
    typer.Argument(
        help="A swagger.json file; without it the swagger is fetched from the endpoint.",
        show_default=False,
    ),
]
EndpointOpt = Annotated[
    str | None,
    typer.Option(
        "--endpoint",
        "-e",
        help="Profile name or 'local'; default: AMLC_SCORING_URI, the default profile, "
        "else the running local endpoint.",
        show_default=False,
    ),
]
OpenapiOpt = Annotated[
    str | None,
    typer.Option(
        "--openapi",
        help="Ask the endpoint for OpenAPI 3 (?version=3; also '3.1') instead of Swagger 2.0.",
        show_default=False,
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Machine-readable output on stdout.")]


def _document(
    file: Path | None, endpoint: str | None, openapi: str | None = None
) -> tuple[dict[str, Any], str]:
    """The swagger from FILE, else fetched from the resolved endpoint; plus a label for it."""
    from aml_client.swagger.fetch import load_document

    return load_document(file, endpoint=endpoint, openapi=openapi)


def _schema(
    file: Path | None, endpoint: str | None, openapi: str | None = None
) -> tuple[ScoringSchema, str]:
    doc, label = _document(file, endpoint, openapi)
    return _readable(doc, label), label


def _readable(doc: dict[str, Any], label: str) -> ScoringSchema:
    """The document's schema; a SchemaError names the document it comes from."""
    from aml_client.errors import SchemaError
    from aml_client.schema import load_schema

    try:
        return load_schema(doc)
    except SchemaError as exc:
        if label in str(exc):
            raise
        raise SchemaError(f"{label}: {exc}") from exc


# --------------------------------------------------------------------------- fetch


def fetch(
    endpoint: EndpointOpt = None,
    out: Annotated[
        str | None,
        typer.Option(
            "--output", "-o", metavar="FILE", help="Write to FILE instead of stdout.",
            show_default=False,
        ),
    ] = None,
    openapi: OpenapiOpt = None,
) -> None:
    """Download the endpoint's swagger (with its credential when it has one)."""
    from rich.markup import escape

    from aml_client.config import resolve_target
    from aml_client.swagger.fetch import fetch_swagger
    from aml_client.swagger.summary import describe_version

    path = None if out is None else checks.writable_file(out, "-o", example="swagger.json")
    fetched = fetch_swagger(resolve_target(endpoint), openapi=openapi)
    if path is None:
        sys.stdout.write(fetched.text if fetched.text.endswith("\n") else fetched.text + "\n")
        return
    checks.write_file(path, fetched.text)
    output.result(
        f"saved {describe_version(fetched.document)} from {escape(fetched.url)} "
        f"to [bold]{escape(str(path))}[/]"
    )


# --------------------------------------------------------------------------- show


def show(
    file: FileArg = None,
    endpoint: EndpointOpt = None,
    openapi: OpenapiOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Summarise the swagger: routes, auth, input convention, columns, output."""
    from aml_client.swagger.summary import summarize

    schema, label = _schema(file, endpoint, openapi)
    summary = summarize(schema)
    if as_json:
        output.print_json({"source": label, **summary})
        return
    _render_summary(summary, label)


def _render_summary(summary: dict[str, Any], label: str) -> None:
    from rich.markup import escape as e
    from rich.table import Table

    console = output.stdout
    console.print(f"[bold]{e(summary['title'])}[/]  [dim]{summary['version']} · {e(label)}[/]")
    if summary.get("description"):
        console.print(f"[dim]{e(str(summary['description']))}[/]")
    console.print()
    routes = Table(title="Routes", title_justify="left", show_edge=False, pad_edge=False)
    routes.add_column("path")
    routes.add_column("methods")
    routes.add_column("auth")
    routes.add_column("description", overflow="fold")
    for route in summary["routes"]:
        routes.add_row(
            e(route["path"]),
            ", ".join(route["methods"]),
            "Bearer" if route["auth"] else "-",
            e(route.get("summary") or ""),
        )
    output.table(routes, console)
    auth = summary["auth"]
    if auth["bearer"]:
        auth_text = "Authorization: Bearer <key or token>"
        auth_text += " (required on /score)" if auth["required"] else " (declared, not required)"
    elif auth["schemes"]:
        auth_text = e(", ".join(f"{s['name']} ({s['type']})" for s in auth["schemes"]))
    else:
        auth_text = "none declared"
    console.print()
    console.print(f"[bold]Auth[/]        {e(auth_text)}", soft_wrap=True)
    console.print(
        f"[bold]Convention[/]  {summary['convention']}: {e(summary['request_shape'])}",
        soft_wrap=True,
    )
    if summary["row_kind"] != "record":
        item = summary.get("item_type") or "any"
        kind = {"scalar": f"a single {item}", "array": f"an array of {item}"}.get(
            summary["row_kind"], "not described"
        )
        console.print(f"[bold]Rows[/]        each row is {kind}", soft_wrap=True)
    console.print(f"[bold]Output[/]      {e(summary['output']['shape'])}", soft_wrap=True)
    if summary["columns"]:
        console.print()
        columns = Table(
            title=f"Columns ({len(summary['columns'])})",
            title_justify="left",
            show_edge=False,
            pad_edge=False,
        )
        columns.add_column("name")
        columns.add_column("type")
        columns.add_column("format", style="dim")
        columns.add_column("required")
        columns.add_column("example", overflow="fold")
        for col in summary["columns"]:
            example_text = "" if col["example"] is None else json.dumps(col["example"], default=str)
            columns.add_row(
                e(col["name"]),
                col["type"],
                e(col.get("format") or ""),
                "yes" if col["required"] else "",
                e(example_text),
            )
        output.table(columns, console)


# --------------------------------------------------------------------------- validate


def validate(
    file: FileArg = None,
    endpoint: EndpointOpt = None,
    openapi: OpenapiOpt = None,
    strict: Annotated[
        bool, typer.Option("--strict", help="Fail on warnings too, not only on errors.")
    ] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check the OpenAPI structure and what scoring needs; exit 2 on errors."""
    from aml_client.swagger.lint import validate_document

    doc, label = _document(file, endpoint, openapi)
    report = validate_document(doc, source=label)
    failed = not report.ok or (strict and bool(report.warnings))
    if as_json:
        output.print_json(report.to_dict())
    else:
        _render_report(report)
    if failed:
        raise typer.Exit(2)


def _render_report(report: ValidationReport) -> None:
    from rich.markup import escape

    console = output.stdout
    for finding in report.findings:
        colour = "red" if finding.level == "error" else "yellow"
        console.print(
            f"[{colour}]{finding.level}[/] [cyan]{escape(finding.path)}[/]: "
            f"{escape(finding.message)}",
            markup=True,
            highlight=False,
            soft_wrap=True,
        )
    errors, warnings = len(report.errors), len(report.warnings)
    verdict = "[green]valid[/]" if report.ok else "[red]invalid[/]"
    console.print(
        f"{escape(report.source)}: {verdict} {report.version} · "
        f"{errors} error{'s' if errors != 1 else ''}, "
        f"{warnings} warning{'s' if warnings != 1 else ''}",
        soft_wrap=True,
    )


# --------------------------------------------------------------------------- example


def example(
    file: FileArg = None,
    endpoint: EndpointOpt = None,
    rows: Annotated[
        int, typer.Option("--rows", "-n", min=1, max=10_000, help="How many rows.")
    ] = 1,
    openapi: OpenapiOpt = None,
) -> None:
    """Print a valid request body (JSON on stdout) in the endpoint's convention."""
    schema, _label = _schema(file, endpoint, openapi)
    output.print_json(schema.example_payload(rows))


# --------------------------------------------------------------------------- codegen


def codegen(
    file: FileArg = None,
    endpoint: EndpointOpt = None,
    out: Annotated[
        str,
        typer.Option("--output", "-o", metavar="FILE", help="Module to write ('-' for stdout)."),
    ] = "endpoint_client.py",
    openapi: OpenapiOpt = None,
) -> None:
    """Generate a typed Python client module (pydantic models + score())."""
    from rich.markup import escape

    from aml_client.swagger.codegen import generate_client

    path = None if out == "-" else checks.writable_file(out, "-o", example="endpoint_client.py")
    schema, label = _schema(file, endpoint, openapi)
    source = Path(label).name if file is not None else label
    code = generate_client(schema, source=source)
    if path is None:
        sys.stdout.write(code)
        return
    checks.write_file(path, code)
    what = (
        output.plural(len(schema.columns), "column")
        if schema.columns
        else f"{schema.row_kind} rows"
    )
    output.result(
        f"wrote [bold]{escape(out)}[/] "
        f"({escape(schema.title)}: {what}, {schema.convention} convention)"
    )


# --------------------------------------------------------------------------- serve


def serve(
    file: FileArg = None,
    endpoint: EndpointOpt = None,
    port: Annotated[
        int,
        typer.Option(
            "--port", "-p", min=0, max=65535, envvar="AMLC_SWAGGER_PORT",
            help="Port on 127.0.0.1 (0: any).",
        ),
    ] = 8000,
    open_browser: Annotated[
        bool, typer.Option("--open", help="Open the page in the default browser.")
    ] = False,
    openapi: OpenapiOpt = None,
) -> None:
    """Serve Swagger UI offline; "Try it out" goes through a local proxy that adds the key."""
    import logging

    from rich.markup import escape

    from aml_client.errors import ConfigError
    from aml_client.swagger.ui import SwaggerUIServer
    from aml_client.webguard import TOKEN_HEADER

    checks.free_port(port, "--port")
    doc, label = _document(file, endpoint, openapi)
    _readable(doc, label)  # a document the schema reader refuses is not served either
    target = _serve_target(file, endpoint)
    try:
        server = SwaggerUIServer(doc, target=target, port=port)
    except OSError as exc:  # taken between the check and now
        raise ConfigError(
            f"--port {port}: cannot listen on 127.0.0.1:{port} ({exc.strerror or exc})"
        ) from None
    logging.getLogger("aml_client.swagger.ui").setLevel(logging.INFO)
    upstream = target.describe() if target else "no endpoint (requests will fail)"
    # The address holds this run's secret: whoever has it may score with the key.
    output.result(f"Swagger UI for [bold]{escape(label)}[/] at [bold]{server.address}[/]")
    output.note(f"[dim]proxy to {escape(upstream)} · Ctrl-C stops[/]")
    output.note(
        f"[dim]scripts calling the proxy send the secret in the {TOKEN_HEADER} header "
        "(or ?token=); GET never reaches the scoring route[/]"
    )
    if open_browser:
        import webbrowser

        webbrowser.open(server.address)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        output.result("stopped")


def _serve_target(file: Path | None, endpoint: str | None) -> Target | None:
    from aml_client.config import resolve_target
    from aml_client.errors import ConfigError

    if file is None or endpoint is not None:
        return resolve_target(endpoint)
    try:
        return resolve_target(None)
    except ConfigError:
        return None


def register(app: typer.Typer) -> None:
    """Add the ``swagger`` group to the ``amlc`` application."""
    group = typer.Typer(
        help="Fetch, inspect, validate, generate code from and browse an endpoint's swagger.",
        no_args_is_help=True,
    )
    group.command("fetch")(fetch)
    group.command("show")(show)
    group.command("validate")(validate)
    group.command("example")(example)
    group.command("codegen")(codegen)
    group.command("serve")(serve)
    app.add_typer(group, name="swagger")
