"""Reading rows to score from JSON, JSON Lines, CSV files or stdin.

Input files come from everywhere: Excel exports in cp1252 or UTF-16, hand-edited ``data.json``
files with two documents pasted together, training data with a label column, a 200 MB payload.
So reading never trusts the file:

- **Encoding.** A UTF-8, UTF-16 or UTF-32 byte-order mark is honoured; otherwise the text is
  UTF-8, or the ``encoding`` given (``--encoding cp1252``). An undecodable byte stops the read
  with its line and byte offset.
- **Limits.** Rows nested deeper than :data:`MAX_DEPTH`, integers longer than Python's
  int-digit limit, lone surrogates (``"\\ud800"``, not Unicode) and lines longer than
  :data:`MAX_LINE_CHARS` are reported with their line, never turned into a traceback later.
- **Streaming.** CSV, JSON Lines and JSON documents alike are read in pieces with the stdlib
  parser (``json.JSONDecoder.raw_decode`` row by row, ``csv`` line by line): a million-row file
  is never held in memory, and every error names the line and column. Each row's end is known
  as a byte offset, so an interrupted batch run can verify the part of the file it already
  scored and seek past it (see :mod:`aml_client.batch`).
- **Bad lines.** Iterating a :class:`RowSource` raises :class:`~aml_client.errors.InputError`
  at the first malformed line (the small path: nothing was sent yet). :meth:`RowSource.reader`
  instead yields a :class:`BadRow` for a CSV line with the wrong number of fields or a stray
  quote, or an invalid JSON Lines line, and reads on: a large run records it as a failed row.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import re
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from aml_client.envelope import Convention, json_kind
from aml_client.errors import InputError, RowProblem, ValidationError
from aml_client.schema import ScoringSchema

__all__ = [
    "MAX_DEPTH",
    "BadRow",
    "Position",
    "RowReader",
    "RowSource",
    "check_columns",
    "iter_batches",
    "read_rows",
    "without_columns",
]

_FORMATS = {
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".csv": "csv",
}
STDIN = "-"

#: Deepest nesting accepted in one row (or in GlobalParameters); a table row needs two or three.
MAX_DEPTH = 64
#: Longest line (characters) of a CSV or JSON Lines file; longer ones are bad rows.
MAX_LINE_CHARS = 16 * 1024 * 1024
#: Largest single row of a JSON document (characters).
MAX_ROW_CHARS = 16 * 1024 * 1024
_PIECE_BYTES = 1 << 20
_SNIPPET = 2000

# Byte-order marks, longest first (the UTF-32-LE mark begins with the UTF-16-LE one).
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32-le"),
    (codecs.BOM_UTF32_BE, "utf-32-be"),
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF16_LE, "utf-16-le"),
    (codecs.BOM_UTF16_BE, "utf-16-be"),
)
_WS = re.compile(r"[ \t\n\r]*")
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]", re.ASCII)


@dataclass(frozen=True)
class BadRow:
    """A row that could not be read: it counts as a failed row, with its line and reason."""

    line: int
    reason: str
    #: the line as read (cut to 2,000 characters), for the errors file
    text: str


@dataclass(frozen=True)
class Position:
    """Where reading stands: ``offset`` bytes into the file, ``line`` lines read."""

    offset: int
    line: int


# -- decoding -------------------------------------------------------------------------------------


def _codec_for(head: bytes, encoding: str | None, path: str) -> tuple[str, int]:
    """``(codec, bytes of byte-order mark to skip)``: a BOM wins, else ``encoding``, else UTF-8."""
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, len(bom)
    name = encoding or "utf-8"
    try:
        info = codecs.lookup(name)
    except LookupError:
        raise InputError(f"unknown encoding {name!r} (--encoding)", path=path) from None
    codec = info.name
    # Without a BOM, the generic UTF-16/32 codecs would add one to every encode(): be explicit.
    if codec in ("utf-16", "utf-32"):
        codec += "-le"
    if codec == "utf-8-sig":
        codec = "utf-8"
    return codec, 0


def _one_byte_per_char(codec: str) -> bool:
    """Whether every character of ``codec`` is one byte (offsets are then character counts):
    no byte starts a longer sequence (cp1252, latin-1: yes; UTF-8, Shift-JIS: no)."""
    decoder = codecs.getincrementaldecoder(codec)("strict")
    for byte in range(256):
        decoder.reset()
        try:
            if len(decoder.decode(bytes([byte]), False)) != 1:
                return False  # buffered, waiting for more bytes: a multi-byte codec
        except UnicodeDecodeError:
            continue  # a byte the codec leaves undefined
    return True


class _Decoded:
    """Text of a binary stream in pieces, each with the byte offset where it starts.

    Pieces are decoded incrementally (a character split between two reads is kept for the
    next), so every piece maps back to an exact byte range of the file.
    """

    def __init__(self, handle: IO[bytes], codec: str, path: str, offset: int, line: int):
        self.handle = handle
        self.codec = codec
        self.path = path
        self.offset = offset
        self.lines = line  # newlines decoded so far (plus the starting line count)
        self._decoder = codecs.getincrementaldecoder(codec)("strict")
        self.utf8 = codecs.lookup(codec).name == "utf-8"
        self.single_byte = not self.utf8 and _one_byte_per_char(codec)

    def pieces(self) -> Iterator[tuple[str, int, bool]]:
        """``(text, byte offset of its first character, one byte per character)``."""
        base = self.offset
        while True:
            raw = self.handle.read(_PIECE_BYTES)
            final = not raw
            pending = len(self._decoder.getstate()[0])
            start = base - pending
            try:
                text = self._decoder.decode(raw, final)
            except UnicodeDecodeError as exc:
                raise self._decode_error(exc, start) from None
            base += len(raw)
            size = base - len(self._decoder.getstate()[0]) - start
            self.lines += text.count("\n")
            if text:
                yield text, start, self.single_byte or len(text) == size
            if final:
                return

    def byte_length(self, text: str) -> int:
        if self.single_byte or (self.utf8 and text.isascii()):
            return len(text)
        return len(text.encode(self.codec))

    def _decode_error(self, exc: UnicodeDecodeError, start: int) -> InputError:
        valid = exc.object[: exc.start]
        try:
            line = self.lines + valid.decode(self.codec, "replace").count("\n") + 1
        except LookupError:  # pragma: no cover - the codec was looked up already
            line = self.lines + 1
        bad = exc.object[exc.start : exc.end][:8].hex(" ")
        hint = (
            "; if the file is in another encoding, name it with --encoding "
            "(e.g. --encoding cp1252)"
        )
        return InputError(
            f"not valid {self.codec} text: byte(s) {bad} at byte offset {start + exc.start} "
            f"({exc.reason}){hint}",
            path=self.path,
            line=line,
        )


def _lines(decoded: _Decoded) -> Iterator[tuple[str | None, int]]:
    """Physical lines (with their ``\\n``) and the byte offset after each; ``None`` for a line
    longer than :data:`MAX_LINE_CHARS` (skipped, not held in memory)."""
    carry: list[str] = []
    carry_chars = 0
    carry_bytes = 0
    too_long = False
    end = decoded.offset
    for text, _start, one_byte in decoded.pieces():
        parts = text.split("\n")
        for part in parts[:-1]:
            size = len(part) + 1 if one_byte else decoded.byte_length(part + "\n")
            end += carry_bytes + size
            if too_long or carry_chars + len(part) > MAX_LINE_CHARS:
                yield None, end
            elif carry:
                yield "".join(carry) + part + "\n", end
            else:
                yield part + "\n", end
            carry, carry_chars, carry_bytes, too_long = [], 0, 0, False
        last = parts[-1]
        if last:
            carry_bytes += len(last) if one_byte else decoded.byte_length(last)
            carry_chars += len(last)
            if too_long or carry_chars > MAX_LINE_CHARS:
                too_long, carry = True, []
            else:
                carry.append(last)
    if carry_bytes:
        end += carry_bytes
        yield (None if too_long else "".join(carry)), end


# -- limits ---------------------------------------------------------------------------------------


def _depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value (iterative: no recursion on hostile input)."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, level = stack.pop()
        if isinstance(item, dict):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((v, level + 1) for v in item.values())
        elif isinstance(item, list):
            deepest = max(deepest, level)
            if level <= MAX_DEPTH:
                stack.extend((v, level + 1) for v in item)
    return deepest


def _lone_surrogate(value: Any) -> str | None:
    """The first string (or key) holding a lone surrogate, shown escaped; None if all are text."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return item.encode("unicode_escape").decode("ascii")[:60]
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _value_problem(value: Any, text: str, begin: int = 0, end: int | None = None) -> str | None:
    """What makes a parsed value unusable, judged cheaply from its source text
    (``text[begin:end]``) first."""
    end = len(text) if end is None else end
    brackets = text.count("{", begin, end) + text.count("[", begin, end)
    if brackets > MAX_DEPTH and _depth(value) > MAX_DEPTH:
        return f"nested more than {MAX_DEPTH} levels deep"
    if text.find("\\u", begin, end) >= 0 and _SURROGATE_ESCAPE.search(text, begin, end):
        found = _lone_surrogate(value)
        if found is not None:
            return f"a lone surrogate in the string {found} is not Unicode text"
    return None


