"""Benchmark reports: summary numbers, the files written (parsed back), scrubbing, comparing."""

from __future__ import annotations

import json
import math
import re
import tempfile
from pathlib import Path

import pytest
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
from hypothesis import given, settings
from hypothesis import strategies as st
from support.bench_results import SECRET, START, synthetic_result

import aml_client
from aml_client.bench.hdr import LatencyRecorder
from aml_client.bench.report import directory as report
from aml_client.bench.report.compare import compare, row_map
from aml_client.bench.report.redact import redact
from aml_client.bench.report.summarize import summarize
from aml_client.bench.report.summary import PERCENTILES, SCHEMA_VERSION, min_samples
from aml_client.bench.result import BenchResult
from aml_client.errors import InputError


# -- summarize -----------------------------------------------------------------------------------
def test_summary_numbers_match_the_recorder():
    result = synthetic_result()
    s = summarize(result)
    rec = result.latency
    assert s.schema_version == SCHEMA_VERSION == 4
    assert s.requests == 2000
    assert s.failures.total == 2 and s.failures.by_kind == {"http_503": 2}
    assert s.error_rate == pytest.approx(0.001)
    assert s.throughput_rps == pytest.approx(100.0)
    assert s.duration_s == 20.0
    assert s.started_at == "2026-09-21T14:13:20.250Z"
    block = s.latency
    assert block.samples == 2000
    assert block.min_ms == rec.min_us / 1000
    assert block.max_ms == rec.max_us / 1000  # exact, not a bucket edge
    assert block.mean_ms == pytest.approx(rec.mean_us / 1000, abs=0.0005)
    assert block.stdev_ms == pytest.approx(rec.stdev_us / 1000, abs=0.0005)
    assert block.sum_ms == pytest.approx(rec.sum_us / 1000, abs=0.001)
    for p in PERCENTILES:
        assert block.value_ms(f"p{p:g}") == rec.percentile_us(p) / 1000
    assert list(block.served_within_ms) == ["50", "66", "75", "80", "90", "95", "98", "99",
                                            "100"]
    assert block.served_within_ms["100"] == block.max_ms
    assert block.value_ms("p66") == rec.percentile_us(66) / 1000
    assert s.corrected is None and s.judged_on == "latency" and s.mode == "closed"
    assert "Nearest rank" in s.percentile_definition
    assert len(s.intervals) == 20
    assert s.intervals[3].failures == 2 and s.intervals[3].rps == 100.0
    assert s.validity.valid is True and s.capacity is None


def test_percentiles_are_ordered_and_bounded():
    s = summarize(synthetic_result(open_model=True))
    for block in (s.latency, s.corrected):
        assert block is not None
        values = [block.min_ms] + [block.value_ms(f"p{p:g}") for p in PERCENTILES] + [
            block.max_ms]
        assert values == sorted(values)


def test_open_model_labels_corrected_and_uncorrected():
    s = summarize(synthetic_result(open_model=True))
    assert s.latency.kind == "uncorrected"
    assert s.corrected is not None and s.corrected.kind == "corrected"
    assert s.judged_on == "corrected" and s.intervals_measure == "corrected"
    # The stall shows in the corrected tail and not in the uncorrected one.
    assert s.corrected.value_ms("p99") > 500
    assert s.latency.value_ms("p99") < 50


def test_environment_has_versions_and_machine_facts():
    env = summarize(synthetic_result()).environment.model_dump()
    for key in ("amlc", "locust", "hdrhistogram", "python", "platform", "cpu_count",
                "memory_bytes"):
        assert key in env
    assert env["hdrhistogram"] and env["amlc"] == aml_client.__version__
    assert env["cpu_count"] >= 1
    assert env["workers"] == 1  # what the run itself reported is kept


