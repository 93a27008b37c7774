"""``amlc score`` and ``amlc health``: predictions for a file of rows, and the endpoint's pulse.

The command is a thin edge over the library: it resolves the endpoint (config.resolve_target),
reads rows (rows.read_rows), checks the columns once against the swagger (rows.check_columns),
lets Endpoint.score validate the rows and send them, and renders the result. Inputs with more
rows than one batch, or an ``-o`` file, go to the large-input path (batch.score_file), which
streams, runs batches concurrently and can resume.

Without a swagger, or with ``--no-validate``, a JSON payload is sent in its own envelope
(``{"Inputs": ...}`` stays ``{"Inputs": ...}``), with its ``GlobalParameters``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import logging
import time
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape

from aml_client import config
from aml_client.cli import checks, output
from aml_client.errors import (
    AmlcError,
    EndpointError,
    InputError,
    NotFoundError,
    SchemaError,
    ValidationError,
)

if TYPE_CHECKING:
    from aml_client.batch import BatchOptions, BatchProgress, ScoreFileResult
    from aml_client.client import Endpoint, ScoreResult
    from aml_client.rows import RowSource
    from aml_client.schema import ScoringSchema

log = logging.getLogger("aml_client.cli")

#: Column names that identify a row better than its first few columns.
ID_COLUMNS = ("id", "ID", "Id", "row_id", "rowid", "key", "customer_id", "index")
#: How many leading input columns to show beside a prediction when there is no id column.
SHOWN_COLUMNS = 4
#: Widest cell rendered for an input value, so wide rows still fit a terminal.
MAX_CELL = 24


class Method(StrEnum):
    PREDICT = "predict"
    PREDICT_PROBA = "predict_proba"


class CliExit(AmlcError):
    """A failure already explained in full by its message, with its own exit code."""

    def __init__(
        self,
        message: str,
        exit_code: int,
        *,
        kind: str = "rows_failed",
        problems: list[Any] | None = None,
    ):
        super().__init__(message)
        self.exit_code = exit_code
        #: What went wrong, for ``--json`` (``{"error": {"kind": …}}``).
        self.kind = kind
        #: The validation problems behind it, for ``--json`` (``{"error": {"problems": …}}``).
        self.problems = problems or []


def _parse_concurrency(value: str) -> int | str:
    """``--concurrency``: a fixed number of requests in flight, or ``auto`` (adaptive)."""
    if value == "auto":
        return value
    try:
        number = int(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not an integer ≥ 1 or 'auto'") from None
    if number < 1:
        raise typer.BadParameter(f"{value!r} is not an integer ≥ 1 or 'auto'")
    return number


def _check_concurrency(value: str) -> str:
    _parse_concurrency(value)
    return value


def _cell(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= MAX_CELL else text[: MAX_CELL - 1] + "…"


def identifying_columns(rows: list[Any], chosen: list[str] | None) -> list[str]:
    """Input columns shown beside each prediction: ``--columns``, an id column, or the first few."""
    first = next((row for row in rows if isinstance(row, dict)), None)
    if first is None:
        return []
    if chosen:
        unknown = [name for name in chosen if name not in first]
        if unknown:
            raise InputError(
                f"--columns: no column {', '.join(repr(n) for n in unknown)} in the input "
                f"(columns: {', '.join(list(first)[:12])}{', …' if len(first) > 12 else ''})"
            )
        return chosen
    for name in ID_COLUMNS:
        if name in first:
            return [name]
    return list(first)[:SHOWN_COLUMNS]


def render_table(rows: list[Any], predictions: list[Any], columns: list[str]) -> None:
    """Predictions beside a few identifying input columns, on stdout (it is the data asked for)."""
    from rich.table import Table

    table = Table(show_edge=False, pad_edge=False)
    table.add_column("#", justify="right", style="dim")
    dict_rows = bool(columns)
    if dict_rows:
        for name in columns:
            table.add_column(name, overflow="ellipsis")
    else:
        table.add_column("input", overflow="ellipsis")
    table.add_column("prediction", style="bold cyan")
    for index, (row, prediction) in enumerate(zip(rows, predictions, strict=False), start=1):
        if dict_rows:
            cells = [_cell(row.get(name)) if isinstance(row, dict) else "" for name in columns]
        else:
            cells = [_cell(row)]
        table.add_row(str(index), *cells, _cell(prediction))
    output.table(table)


def _score_small(
    target: config.Target,
    source: RowSource,
    rows: list[Any],
    *,
    method: str | None,
    validate: bool,
    coerce: bool,
    timeout_s: float,
    retries: int,
    schema: ScoringSchema | None,
    strip: frozenset[str],
) -> ScoreResult:
    """One request: validated and wrapped for the endpoint when there is a swagger to check
    against, else the input's own envelope (and GlobalParameters) as they were written."""
    from aml_client.client import Endpoint, RetryPolicy
    from aml_client.envelope import Convention, wrap
    from aml_client.http.jsonbody import encode_json
    from aml_client.rows import without_columns

    sendable = [without_columns(row, strip) for row in rows]
    global_parameters = source.global_parameters
    endpoint: Endpoint
    with Endpoint.from_target(
        target, timeout_s=timeout_s, retry=RetryPolicy(max_retries=retries), swagger=schema
    ) as endpoint:
        if schema is not None and validate:
            payload = wrap(
                sendable, source.convention or schema.convention,
                global_parameters=global_parameters,
            )
            try:
                return endpoint.score(payload, method=method, validate=True, coerce=coerce)
            except ValidationError as exc:
                if exc.source is None:  # name the file in the one line the user sees
                    raise ValidationError(exc.problems, source=source.path) from exc
                raise
        if schema is not None and coerce:
            # Unvalidated, but CSV strings still become the declared types where they can.
            with contextlib.suppress(ValidationError):
                sendable = schema.validate_rows(sendable, coerce=True)
        envelope: Any = source.convention or schema or Convention.DATA
        body = wrap(sendable, envelope, method=method, global_parameters=global_parameters)
        try:
            return endpoint.score_raw(encode_json(body), rows=len(sendable))
        except ValidationError as exc:  # NaN or Infinity: JSON cannot carry them
            raise ValidationError(exc.problems, source=source.path) from exc


