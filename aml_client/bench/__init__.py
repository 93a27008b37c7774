"""Latency benchmarks of scoring endpoints: Locust drives the load, HdrHistogram records it.

Layout: three parts, split where the process boundary runs (``lint-imports`` checks it).

* ``aml_client.bench.load`` — the load process (``python -m aml_client.bench.load.runner``):
  everything that runs inside Locust; the only code that imports Locust or gevent, and nothing
  outside it imports it;
* ``aml_client.bench.report`` — what turns recordings into summaries, report directories,
  HdrHistogram files, Markdown/HTML, comparisons, JUnit XML and objectives; never imports the
  load process;
* this package's own modules, the parent side (``amlc bench``) and what both processes share:

  * ``plan`` — the load model and bounds, and each load process's share of them;
  * ``target`` — endpoint, auth header and request bodies, built and validated up front;
  * ``launch`` / ``auth`` — checks the web port, starts and follows the load process, feeds it
    credentials (never imports Locust);
  * ``machine`` / ``fleet`` / ``metrics`` / ``metrics_export`` — machine facts, a master's view
    of its workers, the live metrics and their Prometheus/OTLP exporters;
  * ``hdr`` / ``result`` / ``recording`` / ``checks`` / ``bluegreen`` — histograms, a run's
    result, per-process measurements and their exact merge, response checks, blue/green slots
    and agreement;
  * ``export`` — bundles for Azure Load Testing and the Kubernetes Locust operator.

Importing this package is cheap and never imports Locust or gevent: names are loaded on first
use.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aml_client.bench.hdr import LatencyRecorder
    from aml_client.bench.launch import LoadProcess
    from aml_client.bench.plan import BenchPlan
    from aml_client.bench.recording import Recording
    from aml_client.bench.report.directory import load_summary, write_report
    from aml_client.bench.report.summarize import summarize
    from aml_client.bench.report.summary import BenchSummary
    from aml_client.bench.result import BenchResult, Interval
    from aml_client.bench.target import RunTarget, build_run_target

_LAZY = {
    "BenchPlan": "aml_client.bench.plan",
    "BenchResult": "aml_client.bench.result",
    "BenchSummary": "aml_client.bench.report.summary",
    "Interval": "aml_client.bench.result",
    "LatencyRecorder": "aml_client.bench.hdr",
    "LoadProcess": "aml_client.bench.launch",
    "Recording": "aml_client.bench.recording",
    "RunTarget": "aml_client.bench.target",
    "build_run_target": "aml_client.bench.target",
    "load_summary": "aml_client.bench.report.directory",
    "summarize": "aml_client.bench.report.summarize",
    "write_report": "aml_client.bench.report.directory",
}

__all__ = [
    "BenchPlan",
    "BenchResult",
    "BenchSummary",
    "Interval",
    "LatencyRecorder",
    "LoadProcess",
    "Recording",
    "RunTarget",
    "build_run_target",
    "load_summary",
    "summarize",
    "write_report",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'aml_client.bench' has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
