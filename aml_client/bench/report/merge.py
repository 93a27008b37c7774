"""Merge results directories from any number of load processes into one run, exactly.

Histograms are added bucket by bucket (never re-sampled, never averaged), counts and exact sums
are added, extremes are compared: the merged counts, max and percentiles equal those of one
histogram fed every request of every engine. The merged report says which engines it holds and
whether their measurement windows overlapped (engines that ran one after the other measured two
different loads, not one bigger load).

Nothing here imports Locust: ``amlc report merge`` runs it in the parent process.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aml_client.bench.recording import Recording
from aml_client.bench.report.results_dir import ResultsDir, read_log, read_results
from aml_client.bench.report.summary import BenchSummary
from aml_client.bench.result import BenchResult, LoadFacts
from aml_client.errors import InputError

__all__ = ["Merged", "load_sources", "merge_results", "result_of", "write_merged_report"]


def result_of(
    recording: Recording, config: dict[str, Any], started_at: float, ended_at: float,
    environment: dict[str, Any] | None = None, *, max_senders: int | None = None,
    keep_agreement: bool | None = None,
) -> BenchResult:
    """The :class:`BenchResult` of a recording, in the load engine or merged afterwards.

    ``max_senders`` defaults to the config's; ``keep_agreement`` (the prediction agreement of
    a blue/green run) defaults to keeping it when anything was compared.
    """
    rec = recording
    rec.align_deployment_series()
    if max_senders is None:
        max_senders = config.get("max_senders")
    keep = not rec.agreement.empty if keep_agreement is None else keep_agreement
    return BenchResult(
        config=dict(config),
        started_at=started_at,
        ended_at=ended_at,
        latency=rec.latency,
        corrected=rec.corrected,
        requests=rec.requests,
        failures=dict(rec.failures),
        intervals=rec.series.intervals(started_at, ended_at),
        environment=dict(environment or {}),
        phases=dict(rec.phases),
        slip=rec.slip if rec.open_model else None,
        deployments=dict(rec.deployments),
        transfer=rec.transfer,
        load=LoadFacts(
            late_sends=rec.late,
            cpu_peak=rec.cpu_peak,
            cpu_mean=rec.cpu_busy_s / rec.cpu_wall_s if rec.cpu_wall_s else 0.0,
            cpu_saturated_s=rec.cpu_saturated_s,
            cpu_samples=round(rec.cpu_wall_s),
            peak_in_flight=rec.peak_in_flight,
            max_senders=max_senders if rec.open_model else None,
        ),
        good=rec.good if rec.good_within_us is not None else None,
        failure_reasons={k: dict(v) for k, v in rec.failure_reasons.items()},
        by_deployment={
            name: result_of(
                sub, {"deployment": name}, started_at, ended_at, environment,
                max_senders=max_senders, keep_agreement=keep_agreement,
            )
            for name, sub in rec.by_deployment.items()
        },
        agreement=rec.agreement if keep else None,
    )


@dataclass
class Merged:
    """The union of several engines' results."""

    result: BenchResult
    engines: list[dict[str, Any]]
    #: every engine's window overlaps every other's (they measured one load together)
    overlap: bool
    #: the span all engines were running at once (seconds; 0 when they never were)
    common_s: float

    def describe(self) -> dict[str, Any]:
        return {"engines": self.engines, "windows_overlap": self.overlap,
                "common_window_s": round(self.common_s, 3)}

    def lines(self) -> list[str]:
        """What was merged, for a terminal or the report."""
        out = [f"merged {len(self.engines)} engine(s):"]
        for e in self.engines:
            out.append(f"  {e['engine']} ({e['role']} on {e['host']}, pid {e['pid']}, "
                       f"amlc {e['amlc_version']}): {e['requests']} requests, "
                       f"{e['duration_s']:.1f} s")
        if len(self.engines) > 1:
            out.append(
                f"windows overlap: all {len(self.engines)} ran together for "
                f"{self.common_s:.1f} s" if self.overlap else
                "windows do NOT all overlap: some engines ran at other times (the merged "
                "throughput is not one load's)")
        return out


def load_sources(paths: list[str | Path]) -> list[ResultsDir]:
    """Results from directories (a results directory, or a folder of them) and from log files
    holding printed results."""
    found: list[ResultsDir] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            if (path / "identity.json").is_file():
                found.append(read_results(path))
            else:
                subs = sorted(p for p in path.iterdir() if (p / "identity.json").is_file())
                if not subs:
                    raise InputError("no results directory here (identity.json not found)",
                                     path=str(path))
                found.extend(read_results(p) for p in subs)
        elif path.is_file():
            found.extend(read_log(path))
        else:
            raise InputError("no such file or directory", path=str(path))
    return found


def _check_disjoint(sources: list[ResultsDir]) -> None:
    """A master's results already hold its workers': merging both would count twice."""
    names = [s.identity.engine for s in sources]
    for name in names:
        if names.count(name) > 1:
            raise InputError(f"engine {name} given twice (its requests would count twice)")
    nodes = {s.identity.node_id: s for s in sources if s.identity.node_id}
    for master in sources:
        for worker_id in master.identity.workers:
            if worker_id in nodes:
                raise InputError(
                    f"{master.identity.engine} is the master of {nodes[worker_id].identity.engine}"
                    " and already holds its requests: merge the master's results or its "
                    "workers', not both", path=master.source)


def merge_results(sources: list[ResultsDir]) -> Merged:
    """One run from every engine's results (see the module docstring)."""
    if not sources:
        raise InputError("nothing to merge")
    _check_disjoint(sources)
    ordered = sorted(sources, key=lambda s: (s.identity.started_at, s.identity.engine))
    open_model = any(s.recording.corrected is not None for s in ordered)
    merged = Recording(open_model=open_model)
    engines = []
    for source in ordered:
        merged.merge_delta(source.recording.encode())
        ident = source.identity
        engines.append({
            "engine": ident.engine, "host": ident.host, "pid": ident.pid, "role": ident.role,
            "amlc_version": ident.amlc_version, "started_at": ident.started_at,
            "ended_at": ident.ended_at, "duration_s": max(ident.ended_at - ident.started_at, 0),
            "requests": source.recording.requests, "source": source.source,
        })
    starts = [s.identity.started_at for s in ordered]
    ends = [s.identity.ended_at for s in ordered]
    common = min(ends) - max(starts)
    first = ordered[0].identity
    config = dict(first.config)
    config["workers"] = len(ordered) if len(ordered) > 1 else config.get("workers", 0)
    config["merged_engines"] = len(ordered)
    environment = {"load_processes": len(ordered),
                   "engines": [e["engine"] for e in engines]}
    result = result_of(merged, config, min(starts), max(ends), environment)
    return Merged(result, engines, common > 0, max(common, 0.0))


def write_merged_report(merged: Merged, root: str | Path) -> tuple[Path, BenchSummary]:
    """Write the merged run's report (the same files as a bench run) plus ``merge.json``."""
    from aml_client.bench.report.directory import write_report
    from aml_client.bench.report.summarize import summarize

    summary = summarize(merged.result)
    directory = write_report(merged.result, root, summary=summary)
    (directory / "merge.json").write_text(json.dumps(merged.describe(), indent=1),
                                          encoding="utf-8")
    with open(directory / "report.md", "a", encoding="utf-8") as handle:
        handle.write("\n## Engines merged\n\n" + "\n".join(
            f"- {line.strip()}" for line in merged.lines()[1:]) + "\n")
    return directory, summary
