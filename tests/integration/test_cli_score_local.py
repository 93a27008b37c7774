"""``amlc score`` / ``amlc health`` against real local endpoints, in both contracts.

The original project's two sample rows (age 17 and age 87, blue-collar, married, …) are sent
as ``{"data": ...}`` to the 2020-era contract and as ``Inputs`` to today's, from JSON, CSV,
JSON Lines and stdin, through the environment, profiles and the local-endpoint fallback.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

Run = Callable[..., Any]
LABELS = {"yes", "no"}

#: The tests of ``local_endpoint_v1`` share one pytest-xdist worker, so it starts once per run.
ON_THE_V1_WORKER = pytest.mark.xdist_group("local-v1")


def score_json(amlc: Run, handle: Any, *args: str, input: str | None = None) -> dict[str, Any]:
    result = amlc("score", *args, "--json", env=handle.env(), input=input)
    assert result.returncode == 0, result.stderr
    data = result.json()
    assert data["rows"] == 2
    assert len(data["predictions"]) == 2
    assert set(data["predictions"]) <= LABELS
    return data


# --------------------------------------------------------------------------- both contracts


@ON_THE_V1_WORKER
def test_v1_contract_with_data_payload(amlc: Run, local_endpoint_v1: Any, samples: Path) -> None:
    """The original data.json against the 2020-era contract, found as the running local one."""
    data = score_json(amlc, local_endpoint_v1, str(samples / "data_v1.json"))
    assert data["endpoint"] == "local"
    assert set(data) == {
        "predictions", "endpoint", "rows", "elapsed_ms", "request_id", "deployment"
    }
    assert data["elapsed_ms"] > 0


def test_inputs_contract_with_inputs_payload(
    amlc: Run, local_endpoint: Any, samples: Path
) -> None:
    data = score_json(amlc, local_endpoint, str(samples / "data_inputs.json"), "-e", "local")
    assert data["endpoint"] == "local"
    assert data["request_id"]
    assert local_endpoint.wait_for_log(data["request_id"]) or local_endpoint.access_log_lines()


@ON_THE_V1_WORKER
def test_either_convention_reaches_either_endpoint(
    amlc: Run, local_endpoint: Any, local_endpoint_v1: Any, samples: Path
) -> None:
    """A payload is unwrapped and re-wrapped in the endpoint's own convention."""
    a = score_json(amlc, local_endpoint, str(samples / "data_inputs.json"))
    b = score_json(amlc, local_endpoint_v1, str(samples / "data_inputs.json"))
    assert a["predictions"] == b["predictions"]


def test_every_input_format_gives_the_same_predictions(
    amlc: Run, local_endpoint: Any, samples: Path
) -> None:
    reference = score_json(amlc, local_endpoint, str(samples / "data_inputs.json"))["predictions"]
    for name in ("rows.csv", "rows.jsonl", "rows_list.json"):
        assert score_json(amlc, local_endpoint, str(samples / name))["predictions"] == reference
    stdin = (samples / "rows.jsonl").read_text()
    assert score_json(amlc, local_endpoint, "-", input=stdin)["predictions"] == reference
    stdin_csv = (samples / "rows.csv").read_text()
    assert score_json(amlc, local_endpoint, "-", input=stdin_csv)["predictions"] == reference


def test_table_output(amlc: Run, local_endpoint: Any, samples: Path) -> None:
    result = amlc("score", str(samples / "rows.csv"), env=local_endpoint.env())
    assert result.returncode == 0, result.stderr
    rows = [line for line in result.stdout.splitlines() if "blue-collar" in line]
    assert len(rows) == 2
    assert "17" in rows[0] and "87" in rows[1]
    assert all(any(label in row for label in LABELS) for row in rows)
    assert local_endpoint.scoring_uri in result.stdout  # which endpoint answered
    assert " ms " in result.stdout
    assert local_endpoint.primary_key not in result.stdout + result.stderr

    chosen = amlc(
        "score", str(samples / "rows.csv"), "--columns", "duration", env=local_endpoint.env()
    )
    assert chosen.returncode == 0, chosen.stderr
    assert "duration" in chosen.stdout and "marital" not in chosen.stdout


