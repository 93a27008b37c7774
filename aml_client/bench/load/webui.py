"""Full-precision latency in Locust's web UI: an "HDR latency" tab and an ``/hdr`` page.

Locust's own tables show percentiles of rounded response times. This adds, on the same Flask
app:

* a tab in the main UI (Locust's ``extended_tabs`` / ``extended_tables`` template arguments,
  filled from an ``extended_stats`` entry appended to ``/stats/requests``);
* ``/hdr`` — a standalone page with the whole table (it refreshes itself);
* ``/hdr/json`` — the same numbers as JSON, plus the report directories written so far.

Stopping a test in the UI fires Locust's ``test_stop``, on which the engine writes the same
report files as a headless run.

The start form's "Host" field cannot re-aim a run: the requests, their credential and the
report belong to the endpoint the run was started for (:func:`keep_target` refuses another
host with a message, instead of Locust's "Swarming started" for a host nobody then uses).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, jsonify, request

from aml_client.bench.report.render import spectrum_svg
from aml_client.bench.report.summary import (
    AB_PERCENTS,
    PERCENTILES,
    BenchSummary,
    LatencyBlock,
    sample_warnings,
)

if TYPE_CHECKING:
    from locust.env import Environment

    from aml_client.bench.load.engine import Engine

__all__ = ["add_hdr_tab", "hdr_rows", "hdr_snapshot", "keep_target", "same_host"]

#: A Flask view of the HDR tab.
_View = Callable[[], Response]

TAB_KEY = "hdr"
TAB_TITLE = "HDR latency"


_STATS = ("samples", "min", "mean", "stdev", *(f"p{p:g}" for p in PERCENTILES), "max")


def _column(block: LatencyBlock) -> dict[str, str]:
    if not block.samples:
        return {}
    column = {"samples": f"{block.samples}"}
    for stat in _STATS[1:]:
        value = block.value_ms(stat)
        column[stat] = "-" if value is None else f"{value:.3f}"
    for p, value in block.served_within_ms.items():
        column[f"{p}%"] = f"{value:.3f}"
    return column


def _blocks(summary: BenchSummary) -> list[tuple[str, LatencyBlock]]:
    blocks = [(summary.latency.kind, summary.latency)]
    if summary.corrected is not None:
        blocks.append(("corrected", summary.corrected))
    return blocks


def hdr_snapshot(engine: Engine) -> dict[str, Any]:
    """The engine's current (merged) latency as strings of milliseconds, per measure, with the
    sample-size warnings of the judged one."""
    summary = engine.snapshot()
    return {
        "requests": summary.requests,
        "failures": dict(summary.failures.by_kind),
        "running": engine.running,
        "measures": {name: _column(block) for name, block in _blocks(summary)},
        "warnings": sample_warnings(summary.judged.samples) if summary.judged.samples else [],
        "valid": summary.validity.valid,
        "invalid_reasons": summary.validity.reasons,
        "reports": [d for d, _ in engine.results if d],
        "unit": "ms",
    }


def hdr_rows(engine: Engine) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """(table structure, rows) for Locust's extended table: one row per statistic, then the
    failures and the sample-size warnings (each statistic once)."""
    snap = hdr_snapshot(engine)
    measures = snap["measures"]
    structure = [{"key": "stat", "title": "Statistic (ms)"}]
    structure += [{"key": name, "title": name} for name in measures]
    rows = [
        {"stat": stat, **{name: col.get(stat, "-") for name, col in measures.items()}}
        for stat in _STATS
    ]
    first = next(iter(measures), "latency")
    failures = ", ".join(f"{k}: {v}" for k, v in sorted(snap["failures"].items())) or "none"
    rows.append({"stat": "failures", first: failures})
    for warning in snap["warnings"]:
        rows.append({"stat": "warning", first: warning})
    return structure, rows


_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>HDR latency - amlc</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; }}
table {{ border-collapse: collapse; }}
td, th {{ padding: .25rem .75rem; border-bottom: 1px solid #ddd; }}
td {{ text-align: right; font-variant-numeric: tabular-nums; }}
td:first-child {{ text-align: left; }}
svg.chart {{ max-width: 100%; height: auto; display: block; margin: 1rem 0; }}
svg.chart text {{ font-size: 12px; fill: #333; }}
svg.chart .grid {{ stroke: #e5e5e5; }} svg.chart .frame {{ fill: none; stroke: #999; }}
#warnings {{ color: #8a6d00; }}
</style></head><body>
<h1>HDR latency</h1>
<p>Every request's latency in an HdrHistogram (microsecond resolution, 3 significant digits);
percentiles by nearest rank, max exact. <a href="./">Back to Locust</a> ·
<a href="./hdr/json">JSON</a></p>
<p id="status">{status}</p>
<div id="table">{table}</div>
<script>
async function refresh() {{
  try {{
    const r = await fetch("./hdr/fragment");
    if (r.ok) {{ document.getElementById("table").innerHTML = await r.text(); }}
  }} catch (e) {{}}
}}
setInterval(refresh, 2000);
</script>
</body></html>
"""


