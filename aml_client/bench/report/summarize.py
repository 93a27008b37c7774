"""Building a run's :class:`~aml_client.bench.report.summary.BenchSummary` from its result.

Apart from the model itself (:mod:`aml_client.bench.report.summary`), because a blue/green run's
verdicts come from :mod:`aml_client.bench.report.compare`, which reads the model too.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from aml_client.bench.hdr import LatencyRecorder
from aml_client.bench.machine import environment_facts
from aml_client.bench.report.compare import capacity_verdicts, deployment_verdicts
from aml_client.bench.report.redact import redact
from aml_client.bench.report.summary import (
    AB_PERCENTS,
    CPU_SATURATED,
    CPU_SATURATED_MIN_S,
    CPU_SATURATED_MIN_SHARE,
    LATE_FRACTION_LIMIT,
    LATE_MIN_COUNT,
    PERCENTILES,
    PHASE_DESCRIPTIONS,
    Agreement,
    BenchSummary,
    BlueGreen,
    Capacity,
    DeploymentRun,
    DeploymentSummary,
    Environment,
    Failures,
    IntervalRow,
    LatencyBlock,
    RunConfig,
    TransferSummary,
    Validity,
    percentile_key,
    sample_warnings,
    to_ms,
)
from aml_client.bench.result import PHASES, BenchResult, Interval

__all__ = ["latency_block", "summarize"]


def _spectrum(recorder: LatencyRecorder) -> list[tuple[float, float]]:
    """(percentile 0..100, ms) points of the percentile distribution, as in the .hgrm file."""
    points: list[tuple[float, float]] = []
    if not recorder.count:
        return points
    for item in recorder.histogram.get_percentile_iterator(5):
        level = item.percentile_level_iterated_to
        value = min(item.value_iterated_to, recorder.max_us)
        points.append((round(level, 6), to_ms(value)))
        if level >= 100.0:
            break
    return points


def latency_block(
    recorder: LatencyRecorder, kind: str, description: str = "", *, spectrum: bool = True
) -> LatencyBlock:
    """The figures of one recorder, percentiles by nearest rank (see
    :mod:`~aml_client.bench.hdr`)."""
    wanted = sorted({*PERCENTILES, *AB_PERCENTS})
    values = recorder.percentiles_us(wanted)
    return LatencyBlock(
        kind=kind,
        description=description,
        samples=recorder.count,
        out_of_range=recorder.out_of_range,
        min_ms=to_ms(recorder.min_us),
        mean_ms=to_ms(recorder.mean_us),
        stdev_ms=to_ms(recorder.stdev_us),
        max_ms=to_ms(recorder.max_us),
        sum_ms=to_ms(recorder.sum_us),
        percentiles_ms={percentile_key(p): to_ms(values[float(p)]) for p in PERCENTILES},
        served_within_ms={
            str(p): to_ms(recorder.max_us if p == 100 else values[float(p)]) for p in AB_PERCENTS
        },
        spectrum=_spectrum(recorder) if spectrum else [],
    )


def _iso(epoch_s: float) -> str:
    return datetime.fromtimestamp(epoch_s, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")[:-4] + "Z"


def _endpoint_name(config: dict[str, Any]) -> str:
    for key in ("endpoint", "endpoint_name", "name", "target"):
        value = config.get(key)
        if isinstance(value, str) and value:
            return value
    uri = config.get("scoring_uri")
    if isinstance(uri, str) and uri:
        return urlsplit(uri).hostname or "endpoint"
    return "endpoint"


def interval_rows(intervals: list[Interval], started_at: float) -> list[IntervalRow]:
    rows = []
    for interval in intervals:
        rec = interval.latency
        values = rec.percentiles_us([50, 90, 99]) if rec.count else {}
        duration = interval.duration_s
        rows.append(IntervalRow(
            t_s=round(interval.start_s - started_at, 3),
            duration_s=round(duration, 3),
            requests=interval.requests,
            failures=interval.failures,
            rps=round(interval.requests / duration, 3) if duration > 0 else None,
            samples=rec.count,
            p50_ms=to_ms(values[50.0]) if rec.count else None,
            p90_ms=to_ms(values[90.0]) if rec.count else None,
            p99_ms=to_ms(values[99.0]) if rec.count else None,
            max_ms=to_ms(rec.max_us) if rec.count else None,
        ))
    return rows


def _validity(result: BenchResult, open_model: bool) -> Validity:
    load = result.load
    reasons = []
    late_fraction = load.late_sends / result.requests if result.requests else 0.0
    if open_model and late_fraction > LATE_FRACTION_LIMIT and load.late_sends >= LATE_MIN_COUNT:
        cause = ""
        if load.max_senders is not None and load.peak_in_flight >= load.max_senders:
            cause = (
                f" (all {load.max_senders} senders were busy: raise --max-senders, or lower "
                "--rate)"
            )
        reasons.append(
            f"{load.late_sends} of {result.requests} requests ({late_fraction:.1%}) were sent "
            f"more than 10 ms after their scheduled time: the load generator fell behind{cause}"
        )
    saturated = load.cpu_saturated_s
    if saturated >= CPU_SATURATED_MIN_S and saturated >= CPU_SATURATED_MIN_SHARE * max(
        load.cpu_samples, 1
    ):
        reasons.append(
            f"the load process used >= {CPU_SATURATED:.0%} of a CPU core for {saturated} of "
            f"{load.cpu_samples} seconds: it, not the endpoint, may have set the pace (add "
            "--workers)"
        )
    return Validity(
        valid=not reasons,
        reasons=reasons,
        late_sends=load.late_sends,
        late_fraction=round(late_fraction, 6),
        slip=latency_block(result.slip, "send slip", "due time -> actual send (open model)",
                           spectrum=False)
        if result.slip is not None and result.slip.count else None,
        cpu_peak_percent=round(load.cpu_peak * 100, 1) if load.cpu_samples else None,
        cpu_mean_percent=round(load.cpu_mean * 100, 1) if load.cpu_samples else None,
        cpu_saturated_s=saturated,
        peak_in_flight=load.peak_in_flight,
        max_senders=load.max_senders,
    )


def _transfer(result: BenchResult) -> TransferSummary:
    t = result.transfer
    duration = result.duration_s
    return TransferSummary(
        bytes_sent=t.bytes_sent,
        bytes_received=t.bytes_received,
        body_bytes_received=t.body_bytes,
        sent_kb_per_s=round(t.bytes_sent / 1024 / duration, 3) if duration > 0 else None,
        received_kb_per_s=round(t.bytes_received / 1024 / duration, 3) if duration > 0 else None,
        document_length=t.document_length,
        document_length_changes=t.length_changes,
        server=t.server,
        server_changes=t.server_changes,
    )


def _failures(result: BenchResult) -> Failures:
    return Failures(
        total=result.failure_count,
        by_kind=dict(sorted(result.failures.items())),
        reasons={kind: dict(sorted(by.items(), key=lambda item: -item[1]))
                 for kind, by in sorted(result.failure_reasons.items())},
    )


def _deployment_run(name: str, sub: BenchResult, capacity: Capacity | None) -> DeploymentRun:
    open_model = sub.corrected is not None
    duration = sub.duration_s
    judged = sub.corrected if sub.corrected is not None else sub.latency
    return DeploymentRun(
        name=name,
        requests=sub.requests,
        successes=sub.requests - sub.failure_count,
        failures=_failures(sub),
        error_rate=round(sub.failure_count / sub.requests, 6) if sub.requests else None,
        throughput_rps=round(sub.requests / duration, 3) if duration > 0 else None,
        judged_on="corrected" if open_model else "latency",
        latency=latency_block(sub.latency, "uncorrected" if open_model else "latency",
                              f"requests pinned to {name}", spectrum=judged is sub.latency),
        corrected=latency_block(sub.corrected, "corrected", f"requests pinned to {name}")
        if sub.corrected is not None else None,
        phases={phase: latency_block(sub.phases[phase], phase, PHASE_DESCRIPTIONS[phase],
                                     spectrum=False)
                for phase in PHASES if phase in sub.phases and sub.phases[phase].count},
        answered_by={k: v.requests for k, v in sorted(sub.deployments.items())},
        intervals=interval_rows(sub.intervals, sub.started_at),
        capacity=capacity,
    )


def _blue_green(
    result: BenchResult, names: list[str], capacities: dict[str, Capacity]
) -> tuple[BlueGreen, list[str]]:
    """The side-by-side section and its warnings."""
    from aml_client.bench.bluegreen import AGREEMENT_RULE, INTERLEAVING

    runs = []
    warnings = []
    for name in names:
        sub = result.by_deployment.get(name) or BenchResult(
            config={}, started_at=result.started_at, ended_at=result.started_at,
            latency=LatencyRecorder())
        run = _deployment_run(name, sub, capacities.get(name))
        runs.append(run)
        others = {k: v for k, v in run.answered_by.items() if k != name}
        if others:
            said = ", ".join(f"{k} {v:,}" for k, v in others.items())
            warnings.append(
                f"requests pinned to {name} were answered by another deployment ({said}): "
                "does the endpoint honour azureml-model-deployment?"
            )
    baseline = names[0]
    if capacities:
        verdicts, method = capacity_verdicts(runs), (
            "one capacity search per deployment, one after the other; each brackets the "
            "capacity between the highest rate that held and the lowest above it that missed, "
            "and a difference is significant when the brackets do not overlap"
        )
        warnings.append(
            "the searches ran one after the other: the endpoint-wide figures merge each "
            "deployment's step at capacity, so their duration and throughput span the searches"
        )
    else:
        verdicts, method = deployment_verdicts(
            baseline, {name: result.by_deployment[name].intervals for name in names
                       if name in result.by_deployment}, runs)
    agreement = None
    counts = result.agreement
    if counts is not None:
        agreement = Agreement(
            baseline=baseline,
            compared_requests=counts.compared_requests,
            compared_rows=counts.compared_rows,
            agreeing_rows=counts.agreeing_rows,
            rate=round(counts.agreeing_rows / counts.compared_rows, 6)
            if counts.compared_rows else None,
            disagreeing_requests=counts.disagreeing_requests,
            not_compared=counts.not_compared,
            examples=list(counts.examples),
            rule=AGREEMENT_RULE,
        )
    section = BlueGreen(deployments=names, baseline=baseline, interleaving=INTERLEAVING,
                        runs=runs, agreement=agreement, verdicts=verdicts, method=method)
    return section, warnings


def summarize(
    result: BenchResult,
    *,
    capacity: Capacity | None = None,
    report_id: str | None = None,
    deployment_capacities: dict[str, Capacity] | None = None,
) -> BenchSummary:
    """Every number of a run, credential-free (see :class:`BenchSummary`).

    ``deployment_capacities``: a blue/green capacity search's answer for each deployment.
    """
    config = redact(dict(result.config))
    open_model = result.corrected is not None
    mode = str(config.get("mode") or ("open" if open_model else "closed"))
    duration = result.duration_s
    failure_total = result.failure_count
    latency = latency_block(
        result.latency,
        "uncorrected" if open_model else "latency",
        "actual send -> reply (hides endpoint stalls: coordinated omission)"
        if open_model
        else "send -> reply, closed model (each user waits for its reply)",
    )
    corrected = (
        latency_block(result.corrected, "corrected", "intended start -> reply (open model)")
        if result.corrected is not None
        else None
    )
    judged = result.corrected if result.corrected is not None else result.latency
    warnings = sample_warnings(judged.count)
    for block in (latency, corrected):
        if block is not None and block.out_of_range:
            warnings.append(
                f"{block.kind}: {block.out_of_range} samples outside 0 .. 1 h were counted "
                "but not recorded in the histogram"
            )
    if result.requests == 0:
        warnings.append("no request completed")
    phases = {
        name: latency_block(result.phases[name], name, PHASE_DESCRIPTIONS[name])
        for name in PHASES
        if name in result.phases and result.phases[name].count
    }
    deployments = [
        DeploymentSummary(
            name=name,
            requests=stats.requests,
            failures=stats.failures,
            share=round(stats.requests / result.requests, 6) if result.requests else 0.0,
            latency=latency_block(stats.latency, "latency", f"answered by {name}",
                                  spectrum=False),
        )
        for name, stats in sorted(result.deployments.items())
    ]
    transfer = _transfer(result)
    if transfer.document_length_changes:
        warnings.append(
            f"{transfer.document_length_changes} successful responses differed in length from "
            f"the first ({transfer.document_length} bytes): ab would count them as failures "
            "(not counted here: predictions vary)"
        )
    blue_green = None
    capacities = deployment_capacities or {}
    if result.by_deployment or capacities:
        listed = [str(n) for n in config.get("deployments") or []]
        names = listed + [n for n in (*result.by_deployment, *capacities) if n not in listed]
        blue_green, more = _blue_green(result, list(dict.fromkeys(names)), capacities)
        warnings += more
    environment = environment_facts()
    environment.update(redact(dict(result.environment)))
    return BenchSummary(
        report_id=report_id,
        endpoint=_endpoint_name(config),
        mode=mode,
        started_at=_iso(result.started_at),
        ended_at=_iso(result.ended_at),
        started_at_epoch_s=result.started_at,
        duration_s=round(duration, 3),
        requests=result.requests,
        successes=result.requests - failure_total,
        failures=_failures(result),
        error_rate=round(failure_total / result.requests, 6) if result.requests else None,
        throughput_rps=round(result.requests / duration, 3) if duration > 0 else None,
        judged_on="corrected" if corrected is not None else "latency",
        latency=latency,
        corrected=corrected,
        phases=phases,
        transfer=transfer,
        deployments=deployments,
        validity=_validity(result, open_model),
        intervals=interval_rows(result.intervals, result.started_at),
        intervals_measure="corrected" if open_model else "latency",
        warnings=warnings,
        capacity=capacity,
        blue_green=blue_green,
        config=RunConfig.model_validate(config),
        environment=Environment.model_validate(environment),
    )
