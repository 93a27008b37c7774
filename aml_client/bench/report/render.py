"""Turn a run summary into tables, Markdown and a self-contained HTML page.

Works from a :class:`~aml_client.bench.report.summary.BenchSummary` alone, so a stored run
renders the same way it did when it was written. The table builders return plain rows of strings
that the Markdown, the HTML and the CLI's rich tables all share, so the three never disagree.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from aml_client.bench.report.capacity import GENERATOR_LIMIT_HINT
from aml_client.bench.report.summary import (
    PERCENTILES,
    BenchSummary,
    Capacity,
    CapacityStep,
    Failures,
    LatencyBlock,
    sample_warnings,
)
from aml_client.bench.report.svgchart import (
    PALETTE,
    RefLine,
    Series,
    bar_chart,
    line_chart,
    nines_ticks,
    nines_x,
)

__all__ = [
    "ab_table",
    "agreement_line",
    "blue_green_capacity_table",
    "blue_green_table",
    "capacity_answer",
    "capacity_table",
    "deployment_table",
    "describe_load",
    "failures_text",
    "fmt_ms",
    "html",
    "judged_figure",
    "latency_table",
    "markdown",
    "overview_rows",
    "phase_table",
    "spectrum_svg",
    "transfer_rows",
    "validity_line",
    "verdict_lines",
]

_TEMPLATE = Path(__file__).with_name("templates") / "report.html"
_AB_TITLE = "Percentage of the requests served within a certain time (ms)"
_LATENCY_ROWS = ("min", "mean", "stdev", *(f"p{p:g}" for p in PERCENTILES), "max")
_PHASE_TITLE = "Where the time goes (ms)"


def fmt_ms(value: float | None) -> str:
    """Milliseconds with microsecond precision (``12.345``); ``-`` when missing."""
    if value is None:
        return "-"
    return f"{value:,.3f}"


def _fmt_num(value: float | int | None, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def describe_load(summary: BenchSummary, *, short: bool = False) -> str:
    """``closed model, 20 users`` / ``open model, 100 req/s poisson arrivals`` (+ workers)."""
    config = summary.config
    lanes = summary.blue_green.deployments if summary.blue_green is not None else []
    if summary.capacity is not None or any(
            r.capacity is not None for r in (summary.blue_green.runs if summary.blue_green
                                             else [])):
        if short:
            return "capacity" + (f" {'/'.join(lanes)}" if lanes else "")
        return "capacity search" + (f" of each of {', '.join(lanes)}" if lanes else "")
    if short and lanes:
        load = (f"open {config.rate if config.rate is not None else '?'}/s"
                if summary.mode == "open" else
                f"closed {config.users if config.users is not None else '?'}u")
        return f"{load} {'/'.join(lanes)}"
    if short:
        if summary.mode == "open":
            return f"open {config.rate if config.rate is not None else '?'}/s"
        return f"closed {config.users if config.users is not None else '?'}u"
    if summary.mode == "open":
        text = "open model"
        if config.rate is not None:
            text += f", {config.rate:g} req/s"
        if config.arrival:
            text += f" {config.arrival} arrivals"
    else:
        text = "closed model"
        if config.users is not None:
            text += f", {config.users} user{'' if config.users == 1 else 's'}"
    if config.workers:
        text += f", {config.workers} worker process{'' if config.workers == 1 else 'es'}"
    if summary.blue_green is not None:
        text += f"; the same bodies to {', '.join(summary.blue_green.deployments)} in turn"
    return text


def _kinds(summary: BenchSummary) -> list[tuple[str, LatencyBlock]]:
    blocks = [(summary.latency.kind, summary.latency)]
    if summary.corrected is not None:
        blocks.append(("corrected", summary.corrected))
    return blocks


def validity_line(summary: BenchSummary) -> str:
    """``VALID`` / ``INVALID: <reasons>`` / ``not assessed``."""
    validity = summary.validity
    if validity.valid is None:
        return "not assessed (report written before amlc checked the load generator)"
    if validity.valid:
        return "VALID"
    return "INVALID: " + "; ".join(validity.reasons)


def failures_text(failures: Failures) -> str:
    """``12 (http_424 12 [model answered 500 Internal Server Error: 12])``: each kind's count,
    and Azure's reasons beside it where the endpoint gave them."""
    kinds = []
    for kind, count in failures.by_kind.items():
        reasons = failures.reasons.get(kind) or {}
        said = "; ".join(f"{reason}: {n:,}" for reason, n in reasons.items())
        kinds.append(f"{kind} {count:,}" + (f" [{said}]" if said else ""))
    return _fmt_num(failures.total) + (f" ({', '.join(kinds)})" if kinds else "")


