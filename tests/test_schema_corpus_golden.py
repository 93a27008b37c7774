"""Every corpus swagger reads to the same columns, conventions and example payloads as the
snapshot in ``fixtures/golden/corpus_schemas.json`` (taken with amlc 0.1's reader), so a change
to the swagger interpreter cannot silently change what amlc sends."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aml_client.schema import load_schema

FIXTURES = Path(__file__).parent / "fixtures"
GOLDEN: dict[str, Any] = json.loads(
    (FIXTURES / "golden" / "corpus_schemas.json").read_text(encoding="utf-8")
)


def snapshot(path: Path) -> dict[str, Any]:
    schema = load_schema(path)
    return {
        "version": schema.version,
        "convention": str(schema.convention),
        "row_kind": schema.row_kind,
        "item_type": schema.item_type,
        "columns": [[c.name, c.type, c.format, c.required, c.nullable] for c in schema.columns],
        "global_parameters": schema.global_parameters,
        "method_field": schema.method_field,
        "output_kind": schema.output_kind,
        "output_item_type": schema.output_item_type,
        "example_payload_1": schema.example_payload(1),
        "example_payload_3": schema.example_payload(3),
    }


def test_snapshot_covers_the_whole_corpus() -> None:
    files = sorted(p.name for p in (FIXTURES / "corpus" / "swagger").glob("*.json"))
    assert files == sorted(GOLDEN)
    assert len(files) == 96


@pytest.mark.parametrize("name", sorted(GOLDEN))
def test_corpus_swagger_matches_snapshot(name: str) -> None:
    got = json.loads(json.dumps(snapshot(FIXTURES / "corpus" / "swagger" / name)))
    assert got == GOLDEN[name]
