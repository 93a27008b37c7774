"""Token commands (aml_client.http.token_command): what they print, how they run, how they fail."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import pytest

from aml_client import errors
from aml_client.http.token_command import TokenCommand, parse_token_output


def _script(tmp_path: Path, body: str) -> str:
    path = tmp_path / "token_cmd.py"
    path.write_text(body)
    return f"{sys.executable} {path}"


def test_parse_plain_and_az_output() -> None:
    assert parse_token_output(b"abc.def\n", now=100.0) == ("abc.def", 400.0)
    az = {"accessToken": "eyJ0", "expiresOn": "2030-01-02 03:04:05.000000", "tokenType": "Bearer"}
    token, expires = parse_token_output(json.dumps(az), now=0.0)
    assert token == "eyJ0" and expires > 1.8e9
    token, expires = parse_token_output(json.dumps({"accessToken": "t", "expires_on": 1234}), now=0)
    assert (token, expires) == ("t", 1234.0)
    for bad in ("", "two\nlines", '{"nope": 1}', "has space"):
        with pytest.raises(ValueError):
            parse_token_output(bad, now=0.0)


def test_a_token_command_runs_without_a_shell(tmp_path: Path) -> None:
    command = _script(
        tmp_path,
        "import json, sys, time\n"
        "print(json.dumps({'accessToken': 'from-cmd;$(id)', 'expires_on': time.time() + 60}))\n",
    )
    token, expires = TokenCommand(command)()
    assert token == "from-cmd;$(id)" and expires > time.time()


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ("import sys\nprint('az login needed', file=sys.stderr)\nsys.exit(2)\n",
         "exited with 2: az login needed"),
        ("print('x' * 200_000)\n", "more than 64 KiB"),
        ("import time\ntime.sleep(30)\n", "did not finish within 1 s"),
        ("print('')\n", "printed no token"),
    ],
)
def test_token_command_failures_are_one_clean_line(tmp_path: Path, body: str, needle: str) -> None:
    command = _script(tmp_path, body)
    with pytest.raises(errors.CredentialError) as caught:
        TokenCommand(command, timeout_s=1.0)()
    message = str(caught.value)
    assert needle in message and "\n" not in message
    assert caught.value.exit_code == 3


def test_a_missing_token_program_is_a_credential_error() -> None:
    with pytest.raises(errors.CredentialError, match="cannot run"):
        TokenCommand("/no/such/program --flag")()