def _number_problem(exc: ValueError) -> str:
    if "digits" in str(exc):
        limit = sys.get_int_max_str_digits()
        return f"an integer with more than {limit} digits (Python's limit)"
    return str(exc)


def _json_message(exc: json.JSONDecodeError, column: int | None = None) -> str:
    message = f"not valid JSON: {exc.msg} at column {exc.colno if column is None else column}"
    if exc.msg.startswith("Extra data"):
        message += " (a second JSON document follows the first; was something pasted over it?)"
    return message


def _parse_json_text(text: str) -> Any:
    """``json.loads`` whose every failure is a ValueError with a one-line reason."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(_json_message(exc)) from None
    except RecursionError:
        raise ValueError(f"nested more than {MAX_DEPTH} levels deep") from None
    except ValueError as exc:
        raise ValueError(_number_problem(exc)) from None
    problem = _value_problem(value, text)
    if problem:
        raise ValueError(problem)
    return value


# -- CSV and JSON Lines ---------------------------------------------------------------------------


def _snippet(text: str) -> str:
    text = text.rstrip("\r\n")
    return text if len(text) <= _SNIPPET else text[:_SNIPPET] + "…"


class _CsvRecords:
    """CSV records over numbered physical lines; a malformed record becomes a BadRow.

    A stray quote makes ``csv`` read on into the following lines looking for its partner; when
    such a multi-line record turns out bad, only its first line is blamed and the lines after
    it are parsed again, so one bad line costs one row.
    """

    def __init__(self, lines: Iterator[tuple[str | None, int]], line: int):
        self._lines = lines
        self._pending: deque[tuple[str | None, int, int]] = deque()
        self._taken: list[tuple[str | None, int, int]] = []
        self._line = line
        self._exhausted = False
        self._reader = csv.reader(self._feed(), strict=True)

    def _feed(self) -> Iterator[str]:
        while True:
            if self._pending:
                item = self._pending.popleft()
            else:
                try:
                    text, end = next(self._lines)
                except StopIteration:
                    self._exhausted = True
                    return
                self._line += 1
                item = (text, end, self._line)
            self._taken.append(item)
            # an over-long line is fed as a lone quote: csv refuses it, so it becomes a bad row
            yield '"\x00' if item[0] is None else item[0]

    def next_record(self) -> tuple[list[str] | None, str | None, tuple[str | None, int, int]]:
        """``(values, problem, first line)``; raises StopIteration at the end."""
        self._taken = []
        problem = None
        values: list[str] | None = None
        try:
            values = next(self._reader)
        except csv.Error as exc:
            problem = f"bad CSV: {exc}"
            if "new-line character" in str(exc):  # csv's own hint is about Python's open()
                problem = "bad CSV: a carriage return (\\r) inside a line; end lines with \\n"
            if not self._taken:  # pragma: no cover - csv always reads a line first
                raise StopIteration from None
        if not self._taken:
            raise StopIteration
        first = self._taken[0]
        if first[0] is None:
            problem = f"line longer than {MAX_LINE_CHARS:,} characters"
        return values, problem, first

    def blame_first_line(self) -> None:
        """Re-read every line of the last record but its first."""
        rest = self._taken[1:]
        if not rest:
            return
        self._pending.extendleft(reversed(rest))
        self._taken = self._taken[:1]
        self._reader = csv.reader(self._feed(), strict=True)

    @property
    def position(self) -> tuple[int, int]:
        """``(byte offset, line)`` after the last record returned."""
        last = self._taken[-1]
        return last[1], last[2]


# -- JSON documents -------------------------------------------------------------------------------


class _JsonSyntax(Exception):
    """A JSON document that cannot be read on: message and line, for an InputError."""

    def __init__(self, message: str, line: int):
        super().__init__(message)
        self.message = message
        self.line = line


class _JsonStream:
    """A JSON document walked by hand at the top, row values parsed by ``raw_decode``.

    The text lives in a sliding buffer of decoded pieces; positions map back to lines (for
    messages) and byte offsets (for resuming).
    """

    def __init__(self, decoded: _Decoded):
        self._decoder = json.JSONDecoder()
        self.restart(decoded)

    def restart(self, decoded: _Decoded) -> None:
        """Read from ``decoded`` with a fresh buffer (the start, or the point a resume seeks)."""
        self.decoded = decoded
        self._pieces = decoded.pieces()
        self.buf = ""
        self.pos = 0
        self.eof = False
        #: (buffer position, byte offset, one byte per char) where each piece starts
        self._marks: list[tuple[int, int, bool]] = []
        self._line_at = 0  # buffer position up to which lines were counted
        self.line = decoded.lines  # lines before ``_line_at``
        self._column_base = 0  # column of buf[0] when it does not start a line
        self._last_offset = (0, decoded.offset)  # (position, byte offset) last mapped

    # -- buffer --------------------------------------------------------------------------

    def _more(self) -> bool:
        if self.eof:
            return False
        try:
            text, start, one_byte = next(self._pieces)
        except StopIteration:
            self.eof = True
            return False
        self._compact()
        self._marks.append((len(self.buf), start, one_byte))
        self.buf += text
        return True

    def _compact(self) -> None:
        if self.pos < _PIECE_BYTES:
            return
        cut = self.pos
        self._count_lines(cut)
        last_newline = self.buf.rfind("\n", 0, cut)
        if last_newline < 0:
            self._column_base += cut
        else:
            self._column_base = cut - last_newline - 1
        offset = self.offset_at(cut)
        one_byte = self._mark_for(cut)[2]
        self.buf = self.buf[cut:]
        self._marks = [(0, offset, one_byte)] + [
            (p - cut, o, b) for p, o, b in self._marks if p > cut
        ]
        self.pos -= cut
        self._line_at -= cut
        self._last_offset = (0, offset)

    def _mark_for(self, position: int) -> tuple[int, int, bool]:
        found = self._marks[0] if self._marks else (0, self.decoded.offset, True)
        for mark in self._marks:
            if mark[0] > position:
                break
            found = mark
        return found

    def offset_at(self, position: int) -> int:
        """Byte offset in the file of buffer position ``position``."""
        start, offset, one_byte = self._mark_for(position)
        if one_byte:
            return offset + position - start
        # Offsets are asked for in order: encode only what lies since the last one.
        last_position, last_offset = self._last_offset
        if start <= last_position <= position:
            start, offset = last_position, last_offset
        offset += self.decoded.byte_length(self.buf[start:position])
        self._last_offset = (position, offset)
        return offset

    def _count_lines(self, position: int) -> None:
        if position > self._line_at:
            self.line += self.buf.count("\n", self._line_at, position)
            self._line_at = position

    def line_at(self, position: int) -> int:
        """1-based line of buffer position ``position``."""
        if position < self._line_at:
            return self.line - self.buf.count("\n", position, self._line_at) + 1
        self._count_lines(position)
        return self.line + 1

    def _column(self, position: int) -> int:
        newline = self.buf.rfind("\n", 0, position)
        if newline < 0:
            return self._column_base + position + 1
        return position - newline

    def syntax(self, message: str, position: int | None = None) -> _JsonSyntax:
        at = self.pos if position is None else position
        return _JsonSyntax(
            f"not valid JSON: {message} at column {self._column(at)}", self.line_at(at)
        )

    # -- tokens --------------------------------------------------------------------------

    def peek(self) -> str:
        """The next non-blank character ('' at the end), leaving ``pos`` on it."""
        while True:
            match = _WS.match(self.buf, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buf):
                return self.buf[self.pos]
            if not self._more():
                return ""

    def expect(self, char: str, what: str) -> None:
        if self.peek() != char:
            found = self.peek()
            raise self.syntax(f"Expecting {what}" + ("" if found else " (the file ends here)"))
        self.pos += 1

    def value(self, limit: int = MAX_ROW_CHARS) -> tuple[Any, int, int]:
        """The next JSON value: ``(value, start, end)`` in buffer positions."""
        self.peek()
        while True:
            start = self.pos
            try:
                value, end = self._decoder.raw_decode(self.buf, start)
            except json.JSONDecodeError as exc:
                if len(self.buf) - start < limit and self._more():
                    continue  # the value may go on in the next piece
                raise self._decode_syntax(exc) from None
            except RecursionError:
                raise _JsonSyntax(
                    f"nested more than {MAX_DEPTH} levels deep", self.line_at(start)
                ) from None
            except ValueError as exc:  # the int-digits limit
                raise _JsonSyntax(_number_problem(exc), self.line_at(start)) from None
            if end >= len(self.buf) and self._more():
                continue  # a number cut at the end of a piece may go on
            self.pos = end
            return value, start, end

    def _decode_syntax(self, exc: json.JSONDecodeError) -> _JsonSyntax:
        return _JsonSyntax(
            _json_message(exc, self._column(exc.pos)), self.line_at(exc.pos)
        )

    def key(self) -> str:
        if self.peek() != '"':
            raise self.syntax("property name enclosed in double quotes")
        key, _, _ = self.value()
        self.expect(":", "':' delimiter")
        return str(key)


# -- sources --------------------------------------------------------------------------------------


class _Envelope:
    """What a JSON document says around its rows."""

    def __init__(self) -> None:
        self.complete = False  # read to the end, so what follows the rows is known too
        self.object = False
        self.convention: Convention | None = None
        self.global_parameters: Any = None
        self.method: Any = None
        self.rows_offset = 0  # byte offset just after the '[' opening the rows

    def params(self) -> dict[str, Any] | float | None:
        if self.convention is Convention.INPUTS:
            params: Any = self.global_parameters
            return params if isinstance(params, dict | int | float) else None
        if self.method is not None:
            return {"method": self.method}
        return None


class RowSource:
    """Rows from one input, iterable again and again (stdin is kept in memory once read).

    ``convention`` and ``global_parameters`` describe a JSON payload, so a body can be re-sent
    the way it was written. ``columns`` are the CSV header or the first JSON row's keys.
    """

    def __init__(
        self,
        path: str,
        format: str,
        *,
        schema: ScoringSchema | None = None,
        data: bytes | None = None,
        encoding: str | None = None,
    ):
        self.path = path
        self.format = format
        self.schema = schema
        self.encoding = encoding
        self._data = data
        self._envelope = _Envelope()
        head = self._head_bytes()
        self.codec, self.bom = _codec_for(head, encoding, path)
        if format == "json":
            self._read_head()

    def __repr__(self) -> str:
        return f"RowSource({self.path!r}, format={self.format!r})"

    @property
    def buffered(self) -> bytes | None:
        """The bytes read from stdin (None for a file, which is read from disk each time)."""
        return self._data

    # -- what the file says --------------------------------------------------------------

    @property
    def convention(self) -> Convention | None:
        """The payload's convention; None for a bare list of rows, CSV or JSON Lines."""
        return self._envelope.convention

    @property
    def global_parameters(self) -> dict[str, Any] | float | None:
        """The payload's GlobalParameters (``{"method": ...}`` for a ``data`` payload).

        When they follow the rows (the usual order), the document is scanned once for them
        without keeping rows; a run that streams rows needs them before the first request.
        """
        envelope = self._envelope
        if self.format != "json" or not envelope.object:
            return None
        if not envelope.complete and envelope.params() is None:
            for _ in _JsonDocument(self).walk(None, keep=False):
                pass
        return envelope.params()

    def converts_values(self, override: bool | None = None) -> bool:
        """Whether values are converted to the swagger's types before they are checked.

        Only text is: a CSV cell has no type of its own, while JSON carries its types, so a
        ``"24"`` for an integer column there is a mistake to report, not to mend. ``amlc score``
        (small and batch paths) and ``amlc bench`` all follow this one rule; ``override``
        (``--coerce`` / ``--no-coerce``) decides otherwise.
        """
        return self.format == "csv" if override is None else override

    def header(self) -> list[str]:
        """The CSV header (names stripped); empty for an empty file."""
        if self.format != "csv":
            return []
        with self._open(self.bom) as handle:
            decoded = _Decoded(handle, self.codec, self.path, self.bom, 0)
            records = _CsvRecords(_lines(decoded), 0)
            return self._parse_header(records)[0]

    def columns(self) -> list[str]:
        """Column names: the CSV header, or the keys of the first JSON row (if an object)."""
        if self.format == "csv":
            return self.header()
        first = self.first_row()
        return [str(k) for k in first] if isinstance(first, dict) else []

    def first_row(self) -> Any:
        """The first row that reads (None if there is none)."""
        for entry in self.reader():
            if not isinstance(entry, BadRow):
                return entry
        return None

    # -- iteration -----------------------------------------------------------------------

    def __iter__(self) -> Iterator[Any]:
        """Rows; the first unreadable one raises InputError naming its line."""
        reader = self.reader()
        for entry in reader:
            if isinstance(entry, BadRow):
                raise InputError(entry.reason, path=self.path, line=entry.line)
            yield entry

    def to_list(self) -> list[Any]:
        return list(self)

    def reader(self, start: Position | None = None) -> RowReader:
        """Rows and :class:`BadRow` entries from the start, or from ``start`` (a position
        an earlier reader reported after a row)."""
        return RowReader(self, start)

    # -- internals -----------------------------------------------------------------------

    def _head_bytes(self) -> bytes:
        if self._data is not None:
            return self._data[:4]
        try:
            with open(self.path, "rb") as handle:
                return handle.read(4)
        except FileNotFoundError:
            raise InputError("no such file", path=self.path) from None
        except IsADirectoryError:
            raise InputError("is a directory, not a file", path=self.path) from None
        except OSError as exc:
            raise InputError(f"cannot read: {exc.strerror or exc}", path=self.path) from None

    def _open(self, offset: int) -> IO[bytes]:
        handle: IO[bytes]
        if self._data is not None:
            handle = io.BytesIO(self._data)
        else:
            try:
                handle = open(self.path, "rb")  # noqa: SIM115 - closed by the caller
            except OSError as exc:
                raise InputError(
                    f"cannot read: {exc.strerror or exc}", path=self.path
                ) from None
        handle.seek(offset)
        return handle

    def _parse_header(self, records: _CsvRecords) -> tuple[list[str], int, int]:
        while True:
            try:
                values, problem, first = records.next_record()
            except StopIteration:
                return [], 0, 0
            if problem:
                raise InputError(f"header: {problem}", path=self.path, line=first[2])
            assert values is not None
            if values and any(v.strip() for v in values):
                break
        header = [name.strip().lstrip("\ufeff") for name in values]
        if len(set(header)) != len(header):
            dupes = sorted({n for n in header if header.count(n) > 1})
            raise InputError(
                f"duplicate column(s) in the header: {dupes}", path=self.path, line=first[2]
            )
        offset, line = records.position
        return header, offset, line

    def _csv(self, start: Position | None, where: Callable[[int, int], None]) -> Iterator[Any]:
        with self._open(self.bom) as handle:
            decoded = _Decoded(handle, self.codec, self.path, self.bom, 0)
            records = _CsvRecords(_lines(decoded), 0)
            header, offset, line = self._parse_header(records)
            if not header:
                return
            where(offset, line)
            if start is not None:
                handle.seek(start.offset)
                decoded = _Decoded(handle, self.codec, self.path, start.offset, start.line)
                records = _CsvRecords(_lines(decoded), start.line)
            width = len(header)
            coerce = self.schema is not None and self.schema.row_kind == "record"
            row_number = 0
            while True:
                try:
                    values, problem, first = records.next_record()
                except StopIteration:
                    return
                if problem is None and values is not None and not any(
                    v.strip() for v in values
                ):
                    where(*records.position)
                    continue  # a blank line is not a row
                row_number += 1
                text, _, line_number = first
                if problem is None and values is not None and len(values) != width:
                    problem = (
                        f"{len(values)} value{'s' if len(values) != 1 else ''} but the header "
                        f"has {width} column{'s' if width != 1 else ''}"
                    )
                if problem is not None:
                    records.blame_first_line()
                    where(*records.position)
                    yield BadRow(line_number, problem, _snippet(text or ""))
                    continue
                assert values is not None
                row: Any = dict(zip(header, values, strict=True))
                if coerce:
                    row = self._coerce(row, row_number, line_number)
                where(*records.position)
                yield row

    def _coerce(self, row: dict[str, str], row_number: int, line: int) -> dict[str, Any]:
        assert self.schema is not None
        try:
            return self.schema.coerce_row(row)
        except ValidationError as exc:
            problems = [RowProblem(row_number, p.column, p.message) for p in exc.problems]
            raise ValidationError(problems, source=f"{self.path}:{line}") from None

    def _jsonl(self, start: Position | None, where: Callable[[int, int], None]) -> Iterator[Any]:
        offset = self.bom if start is None else start.offset
        line = 0 if start is None else start.line
        with self._open(offset) as handle:
            decoded = _Decoded(handle, self.codec, self.path, offset, line)
            for text, end in _lines(decoded):
                line += 1
                where(end, line)
                if text is None:
                    yield BadRow(line, f"line longer than {MAX_LINE_CHARS:,} characters", "")
                    continue
                stripped = text.strip()
                if not stripped:
                    continue
                try:
                    yield _parse_json_text(stripped)
                except ValueError as exc:
                    yield BadRow(line, str(exc), _snippet(stripped))

    # -- JSON documents ------------------------------------------------------------------

    def _read_head(self) -> None:
        """Read the document up to its rows: the convention, and keys that come first."""
        for _ in _JsonDocument(self).walk(None, keep=False, head_only=True):
            pass

    def _json(self, start: Position | None, where: Callable[[int, int], None]) -> Iterator[Any]:
        yield from _JsonDocument(self).walk(start, keep=True, where=where)

