"""Where the CLI writes.

stdout holds what a command produces: its data (``--json``, predictions, swagger documents),
its tables, its status and its result lines ("saved …", "stopped …"), so ``amlc … | grep``
sees them. stderr holds what happens on the way: progress, warnings, hints and the one
``error:`` line of a failure. With ``--json``, a failure is also a JSON object on stdout:
``{"error": {"message": …, "exit_code": …, "kind": …}}``.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

#: Progress, warnings, hints and errors for people (stderr).
console = Console(stderr=True, highlight=False, soft_wrap=True)
#: What the command produces: tables, status, results, data (stdout).
stdout = Console(highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout, nothing else, so ``amlc ... --json | jq`` works."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """One red line on stderr."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def warning(message: str) -> None:
    """One yellow line on stderr, printed as is (no markup)."""
    console.print(f"[yellow]warning:[/] {escape(message)}", highlight=False, soft_wrap=True)


def note(message: str) -> None:
    """A line for people on stderr (rich markup): progress, hints, what to do next."""
    console.print(message, soft_wrap=True)


def result(message: str, *, markup: bool = True) -> None:
    """A line of the command's result on stdout (rich markup unless ``markup=False``)."""
    stdout.print(message, markup=markup, highlight=False, soft_wrap=True)


def plural(count: int, singular: str, plural_form: str | None = None) -> str:
    """``1 row``, ``2 rows``, ``1,200 batches``: the count and the right form of the noun."""
    word = singular if count == 1 else plural_form or f"{singular}s"
    return f"{count:,} {word}"


def error_kind(exc: BaseException) -> str:
    """A stable name for what went wrong, for scripts: ``validation``, ``not_found``, … (the
    exception's class name in snake case without ``Error``), unless it names its own."""
    own = getattr(exc, "kind", None)
    if isinstance(own, str) and own:
        return own
    name = type(exc).__name__.removesuffix("Error") or "error"
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def error_document(message: str, exit_code: int, kind: str, **details: Any) -> dict[str, Any]:
    """The ``--json`` form of a failure (see the module docstring)."""
    body: dict[str, Any] = {"message": message, "exit_code": exit_code, "kind": kind}
    body.update({name: value for name, value in details.items() if value is not None})
    return {"error": body}


class LogLine(logging.Handler):
    """Library warnings as one ``warning:`` line each, like amlc's own errors (no logger
    names, no ``WARNING:aml_client:`` prefix)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # a malformed log call must never crash the command
            message = str(record.msg)
        label = record.levelname.lower()
        colour = "red" if record.levelno >= logging.ERROR else "yellow"
        console.print(f"[{colour}]{label}:[/] {escape(message)}", highlight=False, soft_wrap=True)