def test_sample_size_warnings():
    assert min_samples(99) == (100, 459)  # MLPerf's 459 for p99 at 99 % confidence
    assert min_samples(99.9)[0] == 1000
    small = synthetic_result(seconds=1, per_second=300)
    warnings = summarize(small).warnings
    assert any("p99 from 300 samples" in w and "459" in w for w in warnings)
    assert any("p99.9 from 300 samples" in w and "1000" in w for w in warnings)
    big = summarize(synthetic_result(seconds=20, per_second=1000)).warnings
    assert not any(w.startswith(("p99 ", "p99.9 ")) for w in big)
    assert any("p99.99 from 20000 samples" in w and "46050" in w for w in big)


def test_late_sends_make_an_open_model_run_invalid():
    result = synthetic_result(open_model=True)
    result.load.late_sends = 7  # 7 of 2000: under 1 %, still valid
    assert summarize(result).validity.valid is True
    result.load.late_sends = 300
    result.load.peak_in_flight = result.load.max_senders = 4
    validity = summarize(result).validity
    assert validity.valid is False
    (reason,) = validity.reasons
    assert "300 of 2000 requests (15.0%)" in reason and "--max-senders" in reason


def test_a_saturated_load_process_makes_a_run_invalid():
    result = synthetic_result()
    result.load.cpu_samples, result.load.cpu_saturated_s = 20, 2  # a blip: valid
    assert summarize(result).valid
    result.load.cpu_saturated_s = 12
    summary = summarize(result)
    assert not summary.valid
    assert "12 of 20 seconds" in summary.validity.reasons[0]


def test_out_of_range_samples_are_reported():
    result = synthetic_result(seconds=1)
    result.latency.record(-4)
    s = summarize(result)
    assert s.latency.out_of_range == 1
    assert any("outside" in w for w in s.warnings)


def test_empty_run_summarizes_without_crashing(tmp_path):
    result = BenchResult(config={"endpoint": "x"}, started_at=START, ended_at=START,
                         latency=LatencyRecorder())
    s = summarize(result)
    assert s.error_rate is None and s.throughput_rps is None
    assert "no request completed" in s.warnings
    directory = report.write_report(result, tmp_path)
    assert (directory / "report.html").read_text().count("<svg") == 3


# -- scrubbing -----------------------------------------------------------------------------------
def test_redact_scrubs_credential_like_fields():
    data = {
        "api_key": "k", "primaryKey": "k", "Authorization": "Bearer abc",
        "nested": [{"token": "t", "password": "p", "fine": "value"}],
        "uri": "https://user:pw@host/score?code=abc&x=1&sig=zzz",
        "note": "Bearer abcdef", "max_requests": 5, "users": 3,
        "auth": "bearer abcd…",  # auth.mask output: safe, and it tells keys apart
    }
    out = redact(data)
    flat = json.dumps(out)
    for secret in ('"k"', "code=abc", "Bearer abc", '"t"', '"p"', "pw", "zzz", "abcdef"):
        assert secret not in flat
    assert out["nested"][0]["fine"] == "value"
    assert out["max_requests"] == 5 and out["users"] == 3
    assert out["auth"] == "bearer abcd…"
    assert out["uri"] == "https://[redacted]@host/score?code=[redacted]&x=1&sig=[redacted]"


def test_no_report_file_holds_the_key(tmp_path):
    directory = report.write_report(synthetic_result(open_model=True), tmp_path)
    files = sorted(p.name for p in directory.iterdir())
    assert files == ["corrected.hgrm", "latency.hgrm", "latency.hlog", "report.html",
                     "report.md", "summary.json"]
    for path in directory.iterdir():
        assert SECRET not in path.read_text(encoding="utf-8"), path.name
    summary = json.loads((directory / "summary.json").read_text())
    assert summary["schema_version"] == SCHEMA_VERSION
    assert summary["config"]["api_key"] == "[redacted]"
    assert summary["config"]["headers"] == {"Authorization": "[redacted]", "X-Other": "ok"}
    assert summary["config"]["payload"] == {"rows": 2, "bytes": 431}


