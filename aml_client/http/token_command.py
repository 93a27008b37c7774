"""Tokens from a command, as git credential helpers and AWS ``credential_process`` do.

``AMLC_TOKEN_COMMAND`` (or a profile's ``token_command``) names a program that prints a bearer
token: plain text, or the JSON of ``az account get-access-token`` (``accessToken`` with
``expiresOn`` local time or ``expires_on`` epoch seconds). It is run without a shell, from the
words of the command line (``shlex``), with no standard input, a bounded run time and a bounded
output; a failure is one :class:`~aml_client.errors.CredentialError` line that never shows what it
printed on standard output (that may hold a token), only the last line of its errors.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import threading
import time
from datetime import datetime
from typing import Any

from aml_client.errors import CredentialError

__all__ = ["TokenCommand", "parse_token_output"]

#: Longest a token command may run.
COMMAND_TIMEOUT_S = 60.0
#: Most output read from a token command (a token is a few KB).
MAX_OUTPUT_BYTES = 64 * 1024
#: How long a token printed without an expiry is trusted before the command runs again.
PLAIN_TOKEN_TTL_S = 300.0

_TOKEN_KEYS = ("accessToken", "access_token", "token")
_EXPIRY_KEYS = ("expires_on", "expiresOn", "expires_at", "expiresAt", "Expiration", "expiry")


class TokenCommand:
    """A callable ``() -> (token, expires_at_epoch)`` that runs the command each time."""

    def __init__(self, command: str, *, timeout_s: float = COMMAND_TIMEOUT_S):
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise CredentialError(f"token command: cannot parse {command!r}: {exc}") from None
        if not self.argv:
            raise CredentialError("token command is empty")
        self.timeout_s = timeout_s

    @property
    def program(self) -> str:
        return os.path.basename(self.argv[0])

    def __repr__(self) -> str:
        return f"TokenCommand({self.program!r})"

    def __call__(self) -> tuple[str, float]:
        stdout, stderr, code = _run_bounded(self.argv, self.timeout_s, self.program)
        if code != 0:
            last = _last_line(stderr)
            detail = f": {last}" if last else ""
            raise CredentialError(f"token command `{self.program}` exited with {code}{detail}")
        try:
            return parse_token_output(stdout, now=time.time())
        except ValueError as exc:
            raise CredentialError(f"token command `{self.program}`: {exc}") from None


def parse_token_output(output: bytes | str, *, now: float) -> tuple[str, float]:
    """``(token, expires_at_epoch)`` from a command's output (plain text or az's JSON)."""
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output
    text = text.strip()
    if not text:
        raise ValueError("printed no token")
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError:
            raise ValueError("printed JSON that cannot be read") from None
        if not isinstance(data, dict):
            raise ValueError("printed JSON that is not an object")
        token = next((data[k] for k in _TOKEN_KEYS if isinstance(data.get(k), str)), None)
        if not token:
            raise ValueError(f"printed JSON without {' or '.join(_TOKEN_KEYS[:2])}")
        expiry = next((data[k] for k in _EXPIRY_KEYS if data.get(k) not in (None, "")), None)
        expires_at = _expiry(expiry) if expiry is not None else now + PLAIN_TOKEN_TTL_S
        return _checked(token), expires_at
    if len(text.splitlines()) > 1:
        raise ValueError("printed several lines; expected one token or a JSON object")
    return _checked(text), now + PLAIN_TOKEN_TTL_S


def _checked(token: str) -> str:
    token = token.strip()
    if not token or any(ch.isspace() or ord(ch) < 32 for ch in token):
        raise ValueError("printed a token with spaces or control characters")
    return token


def _expiry(value: Any) -> float:
    """Epoch seconds from a number, a numeric string, or a date (az prints local time)."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            pass
        try:
            when = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            raise ValueError(f"cannot read the expiry {value[:40]!r}") from None
        return when.timestamp()  # a naive time is local, as az prints it
    raise ValueError("cannot read the expiry")


def _run_bounded(argv: list[str], timeout_s: float, program: str) -> tuple[bytes, bytes, int]:
    """Run ``argv`` without a shell; at most MAX_OUTPUT_BYTES of each stream are kept."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
        )
    except OSError as exc:
        raise CredentialError(
            f"token command `{program}` cannot run: {exc.strerror or exc}"
        ) from None
    assert proc.stdout is not None and proc.stderr is not None
    kept: dict[str, bytes] = {"out": b"", "err": b""}
    overflow = threading.Event()

    def drain(name: str, stream: Any) -> None:
        buffer = bytearray()
        while chunk := stream.read(8192):
            if len(buffer) < MAX_OUTPUT_BYTES:
                buffer += chunk[: MAX_OUTPUT_BYTES - len(buffer)]
            elif name == "out":
                overflow.set()
                proc.kill()
                break
        kept[name] = bytes(buffer)

    readers = [
        threading.Thread(target=drain, args=("out", proc.stdout), daemon=True),
        threading.Thread(target=drain, args=("err", proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    try:
        code = proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise CredentialError(
            f"token command `{program}` did not finish within {timeout_s:g} s"
        ) from None
    finally:
        for reader in readers:
            reader.join(timeout=5)
        proc.stdout.close()
        proc.stderr.close()
    if overflow.is_set():
        raise CredentialError(
            f"token command `{program}` printed more than {MAX_OUTPUT_BYTES // 1024} KiB"
        )
    return kept["out"], kept["err"], code


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= 160 else last[:159] + "…"
