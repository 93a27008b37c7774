"""Batch scoring's parts that need no server: its options and output formats (the journal and
the limiters are in test_journal.py and test_concurrency.py)."""

from __future__ import annotations

import dataclasses
import json
import typing
from pathlib import Path

import pytest

from aml_client import errors
from aml_client.batch import (
    BatchOptions,
    BatchSettings,
    _OutputFormat,
    _parse_concurrency,
    default_errors_path,
)


def test_concurrency_option() -> None:
    assert _parse_concurrency("auto") is None
    assert _parse_concurrency("AUTO") is None
    assert _parse_concurrency("12") == 12
    assert _parse_concurrency(3) == 3
    for bad in ("0", "many", 0, -1):
        with pytest.raises(errors.ConfigError):
            _parse_concurrency(bad)


def test_options_refuse_bad_values_when_made() -> None:
    with pytest.raises(errors.ConfigError, match="batch size must be at least 1, not 0"):
        BatchOptions(batch_size=0)
    with pytest.raises(errors.ConfigError, match="concurrency must be a number or 'auto'"):
        BatchOptions(concurrency="many")
    assert BatchOptions(drop_columns=iter(["y", "id"])).drop_columns == ("y", "id")


def test_every_option_is_a_keyword_of_score_file() -> None:
    fields = {f.name: f.type for f in dataclasses.fields(BatchOptions)}
    assert typing.get_type_hints(BatchSettings).keys() == fields.keys()
    assert BatchSettings.__optional_keys__ == fields.keys()


def test_default_errors_path() -> None:
    assert default_errors_path("out/predictions.csv") == Path("out/predictions.errors.jsonl")


def test_csv_output_keeps_input_text_and_appends_the_prediction() -> None:
    fmt = _OutputFormat(Path("p.csv"))
    fmt.learn({"id": "7", "prediction": "old", "x": "1.50"})
    assert fmt.prologue() == b"id,prediction,x,_prediction\n"
    data = fmt.encode([({"id": "7", "prediction": "old", "x": "1.50"}, "yes"),
                       ({"id": "8", "prediction": "", "x": "a,b"}, [0.1, 0.9])], 0)
    assert data == b'7,old,1.50,yes\n8,,"a,b","[0.1, 0.9]"\n'


def test_jsonl_and_json_outputs_are_valid_documents() -> None:
    rows = [({"a": 1}, "yes"), ([1, 2], 0.5)]
    jsonl = _OutputFormat(Path("p.jsonl"))
    jsonl.learn(rows[0][0])
    lines = jsonl.encode(rows, 0).decode().splitlines()
    assert [json.loads(line) for line in lines] == [
        {"a": 1, "prediction": "yes"}, {"input": [1, 2], "prediction": 0.5},
    ]
    js = _OutputFormat(Path("p.json"))
    js.learn(rows[0][0])
    text = js.prologue() + js.encode(rows[:1], 0) + js.encode(rows[1:], 1) + js.epilogue(2)
    assert json.loads(text) == [{"a": 1, "prediction": "yes"}, {"input": [1, 2], "prediction": 0.5}]
    empty = _OutputFormat(Path("p.json"))
    assert json.loads(empty.prologue() + empty.epilogue(0)) == []
