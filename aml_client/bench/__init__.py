"""Latency benchmarks of scoring endpoints: Locust drives the load, HdrHistogram records it.

Layout (one concern per module):

* ``plan`` — the load model and bounds, and each load process's share of them;
* ``target`` — endpoint, auth header and request bodies, built and validated up front;
* ``launch`` — checks the web port, starts and follows the load process (never imports
  Locust);
* ``runner`` — the load process itself (``python -m aml_client.bench.runner``; imports Locust
  first); ``engine`` / ``exchange`` / ``user`` / ``hooks`` / ``webui`` / ``webguard`` /
  ``results_hook`` run inside it, and nothing outside it imports them (``lint-imports``
  checks);
* ``webguard`` — who may drive Locust's web UI (Host, Origin and Sec-Fetch-Site checks, and
  ``amlc bench --web``'s per-run secret);
* ``recording`` — per-process measurements and their exact merging across processes;
* ``exchange`` / ``checks`` — one request on the wire (phases timed) and its response checks;
* ``capacity`` — the capacity search (``--find-capacity``);
* ``bluegreen`` — ``--deployments``: which deployment and body each slot goes to, and the
  agreement of their predictions;
* ``hdr`` / ``result`` / ``summary`` — histograms, the run's result, its versioned summary;
* ``report`` / ``files`` / ``render`` / ``compare`` / ``junit`` / ``slo`` — report directories,
  HdrHistogram files, Markdown/HTML, comparisons with confidence intervals, JUnit XML,
  objectives;
* ``results_dir`` / ``merge`` / ``results_hook`` — each load process's results as files (or
  log lines), their exact merge (``amlc report merge``), and the load-process side that
  writes them;
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
    from aml_client.bench.report import load_summary, write_report
    from aml_client.bench.result import BenchResult, Interval
    from aml_client.bench.summarize import summarize
    from aml_client.bench.summary import BenchSummary
    from aml_client.bench.target import RunTarget, build_run_target

_LAZY = {
    "BenchPlan": "aml_client.bench.plan",
    "BenchResult": "aml_client.bench.result",
    "BenchSummary": "aml_client.bench.summary",
    "Interval": "aml_client.bench.result",
    "LatencyRecorder": "aml_client.bench.hdr",
    "LoadProcess": "aml_client.bench.launch",
    "Recording": "aml_client.bench.recording",
    "RunTarget": "aml_client.bench.target",
    "build_run_target": "aml_client.bench.target",
    "load_summary": "aml_client.bench.report",
    "summarize": "aml_client.bench.summarize",
    "write_report": "aml_client.bench.report",
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