def _load_schema(
    target: config.Target, timeout_s: float, *, required: bool
) -> ScoringSchema | None:
    """The endpoint's swagger; None (with one warning) when it publishes none, or when it
    cannot be read and is not ``required`` (rows are not validated)."""
    from aml_client.client import Endpoint

    endpoint: Endpoint
    with Endpoint.from_target(target, timeout_s=timeout_s) as endpoint:
        try:
            return endpoint.schema()
        except SchemaError as exc:
            if required:
                raise
            log.warning("the endpoint's swagger cannot be read (%s); rows are sent as read", exc)
            return None
        except NotFoundError:
            log.warning(
                "the endpoint publishes no swagger (%s); rows are sent unvalidated, in the "
                "input's own envelope",
                endpoint.swagger_uri,
            )
            return None


def _show_problems(exc: ValidationError, all_problems: bool) -> ValidationError | CliExit:
    """The error to end with: with ``--all-problems`` every problem is listed first."""
    count = len(exc.problems)
    if not all_problems:
        if count > 1:
            return CliExit(
                f"{exc}; --all-problems lists every one",
                exit_code=2,
                kind="validation",
                problems=exc.problems,
            )
        return exc
    for problem in exc.problems:
        output.console.print(f"  {escape(str(problem))}", soft_wrap=True)
    where = f"{exc.source}: " if exc.source else ""
    return CliExit(
        f"{where}{output.plural(count, 'problem')} (listed above)",
        2,
        kind="validation",
        problems=exc.problems,
    )


