"""The journal of a batch run: commits, torn lines, committed files and input positions."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aml_client import errors
from aml_client.journal import (
    Checkpoint,
    CommittedFile,
    Journal,
    PrefixHash,
    journal_path,
    partial_path,
    read_journal,
)


def test_journal_records_commits_and_ignores_a_torn_last_line(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "out.csv")
    assert path.name == "out.csv.journal"
    journal = Journal.create(path, {"input": {"path": "x"}})
    journal.commit(Checkpoint(rows=100, out=2000, rows_out=99, rows_failed=1, batches=1))
    journal.commit(Checkpoint(rows=200, out=4000, rows_out=199, rows_failed=1, batches=2))
    journal.close()
    with path.open("ab") as handle:  # a crash in the middle of the third commit
        handle.write(b'{"kind":"commit","rows":300,"out":60')
    state = read_journal(path)
    assert state.checkpoint == Checkpoint(
        rows=200, out=4000, rows_out=199, rows_failed=1, batches=2
    )
    assert not state.done
    assert state.header["input"] == {"path": "x"}

    reopened, state = Journal.reopen(path)
    reopened.commit(Checkpoint(rows=300, out=6000, rows_out=299, rows_failed=1, batches=3))
    reopened.finish(Checkpoint(rows=300, out=6000, rows_out=299, rows_failed=1, batches=3))
    reopened.close()
    lines = path.read_bytes().splitlines()
    assert all(json.loads(line) for line in lines)  # the torn tail was cut, not continued
    final = read_journal(path)
    assert final.done and final.checkpoint.rows == 300
    assert [c.rows for c in final.commits] == [100, 200, 300, 300]


def test_journal_refuses_to_overwrite_and_to_read_garbage(tmp_path: Path) -> None:
    path = tmp_path / "out.csv.journal"
    Journal.create(path, {}).close()
    with pytest.raises(FileExistsError):
        Journal.create(path, {})
    path.write_text("hello\n")
    with pytest.raises(errors.InputError, match="not a batch journal"):
        read_journal(path)
    path.write_text('{"kind": "start", "version": 99}\n')
    with pytest.raises(errors.InputError, match="version 99"):
        read_journal(path)


def test_committed_file_truncates_uncommitted_bytes_and_renames_atomically(tmp_path: Path) -> None:
    final = tmp_path / "out.csv"
    out = CommittedFile(final)
    out.write(b"a,b\n1,2\n")
    committed = out.sync()
    out.write(b"3,4\n")  # written, never committed: a kill -9 here
    out.close()
    assert not final.exists()
    resumed = CommittedFile(final, resume_at=committed)
    resumed.write(b"5,6\n")
    resumed.finalise()
    assert final.read_bytes() == b"a,b\n1,2\n5,6\n"
    assert not partial_path(final).exists()


def test_committed_file_notices_a_partial_file_shorter_than_its_commit(tmp_path: Path) -> None:
    final = tmp_path / "out.csv"
    partial_path(final).write_bytes(b"abc")
    with pytest.raises(errors.InputError, match="shorter"):
        CommittedFile(final, resume_at=10)
    partial_path(final).unlink()
    with pytest.raises(errors.InputError, match="missing"):
        CommittedFile(final, resume_at=10)


def test_prefix_hash_checks_only_the_committed_prefix(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_bytes(b"a\n1\n2\n3\n")
    committed = PrefixHash(source)
    digest = committed.extend_to(6)  # "a\n1\n2\n": the header and two rows
    assert committed.extend_to(6) == digest and committed.offset == 6
    source.write_bytes(b"a\n1\n2\n33\n4\n")  # the tail changed and grew: still resumable
    assert PrefixHash(source).matches(6, digest)
    source.write_bytes(b"a\n9\n2\n3\n")  # a committed row changed
    assert not PrefixHash(source).matches(6, digest)
    source.write_bytes(b"a\n1\n")  # shorter than the committed prefix
    assert not PrefixHash(source).matches(6, digest)


def test_journal_keeps_the_input_position_of_each_commit(tmp_path: Path) -> None:
    path = journal_path(tmp_path / "out.csv")
    journal = Journal.create(path, {})
    checkpoint = Checkpoint(rows=2, input_offset=6, input_line=3, input_sha256="ab" * 32)
    journal.commit(checkpoint)
    journal.close()
    assert read_journal(path).checkpoint == checkpoint


def test_a_completion_record_round_trips_and_a_damaged_one_is_ignored(tmp_path: Path) -> None:
    from aml_client.journal import (
        Completion,
        completion_path,
        file_sha256,
        read_completion,
        record_completion,
    )

    out = tmp_path / "out.csv"
    out.write_text("a,prediction\n1,yes\n")
    assert read_completion(out) is None
    done = Completion(
        header={"format": "csv", "drop_columns": ["y"]},
        checkpoint=Checkpoint(rows=1, out=18, rows_out=1, batches=1),
        input_size=4,
        input_sha256="ab" * 32,
        output_sha256=str(file_sha256(out)),
        errors_sha256=None,
    )
    record_completion(out, done)
    assert read_completion(out) == done
    assert completion_path(out).stat().st_mode & 0o077 == 0
    assert file_sha256(tmp_path / "absent") is None
    for damaged in ("", "{", '{"version": 1}', '{"version": 99, "header": {}}', "[]"):
        completion_path(out).write_text(damaged)
        assert read_completion(out) is None, damaged
