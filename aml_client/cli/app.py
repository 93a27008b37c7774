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
from typer.core import TyperCommand, TyperGroup

from aml_client.cli import output

#: The top-level commands in the order ``amlc --help`` lists them: name -> (the module of
#: ``aml_client.cli`` whose ``register`` adds it, its summary in that list). A module is imported
#: and its commands are built only when one of them runs or shows its own help, so ``amlc
#: --help`` costs about what a minimal typer app does. tests/test_cli_help.py checks each summary
#: against the command's own help, and that every registered command is listed here.
COMMANDS: dict[str, tuple[str, str]] = {
    "score": ("score", "Score rows against an endpoint, checked against its swagger first."),
    "health": (
        "score",
        "Check the endpoint's health route (GET /); non-zero exit when it is not healthy.",
    ),
    "bench": ("bench", "Benchmark the endpoint's latency under load (Locust + HdrHistogram)."),
    "logs": (
        "logs",
        "Print the end of a deployment's log (profiles made by `amlc endpoint import`).",
    ),
    "endpoint": ("endpoint", "Manage endpoint profiles (config.toml, keys kept 0600)."),
    "local": (
        "local",
        "Run a local Azure ML endpoint (Microsoft's inference server, a bank-marketing model, "
        "key auth, deployments with a traffic split) on 127.0.0.1.",
    ),
    "swagger": (
        "swagger",
        "Fetch, inspect, validate, generate code from and browse an endpoint's swagger.",
    ),
    "export": (
        "export",
        "Bundles that run this load test on Azure Load Testing or Kubernetes.",
    ),
    "report": ("report", "Show, compare and list stored benchmark reports."),
    "pipeline": ("pipeline", "Published pipelines (Azure ML)."),
}


def load_commands(module_name: str) -> dict[str, Any]:
    """The click commands that ``aml_client.cli.<module_name>.register`` adds, help tidied."""
    from importlib import import_module

    module = import_module(f"aml_client.cli.{module_name}")
    scratch = typer.Typer()
    scratch.callback()(lambda: None)  # a group even when the module adds a single command
    module.register(scratch)
    group = typer.main.get_command(scratch)
    commands = dict(getattr(group, "commands", {}))
    for command in commands.values():
        _tidy_help(command)
    return commands


class _LazyGroup(TyperGroup):
    """The root group: builds a command when it is looked up, not when ``amlc`` starts."""

    _listing = False

    def list_commands(self, ctx: Any) -> list[str]:
        return [*COMMANDS, *(name for name in super().list_commands(ctx) if name not in COMMANDS)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name in COMMANDS and cmd_name not in self.commands:
            if self._listing:  # the root's help lists names and summaries only
                return TyperCommand(name=cmd_name, help=COMMANDS[cmd_name][1])
            for name, command in load_commands(COMMANDS[cmd_name][0]).items():
                self.commands.setdefault(name, command)
        return super().get_command(ctx, cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        self._listing = True
        try:
            super().format_help(ctx, formatter)
        finally:
            self._listing = False


app = typer.Typer(
    name="amlc",
    cls=_LazyGroup,
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
    from aml_client.version import __version__

    return __version__


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


def _reflow(text: str) -> str:
    """Help text as paragraphs: the line breaks of a docstring are not the terminal's, so a
    paragraph is joined into one line (the help renderer wraps it to the terminal's width); a
    line that starts with ``amlc`` is an example and keeps its own line."""
    paragraphs = []
    for paragraph in text.split("\n\n"):
        if paragraph.startswith("\b"):  # click's marker for a paragraph kept as written
            paragraphs.append(paragraph)
            continue
        lines = [line.strip() for line in paragraph.strip().splitlines()]
        joined = lines[:1]
        for line in lines[1:]:
            if line.startswith("amlc "):
                joined.append("\n" + line)
            else:
                joined.append(" " + line)
        paragraphs.append("".join(joined))
    return "\n\n".join(paragraphs)


def _tidy_help(command: Any) -> None:
    """Help that reads well at any width: paragraphs reflowed, brackets shown as written (not
    taken for rich markup), and no type shown for a flag (``--json`` takes no value, so
    ``<bool>`` beside it would only mislead)."""
    import inspect

    from rich.markup import escape

    if command.help:
        command.help = escape(_reflow(inspect.cleandoc(command.help)))
    context = typer.Context(command, help_option_names=["-h", "--help"])
    for param in [*command.params, command.get_help_option(context)]:
        if param is None:
            continue
        if getattr(param, "help", None):
            param.help = escape(_reflow(param.help))
        if getattr(param, "is_flag", False) and not getattr(param, "count", False):
            param.metavar = ""
    for sub in getattr(command, "commands", {}).values():
        _tidy_help(sub)


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
        sub = node.get_command(typer.Context(node), token)
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

    command = typer.main.get_command(app)
    _tidy_help(command)
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