def _run_batch(
    target: config.Target,
    input_path: str,
    output_path: str,
    options: BatchOptions,
    *,
    errors_path: str | None,
    show_progress: bool,
) -> ScoreFileResult:
    """The large-input path: stream, score concurrently, write in input order, show progress.

    A run that fails after committing rows says how to carry on: its journal stays.
    """
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    from aml_client.batch import score_file
    from aml_client.journal import journal_path

    progress = Progress(
        TextColumn("[bold]scoring[/]"),
        BarColumn(),
        TextColumn("{task.fields[done]} rows"),
        TextColumn("{task.fields[rate]} rows/s"),
        TextColumn("ETA {task.fields[eta]}"),
        TextColumn("retries {task.fields[retries]}"),
        TextColumn("{task.fields[failed]}"),
        TimeElapsedColumn(),
        console=output.console,
        disable=not show_progress,
    )
    task = progress.add_task(
        "score", total=None, done="0", rate="-", eta="-", retries=0, failed="failed 0"
    )

    def report(p: BatchProgress) -> None:
        finished = p.rows_done  # scored or failed
        progress.update(
            task,
            completed=finished,
            total=p.rows_total,
            done=f"{finished:,}" + (f"/{p.rows_total:,}" if p.rows_total else ""),
            rate=f"{p.rows_per_s:,.0f}" if p.rows_per_s else "-",
            eta=_duration(p.eta_s),
            retries=p.retries,
            failed=f"[red]failed {p.rows_failed:,}[/]" if p.rows_failed else "failed 0",
        )

    try:
        with progress:
            return score_file(
                target, input_path, output_path, options, errors_path=errors_path,
                progress=report,
            )
    except KeyboardInterrupt:
        raise CliExit(
            "interrupted: finished batches are kept; run the same command with --resume "
            "to continue",
            exit_code=130,
            kind="interrupted",
        ) from None
    except AmlcError as exc:
        if isinstance(exc, CliExit) or not journal_path(output_path).exists():
            raise
        raise CliExit(
            f"{exc} — the rows finished so far are kept: fix the cause and run the same "
            "command with --resume to continue",
            exit_code=exc.exit_code,
            kind=output.error_kind(exc),
        ) from exc


def _report_batch(target: config.Target, summary: ScoreFileResult, json_out: bool) -> None:
    """The end counts of a ``-o`` run; a non-zero exit when any row could not be scored."""
    if json_out:
        output.print_json(
            {
                "endpoint": target.name,
                "rows_in": summary.rows_in,
                "rows_out": summary.rows_out,
                "rows_failed": summary.rows_failed,
                "output_path": str(summary.output_path),
                "errors_path": str(summary.errors_path) if summary.errors_path else None,
                "elapsed_s": round(summary.elapsed_s, 3),
                "rows_per_s": round(summary.rows_per_s, 1),
                "batches": summary.batches,
                "retries": summary.retries,
                "resumed_rows": summary.resumed_rows,
                "already_complete": summary.already_complete,
            }
        )
    elif summary.already_complete:
        failed = (
            f", {summary.rows_failed:,} failed → {escape(str(summary.errors_path))}"
            if summary.rows_failed
            else ""
        )
        output.result(
            f"already complete: {output.plural(summary.rows_in, 'row')}, nothing sent "
            f"({summary.rows_out:,} scored → {escape(str(summary.output_path))}{failed})"
        )
    else:
        failed = (
            f"[red]{summary.rows_failed:,} failed[/] → {escape(str(summary.errors_path))}"
            if summary.rows_failed
            else "0 failed"
        )
        earlier = (
            f" ({summary.resumed_rows:,} from the earlier run)" if summary.resumed_rows else ""
        )
        output.result(
            f"{output.plural(summary.rows_in, 'row')} in{earlier}: "
            f"[green]{summary.rows_out:,} scored[/] → {escape(str(summary.output_path))}, "
            f"{failed} · {summary.elapsed_s:.1f} s · {summary.rows_per_s:,.0f} rows/s · "
            f"{output.plural(summary.batches, 'batch', 'batches')} · "
            f"{output.plural(summary.retries, 'retry', 'retries')} · "
            f"endpoint {escape(target.describe())}"
        )
    if summary.rows_failed and not summary.already_complete:  # reported by the run that did it
        raise CliExit(
            f"{summary.rows_failed:,} of {output.plural(summary.rows_in, 'row')} could not be "
            f"scored; reasons in {summary.errors_path}",
            exit_code=2,
        )