def _table_html(engine: Engine) -> str:
    """The live table, the nines chart and the sample-size warnings (one summary, one read)."""
    summary = engine.snapshot()
    blocks = _blocks(summary)
    measures = {name: _column(block) for name, block in blocks}
    if not any(measures.values()):
        return '<p id="empty">No request recorded yet.</p>'
    names = list(measures)
    stats = [*_STATS, *(f"{p}%" for p in AB_PERCENTS)]
    head = "".join(f"<th>{escape(n)}</th>" for n in names)
    body = "".join(
        f'<tr data-stat="{escape(s)}"><td>{escape(s)}</td>'
        + "".join(f"<td>{escape(measures[n].get(s, '-'))}</td>" for n in names)
        + "</tr>"
        for s in stats
    )
    failures = ", ".join(f"{k}: {v}" for k, v in summary.failures.by_kind.items()) or "none"
    warnings = sample_warnings(summary.judged.samples)
    warn_html = (
        '<ul id="warnings">' + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"
        if warnings else ""
    )
    invalid = (
        f'<p id="invalid"><b>INVALID: {escape("; ".join(summary.validity.reasons))}</b></p>'
        if summary.validity.valid is False else ""
    )
    reports = "".join(f"<li>{escape(d)}</li>" for d, _ in engine.results if d)
    return (
        f'<p>Requests: <b id="requests">{summary.requests}</b> · failures: '
        f"{escape(failures)}</p>{invalid}"
        f'<table id="hdr-table"><tr><th>ms</th>{head}</tr>{body}</table>'
        f"{warn_html}{spectrum_svg(blocks, chart_id='hdr-spectrum')}"
        + (f'<h2>Reports written</h2><ul id="reports">{reports}</ul>' if reports else "")
    )


def _chart_html(engine: Engine) -> str:
    """The nines chart and the sample-size warnings (the HDR tab shows them under its table)."""
    summary = engine.snapshot()
    if not summary.requests:
        return ""
    warnings = sample_warnings(summary.judged.samples)
    warn_html = (
        '<ul id="amlc-hdr-warnings" style="color:#b58900">'
        + "".join(f"<li>{escape(w)}</li>" for w in warnings) + "</ul>"
        if warnings else ""
    )
    return warn_html + spectrum_svg(_blocks(summary), chart_id="hdr-tab-spectrum")


#: Refreshes the chart under the HDR tab's table while that tab is shown (same origin; the
#: page's own query string, which may carry an access token, is passed on).
_TAB_SCRIPT = f"""<script>
(function () {{
  async function refresh() {{
    if (new URLSearchParams(location.search).get("tab") !== "{TAB_KEY}") return;
    const heads = Array.from(document.querySelectorAll("th"));
    const head = heads.find((th) => th.textContent.trim() === "Statistic (ms)");
    const table = head && head.closest("table");
    if (!table) return;
    let box = document.getElementById("amlc-hdr-chart");
    if (!box) {{
      box = document.createElement("div");
      box.id = "amlc-hdr-chart";
      (table.parentElement || table).after(box);
    }}
    try {{
      const r = await fetch("./hdr/chart" + location.search, {{credentials: "same-origin"}});
      if (r.ok) box.innerHTML = await r.text();
    }} catch (e) {{}}
  }}
  setInterval(refresh, 2000);
}})();
</script>"""