def overview_rows(summary: BenchSummary) -> list[tuple[str, str]]:
    """(label, value) pairs describing the run as a whole."""
    rows = [
        ("Endpoint", summary.endpoint),
        ("Load", describe_load(summary)),
        ("Run", validity_line(summary)),
        ("Started (UTC)", summary.started_at),
        ("Measured for", f"{_fmt_num(summary.duration_s, 3)} s"),
        ("Requests", _fmt_num(summary.requests)),
        ("Failures", failures_text(summary.failures)),
        ("Error rate",
         "-" if summary.error_rate is None else f"{summary.error_rate * 100:.3f} %"),
        ("Throughput", f"{_fmt_num(summary.throughput_rps, 2)} req/s"),
    ]
    for kind, block in _kinds(summary):
        rows.append((f"Samples ({kind})", _fmt_num(block.samples)))
    if summary.corrected is not None:
        rows.append(("Judged on", "corrected latency (intended start -> reply)"))
    validity = summary.validity
    if validity.slip is not None:
        rows.append(("Send slip (due -> sent)",
                     f"p50 {fmt_ms(validity.slip.value_ms('p50'))} ms, "
                     f"p99 {fmt_ms(validity.slip.value_ms('p99'))} ms, "
                     f"max {fmt_ms(validity.slip.max_ms)} ms; {validity.late_sends:,} late"))
    if validity.cpu_peak_percent is not None:
        rows.append(("Load process CPU",
                     f"mean {validity.cpu_mean_percent:.0f} %, busiest second "
                     f"{validity.cpu_peak_percent:.0f} % of a core"))
    if validity.max_senders is not None:
        rows.append(("Senders", f"{validity.peak_in_flight:,} busy at most, cap "
                                f"{validity.max_senders:,} (--max-senders)"))
    return rows


def latency_table(summary: BenchSummary) -> tuple[list[str], list[list[str]]]:
    """Header and rows: min, mean, stdev, p50 .. p99.99, max for each latency kind (ms)."""
    blocks = _kinds(summary)
    header = ["ms", *(kind for kind, _ in blocks)]
    rows = [[name, *(fmt_ms(block.value_ms(name)) for _, block in blocks)]
            for name in _LATENCY_ROWS]
    return header, rows


def ab_table(summary: BenchSummary) -> tuple[str, list[str], list[list[str]]]:
    """``ab``'s "served within" table: title, header and rows (100 % is the longest request)."""
    blocks = _kinds(summary)
    header = ["%", *(kind for kind, _ in blocks)]
    rows = []
    for p in blocks[0][1].served_within_ms:
        cells = [fmt_ms(block.served_within_ms.get(p)) for _, block in blocks]
        label = f"{p}%" + (" (longest request)" if p == "100" else "")
        rows.append([label, *cells])
    return _AB_TITLE, header, rows


def phase_table(summary: BenchSummary) -> tuple[str, list[str], list[list[str]]]:
    """Where the time goes: per phase, samples, mean, p50, p90, p99, max and share of the time.

    The share is the phase's summed time over the summed total latency: ``server`` + ``rest``
    make 100 %, and so do ``connect`` + ``ttfb`` + ``body``.
    """
    header = ["phase", "samples", "mean", "p50", "p90", "p99", "max", "share of time"]
    total = summary.latency.sum_ms
    rows = []
    blocks = [("total", summary.latency), *summary.phases.items()]
    for name, block in blocks:
        share = f"{block.sum_ms / total * 100:.1f} %" if total else "-"
        rows.append([name, _fmt_num(block.samples), fmt_ms(block.mean_ms),
                     fmt_ms(block.value_ms("p50")), fmt_ms(block.value_ms("p90")),
                     fmt_ms(block.value_ms("p99")), fmt_ms(block.max_ms), share])
    return _PHASE_TITLE, header, rows


