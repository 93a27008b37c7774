"""The HTTP layer's rules through the real ``amlc score`` (small path and ``-o`` batch path),
against real servers on 127.0.0.1: the key's origin, the prediction count, the total deadline,
NaN, token commands and deployments — each failure one clean line with its exit code."""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.faults import FaultServer, Reply

TESTS = Path(__file__).resolve().parents[1]
SWAGGER = json.loads(
    (TESTS / "fixtures" / "corpus" / "swagger" / "004-abhijit-kalita.json").read_text()
)
KEY = "cli-http-KEY-3c4d5e6f708192a3"
ROWS = TESTS / "fixtures" / "samples" / "rows.jsonl"  # two rows


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(swagger=SWAGGER) as srv:
        srv.default = Reply(200, {"Results": ["no", "yes"]})
        yield srv


@pytest.fixture
def other() -> Iterator[FaultServer]:
    with FaultServer(swagger=SWAGGER) as srv:
        yield srv


def _env(server: FaultServer, **extra: str) -> dict[str, str]:
    return {"AMLC_SCORING_URI": server.scoring_uri, "AMLC_KEY": KEY, **extra}


@pytest.fixture(autouse=True)
def _cli(amlc: Any) -> None:
    global run_amlc
    run_amlc = amlc


run_amlc: Any = None


def _score(server: FaultServer, *args: str, **env: str) -> Any:
    return run_amlc("score", *args, env=_env(server, **env), timeout=120)


@pytest.fixture(params=["small", "batch"])
def path(request: pytest.FixtureRequest, tmp_path: Path) -> list[str]:
    """Extra arguments choosing the small path or the large-input (batch) path."""
    return [] if request.param == "small" else ["-o", str(tmp_path / "out.jsonl")]


def test_a_swagger_uri_on_another_port_never_receives_the_key(
    server: FaultServer, other: FaultServer, path: list[str]
) -> None:
    done = _score(server, str(ROWS), *path, AMLC_SWAGGER_URI=f"{other.url}/swagger.json")
    assert done.returncode == 0, done.stderr
    assert [r.path for r in other.requests] == ["/swagger.json"]
    assert all("Authorization" not in r.headers for r in other.requests)
    assert all(r.headers.get("Authorization") == f"Bearer {KEY}" for r in server.scores)
    assert KEY not in done.stdout + done.stderr


def test_a_redirect_to_another_origin_is_not_followed(
    server: FaultServer, other: FaultServer, path: list[str]
) -> None:
    server.default = Reply(307, "", {"Location": f"{other.url}/score"})
    done = _score(server, str(ROWS), *path)
    done.assert_error(4, f"redirected to {other.url}/score")
    assert other.requests == []


@pytest.mark.parametrize("predictions", [["one"], ["a", "b", "c"], "scalar"])
def test_a_wrong_prediction_count_fails_cleanly(
    server: FaultServer, path: list[str], predictions: Any
) -> None:
    server.default = Reply(200, {"Results": predictions})
    count = 1 if isinstance(predictions, str) else len(predictions)
    done = _score(server, str(ROWS), *path)
    done.assert_error(4, "2 rows sent but", f"{count} prediction")


def test_a_trickling_body_is_cut_at_the_timeout(server: FaultServer, path: list[str]) -> None:
    server.default = Reply(200, {"Results": ["n" * 30, "y" * 30]}, trickle_s=1.0)
    done = _score(server, str(ROWS), *path, "--timeout", "2")
    done.assert_error(4, "no complete answer", "within 2 s")
    assert len(server.scores) == 1, "not sent again: the model may have run"


def test_nan_is_refused_with_row_and_column_on_the_small_path(
    server: FaultServer, tmp_path: Path
) -> None:
    lines = ROWS.read_text().splitlines()
    second = json.loads(lines[1])
    second["euribor3m"] = float("nan")
    rows = tmp_path / "nan.jsonl"
    rows.write_text(lines[0] + "\n" + json.dumps(second) + "\n")  # json writes NaN
    done = _score(server, str(rows), "--no-validate")
    done.assert_error(2, "row 2, column 'euribor3m': NaN cannot be sent as JSON")
    assert server.scores == []


def test_nan_rows_go_to_the_errors_file_on_the_batch_path(
    server: FaultServer, tmp_path: Path
) -> None:
    lines = ROWS.read_text().splitlines()
    second = json.loads(lines[1])
    second["euribor3m"] = float("inf")
    rows = tmp_path / "inf.jsonl"
    rows.write_text(lines[0] + "\n" + json.dumps(second) + "\n")
    server.default = Reply(200, {"Results": ["no"]})
    out, errs = tmp_path / "out.jsonl", tmp_path / "errors.jsonl"
    done = _score(server, str(rows), "-o", str(out), "--errors", str(errs))
    assert done.returncode == 2, done.stderr
    (failed,) = [json.loads(line) for line in errs.read_text().splitlines()]
    assert failed["row"] == 2 and failed["kind"] == "validation"
    assert failed["reason"] == "column 'euribor3m': Infinity cannot be sent as JSON"
    assert len(out.read_text().splitlines()) == 1
    assert [len(r.json()["Inputs"]["data"]) for r in server.scores] == [1]


