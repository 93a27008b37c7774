"""The files of one batch run and what makes it resumable: the input, output and errors paths,
the journal and its partial files, and the record a finished run leaves.

The pipeline of :mod:`aml_client.batch` decides what to write; this decides where, refuses
what could never be written, opens a fresh run or resumes one (or finds it complete), commits,
and finishes or discards.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from aml_client import errors
from aml_client.journal import (
    Checkpoint,
    CommittedFile,
    Completion,
    Journal,
    PrefixHash,
    file_sha256,
    journal_path,
    partial_path,
    read_completion,
    record_completion,
)

__all__ = ["RUN_SETTINGS", "RunFiles"]

log = logging.getLogger("aml_client.batch")

#: Settings that must match for a resume to carry on (or to find the output complete).
RUN_SETTINGS = (
    "input", "encoding", "output", "errors", "format", "method", "coerce", "validate",
    "drop_columns", "ignore_extra_columns",
)


class RunFiles:
    """Where one run reads and writes, and how far it got (``checkpoint``)."""

    def __init__(self, input_path: str, output_path: Path, errors_path: Path, *, resume: bool):
        self.input_path = input_path
        self.output_path = output_path
        self.errors_path = errors_path
        self.resume = resume
        #: the input's hash, extended as rows are committed (None for stdin)
        self.prefix: PrefixHash | None = None
        #: the run's settings as the journal records them (set by :meth:`open`)
        self.header: dict[str, Any] = {}
        self.journal: Journal | None = None
        self.out: CommittedFile | None = None
        self.err: CommittedFile | None = None
        self.checkpoint = Checkpoint()
        self.resumed_rows = 0
        self.retries_before = 0  # counted by the run this one resumes
        self.already_complete = False
        #: journal commits this run made
        self.commits = 0

    def check_paths(self) -> None:
        """Refuse outputs that could never be written, before any row is read or sent."""
        for path, what in ((self.output_path, "output"), (self.errors_path, "errors file")):
            if path.is_dir():
                raise errors.InputError(
                    f"the {what} is a directory; name a file in it, e.g. "
                    f"{path / ('predictions.csv' if what == 'output' else 'errors.jsonl')}",
                    path=str(path),
                )
        if self.input_path != "-":
            source = Path(self.input_path)
            if source.is_dir():
                raise errors.InputError("is a directory, not a file", path=self.input_path)
            if not source.is_file():
                raise errors.InputError("no such file", path=self.input_path)
            for path in (self.output_path, self.errors_path, partial_path(self.output_path)):
                if source.resolve() == path.resolve() or _same_file(source, path):
                    raise errors.InputError(
                        "the output or errors file would overwrite the input",
                        path=self.input_path,
                    )
        if self.output_path.resolve() == self.errors_path.resolve():
            raise errors.ConfigError("the output and errors files must differ")

    def open(self, header: dict[str, Any]) -> bool:
        """Start or resume the journal and partial files; True when the run is already done.

        Opening them is the check that the output can be written at all (a read-only
        directory, ``/proc/x.csv``): it happens before any row is read, on a resume too.
        """
        self.header = header
        if self.input_path != "-":
            self.prefix = PrefixHash(self.input_path)
        path = journal_path(self.output_path)
        if path.exists() and not self.resume:
            raise errors.InputError(
                "an unfinished run left this journal: pass --resume (resume=True) to continue "
                "it, or delete it to start over",
                path=str(path),
            )
        if self.resume and not path.exists() and self._finished_before():
            return True
        try:
            if not path.exists():
                self.out = CommittedFile(self.output_path)
                self.err = CommittedFile(self.errors_path)
                self.journal = Journal.create(path, header)
                return False
            return self._reopen(path)
        except OSError as exc:
            for handle in (self.out, self.err):
                if handle is not None:
                    handle.discard()
            if self.journal is not None:
                self.journal.close()
            failed = Path(exc.filename or self.output_path)
            for final in (self.output_path, self.errors_path):
                if failed == partial_path(final):  # name the file the user asked for
                    failed = final
            raise errors.InputError(
                f"cannot write: {exc.strerror or exc}", path=str(failed)
            ) from None

    def _reopen(self, path: Path) -> bool:
        journal, state = Journal.reopen(path)
        self.journal = journal
        for key in RUN_SETTINGS:
            if state.header.get(key) != self.header[key]:
                journal.close()
                raise errors.InputError(
                    f"cannot resume: {key} differs from the interrupted run's "
                    f"({state.header.get(key)!r}); delete the journal to start over",
                    path=str(path),
                )
        cp = state.checkpoint
        committed = cp.batches > 0  # a run killed before its first commit verifies nothing
        if committed and self.prefix is not None and not self.prefix.matches(
            cp.input_offset, cp.input_sha256
        ):
            journal.close()
            raise errors.InputError(
                f"cannot resume: the input's first {cp.rows:,} rows (its first "
                f"{cp.input_offset:,} bytes), scored by the interrupted run, have changed "
                "since; only rows after them may change. Delete the journal to start over",
                path=self.input_path,
            )
        self.checkpoint = cp
        self.resumed_rows = cp.rows
        self.retries_before = cp.retries
        if state.done:
            self._complete_finished_run()
            return True
        self.out = CommittedFile(self.output_path, resume_at=cp.out)
        self.err = CommittedFile(self.errors_path, resume_at=cp.err)
        log.info("resuming after row %d", cp.rows)
        return False

    def _finished_before(self) -> bool:
        """A resume without a journal: True when a finished run of this very input, with these
        settings, wrote the output and errors file as they are now (nothing to send). An output
        that no such run explains is refused rather than scored again, which a paid endpoint
        would bill twice."""
        if not self.output_path.exists() or self.prefix is None:
            return False  # nothing written yet: a fresh start is the resume
        record = read_completion(self.output_path)
        again = "run without --resume (resume=False) to score every row again"
        if record is None:
            raise errors.InputError(
                f"cannot resume: no journal beside this output, and no finished run is known "
                f"to have written it; {again}",
                path=str(self.output_path),
            )
        for key in RUN_SETTINGS:
            if record.header.get(key) != self.header[key]:
                raise errors.InputError(
                    f"cannot resume: the run that finished this output had another {key} "
                    f"({record.header.get(key)!r}); {again}",
                    path=str(self.output_path),
                )
        size = Path(self.input_path).stat().st_size
        if size != record.input_size or not PrefixHash(self.input_path).matches(
            size, record.input_sha256
        ):
            raise errors.InputError(
                f"cannot resume: the input has changed since the run that finished "
                f"{self.output_path}; {again}",
                path=self.input_path,
            )
        for final, digest in (
            (self.output_path, record.output_sha256),
            (self.errors_path, record.errors_sha256),
        ):
            if file_sha256(final) != digest:
                raise errors.InputError(
                    f"cannot resume: changed since the run that finished it; {again}",
                    path=str(final),
                )
        self.checkpoint = record.checkpoint
        self.resumed_rows = record.checkpoint.rows
        self.already_complete = True
        log.info("already complete: %d rows, nothing sent", record.checkpoint.rows)
        return True

    def sync(self, checkpoint: Checkpoint) -> None:
        """Make the rows written so far durable and commit ``checkpoint`` (fills in its file
        offsets and input hash). Blocks: run it off the event loop."""
        assert self.out is not None and self.err is not None and self.journal is not None
        checkpoint.out = self.out.sync()
        checkpoint.err = self.err.sync()
        if self.prefix is not None:
            checkpoint.input_sha256 = self.prefix.extend_to(checkpoint.input_offset)
        self.journal.commit(checkpoint)
        self.commits += 1

    def finish(self, trailer: bytes) -> None:
        """Rename the outputs into place (``trailer`` closes the output), forget the journal
        and record what this finished run wrote."""
        cp = self.checkpoint
        assert self.journal is not None and self.out is not None and self.err is not None
        self.journal.finish(cp)
        self.out.finalise(trailer)
        if cp.rows_failed:
            self.err.finalise()
        else:
            self.err.discard()
            # an errors file from an earlier run would describe rows this output has
            self.errors_path.unlink(missing_ok=True)
        self.journal.remove()
        self._record_completion()

    def _record_completion(self) -> None:
        """Remember what this finished run wrote, for a later resume to recognise."""
        if self.prefix is None:
            return  # stdin: nothing to compare a later run with
        cp = self.checkpoint
        size = Path(self.input_path).stat().st_size
        output_sha = file_sha256(self.output_path)
        if output_sha is None:
            return
        header = dict(self.header)
        header.pop("started_at", None)
        record_completion(
            self.output_path,
            Completion(
                header=header,
                checkpoint=cp,
                input_size=size,
                input_sha256=self.prefix.extend_to(size),
                output_sha256=output_sha,
                errors_sha256=file_sha256(self.errors_path) if cp.rows_failed else None,
            ),
        )

    def discard_if_nothing_committed(self, *, commit_landing: bool) -> None:
        """A run that failed before its first commit leaves nothing to resume: no journal.
        ``commit_landing``: a first commit may be under way, so the journal is kept."""
        if self.checkpoint.batches or self.commits or self.journal is None:
            return
        if commit_landing:
            return
        for handle in (self.out, self.err):
            if handle is not None:
                handle.discard()
        self.journal.remove()

    def _complete_finished_run(self) -> None:
        """The journal says done: finish the renames a crash may have interrupted."""
        for final in (self.output_path, self.errors_path):
            partial = partial_path(final)
            if not partial.exists():
                continue
            if final == self.errors_path and not self.checkpoint.rows_failed:
                partial.unlink()
            else:
                os.replace(partial, final)
        assert self.journal is not None
        self.journal.remove()
        self._record_completion()

    def close(self) -> None:
        for handle in (self.out, self.err, self.journal):
            if handle is not None:
                handle.close()


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file (a hard link too); False if either does not exist."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False