def deployment_table(summary: BenchSummary) -> tuple[list[str], list[list[str]]]:
    """Per answering deployment: requests, share, failures, p50, p99, max."""
    header = ["deployment", "requests", "share", "failures", "p50", "p99", "max"]
    rows = [[d.name, _fmt_num(d.requests), f"{d.share * 100:.1f} %", _fmt_num(d.failures),
             fmt_ms(d.latency.value_ms("p50")), fmt_ms(d.latency.value_ms("p99")),
             fmt_ms(d.latency.max_ms)] for d in summary.deployments]
    return header, rows


_SIDE_BY_SIDE = ("min", "mean", "p50", "p90", "p99", "p99.9", "max")


def blue_green_table(summary: BenchSummary) -> tuple[list[str], list[list[str]]]:
    """Every deployment of a blue/green run side by side, with each one's change against the
    baseline (the verdicts say which changes are significant)."""
    section = summary.blue_green
    if section is None:
        return [], []
    runs = section.runs
    base = section.run(section.baseline)
    others = [r for r in runs if r.name != section.baseline]
    judged = runs[0].judged_on if runs else "latency"
    header = ["", *(r.name for r in runs), *(f"{r.name} vs {section.baseline}" for r in others)]

    def change(a: float | None, b: float | None) -> str:
        if a is None or b is None or not a:
            return "-"
        return f"{(b / a - 1) * 100:+.1f} %"

    rows: list[list[str]] = [
        ["requests", *(_fmt_num(r.requests) for r in runs), *("" for _ in others)],
        ["failures", *(_fmt_num(r.failures.total) for r in runs), *("" for _ in others)],
        ["answered by", *(", ".join(f"{k} {v:,}" for k, v in r.answered_by.items()) or "-"
                          for r in runs), *("" for _ in others)],
    ]
    if any(r.throughput_rps is not None for r in runs):
        rows.append(["req/s", *(_fmt_num(r.throughput_rps, 2) for r in runs),
                     *("" for _ in others)])
    label = " (corrected)" if judged == "corrected" else ""
    for metric in _SIDE_BY_SIDE:
        values = [r.judged.value_ms(metric) for r in runs]
        base_value = base.judged.value_ms(metric) if base is not None else None
        rows.append([f"{metric}{label} ms", *(fmt_ms(v) for v in values),
                     *(change(base_value, r.judged.value_ms(metric)) for r in others)])
    for phase in ("server", "rest"):
        if all(phase in r.phases for r in runs):
            base_value = base.phases[phase].value_ms("p50") if base is not None else None
            rows.append([f"{phase} p50 ms", *(fmt_ms(r.phases[phase].value_ms("p50"))
                                              for r in runs),
                         *(change(base_value, r.phases[phase].value_ms("p50")) for r in others)])
    return header, rows


def blue_green_capacity_table(summary: BenchSummary) -> tuple[list[str], list[list[str]]]:
    """A blue/green capacity search: each deployment's capacity, knee and goodput."""
    header = ["deployment", "capacity req/s", "knee req/s", "goodput req/s", "steps",
              "stopped because"]
    section = summary.blue_green
    rows = []
    for run in section.runs if section is not None else []:
        cap = run.capacity
        if cap is None:
            continue
        rows.append([run.name,
                     _fmt_num(cap.max_rate_rps, 1) if cap.found else
                     f"≥ {_fmt_num(cap.at_least_rps, 1)}" if cap.at_least_rps is not None
                     else "not found",
                     _fmt_num(cap.knee_rps, 1), _fmt_num(cap.goodput_rps, 1),
                     str(len(cap.steps)), cap.stopped_because])
    return header, rows


def verdict_lines(summary: BenchSummary) -> list[str]:
    """One line per verdict (``green p99 +12.0 % ± 3.1 % (significant)``)."""
    section = summary.blue_green
    return [v.text for v in section.verdicts] if section is not None else []


