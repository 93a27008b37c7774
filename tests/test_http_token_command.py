"""Token commands (aml_client.http.token_command): what they print, how they run, how they fail."""

from __future__ import annotations

import json
import os
import secrets
import sys
import time
from pathlib import Path

import pytest

from aml_client import errors
from aml_client.http.credentials import TokenCredential
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


# -- hostile commands: each ends within its deadline (plus 2 s), with one line, and leaves no
# process behind -------------------------------------------------------------------------------

#: A short deadline so that these run fast (the default is 60 s).
DEADLINE_S = 1.5
MARK_VARIABLE = "AMLC_TOKEN_COMMAND_TEST_MARK"


def _live_with_mark(mark: str) -> list[int]:
    """Processes still alive that inherited ``mark`` (zombies show an empty environment)."""
    found = []
    needle = f"{MARK_VARIABLE}={mark}".encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
        except OSError:
            continue  # gone meanwhile, or not ours
        if needle in environ.split(b"\0"):
            found.append(int(entry.name))
    return found


def _gone(mark: str) -> list[int]:
    """What is left of a command's processes once SIGKILL has had time to land (a few
    seconds at most on a busy machine; usually none at the first look)."""
    for _ in range(100):
        left = _live_with_mark(mark)
        if not left:
            return []
        time.sleep(0.05)
    return left


@pytest.fixture
def mark(monkeypatch: pytest.MonkeyPatch) -> str:
    """A value every process the command starts inherits, to find them afterwards."""
    value = secrets.token_hex(8)
    monkeypatch.setenv(MARK_VARIABLE, value)
    return value


def _timed(command: TokenCommand) -> tuple[float, str | None, tuple[str, float] | None]:
    started = time.monotonic()
    try:
        result = command()
    except errors.CredentialError as exc:
        return time.monotonic() - started, str(exc), None
    return time.monotonic() - started, None, result


needs_proc = pytest.mark.skipif(not Path("/proc/self/environ").exists(), reason="needs /proc")


@needs_proc
@pytest.mark.parametrize(
    "script",
    [
        "#!/bin/sh\nsleep 600\necho never\n",  # a shell script whose child sleeps
        "#!/bin/sh\nsleep 600 &\nsleep 600\n",  # ... and another one in the background
    ],
)
def test_a_script_whose_children_sleep_is_stopped_whole(
    tmp_path: Path, mark: str, script: str
) -> None:
    path = tmp_path / "slow-helper"
    path.write_text(script)
    path.chmod(0o755)
    elapsed, error, _ = _timed(TokenCommand(str(path), timeout_s=DEADLINE_S))
    assert error == (
        f"token command `slow-helper` did not finish within {DEADLINE_S:g} s "
        "(stopped, with everything it started; token_command_timeout or "
        "AMLC_TOKEN_COMMAND_TIMEOUT allows longer)"
    )
    assert DEADLINE_S <= elapsed < DEADLINE_S + 2
    assert _gone(mark) == []


@needs_proc
def test_sleep_90_is_stopped_at_the_deadline(mark: str) -> None:
    elapsed, error, _ = _timed(TokenCommand("sleep 90", timeout_s=DEADLINE_S))
    assert error is not None and "`sleep` did not finish within 1.5 s" in error
    assert "\n" not in error
    assert elapsed < DEADLINE_S + 2
    assert _gone(mark) == []


@needs_proc
def test_a_background_child_holding_the_pipes_is_not_waited_for(mark: str) -> None:
    # The command exits at once; its child keeps stdout and stderr open for 30 s.
    elapsed, error, result = _timed(
        TokenCommand("sh -c 'sleep 30 & echo tok'", timeout_s=DEADLINE_S)
    )
    assert error is None and result is not None and result[0] == "tok"
    assert elapsed < DEADLINE_S + 2
    assert _gone(mark) == [], "the background child went with the command"


@needs_proc
def test_a_background_child_does_not_hide_a_failure(mark: str) -> None:
    command = "sh -c 'sleep 30 & echo \"az login needed\" >&2; exit 3'"
    elapsed, error, _ = _timed(TokenCommand(command, timeout_s=DEADLINE_S))
    assert error == "token command `sh` exited with 3: az login needed"
    assert elapsed < DEADLINE_S + 2
    assert _gone(mark) == []


@pytest.mark.parametrize(
    ("expires_in", "needle"),
    [(-60, "printed a token that expired 60 s ago"), (-7200, "expired 2 h ago"),
     (1, "printed a token that expires in 1 s")],
)
def test_an_expired_or_expiring_token_is_an_error_naming_the_command(
    tmp_path: Path, mark: str, expires_in: int, needle: str
) -> None:
    runs = tmp_path / "runs"
    command = _script(
        tmp_path,
        "import json, sys, time\n"
        f"open({str(runs)!r}, 'a').write('run\\n')\n"
        "print(json.dumps({'accessToken': 'tok-SECRET-123', "
        f"'expires_on': time.time() + {expires_in}}}))\n",
    )
    credential = TokenCredential(fetch=TokenCommand(f"{command} --password hunter2"))
    elapsed, error, _ = _timed(credential._fetch)  # type: ignore[arg-type]
    assert error is not None and needle in error and error.startswith("token command `python")
    assert "\n" not in error
    assert "hunter2" not in error and "tok-SECRET" not in error  # neither arguments nor token
    with pytest.raises(errors.CredentialError):
        credential.secret()
    assert runs.read_text().count("run") == 2  # once per ask, never again at once
    assert elapsed < 2 + 2


def test_a_token_command_cannot_read_stdin(tmp_path: Path) -> None:
    command = _script(tmp_path, "import sys\nprint(sys.stdin.read() or 'closed')\n")
    assert TokenCommand(command)()[0] == "closed"


def test_the_deadline_comes_from_the_environment_or_the_profile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from aml_client.config import Profile, token_command_timeout

    monkeypatch.setenv("AMLC_TOKEN_COMMAND_TIMEOUT", "2.5")
    assert token_command_timeout() == 2.5
    profile = Profile.from_toml(
        "p",
        {"scoring_uri": "https://h.example/score", "auth": "token",
         "token_command": "get-token", "token_command_timeout": 7},
    )
    assert profile.token_command_timeout == 7.0
    assert profile.to_toml()["token_command_timeout"] == 7.0
    credential = profile.credential()
    assert isinstance(credential, TokenCredential)
    assert credential._fetch.timeout_s == 7.0  # type: ignore[union-attr]
    monkeypatch.setenv("AMLC_TOKEN_COMMAND_TIMEOUT", "soon")
    with pytest.raises(errors.ConfigError, match="AMLC_TOKEN_COMMAND_TIMEOUT='soon'"):
        token_command_timeout()
    with pytest.raises(errors.ConfigError, match="token_command_timeout = -1"):
        Profile.from_toml(
            "p", {"scoring_uri": "https://h.example/score", "token_command_timeout": -1}
        )
