"""Turn a run summary into tables, Markdown and a self-contained HTML page.

Works from the summary dict alone (``summary.json``), so a stored run renders the same way it did
when it was written. The table builders return plain rows of strings that the Markdown, the HTML
and the CLI's rich tables all share, so the three never disagree.
"""

from __future__ import annotations

import json
import math
from html import escape
from pathlib import Path
from string import Template
from typing import Any

from aml_client.bench.svgchart import RefLine, Series, line_chart, nines_ticks, nines_x

__all__ = [
    "ab_table",
    "describe_load",
    "fmt_ms",
    "html",
    "latency_table",
    "markdown",
    "overview_rows",
]

_TEMPLATE = Path(__file__).with_name("templates") / "report.html"
_AB_TITLE = "Percentage of the requests served within a certain time (ms)"
_LATENCY_ROWS = ("min", "mean", "stdev", "p50", "p75", "p90", "p95", "p99", "p99.9", "p99.99",
                 "max")


def fmt_ms(value: Any) -> str:
    """Milliseconds with microsecond precision (``12.345``); ``-`` when missing."""
    if value is None:
        return "-"
    return f"{value:,.3f}"


def _fmt_num(value: Any, digits: int = 1) -> str:
    if value is None:
        return "-"
    if isinstance(value, int):
        return f"{value:,}"
    return f"{value:,.{digits}f}"


def describe_load(summary: dict[str, Any], *, short: bool = False) -> str:
    """``closed model, 20 users`` / ``open model, 100 req/s poisson arrivals`` (+ workers)."""
    config = summary.get("config") or {}
    if short:
        if summary.get("mode") == "open":
            return f"open {config.get('rate', '?')}/s"
        return f"closed {config.get('users', '?')}u"
    if summary.get("mode") == "open":
        text = "open model"
        if config.get("rate") is not None:
            text += f", {config['rate']:g} req/s" if isinstance(config["rate"], int | float) \
                else f", {config['rate']} req/s"
        if config.get("arrival"):
            text += f" {config['arrival']} arrivals"
    else:
        text = "closed model"
        if config.get("users") is not None:
            text += f", {config['users']} users"
    if config.get("workers"):
        text += f", {config['workers']} worker processes"
    return text


def _kinds(summary: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    blocks = [(summary["latency"].get("kind", "latency"), summary["latency"])]
    if summary.get("corrected"):
        blocks.append(("corrected", summary["corrected"]))
    return blocks


def overview_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, value) pairs describing the run as a whole."""
    failures = summary.get("failures") or {}
    by_kind = failures.get("by_kind") or {}
    kinds = ", ".join(f"{k} {v:,}" for k, v in by_kind.items())
    error_rate = summary.get("error_rate")
    rows = [
        ("Endpoint", str(summary.get("endpoint", "-"))),
        ("Load", describe_load(summary)),
        ("Started (UTC)", str(summary.get("started_at", "-"))),
        ("Measured for", f"{_fmt_num(summary.get('duration_s'), 3)} s"),
        ("Requests", _fmt_num(summary.get("requests"))),
        ("Failures", f"{_fmt_num(failures.get('total', 0))}" + (f" ({kinds})" if kinds else "")),
        ("Error rate", "-" if error_rate is None else f"{error_rate * 100:.3f} %"),
        ("Throughput", f"{_fmt_num(summary.get('throughput_rps'), 2)} req/s"),
    ]
    for kind, block in _kinds(summary):
        rows.append((f"Samples ({kind})", _fmt_num(block.get("samples"))))
    if summary.get("corrected"):
        rows.append(("Judged on", "corrected latency (intended start -> reply)"))
    return rows


def latency_table(summary: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    """Header and rows: min, mean, stdev, p50 .. p99.99, max for each latency kind (ms)."""
    blocks = _kinds(summary)
    header = ["ms", *(kind for kind, _ in blocks)]
    rows = [[name, *(fmt_ms(block.get(f"{name}_ms")) for _, block in blocks)]
            for name in _LATENCY_ROWS]
    return header, rows


def ab_table(summary: dict[str, Any]) -> tuple[str, list[str], list[list[str]]]:
    """``ab``'s "served within" table: title, header and rows (100 % is the longest request)."""
    blocks = _kinds(summary)
    header = ["%", *(kind for kind, _ in blocks)]
    percents = list((blocks[0][1].get("served_within_ms") or {}).keys())
    rows = []
    for p in percents:
        cells = [fmt_ms((block.get("served_within_ms") or {}).get(p)) for _, block in blocks]
        label = f"{p}%" + (" (longest request)" if p == "100" else "")
        rows.append([label, *cells])
    return _AB_TITLE, header, rows


