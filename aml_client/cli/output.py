"""Where the CLI writes.

stdout holds what a command produces: its data (``--json``, predictions, swagger documents),
its tables, its status and its result lines ("saved …", "stopped …"), so ``amlc … | grep``
sees them. stderr holds what happens on the way: progress, warnings, hints and the one
``error:`` line of a failure. With ``--json``, a failure is also a JSON object on stdout:
``{"error": {"message": …, "exit_code": …, "kind": …}}``.

Tables never cut a figure, an id or a name (:func:`table`): drawn as they are when they fit,
at their own width on a pipe or a file (a CI log has no right edge), and as plain lines on a
terminal narrower than them.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.measure import Measurement
from rich.segment import Segments
from rich.table import Table
from rich.text import Text

#: Progress, warnings, hints and errors for people (stderr).
console = Console(stderr=True, highlight=False, soft_wrap=True)
#: What the command produces: tables, status, results, data (stdout).
stdout = Console(highlight=False, soft_wrap=True)


def table_width(grid: Table, target: Console | None = None) -> int:
    """The width ``grid`` takes with nothing wrapped or cut."""
    target = target or stdout
    options = target.options.update_width(100_000)
    return Measurement.get(target, options, grid).maximum


def plain_lines(grid: Table, target: Console | None = None) -> list[str]:
    """``grid`` as plain lines, every cell whole: its title, then one line per row, the first
    cell followed by ``header value`` pairs (``label: value`` without headers)."""
    target = target or stdout

    def plain(cell: object) -> str:
        if isinstance(cell, Text):
            return cell.plain
        if isinstance(cell, str):
            return target.render_str(cell).plain
        return str(cell)

    lines = []
    if grid.title:
        lines.append(plain(grid.title))
    headers = [plain(c.header) if grid.show_header else "" for c in grid.columns]
    cells = [[plain(cell) for cell in column.cells] for column in grid.columns]
    for row in range(grid.row_count):
        values = [column[row] if row < len(column) else "" for column in cells]
        first, rest = values[0], list(zip(headers[1:], values[1:], strict=True))
        parts = [f"{head} {value}".strip() for head, value in rest if value.strip()]
        head = f"{headers[0]} {first}".strip() if headers[0] else first
        lines.append(f"{head}: {'; '.join(parts)}" if parts else head)
    return lines


def table(grid: Table, target: Console | None = None) -> None:
    """Print ``grid`` without ever cutting a cell: as drawn when it fits the width; at its own
    width when the output is not a terminal (a pipe, a file, a CI log); as plain lines
    (:func:`plain_lines`) on a terminal narrower than it."""
    target = target or stdout
    width = table_width(grid, target)
    if width <= target.width:
        target.print(grid)
    elif not target.is_terminal:
        # Console.print caps a width at the console's: render at the table's own, and print
        # the lines uncropped.
        lines = target.render(grid, target.options.update_width(width))
        target.print(Segments(lines), soft_wrap=True)
    else:
        for line in plain_lines(grid, target):
            target.print(Text(line), soft_wrap=True)


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