def test_predict_proba(amlc: Run, local_endpoint: Any, samples: Path) -> None:
    result = amlc(
        "score", str(samples / "rows.csv"), "--method", "predict_proba", "--json",
        env=local_endpoint.env(),
    )
    assert result.returncode == 0, result.stderr
    predictions = result.json()["predictions"]
    assert len(predictions) == 2
    for probabilities in predictions:
        assert len(probabilities) == 2
        assert sum(probabilities) == pytest.approx(1.0, abs=1e-6)


def test_more_rows_than_a_batch_go_through_the_batch_path(
    amlc: Run, local_endpoint: Any, samples: Path
) -> None:
    reference = score_json(amlc, local_endpoint, str(samples / "rows.csv"))["predictions"]
    batched = score_json(amlc, local_endpoint, str(samples / "rows.csv"), "--batch-size", "1")
    assert batched["predictions"] == reference


# --------------------------------------------------------------------------- -o FILE


def test_output_csv(amlc: Run, local_endpoint: Any, samples: Path, tmp_path: Path) -> None:
    reference = score_json(amlc, local_endpoint, str(samples / "rows.csv"))["predictions"]
    folder = tmp_path / "predictions"
    folder.mkdir()
    out = folder / "out.csv"
    result = amlc("score", str(samples / "rows.csv"), "-o", str(out), env=local_endpoint.env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1  # the summary line, no prediction
    with out.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["age"] for row in rows] == ["17", "87"]
    assert [row["prediction"] for row in rows] == reference
    assert sorted(p.name for p in folder.iterdir()) == ["out.csv"]  # no partial or journal
    assert "2 scored" in result.stdout


@ON_THE_V1_WORKER
def test_output_jsonl_with_json_summary(
    amlc: Run, local_endpoint_v1: Any, samples: Path, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    result = amlc(
        "score", str(samples / "data_v1.json"), "-o", str(out), "--json",
        env=local_endpoint_v1.env(),
    )
    assert result.returncode == 0, result.stderr
    summary = result.json()
    assert (summary["rows_in"], summary["rows_out"], summary["rows_failed"]) == (2, 2, 0)
    assert summary["errors_path"] is None
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["age"] for r in records] == [17, 87]
    assert {r["prediction"] for r in records} <= LABELS


