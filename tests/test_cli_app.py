"""The ``amlc`` process as a user meets it: exit codes, one-line errors, JSON on stdout, no keys.

Every test runs the real CLI in a subprocess. Nothing here needs a running endpoint; scoring
against the local endpoint is in tests/integration/test_cli_score_local.py.
"""

from __future__ import annotations

import json
import socket
import stat
import subprocess
import sys
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "tests" / "fixtures" / "samples"
#: The ``amlc`` fixture: runs the CLI in a subprocess.
Run = Callable[..., Any]
KEY = "s3cretKEY-0123456789abcdefghijklmnop"
#: Modules that must never load for --help or scoring (slow, or monkey-patching the world).
HEAVY = ("locust", "gevent", "pandas", "sklearn", "numpy")


def closed_port() -> int:
    """A 127.0.0.1 port nothing listens on (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def add_profile(amlc: Run, name: str = "prod", *extra: str, key: str | None = KEY) -> Any:
    args = ["endpoint", "add", name, "--scoring-uri", "https://prod.example/score", *extra]
    if key is None:
        return amlc(*args)
    return amlc(*args, "--key-stdin", input=key + "\n")


# --------------------------------------------------------------------------- help and imports


def test_help_lists_the_commands(amlc: Run) -> None:
    result = amlc("--help")
    assert result.returncode == 0, result.stderr
    for command in ("score", "health", "endpoint"):
        assert command in result.stdout


def test_version_is_the_packages(amlc: Run) -> None:
    import aml_client

    result = amlc("--version")
    assert result.returncode == 0
    assert result.stdout == f"amlc {aml_client.__version__}\n"


@pytest.mark.parametrize("argv", [["--help"], ["score", "--help"], ["endpoint", "list"]])
def test_cli_never_imports_heavy_modules(argv: list[str]) -> None:
    code = (
        "import json, sys\n"
        f"sys.argv = ['amlc', *{argv!r}]\n"
        "from aml_client.cli.app import main\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)), file=sys.stderr)\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    loaded = json.loads(proc.stderr.strip().splitlines()[-1])
    assert loaded == [], f"`amlc {' '.join(argv)}` imported {loaded}"


# --------------------------------------------------------------------------- score errors


def test_no_endpoint_configured(amlc: Run) -> None:
    result = amlc("score", str(SAMPLES / "rows.csv"))
    result.assert_error(2, "no endpoint configured", "amlc local up --detach", "AMLC_SCORING_URI"
    )


def test_missing_input_file(amlc: Run) -> None:
    result = amlc("score", "no-such-file.json")
    result.assert_error(2, "no-such-file.json", "no such file")


def test_malformed_json_names_file_and_line(amlc: Run, tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"data": [\n  {"age": 17,}\n]}\n')
    result = amlc(
        "score", str(bad), env={"AMLC_SCORING_URI": f"http://127.0.0.1:{closed_port()}/score"}
    )
    line = result.assert_error(2, "bad.json:2")
    assert "JSON" in line


def test_unknown_profile(amlc: Run) -> None:
    add_profile(amlc, "prod")
    result = amlc("score", str(SAMPLES / "rows.csv"), "--endpoint", "nope")
    result.assert_error(2, "no endpoint profile named 'nope'", "known: prod")


def test_profile_key_env_unset(amlc: Run) -> None:
    assert add_profile(amlc, "prod", "--key-env", "PROD_SCORING_KEY", key=None).returncode == 0
    result = amlc("score", str(SAMPLES / "rows.csv"))
    result.assert_error(2, "$PROD_SCORING_KEY", "not set")


def test_connection_refused_is_one_line_exit_4(amlc: Run) -> None:
    uri = f"http://127.0.0.1:{closed_port()}/score"
    result = amlc(
        "score", str(SAMPLES / "data_v1.json"), "--retries", "0",
        env={"AMLC_SCORING_URI": uri, "AMLC_KEY": KEY},
    )
    result.assert_error(4)
    assert KEY not in result.stderr


def test_health_unreachable_exit_4(amlc: Run) -> None:
    uri = f"http://127.0.0.1:{closed_port()}/score"
    result = amlc("health", env={"AMLC_SCORING_URI": uri})
    result.assert_error(4)


@pytest.mark.parametrize("value", ["0", "many", "-3"])
def test_bad_concurrency_is_a_usage_error(amlc: Run, value: str) -> None:
    result = amlc("score", str(SAMPLES / "rows.csv"), "--concurrency", value)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "concurrency" in result.stderr


def test_resume_needs_an_output_file(amlc: Run) -> None:
    uri = f"http://127.0.0.1:{closed_port()}/score"
    result = amlc(
        "score", str(SAMPLES / "rows.csv"), "--resume", env={"AMLC_SCORING_URI": uri}
    )
    result.assert_error(2, "-o FILE")


def test_method_is_checked(amlc: Run) -> None:
    result = amlc("score", str(SAMPLES / "rows.csv"), "--method", "explain")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr


# --------------------------------------------------------------------------- endpoint profiles


def test_add_with_key_from_stdin_stores_it_privately(amlc: Run, amlc_home: Path) -> None:
    result = add_profile(amlc, "prod")
    assert result.returncode == 0, result.stderr
    assert KEY not in result.stdout + result.stderr
    assert KEY[:4] + "…" in result.stdout
    path = amlc_home / "config" / "config.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    data = tomllib.loads(path.read_text())
    assert data["endpoints"]["prod"] == {
        "scoring_uri": "https://prod.example/score", "auth": "key", "key": KEY,
    }
    assert data["default"]["endpoint"] == "prod"


def test_list_and_show_mask_the_key(amlc: Run) -> None:
    add_profile(amlc, "prod")
    add_profile(amlc, "staging", "--key-env", "STAGING_KEY", "--default", key=None)
    env = {"STAGING_KEY": "stagingkey-abcdefghijklmnop"}
    for args in (
        ["endpoint", "list"],
        ["endpoint", "list", "--json"],
        ["endpoint", "show", "prod"],
        ["endpoint", "show", "prod", "--json"],
        ["endpoint", "show", "staging"],
    ):
        result = amlc(*args, env=env)
        assert result.returncode == 0, (args, result.stderr)
        everything = result.stdout + result.stderr
        assert KEY not in everything and KEY[4:] not in everything
        assert "stagingkey-abcdefghijklmnop" not in everything and "abcdefghijk" not in everything

    listed = amlc("endpoint", "list", "--json", env=env).json()
    assert [(p["name"], p["default"]) for p in listed] == [("prod", False), ("staging", True)]
    assert listed[0]["key"] == KEY[:4] + "…"
    assert listed[1]["key"] == "$STAGING_KEY (stag…)"
    assert listed[1]["key_env"] == "STAGING_KEY"
    shown = amlc("endpoint", "show", "staging", "--json").json()
    assert shown["key"] == "$STAGING_KEY (not set)"


def test_key_is_never_a_command_line_value(amlc: Run) -> None:
    result = amlc(
        "endpoint", "add", "prod", "--scoring-uri", "https://p.example/score", "--key", KEY
    )
    assert result.returncode == 2
    assert "No such option" in result.stderr


def test_add_without_a_key_source_and_no_terminal(amlc: Run) -> None:
    result = add_profile(amlc, "prod", key=None)
    result.assert_error(2, "--key-env", "--key-stdin")


def test_add_with_empty_stdin(amlc: Run) -> None:
    result = amlc(
        "endpoint", "add", "prod", "--scoring-uri", "https://p.example/score", "--key-stdin",
        input="",
    )
    result.assert_error(2, "no key on standard input")


def test_add_auth_none_takes_no_key(amlc: Run, amlc_home: Path) -> None:
    result = amlc(
        "endpoint", "add", "open", "--scoring-uri", "http://127.0.0.1:1/score", "--auth", "none"
    )
    assert result.returncode == 0, result.stderr
    assert amlc("endpoint", "show", "open", "--json").json()["auth"] == "none"
    result = amlc(
        "endpoint", "add", "open2", "--scoring-uri", "http://127.0.0.1:1/score", "--auth", "none",
        "--key-stdin", input="x\n",
    )
    result.assert_error(2, "takes no key")


@pytest.mark.parametrize("name", ["local", "env", "bad/name"])
def test_add_refuses_reserved_or_bad_names(amlc: Run, name: str, amlc_home: Path) -> None:
    result = add_profile(amlc, name)
    result.assert_error(2, name)
    assert not (amlc_home / "config" / "config.toml").exists()


def test_add_refuses_a_non_http_uri(amlc: Run) -> None:
    result = amlc(
        "endpoint", "add", "x", "--scoring-uri", "ftp://x/score", "--auth", "none"
    )
    result.assert_error(2, "http:// or https://")


def test_use_and_remove(amlc: Run) -> None:
    add_profile(amlc, "a")
    add_profile(amlc, "b")
    assert amlc("endpoint", "use", "b").returncode == 0
    assert [p["default"] for p in amlc("endpoint", "list", "--json").json()] == [False, True]
    assert amlc("endpoint", "remove", "b").returncode == 0
    listed = amlc("endpoint", "list", "--json").json()
    assert [(p["name"], p["default"]) for p in listed] == [("a", False)]
    amlc("endpoint", "use", "b").assert_error(2, "'b'")
    amlc("endpoint", "remove", "b").assert_error(2, "'b'")
    amlc("endpoint", "show", "b").assert_error(2, "'b'")


def test_list_when_empty(amlc: Run) -> None:
    result = amlc("endpoint", "list")
    assert result.returncode == 0
    assert "amlc endpoint add" in result.stdout
    assert amlc("endpoint", "list", "--json").json() == []


def test_group_readable_config_with_key_is_refused(amlc: Run, amlc_home: Path) -> None:
    add_profile(amlc, "prod")
    (amlc_home / "config" / "config.toml").chmod(0o644)
    result = amlc("score", str(SAMPLES / "rows.csv"))
    result.assert_error(2, "readable by other users", "chmod 600")
    assert KEY not in result.stderr


@pytest.mark.skipif(sys.platform == "win32", reason="needs a pseudo-terminal")
def test_add_prompts_for_a_hidden_key_in_a_terminal(amlc_home: Path) -> None:
    import os
    import pty
    import select
    import signal
    import termios

    argv = [sys.executable, "-m", "aml_client", "endpoint", "add", "tty",
            "--scoring-uri", "https://t.example/score"]  # fmt: skip
    env = dict(os.environ, PYTHONPATH=str(REPO), COLUMNS="200")
    pid, fd = pty.fork()
    if pid == 0:  # pragma: no cover - the child
        os.chdir(REPO)
        os.execve(sys.executable, argv, env)
    seen = b""

    def read_until(needle: bytes, timeout_s: float = 30.0) -> None:
        nonlocal seen
        deadline = time.monotonic() + timeout_s
        while needle not in seen and time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    return
                if not chunk:
                    return
                seen += chunk

    def wait_child(timeout_s: float = 30.0) -> int:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return status
            time.sleep(0.05)
        os.kill(pid, signal.SIGKILL)
        return os.waitpid(pid, 0)[1]

    try:
        read_until(b"Key for 'tty'")
        assert b"Key for 'tty'" in seen, seen
        # The hidden prompt flushes pending input when it turns echo off: type after that.
        deadline = time.monotonic() + 30
        while termios.tcgetattr(fd)[3] & termios.ECHO and time.monotonic() < deadline:
            time.sleep(0.02)
        os.write(fd, KEY.encode() + b"\n")
        read_until(b"config.toml")
    finally:
        status = wait_child()
        os.close(fd)
    assert os.waitstatus_to_exitcode(status) == 0, seen
    assert KEY.encode() not in seen  # hidden input: not echoed, and not printed after
    assert KEY[:4].encode() + "…".encode() in seen
    data = tomllib.loads((amlc_home / "config" / "config.toml").read_text())
    assert data["endpoints"]["tty"]["key"] == KEY
