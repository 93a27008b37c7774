"""Reading rows to score from JSON, JSON Lines, CSV files or stdin.

Hand-edited ``data.json`` files are often broken (two documents pasted together, a response
written over the request), so every read error names the file and the line. CSV and JSON Lines
are streamed: a million-row file is never held in memory.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any, TextIO

from aml_client.envelope import Convention, unwrap
from aml_client.errors import InputError, RowProblem, ValidationError
from aml_client.schema import ScoringSchema

__all__ = ["RowSource", "iter_batches", "read_rows"]

_FORMATS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
STDIN = "-"


class RowSource:
    """Rows from one input, iterable (again and again for files; once for stdin).

    ``convention`` and ``global_parameters`` are set for a JSON payload, so a body can be
    re-sent the way it was written.
    """

    def __init__(
        self,
        path: str,
        format: str,
        *,
        schema: ScoringSchema | None = None,
        text: str | None = None,
    ):
        self.path = path
        self.format = format
        self.schema = schema
        self.convention: Convention | None = None
        self.global_parameters: dict[str, Any] | float | None = None
        self._text = text
        self._rows: list[Any] | None = None
        if format == "json":
            self._rows = self._load_json()

    def __iter__(self) -> Iterator[Any]:
        if self._rows is not None:
            return iter(self._rows)
        if self.format == "jsonl":
            return self._iter_jsonl()
        return self._iter_csv()

    def __repr__(self) -> str:
        return f"RowSource({self.path!r}, format={self.format!r})"

    def to_list(self) -> list[Any]:
        return list(self)

    # -- formats -----------------------------------------------------------------------------

    def _open(self) -> TextIO:
        if self._text is not None:
            return io.StringIO(self._text, newline="")
        try:
            return open(self.path, encoding="utf-8-sig", newline="")
        except FileNotFoundError:
            raise InputError("no such file", path=self.path) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path=self.path) from None

    def _load_json(self) -> list[Any]:
        with self._open() as handle:
            try:
                text = handle.read()
            except UnicodeDecodeError as exc:
                raise InputError(f"not UTF-8 text ({exc.reason})", path=self.path) from None
        text = text.lstrip("\ufeff")
        if not text.strip():
            raise InputError("empty file, expected JSON", path=self.path)
        try:
            body = json.loads(text)
        except json.JSONDecodeError as exc:
            raise InputError(_json_message(exc), path=self.path, line=exc.lineno) from None
        try:
            rows, convention, global_parameters = unwrap(body)
        except ValidationError as exc:
            raise InputError(str(exc), path=self.path) from None
        self.convention = convention if isinstance(body, dict) else None
        self.global_parameters = global_parameters
        return rows

    def _iter_jsonl(self) -> Iterator[Any]:
        with self._open() as handle:
            for number, line in enumerate(handle, start=1):
                line = line.strip().lstrip("\ufeff")
                if not line:
                    continue
                try:
                    yield json.loads(line)
                except json.JSONDecodeError as exc:
                    raise InputError(_json_message(exc), path=self.path, line=number) from None

    def _iter_csv(self) -> Iterator[Any]:
        with self._open() as handle:
            reader = csv.reader(handle, strict=True)  # a stray quote is an error, not data
            try:
                header = next(reader, None)
            except csv.Error as exc:
                raise InputError(f"bad CSV: {exc}", path=self.path, line=reader.line_num) from None
            if not header:
                return
            header = [name.strip().lstrip("\ufeff") for name in header]
            if len(set(header)) != len(header):
                dupes = sorted({n for n in header if header.count(n) > 1})
                raise InputError(
                    f"duplicate column(s) in the header: {dupes}", path=self.path, line=1
                )
            row_number = 0
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except csv.Error as exc:
                    raise InputError(
                        f"bad CSV: {exc}", path=self.path, line=reader.line_num
                    ) from None
                if not values or all(not v.strip() for v in values):
                    continue
                row_number += 1
                if len(values) != len(header):
                    raise InputError(
                        f"{len(values)} value(s) but the header has {len(header)} column(s)",
                        path=self.path,
                        line=reader.line_num,
                    )
                row = dict(zip(header, values, strict=True))
                if self.schema is not None and self.schema.row_kind == "record":
                    row = self._coerce(row, row_number, reader.line_num)
                yield row

    def _coerce(self, row: dict[str, str], row_number: int, line: int) -> dict[str, Any]:
        assert self.schema is not None
        try:
            return self.schema.coerce_row(row)
        except ValidationError as exc:
            problems = [RowProblem(row_number, p.column, p.message) for p in exc.problems]
            raise ValidationError(problems, source=f"{self.path}:{line}") from None


def read_rows(
    source: str | Path,
    *,
    schema: ScoringSchema | None = None,
    format: str | None = None,
) -> RowSource:
    """Open rows from a file (format from the suffix, or ``format=``) or ``"-"`` for stdin.

    JSON may be a payload in either convention or a bare list of rows; CSV values are converted
    to the schema's types when a schema is given (else left as strings).
    """
    name = str(source)
    if name == STDIN:
        text = sys.stdin.read()
        return RowSource("<stdin>", format or _sniff(text), schema=schema, text=text)
    path = Path(source)
    fmt: str | None = format or _FORMATS.get(path.suffix.lower())
    if fmt is None:
        if not path.exists():
            raise InputError("no such file", path=name)
        fmt = _sniff(_head(path))
    if fmt not in ("json", "jsonl", "csv"):
        raise InputError(f"unknown format {fmt!r} (json, jsonl or csv)", path=name)
    if not path.is_file():
        raise InputError("no such file", path=name)
    return RowSource(name, fmt, schema=schema)


def iter_batches(rows: Iterable[Any], size: int) -> Iterator[list[Any]]:
    """Consecutive lists of at most ``size`` rows."""
    if size < 1:
        raise ValueError("batch size must be at least 1")
    batch: list[Any] = []
    for row in rows:
        batch.append(row)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


def _head(path: Path) -> str:
    try:
        with open(path, encoding="utf-8-sig", errors="replace") as handle:
            return handle.read(65536)
    except OSError as exc:
        raise InputError(f"cannot read: {exc.strerror or exc}", path=str(path)) from None


def _sniff(text: str) -> str:
    """JSON, JSON Lines or CSV, judged from the content (for stdin and unknown suffixes)."""
    stripped = text.lstrip("\ufeff \t\r\n")
    if not stripped.startswith(("{", "[")):
        return "csv"
    try:
        json.loads(stripped)
        return "json"
    except json.JSONDecodeError:
        pass
    first = stripped.splitlines()[0]
    try:
        value = json.loads(first)
    except json.JSONDecodeError:
        return "json"  # report the JSON error with its line
    if isinstance(value, dict) and ("data" in value or "Inputs" in value):
        return "json"  # a payload followed by junk: report that, not one odd row
    return "jsonl"


def _json_message(exc: json.JSONDecodeError) -> str:
    message = f"not valid JSON: {exc.msg} at column {exc.colno}"
    if exc.msg.startswith("Extra data"):
        message += " (a second JSON document follows the first; was something pasted over it?)"
    return message