# -- files ---------------------------------------------------------------------------------------
def test_report_directory_name_and_collisions(tmp_path):
    result = synthetic_result(endpoint="My Endpoint/prod")
    first = report.write_report(result, tmp_path / "reports")
    second = report.write_report(result, tmp_path / "reports")
    assert first.name == "20260921T141320Z-my-endpoint-prod"
    assert second.name == "20260921T141320Z-my-endpoint-prod-2"
    assert re.fullmatch(r"\d{8}T\d{6}Z-[a-z0-9._-]+", first.name)


def _parse_hgrm(path: Path) -> tuple[list[tuple[float, float, int]], dict[str, float]]:
    rows, footer = [], {}
    lines = path.read_text().splitlines()
    assert lines[0].split() == ["Value", "Percentile", "TotalCount", "1/(1-Percentile)"]
    for line in lines[1:]:
        if not line.strip():
            continue
        if line.startswith("#["):
            for key, value in re.findall(r"(\w[\w ]*?)\s*=\s*([\d.]+)", line):
                footer[key.strip()] = float(value)
            continue
        value, pct, total, *_ = line.split()
        rows.append((float(value), float(pct), int(total)))
    return rows, footer


def test_hgrm_parses_back_to_the_same_percentiles(tmp_path):
    result = synthetic_result(seconds=10, per_second=100, open_model=True)
    # The same samples again, exactly (hdrh buckets them to 3 digits: compare bucket tops).
    samples = {}
    for name, rec in (("latency.hgrm", result.latency), ("corrected.hgrm", result.corrected)):
        samples[name] = [rec.histogram.get_highest_equivalent_value(item.value_iterated_to)
                         for item in rec.histogram.get_recorded_iterator()
                         for _ in range(item.count_added_in_this_iter_step)]
    directory = report.write_report(result, tmp_path)
    for name, rec in (("latency.hgrm", result.latency), ("corrected.hgrm", result.corrected)):
        rows, footer = _parse_hgrm(directory / name)
        assert rows[-1][1] == 1.0 and rows[-1][2] == rec.count
        # The value at 99 %: between the last row below 0.99 and the first at or above it.
        below = [v for v, p, _ in rows if p < 0.99]
        above = [v for v, p, _ in rows if p >= 0.99]
        p99_ms = rec.percentile_us(99) / 1000
        assert below[-1] <= p99_ms <= above[0]
        assert [r[0] for r in rows] == sorted(r[0] for r in rows)
        assert [r[2] for r in rows] == sorted(r[2] for r in rows)
        for value, _, cumulative in rows:  # TotalCount: samples at or below the row's value
            assert cumulative == sum(1 for v in samples[name] if v <= value * 1000 + 0.5)
        # Footer in milliseconds (hdrh leaves StdDeviation in µs), exact figures.
        assert footer["Mean"] == pytest.approx(rec.mean_us / 1000, abs=0.001)
        assert footer["StdDeviation"] == pytest.approx(rec.stdev_us / 1000, abs=0.001)
        assert footer["Max"] == pytest.approx(rec.max_us / 1000, abs=0.001)
        assert footer["Total count"] == rec.count


