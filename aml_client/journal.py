"""Durable progress of a batch run: the journal beside the output, and files that commit.

A batch run writes its results to ``<output>.partial`` (and ``<errors>.partial``), appends to
them only in input order, and after each group of batches flushes and fsyncs them and then
appends one line to ``<output>.journal``::

    {"kind": "start", "version": 2, "input": {"path": ...}, ...}
    {"kind": "commit", "rows": 4200, "out": 1048576, "err": 0, "rows_out": 4200,
     "input_offset": 912345, "input_line": 4201, "input_sha256": "…", ...}
    ...
    {"kind": "done", ...}

The journal is append-only JSONL, fsynced after every line. A commit line is written only after
the bytes it counts are on disk, so whatever happens next (Ctrl-C, ``kill -9``, power loss) the
last complete commit line names a consistent state: the first ``rows`` input rows are finished,
and the partial files are valid up to ``out`` / ``err`` bytes. Resuming truncates them there
(dropping results written but never committed) and carries on from row ``rows``. A torn last
line, from a crash in the middle of a write, is ignored.

Each commit also says where those rows end in the input (``input_offset``, ``input_line``) and
hashes the input up to there (:class:`PrefixHash`). A resume checks that hash, not the whole
file: rows after the committed prefix may be fixed or added, and the run seeks straight to
the first unfinished row; a change inside the prefix is refused.

At the end the partial files are renamed over the real names, atomically, so a reader never
sees a half-written output; then the journal is removed, and a :class:`Completion` record (in
amlc's state directory, keyed by the output's path) keeps what the finished run was: its
settings, counts, and the SHA-256 of its input, output and errors file. A resume that finds no
journal but that record, matching the files as they are, has nothing left to do and sends
nothing.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from aml_client import paths
from aml_client.errors import InputError

JOURNAL_VERSION = 2
COMPLETION_VERSION = 1
JOURNAL_SUFFIX = ".journal"
PARTIAL_SUFFIX = ".partial"
_BLOCK_BYTES = 1 << 20


def journal_path(output_path: str | Path) -> Path:
    """Where the journal of a run writing ``output_path`` lives."""
    output = Path(output_path)
    return output.with_name(output.name + JOURNAL_SUFFIX)


def partial_path(final_path: str | Path) -> Path:
    """Where results are written before they are complete."""
    final = Path(final_path)
    return final.with_name(final.name + PARTIAL_SUFFIX)


class PrefixHash:
    """A running SHA-256 of an input's first bytes, extended as its rows are committed.

    Committed rows are hashed from the file itself (page-cached, in the commit's thread), so
    the reader never keeps their bytes.
    """

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.offset = 0
        self._hash = hashlib.sha256()

    def extend_to(self, offset: int) -> str:
        """Hash the file up to ``offset``; returns the hex digest of ``[0, offset)``."""
        if offset > self.offset:
            with self.path.open("rb") as handle:
                handle.seek(self.offset)
                left = offset - self.offset
                while left > 0:
                    block = handle.read(min(left, _BLOCK_BYTES))
                    if not block:
                        break
                    self._hash.update(block)
                    left -= len(block)
                    self.offset += len(block)
        return self._hash.hexdigest()

    def matches(self, offset: int, digest: str) -> bool:
        """Whether the file's first ``offset`` bytes still hash to ``digest``."""
        return self.extend_to(offset) == digest and self.offset == offset


@dataclass
class Checkpoint:
    """A consistent state: ``rows`` input rows finished, files valid up to these offsets."""

    rows: int = 0
    out: int = 0
    err: int = 0
    rows_out: int = 0
    rows_failed: int = 0
    batches: int = 0
    retries: int = 0
    #: the input's first ``input_offset`` bytes (``input_line`` lines) hold these rows
    input_offset: int = 0
    input_line: int = 0
    input_sha256: str = ""


@dataclass
class JournalState:
    """What a journal says about an earlier run."""

    header: dict[str, Any]
    checkpoint: Checkpoint
    done: bool = False
    #: bytes of the journal that hold complete lines (anything after is a torn write)
    valid_bytes: int = 0
    commits: list[Checkpoint] = field(default_factory=list)


def _fsync_dir(directory: Path) -> None:
    # Makes a create/rename durable; not every platform can open a directory.
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def read_journal(path: str | Path) -> JournalState:
    """Parse a journal, stopping at the first incomplete or unreadable line."""
    path = Path(path)
    data = path.read_bytes()
    header: dict[str, Any] | None = None
    checkpoint = Checkpoint()
    commits: list[Checkpoint] = []
    done = False
    valid = 0
    position = 0
    while position < len(data):
        end = data.find(b"\n", position)
        if end < 0:
            break
        try:
            record = json.loads(data[position:end])
        except ValueError:
            break
        if not isinstance(record, dict):
            break
        kind = record.get("kind")
        if header is None:
            if kind != "start":
                break
            header = record
        elif kind in ("commit", "done"):
            try:
                checkpoint = _checkpoint(record)
            except (TypeError, ValueError):
                break
            commits.append(checkpoint)
            done = kind == "done"
        position = end + 1
        valid = position
    if header is None:
        raise InputError("not a batch journal (no start record)", path=str(path))
    if header.get("version") != JOURNAL_VERSION:
        version = header.get("version")
        raise InputError(
            f"journal version {version} is not supported (written by another amlc version): "
            "delete it to start over",
            path=str(path),
        )
    return JournalState(header, checkpoint, done, valid, commits)


def _checkpoint(record: dict[str, Any]) -> Checkpoint:
    fields: dict[str, Any] = {}
    for name, default in asdict(Checkpoint()).items():
        if name in record:
            value = record[name]
            fields[name] = str(value) if isinstance(default, str) else int(value)
    return Checkpoint(**fields)


class Journal:
    """The append-only, fsynced log of committed progress."""

    def __init__(self, path: Path, handle: BinaryIO):
        self.path = path
        self._handle = handle

    @classmethod
    def create(cls, path: str | Path, header: dict[str, Any]) -> Journal:
        """Start a new journal; fails if one exists (that run is unfinished)."""
        path = Path(path)
        handle = path.open("xb")
        journal = cls(path, handle)
        journal._append({"kind": "start", "version": JOURNAL_VERSION, **header})
        _fsync_dir(path.parent)
        return journal

    @classmethod
    def reopen(cls, path: str | Path) -> tuple[Journal, JournalState]:
        """Open an existing journal for appending, cutting off a torn last line first."""
        path = Path(path)
        state = read_journal(path)
        handle = path.open("r+b")
        handle.truncate(state.valid_bytes)
        handle.seek(state.valid_bytes)
        return cls(path, handle), state

    def _append(self, record: dict[str, Any]) -> None:
        self._handle.write(json.dumps(record, separators=(",", ":")).encode() + b"\n")
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def commit(self, checkpoint: Checkpoint) -> None:
        """Record that everything counted in ``checkpoint`` is on disk."""
        self._append({"kind": "commit", **asdict(checkpoint)})

    def finish(self, checkpoint: Checkpoint) -> None:
        """Record that the run is complete (the files are about to be renamed)."""
        self._append({"kind": "done", **asdict(checkpoint)})

    def close(self) -> None:
        self._handle.close()

    def remove(self) -> None:
        """Delete the journal once the finished files are in place."""
        self.close()
        self.path.unlink(missing_ok=True)
        _fsync_dir(self.path.parent)


class CommittedFile:
    """An output written to ``<name>.partial``, committed by offset, renamed when complete."""

    def __init__(self, final_path: str | Path, *, resume_at: int | None = None):
        self.final_path = Path(final_path)
        self.partial_path = partial_path(self.final_path)
        self.final_path.parent.mkdir(parents=True, exist_ok=True)
        if resume_at is None:
            self._handle: BinaryIO = self.partial_path.open("w+b")
        else:
            try:
                self._handle = self.partial_path.open("r+b")
            except FileNotFoundError:
                if resume_at:
                    raise InputError(
                        f"{resume_at} committed bytes are missing: the partial file is gone; "
                        "remove the journal to start over",
                        path=str(self.partial_path),
                    ) from None
                self._handle = self.partial_path.open("w+b")
            size = os.fstat(self._handle.fileno()).st_size
            if size < resume_at:
                self._handle.close()
                raise InputError(
                    f"shorter ({size} bytes) than its last commit ({resume_at} bytes); "
                    "remove the journal to start over",
                    path=str(self.partial_path),
                )
            # Results written after the last commit were never promised to anyone: drop them.
            self._handle.truncate(resume_at)
            self._handle.seek(resume_at)

    def write(self, data: bytes) -> None:
        if data:
            self._handle.write(data)

    def sync(self) -> int:
        """Flush to disk; returns the offset that is now safe to commit."""
        self._handle.flush()
        os.fsync(self._handle.fileno())
        return self._handle.tell()

    def finalise(self, trailer: bytes = b"") -> None:
        """Append ``trailer`` and atomically move the partial file to its real name."""
        self.write(trailer)
        self.sync()
        self._handle.close()
        os.replace(self.partial_path, self.final_path)
        _fsync_dir(self.final_path.parent)

    def discard(self) -> None:
        """Remove the partial file (nothing worth keeping was written)."""
        self._handle.close()
        self.partial_path.unlink(missing_ok=True)

    def close(self) -> None:
        """Close without finishing: the partial file stays for a resume."""
        if not self._handle.closed:
            self._handle.close()


# -- finished runs -------------------------------------------------------------------------------


@dataclass
class Completion:
    """What a finished run wrote: enough to tell, later, that its files are still its own."""

    #: the run's settings, as in the journal's start record
    header: dict[str, Any]
    checkpoint: Checkpoint
    input_size: int
    input_sha256: str
    output_sha256: str
    #: None when no row failed (and so no errors file was written)
    errors_sha256: str | None


def completion_path(output_path: str | Path) -> Path:
    """Where the record of the finished run that wrote ``output_path`` is kept."""
    key = hashlib.sha256(str(Path(output_path).resolve()).encode("utf-8")).hexdigest()[:32]
    return paths.state_dir() / "batch-runs" / f"{key}.json"


def file_sha256(path: str | Path) -> str | None:
    """The SHA-256 of a whole file, or None when there is no such file."""
    digest = hashlib.sha256()
    try:
        with Path(path).open("rb") as handle:
            while block := handle.read(_BLOCK_BYTES):
                digest.update(block)
    except FileNotFoundError:
        return None
    return digest.hexdigest()


def record_completion(output_path: str | Path, completion: Completion) -> None:
    """Keep the record of a finished run (replacing an earlier run's)."""
    record = {"version": COMPLETION_VERSION, **asdict(completion)}
    paths.write_private(completion_path(output_path), json.dumps(record, indent=1) + "\n")


def read_completion(output_path: str | Path) -> Completion | None:
    """The record of the finished run that wrote ``output_path``; None when there is none (or
    it cannot be read: then nothing is known about the output)."""
    try:
        record = json.loads(completion_path(output_path).read_text(encoding="utf-8"))
        if not isinstance(record, dict) or record.get("version") != COMPLETION_VERSION:
            return None
        errors_sha = record["errors_sha256"]
        return Completion(
            header=dict(record["header"]),
            checkpoint=_checkpoint(dict(record["checkpoint"])),
            input_size=int(record["input_size"]),
            input_sha256=str(record["input_sha256"]),
            output_sha256=str(record["output_sha256"]),
            errors_sha256=None if errors_sha is None else str(errors_sha),
        )
    except (OSError, ValueError, TypeError, KeyError):
        return None
