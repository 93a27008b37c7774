"""The ``amlc`` application: registers each command group and turns errors into exit codes.

Exit codes: 0 success, 1 unexpected failure, 2 bad input, arguments or configuration, 3 the
endpoint refused the credential, 4 any other endpoint failure, 5 a benchmark missed an
objective, 130 interrupted. Every failure is one ``error:`` line on stderr (and, with
``--json``, an ``{"error": {...}}`` object on stdout); ``AMLC_DEBUG=1`` shows tracebacks,
nothing else does.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Sequence
from typing import Annotated, Any, NoReturn

import typer

from aml_client.cli import output

app = typer.Typer(
    name="amlc",
    help="Call, prove and load-test ML scoring endpoints (Azure ML first).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

#: Exit code of a bad command line (unknown option, value out of range), as for bad input.
USAGE_EXIT = 2
#: Exit code of an interrupted command (128 + SIGINT).
INTERRUPTED_EXIT = 130


def _version() -> str:
    """The package's own ``__version__`` (one place for it, right even from a source tree)."""
    import aml_client

    return aml_client.__version__


def _show_version(value: bool) -> None:
    if value:
        output.result(f"amlc {_version()}", markup=False)
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option(
            "--version", is_eager=True, callback=_show_version, help="Print the version and exit."
        ),
    ] = False,
) -> None:
    """Call, prove and load-test ML scoring endpoints (Azure ML first)."""


def _register() -> None:
    # Each module adds its commands; heavy imports (locust, pandas, sklearn) stay inside them.
    from aml_client.cli import (
        bench,
        endpoint,
        export,
        local,
        logs,
        pipeline,
        report,
        score,
        swagger,
    )

    for module in (score, endpoint, local, swagger, bench, export, report, logs, pipeline):
        module.register(app)


def _quiet_third_parties(debug: bool) -> None:
    """Only amlc's own warnings reach the terminal, as ``warning:`` lines; other libraries'
    log records (azure, httpx, aiohttp, gunicorn, locust …) show only with ``AMLC_DEBUG=1``."""
    if debug:
        logging.basicConfig(level=logging.DEBUG)
        return
    handler = output.LogLine()
    handler.addFilter(lambda record: record.name.split(".")[0] == "aml_client")
    logging.basicConfig(level=logging.WARNING, handlers=[handler])
    # Python warnings of other libraries (scikit-learn, pandas …) go the same way.
    logging.captureWarnings(True)


def wants_json(command: Any, args: Sequence[str]) -> bool:
    """True when ``args`` name a command that has ``--json`` and pass it."""
    head = args[: args.index("--")] if "--" in args else args
    if "--json" not in head:
        return False
    node = command
    for token in args:
        if token == "--" or not hasattr(node, "commands"):
            break
        if token.startswith("-"):
            continue
        sub = node.commands.get(token)
        if sub is None:
            return False
        node = sub
    return any("--json" in getattr(param, "opts", ()) for param in getattr(node, "params", ()))


def fail(
    message: str, exit_code: int, kind: str, *, as_json: bool, **details: Any
) -> NoReturn:
    """End the command: one ``error:`` line, the JSON error object with ``--json``, the code."""
    output.error(message)
    if as_json:
        output.print_json(output.error_document(message, exit_code, kind, **details))
    sys.exit(exit_code)


def _details(exc: BaseException) -> dict[str, Any]:
    """What a script may want besides the message: the problems of a validation error, the
    HTTP status and request id of an endpoint error."""
    from aml_client.errors import EndpointError, RowProblem

    problems = [p for p in getattr(exc, "problems", None) or () if isinstance(p, RowProblem)]
    if problems:
        return {
            "problems": [
                {"row": p.row, "column": p.column, "message": p.message} for p in problems
            ]
        }
    if isinstance(exc, EndpointError):
        return {"status_code": exc.status_code, "request_id": exc.request_id}
    return {}


try:  # typer ≥ 0.22 carries its own copy of click
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError
except ImportError:  # pragma: no cover - older typer on click itself
    from click.exceptions import (  # type: ignore[assignment,no-redef,unused-ignore]
        ClickException,
        NoArgsIsHelpError,
        UsageError,
    )


def main(argv: Sequence[str] | None = None) -> None:
    args = list(sys.argv[1:] if argv is None else argv)
    debug = os.environ.get("AMLC_DEBUG") == "1"
    _quiet_third_parties(debug)
    from aml_client.errors import AmlcError

    _register()
    command = typer.main.get_command(app)
    as_json = wants_json(command, args)
    try:
        code = command.main(args=args, prog_name="amlc", standalone_mode=False)
    except NoArgsIsHelpError:
        sys.exit(USAGE_EXIT)  # the help is printed already
    except UsageError as exc:
        where = exc.ctx.command_path if exc.ctx is not None else "amlc"
        fail(f"{exc.format_message()} (see {where} --help)", USAGE_EXIT, "usage", as_json=as_json)
    except ClickException as exc:
        fail(exc.format_message(), exc.exit_code, "usage", as_json=as_json)
    except typer.Abort:  # Ctrl-C or end of input at a prompt
        fail("interrupted", INTERRUPTED_EXIT, "interrupted", as_json=as_json)
    except AmlcError as exc:
        if debug:
            raise
        fail(str(exc), exc.exit_code, output.error_kind(exc), as_json=as_json, **_details(exc))
    except KeyboardInterrupt:
        fail("interrupted", INTERRUPTED_EXIT, "interrupted", as_json=as_json)
    except BrokenPipeError:
        # stdout went away (``amlc … | head``): nothing left to say to anyone.
        sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - silence the flush at exit
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        sys.exit(1)
    except Exception as exc:
        if debug:
            raise
        fail(
            f"unexpected {type(exc).__name__}: {exc} (AMLC_DEBUG=1 shows the traceback)",
            1,
            "unexpected",
            as_json=as_json,
        )
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":  # pragma: no cover
    main()
