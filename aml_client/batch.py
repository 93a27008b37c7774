"""Scoring a large file: batches in flight concurrently, results in input order, nothing lost.

One pipeline, four parts, all on one asyncio loop:

- the **reader** streams rows (CSV, JSON Lines, JSON) into batches, but only while the window of
  unfinished batches has room, so memory stays flat however large the input is;
- each **batch task** validates its rows against the swagger, sends them through
  :class:`~aml_client.client.AsyncEndpoint` under a :class:`~aml_client.concurrency.
  ConcurrencyLimiter` (fixed, or AIMD with ``concurrency="auto"``), retries what the endpoint
  pushed back (``Retry-After`` pauses every request, not just one), and bisects a batch that
  failed because of its rows until the offending rows are alone;
- the **writer** takes finished batches in input order, appends predictions to the output and
  the rejected rows to the errors file, then commits both through the
  :mod:`~aml_client.journal`, so a killed run resumes where it stopped;
- a **ticker** reports progress even while the endpoint asks for a pause.

Every input row ends in exactly one of the output or the errors file; the counts are checked at
the end: ``rows_in == rows_out + rows_failed``, where a malformed input line (a CSV line with the
wrong number of fields or a stray quote, an invalid JSON Lines line) is a failed row of kind
``malformed`` with its ``line``, and the run goes on. Input that cannot be read on (an
undecodable byte, a broken JSON document) stops the reader: the batches already read are still
scored and committed, then the run fails with the file and line, and ``resume=True`` carries
on once the file is fixed.

Before any row is sent, the columns are checked once against the swagger: a column it does not
declare (a label such as ``y``, an id) is one InputError, unless ``drop_columns`` names it or
``ignore_extra_columns`` is set; those columns are not sent but stay in the output beside the
prediction. Requests carry the input's ``GlobalParameters``; without a swagger (or with
``validate=False``) a JSON payload's own convention is kept.

Failures that are not the rows' fault (authentication, an endpoint that stays down, one where
every row fails on its own) stop the run with the endpoint's error; what was
committed stays, and ``resume=True`` carries on. A 413 also lowers the rows per request for the
rest of the run, so the endpoint's size limit is learnt once, not once per batch.

Files: the output is CSV (the input's columns, then ``prediction``), JSON Lines or a JSON array,
by extension; the errors file is JSON Lines, ``{"row": n (1-based), "reason", "kind",
"status", "input"}`` (plus ``"line"`` for a malformed line), in input order.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import dataclasses
import io
import itertools
import json
import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, Unpack

from aml_client import errors
from aml_client._batch_files import RunFiles
from aml_client.concurrency import AimdSettings, ConcurrencyLimiter, PauseGate
from aml_client.envelope import Convention, EnvelopeSpec, wrap
from aml_client.http.jsonbody import encode_json
from aml_client.http.retry import RetryPolicy
from aml_client.journal import Checkpoint
from aml_client.rows import BadRow, Position, RowReader, RowSource, check_columns, without_columns

if TYPE_CHECKING:
    from aml_client.client import AsyncEndpoint
    from aml_client.config import Target
    from aml_client.schema import ScoringSchema

__all__ = [
    "BatchOptions",
    "BatchProgress",
    "BatchSettings",
    "ScoreFileResult",
    "score_file",
    "score_file_async",
]

log = logging.getLogger("aml_client.batch")

#: Errors that may be caused by the rows themselves: worth splitting the batch to find them.
ROW_LEVEL_ERRORS: tuple[type[errors.AmlcError], ...] = (
    errors.ValidationError,
    errors.BadRequestError,  # 400, 413 (PayloadTooLargeError), other 4xx
    errors.ModelError,  # 424/500: the script failed, perhaps on one row
)
#: The endpoint is overloaded or said "later" (429, 503, 409): pause everything, send less.
#: Whether an error may be retried at all is the HTTP layer's one rule (``error.retryable``:
#: only when the model cannot have run); everything else that is not the rows' fault stops
#: the run, and ``--resume`` carries on.
OVERLOAD_ERRORS: tuple[type[errors.AmlcError], ...] = (
    errors.RateLimitError,
    errors.UnavailableError,
    errors.BadRequestError,  # 409, when retryable
)

MAX_OVERLOAD_RETRIES = 30
#: Connections that could not be made, retried before the run stops.
MAX_TRANSIENT_RETRIES = 5
#: Rows failing on the endpoint before the run is judged broken rather than the rows bad.
BROKEN_AFTER_ROWS = 20
_PROGRESS_EVERY_S = 0.25


@dataclass
class BatchProgress:
    """A snapshot for a progress display.

    ``rows_done`` counts finished rows, scored or failed (``rows_failed`` of them went to the
    errors file), including rows finished before a resume; ``rows_total`` is estimated from the
    file's line count and is None when unknown; ``rows_per_s`` is this run's rate.
    """

    rows_total: int | None
    rows_done: int
    rows_failed: int
    retries: int
    batches_done: int
    rows_per_s: float
    eta_s: float | None
    in_flight: int
    concurrency: int = 0
    paused: bool = False


@dataclass
class ScoreFileResult:
    """What a finished run did; ``rows_in == rows_out + rows_failed`` always holds."""

    rows_in: int
    rows_out: int
    rows_failed: int
    output_path: str
    errors_path: str | None  # None when no row failed
    elapsed_s: float
    rows_per_s: float
    batches: int
    retries: int
    resumed_rows: int = 0
    requests: int = 0
    #: a resume found the output already complete and sent nothing
    already_complete: bool = False
    concurrency_peak: int = 0
    concurrency_final: int = 0


@dataclass(frozen=True)
class BatchOptions:
    """How a file is scored: every setting of :func:`score_file` but the files and the progress
    callback, in one value the library, the CLI and the benchmarks pass around.

    ``concurrency`` is a number of requests in flight, or ``"auto"`` to find the endpoint's
    capacity. ``resume=True`` continues an interrupted run from its journal. Rows are checked
    against the swagger as ``Endpoint.score`` checks them: JSON strictly, while text (CSV
    cells) is converted to the declared types; ``coerce`` True/False forces either way.
    ``validate=False`` sends rows unchecked, in the input's own envelope. ``encoding`` names
    the input's encoding when it has no byte-order mark. ``drop_columns`` /
    ``ignore_extra_columns``: see the module's notes. ``timeout_s`` is each request's total
    deadline (connect, send, whole answer). Invalid values raise ConfigError when made.
    """

    batch_size: int = 200
    concurrency: int | str = 8
    resume: bool = False
    method: str | None = None
    coerce: bool | None = None
    validate: bool = True
    encoding: str | None = None
    drop_columns: Iterable[str] = ()
    ignore_extra_columns: bool = False
    timeout_s: float | None = 60.0

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            raise errors.ConfigError(f"batch size must be at least 1, not {self.batch_size}")
        _parse_concurrency(self.concurrency)
        object.__setattr__(self, "drop_columns", tuple(self.drop_columns))


class BatchSettings(TypedDict, total=False):
    """:class:`BatchOptions`' fields as keywords of :func:`score_file` (each one optional)."""

    batch_size: int
    concurrency: int | str
    resume: bool
    method: str | None
    coerce: bool | None
    validate: bool
    encoding: str | None
    drop_columns: Iterable[str]
    ignore_extra_columns: bool
    timeout_s: float | None


