"""One load process's results as files: written where it ran, merged exactly anywhere.

Every load process (a local run, a worker, an Azure Load Testing engine, a Kubernetes pod) can
leave a *results directory*:

* ``identity.json`` — who measured: engine name, host, pid, role, start and end (wall clock),
  amlc version, the plan and target description (never a credential);
* ``recording.json`` — the process's measurements as the load processes ship them to a master
  (:meth:`~aml_client.bench.recording.Recording.encode`): every histogram encoded in
  HdrHistogram's compressed form, exact sums and extremes, failures by kind, windows;
* HdrHistogram interval logs (``*.hlog``), readable by HdrHistogram's own tools:
  ``latency.hlog`` (the run's windows), ``total.hlog``, ``corrected.hlog``, ``slip.hlog``,
  ``phase-<name>.hlog`` (one interval spanning the process's run); the same set prefixed
  ``deployment-<name>-`` for each deployment of a blue/green run, and ``answered-<name>.hlog``
  per deployment that answered (``azureml-model-deployment``);
* ``summary.json`` — the partial summary of this process alone.

Where files cannot be collected (a pod, a managed engine), the same directory travels in the
process's log: :func:`log_lines` prints each file as numbered, compressed lines after a
:data:`MARKER`, and :func:`read_log` rebuilds the directories from a saved log (``kubectl logs``,
an Azure Load Testing engine log).
"""

from __future__ import annotations

import base64
import json
import re
import shutil
import tempfile
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from aml_client.bench.hdr import LatencyRecorder
from aml_client.bench.recording import Recording
from aml_client.bench.report.files import read_hlog, write_hlog
from aml_client.bench.result import Interval
from aml_client.errors import InputError

__all__ = [
    "FORMAT",
    "MARKER",
    "Identity",
    "ResultsDir",
    "log_lines",
    "read_log",
    "read_results",
    "write_results",
]

#: The directory layout's version, in ``identity.json``.
FORMAT = "amlc-results/1"
#: Starts every log line that carries a results file (anywhere in the line: log prefixes stay).
MARKER = "AMLC-RESULTS"
#: Characters of encoded data per log line: well under the 16 KiB at which container
#: runtimes split a line.
LOG_CHUNK = 3000
#: Largest results file read back (a results directory holds a few MB at most).
MAX_FILE_BYTES = 256 * 1024 * 1024
_MANIFEST = "_files"
_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_LINE = re.compile(
    MARKER + r" 1 ([A-Za-z0-9._-]{1,128}) ([A-Za-z0-9._-]{1,64}) (\d{1,6})/(\d{1,6})"
    r" ([A-Za-z0-9+/=]*)"
)


def safe_name(text: str, limit: int = 64) -> str:
    """A file-name-safe form of ``text`` (letters, digits, ``._-``)."""
    return _NAME.sub("-", text).strip("-.")[:limit] or "x"