def _score_many_to_screen(
    target: config.Target, source: RowSource, options: BatchOptions
) -> tuple[list[Any], list[Any], float]:
    """More rows than one batch but no ``-o``: score through the large-input path into a
    temporary file, then hand back (rows, predictions, seconds) for the table or JSON."""
    import tempfile

    input_path = source.path
    with tempfile.TemporaryDirectory(prefix="amlc-score-") as tmp:
        if source.buffered is not None:  # stdin is read once already: spool it as it was
            spooled = Path(tmp) / f"stdin.{source.format}"
            spooled.write_bytes(source.buffered)
            input_path = str(spooled)
        out = Path(tmp) / "predictions.jsonl"
        errors_file = Path(tmp) / "errors.jsonl"
        summary = _run_batch(
            target, input_path, str(out), dataclasses.replace(options, resume=False),
            errors_path=str(errors_file), show_progress=output.console.is_terminal,
        )
        if summary.rows_failed:
            with errors_file.open(encoding="utf-8") as handle:
                first = json.loads(handle.readline())
            raise CliExit(
                f"{summary.rows_failed:,} of {output.plural(summary.rows_in, 'row')} could not "
                f"be scored (first: row {first.get('row')}: {first.get('reason')}); "
                "add -o FILE --errors FILE to keep the scored rows and every reason",
                exit_code=2,
            )
        scored_rows, predictions = [], []
        with out.open(encoding="utf-8") as handle:
            for line in handle:
                record = json.loads(line)
                *_, prediction = record.values()  # the prediction is the record's last field
                record.popitem()
                scored_rows.append(record.get("input", record) if len(record) == 1 else record)
                predictions.append(prediction)
    return scored_rows, predictions, summary.elapsed_s


def _duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds or seconds < 0:
        return "-"
    seconds = round(seconds)
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