def score_file(
    target: Target,
    input_path: str,
    output_path: str,
    options: BatchOptions | None = None,
    *,
    errors_path: str | None = None,
    progress: Callable[[BatchProgress], None] | None = None,
    **settings: Unpack[BatchSettings],
) -> ScoreFileResult:
    """Score every row of ``input_path`` into ``output_path`` (CSV, or JSON Lines / JSON by
    extension); rows the endpoint or the swagger rejects go to ``errors_path`` (JSON Lines,
    default ``<output stem>.errors.jsonl``).

    The settings are ``options`` (a :class:`BatchOptions`, defaults when None), each one
    replaceable by a keyword of the same name: ``score_file(t, "in.csv", "out.csv",
    batch_size=100, concurrency="auto")``. ``progress`` is called with a
    :class:`BatchProgress` a few times a second.
    """
    return asyncio.run(
        score_file_async(
            target,
            input_path,
            output_path,
            options,
            errors_path=errors_path,
            progress=progress,
            **settings,
        )
    )


async def score_file_async(
    target: Target | AsyncEndpoint,
    input_path: str,
    output_path: str,
    options: BatchOptions | None = None,
    *,
    errors_path: str | None = None,
    progress: Callable[[BatchProgress], None] | None = None,
    **settings: Unpack[BatchSettings],
) -> ScoreFileResult:
    """:func:`score_file` for callers already inside an event loop; also takes an endpoint."""
    chosen = dataclasses.replace(options or BatchOptions(), **settings)
    run = _Run(
        target, input_path, output_path, chosen, errors_path=errors_path, progress=progress
    )
    return await run.run()