class _JsonDocument:
    """One walk through a JSON document's rows, streamed: the envelope's keys are noted on
    ``source``'s envelope as they pass, rows are kept or skipped."""

    def __init__(self, source: RowSource):
        self.path = source.path
        self.codec = source.codec
        self.bom = source.bom
        self._open = source._open
        self._envelope = source._envelope

    def walk(
        self,
        start: Position | None,
        *,
        keep: bool,
        head_only: bool = False,
        where: Callable[[int, int], None] | None = None,
    ) -> Iterator[Any]:
        envelope = self._envelope
        with self._open(self.bom) as handle:
            stream = _JsonStream(_Decoded(handle, self.codec, self.path, self.bom, 0))
            try:
                yield from self._walk_document(
                    stream, handle, start, keep=keep, head_only=head_only, where=where
                )
            except _JsonSyntax as exc:
                raise InputError(exc.message, path=self.path, line=exc.line) from None
            except InputError as exc:
                raise self._syntax_first(handle, exc) from None
        if not head_only:
            envelope.complete = True

    def _syntax_first(self, handle: IO[bytes], error: InputError) -> InputError:
        """A broken document's syntax error rather than what its first part lacks: two
        documents pasted together are better described as such (small files only)."""
        handle.seek(self.bom)
        stream = _JsonStream(_Decoded(handle, self.codec, self.path, self.bom, 0))
        try:
            if stream.peek() == "":
                return error
            stream.value(limit=MAX_ROW_CHARS)
            self._end(stream)
        except _JsonSyntax as exc:
            if len(stream.buf) < MAX_ROW_CHARS:
                return InputError(exc.message, path=self.path, line=exc.line)
        return error

    def _walk_document(
        self,
        stream: _JsonStream,
        handle: IO[bytes],
        start: Position | None,
        *,
        keep: bool,
        head_only: bool,
        where: Callable[[int, int], None] | None,
    ) -> Iterator[Any]:
        first = stream.peek()
        if first == "":
            raise InputError("empty file, expected JSON", path=self.path)
        if first == "[":
            stream.pos += 1
            self._rows_begin(stream)
            if head_only:
                return
            yield from self._rows(stream, handle, start, keep, where)
            self._end(stream)
            return
        if first != "{":
            value, _, _ = stream.value()
            raise InputError(
                f"expected a JSON object or a list of rows, got {json_kind(value)}",
                path=self.path,
                line=1,
            )
        yield from self._walk_object(
            stream, handle, start, keep=keep, head_only=head_only, where=where
        )

    def _walk_object(
        self,
        stream: _JsonStream,
        handle: IO[bytes],
        start: Position | None,
        *,
        keep: bool,
        head_only: bool,
        where: Callable[[int, int], None] | None,
    ) -> Iterator[Any]:
        """A top-level object: its rows under 'data' or 'Inputs', beside the envelope's
        keys."""
        self._envelope.object = True
        stream.pos += 1
        seen: list[str] = []
        rows_key = None
        while True:
            if stream.peek() == "}":
                stream.pos += 1
                break
            if seen:
                stream.expect(",", "',' delimiter")
            line = stream.line_at(stream.pos)
            key = stream.key()
            seen.append(key)
            if key in ("Inputs", "data") and rows_key is None:
                rows_key = key
                if key == "Inputs":
                    yield from self._inputs(stream, handle, start, keep, head_only, where, line)
                    if head_only:
                        return
                else:
                    self._expect_rows(stream, "'data' must be a list of rows", line)
                    self._set_convention(Convention.DATA)
                    if head_only:
                        return
                    yield from self._rows(stream, handle, start, keep, where)
            else:
                self._envelope_key(stream, key, line)
        if rows_key is None:
            keys = ", ".join(repr(k) for k in seen[:5]) or "none"
            raise InputError(
                f"no 'data' or 'Inputs' key in the payload (keys: {keys})", path=self.path
            )
        if head_only:  # pragma: no cover - returned at the rows
            return
        stray = "GlobalParameters" if rows_key == "data" else "method"
        if stray in seen:
            raise InputError(f"unexpected top-level key {stray!r}", path=self.path)
        self._end(stream)

    def _envelope_key(self, stream: _JsonStream, key: str, line: int) -> None:
        """A top-level key beside the rows: read the envelope's own, refuse any other."""
        envelope = self._envelope
        if key == "GlobalParameters":
            envelope.global_parameters = self._small_value(stream, key)
        elif key == "method":
            envelope.method = self._small_value(stream, key)
        elif key == "input_data":
            raise InputError(
                "an MLflow 'input_data' body; Azure ML scoring scripts expect 'data' or "
                "'Inputs'",
                path=self.path,
                line=line,
            )
        else:
            raise InputError(f"unexpected top-level key {key!r}", path=self.path, line=line)

    def _inputs(
        self,
        stream: _JsonStream,
        handle: IO[bytes],
        start: Position | None,
        keep: bool,
        head_only: bool,
        where: Callable[[int, int], None] | None,
        line: int,
    ) -> Iterator[Any]:
        shape = (
            "'Inputs' must be an object holding 'data': "
            '{"Inputs": {"data": [rows]}, "GlobalParameters": {...}}'
        )
        if stream.peek() != "{":
            raise InputError(shape, path=self.path, line=line)
        stream.pos += 1
        self._set_convention(Convention.INPUTS)
        found = False
        count = 0
        while True:
            if stream.peek() == "}":
                stream.pos += 1
                break
            if count:
                stream.expect(",", "',' delimiter")
            count += 1
            inner_line = stream.line_at(stream.pos)
            key = stream.key()
            if key == "data" and not found:
                found = True
                self._expect_rows(stream, "'data' must be a list of rows", inner_line)
                if head_only:
                    return
                yield from self._rows(stream, handle, start, keep, where)
            else:
                self._small_value(stream, key)  # other inputs are ignored, as by unwrap
        if not found:
            raise InputError(shape, path=self.path, line=line)

    def _set_convention(self, convention: Convention) -> None:
        self._envelope.convention = convention

    def _expect_rows(self, stream: _JsonStream, message: str, line: int) -> None:
        if stream.peek() != "[":
            value, _, _ = stream.value()
            raise InputError(f"{message}, got {json_kind(value)}", path=self.path, line=line)
        stream.pos += 1
        self._rows_begin(stream)

    def _rows_begin(self, stream: _JsonStream) -> None:
        self._envelope.rows_offset = stream.offset_at(stream.pos)

    def _small_value(self, stream: _JsonStream, key: str) -> Any:
        line = stream.line_at(stream.pos)
        value, begin, end = stream.value()
        problem = _value_problem(value, stream.buf, begin, end)
        if problem:
            raise InputError(f"{key}: {problem}", path=self.path, line=line)
        return value

    def _rows(
        self,
        stream: _JsonStream,
        handle: IO[bytes],
        start: Position | None,
        keep: bool,
        where: Callable[[int, int], None] | None,
    ) -> Iterator[Any]:
        count = 0
        if start is not None and start.offset > self._envelope.rows_offset:
            # Resume: carry on right after the last row an earlier run finished.
            handle.seek(start.offset)
            stream.restart(_Decoded(handle, self.codec, self.path, start.offset, start.line))
            count = 1
        while True:
            char = stream.peek()
            if char == "]":
                stream.pos += 1
                return
            if count:
                if char != ",":
                    raise stream.syntax("Expecting ',' delimiter or ']' after a row")
                stream.pos += 1
                if stream.peek() == "]":
                    raise stream.syntax("Expecting a row after ','")
            count += 1
            if not keep:
                stream.value()
                continue
            line = stream.line_at(stream.pos)
            value, begin, end = stream.value()
            problem = _value_problem(value, stream.buf, begin, end)
            if where is not None:
                where(stream.offset_at(end), stream.line_at(end) - 1)
            if problem:
                yield BadRow(line, problem, _snippet(stream.buf[begin:end]))
            else:
                yield value

    def _end(self, stream: _JsonStream) -> None:
        if stream.peek() != "":
            raise stream.syntax(
                "Extra data (a second JSON document follows the first; was something "
                "pasted over it?)"
            )