def score(
    input_: Annotated[
        str,
        typer.Argument(
            metavar="INPUT", help="JSON (either convention or a list), JSONL, CSV, or - for stdin."
        ),
    ],
    endpoint: Annotated[
        str | None,
        typer.Option(
            "--endpoint",
            "-e",
            help="Profile name or 'local'. Default: $AMLC_SCORING_URI, else the default "
            "profile, else the running local endpoint.",
        ),
    ] = None,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout, nothing else.")] = False,
    output_path: Annotated[
        str | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write predictions (.csv or .jsonl)."),
    ] = None,
    columns: Annotated[
        str | None, typer.Option("--columns", help="Input columns to show, e.g. id,age.")
    ] = None,
    method: Annotated[
        Method | None, typer.Option("--method", help="Ask the model for this method.")
    ] = None,
    validate: Annotated[
        bool, typer.Option("--validate/--no-validate", help="Check rows against the swagger.")
    ] = True,
    coerce: Annotated[
        bool | None,
        typer.Option(
            "--coerce/--no-coerce", help="Convert strings to declared types (CSV: on by default)."
        ),
    ] = None,
    timeout: Annotated[
        float,
        typer.Option(
            "--timeout",
            callback=checks.positive_seconds,
            help="Seconds per request attempt: connecting, sending and reading the whole answer.",
        ),
    ] = 60.0,
    retries: Annotated[
        int, typer.Option("--retries", min=0, help="Retries for retryable failures.")
    ] = 2,
    batch_size: Annotated[
        int, typer.Option("--batch-size", min=1, help="Rows per request on the large path.")
    ] = 200,
    concurrency: Annotated[
        str, typer.Option(
            "--concurrency",
            callback=_check_concurrency,
            help="Requests in flight: a number or 'auto'.",
        )
    ] = "8",
    resume: Annotated[
        bool, typer.Option("--resume", help="Continue an interrupted -o run from its journal.")
    ] = False,
    errors_path: Annotated[
        str | None,
        typer.Option("--errors", metavar="FILE", help="Rows that cannot be scored, with reasons."),
    ] = None,
    encoding: Annotated[
        str | None,
        typer.Option(
            "--encoding",
            metavar="NAME",
            help="The input's text encoding when it has no byte-order mark, e.g. cp1252 "
            "(default UTF-8).",
        ),
    ] = None,
    drop_columns: Annotated[
        list[str] | None,
        typer.Option(
            "--drop-columns",
            metavar="NAME[,NAME]",
            help="Input columns not to send (e.g. a label column y); they stay in the -o file. "
            "Repeatable.",
        ),
    ] = None,
    ignore_extra_columns: Annotated[
        bool,
        typer.Option(
            "--ignore-extra-columns",
            help="Do not send input columns the swagger does not declare (instead of refusing).",
        ),
    ] = False,
    all_problems: Annotated[
        bool,
        typer.Option("--all-problems", help="List every validation problem, not the first."),
    ] = False,
    deployment: Annotated[
        str | None,
        typer.Option(
            "--deployment",
            "-d",
            help="Send to this deployment of the endpoint (azureml-model-deployment).",
        ),
    ] = None,
) -> None:
    """Score rows against an endpoint, checked against its swagger first.

    Prints predictions beside a few input columns (or JSON with --json). With -o, or more rows
    than --batch-size, rows are sent in concurrent batches; -o runs resume with --resume.
    A column the swagger does not declare is refused once, before anything is sent: drop it
    with --drop-columns NAME or pass --ignore-extra-columns.
    """
    from aml_client.batch import BatchOptions
    from aml_client.rows import check_columns, read_rows

    concurrency_value = _parse_concurrency(concurrency)
    if input_ != "-" and Path(input_).is_dir():
        raise InputError("is a directory, not a file", path=input_)
    if input_ != "-" and not Path(input_).is_file():
        raise InputError("no such file", path=input_)
    if (resume or errors_path is not None) and output_path is None:
        raise InputError("--resume and --errors need an output file: add -o FILE")
    dropped = tuple(
        name.strip() for value in drop_columns or () for name in value.split(",") if name.strip()
    )
    target = config.resolve_target(endpoint)
    if deployment is not None:
        target = dataclasses.replace(target, deployment=deployment)
    method_value = method.value if method else None
    chosen = [c.strip() for c in columns.split(",") if c.strip()] if columns else None
    # Only text (CSV cells) is converted unless --coerce/--no-coerce says otherwise; the
    # large-input path decides per format the same way.
    options = BatchOptions(
        batch_size=batch_size, concurrency=concurrency_value, resume=resume,
        method=method_value, coerce=coerce, validate=validate, encoding=encoding,
        drop_columns=dropped, ignore_extra_columns=ignore_extra_columns, timeout_s=timeout,
    )

    if output_path is not None:
        if resume and input_ == "-":
            raise InputError("--resume needs a file input, not stdin")
        summary = _run_batch(
            target, input_, output_path, options, errors_path=errors_path,
            show_progress=output.console.is_terminal,
        )
        _report_batch(target, summary, json_out)
        return

    source = read_rows(input_, encoding=encoding)
    # Read first: a broken file is reported before anything is asked of the endpoint.
    rows = list(itertools.islice(iter(source), batch_size + 1))
    if not rows:
        raise InputError("no rows to score", path=source.path)
    shown = identifying_columns(rows, chosen)  # an unknown --columns fails before sending
    coerce_value = source.converts_values(coerce)
    schema: ScoringSchema | None = None
    # The swagger checks the rows, converts CSV strings, and names the envelope of a file that
    # has none of its own; a payload sent unvalidated keeps its own.
    if validate or (source.format == "csv" and coerce_value) or source.convention is None:
        schema = _load_schema(target, timeout, required=validate)
    declared: list[str] = []
    if validate and schema is not None and schema.row_kind == "record":
        declared = schema.column_names
    strip = check_columns(
        source.columns(), declared, drop=dropped, ignore_extra=ignore_extra_columns,
        path=source.path, from_header=source.format == "csv",
    )

    started = time.perf_counter()
    request_id: str | None = None
    answered_by: str | None = None
    retries_note = ""
    if len(rows) > batch_size:
        rows, predictions, elapsed_s = _score_many_to_screen(target, source, options)
    else:
        try:
            result = _score_small(
                target, source, rows, method=method_value, validate=validate,
                coerce=coerce_value, timeout_s=timeout, retries=retries, schema=schema,
                strip=strip,
            )
        except ValidationError as exc:
            raise _show_problems(exc, all_problems) from None
        predictions, elapsed_s, request_id = result.predictions, result.elapsed_s, result.request_id
        answered_by = result.deployment
        if result.attempts > 1:
            retries_note = f" · {output.plural(result.attempts - 1, 'retry', 'retries')}"
    wall_ms = (time.perf_counter() - started) * 1000
    if json_out:
        output.print_json(
            {
                "predictions": predictions,
                "endpoint": target.name,
                "rows": len(rows),
                "elapsed_ms": round(elapsed_s * 1000, 2),
                "request_id": request_id,
                "deployment": answered_by,
            }
        )
        return
    render_table(rows, predictions, shown)
    output.result(
        f"[dim]{output.plural(len(rows), 'row')} · endpoint {escape(target.describe())} · "
        f"{elapsed_s * 1000:.0f} ms (scoring) / {wall_ms:.0f} ms (total){retries_note}"
        f"{f' · request id {escape(request_id)}' if request_id else ''}"
        f"{f' · deployment {escape(answered_by)}' if answered_by else ''}[/]"
    )