def default_errors_path(output_path: str | Path) -> Path:
    """``predictions.csv`` -> ``predictions.errors.jsonl``."""
    output = Path(output_path)
    return output.with_name(f"{output.stem}.errors.jsonl")


def _parse_concurrency(value: int | str) -> int | None:
    """A number of requests in flight, or None for adaptive."""
    if isinstance(value, str):
        text = value.strip().lower()
        if text == "auto":
            return None
        try:
            value = int(text)
        except ValueError:
            raise errors.ConfigError(
                f"concurrency must be a number or 'auto', not {value!r}"
            ) from None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise errors.ConfigError(f"concurrency must be at least 1, not {value!r}")
    return value


# -- output formats ------------------------------------------------------------------------------


def _cell(value: Any) -> str:
    """A CSV cell: strings as they are, JSON for structures and booleans."""
    if isinstance(value, str):
        return value
    if value is None:
        return ""
    if isinstance(value, bool | dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


class _OutputFormat:
    """Encodes ``(input row, prediction)`` pairs; a CSV, JSON Lines or JSON array output."""

    def __init__(self, path: Path):
        suffix = path.suffix.lower()
        self.kind = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json"}.get(suffix, "csv")
        self.columns: list[str] | None = None
        self.prediction_column = "prediction"

    def learn(self, first_row: Any, header: list[str] | None = None) -> None:
        """Fix the columns from the CSV header or the first input row (also on resume, so they
        never change)."""
        if header:
            self.columns = list(header)
        elif isinstance(first_row, dict):
            self.columns = [str(name) for name in first_row]
        else:
            self.columns = ["input"]
        name = "prediction"
        while name in self.columns:
            name = f"_{name}"
        self.prediction_column = name

    def prologue(self) -> bytes:
        """Bytes that open a fresh output file."""
        if self.kind == "csv" and self.columns is not None:
            return self._csv_line([*self.columns, self.prediction_column])
        if self.kind == "json":
            return b"["
        return b""

    def epilogue(self, rows_written: int) -> bytes:
        if self.kind == "json":
            return b"\n]\n" if rows_written else b"]\n"
        return b""

    def encode(self, pairs: list[tuple[Any, Any]], rows_before: int) -> bytes:
        if not pairs:
            return b""
        if self.kind == "csv":
            buffer = io.StringIO()
            writer = csv.writer(buffer, lineterminator="\n")
            columns = self.columns or []
            for row, prediction in pairs:
                if isinstance(row, dict):
                    # CSV input: the same keys in the same order, all strings (the fast path)
                    same = len(row) == len(columns) and list(row) == columns
                    values = row.values() if same else map(row.get, columns)
                    cells = [v if v.__class__ is str else _cell(v) for v in values]
                else:
                    cells = [_cell(row)]
                cells.append(_cell(prediction))
                writer.writerow(cells)
            return buffer.getvalue().encode()
        records = []
        for row, prediction in pairs:
            if isinstance(row, dict):
                record = {**row, self.prediction_column: prediction}
            else:
                record = {"input": row, "prediction": prediction}
            records.append(json.dumps(record, ensure_ascii=False))
        if self.kind == "jsonl":
            return ("\n".join(records) + "\n").encode()
        lead = "\n" if rows_before == 0 else ",\n"
        return (lead + ",\n".join(records)).encode()

    @staticmethod
    def _csv_line(cells: list[str]) -> bytes:
        buffer = io.StringIO()
        csv.writer(buffer, lineterminator="\n").writerow(cells)
        return buffer.getvalue().encode()


# -- the run -------------------------------------------------------------------------------------


@dataclass
class _Failed:
    """Why one row went to the errors file."""

    reason: str
    kind: str
    status: int | None = None
    line: int | None = None


@dataclass
class _Batch:
    seq: int
    start: int  # 0-based index of the first row in the input
    rows: list[Any]
    end: Position | None = None  # where the input stands after the last row
    outcomes: list[Any] = field(default_factory=list)  # prediction or _Failed, per row


_PENDING = object()


class _Run:
    """One call of :func:`score_file`: its files, counters and the four parts of the pipeline."""

    def __init__(
        self,
        target: Any,
        input_path: str,
        output_path: str,
        options: BatchOptions,
        *,
        errors_path: str | None,
        progress: Callable[[BatchProgress], None] | None,
    ):
        self.target = target
        self.input_path = str(input_path)
        self.output_path = Path(output_path)
        self.errors_path = Path(errors_path) if errors_path else default_errors_path(output_path)
        self.files = RunFiles(
            self.input_path, self.output_path, self.errors_path, resume=options.resume
        )
        self.batch_size = batch_size = options.batch_size
        self.method = options.method
        self.coerce = options.coerce
        self.validate = options.validate
        self.encoding = options.encoding
        self.drop_columns = tuple(options.drop_columns)
        self.ignore_extra_columns = options.ignore_extra_columns
        self.progress_callback = progress
        self.source: RowSource | None = None
        #: columns read but not sent (dropped, or not in the swagger and ignored)
        self.strip: frozenset[str] = frozenset()
        self.envelope: EnvelopeSpec | Convention = Convention.DATA
        self.global_parameters: dict[str, Any] | float | None = None
        self._input_failure: errors.AmlcError | None = None
        self.timeout_s = options.timeout_s
        # Retries live here, not in the client (a Retry-After must pause every request), but
        # by the client's rule and waits.
        self.retry_policy = RetryPolicy()
        # Adaptive: never below two in flight, so the client's own work on one batch always
        # overlaps the endpoint's work on another.
        concurrency = _parse_concurrency(options.concurrency)
        self.limiter = ConcurrencyLimiter(
            concurrency,
            settings=AimdSettings(initial=2.0, min_limit=2.0) if concurrency is None else None,
        )
        self.gate = PauseGate()
        self.fmt = _OutputFormat(self.output_path)
        self.schema: ScoringSchema | None = None
        self.endpoint: AsyncEndpoint | None = None

        self.rows_read = 0
        self.rows_total: int | None = None
        self.retries = 0
        self.requests = 0
        self.endpoint_rows_ok = 0
        self.endpoint_rows_failed = 0
        self.started = time.monotonic()

        self._ready: dict[int, _Batch] = {}
        self._next_seq = 0
        self._dispatched = 0
        self._reader_done = False
        self._outstanding = 0
        self._wake_writer = asyncio.Event()
        self._wake_reader = asyncio.Event()
        self._tasks: set[asyncio.Task[None]] = set()
        self._failure: BaseException | None = None
        self._last_progress = 0.0
        self._sync_task: asyncio.Future[None] | None = None
        #: rows per request, lowered when the endpoint answers 413
        self._max_rows = batch_size

    # -- setup ---------------------------------------------------------------------------------

    def _header(self) -> dict[str, Any]:
        assert self.source is not None
        return {
            "input": {"path": _resolved(self.input_path)},
            "encoding": self.source.codec,
            "output": str(self.output_path.resolve()),
            "errors": str(self.errors_path.resolve()),
            "format": self.fmt.kind,
            "method": self.method,
            "coerce": self.coerce,
            "validate": self.validate,
            "drop_columns": sorted(set(self.drop_columns)),
            "ignore_extra_columns": self.ignore_extra_columns,
            "batch_size": self.batch_size,
            "started_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }

    async def _open_endpoint(self) -> AsyncEndpoint:
        from aml_client.client import AsyncEndpoint

        if isinstance(self.target, AsyncEndpoint):
            return self.target
        # Retries live here, not in the client: a Retry-After must pause every request.
        return AsyncEndpoint.from_target(
            self.target, retry=RetryPolicy(max_retries=0), timeout_s=self.timeout_s
        )

    async def _load_schema(self) -> None:
        assert self.endpoint is not None and self.source is not None
        if not self.validate and self.source.convention is not None:
            return  # the payload's own envelope is sent as it is: nothing to learn
        try:
            self.schema = await self.endpoint.schema()
        except errors.NotFoundError:
            log.warning("the endpoint publishes no swagger; rows are sent unvalidated")
            self.schema = None
        except errors.SchemaError as exc:
            if self.validate:
                raise
            log.warning("the endpoint's swagger cannot be read (%s); rows are sent as read", exc)
            self.schema = None

    def _plan_request(self) -> None:
        """Columns to send and the envelope, decided once before the first request."""
        assert self.source is not None
        source = self.source
        declared: list[str] = []
        if self.validate and self.schema is not None and self.schema.row_kind == "record":
            declared = self.schema.column_names
        self.strip = check_columns(
            source.columns(),
            declared,
            drop=self.drop_columns,
            ignore_extra=self.ignore_extra_columns,
            path=self.input_path,
            from_header=source.format == "csv",
        )
        self.global_parameters = source.global_parameters
        if self.validate and self.schema is not None:
            try:
                self.schema.check_global_parameters(self.global_parameters)
            except errors.ValidationError as exc:
                raise errors.ValidationError(exc.problems, source=source.path) from None
        if self.schema is not None and (self.validate or source.convention is None):
            self.envelope = self.schema  # the endpoint's own convention
        else:
            self.envelope = source.convention or Convention.DATA

    # -- main ----------------------------------------------------------------------------------

    async def run(self) -> ScoreFileResult:
        self.files.check_paths()
        from aml_client.rows import read_rows

        self.source = source = read_rows(self.input_path, encoding=self.encoding)
        self.coerce = source.converts_values(self.coerce)
        if self.files.open(self._header()):
            return self._summary()
        owns_endpoint = not _is_endpoint(self.target)
        self.endpoint = await self._open_endpoint()
        counter = None
        try:
            await self._load_schema()
            self._plan_request()
            if source.format in ("csv", "jsonl") and self.input_path != "-":
                counter = asyncio.create_task(self._count_rows(source.format))
            writer = asyncio.create_task(self._writer())
            ticker = asyncio.create_task(self._ticker())
            try:
                await self._reader(source)
                await writer
            finally:
                ticker.cancel()
                for task in (writer, *self._tasks):
                    task.cancel()
                await asyncio.gather(writer, ticker, *self._tasks, return_exceptions=True)
            failure = self._failure or self._input_failure
            if isinstance(failure, OSError):
                where = failure.filename or self.output_path
                raise errors.InputError(f"cannot write: {failure.strerror or failure}",
                                        path=str(where)) from failure
            if failure is not None:
                raise failure
            if self.files.resumed_rows + self.rows_read == 0:  # as the small path says it
                raise errors.InputError("no rows to score", path=source.path)
            return await self._finish()
        except BaseException:
            landing = self._sync_task is not None and not self._sync_task.done()
            self.files.discard_if_nothing_committed(commit_landing=landing)
            raise
        finally:
            if counter is not None:
                counter.cancel()
            if self._sync_task is not None and not self._sync_task.done():
                await asyncio.wait([self._sync_task])
            self.files.close()
            if owns_endpoint:
                await self.endpoint.aclose()

    async def _finish(self) -> ScoreFileResult:
        cp = self.files.checkpoint
        rows_in = self.files.resumed_rows + self.rows_read
        if cp.rows != rows_in or rows_in != cp.rows_out + cp.rows_failed:
            raise errors.AmlcError(
                f"row counts do not add up: {rows_in} read, {cp.rows_out} scored + "
                f"{cp.rows_failed} failed; the partial output and journal are kept"
            )
        opening = self.fmt.prologue() if cp.out == 0 else b""
        self.files.finish(opening + self.fmt.epilogue(cp.rows_out))
        self._report(force=True)
        return self._summary()

    def _summary(self) -> ScoreFileResult:
        cp = self.files.checkpoint
        elapsed = time.monotonic() - self.started
        fresh = cp.rows - self.files.resumed_rows
        return ScoreFileResult(
            rows_in=cp.rows,
            rows_out=cp.rows_out,
            rows_failed=cp.rows_failed,
            output_path=str(self.output_path),
            errors_path=str(self.errors_path) if cp.rows_failed else None,
            elapsed_s=elapsed,
            rows_per_s=fresh / elapsed if elapsed > 0 else 0.0,
            batches=cp.batches,
            retries=cp.retries,
            resumed_rows=self.files.resumed_rows,
            requests=self.requests,
            already_complete=self.files.already_complete,
            concurrency_peak=self.limiter.peak_in_flight,
            concurrency_final=self.limiter.cap,
        )

    # -- reader --------------------------------------------------------------------------------

    def _window(self) -> int:
        # Twice the requests in flight: a batch finishing out of order never stalls the
        # senders, and the reorder buffer stays as small as the concurrency.
        return 2 * self.limiter.cap + 2

    async def _reader(self, source: RowSource) -> None:
        cp = self.files.checkpoint
        first_row, header = source.first_row(), source.header()
        if first_row is not None or header:  # (an empty input makes an empty output)
            self.fmt.learn(first_row, header)
        start = Position(cp.input_offset, cp.input_line) if cp.rows else None
        reader: RowReader = source.reader(start)
        first = cp.rows
        seq = 0
        try:
            while self._failure is None:
                while self._outstanding >= self._window() and self._failure is None:
                    self._wake_reader.clear()
                    await self._wake_reader.wait()
                if self._failure is not None:
                    break
                try:
                    chunk = list(itertools.islice(reader, self.batch_size))
                except errors.AmlcError as exc:
                    # Unreadable from here on: finish and commit what was read, then stop.
                    self._input_failure = exc
                    break
                if not chunk:
                    break
                batch = _Batch(seq, first, chunk, end=reader.position)
                seq += 1
                first += len(chunk)
                self.rows_read += len(chunk)
                self._outstanding += 1
                self._dispatched = seq
                task = asyncio.create_task(self._process(batch))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
                await asyncio.sleep(0)  # let replies be handled between reads
        finally:
            reader.close()
        self._reader_done = True
        self._wake_writer.set()

    async def _count_rows(self, fmt: str) -> None:
        """Estimate the rows in the file for the ETA (newlines; the CSV header is one)."""

        def count() -> int:
            lines = 0
            last = b"\n"
            with open(self.input_path, "rb") as handle:
                while block := handle.read(1 << 20):
                    lines += block.count(b"\n")
                    last = block[-1:]
            lines += last != b"\n"
            return max(0, lines - (1 if fmt == "csv" else 0))

        with contextlib.suppress(OSError):
            self.rows_total = await asyncio.to_thread(count)

    # -- batches -------------------------------------------------------------------------------

    async def _process(self, batch: _Batch) -> None:
        try:
            batch.outcomes = [_PENDING] * len(batch.rows)
            to_send = self._validate(batch)
            if to_send:
                await self._score_part(batch, to_send)
            self._ready[batch.seq] = batch
            self._wake_writer.set()
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self._fail(exc)

    def _validate(self, batch: _Batch) -> list[tuple[int, Any]]:
        """Rows that read and pass the swagger, as ``(index, row to send)``; the rest are
        marked failed."""
        items: list[tuple[int, Any]] = []
        for index, row in enumerate(batch.rows):
            if isinstance(row, BadRow):
                batch.outcomes[index] = _Failed(row.reason, "malformed", line=row.line)
            else:
                items.append((index, without_columns(row, self.strip)))
        if self.schema is None or not items:
            return items
        if not self.validate:
            if self.coerce:  # unchecked, but CSV strings become the declared types if they can
                with contextlib.suppress(errors.ValidationError):
                    converted = self.schema.validate_rows([row for _, row in items], coerce=True)
                    return [(i, row) for (i, _), row in zip(items, converted, strict=True)]
            return items
        try:
            checked = self.schema.validate_rows(
                [row for _, row in items], coerce=bool(self.coerce)
            )
            return [(index, row) for (index, _), row in zip(items, checked, strict=True)]
        except errors.ValidationError:
            pass
        to_send = []
        for index, row in items:
            try:
                (checked_row,) = self.schema.validate_rows([row], coerce=bool(self.coerce))
            except errors.ValidationError as exc:
                reason = "; ".join(_without_row(p) for p in exc.problems)
                batch.outcomes[index] = _Failed(reason, "validation")
            else:
                to_send.append((index, checked_row))
        return to_send

    async def _score_part(self, batch: _Batch, items: list[tuple[int, Any]]) -> None:
        """Score ``items``; on a row-level failure split them in two and score each half."""
        if len(items) > self._max_rows:  # known to be too large for the endpoint
            for start in range(0, len(items), self._max_rows):
                await self._score_part(batch, items[start : start + self._max_rows])
            return
        try:
            predictions = await self._send([row for _, row in items])
        except errors.ValidationError as exc:
            # Refused by the encoder (NaN, Infinity) before anything was sent: the problems
            # name the rows, so set those aside and send the rest.
            bad = {p.row - 1 for p in exc.problems if p.row is not None} & set(range(len(items)))
            for offset in sorted(bad or range(len(items))):
                reasons = [_without_row(p) for p in exc.problems if p.row == offset + 1]
                batch.outcomes[items[offset][0]] = _Failed(
                    "; ".join(reasons) or _without_row(exc.problems[0]), "validation"
                )
            rest = [item for offset, item in enumerate(items) if bad and offset not in bad]
            if rest:
                await self._score_part(batch, rest)
            return
        except ROW_LEVEL_ERRORS as exc:
            if isinstance(exc, errors.PayloadTooLargeError) and len(items) > 1:
                # Every later batch would be refused too: send smaller requests from now on.
                self._max_rows = min(self._max_rows, len(items) // 2)
            if len(items) == 1:
                self._row_failed(batch, items[0][0], exc)
                return
            log.debug("batch %d: %s; splitting %d rows", batch.seq, exc, len(items))
            middle = len(items) // 2
            if self.endpoint_rows_ok == 0:
                # Nothing has succeeded yet: perhaps the endpoint, not the rows, is broken.
                # Depth first reaches single rows (and the verdict) in log2(n) requests.
                await self._score_part(batch, items[:middle])
                await self._score_part(batch, items[middle:])
                return
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._score_part(batch, items[:middle]))
                    group.create_task(self._score_part(batch, items[middle:]))
            except BaseExceptionGroup as group_error:
                raise _first_leaf(group_error) from None
            return
        self.endpoint_rows_ok += len(items)
        for (index, _), prediction in zip(items, predictions, strict=True):
            batch.outcomes[index] = prediction

    def _row_failed(self, batch: _Batch, index: int, exc: errors.AmlcError) -> None:
        status = getattr(exc, "status_code", None)
        kind = {
            errors.PayloadTooLargeError: "payload_too_large",
            errors.BadRequestError: "bad_request",
            errors.ModelError: "model_error",
            errors.ValidationError: "validation",
        }.get(type(exc), type(exc).__name__)
        batch.outcomes[index] = _Failed(str(exc), kind, status)
        self.endpoint_rows_failed += 1
        if self.endpoint_rows_ok == 0 and self.endpoint_rows_failed >= BROKEN_AFTER_ROWS:
            raise errors.EndpointError(
                f"the first {self.endpoint_rows_failed} rows sent all failed, one by one; the "
                f"endpoint looks broken rather than the rows bad. Last error: {exc}",
                status_code=status,
                request_id=getattr(exc, "request_id", None),
            ) from exc

    async def _send(self, rows: list[Any]) -> list[Any]:
        """One request, retried while the endpoint pushes back; returns its predictions
        (exactly one per row: the client checks the count)."""
        assert self.endpoint is not None
        body = encode_json(
            wrap(rows, self.envelope, method=self.method, global_parameters=self.global_parameters)
        )
        overloads = transients = 0
        while True:
            await self.gate.wait()
            error: errors.AmlcError | None = None
            async with self.limiter.slot() as epoch:
                if self.gate.paused:  # a pause began while this request queued for a slot
                    continue
                started = time.perf_counter()
                self.requests += 1
                try:
                    result = await self.endpoint.score_raw(body, rows=len(rows))
                except errors.EndpointError as exc:
                    if not exc.retryable:
                        raise
                    self.limiter.record_overload(epoch)
                    error = exc
                else:
                    latency = time.perf_counter() - started
                    self.limiter.record_success(latency, epoch, sample=len(rows) == self.batch_size)
            if error is None:
                return result.predictions
            self.retries += 1
            retry_after = getattr(error, "retry_after_s", None)
            if isinstance(error, OVERLOAD_ERRORS):
                overloads += 1
                if overloads > MAX_OVERLOAD_RETRIES:
                    raise error
                delay = self._delay_s(overloads - 1, retry_after)
                if retry_after is not None:
                    # The endpoint said when: nobody sends before then.
                    log.info("%s; every request waits %.2f s", error, delay)
                    self.gate.pause(delay)
                else:
                    # No date given: the limiter already sends less; this request backs off.
                    log.info("%s; retrying in %.2f s", error, delay)
                    await asyncio.sleep(delay)
            else:
                # the connection was never made: nothing reached the model
                transients += 1
                if transients > MAX_TRANSIENT_RETRIES:
                    raise error
                delay = self._delay_s(transients - 1, None)
                log.info("%s; retrying in %.2f s", error, delay)
                await asyncio.sleep(delay)

    def _delay_s(self, retry_number: int, retry_after_s: float | None) -> float:
        """The client's policy, never below 50 ms (a ``Retry-After: 0`` must not spin)."""
        return max(self.retry_policy.delay_s(retry_number, retry_after_s), 0.05)

    def _fail(self, exc: BaseException) -> None:
        if self._failure is None:
            self._failure = exc
        self._wake_reader.set()
        self._wake_writer.set()

    # -- writer --------------------------------------------------------------------------------

    async def _writer(self) -> None:
        try:
            await self._write_in_order()
        except BaseException as exc:
            self._fail(exc)
            raise

    async def _write_in_order(self) -> None:
        while True:
            await self._wake_writer.wait()
            self._wake_writer.clear()
            if self._failure is not None:
                return
            group = []
            while self._next_seq in self._ready:
                group.append(self._ready.pop(self._next_seq))
                self._next_seq += 1
            if group:
                await self._commit(group)
            if self._reader_done and self._next_seq >= self._dispatched:
                return

    async def _commit(self, group: list[_Batch]) -> None:
        files = self.files
        assert files.out is not None and files.err is not None
        cp = files.checkpoint
        pairs: list[tuple[Any, Any]] = []
        failures = []
        for batch in group:
            for offset, (row, outcome) in enumerate(zip(batch.rows, batch.outcomes, strict=True)):
                if outcome is _PENDING:
                    raise errors.AmlcError(f"row {batch.start + offset + 1} was never scored")
                if isinstance(outcome, _Failed):
                    failure: dict[str, Any] = {
                        "row": batch.start + offset + 1,
                        "reason": outcome.reason,
                        "kind": outcome.kind,
                        "status": outcome.status,
                        "input": row.text if isinstance(row, BadRow) else row,
                    }
                    if outcome.line is not None:
                        failure["line"] = outcome.line
                    failures.append(failure)
                else:
                    pairs.append((row, outcome))
        data = self.fmt.encode(pairs, cp.rows_out)
        if cp.out == 0:
            data = self.fmt.prologue() + data
        files.out.write(data)
        files.err.write(
            b"".join(json.dumps(f, ensure_ascii=False).encode() + b"\n" for f in failures)
        )
        last = group[-1]
        end = last.end or Position(0, 0)
        next_cp = Checkpoint(
            rows=last.start + len(last.rows),
            rows_out=cp.rows_out + len(pairs),
            rows_failed=cp.rows_failed + len(failures),
            batches=cp.batches + len(group),
            retries=self.files.retries_before + self.retries,
            input_offset=end.offset,
            input_line=end.line,
        )
        # fsync off the loop; shielded (and awaited on the way out) so an interrupt never
        # closes the files under a commit.
        self._sync_task = asyncio.ensure_future(asyncio.to_thread(files.sync, next_cp))
        await asyncio.shield(self._sync_task)
        files.checkpoint = next_cp
        self._outstanding -= len(group)
        self._wake_reader.set()
        self._report()

    # -- progress ------------------------------------------------------------------------------

    async def _ticker(self) -> None:
        while True:
            await asyncio.sleep(_PROGRESS_EVERY_S)
            self._report(force=True)

    def _report(self, force: bool = False) -> None:
        if self.progress_callback is None:
            return
        now = time.monotonic()
        if not force and now - self._last_progress < _PROGRESS_EVERY_S:
            return
        self._last_progress = now
        cp = self.files.checkpoint
        elapsed = now - self.started
        fresh = cp.rows - self.files.resumed_rows
        rate = fresh / elapsed if elapsed > 0 else 0.0
        total = self.rows_total
        if total is not None:
            total = max(total, self.files.resumed_rows + self.rows_read)
        eta = (total - cp.rows) / rate if total is not None and rate > 0 else None
        self.progress_callback(
            BatchProgress(
                rows_total=total,
                rows_done=cp.rows,
                rows_failed=cp.rows_failed,
                retries=self.files.retries_before + self.retries,
                batches_done=cp.batches,
                rows_per_s=rate,
                eta_s=eta,
                in_flight=self.limiter.in_flight,
                concurrency=self.limiter.cap,
                paused=self.gate.paused,
            )
        )


def _first_leaf(group: BaseExceptionGroup) -> BaseException:
    """The first real error inside (nested) exception groups."""
    error: BaseException = group
    while isinstance(error, BaseExceptionGroup):
        error = error.exceptions[0]
    return error


def _resolved(path: str) -> str:
    return path if path == "-" else str(Path(path).resolve())


def _is_endpoint(target: Any) -> bool:
    from aml_client.client import AsyncEndpoint

    return isinstance(target, AsyncEndpoint)


def _without_row(problem: errors.RowProblem) -> str:
    """A problem's text without ``row 1`` (the errors file gives the real row number)."""
    if problem.column is not None:
        return f"column '{problem.column}': {problem.message}"
    return problem.message

