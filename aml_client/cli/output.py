"""Where the CLI writes: people read stderr (rich), scripts read stdout (``--json``)."""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape

#: Tables, progress and messages for people.
console = Console(stderr=True, highlight=False)
#: Machine output (``--json``) and data the user asked for on stdout.
stdout = Console(highlight=False, soft_wrap=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout, nothing else, so ``amlc ... --json | jq`` works."""
    sys.stdout.write(json.dumps(data, indent=2, default=str, ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error(message: str) -> None:
    """One red line on stderr."""
    console.print(f"[bold red]error:[/] {escape(message)}", highlight=False, soft_wrap=True)


def note(message: str) -> None:
    console.print(message, soft_wrap=True)


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
