"""Report directories: write every file of a run, find and read stored runs back.

A report directory ``reports/<UTC start>-<endpoint>/`` holds:

* ``summary.json`` — the :class:`~aml_client.bench.report.summary.BenchSummary` (versioned);
* ``latency.hgrm`` (and ``corrected.hgrm`` for an open model) — HdrHistogram's standard
  percentile distribution in milliseconds, which HdrHistogram's plotters read;
* ``latency.hlog`` — the per-interval histograms in HdrHistogram's interval log format;
* ``report.html`` (self-contained, plots as inline SVG) and ``report.md``;
* a blue/green run (``--deployments``) adds ``deployment-<name>.hgrm`` and
  ``deployment-<name>.hlog`` for each deployment (its judged latency).

A group of runs (``amlc bench --repeat N``) is a directory ``reports/<UTC start>-<endpoint>-group/``
holding only ``group.json``: the names of its runs, which are report directories beside it.
``amlc report compare`` takes a group as one side.

The numbers come from :mod:`~aml_client.bench.report.summary`, the files from
:mod:`~aml_client.bench.report.files`, the pages from :mod:`~aml_client.bench.report.render`,
comparisons from :mod:`~aml_client.bench.report.compare`. Nothing here imports Locust.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

from aml_client.bench.report.files import write_hgrm, write_hlog
from aml_client.bench.report.summary import BenchSummary, parse_summary
from aml_client.bench.result import BenchResult
from aml_client.errors import InputError

__all__ = [
    "GROUP_FILE", "latest_report", "list_reports", "load_runs", "load_summary", "write_group",
    "write_report",
]

#: The file that makes a directory a group of runs.
GROUP_FILE = "group.json"
#: The most runs a group may name (a group.json is read, not trusted).
MAX_GROUP_RUNS = 1000


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


def write_report(
    result: BenchResult, root: str | Path = "reports", *, summary: BenchSummary | None = None
) -> Path:
    """Write every report file for ``result`` into a new directory under ``root``; return it.

    ``summary`` (default: :func:`summarize` of ``result``) gets its ``report_id`` and
    ``report_dir`` set, so the caller renders the very object that was written.
    """
    from aml_client.bench.report import render  # the HTML/Markdown layer, only needed here

    if summary is None:
        from aml_client.bench.report.summarize import summarize  # numpy, for blue/green verdicts

        summary = summarize(result)
    directory = _new_dir(Path(root), result.started_at, summary.endpoint)
    summary.report_id = directory.name
    summary.report_dir = str(directory)
    (directory / "summary.json").write_text(summary.to_json(), encoding="utf-8")
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
    stems: set[str] = set()
    for index, (name, sub) in enumerate(result.by_deployment.items()):
        # The name is the user's (checked to letters, digits, "._-"): still made a safe slug.
        stem = f"deployment-{_slug(name)}"
        if stem in stems:
            stem = f"{stem}-{index + 1}"
        stems.add(stem)
        judged = sub.corrected if sub.corrected is not None else sub.latency
        write_hgrm(judged, directory / f"{stem}.hgrm")
        write_hlog(sub.intervals, result.started_at, directory / f"{stem}.hlog",
                   comment=f"[amlc: requests pinned to deployment {_slug(name)}]")
    (directory / "report.md").write_text(render.markdown(summary), encoding="utf-8")
    (directory / "report.html").write_text(render.html(summary), encoding="utf-8")
    return directory


def load_summary(path: str | Path) -> BenchSummary:
    """The summary of a stored run (a report directory or its summary.json), any version.

    Sets ``report_dir`` (where it was read from). Raises :class:`InputError` when missing or
    invalid.
    """
    target = Path(path)
    file = target / "summary.json" if target.is_dir() else target
    if not file.exists():
        raise InputError("no benchmark report here (summary.json not found)", path=str(target))
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", path=str(file), line=exc.lineno) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=str(file)) from exc
    summary = parse_summary(data, source=str(file))
    summary.report_dir = str(file.parent)
    if summary.report_id is None:
        summary.report_id = file.parent.name
    return summary


def list_reports(root: str | Path = "reports") -> list[BenchSummary]:
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
    found.sort(key=lambda s: (s.started_at_epoch_s, s.report_id or ""))
    return found


def latest_report(root: str | Path = "reports") -> Path | None:
    """The most recent report directory under ``root``."""
    runs = list_reports(root)
    return Path(runs[-1].report_dir) if runs and runs[-1].report_dir else None


def write_group(root: str | Path, runs: list[Path], *, started_at: float, endpoint: str) -> Path:
    """A new group directory under ``root`` naming ``runs`` (report directories in ``root``)."""
    directory = _new_dir(Path(root), started_at, f"{endpoint} group")
    document = {"kind": "amlc-bench-group", "version": 1, "group_id": directory.name,
                "runs": [run.name for run in runs]}
    (directory / GROUP_FILE).write_text(json.dumps(document, indent=2) + "\n", encoding="utf-8")
    return directory


def _group_members(file: Path) -> list[str]:
    try:
        data = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise InputError(f"not valid JSON: {exc.msg}", path=str(file), line=exc.lineno) from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read: {exc}", path=str(file)) from exc
    runs = data.get("runs") if isinstance(data, dict) else None
    if not isinstance(runs, list) or not runs or len(runs) > MAX_GROUP_RUNS:
        raise InputError(f"'runs' must list 1 to {MAX_GROUP_RUNS} report directories",
                         path=str(file))
    for name in runs:
        # Names of directories beside the group, never a path elsewhere.
        if (not isinstance(name, str) or not name or name in {".", ".."} or "/" in name
                or "\\" in name or "\x00" in name):
            raise InputError(f"'runs' holds {str(name)[:80]!r}, not the name of a report "
                             "directory beside the group", path=str(file))
    return runs


def load_runs(path: str | Path) -> tuple[str | None, list[BenchSummary]]:
    """The run(s) at ``path``: a report directory (or its summary.json) gives ``(None, [it])``;
    a group directory (or its group.json) gives ``(group id, its runs in order)``."""
    target = Path(path)
    file = target / GROUP_FILE if target.is_dir() else target
    if file.name != GROUP_FILE or not file.is_file():
        return None, [load_summary(target)]
    members = _group_members(file)
    return file.parent.name, [load_summary(file.parent.parent / name) for name in members]