def test_hlog_reads_back_with_hdrh(tmp_path):
    result = synthetic_result(seconds=12, per_second=50, open_model=True)
    directory = report.write_report(result, tmp_path)
    text = (directory / "latency.hlog").read_text()
    assert "#[StartTime: 1790000000.250 (seconds since epoch)" in text
    reader = HistogramLogReader(str(directory / "latency.hlog"), HdrHistogram(1, 3_600_000_000, 3))
    total, count, starts = HdrHistogram(1, 3_600_000_000, 3), 0, []
    while (interval := reader.get_next_interval_histogram()) is not None:
        count += 1
        starts.append(interval.get_start_time_stamp() / 1000.0)
        total.add(interval)
    reader.close()
    assert reader.get_start_time_sec() == pytest.approx(START)
    assert count == 12
    assert starts[0] == pytest.approx(START, abs=1e-3) and starts[-1] == pytest.approx(START + 11)
    assert total.get_total_count() == sum(i.latency.count for i in result.intervals)
    # In the open model the intervals hold the corrected latency: the stall is in there.
    assert total.get_value_at_percentile(99) > 500_000
    # The Interval_Max column is the exact interval max in ms (hdrh would floor it).
    lines = [line for line in text.splitlines() if line[:1].isdigit()]
    maxima = [float(line.split(",")[2]) for line in lines]
    assert maxima == [round(i.latency.max_us / 1000, 3) for i in result.intervals]


@settings(max_examples=300, deadline=None)
@given(started_at=st.floats(min_value=1.5e9, max_value=2.5e9, allow_nan=False),
       lengths=st.lists(st.floats(min_value=0.0, max_value=5.0), min_size=1, max_size=4))
def test_every_interval_written_is_read_back_whatever_the_start_time(started_at, lengths):
    # 1796598129.307846 s is one start whose round trip through milliseconds put the first
    # interval 0.2 µs before the base time: "-0.000", a line hdrh's reader skips.
    from aml_client.bench.report.files import read_hlog, write_hlog
    from aml_client.bench.result import Interval

    intervals, start = [], started_at
    for k, length in enumerate(lengths):
        recorder = LatencyRecorder()
        recorder.record_many([1_000 * (k + 1)] * (k + 1))
        intervals.append(Interval(start, start + length, recorder, recorder.count, 0))
        start += length
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "x.hlog"
        write_hlog(intervals, started_at, path)
        back = read_hlog(path)
    assert [i.histogram.get_total_count() for i in back] == [i.requests for i in intervals]


def test_the_start_time_that_lost_an_interval_keeps_it(tmp_path):
    from aml_client.bench.report.files import read_hlog, write_hlog
    from aml_client.bench.result import Interval

    started_at = 1796598129.307846
    recorder = LatencyRecorder()
    recorder.record_many([2_000] * 850)
    write_hlog([Interval(started_at, started_at + 4.105, recorder, 850, 0)], started_at,
               tmp_path / "total.hlog")
    assert [i.histogram.get_total_count() for i in read_hlog(tmp_path / "total.hlog")] == [850]


def test_summary_and_markdown_agree(tmp_path):
    directory = report.write_report(synthetic_result(open_model=True), tmp_path)
    summary = report.load_summary(directory)
    md = (directory / "report.md").read_text()
    assert "Percentage of the requests served within a certain time (ms)" in md
    assert summary.corrected is not None
    p99 = (summary.latency.value_ms("p99"), summary.corrected.value_ms("p99"))
    assert f"| p99 | {p99[0]:,.3f} | {p99[1]:,.3f} |" in md
    assert "| 100% (longest request) |" in md
    assert "uncorrected" in md and "corrected" in md


def test_html_is_self_contained_with_three_plots(tmp_path):
    directory = report.write_report(synthetic_result(open_model=True), tmp_path)
    page = (directory / "report.html").read_text()
    assert page.count("<svg") == 3
    for chart in ('id="spectrum"', 'id="latency-over-time"', 'id="throughput-over-time"'):
        assert chart in page
    # The nines axis and both latency kinds are drawn.
    for tick in (">90%<", ">99%<", ">99.9%<"):
        assert tick in page
    assert 'data-series="corrected"' in page and 'data-series="uncorrected"' in page
    # Offline: nothing fetched from elsewhere.
    assert not re.search(r"""(src|href)=["']?https?:""", page)
    assert "<script" not in page