def add_hdr_tab(environment: Environment, engine: Engine) -> None:
    """Register the HDR tab, ``/hdr``, ``/hdr/fragment`` and ``/hdr/json`` on the web UI."""
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        raise RuntimeError("create the web UI before adding the HDR tab")
    structure, _ = hdr_rows(engine)
    web_ui.template_args["extended_tabs"] = [{"title": TAB_TITLE, "key": TAB_KEY}]
    web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": structure}]
    web_ui.template_args["extended_csv_files"] = [
        {"href": "./hdr/json", "title": "Download HDR latency (JSON)"}
    ]

    blueprint = Blueprint("amlc_hdr", __name__)
    # Locust leaves this decorator unannotated; it returns the view it wraps.
    login: Callable[[_View], _View] = web_ui.auth_required_if_enabled

    @blueprint.route("/hdr")
    @login
    def hdr_page() -> Response:
        status = "running" if engine.running else "idle"
        return Response(
            _PAGE.format(status=status, table=_table_html(engine)), mimetype="text/html"
        )

    @blueprint.route("/hdr/fragment")
    @login
    def hdr_fragment() -> Response:
        return Response(_table_html(engine), mimetype="text/html")

    @blueprint.route("/hdr/chart")
    @login
    def hdr_chart() -> Response:
        return Response(_chart_html(engine), mimetype="text/html")

    @blueprint.route("/hdr/json")
    @login
    def hdr_json() -> Response:
        return jsonify(hdr_snapshot(engine))

    web_ui.app.register_blueprint(blueprint)

    @web_ui.app.after_request
    def extend_stats(response: Response) -> Response:
        if request.path == "/" and response.status_code == 200 \
                and response.mimetype == "text/html" and not response.direct_passthrough:
            # Locust's tabs only render tables: a small script adds the nines chart and the
            # sample-size warnings under the HDR tab's table.
            page = response.get_data(as_text=True)
            if "</body>" in page:
                response.set_data(page.replace("</body>", _TAB_SCRIPT + "</body>", 1))
            return response
        # Locust's UI polls /stats/requests; its extended tables read "extended_stats" from it.
        if request.path != "/stats/requests" or response.status_code != 200:
            return response
        data = response.get_json(silent=True)
        if isinstance(data, dict):
            struct, rows = hdr_rows(engine)
            web_ui.template_args["extended_tables"] = [{"key": TAB_KEY, "structure": struct}]
            data["extended_stats"] = [{"key": TAB_KEY, "data": rows}]
            response.set_data(json.dumps(data))
        return response


def same_host(given: str, base_url: str) -> bool:
    """Whether the form's host names the run's own origin (scheme, host and port; an empty
    field or a trailing path such as ``/score`` changes nothing)."""
    text = given.strip()
    if not text:
        return True
    try:
        form, own = urlsplit(text), urlsplit(base_url)
        form_port, own_port = form.port, own.port
    except ValueError:
        return False
    defaults = {"http": 80, "https": 443}
    return (
        form.scheme.lower() == own.scheme.lower()
        and (form.hostname or "") == (own.hostname or "")
        and (form_port or defaults.get(form.scheme.lower()))
        == (own_port or defaults.get(own.scheme.lower()))
    )


def keep_target(environment: Environment, base_url: str) -> None:
    """Refuse a start form (``POST /swarm``) that names another host than ``base_url``.

    Locust would store the new host, answer "Swarming started" and go on sending to the
    run's endpoint (amlc's users are bound to it and its credential). Re-aiming a run
    would send a key to a new origin; starting another ``amlc bench`` is the way to
    measure another endpoint. The answer has Locust's own shape, so its UI shows the
    message.
    """
    web_ui = environment.web_ui
    if web_ui is None or web_ui.app is None:
        raise RuntimeError("create the web UI before guarding its target")

    @web_ui.app.before_request
    def refuse_new_host() -> Response | None:
        if request.method != "POST" or request.path != "/swarm":
            return None
        given = request.form.get("host", "")
        if same_host(given, base_url):
            return None
        answer = jsonify(
            {
                "success": False,
                "message": f"This run measures {base_url} and cannot be re-aimed at "
                f"{given.strip()[:200]!r}: nothing was started. Run amlc bench for that "
                "endpoint instead.",
                "host": base_url,
            }
        )
        answer.status_code = 400
        return answer
