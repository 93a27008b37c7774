"""The ``amlc`` application: registers each command group and turns errors into exit codes.

Exit codes: 0 success, 1 unexpected failure, 2 bad input or configuration, 3 the endpoint
refused the credential, 4 any other endpoint failure, 5 a benchmark missed an objective,
130 interrupted. ``AMLC_DEBUG=1`` shows tracebacks; nothing else does.
"""

from __future__ import annotations

import logging
import os
import sys

import typer

from aml_client.cli import output

app = typer.Typer(
    name="amlc",
    help="Call, prove and load-test ML scoring endpoints (Azure ML first).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _register() -> None:
    # Each module adds its commands; heavy imports (locust, pandas, sklearn) stay inside them.
    from aml_client.cli import bench, endpoint, local, logs, pipeline, report, score, swagger

    for module in (score, endpoint, local, swagger, bench, report, logs, pipeline):
        module.register(app)


def main() -> None:
    debug = os.environ.get("AMLC_DEBUG") == "1"
    if debug:
        logging.basicConfig(level=logging.DEBUG)
    else:
        logging.basicConfig(level=logging.WARNING, handlers=[output.LogLine()])
        # The Azure SDK warns about what amlc then reports as its one error line.
        logging.getLogger("azure").setLevel(logging.ERROR)
    from aml_client.errors import AmlcError

    _register()
    try:
        app()
    except AmlcError as exc:
        if debug:
            raise
        output.error(str(exc))
        sys.exit(exc.exit_code)
    except KeyboardInterrupt:
        output.error("interrupted")
        sys.exit(130)


if __name__ == "__main__":  # pragma: no cover
    main()
