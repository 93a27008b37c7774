"""Benchmark reports: the summary of a run, the files kept for it, reading them back, comparing two.

A report directory ``reports/<UTC start>-<endpoint>/`` holds:

* ``summary.json`` — every number (see :func:`summarize`), the configuration, tool versions and
  machine facts; credential-like fields are scrubbed whatever the caller passed in;
* ``latency.hgrm`` (and ``corrected.hgrm`` for an open model) — HdrHistogram's standard
  percentile distribution in milliseconds, which HdrHistogram's plotters read;
* ``latency.hlog`` — the per-interval histograms in HdrHistogram's interval log format;
* ``report.html`` (self-contained, plots as inline SVG) and ``report.md``.

Nothing here imports Locust, so reports can be read and written without gevent's patching.
"""

from __future__ import annotations

import io
import json
import math
import os
import platform
import re
from collections.abc import Iterable
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from hdrh.log import HistogramLogWriter

import aml_client
from aml_client.bench.hdr import SIGNIFICANT_FIGURES, LatencyRecorder
from aml_client.bench.result import BenchResult
from aml_client.errors import InputError

__all__ = [
    "AB_PERCENTS",
    "PERCENTILES",
    "PERCENTILE_DEFINITION",
    "compare",
    "environment_facts",
    "latest_report",
    "list_reports",
    "load_summary",
    "min_samples",
    "redact",
    "summarize",
    "write_hgrm",
    "write_hlog",
    "write_report",
]

SUMMARY_FORMAT = "amlc-bench-summary/1"
#: Percentiles of the final table.
PERCENTILES: tuple[float, ...] = (50, 75, 90, 95, 99, 99.9, 99.99)
#: Rows of ``ab``'s "Percentage of the requests served within a certain time (ms)" table.
AB_PERCENTS: tuple[int, ...] = (50, 66, 75, 80, 90, 95, 98, 99, 100)
PERCENTILE_DEFINITION = (
    "HdrHistogram: the value at percentile p is the smallest latency v such that at least p % of "
    f"the samples are <= v, to {SIGNIFICANT_FIGURES} significant digits (never above the exact "
    "max). ab and Locust take the sample at index floor(N*p) of whole or rounded milliseconds; "
    "k6 interpolates: on few samples they differ."
)
#: Confidence behind the second sample-size rule (MLPerf LoadGen uses 99 %).
CONFIDENCE = 0.99
_REDACTED = "[redacted]"
_SECRET_WORDS = {
    "key", "keys", "apikey", "token", "tokens", "secret", "secrets", "password", "passwd",
    "authorization", "credential", "credentials", "cookie", "cookies", "bearer", "signature",
    "sig", "sas",
}
#: Query parameters that carry secrets in URLs (Azure Functions' ``?code=``, SAS ``sig``).
_SECRET_QUERY = _SECRET_WORDS | {"code"}
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S+", re.IGNORECASE)
#: What ``auth.mask`` makes of a secret (``Bearer abcd…``): safe to keep, it tells keys apart.
_MASKED_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S{0,4}…\s*$", re.IGNORECASE)


# -- scrubbing ---------------------------------------------------------------------------------
def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w}