def _flatten(data: Any, prefix: str = "") -> list[tuple[str, str]]:
    if isinstance(data, dict):
        out: list[tuple[str, str]] = []
        for key, value in data.items():
            out += _flatten(value, f"{prefix}{key}." if isinstance(value, dict) else
                            f"{prefix}{key}")
        return out
    text = json.dumps(data, ensure_ascii=False) if not isinstance(data, str) else data
    return [(prefix.rstrip("."), text)]


def _locust_rows(summary: dict[str, Any]) -> list[tuple[str, str]]:
    locust = dict(summary.get("locust") or {})
    locust.pop("approximate", None)
    locust.pop("note", None)
    return _flatten(locust)


# -- Markdown ------------------------------------------------------------------------------------
def _md_table(header: list[str], rows: list[list[str]], align_right: bool = True) -> str:
    lines = ["| " + " | ".join(header) + " |",
             "|" + "|".join(["---", *(["---:" if align_right else "---"] * (len(header) - 1))])
             + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def markdown(summary: dict[str, Any]) -> str:
    """The report as Markdown: the same numbers as the HTML, without plots."""
    parts = [f"# Benchmark: {summary.get('endpoint', '-')} — {summary.get('started_at', '')}", ""]
    parts += [_md_table(["", "value"], [list(r) for r in overview_rows(summary)], False), ""]
    parts += ["## Latency (ms)", ""]
    header, rows = latency_table(summary)
    parts += [_md_table(header, rows), ""]
    if summary.get("corrected"):
        parts += [
            "*corrected*: intended start -> reply (what a client on the schedule sees); "
            f"*{summary['latency'].get('kind')}*: actual send -> reply, which hides stalls "
            "(coordinated omission).",
            "",
        ]
    title, header, rows = ab_table(summary)
    parts += [f"## {title}", "", _md_table(header, rows), ""]
    parts += ["## Percentile definition", "", str(summary.get("percentile_definition", "")), ""]
    if summary.get("warnings"):
        parts += ["## Warnings", "", *(f"- {w}" for w in summary["warnings"]), ""]
    locust = _locust_rows(summary)
    if locust:
        parts += ["## Locust's own statistics (approximate)", "",
                  str((summary.get("locust") or {}).get("note", "")), "",
                  _md_table(["", "value"], [list(r) for r in locust], False), ""]
    parts += ["## Configuration", "",
              _md_table(["", "value"], [list(r) for r in _flatten(summary.get("config"))], False),
              ""]
    parts += ["## Environment", "",
              _md_table(["", "value"], [list(r) for r in _flatten(summary.get("environment"))],
                        False), ""]
    return "\n".join(parts)


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


def spectrum_chart(summary: dict[str, Any]) -> str:
    """Latency by percentile on a log "nines" axis, one line per latency kind."""
    series = []
    most = 1
    for kind, block in _kinds(summary):
        points = [(nines_x(p), ms) for p, ms in block.get("spectrum") or [] if p < 100.0]
        series.append(Series(kind, points, colour=_COLOURS.get(kind), markers=True,
                             tooltip_unit=" ms"))
        most = max(most, block.get("samples") or 1)
    max_nines = min(max(2, math.ceil(math.log10(most))), 7)
    judged = summary["corrected"] if summary.get("corrected") else summary["latency"]
    refs = [RefLine(judged["max_ms"], f"max {fmt_ms(judged['max_ms'])} ms")] \
        if judged.get("samples") else []
    return line_chart(series, title="Latency by percentile", x_label="percentile",
                      y_label="latency (ms)", x_ticks=nines_ticks(max_nines),
                      x_range=(0.0, float(max_nines)), ref_lines=refs, chart_id="spectrum")


def latency_over_time_chart(summary: dict[str, Any]) -> str:
    rows = [r for r in summary.get("intervals") or [] if r.get("samples")]
    measure = summary.get("intervals_measure", "latency")
    series = [
        Series(f"{name} ({measure})", [(r["t_s"], r[f"{name}_ms"]) for r in rows], colour=colour,
               step=False, markers=True, tooltip_unit=" ms")
        for name, colour in (("p50", "#009E73"), ("p99", "#E69F00"), ("max", "#D55E00"))
    ]
    return line_chart(series, title="Latency over time", x_label="time since start (s)",
                      y_label="latency (ms)", chart_id="latency-over-time")


def throughput_chart(summary: dict[str, Any]) -> str:
    rows = [r for r in summary.get("intervals") or [] if r.get("rps") is not None]
    series = [
        Series("requests/s", [(r["t_s"], r["rps"]) for r in rows], colour="#0072B2",
               markers=True, tooltip_unit=" req/s"),
        Series("failures/s", [(r["t_s"], r["failures"] / r["duration_s"]) for r in rows
                              if r["duration_s"]], colour="#D55E00", markers=True,
               tooltip_unit=" /s"),
    ]
    return line_chart(series, title="Throughput over time", x_label="time since start (s)",
                      y_label="requests per second", chart_id="throughput-over-time")


def html(summary: dict[str, Any]) -> str:
    """A self-contained page (inline CSS and SVG, no network) with plots and every table."""
    header, rows = latency_table(summary)
    ab_title, ab_header, ab_rows = ab_table(summary)
    warnings = summary.get("warnings") or []
    warn_html = (
        '<div class="warnings"><h2>Warnings</h2><ul>'
        + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul></div>"
        if warnings else ""
    )
    note = ""
    if summary.get("corrected"):
        note = (
            '<p class="note"><b>corrected</b>: intended start &rarr; reply, what a client on the '
            f"schedule sees. <b>{escape(str(summary['latency'].get('kind')))}</b>: actual send "
            "&rarr; reply, which hides endpoint stalls (coordinated omission).</p>"
        )
    locust = _locust_rows(summary)
    locust_html = (
        "<h2>Locust's own statistics (approximate)</h2>"
        f"<p class=\"note\">{escape(str((summary.get('locust') or {}).get('note', '')))}</p>"
        + _html_table(None, locust, "kv")
        if locust else ""
    )
    template = Template(_TEMPLATE.read_text(encoding="utf-8"))
    return template.substitute(
        title=escape(f"amlc benchmark: {summary.get('endpoint', '')} {summary.get('started_at')}"),
        heading=escape(f"Benchmark of {summary.get('endpoint', '-')}"),
        subtitle=escape(f"{describe_load(summary)} — started {summary.get('started_at')}"),
        overview=_html_table(None, overview_rows(summary), "kv"),
        warnings=warn_html,
        latency=_html_table(header, rows, "num") + note,
        ab_title=escape(ab_title),
        ab=_html_table(ab_header, ab_rows, "num"),
        spectrum=spectrum_chart(summary),
        over_time=latency_over_time_chart(summary),
        throughput=throughput_chart(summary),
        definition=escape(str(summary.get("percentile_definition", ""))),
        locust=locust_html,
        config=_html_table(None, _flatten(summary.get("config")), "kv"),
        environment=_html_table(None, _flatten(summary.get("environment")), "kv"),
    )
