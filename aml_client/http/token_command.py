"""Tokens from a command, as git credential helpers and AWS ``credential_process`` do.

``AMLC_TOKEN_COMMAND`` (or a profile's ``token_command``) names a program that prints a bearer
token: plain text, or the JSON of ``az account get-access-token`` (``accessToken`` with
``expiresOn`` local time or ``expires_on`` epoch seconds). It is run without a shell, from the
words of the command line (``shlex``), with no standard input, a bounded output and a deadline
(60 s; a profile's ``token_command_timeout`` or ``AMLC_TOKEN_COMMAND_TIMEOUT``). It runs in a
process group of its own: at its exit (a child left in the background is not waited for), at the
deadline or on too much output, the whole group is killed. A token that has expired, or expires
within ``MIN_TOKEN_LIFE_S``, is an error rather than a reason to run the command again at once.
A failure is one :class:`~aml_client.errors.CredentialError` line that names the program (never
its arguments, which may hold a secret) and never shows what it printed on standard output (that
may hold a token), only the last line of its errors.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import shlex
import signal
import subprocess
import time
from datetime import datetime
from typing import Any

from aml_client.errors import CredentialError

__all__ = ["TokenCommand", "parse_token_output"]

#: Longest a token command may run.
COMMAND_TIMEOUT_S = 60.0
#: Most output read from a token command (a token is a few KB).
MAX_OUTPUT_BYTES = 64 * 1024
#: A token that expires sooner than this is refused rather than used (and fetched again at once).
MIN_TOKEN_LIFE_S = 3.0
#: How long a token printed without an expiry is trusted before the command runs again.
PLAIN_TOKEN_TTL_S = 300.0

_TOKEN_KEYS = ("accessToken", "access_token", "token")
_EXPIRY_KEYS = ("expires_on", "expiresOn", "expires_at", "expiresAt", "Expiration", "expiry")


class TokenCommand:
    """A callable ``() -> (token, expires_at_epoch)`` that runs the command each time."""

    def __init__(self, command: str, *, timeout_s: float | None = None):
        try:
            self.argv = shlex.split(command)
        except ValueError as exc:
            raise CredentialError(f"token command cannot be split into words: {exc}") from None
        if not self.argv:
            raise CredentialError("token command is empty")
        self.timeout_s = COMMAND_TIMEOUT_S if timeout_s is None else timeout_s

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
        now = time.time()
        try:
            token, expires_at = parse_token_output(stdout, now=now)
        except ValueError as exc:
            raise CredentialError(f"token command `{self.program}`: {exc}") from None
        if expires_at - now < MIN_TOKEN_LIFE_S:
            # Running it again at once would only print the same token: say so instead.
            life = expires_at - now
            when = f"expired {_ago(-life)} ago" if life <= 0 else f"expires in {life:.0f} s"
            raise CredentialError(
                f"token command `{self.program}` printed a token that {when}; "
                "check its output (and the clock)"
            )
        return token, expires_at


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
    """Run ``argv`` without a shell, in a process group of its own, for at most ``timeout_s``.

    At most MAX_OUTPUT_BYTES of each stream are kept. Reading stops when the command itself
    exits, not when its pipes close (a child left in the background may hold them open for
    ever); then, or at the deadline, or on too much output, the whole group is killed, so
    nothing it started lingers. A helper that must outlive it (an agent) leaves the group with
    ``setsid``, as daemons do.
    """
    deadline = time.monotonic() + timeout_s
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            close_fds=True,
            start_new_session=True,
        )
    except OSError as exc:
        raise CredentialError(
            f"token command `{program}` cannot run: {exc.strerror or exc}"
        ) from None
    assert proc.stdout is not None and proc.stderr is not None
    reader = _BoundedOutput(proc.stdout.fileno(), proc.stderr.fileno(), program)
    exited = _ExitWatch(proc)
    with selectors.DefaultSelector() as selector:
        for fd in reader.streams:
            os.set_blocking(fd, False)
            selector.register(fd, selectors.EVENT_READ)
        if exited.fd is not None:
            selector.register(exited.fd, selectors.EVENT_READ)
        try:
            while reader.failure is None and not exited.check():
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    reader.failure = (
                        f"token command `{program}` did not finish within {timeout_s:g} s "
                        "(stopped, with everything it started; token_command_timeout or "
                        "AMLC_TOKEN_COMMAND_TIMEOUT allows longer)"
                    )
                    break
                wait = remaining if exited.fd is not None else min(remaining, _POLL_S)
                for key, _ in selector.select(timeout=wait):
                    if key.fd in reader.streams and not reader.take(key.fd):
                        selector.unregister(key.fd)
            if reader.failure is None:
                # It has exited: what it printed is in the pipes already; a child that keeps
                # them open is not waited for.
                for fd in [fd for fd in selector.get_map() if fd in reader.streams]:
                    reader.take(fd)
        finally:
            _kill_group(proc.pid)
            exited.close()
            code = proc.wait()
            proc.stdout.close()
            proc.stderr.close()
    if reader.failure is not None:
        raise CredentialError(reader.failure)
    return bytes(reader.kept["out"]), bytes(reader.kept["err"]), code


class _BoundedOutput:
    """What a command printed on its two pipes, at most MAX_OUTPUT_BYTES of each kept;
    ``failure`` says why reading stopped early."""

    def __init__(self, out_fd: int, err_fd: int, program: str):
        self.streams = {out_fd: "out", err_fd: "err"}
        self.kept = {"out": bytearray(), "err": bytearray()}
        self.failure: str | None = None
        self._program = program

    def take(self, fd: int) -> bool:
        """Read what ``fd`` holds now; False at its end. Sets ``failure`` on too much output."""
        name = self.streams[fd]
        for _ in range(8):  # bounded: a child that writes on for ever cannot hold us here
            try:
                chunk = os.read(fd, 65536)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            buffer = self.kept[name]
            if name == "out" and len(buffer) + len(chunk) > MAX_OUTPUT_BYTES:
                self.failure = (
                    f"token command `{self._program}` printed more than "
                    f"{MAX_OUTPUT_BYTES // 1024} KiB"
                )
                return False
            buffer += chunk[: MAX_OUTPUT_BYTES - len(buffer)]
            # Standard error past the limit is read on (the command must not block on it)
            # and dropped.
        return True


#: How often the exit is checked where the system cannot signal it (no pidfd).
_POLL_S = 0.05


class _ExitWatch:
    """Whether a child has exited, without reaping it where the system allows (``waitid``
    with ``WNOWAIT``): its id, and so its process group's, cannot be reused before the group
    is killed."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self.fd: int | None = None
        pidfd_open = getattr(os, "pidfd_open", None)
        if pidfd_open is not None:
            try:
                self.fd = pidfd_open(proc.pid)
            except OSError:
                self.fd = None
        self._done = False

    def check(self) -> bool:
        if self._done:
            return True
        waitid = getattr(os, "waitid", None)
        if waitid is None:  # macOS: reaping is the only way to tell
            self._done = self.proc.poll() is not None
            return self._done
        try:
            result = waitid(os.P_PID, self.proc.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
        except ChildProcessError:
            result = True  # reaped elsewhere: gone all the same
        self._done = result is not None
        return self._done

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def _kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def _ago(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.0f} h"


def _last_line(stderr: bytes) -> str:
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines()]
    lines = [line for line in lines if line]
    if not lines:
        return ""
    last = lines[-1]
    return last if len(last) <= 160 else last[:159] + "…"
