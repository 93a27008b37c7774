"""Batch scoring against the real local endpoint (Microsoft's inference server, two workers)."""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path

from aml_client import KeyCredential
from aml_client.batch import score_file
from aml_client.client import Endpoint
from aml_client.config import Target

DATA = Path(__file__).resolve().parents[2] / "aml_client" / "local" / "data"
ROWS = 3000


def _bank_rows(n: int) -> tuple[list[str], list[list[str]]]:
    with gzip.open(DATA / "bankmarketing_train.csv.gz", "rt", encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        header = next(reader)
        keep = [i for i, name in enumerate(header) if name != "y"]
        rows = []
        for values in reader:
            rows.append([values[i] for i in keep])
            if len(rows) == n:
                break
    return [header[i] for i in keep], rows


def test_a_few_thousand_real_rows_through_the_local_endpoint(
    tmp_path: Path, local_endpoint
) -> None:
    header, rows = _bank_rows(ROWS)
    rows[1234][header.index("age")] = "abc"  # refused before sending
    source = tmp_path / "bank.csv"
    with source.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    target = Target(
        "local",
        local_endpoint.scoring_uri,
        local_endpoint.swagger_uri,
        KeyCredential(local_endpoint.primary_key),
        source="test",
    )
    out = tmp_path / "predictions.csv"

    summary = score_file(target, str(source), str(out), batch_size=250, concurrency="auto")

    assert (summary.rows_in, summary.rows_out, summary.rows_failed) == (ROWS, ROWS - 1, 1)
    with out.open(newline="", encoding="utf-8") as handle:
        scored = list(csv.DictReader(io.StringIO(handle.read())))
    assert len(scored) == ROWS - 1
    assert list(scored[0])[: len(header)] == header
    kept = [r for i, r in enumerate(rows) if i != 1234]
    assert [[r[c] for c in header] for r in scored] == kept  # input order, input text
    assert {r["prediction"] for r in scored} <= {"yes", "no"}
    failed = [json.loads(line) for line in (tmp_path / "predictions.errors.jsonl").open()]
    assert [(f["row"], f["kind"]) for f in failed] == [(1235, "validation")]

    # The same rows, one plain request: the batch run changed no prediction.
    with Endpoint(target.scoring_uri, target.credential, swagger_uri=target.swagger_uri) as ep:
        sample = [dict(zip(header, r, strict=True)) for r in kept[:300]]
        direct = ep.score(sample, coerce=True).predictions
    assert [r["prediction"] for r in scored[:300]] == direct
