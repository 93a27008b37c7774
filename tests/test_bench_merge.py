"""Results directories merge exactly: one load split across 2-4 engines, written as files (or
printed to a log), read back and merged, equals one histogram fed every recorded value."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram

from aml_client.bench.hdr import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES, LatencyRecorder
from aml_client.bench.recording import Recording, Sample
from aml_client.bench.report.files import read_hlog
from aml_client.bench.report.merge import load_sources, merge_results, write_merged_report
from aml_client.bench.report.results_dir import Identity, log_lines, read_results, write_results
from aml_client.errors import InputError

PERCENTILES = [0, 1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99, 100]
T0 = 1_700_000_000.0


def _load(n: int, seed: int) -> list[tuple[int, float, str | None, str, int]]:
    """One load: (latency µs, end time, failure, deployment, ttfb µs) per request."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        latency = max(1, int(rng.lognormvariate(9.5, 0.8)))  # ~13 ms median, long tail
        if i % 997 == 0:
            latency = rng.randint(2_000_000, 40_000_000)  # rare stalls of seconds
        failure = "http_503" if rng.random() < 0.01 else None
        out.append((latency, T0 + i * 0.003, failure, "blue" if i % 2 else "green",
                    latency // 3))
    return out


def _engine(load: list[tuple[int, float, str | None, str, int]], name: str) -> tuple[
        Identity, Recording]:
    rec = Recording()
    for latency, end, failure, deployment, ttfb in load:
        sample = Sample(ttfb_us=ttfb, body_us=latency - ttfb, server_us=ttfb // 2)
        rec.record(latency, end, failure, sample=sample, deployment=deployment)
    start = min(e for _, e, *_ in load) - 0.5
    stop = max(e for _, e, *_ in load)
    ident = Identity(engine=name, host="h", pid=1, role="local", started_at=start,
                     ended_at=stop, amlc_version="test", config={"endpoint": "t"})
    return ident, rec


def _union(values: list[int]) -> tuple[LatencyRecorder, HdrHistogram]:
    ours, plain = LatencyRecorder(), HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    for v in values:
        ours.record(v)
        plain.record_value(v)
    return ours, plain


def _assert_same(merged: LatencyRecorder, union: LatencyRecorder, plain: HdrHistogram) -> None:
    assert merged.count == union.count == plain.get_total_count()
    assert (merged.min_us, merged.max_us) == (union.min_us, union.max_us)
    assert merged.sum_us == union.sum_us and merged.sum_sq_us == union.sum_sq_us
    assert merged.percentiles_us(PERCENTILES) == union.percentiles_us(PERCENTILES)
    # Bucket for bucket, the merged histogram is the plain hdrh histogram of every value.
    assert list(merged.histogram.counts) == list(plain.counts)


@pytest.mark.parametrize("engines", [2, 3, 4])
@pytest.mark.parametrize("via", ["dirs", "log"])
def test_a_load_split_across_engines_merges_to_the_exact_union(
    tmp_path: Path, engines: int, via: str
) -> None:
    load = _load(12_000, seed=engines)
    rng = random.Random(7)
    parts: list[list[tuple[int, float, str | None, str, int]]] = [[] for _ in range(engines)]
    for item in load:  # uneven shares, interleaved in time: engines that ran together
        parts[min(int(rng.random() ** 2 * engines), engines - 1)].append(item)
    roots = []
    for k, part in enumerate(parts):
        ident, rec = _engine(part, f"engine-{k}")
        roots.append(write_results(tmp_path / "results", ident, rec))
    if via == "log":
        log = tmp_path / "engines.log"
        log.write_text("".join(f"2026-01-01T00:00:00Z pod-{k} | {line}\nnoise line\n"
                               for k, root in enumerate(roots) for line in log_lines(root)))
        sources = load_sources([log])
    else:
        sources = load_sources([tmp_path / "results"])
    merged = merge_results(sources)
    result = merged.result
    union, plain = _union([v for v, *_ in load])
    _assert_same(result.latency, union, plain)
    assert result.requests == len(load)
    assert result.failures == {"http_503": sum(1 for _, _, f, *_ in load if f)}
    ttfb, ttfb_plain = _union([t for *_, t in load])
    _assert_same(result.phases["ttfb"], ttfb, ttfb_plain)
    for lane in ("blue", "green"):
        lane_union, lane_plain = _union([v for v, _, _, d, _ in load if d == lane])
        _assert_same(result.by_deployment[lane].latency, lane_union, lane_plain)
        # The interval logs hold the same histograms, for HdrHistogram's own tools.
        from_logs = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
        for root in roots:
            for interval in read_hlog(root / f"deployment-{lane}-total.hlog"):
                from_logs.add(interval.histogram)
        assert list(from_logs.counts) == list(lane_plain.counts)
    assert sum(i.requests for i in result.intervals) == len(load)
    assert merged.overlap and len(merged.engines) == engines
    assert sorted(e["engine"] for e in merged.engines) == [f"engine-{k}" for k in range(engines)]

    directory, _summary = write_merged_report(merged, tmp_path / "out")
    data = json.loads((directory / "summary.json").read_text())
    assert data["requests"] == len(load)
    expected_max_ms = union.max_us / 1000
    assert data["latency"]["max_ms"] == pytest.approx(expected_max_ms, abs=1e-3)
    assert json.loads((directory / "merge.json").read_text())["windows_overlap"] is True
    assert "Engines merged" in (directory / "report.md").read_text()


def test_engines_that_ran_at_different_times_are_reported_as_not_overlapping(
    tmp_path: Path,
) -> None:
    load = _load(200, seed=1)
    first = _engine(load[:100], "early")
    second = _engine([(v, e + 3600, f, d, t) for v, e, f, d, t in load[100:]], "late")
    for ident, rec in (first, second):
        write_results(tmp_path, ident, rec)
    merged = merge_results(load_sources([tmp_path / "early", tmp_path / "late"]))
    assert not merged.overlap and merged.common_s == 0
    assert any("do NOT all overlap" in line for line in merged.lines())


def test_a_master_and_its_own_worker_are_not_merged_twice(tmp_path: Path) -> None:
    load = _load(50, seed=2)
    ident, rec = _engine(load, "master-a")
    ident.role, ident.workers = "master", ["node-1"]
    write_results(tmp_path, ident, rec)
    wid, wrec = _engine(load, "worker-b")
    wid.role, wid.node_id = "worker", "node-1"
    write_results(tmp_path, wid, wrec)
    with pytest.raises(InputError, match="master of worker-b"):
        merge_results(load_sources([tmp_path]))


def test_a_damaged_or_incomplete_results_directory_is_one_clear_error(tmp_path: Path) -> None:
    ident, rec = _engine(_load(30, seed=3), "e")
    # A start whose millisecond rounds up: the interval logs must still hold every sample.
    ident.started_at = T0 - 0.5 + 0.0009994
    directory = write_results(tmp_path, ident, rec)
    assert read_results(directory).recording.latency.count == 30  # intact
    other = Recording()
    other.record(5, T0)
    (directory / "recording.json").write_text(json.dumps(other.encode()))
    with pytest.raises(InputError, match=r"total\.hlog holds 30 samples"):
        read_results(directory)
    log = tmp_path / "cut.log"
    ident2, rec2 = _engine(_load(3000, seed=4), "f")
    lines = list(log_lines(write_results(tmp_path / "x", ident2, rec2)))
    log.write_text("\n".join(lines[:-1]))
    with pytest.raises(InputError, match="missing"):
        load_sources([log])
    with pytest.raises(InputError, match="no such file"):
        load_sources([tmp_path / "x" / "f" / "no-such"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no results directory"):
        load_sources([tmp_path / "empty"])