class RowReader:
    """Rows and :class:`BadRow` entries, with the :class:`Position` after the last one."""

    def __init__(self, source: RowSource, start: Position | None):
        self.source = source
        self._offset = start.offset if start else 0
        self._line = start.line if start else 0
        formats = {"csv": source._csv, "jsonl": source._jsonl, "json": source._json}
        self._entries = formats[source.format](start, self._where)

    def _where(self, offset: int, line: int) -> None:
        self._offset = offset
        self._line = line

    @property
    def position(self) -> Position:
        return Position(self._offset, self._line)

    def __iter__(self) -> RowReader:
        return self

    def __next__(self) -> Any:
        return next(self._entries)

    def close(self) -> None:
        close = getattr(self._entries, "close", None)
        if close is not None:
            close()


def read_rows(
    source: str | Path,
    *,
    schema: ScoringSchema | None = None,
    format: str | None = None,
    encoding: str | None = None,
) -> RowSource:
    """Open rows from a file (format from the suffix, or ``format=``) or ``"-"`` for stdin.

    JSON may be a payload in either convention or a bare list of rows; CSV values are converted
    to the schema's types when a schema is given (else left as strings). ``encoding`` applies
    when the file has no byte-order mark (default UTF-8).
    """
    name = str(source)
    if name == STDIN:
        data = _read_stdin()
        codec, bom = _codec_for(data[:4], encoding, "<stdin>")
        sniffed = format or _sniff(data[bom:].decode(codec, "replace"))
        return RowSource("<stdin>", sniffed, schema=schema, data=data, encoding=encoding)
    path = Path(source)
    fmt: str | None = format or _FORMATS.get(path.suffix.lower())
    if path.is_dir():
        raise InputError("is a directory, not a file", path=name)
    if fmt is None:
        if not path.exists():
            raise InputError("no such file", path=name)
        head = _head(path)
        codec, bom = _codec_for(head[:4], encoding, name)
        fmt = _sniff(head[bom:].decode(codec, "replace"))
    if fmt not in ("json", "jsonl", "csv"):
        raise InputError(f"unknown format {fmt!r} (json, jsonl or csv)", path=name)
    if not path.is_file():
        raise InputError("no such file", path=name)
    return RowSource(name, fmt, schema=schema, encoding=encoding)