@dataclass
class Identity:
    """Who measured what, and when (wall-clock epoch seconds)."""

    engine: str
    host: str
    pid: int
    role: str
    started_at: float
    ended_at: float
    amlc_version: str
    #: Locust's id of a worker (``runner.client_id``); a master lists its workers' ids
    node_id: str | None = None
    workers: list[str] = field(default_factory=list)
    #: the plan and the target's description (``RunTarget.describe()``: no credential)
    config: dict[str, Any] = field(default_factory=dict)
    format: str = FORMAT

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str) -> Identity:
        if data.get("format") != FORMAT:
            raise InputError(f"not an amlc results directory (format {data.get('format')!r}, "
                             f"expected {FORMAT!r})", path=source)
        try:
            return cls(
                engine=safe_name(str(data["engine"]), 128),
                host=str(data["host"])[:255],
                pid=int(data["pid"]),
                role=str(data["role"])[:16],
                started_at=float(data["started_at"]),
                ended_at=float(data["ended_at"]),
                amlc_version=str(data["amlc_version"])[:32],
                node_id=str(data["node_id"])[:255] if data.get("node_id") else None,
                workers=[str(w)[:255] for w in data.get("workers") or []],
                config=dict(data.get("config") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise InputError(f"identity.json: bad or missing field ({exc})", path=source) from exc


@dataclass
class ResultsDir:
    """A results directory read back: its identity and its measurements."""

    identity: Identity
    recording: Recording
    source: str


def _interval(recorder: LatencyRecorder, start: float, end: float) -> Interval:
    return Interval(start, max(end, start), recorder, recorder.count, 0)


def write_results(
    root: str | Path, identity: Identity, recording: Recording,
    summary: dict[str, Any] | None = None,
) -> Path:
    """Write ``recording`` as the results directory ``root/<engine>``; return it.

    The files go to ``<engine>.partial`` first, renamed once all are written: a process
    stopped while writing leaves a directory that says it is partial, never one that looks
    complete and is not."""
    final = Path(root) / safe_name(identity.engine, 128)
    directory = final.with_name(final.name + ".partial")
    shutil.rmtree(directory, ignore_errors=True)
    directory.mkdir(parents=True)
    start, end = identity.started_at, identity.ended_at
    (directory / "identity.json").write_text(
        json.dumps(asdict(identity), indent=1, default=str), encoding="utf-8")
    (directory / "recording.json").write_text(
        json.dumps(recording.encode(), separators=(",", ":")), encoding="utf-8")
    _write_hlogs(directory, "", identity, recording)
    for name, sub in recording.by_deployment.items():
        _write_hlogs(directory, f"deployment-{safe_name(name)}-", identity, sub)
    for name, stats in recording.deployments.items():
        write_hlog([_interval(stats.latency, start, end)], start,
                   directory / f"answered-{safe_name(name)}.hlog",
                   comment=f"[amlc: {identity.engine}: answered by {safe_name(name)}]")
    if summary is not None:
        (directory / "summary.json").write_text(json.dumps(summary, indent=1),
                                                encoding="utf-8")
    if final.exists():
        shutil.rmtree(final)
    directory.rename(final)
    return final


def _write_hlogs(directory: Path, prefix: str, identity: Identity, recording: Recording) -> None:
    """Every histogram of ``recording``: its windows, and each whole-run histogram."""
    start, end = identity.started_at, identity.ended_at
    what = "corrected latency, intended start -> reply" if recording.corrected is not None \
        else "latency, send -> reply"
    write_hlog(recording.series.intervals(start, end), start, directory / f"{prefix}latency.hlog",
               comment=f"[amlc: {identity.engine}: {prefix}windows of {what}]")
    whole = {"total": recording.latency, "slip": recording.slip}
    if recording.corrected is not None:
        whole["corrected"] = recording.corrected
    whole.update({f"phase-{name}": rec for name, rec in recording.phases.items()})
    for stem, recorder in whole.items():
        write_hlog([_interval(recorder, start, end)], start, directory / f"{prefix}{stem}.hlog",
                   comment=f"[amlc: {identity.engine}: {prefix}{stem}, whole run]")


def _load_json(data: bytes, source: str) -> Any:
    try:
        return json.loads(data)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"not valid JSON: {exc}", path=source) from exc


def _from_files(files: dict[str, bytes], source: str) -> ResultsDir:
    for needed in ("identity.json", "recording.json"):
        if needed not in files:
            raise InputError(f"not an amlc results directory ({needed} missing)", path=source)
    identity = Identity.from_dict(_load_json(files["identity.json"], source), source)
    data = _load_json(files["recording.json"], source)
    recording = Recording(open_model=data.get("corrected") is not None)
    try:
        recording.merge_delta(data)
    except (KeyError, TypeError, ValueError, zlib.error) as exc:
        raise InputError(f"recording.json: unreadable measurements ({exc})",
                         path=source) from exc
    return ResultsDir(identity, recording, source)


def _check_total(results: ResultsDir, hlog: Path) -> None:
    """The whole-run interval log must hold exactly the recorded samples."""
    intervals = read_hlog(hlog)
    count = sum(int(i.histogram.get_total_count()) for i in intervals)
    if count != results.recording.latency.count:
        raise InputError(
            f"total.hlog holds {count} samples but recording.json "
            f"{results.recording.latency.count}: the directory is incomplete", path=str(hlog))


def read_results(path: str | Path) -> ResultsDir:
    """A results directory written by :func:`write_results` (checked for consistency)."""
    directory = Path(path)
    files = {}
    for name in ("identity.json", "recording.json"):
        file = directory / name
        if file.is_file():
            if file.stat().st_size > MAX_FILE_BYTES:
                raise InputError("file too large for a results directory", path=str(file))
            files[name] = file.read_bytes()
    results = _from_files(files, str(directory))
    if (directory / "total.hlog").is_file():
        _check_total(results, directory / "total.hlog")
    return results


def log_lines(directory: str | Path) -> Iterator[str]:
    """The results directory as log lines: ``AMLC-RESULTS 1 <engine> <file> <i>/<n> <data>``
    (each file zlib-compressed, base64, cut in :data:`LOG_CHUNK` pieces)."""
    base = Path(directory)
    engine = safe_name(base.name, 128)
    names = []
    for file in sorted(p for p in base.iterdir() if p.is_file()):
        names.append(safe_name(file.name))
        blob = base64.b64encode(zlib.compress(file.read_bytes(), 9)).decode("ascii")
        pieces = [blob[i:i + LOG_CHUNK] for i in range(0, len(blob), LOG_CHUNK)] or [""]
        for index, piece in enumerate(pieces, 1):
            yield f"{MARKER} 1 {engine} {names[-1]} {index}/{len(pieces)} {piece}"
    # Last: the list of files, so a log cut short is detected rather than read as complete.
    manifest = base64.b64encode(zlib.compress(json.dumps(names).encode())).decode("ascii")
    yield f"{MARKER} 1 {engine} {_MANIFEST} 1/1 {manifest}"


def read_log(path: str | Path, lines: Iterable[str] | None = None) -> list[ResultsDir]:
    """Every results directory printed in a log file (see :func:`log_lines`), in order."""
    source = str(path)
    chunks: dict[str, dict[str, dict[int, str]]] = {}
    totals: dict[tuple[str, str], int] = {}
    if lines is None:
        try:
            handle = open(path, encoding="utf-8", errors="replace")  # noqa: SIM115
        except OSError as exc:
            raise InputError(f"cannot read: {exc}", path=source) from exc
        with handle:
            return read_log(path, list(handle))
    for line in lines:
        at = line.find(MARKER + " ")
        if at < 0:
            continue
        match = _LINE.match(line, at)
        if match is None:
            continue
        engine, name, index, total = match[1], match[2], int(match[3]), int(match[4])
        chunks.setdefault(engine, {}).setdefault(name, {})[index] = match[5]
        totals[(engine, name)] = total
    if not chunks:
        raise InputError(f"no {MARKER} lines in this log", path=source)
    out = []
    for engine, by_file in chunks.items():
        files = {}
        for name, pieces in by_file.items():
            total = totals[(engine, name)]
            missing = [i for i in range(1, total + 1) if i not in pieces]
            if missing:
                raise InputError(f"{engine}/{name}: {len(missing)} of {total} log lines "
                                 "missing (log cut short?)", path=source)
            try:
                data = zlib.decompressobj().decompress(
                    base64.b64decode("".join(pieces[i] for i in range(1, total + 1))),
                    MAX_FILE_BYTES)
            except (ValueError, zlib.error) as exc:
                raise InputError(f"{engine}/{name}: damaged log lines ({exc})",
                                 path=source) from exc
            files[name] = data
        where = f"{source}#{engine}"
        if _MANIFEST not in files:
            raise InputError(f"{engine}: the results' last line is missing (log cut short?)",
                             path=source)
        listed = _load_json(files.pop(_MANIFEST), where)
        absent = [name for name in listed if name not in files] if isinstance(listed, list) \
            else ["?"]
        if absent:
            raise InputError(f"{engine}: {', '.join(map(str, absent))} missing from the log",
                             path=source)
        results = _from_files(files, where)
        if "total.hlog" in files:
            with tempfile.TemporaryDirectory(prefix="amlc-") as tmp:
                hlog = Path(tmp) / "total.hlog"
                hlog.write_bytes(files["total.hlog"])
                _check_total(results, hlog)
        out.append(results)
    return out