def agreement_line(summary: BenchSummary) -> str | None:
    """``prediction agreement: 99.95 % of 2,000 rows (…)``, or None without a comparison."""
    section = summary.blue_green
    agreement = section.agreement if section is not None else None
    if agreement is None:
        return None
    others = ", ".join(d for d in section.deployments if d != agreement.baseline) \
        if section is not None else ""
    if agreement.rate is None:
        head = "prediction agreement: no body was answered by every deployment"
    else:
        head = (f"prediction agreement ({others} vs {agreement.baseline}): "
                f"{agreement.rate * 100:.2f} % of {agreement.compared_rows:,} rows "
                f"({agreement.agreeing_rows:,} agree) over {agreement.compared_requests:,} "
                "request bodies")
    tail = []
    if agreement.disagreeing_requests:
        tail.append(f"{agreement.disagreeing_requests:,} bodies differ")
    if agreement.not_compared:
        tail.append(f"{agreement.not_compared:,} not compared (a failure, or the run ended "
                    "before every deployment answered)")
    return head + (f"; {'; '.join(tail)}" if tail else "")


def transfer_rows(summary: BenchSummary) -> list[tuple[str, str]]:
    """ab's extras: bytes, transfer rates, document length, Server header."""
    t = summary.transfer
    if not t.bytes_sent and not t.bytes_received:
        return []
    length = "-" if t.document_length is None else f"{t.document_length:,} bytes"
    if t.document_length_changes:
        length += f" ({t.document_length_changes:,} responses of another length)"
    server = t.server or "-"
    if t.server_changes:
        server += f" ({t.server_changes:,} responses named another)"
    return [
        ("Server", server),
        ("Document length", length),
        ("Bytes sent", f"{t.bytes_sent:,}"),
        ("Bytes received", f"{t.bytes_received:,} (bodies {t.body_bytes_received:,})"),
        ("Transfer rate",
         f"{_fmt_num(t.received_kb_per_s, 2)} KB/s received, "
         f"{_fmt_num(t.sent_kb_per_s, 2)} KB/s sent"),
    ]


def judged_figure(metric: str, value: float | None) -> str:
    """An objective's measured figure as a step line shows it: ``87.1 ms``, ``0.5 %``."""
    if value is None:
        return "-"
    if metric == "error_rate":
        return f"{value * 100:.3g} %"
    if metric == "throughput":
        return f"{value:,.1f} req/s"
    return f"{value:,.1f} ms"


_STEP_FIELDS = {"p50": "p50_ms", "p90": "p90_ms", "p99": "p99_ms", "max": "max_ms"}


def _latency_order(metric: str) -> float:
    if metric == "min":
        return -1.0
    if metric == "mean":
        return -0.5
    if metric == "max":
        return 101.0
    return float(metric[1:])


def _step_latency(step: CapacityStep, metric: str) -> float | None:
    if metric in step.judged:
        return step.judged[metric]
    field = _STEP_FIELDS.get(metric)
    return getattr(step, field) if field is not None else None


def capacity_table(summary: BenchSummary) -> tuple[list[str], list[list[str]]]:
    """One row per step of a capacity search: its errors, the percentiles every objective is
    judged on (besides p50, p90, p99 and max) and its verdict."""
    capacity = summary.capacity
    steps = capacity.steps if capacity is not None else []
    judged = {m for step in steps for m in step.judged if m not in ("error_rate", "throughput")}
    latency = sorted(set(_STEP_FIELDS) | judged, key=_latency_order)
    throughput = any("throughput" in step.judged for step in steps)
    header = ["offered", "achieved", "reqs", "errors", *latency, "goodput", "SLO"]
    rows = []
    for step in steps:
        verdict = "met" if step.passed else "MISSED"
        if step.ended_early:
            verdict += " (ended early)"
        if not step.valid:
            verdict = "generator limit"
        rows.append([
            f"{step.rate_rps:,.1f}", _fmt_num(step.achieved_rps, 1), f"{step.requests:,}",
            "-" if step.error_rate is None else f"{step.error_rate * 100:.1f}%",
            *(_fmt_num(_step_latency(step, m), 1) for m in latency),
            _fmt_num(step.goodput_rps, 1), verdict,
        ])
    if throughput:
        header.insert(2, "judged rps")
        for row, step in zip(rows, steps, strict=True):
            row.insert(2, _fmt_num(step.judged.get("throughput"), 1))
    return header, rows