def check_columns(
    columns: list[str],
    declared: list[str],
    *,
    drop: Iterable[str] = (),
    ignore_extra: bool = False,
    path: str | None = None,
    from_header: bool = True,
) -> frozenset[str]:
    """The columns not to send, checked once before any row is.

    ``columns`` are the CSV header (``from_header``) or the first row's keys; ``declared``
    the swagger's (empty: nothing to check). Unknown ``drop`` names, columns the swagger does
    not declare and declared columns the input lacks are each one InputError rather than one
    error per row.
    """
    where = "header" if from_header else "row 1"
    dropped = [name for name in dict.fromkeys(drop) if name]
    unknown = [name for name in dropped if name not in columns]
    if unknown and columns:
        names = ", ".join(repr(n) for n in unknown)
        raise InputError(
            f"--drop-columns: no column {names} in the input (columns: {_names(columns)})",
            path=path,
        )
    if not declared or not columns:
        return frozenset(dropped)
    kept = [name for name in columns if name not in dropped]
    extra = [name for name in kept if name not in declared]
    missing = [name for name in declared if name not in kept]
    if extra and missing:
        import difflib

        guesses = [
            f"{name!r} for {match[0]!r}"
            for name in extra
            if (match := difflib.get_close_matches(name, missing, n=1, cutoff=0.6))
        ]
        if guesses:
            raise InputError(
                f"{where}: column {', '.join(guesses)}? The endpoint's swagger declares "
                f"{_names([repr(m) for m in missing])} but not {_names([repr(e) for e in extra])}",
                path=path,
            )
    if extra and not ignore_extra:
        plural = "s" if len(extra) != 1 else ""
        listed = ", ".join(repr(n) for n in extra)
        raise InputError(
            f"{where}: column{plural} {listed} not in the endpoint's swagger (a label or an "
            f"id?): score without {'them' if plural else 'it'} with --drop-columns "
            f"{','.join(extra)}, or --ignore-extra-columns",
            path=path,
        )
    if missing:
        plural = "s" if len(missing) != 1 else ""
        raise InputError(
            f"{where}: missing column{plural} {_names([repr(m) for m in missing])} that the "
            "endpoint's swagger declares",
            path=path,
        )
    return frozenset(dropped) | frozenset(extra)


def without_columns(row: Any, names: frozenset[str]) -> Any:
    """``row`` minus ``names`` (rows that are not objects pass unchanged)."""
    if not names or not isinstance(row, dict):
        return row
    return {k: v for k, v in row.items() if k not in names}


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


def _names(names: list[str], limit: int = 12) -> str:
    shown = ", ".join(names[:limit])
    return shown + (", …" if len(names) > limit else "")


def _read_stdin() -> bytes:
    buffer = getattr(sys.stdin, "buffer", None)
    if buffer is not None:
        data: bytes = buffer.read()
        return data
    return sys.stdin.read().encode("utf-8")


def _head(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
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
    except (ValueError, RecursionError):
        pass
    first = stripped.splitlines()[0]
    try:
        value = json.loads(first)
    except (ValueError, RecursionError):
        return "json"  # report the JSON error with its line
    if isinstance(value, dict) and ("data" in value or "Inputs" in value):
        return "json"  # a payload followed by junk: report that, not one odd row
    return "jsonl"
