"""Request bodies built up front (validated like ``amlc score``) and a target that hides its key."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from support.calibrated import SWAGGER

from aml_client.bench.target import RunTarget, build_bodies
from aml_client.errors import ConfigError, ValidationError
from aml_client.schema import load_schema

KEY = "k3y-DO-NOT-LEAK-0123456789abcdef"


@pytest.fixture
def schema():  # type: ignore[no-untyped-def]
    return load_schema(SWAGGER)


def test_rows_rotate_one_per_body_and_are_validated(tmp_path: Path, schema) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.jsonl"
    rows.write_text('{"x": 1.0, "y": 1}\n{"x": 2.0, "y": 2}\n{"x": 3.5, "y": 3}\n')
    bodies, summary = build_bodies(schema, rows)
    assert [json.loads(b) for b in bodies] == [
        {"data": [{"x": 1.0, "y": 1}]},
        {"data": [{"x": 2.0, "y": 2}]},
        {"data": [{"x": 3.5, "y": 3}]},
    ]
    assert summary["rows"] == 3 and summary["bodies"] == 3 and summary["validated"] is True
    bodies, summary = build_bodies(schema, rows, rows_per_request=2)
    assert [len(json.loads(b)["data"]) for b in bodies] == [2, 1]


def test_csv_rows_are_coerced_to_the_schema(tmp_path: Path, schema) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.csv"
    rows.write_text("x,y\n1.5,2\n")
    bodies, _ = build_bodies(schema, rows)
    assert json.loads(bodies[0]) == {"data": [{"x": 1.5, "y": 2}]}


def test_only_text_is_converted_as_in_amlc_score(tmp_path: Path, schema) -> None:  # type: ignore[no-untyped-def]
    """JSON carries its own types: "2" for the integer column is refused there, as ``amlc
    score`` refuses it, while the same text in a CSV cell is converted."""
    payload = tmp_path / "rows.json"
    payload.write_text(json.dumps({"data": [{"x": 1.5, "y": "2"}]}))
    with pytest.raises(ValidationError) as info:
        build_bodies(schema, payload)
    assert info.value.problems[0].column == "y"
    jsonl = tmp_path / "rows.jsonl"
    jsonl.write_text('{"x": "1.5", "y": 2}\n')
    with pytest.raises(ValidationError, match="x"):
        build_bodies(schema, jsonl)
    csv = tmp_path / "rows.csv"
    csv.write_text("x,y\n1.5,2\n")
    assert json.loads(build_bodies(schema, csv)[0][0]) == {"data": [{"x": 1.5, "y": 2}]}
    # Asked for explicitly, JSON strings are converted too (``--coerce``).
    bodies, _ = build_bodies(schema, payload, coerce=True)
    assert json.loads(bodies[0]) == {"data": [{"x": 1.5, "y": 2}]}


def test_a_bad_row_fails_before_any_load(tmp_path: Path, schema) -> None:  # type: ignore[no-untyped-def]
    rows = tmp_path / "rows.json"
    rows.write_text(json.dumps({"data": [{"x": 1.0, "y": 1}, {"x": 1.0, "y": "abc"}]}))
    with pytest.raises(ValidationError) as info:
        build_bodies(schema, rows)
    assert "row 2" in str(info.value)


def test_without_a_schema_the_payload_keeps_its_convention(tmp_path: Path) -> None:
    payload = tmp_path / "payload.json"
    payload.write_text(
        json.dumps(
            {"Inputs": {"data": [{"a": 1}, {"a": 2}]}, "GlobalParameters": {"method": "predict"}}
        )
    )
    bodies, summary = build_bodies(None, payload)
    assert json.loads(bodies[1]) == {
        "Inputs": {"data": [{"a": 2}]},
        "GlobalParameters": {"method": "predict"},
    }
    assert summary["validated"] is False


def test_default_body_is_the_swagger_example(schema) -> None:  # type: ignore[no-untyped-def]
    bodies, summary = build_bodies(schema, None)
    assert json.loads(bodies[0]) == {"data": [{"x": 1.5, "y": 2}]}
    assert summary["source"] == "swagger example"
    with pytest.raises(ConfigError):
        build_bodies(None, None)


def test_run_target_never_shows_or_ships_its_key() -> None:
    from aml_client import KeyCredential
    from aml_client.bench.auth import CredentialAuth, PushedAuth

    credential = KeyCredential(KEY)
    target = RunTarget(
        name="prod",
        scoring_uri="https://example.invalid/score?x=1",
        headers={"Content-Type": "application/json"},
        bodies=[b"{}"],
        authenticated=True,
        credential=credential,
    )
    assert KEY not in repr(target)
    assert KEY not in json.dumps(target.describe())
    # The wire format (a load process's stdin config) never holds the secret.
    wire = json.dumps(target.to_wire())
    assert KEY not in wire
    child = RunTarget.from_wire(json.loads(wire))
    assert child == target and child.authenticated
    assert "Authorization" not in child.request_headers()
    # In a load process the header comes from the pushed lines, and follows them.
    pushed = PushedAuth()
    child.auth = pushed
    assert pushed.handle_line(f'{{"type": "auth", "value": "Bearer {KEY}"}}')
    assert child.request_headers()["Authorization"] == f"Bearer {KEY}"
    assert child.describe()["auth"] == "bearer k3y-…"
    pushed.set("Bearer fresh-token")
    assert child.request_headers()["Authorization"] == "Bearer fresh-token"
    assert child.request_headers()["Content-Type"] == "application/json"
    # A plain Locust run asks the credential itself.
    target.auth = CredentialAuth(credential)
    assert target.request_headers()["Authorization"] == f"Bearer {KEY}"
    assert (target.base_url, target.path) == ("https://example.invalid", "/score?x=1")
    with pytest.raises(ValueError):
        RunTarget(name="x", scoring_uri="ftp://x/score", headers={}, bodies=[b"{}"])


def test_the_bench_command_never_imports_locust() -> None:
    code = (
        "import sys; import aml_client.cli.bench, aml_client.bench.launch, "
        "aml_client.bench.target, aml_client.bench.plan, aml_client.bench.recording, "
        "aml_client.bench.report.directory, aml_client.bench.report.summary, "
        "aml_client.bench.report.compare, "
        "aml_client.bench.checks, aml_client.bench.report.capacity, aml_client.cli.report; "
        "bad = [m for m in sys.modules if m.split('.')[0] in ('locust', 'gevent', 'zmq')]; "
        "print(bad); sys.exit(1 if bad else 0)"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_bench_package_public_api_is_pinned_and_lazy() -> None:
    import aml_client.bench as bench

    assert sorted(bench.__all__) == [
        "BenchPlan",
        "BenchResult",
        "BenchSummary",
        "Interval",
        "LatencyRecorder",
        "LoadProcess",
        "Recording",
        "RunTarget",
        "build_run_target",
        "load_summary",
        "summarize",
        "write_report",
    ]
    for name in bench.__all__:
        assert getattr(bench, name) is not None
    with pytest.raises(AttributeError):
        bench.NoSuchThing  # noqa: B018


@pytest.mark.parametrize("args", [["--help"], ["score", "--help"], ["bench", "--help"]])
def test_amlc_help_and_score_never_import_locust(args: list[str]) -> None:
    # Locust monkey-patches the standard library with gevent when imported: only the load
    # process (python -m aml_client.bench.load.runner) may import it.
    code = (
        "import atexit, sys\n"
        "def report():\n"
        "    bad = sorted({m.split('.')[0] for m in sys.modules} & {'locust', 'gevent', 'zmq'})\n"
        "    print('IMPORTED', bad)\n"
        "atexit.register(report)\n"
        f"sys.argv = ['amlc', *{args!r}]\n"
        "from aml_client.cli.app import main\n"
        "main()\n"
    )
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, "-c", code], cwd=root, capture_output=True, text=True)
    assert "IMPORTED []" in done.stdout, done.stdout[-500:] + done.stderr[-500:]