def capacity_answer(capacity: Capacity) -> str:
    """``180.0 req/s``, ``capacity ≥ 180.0 req/s (the load generator's limit: …)`` or why
    none was found."""
    if capacity.found and capacity.max_rate_rps is not None:
        return f"{capacity.max_rate_rps:,.1f} req/s"
    if capacity.at_least_rps is not None or "load generator" in capacity.stopped_because:
        shown = "?" if capacity.at_least_rps is None else f"{capacity.at_least_rps:,.1f}"
        return f"capacity ≥ {shown} req/s ({GENERATOR_LIMIT_HINT})"
    return f"not found: {capacity.stopped_because or 'even the lowest rate missed'}"


def capacity_rows(summary: BenchSummary) -> list[tuple[str, str]]:
    capacity = summary.capacity
    if capacity is None:
        return []
    at = next((s for s in capacity.steps if s.passed and s.rate_rps == capacity.max_rate_rps),
              None)
    rows = [("Capacity", capacity_answer(capacity))]
    if at is not None and at.judged:
        rows.append(("Judged at capacity", ", ".join(
            f"{metric} {judged_figure(metric, value)}" for metric, value in at.judged.items())))
    return [
        *rows,
        ("Knee", "-" if capacity.knee_rps is None else f"{capacity.knee_rps:,.1f} req/s"),
        ("Goodput at capacity",
         "-" if capacity.goodput_rps is None else f"{capacity.goodput_rps:,.1f} req/s"),
        ("Objectives", ", ".join(capacity.objectives)),
        ("Search", capacity.search),
        ("Stopped because", capacity.stopped_because),
    ]


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        out: list[tuple[str, str]] = []
        for key, value in data.items():
            out += _flatten(value, f"{prefix}{key}." if isinstance(value, dict) else
                            f"{prefix}{key}")
        return out
    text = json.dumps(data, ensure_ascii=False) if not isinstance(data, str) else data
    return [(prefix.rstrip("."), text)]


def _config_rows(summary: BenchSummary) -> list[tuple[str, str]]:
    return _flatten(summary.config.model_dump(mode="json", exclude_none=True))


def _environment_rows(summary: BenchSummary) -> list[tuple[str, str]]:
    return _flatten(summary.environment.model_dump(mode="json", exclude_none=True))


# -- Markdown ------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]], align_right: bool = True) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---", *(["---:" if align_right else "---"] * (len(header) - 1))])
             + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(summary: BenchSummary) -> str:
    """The report as Markdown: the same numbers as the HTML, without plots."""
    parts = [f"# Benchmark: {summary.endpoint} — {summary.started_at}", ""]
    if not summary.valid:
        parts += [f"**{validity_line(summary)}**", ""]
    parts += [_md_table(["", "value"], [list(r) for r in overview_rows(summary)], False), ""]
    if summary.capacity is not None:
        parts += ["## Capacity", "",
                  _md_table(["", "value"], [list(r) for r in capacity_rows(summary)], False), ""]
        header, rows = capacity_table(summary)
        parts += [_md_table(header, rows), ""]
        parts += ["The figures below are those of the step at capacity.", ""]
    parts += _markdown_blue_green(summary)
    parts += ["## Latency (ms)", ""]
    header, rows = latency_table(summary)
    parts += [_md_table(header, rows), ""]
    if summary.corrected is not None:
        parts += [
            "*corrected*: intended start -> reply (what a client on the schedule sees); "
            f"*{summary.latency.kind}*: actual send -> reply, which hides stalls "
            "(coordinated omission).",
            "",
        ]
    title, header, rows = ab_table(summary)
    parts += [f"## {title}", "", _md_table(header, rows), ""]
    if summary.phases:
        title, header, rows = phase_table(summary)
        parts += [f"## {title}", "", _md_table(header, rows), ""]
        parts += [f"- *{name}*: {block.description}" for name, block in summary.phases.items()]
        parts += [""]
    if summary.deployments:
        header, rows = deployment_table(summary)
        parts += ["## Deployments (azureml-model-deployment)", "", _md_table(header, rows), ""]
    transfer = transfer_rows(summary)
    if transfer:
        parts += ["## Transfer", "", _md_table(["", "value"], [list(r) for r in transfer],
                                                False), ""]
    parts += ["## Percentile definition", "", summary.percentile_definition, ""]
    if summary.warnings:
        parts += ["## Warnings", "", *(f"- {w}" for w in summary.warnings), ""]
    parts += ["## Configuration", "",
              _md_table(["", "value"], [list(r) for r in _config_rows(summary)], False), ""]
    parts += ["## Environment", "",
              _md_table(["", "value"], [list(r) for r in _environment_rows(summary)], False), ""]
    return "\n".join(parts)