def _scrub_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:  # user:password@host
        netloc = f"{_REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, _REDACTED if _words(k) & _SECRET_QUERY else v) for k, v in pairs], safe="[]"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(value: Any) -> Any:
    """A copy with anything credential-like replaced by ``[redacted]``.

    Defensive: a field is scrubbed when its name contains a word such as key, token, secret,
    password, authorization or cookie; a string value is scrubbed when it looks like an
    ``Authorization`` header; URLs lose passwords and secret query parameters.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            if _words(name) & _SECRET_WORDS and v not in (None, "", [], {}):
                out[name] = _REDACTED
            else:
                out[name] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        if _SECRET_VALUE.match(value) and not _MASKED_VALUE.match(value):
            return _REDACTED
        if "://" in value:
            return _scrub_url(value)
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))


# -- environment ---------------------------------------------------------------------------------
def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as handle:
            for line in handle:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def environment_facts() -> dict[str, Any]:
    """Tool versions and machine facts, read without importing Locust."""
    usable: int | None
    try:
        usable = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        usable = os.cpu_count()
    return {
        # The code actually running, not whatever distribution metadata is installed.
        "amlc": getattr(aml_client, "__version__", None) or _version("amlc"),
        "locust": _version("locust"),
        "hdrhistogram": _version("hdrhistogram"),
        "python": platform.python_version(),
        "python_implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_usable": usable,
        "memory_bytes": _memory_bytes(),
    }


# -- summary -------------------------------------------------------------------------------------
def _ms(us: float) -> float:
    """Microseconds to milliseconds, keeping microsecond precision."""
    return round(us / 1000.0, 3)


def _pkey(p: float) -> str:
    return f"p{p:g}"


def min_samples(p: float, confidence: float = CONFIDENCE) -> tuple[int, int]:
    """Samples needed for percentile ``p``: (to resolve it at all, to bound it with confidence).

    The first is 1/(1-p): with fewer, "p99.9" is simply the maximum. The second is MLPerf
    LoadGen's rule: with n >= ln(1-confidence)/ln(p) samples, the chance that every sample lies
    below the true percentile is under 1-confidence (459 samples for p99 at 99 %).
    """
    fraction = p / 100.0
    if fraction >= 1.0:
        return 1, 1
    resolve = math.ceil(1.0 / (1.0 - fraction) - 1e-9)
    bound = math.ceil(math.log(1.0 - confidence) / math.log(fraction) - 1e-9) if fraction else 1
    return resolve, bound


def _sample_warnings(samples: int) -> list[str]:
    warnings = []
    for p in PERCENTILES:
        resolve, bound = min_samples(p)
        if samples < resolve:
            warnings.append(
                f"{_pkey(p)} from {samples} samples: at least {resolve} are needed to resolve "
                "it; it is just the maximum"
            )
        elif samples < bound:
            warnings.append(
                f"{_pkey(p)} from {samples} samples: fewer than the {bound} needed for "
                f"{CONFIDENCE:.0%} confidence (MLPerf's rule)"
            )
    return warnings


def _spectrum(recorder: LatencyRecorder) -> list[list[float]]:
    """(percentile 0..100, ms) points of the percentile distribution, as in the .hgrm file."""
    points: list[list[float]] = []
    if not recorder.count:
        return points
    for item in recorder.histogram.get_percentile_iterator(5):
        level = item.percentile_level_iterated_to
        value = min(item.value_iterated_to, recorder.max_us)
        points.append([round(level, 6), _ms(value)])
        if level >= 100.0:
            break
    return points


def _latency_block(recorder: LatencyRecorder, kind: str, description: str) -> dict[str, Any]:
    block: dict[str, Any] = {
        "kind": kind,
        "description": description,
        "samples": recorder.count,
        "out_of_range": recorder.out_of_range,
    }
    wanted = sorted({*PERCENTILES, *AB_PERCENTS})
    values = recorder.percentiles_us(wanted)
    block["min_ms"] = _ms(recorder.min_us)
    block["mean_ms"] = _ms(recorder.mean_us)
    block["stdev_ms"] = _ms(recorder.stdev_us)
    for p in PERCENTILES:
        block[f"{_pkey(p)}_ms"] = _ms(values[float(p)])
    block["max_ms"] = _ms(recorder.max_us)
    block["served_within_ms"] = {
        str(p): _ms(recorder.max_us if p == 100 else values[float(p)]) for p in AB_PERCENTS
    }
    block["spectrum"] = _spectrum(recorder)
    return block


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


def _interval_rows(result: BenchResult) -> list[dict[str, Any]]:
    rows = []
    for interval in result.intervals:
        rec = interval.latency
        values = rec.percentiles_us([50, 90, 99]) if rec.count else {}
        duration = interval.duration_s
        rows.append({
            "t_s": round(interval.start_s - result.started_at, 3),
            "duration_s": round(duration, 3),
            "requests": interval.requests,
            "failures": interval.failures,
            "rps": round(interval.requests / duration, 3) if duration > 0 else None,
            "samples": rec.count,
            "p50_ms": _ms(values[50.0]) if rec.count else None,
            "p90_ms": _ms(values[90.0]) if rec.count else None,
            "p99_ms": _ms(values[99.0]) if rec.count else None,
            "max_ms": _ms(rec.max_us) if rec.count else None,
        })
    return rows


def summarize(result: BenchResult) -> dict[str, Any]:
    """Every number of a run, JSON-ready, credential-free.

    Latencies are in milliseconds with microsecond precision. In an open model ``corrected``
    (intended start -> reply) is the figure to judge the endpoint by; ``latency`` is then the
    uncorrected send -> reply, which hides stalls (coordinated omission).
    """
    config = redact(dict(result.config))
    open_model = result.corrected is not None
    mode = str(config.get("mode") or ("open" if open_model else "closed"))
    duration = result.duration_s
    failure_total = result.failure_count
    uncorrected_label = "uncorrected" if open_model else "latency"
    latency = _latency_block(
        result.latency,
        uncorrected_label,
        "actual send -> reply (hides endpoint stalls: coordinated omission)"
        if open_model
        else "send -> reply, closed model (each user waits for its reply)",
    )
    corrected = (
        _latency_block(result.corrected, "corrected", "intended start -> reply (open model)")
        if result.corrected is not None
        else None
    )
    judged = result.corrected if result.corrected is not None else result.latency
    warnings = _sample_warnings(judged.count)
    for block in (latency, corrected):
        if block and block["out_of_range"]:
            warnings.append(
                f"{block['kind']}: {block['out_of_range']} samples outside 0 .. 1 h were counted "
                "but not recorded in the histogram"
            )
    late = config.get("late_sends")
    if open_model and isinstance(late, int) and late > 0:
        warnings.append(
            f"{late} requests were sent more than 10 ms after their scheduled time: the load "
            "generator fell behind (the corrected latency includes that delay)"
        )
    if result.requests == 0:
        warnings.append("no request completed")
    environment = environment_facts()
    environment.update(redact(dict(result.environment)))
    locust = {
        "approximate": True,
        "note": "Locust's own statistics, for reference only: its percentiles come from "
        "response times rounded to 1 ms below 100 ms, 10 ms below 1 s, 100 ms below 10 s.",
        **redact(dict(result.locust)),
    }
    return {
        "format": SUMMARY_FORMAT,
        "endpoint": _endpoint_name(config),
        "mode": mode,
        "started_at": _iso(result.started_at),
        "ended_at": _iso(result.ended_at),
        "started_at_epoch_s": result.started_at,
        "duration_s": round(duration, 3),
        "requests": result.requests,
        "successes": result.requests - failure_total,
        "failures": {"total": failure_total, "by_kind": dict(sorted(result.failures.items()))},
        "error_rate": round(failure_total / result.requests, 6) if result.requests else None,
        "throughput_rps": round(result.requests / duration, 3) if duration > 0 else None,
        "unit": "ms",
        "significant_figures": SIGNIFICANT_FIGURES,
        "percentile_definition": PERCENTILE_DEFINITION,
        "judged_on": "corrected" if corrected is not None else "latency",
        "latency": latency,
        "corrected": corrected,
        "intervals": _interval_rows(result),
        "intervals_measure": "corrected" if open_model else "latency",
        "warnings": warnings,
        "locust": locust,
        "config": config,
        "environment": environment,
    }


# -- HdrHistogram files --------------------------------------------------------------------------
def write_hgrm(recorder: LatencyRecorder, path: Path) -> None:
    """HdrHistogram's percentile distribution (.hgrm) in milliseconds.

    hdrh 0.10.8 leaves the StdDeviation footer in microseconds and prints the count as a float;
    the footer is rewritten in Java's format, with the exact mean, standard deviation and max.
    """
    buffer = io.BytesIO()
    if recorder.count:
        recorder.histogram.output_percentile_distribution(buffer, 1000.0)
    else:
        buffer.write(b"%12s %14s %10s %14s\n\n" % (
            b"Value", b"Percentile", b"TotalCount", b"1/(1-Percentile)"))
    body = b"".join(
        line for line in buffer.getvalue().splitlines(keepends=True) if not line.startswith(b"#[")
    )
    digits = SIGNIFICANT_FIGURES
    footer = (
        f"#[Mean    = {recorder.mean_us / 1000:12.{digits}f}, "
        f"StdDeviation   = {recorder.stdev_us / 1000:12.{digits}f}]\n"
        f"#[Max     = {recorder.max_us / 1000:12.{digits}f}, "
        f"Total count    = {recorder.count:12d}]\n"
        f"#[Buckets = {recorder.histogram.bucket_count:12d}, "
        f"SubBuckets     = {recorder.histogram.sub_bucket_count:12d}]\n"
    )
    with open(path, "wb") as handle:
        handle.write(body + footer.encode("ascii"))


class _LogWriter(HistogramLogWriter):
    """hdrh's interval-log writer with two fixes for hdrh 0.10.8.

    Its ``output_start_time`` crashes (and would read milliseconds as seconds), and its interval
    lines floor the interval max to whole units; both are written as Java's writer does.
    """

    def output_start_time(self, start_time_msec: float) -> None:
        seconds = float(start_time_msec) / 1000.0
        when = datetime.fromtimestamp(seconds, UTC).strftime("%a %b %d %H:%M:%S UTC %Y")
        self.log.write(f"#[StartTime: {seconds:.3f} (seconds since epoch), {when}]\n")

    def output_interval(self, recorder: LatencyRecorder, start_s: float, end_s: float) -> None:
        """One interval line: start and length in seconds (from the base time), max in ms."""
        offset = start_s - self.base_time / 1000.0
        blob = recorder.histogram.encode().decode("ascii")
        self.log.write(
            f"{offset:.3f},{end_s - start_s:.3f},{recorder.max_us / 1000.0:.3f},{blob}\n"
        )


def write_hlog(
    intervals: Iterable[Any], started_at: float, path: Path, *, comment: str | None = None
) -> None:
    """The interval histograms as an HdrHistogram log (timestamps relative to ``started_at``).

    Interval max values are exact, in milliseconds (the convention of HdrHistogram's tools).
    """
    start_ms = started_at * 1000.0
    with open(path, "w", encoding="utf-8") as handle:
        writer = _LogWriter(handle)
        writer.output_comment("[Logged with amlc]")
        if comment:
            writer.output_comment(comment)
        writer.output_log_format_version()
        writer.output_start_time(start_ms)
        writer.base_time = start_ms
        writer.output_base_time(start_ms)
        writer.output_legend()
        for interval in intervals:
            writer.output_interval(interval.latency, interval.start_s, interval.end_s)


# -- report directory ----------------------------------------------------------------------------
def _slug(text: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", text.lower()).strip("-._")
    return slug[:48] or "endpoint"


def _new_dir(root: Path, started_at: float, endpoint: str) -> Path:
    stamp = datetime.fromtimestamp(started_at, UTC).strftime("%Y%m%dT%H%M%SZ")
    base = f"{stamp}-{_slug(endpoint)}"
    root.mkdir(parents=True, exist_ok=True)
    for n in range(1, 1000):
        candidate = root / (base if n == 1 else f"{base}-{n}")
        try:
            candidate.mkdir()
        except FileExistsError:
            continue
        return candidate
    raise FileExistsError(f"too many reports named {base} in {root}")


def write_report(result: BenchResult, root: str | Path = "reports") -> Path:
    """Write every report file for ``result`` into a new directory under ``root``; return it."""
    from aml_client.bench import render  # the HTML/Markdown layer, only needed here

    summary = summarize(result)
    directory = _new_dir(Path(root), result.started_at, summary["endpoint"])
    summary["report_id"] = directory.name
    (directory / "summary.json").write_text(
        json.dumps(summary, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    write_hgrm(result.latency, directory / "latency.hgrm")
    if result.corrected is not None:
        write_hgrm(result.corrected, directory / "corrected.hgrm")
    write_hlog(
        result.intervals,
        result.started_at,
        directory / "latency.hlog",
        comment=(
            "[amlc: intervals hold corrected latency, intended start -> reply]"
            if result.corrected is not None
            else "[amlc: intervals hold latency, send -> reply]"
        ),
    )
    (directory / "report.md").write_text(render.markdown(summary), encoding="utf-8")
    (directory / "report.html").write_text(render.html(summary), encoding="utf-8")
    return directory


# -- reading back --------------------------------------------------------------------------------
def load_summary(path: str | Path) -> dict[str, Any]:
    """The summary of a stored run (a report directory or its summary.json).

    Adds ``report_dir`` (where it was read from). Raises :class:`InputError` when missing/invalid.
    """
    target = Path(path)
    file = target / "summary.json" if target.is_dir() else target
    if not file.exists():
        raise InputError("no benchmark report here (summary.json not found)", path=str(target))
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", path=str(file), line=exc.lineno) from exc
    if not isinstance(data, dict) or "latency" not in data or "requests" not in data:
        raise InputError("not an amlc benchmark summary", path=str(file))
    data["report_dir"] = str(file.parent)
    data.setdefault("report_id", file.parent.name)
    return data


def list_reports(root: str | Path = "reports") -> list[dict[str, Any]]:
    """Summaries of the runs under ``root``, oldest first (unreadable directories skipped)."""
    base = Path(root)
    if not base.is_dir():
        return []
    found = []
    for child in sorted(base.iterdir()):
        if (child / "summary.json").is_file():
            try:
                found.append(load_summary(child))
            except InputError:
                continue
    found.sort(key=lambda s: (s.get("started_at_epoch_s") or 0, s["report_id"]))
    return found


def latest_report(root: str | Path = "reports") -> Path | None:
    """The most recent report directory under ``root``."""
    runs = list_reports(root)
    return Path(runs[-1]["report_dir"]) if runs else None


# -- comparing -----------------------------------------------------------------------------------
#: Relative change below which two figures are called the same (run-to-run noise).
SAME_WITHIN_PCT = 1.0
_LATENCY_ROWS = ("min", "mean", "stdev", *(_pkey(p) for p in PERCENTILES), "max")


def _row(metric: str, unit: str, a: Any, b: Any, better: str) -> dict[str, Any]:
    row: dict[str, Any] = {"metric": metric, "unit": unit, "a": a, "b": b, "better": better}
    if isinstance(a, int | float) and isinstance(b, int | float):
        change = b - a
        pct = (change / a * 100.0) if a else (0.0 if change == 0 else None)
        row["change"] = round(change, 6)
        row["change_pct"] = round(pct, 2) if pct is not None else None
        if pct is not None and abs(pct) < SAME_WITHIN_PCT:
            verdict = "same"
        elif (change < 0) == (better == "lower"):
            verdict = "better"
        else:
            verdict = "worse"
        row["verdict"] = verdict if better != "none" else "n/a"
    else:
        row.update(change=None, change_pct=None, verdict="n/a")
    return row


def _latency_rows(a: dict[str, Any] | None, b: dict[str, Any] | None) -> list[dict[str, Any]]:
    rows = []
    for name in _LATENCY_ROWS:
        key = f"{name}_ms"
        better = "none" if name == "stdev" else "lower"
        rows.append(_row(name, "ms", (a or {}).get(key), (b or {}).get(key), better))
    rows.append(_row("samples", "", (a or {}).get("samples"), (b or {}).get("samples"), "none"))
    return rows


def _side(summary: dict[str, Any]) -> dict[str, Any]:
    return {
        key: summary.get(key)
        for key in ("report_id", "report_dir", "endpoint", "mode", "started_at", "duration_s")
    }


def compare(a: dict[str, Any] | str | Path, b: dict[str, Any] | str | Path) -> dict[str, Any]:
    """Two runs side by side: every figure of A and B, the change B - A (absolute and %).

    ``verdict`` is ``better``/``worse`` for B against A, ``same`` within 1 %.
    """
    sa = a if isinstance(a, dict) else load_summary(a)
    sb = b if isinstance(b, dict) else load_summary(b)
    overall = [
        _row("requests", "", sa.get("requests"), sb.get("requests"), "none"),
        _row("throughput", "req/s", sa.get("throughput_rps"), sb.get("throughput_rps"), "higher"),
        _row("error_rate", "%", _pct(sa.get("error_rate")), _pct(sb.get("error_rate")), "lower"),
        _row("duration", "s", sa.get("duration_s"), sb.get("duration_s"), "none"),
    ]
    sections = [
        {"name": "overall", "title": "overall", "rows": overall},
        {
            "name": "latency",
            "title": "latency, send -> reply (ms)",
            "rows": _latency_rows(sa.get("latency"), sb.get("latency")),
        },
    ]
    if sa.get("corrected") or sb.get("corrected"):
        sections.append({
            "name": "corrected",
            "title": "corrected latency, intended start -> reply (ms)",
            "rows": _latency_rows(sa.get("corrected"), sb.get("corrected")),
        })
    notes = []
    if sa.get("mode") != sb.get("mode"):
        notes.append(f"different load models: A is {sa.get('mode')}, B is {sb.get('mode')}")
    if sa.get("endpoint") != sb.get("endpoint"):
        notes.append(f"different endpoints: A is {sa.get('endpoint')}, B is {sb.get('endpoint')}")
    return {"a": _side(sa), "b": _side(sb), "sections": sections, "notes": notes}


def _pct(fraction: Any) -> float | None:
    return round(fraction * 100.0, 4) if isinstance(fraction, int | float) else None
