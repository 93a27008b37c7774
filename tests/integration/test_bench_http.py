"""``amlc bench`` under the HTTP layer's policy, against real servers on 127.0.0.1: the key
never leaves its origin (redirects are failures of their own kind, never followed), tokens are
refreshed during the run, and ``--timeout`` cuts a trickling body."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bench import run_bench
from support.faults import FaultServer, Reply

pytestmark = pytest.mark.slow

TESTS = Path(__file__).resolve().parents[1]
SWAGGER = json.loads(
    (TESTS / "fixtures" / "corpus" / "swagger" / "004-abhijit-kalita.json").read_text()
)
KEY = "bench-http-KEY-0f1e2d3c4b5a6978"


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer(swagger=SWAGGER) as srv:
        srv.default = Reply(200, {"Results": ["no"]})
        yield srv


@pytest.fixture
def other() -> Iterator[FaultServer]:
    with FaultServer(swagger=SWAGGER) as srv:
        yield srv


def _env(server: FaultServer, **extra: str) -> dict[str, str]:
    env = dict(os.environ)
    env.update(
        AMLC_SCORING_URI=server.scoring_uri,
        AMLC_KEY=KEY,
        PYTHONPATH=str(TESTS.parent),
        AMLC_HOME=os.environ["AMLC_HOME"],
    )
    for name in ("AMLC_DEBUG", "AMLC_TOKEN", "AMLC_SWAGGER_URI"):
        env.pop(name, None)
    env.update(extra)
    return env


def _summary(done: Any) -> dict[str, Any]:
    assert done.stdout.strip(), done.stderr
    return dict(json.loads(done.stdout))


def test_a_redirecting_endpoint_and_a_foreign_swagger_never_get_the_key(
    server: FaultServer, other: FaultServer, tmp_path: Path
) -> None:
    server.default = Reply(307, "", {"Location": f"{other.url}/score"})
    done = run_bench(
        ["-n", "20", "-u", "1", "--workers", "1", "--allow-failures", "--json", "--report-dir",
         str(tmp_path / "r")],
        _env(server, AMLC_SWAGGER_URI=f"{other.url}/swagger.json"),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    assert summary["failures"]["by_kind"] == {"redirect": 20}
    assert len(server.scores) == 20
    assert all(r.headers.get("Authorization") == f"Bearer {KEY}" for r in server.scores)
    # The swagger came from the other port, without the key; no scoring request went there.
    assert [(r.method, r.path) for r in other.requests] == [("GET", "/swagger.json")]
    assert "Authorization" not in other.requests[0].headers
    assert KEY not in done.stdout + done.stderr


def test_a_trickling_body_is_a_timeout(server: FaultServer, tmp_path: Path) -> None:
    server.default = Reply(200, {"Results": ["n" * 40]}, trickle_s=1.0)
    started = time.monotonic()
    done = run_bench(
        ["-n", "3", "-u", "1", "--workers", "1", "--timeout", "2s", "--allow-failures", "--json",
         "--report-dir", str(tmp_path / "r")],
        _env(server),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    assert _summary(done)["failures"]["by_kind"] == {"timeout": 3}
    assert time.monotonic() - started < 3 * 40, "each request was cut, not read to its end"


TOKEN_SCRIPT = """\
import hashlib, hmac, json, sys, time
secret = open(sys.argv[1], "rb").read()
expires = time.time() + float(sys.argv[2])
stamp = f"{expires:.3f}"
mac = hmac.new(secret, stamp.encode(), hashlib.sha256).hexdigest()
print(json.dumps({"accessToken": f"{stamp}.{mac}", "expires_on": expires}))
"""


def _token_checker(secret: bytes, seen: set[str]) -> Any:
    def check(header: str | None) -> bool:
        if not header or not header.startswith("Bearer "):
            return False
        token = header.removeprefix("Bearer ")
        stamp, _, mac = token.rpartition(".")
        good = hmac.new(secret, stamp.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(mac, good):
            return False
        try:
            if float(stamp) <= time.time():
                return False  # expired
        except ValueError:
            return False
        seen.add(token)
        return True

    return check


@pytest.mark.parametrize("workers", ["1", "2"])
def test_short_lived_tokens_are_refreshed_during_the_run(
    server: FaultServer, tmp_path: Path, workers: str
) -> None:
    secret = secrets.token_bytes(32)
    secret_file = tmp_path / "secret"
    secret_file.write_bytes(secret)
    script = tmp_path / "issue_test_token.py"
    script.write_text(TOKEN_SCRIPT)
    seen: set[str] = set()
    server.auth_check = _token_checker(secret, seen)
    # Tokens valid for 8 s: replaced at half-life, a refresh has 4 s to travel from the token
    # command through the parent to every worker, which a busy machine needs.
    env = _env(server, AMLC_TOKEN_COMMAND=f"{sys.executable} {script} {secret_file} 8")
    env.pop("AMLC_KEY")
    done = run_bench(
        ["-t", "20s", "--rate", "25", "-u", "4", "--workers", workers, "--json",
         "--report-dir", str(tmp_path / "r")],
        env,
        tmp_path,
        timeout_s=180,
    )
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    assert summary["requests"] >= 200
    assert summary["failures"]["total"] == 0, summary["failures"]
    # Replaced halfway through their life: about five during the run.
    assert len(seen) >= 3, "tokens valid for 8 s were replaced during the 20 s run"
    assert all(token not in done.stdout + done.stderr for token in seen)


def test_load_processes_get_no_secret_in_their_environment() -> None:
    from aml_client.bench.launch import _child_env

    os.environ["AMLC_KEY"] = KEY
    os.environ["MY_PROFILE_KEY"] = KEY
    try:
        env = _child_env(("MY_PROFILE_KEY",))
    finally:
        del os.environ["AMLC_KEY"], os.environ["MY_PROFILE_KEY"]
    assert KEY not in env.values()


def test_bench_pins_a_deployment(server: FaultServer, tmp_path: Path) -> None:
    done = run_bench(
        ["-n", "3", "-u", "1", "--workers", "1", "--deployment", "blue", "--json",
         "--report-dir", str(tmp_path / "r")],
        _env(server),
        tmp_path,
    )
    assert done.returncode == 0, done.stderr
    # One pinned probe before the load, then the three requests of the run.
    assert [r.headers.get("azureml-model-deployment") for r in server.scores] == ["blue"] * 4
    assert _summary(done)["requests"] == 3


def test_an_unknown_deployment_is_refused_before_any_load(
    server: FaultServer, tmp_path: Path
) -> None:
    server.queue(Reply(404, {"message": "No valid deployments to route to. Please check that "
                                        "the endpoint has at least one deployment"}))
    done = run_bench(
        ["-n", "50", "-u", "2", "--workers", "1", "--deployment", "purple", "--report-dir",
         str(tmp_path / "r")],
        _env(server),
        tmp_path,
    )
    assert done.returncode == 2, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "'purple'" in lines[0], lines
    assert "Traceback" not in done.stdout + done.stderr
    assert [r.headers.get("azureml-model-deployment") for r in server.scores] == ["purple"]
    assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def _failing_run(server: FaultServer, tmp_path: Path, *extra: str) -> Any:
    server.default = Reply(500, {"message": "boom"})
    return run_bench(
        ["-n", "6", "-u", "2", "--workers", "1", *extra, "--report-dir",
         str(tmp_path / f"r{len(server.requests)}")],
        _env(server),
        tmp_path,
    )


def test_a_run_whose_requests_failed_exits_4(server: FaultServer, tmp_path: Path) -> None:
    done = _failing_run(server, tmp_path)
    assert done.returncode == 4, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error: ")]
    assert errors == ["error: 6 of 6 requests failed (http_500 6): --allow-failures or --slo "
                      "'error_rate<=...' accepts failures"], done.stderr
    assert "Traceback" not in done.stderr
    assert "http_500" in done.stdout  # the report was still shown


def test_the_implied_error_objective_does_not_accept_failures(
    server: FaultServer, tmp_path: Path
) -> None:
    # 1 failure in 200 meets the implied error_rate<=1%, yet the run failed requests: exit 4.
    server.queue(Reply(500, {"message": "boom"}))
    done = run_bench(
        ["-n", "200", "-u", "1", "--workers", "1", "--slo", "p99<=60s", "--report-dir",
         str(tmp_path / "r")],
        _env(server),
        tmp_path,
    )
    assert done.returncode == 4, done.stdout + done.stderr
    assert "error: 1 of 200 requests failed (http_500 1)" in done.stderr


def test_a_group_of_runs_whose_requests_failed_exits_4(
    server: FaultServer, tmp_path: Path
) -> None:
    done = _failing_run(server, tmp_path, "--repeat", "2")
    assert done.returncode == 4, done.stderr
    assert "error: 12 of 12 requests failed (http_500 12)" in done.stderr


@pytest.mark.parametrize(
    "accepting", [["--allow-failures"], ["--slo", "error_rate<=100%"]], ids=["flag", "objective"]
)
def test_failures_that_were_declared_acceptable_exit_0(
    server: FaultServer, tmp_path: Path, accepting: list[str]
) -> None:
    done = _failing_run(server, tmp_path, *accepting, "--json")
    assert done.returncode == 0, done.stderr
    assert _summary(done)["failures"]["by_kind"] == {"http_500": 6}


def test_gzip_answers_are_decoded_and_other_encodings_are_failures(
    server: FaultServer, tmp_path: Path
) -> None:
    # The bench asks for what the client asks for and decodes it: the same answers are
    # successes on every path.
    server.default = Reply(200, {"Results": ["no"]}, gzip=True)
    args = ["-n", "8", "-u", "2", "--workers", "1", "--json"]
    done = run_bench([*args, "--report-dir", str(tmp_path / "a")], _env(server), tmp_path)
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    assert summary["failures"]["total"] == 0 and summary["successes"] == 8
    assert {r.headers.get("Accept-Encoding") for r in server.scores} == {"gzip, deflate"}
    # An encoding nobody asked for is a failure of its own kind, as it is for amlc score.
    import brotli

    server.default = Reply(200, brotli.compress(b'{"Results": ["no"]}'),
                           {"Content-Encoding": "br"})
    done = run_bench([*args, "--allow-failures", "--report-dir", str(tmp_path / "b")],
                     _env(server), tmp_path)
    assert done.returncode == 0, done.stderr
    assert _summary(done)["failures"]["by_kind"] == {"encoding": 8}


EXPIRED_TOKEN_SCRIPT = """\
import json, sys, time
open(sys.argv[1], "a").write("run\\n")
print(json.dumps({"accessToken": "expired-TOKEN-5e6f", "expires_on": time.time() - 60}))
"""


@pytest.mark.parametrize("swagger_from", ["endpoint", "file"])
def test_an_expired_token_ends_the_bench_at_once(
    server: FaultServer, tmp_path: Path, swagger_from: str
) -> None:
    """A command that prints an expired token is one error (exit 3), run once, before any
    request; not a token fetched again and again while the load runs."""
    runs = tmp_path / "runs"
    script = tmp_path / "expired_token.py"
    script.write_text(EXPIRED_TOKEN_SCRIPT)
    env = _env(server, AMLC_TOKEN_COMMAND=f"{sys.executable} {script} {runs}")
    env.pop("AMLC_KEY")
    extra: list[str] = []
    if swagger_from == "file":  # the swagger is not fetched: the load process is next
        swagger = tmp_path / "swagger.json"
        swagger.write_text(json.dumps(SWAGGER))
        extra = ["--swagger", str(swagger)]
    done = run_bench(
        ["-t", "10s", "-u", "2", "--workers", "1", *extra, "--report-dir", str(tmp_path / "r")],
        env,
        tmp_path,
    )
    assert done.returncode == 3, done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    program = os.path.basename(sys.executable)
    assert len(errors) == 1 and re.fullmatch(
        rf"error: token command `{re.escape(program)}` printed a token that expired 6\d s ago; "
        r"check its output \(and the clock\)",
        errors[0],
    ), done.stderr
    assert runs.read_text() == "run\n"
    assert server.scores == []
    assert "expired-TOKEN" not in done.stdout + done.stderr