def _markdown_blue_green(summary: BenchSummary) -> list[str]:
    section = summary.blue_green
    if section is None:
        return []
    parts = [f"## Deployments side by side (baseline {section.baseline})", ""]
    header, rows = blue_green_capacity_table(summary)
    if rows:
        parts += [_md_table(header, rows), ""]
        for run in section.runs:
            if run.capacity is not None and run.capacity.steps:
                parts += [f"### {run.name}: capacity steps", ""]
                step_header, step_rows = capacity_table(_with_capacity(summary, run.name))
                parts += [_md_table(step_header, step_rows), ""]
        parts += ["Latency below: each deployment's step at capacity.", ""]
    header, rows = blue_green_table(summary)
    parts += [_md_table(header, rows), ""]
    parts += [f"- {line}" for line in verdict_lines(summary)]
    agreement = agreement_line(summary)
    if agreement:
        parts += [f"- {agreement}"]
        parts += [f"  - {example}" for example in
                  (section.agreement.examples if section.agreement else [])]
    failures = [f"- {r.name} failures: {failures_text(r.failures)}" for r in section.runs
                if r.failures.total]
    parts += failures
    parts += ["", f"*Interleaving*: {section.interleaving}.", ""]
    if section.method:
        parts += [f"*Verdicts*: {section.method}.", ""]
    return parts


def _with_capacity(summary: BenchSummary, name: str) -> BenchSummary:
    """``summary`` carrying deployment ``name``'s capacity (to reuse the steps table)."""
    run = summary.blue_green.run(name) if summary.blue_green is not None else None
    return summary.model_copy(update={"capacity": run.capacity if run else None})