def _token_script(tmp_path: Path, body: str) -> str:
    script = tmp_path / "print_test_token.py"
    script.write_text(body)
    return f"{sys.executable} {script}"


def test_a_failing_token_command_is_one_clean_line(server: FaultServer, tmp_path: Path) -> None:
    command = _token_script(
        tmp_path, "import sys\nprint('please run az login', file=sys.stderr)\nsys.exit(1)\n"
    )
    done = run_amlc(
        "score", str(ROWS),
        env={"AMLC_SCORING_URI": server.scoring_uri, "AMLC_TOKEN_COMMAND": command},
    )
    done.assert_error(3, "token command", "exited with 1: please run az login")
    assert server.scores == []


@pytest.mark.parametrize(
    ("command", "needle"),
    [
        ("sleep 90", "token command `sleep` did not finish within 1 s"),
        ("sh -c 'sleep 600; echo late'", "token command `sh` did not finish within 1 s"),
    ],
)
def test_a_hanging_token_command_is_stopped_at_its_deadline(
    server: FaultServer, command: str, needle: str
) -> None:
    started = time.monotonic()
    done = run_amlc(
        "score", str(ROWS),
        env={"AMLC_SCORING_URI": server.scoring_uri, "AMLC_TOKEN_COMMAND": command,
             "AMLC_TOKEN_COMMAND_TIMEOUT": "1"},
    )
    # Far below the 90 s the command wanted (interpreter start-up takes most of this).
    assert time.monotonic() - started < 30
    done.assert_error(3, needle)
    assert server.scores == []


def test_a_token_command_supplies_the_token(server: FaultServer, tmp_path: Path) -> None:
    command = _token_script(
        tmp_path,
        "import json, time\n"
        "expiry = int(time.time()) + 3600\n"
        "print(json.dumps({'accessToken': 'cmd-token-1', 'expires_on': expiry}))\n",
    )
    server.auth_check = lambda header: header == "Bearer cmd-token-1"
    done = run_amlc(
        "score", str(ROWS), "--json",
        env={"AMLC_SCORING_URI": server.scoring_uri, "AMLC_TOKEN_COMMAND": command},
    )
    assert done.returncode == 0, done.stderr
    assert done.json()["predictions"] == ["no", "yes"]
    assert "cmd-token-1" not in done.stdout + done.stderr


def test_deployment_option_pins_the_deployment(server: FaultServer, path: list[str]) -> None:
    server.default = Reply(200, {"Results": ["no", "yes"]}, {"azureml-model-deployment": "blue"})
    done = _score(server, str(ROWS), *path, "--deployment", "blue", "--json")
    assert done.returncode == 0, done.stderr
    assert [r.headers.get("azureml-model-deployment") for r in server.scores] == ["blue"]
    if not path:
        assert done.json()["deployment"] == "blue", "the answering deployment is reported"


def test_an_error_names_its_request_id_once(server: FaultServer, tmp_path: Path) -> None:
    """Every row fails with a 500: the batch gives up after its first rows, quoting the last
    error, whose request id the message carries once (it used to be twice)."""
    server.default = Reply(500, {"message": "boom"})
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(ROWS.read_text().splitlines(keepends=True)[:1] * 30))
    done = _score(server, str(rows), "-o", str(tmp_path / "out.jsonl"), "--batch-size", "1")
    line = done.assert_error(4, "looks broken", "request id req-")
    assert line.count("request id") == 1 and line.count("req-") == 1, line
    small = _score(server, str(ROWS), "--json")
    line = small.assert_error(4, "request id req-")
    assert line.count("req-") == 1, line
    assert line.endswith(f"(request id {small.json()['error']['request_id']})")


@pytest.mark.parametrize("status", [500, 503, 404])
def test_a_swagger_that_cannot_be_fetched_is_a_swagger_problem(
    server: FaultServer, path: list[str], status: int
) -> None:
    """The swagger route fails: --json says ``"kind": "swagger"`` (not ``model``), the line
    names the swagger's URI, and no row is sent unchecked (a 404 means no swagger is
    published: the rows then go out unvalidated, as documented)."""
    server.swagger_reply = Reply(status, {"message": "swagger route broke"})
    done = _score(server, str(ROWS), *path, "--json")
    if status == 404:
        assert done.returncode == 0, done.stderr
        assert "publishes no swagger" in done.stderr
        return
    line = done.assert_error(4, f"cannot fetch the swagger at {server.url}/swagger.json")
    error = done.json()["error"]
    assert error["kind"] == "swagger" and error["status_code"] == status, error
    assert line.count("request id") == 1
    assert server.scores == []


def test_a_named_swagger_that_is_missing_is_a_swagger_problem(
    server: FaultServer, tmp_path: Path
) -> None:
    server.swagger = None
    done = run_amlc(
        "swagger", "show", "--json", env=_env(server), timeout=120
    )
    done.assert_error(4, f"no swagger at {server.url}/swagger.json")
    assert done.json()["error"]["kind"] == "swagger"
