"""The load's ``Authorization`` header, kept fresh for the whole run.

The secret never reaches a load process's command line, environment or disk. ``amlc bench``
keeps the credential itself (:class:`AuthFeeder`, in the parent) and writes the current header
to each load process's stdin as one JSON line, again before the token expires and whenever a
load process reports a 401; inside the load process :class:`PushedAuth` holds the latest line
(a master forwards the lines to its local workers). A plain ``locust -f loadtests/locustfile.py``
run has no parent: :class:`CredentialAuth` asks the credential in-process.

No Locust here: the parent imports this module too.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from typing import IO, TYPE_CHECKING, Any

if TYPE_CHECKING:
    from aml_client.http.credentials import Credential

__all__ = ["AuthFeeder", "BenchAuth", "CredentialAuth", "PushedAuth", "auth_line"]

log = logging.getLogger(__name__)

#: A load process asks for a fresh header at most this often after 401s.
REQUEST_INTERVAL_S = 1.0
#: After a failed refresh the credential is asked again after this long, doubling up to
#: RETRY_MAX_S: a failing or expired token command is not run again at once.
RETRY_FIRST_S = 2.0
RETRY_MAX_S = 60.0


def auth_line(value: str | None) -> str:
    """The stdin line that carries a header value (holds the secret: pipe it, never store)."""
    return json.dumps({"type": "auth", "value": value}) + "\n"


class BenchAuth:
    """Where the load's users get the ``Authorization`` value of their next request."""

    def header(self) -> str | None:
        raise NotImplementedError

    def refused(self, value: str) -> None:
        """A request with ``value`` got 401: the token may have expired."""


class PushedAuth(BenchAuth):
    """The latest value the parent pushed; a 401 asks it (through ``on_refused``) for another."""

    def __init__(self, on_refused: Callable[[], None] | None = None) -> None:
        self._value: str | None = None
        self._on_refused = on_refused
        self._asked_at = 0.0
        #: A value arrived (a plain flag: the reader may be a thread the load's greenlets
        #: must not share a lock with).
        self.received = False

    def header(self) -> str | None:
        return self._value

    def set(self, value: str | None) -> None:
        self._value = value
        self.received = True

    def handle_line(self, line: str | bytes) -> bool:
        """Take a pushed line; False when it is not an auth line."""
        try:
            message = json.loads(line)
        except ValueError:
            return False
        if not isinstance(message, dict) or message.get("type") != "auth":
            return False
        value = message.get("value")
        self.set(value if isinstance(value, str) else None)
        return True

    def refused(self, value: str) -> None:
        if value != self._value or self._on_refused is None:
            return  # an older token: a fresh one is already here
        now = time.monotonic()
        if now - self._asked_at < REQUEST_INTERVAL_S:
            return
        self._asked_at = now
        self._on_refused()


class CredentialAuth(BenchAuth):
    """The credential asked in-process (plain Locust runs)."""

    def __init__(self, credential: Credential) -> None:
        self.credential = credential

    def header(self) -> str | None:
        return f"Bearer {self.credential.secret()}"

    def refused(self, value: str) -> None:
        self.credential.invalidate(value.removeprefix("Bearer "))


class AuthFeeder:
    """Parent side: pushes the credential's current header into a load process's stdin,
    before each refresh is due and when the process asks (after a 401)."""

    def __init__(
        self,
        credential: Credential,
        stream: IO[str],
        *,
        on_error: Callable[[str], None] | None = None,
    ) -> None:
        self.credential = credential
        self.stream = stream
        self.on_error = on_error
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._refused = False
        self._sent: str | None = None
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._retry_s = RETRY_FIRST_S
        self._last_error: str | None = None

    def push_now(self) -> bool:
        """Fetch (if due) and push the current header; False when no credential came."""
        from aml_client.errors import AmlcError

        try:
            secret = self.credential.secret()
        except AmlcError as exc:
            message = f"could not refresh the credential: {exc}"
            if self.on_error is not None and message != self._last_error:
                self.on_error(message)  # once, not once per attempt
            self._last_error = message
            return False
        self._last_error = None
        if secret != self._sent:
            with self._lock:
                try:
                    self.stream.write(auth_line(f"Bearer {secret}"))
                    self.stream.flush()
                except (BrokenPipeError, ValueError, OSError):
                    self._stop.set()  # the load process is gone
                    return False
            self._sent = secret
        return True

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="amlc-auth-feeder", daemon=True)
        self._thread.start()

    def refused(self) -> None:
        """A load process reported a 401 with the current header."""
        self._refused = True
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        while not self._stop.is_set():
            if self._refused:
                self._refused = False
                if self._sent is not None:
                    self.credential.invalidate(self._sent)
            if not self.push_now():
                # Backing off: 401s reported meanwhile do not bring the next attempt forward.
                self._stop.wait(self._retry_s)
                self._retry_s = min(self._retry_s * 2, RETRY_MAX_S)
                self._refused = False
                continue
            self._retry_s = RETRY_FIRST_S
            due = self.credential.refresh_due_at()
            wait = None if due == float("inf") else min(max(due - time.time(), 0.05), 300.0)
            self._wake.wait(wait)
            self._wake.clear()


def describe_header(value: str | None) -> dict[str, Any]:
    from aml_client.auth import mask

    return {"auth": "bearer " + mask(value.split(" ", 1)[-1]) if value else "none"}