# -- reading back and comparing ------------------------------------------------------------------
def test_load_summary_errors(tmp_path):
    with pytest.raises(InputError, match=r"summary\.json not found"):
        report.load_summary(tmp_path)
    (tmp_path / "summary.json").write_text("{not json")
    with pytest.raises(InputError, match="not valid JSON"):
        report.load_summary(tmp_path)
    (tmp_path / "summary.json").write_text('{"a": 1}')
    with pytest.raises(InputError, match="not an amlc benchmark summary"):
        report.load_summary(tmp_path)
    (tmp_path / "summary.json").write_text('{"schema_version": 99, "latency": {}, "requests": 1}')
    with pytest.raises(InputError, match="newer than this amlc reads"):
        report.load_summary(tmp_path)


def test_a_0_1_summary_migrates_on_read(tmp_path):
    """summary.json as amlc 0.1 wrote it: no schema_version, p50_ms keys, Locust's numbers."""
    old = json.loads((Path(__file__).parent / "fixtures" / "summary-0.1.json").read_text())
    assert "schema_version" not in old
    (tmp_path / "summary.json").write_text(json.dumps(old))
    s = report.load_summary(tmp_path)
    assert s.schema_version == SCHEMA_VERSION and s.report_id == old["report_id"]
    assert s.latency.value_ms("p99") == old["latency"]["p99_ms"]
    assert s.latency.value_ms("p99.9") == old["latency"]["p99.9_ms"]
    assert s.judged.value_ms("p50") == old["corrected"]["p50_ms"]
    assert s.latency.served_within_ms == old["latency"]["served_within_ms"]
    assert s.validity.valid is None  # 0.1 did not check the load generator
    assert s.requests == old["requests"] and s.failures.by_kind == old["failures"]["by_kind"]


def test_list_and_latest(tmp_path):
    assert report.list_reports(tmp_path / "missing") == []
    old = synthetic_result()
    new = synthetic_result()
    new.started_at += 3600
    new.ended_at += 3600
    b = report.write_report(new, tmp_path)
    a = report.write_report(old, tmp_path)
    assert [s.report_id for s in report.list_reports(tmp_path)] == [a.name, b.name]
    assert report.latest_report(tmp_path) == b


def test_compare_reports_change_per_percentile(tmp_path):
    a = report.write_report(synthetic_result(base_us=20_000), tmp_path)
    b = report.write_report(synthetic_result(base_us=30_000, seed=2), tmp_path)
    sa, sb = report.load_summary(a), report.load_summary(b)
    result = compare(sa, sb)
    rows = row_map(result, "latency")
    assert set(rows) >= {"min", "mean", "p50", "p90", "p99", "p99.9", "p99.99", "max"}
    p50 = rows["p50"]
    assert p50.a == sa.latency.value_ms("p50") and p50.b == sb.latency.value_ms("p50")
    assert p50.change == pytest.approx(p50.b - p50.a)
    assert p50.change_pct == pytest.approx((p50.b - p50.a) / p50.a * 100, abs=0.01)
    assert p50.verdict == "worse"
    assert math.isclose(p50.change_pct, 50, abs_tol=3)
    # 20 one-second intervals each: a bootstrap interval around +50 %, far from 0.
    assert p50.ci_low_pct is not None and p50.ci_high_pct is not None
    assert 0 < p50.ci_low_pct <= p50.change_pct <= p50.ci_high_pct
    overall = row_map(result, "overall")
    assert overall["throughput"].verdict == "same"
    assert result.a.report_id == a.name and result.notes == []
    reverse = compare(sb, sa)
    assert row_map(reverse, "latency")["p50"].verdict == "better"


def test_compare_open_with_closed_notes_it():
    result = compare(summarize(synthetic_result()), summarize(synthetic_result(open_model=True)))
    assert [s.name for s in result.sections] == ["overall", "latency", "corrected"]
    corrected = row_map(result, "corrected")
    assert corrected["p99"].a is None and corrected["p99"].change is None
    assert any("different load models" in n for n in result.notes)