# -- HTML ----------------------------------------------------------------------------------------
def _html_table(header: list[str] | None, rows: list[list[str]] | list[tuple[str, str]],
                cls: str = "") -> str:
    out = [f'<table class="{cls}">']
    if header:
        out.append("<thead><tr>" + "".join(f"<th>{escape(h)}</th>" for h in header)
                   + "</tr></thead>")
    out.append("<tbody>")
    for row in rows:
        cells = list(row)
        out.append("<tr><th>" + escape(cells[0]) + "</th>"
                   + "".join(f"<td>{escape(c)}</td>" for c in cells[1:]) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


_COLOURS = {"latency": "#0072B2", "uncorrected": "#0072B2", "corrected": "#D55E00"}


def spectrum_svg(
    blocks: list[tuple[str, LatencyBlock]], chart_id: str = "spectrum",
    title: str = "Latency by percentile", *, mark_max: bool = True,
) -> str:
    """Latency by percentile on a log "nines" axis, one line per block, the max marked."""
    series = []
    most = 1
    for index, (kind, block) in enumerate(blocks):
        points = [(nines_x(p), ms) for p, ms in block.spectrum if p < 100.0]
        colour = _COLOURS.get(kind) or PALETTE[index % len(PALETTE)]
        series.append(Series(kind, points, colour=colour, markers=True, tooltip_unit=" ms"))
        most = max(most, block.samples or 1)
    max_nines = min(max(2, math.ceil(math.log10(most))), 7)
    judged = blocks[-1][1] if blocks else None
    refs = [RefLine(judged.max_ms, f"max {fmt_ms(judged.max_ms)} ms")] \
        if mark_max and judged is not None and judged.samples else []
    return line_chart(series, title=title, x_label="percentile",
                      y_label="latency (ms)", x_ticks=nines_ticks(max_nines),
                      x_range=(0.0, float(max_nines)), ref_lines=refs, chart_id=chart_id)


def latency_over_time_chart(summary: BenchSummary) -> str:
    rows = [r for r in summary.intervals if r.samples]
    measure = summary.intervals_measure
    series = [
        Series(f"{name} ({measure})", [(r.t_s, getattr(r, f"{name}_ms") or 0.0) for r in rows],
               colour=colour, step=False, markers=True, tooltip_unit=" ms")
        for name, colour in (("p50", "#009E73"), ("p99", "#E69F00"), ("max", "#D55E00"))
    ]
    return line_chart(series, title="Latency over time", x_label="time since start (s)",
                      y_label="latency (ms)", chart_id="latency-over-time")


def throughput_chart(summary: BenchSummary) -> str:
    rows = [r for r in summary.intervals if r.rps is not None]
    series = [
        Series("requests/s", [(r.t_s, r.rps or 0.0) for r in rows], colour="#0072B2",
               markers=True, tooltip_unit=" req/s"),
        Series("failures/s", [(r.t_s, r.failures / r.duration_s) for r in rows
                              if r.duration_s], colour="#D55E00", markers=True,
               tooltip_unit=" /s"),
    ]
    return line_chart(series, title="Throughput over time", x_label="time since start (s)",
                      y_label="requests per second", chart_id="throughput-over-time")


def phases_chart(summary: BenchSummary) -> str:
    """Mean time per phase (the total first), so the split of each request is visible."""
    bars = [("total", summary.latency.mean_ms)]
    bars += [(name, block.mean_ms * block.samples / max(summary.latency.samples, 1))
             for name, block in summary.phases.items()]
    return bar_chart(bars, title="Where the time goes: mean ms per request, by phase",
                     unit=" ms", chart_id="phases")


def capacity_charts(summary: BenchSummary) -> str:
    """Latency percentiles and achieved throughput against the offered rate."""
    capacity = summary.capacity
    if capacity is None:
        return ""
    steps = sorted(capacity.steps, key=lambda s: s.rate_rps)
    latency = [
        Series(name, [(s.rate_rps, v) for s in steps
                      if (v := getattr(s, f"{name}_ms")) is not None],
               colour=colour, markers=True, tooltip_unit=" ms")
        for name, colour in (("p50", "#009E73"), ("p90", "#56B4E9"), ("p99", "#E69F00"),
                             ("max", "#D55E00"))
    ]
    offered = [(s.rate_rps, s.rate_rps) for s in steps]
    throughput = [
        Series("offered", offered, colour="#999999", dashed=True),
        Series("achieved", [(s.rate_rps, s.achieved_rps) for s in steps
                            if s.achieved_rps is not None], colour="#0072B2", markers=True,
               tooltip_unit=" req/s"),
        Series("goodput", [(s.rate_rps, s.goodput_rps) for s in steps
                           if s.goodput_rps is not None], colour="#009E73", markers=True,
               tooltip_unit=" req/s"),
    ]
    refs = [RefLine(capacity.max_rate_rps, f"capacity {capacity.max_rate_rps:,.1f} req/s")] \
        if capacity.found and capacity.max_rate_rps is not None else []
    return (
        line_chart(latency, title="Latency against offered rate", x_label="offered req/s",
                   y_label="latency (ms)", chart_id="capacity-latency")
        + line_chart(throughput, title="Throughput against offered rate",
                     x_label="offered req/s", y_label="req/s", ref_lines=refs,
                     chart_id="capacity-throughput")
    )


def _html_blue_green(summary: BenchSummary) -> str:
    section = summary.blue_green
    if section is None:
        return ""
    out = [f"<h2>Deployments side by side (baseline {escape(section.baseline)})</h2>"]
    header, rows = blue_green_capacity_table(summary)
    if rows:
        out.append(_html_table(header, rows, "num"))
        for run in section.runs:
            if run.capacity is not None and run.capacity.steps:
                with_cap = _with_capacity(summary, run.name)
                step_header, step_rows = capacity_table(with_cap)
                out.append(f"<h3>{escape(run.name)}: capacity steps</h3>"
                           + _html_table(step_header, step_rows, "num"))
        out.append('<p class="note">Latency below: each deployment\'s step at capacity.</p>')
    header, rows = blue_green_table(summary)
    out.append(_html_table(header, rows, "num"))
    items = [*verdict_lines(summary)]
    agreement = agreement_line(summary)
    if agreement:
        items.append(agreement)
        items += [f"disagreement: {e}" for e in
                  (section.agreement.examples if section.agreement else [])]
    items += [f"{r.name} failures: {failures_text(r.failures)}" for r in section.runs
              if r.failures.total]
    if items:
        out.append("<ul>" + "".join(f"<li>{escape(i)}</li>" for i in items) + "</ul>")
    out.append(f'<p class="note"><b>Interleaving</b>: {escape(section.interleaving)}. '
               f"<b>Verdicts</b>: {escape(section.method)}.</p>")
    blocks = [(run.name, run.judged) for run in section.runs if run.judged.samples]
    if blocks:
        out.append(spectrum_svg(blocks, chart_id="deployments-spectrum",
                                title="Latency by percentile, per deployment", mark_max=False))
    series = [
        Series(f"{run.name} p99", [(r.t_s, r.p99_ms or 0.0) for r in run.intervals if r.samples],
               colour=PALETTE[i % len(PALETTE)], markers=True, tooltip_unit=" ms")
        for i, run in enumerate(section.runs)
    ]
    if any(s.points for s in series):
        out.append(line_chart(series, title="p99 over time, per deployment",
                              x_label="time since start (s)", y_label="latency (ms)",
                              chart_id="deployments-over-time"))
    return "".join(out)


def html(summary: BenchSummary) -> str:
    """A self-contained page (inline CSS and SVG, no network) with plots and every table."""
    header, rows = latency_table(summary)
    ab_title, ab_header, ab_rows = ab_table(summary)
    warnings = list(summary.warnings)
    warn_html = (
        '<div class="warnings"><h2>Warnings</h2><ul>'
        + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul></div>"
        if warnings else ""
    )
    if not summary.valid:
        warn_html = (f'<div class="invalid"><b>{escape(validity_line(summary))}</b></div>'
                     + warn_html)
    note = ""
    if summary.corrected is not None:
        note = (
            '<p class="note"><b>corrected</b>: intended start &rarr; reply, what a client on the '
            f"schedule sees. <b>{escape(summary.latency.kind)}</b>: actual send "
            "&rarr; reply, which hides endpoint stalls (coordinated omission).</p>"
        )
    sections = []
    if summary.capacity is not None:
        cap_header, cap_rows = capacity_table(summary)
        sections.append(
            "<h2>Capacity</h2>" + _html_table(None, capacity_rows(summary), "kv")
            + _html_table(cap_header, cap_rows, "num") + capacity_charts(summary)
            + '<p class="note">The figures below are those of the step at capacity.</p>'
        )
    sections.append(_html_blue_green(summary))
    extra = []
    if summary.phases:
        title, ph_header, ph_rows = phase_table(summary)
        extra.append(f"<h2>{escape(title)}</h2>" + _html_table(ph_header, ph_rows, "num")
                     + "<ul class=\"note\">" + "".join(
                         f"<li><b>{escape(n)}</b>: {escape(b.description)}</li>"
                         for n, b in summary.phases.items()) + "</ul>" + phases_chart(summary))
    if summary.deployments:
        dep_header, dep_rows = deployment_table(summary)
        extra.append("<h2>Deployments (azureml-model-deployment)</h2>"
                     + _html_table(dep_header, dep_rows, "num"))
    transfer = transfer_rows(summary)
    if transfer:
        extra.append("<h2>Transfer</h2>" + _html_table(None, transfer, "kv"))
    template = Template(_TEMPLATE.read_text(encoding="utf-8"))
    return template.substitute(
        title=escape(f"amlc benchmark: {summary.endpoint} {summary.started_at}"),
        heading=escape(f"Benchmark of {summary.endpoint}"),
        subtitle=escape(f"{describe_load(summary)} — started {summary.started_at}"),
        overview=_html_table(None, overview_rows(summary), "kv"),
        warnings=warn_html,
        capacity="".join(sections),
        latency=_html_table(header, rows, "num") + note,
        ab_title=escape(ab_title),
        ab=_html_table(ab_header, ab_rows, "num"),
        phases="".join(extra),
        spectrum=spectrum_svg(_kinds(summary)),
        over_time=latency_over_time_chart(summary),
        throughput=throughput_chart(summary),
        definition=escape(summary.percentile_definition),
        config=_html_table(None, _config_rows(summary), "kv"),
        environment=_html_table(None, _environment_rows(summary), "kv"),
    )


def hdr_warnings(block: LatencyBlock) -> list[str]:
    """Sample-size warnings for one live block (the web UI's HDR tab)."""
    return sample_warnings(block.samples)