def test_output_with_a_bad_row_keeps_the_good_one(
    amlc: Run, local_endpoint: Any, samples: Path, tmp_path: Path
) -> None:
    out, errors = tmp_path / "out.csv", tmp_path / "bad.jsonl"
    result = amlc(
        "score", str(samples / "bad_age.csv"), "-o", str(out), "--errors", str(errors),
        env=local_endpoint.env(),
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "1 of 2 rows could not be scored" in result.stderr
    with out.open(newline="") as handle:
        assert [row["age"] for row in csv.DictReader(handle)] == ["17"]
    failure = json.loads(errors.read_text().splitlines()[0])
    assert failure["row"] == 2 and "age" in failure["reason"]


# --------------------------------------------------------------------------- failures


def test_wrong_key_is_one_line_exit_3(amlc: Run, local_endpoint: Any, samples: Path) -> None:
    wrong = "wrong-key-0123456789abcdefghijklmnopqrstuv"
    result = amlc(
        "score", str(samples / "data_inputs.json"),
        env={"AMLC_SCORING_URI": local_endpoint.scoring_uri, "AMLC_KEY": wrong},
    )
    line = result.assert_error(3, "401")
    assert wrong not in line and wrong[4:] not in line


def test_missing_key_is_one_line_exit_3(amlc: Run, local_endpoint: Any, samples: Path) -> None:
    result = amlc(
        "score", str(samples / "rows.csv"), "--json",
        env={"AMLC_SCORING_URI": local_endpoint.scoring_uri},
    )
    result.assert_error(3, "401")


def test_wrong_key_on_the_batch_path(
    amlc: Run, local_endpoint: Any, samples: Path, tmp_path: Path
) -> None:
    result = amlc(
        "score", str(samples / "rows.csv"), "-o", str(tmp_path / "out.csv"),
        env={"AMLC_SCORING_URI": local_endpoint.scoring_uri, "AMLC_KEY": "nope-nope-nope"},
    )
    result.assert_error(3, "401")
    assert not (tmp_path / "out.csv").exists()  # nothing half-written under the final name
    assert not list(tmp_path.glob("out.*"))  # and no journal asking for --resume


def test_bad_row_is_caught_before_sending(
    amlc: Run, local_endpoint: Any, samples: Path
) -> None:
    before = len(local_endpoint.access_log_lines())
    result = amlc("score", str(samples / "bad_age.csv"), env=local_endpoint.env())
    result.assert_error(2, "bad_age.csv", "row 2", "column 'age'", "eighty-seven")
    # The swagger was read (GET); no scoring request (POST) was sent.
    assert not any("POST" in line for line in local_endpoint.access_log_lines()[before:])


def test_unknown_column_is_caught(
    amlc: Run, local_endpoint: Any, samples: Path, tmp_path: Path
) -> None:
    rows = [json.loads(line) for line in (samples / "rows.jsonl").read_text().splitlines()]
    rows[0]["agee"] = rows[0].pop("age")
    bad = tmp_path / "typo.json"
    bad.write_text(json.dumps(rows))
    result = amlc("score", str(bad), env=local_endpoint.env())
    result.assert_error(2, "typo.json", "row 1")


# --------------------------------------------------------------------------- health, profiles


def test_health_needs_no_key(amlc: Run, local_endpoint: Any) -> None:
    result = amlc("health", env={"AMLC_SCORING_URI": local_endpoint.scoring_uri})
    assert result.returncode == 0, result.stderr
    assert "Healthy" in result.stdout
    data = amlc("health", "--json", env=local_endpoint.env()).json()
    assert data["healthy"] is True and data["endpoint"] == "local"


def test_profiles_with_key_env_and_key_stdin(
    amlc: Run, local_endpoint: Any, samples: Path
) -> None:
    uri = local_endpoint.scoring_uri
    added = amlc("endpoint", "add", "piped", "--scoring-uri", uri, "--key-stdin",
                 input=local_endpoint.primary_key + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert local_endpoint.primary_key not in added.stdout + added.stderr
    added = amlc("endpoint", "add", "fromenv", "--scoring-uri", uri, "--key-env", "LOCAL_KEY")
    assert added.returncode == 0, added.stderr

    # No AMLC_SCORING_URI and no local endpoint in this AMLC_HOME: the default profile answers.
    result = amlc("score", str(samples / "rows.csv"), "--json")
    assert result.returncode == 0, result.stderr
    assert result.json()["endpoint"] == "piped"

    env = {"LOCAL_KEY": local_endpoint.primary_key}
    result = amlc("score", str(samples / "rows.csv"), "--json", "-e", "fromenv", env=env)
    assert result.returncode == 0, result.stderr
    assert result.json()["endpoint"] == "fromenv"
    # The secondary key works too: rotate clients onto it without downtime.
    env = {"LOCAL_KEY": local_endpoint.secondary_key}
    assert amlc("score", str(samples / "rows.csv"), "-e", "fromenv", env=env).returncode == 0

    shown = amlc("endpoint", "list", env=env)
    assert local_endpoint.primary_key not in shown.stdout + shown.stderr
    assert local_endpoint.secondary_key not in shown.stdout + shown.stderr