def health(
    endpoint: Annotated[
        str | None, typer.Option("--endpoint", "-e", help="Profile name or 'local'.")
    ] = None,
    timeout: Annotated[
        float,
        typer.Option("--timeout", callback=checks.positive_seconds, help="Seconds to wait."),
    ] = 10.0,
    json_out: Annotated[bool, typer.Option("--json", help="JSON on stdout.")] = False,
) -> None:
    """Check the endpoint's health route (GET /); non-zero exit when it is not healthy."""
    from aml_client.client import Endpoint, RetryPolicy

    target = config.resolve_target(endpoint)
    endpoint_client: Endpoint
    started = time.perf_counter()
    with Endpoint.from_target(
        target, timeout_s=timeout, retry=RetryPolicy(max_retries=0)
    ) as endpoint_client:
        status = endpoint_client.health()
    elapsed_ms = (time.perf_counter() - started) * 1000
    healthy = status.strip().strip('"').lower() == "healthy"
    if json_out:
        output.print_json(
            {
                "endpoint": target.name,
                "scoring_uri": target.scoring_uri,
                "status": status,
                "healthy": healthy,
                "elapsed_ms": round(elapsed_ms, 2),
            }
        )
    else:
        colour = "green" if healthy else "red"
        output.result(
            f"[{colour}]{escape(status.strip())}[/] · {elapsed_ms:.0f} ms · "
            f"{escape(target.describe())}"
        )
    if not healthy:
        raise EndpointError(f"{target.describe()} answered {status.strip()[:80]!r}, not Healthy")


def register(app: typer.Typer) -> None:
    app.command("score")(score)
    app.command("health")(health)
