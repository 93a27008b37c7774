"""Start the load process and follow it, from a process that never imports Locust.

``amlc bench`` builds everything up front (target, bodies, plan), then runs
``python -m aml_client.bench.load.runner`` with that configuration on the child's stdin and reads
its JSON-lines events. The credential stays here: an :class:`~aml_client.bench.auth.AuthFeeder`
writes the current ``Authorization`` value to the child's stdin — the only place the secret
travels — and again before each refresh and when the child reports a 401. The child's
environment holds no secret. Locust (and gevent's patching of the standard library) stays
inside the child.
"""

from __future__ import annotations

import contextlib
import os
import queue
import socket
import subprocess
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aml_client.bench.auth import AuthFeeder
from aml_client.bench.protocol import AuthRequestEvent, LoadConfig, parse_event
from aml_client.config import ENV_KEY, ENV_TOKEN, ENV_TOKEN_COMMAND
from aml_client.errors import ConfigError

if TYPE_CHECKING:
    from aml_client.http.credentials import Credential

__all__ = ["LoadProcess", "check_port_free"]

ROLES = ("local", "master", "worker")
#: Variables that may hold a secret: never passed to a load process.
SECRET_VARIABLES = (ENV_KEY, ENV_TOKEN, ENV_TOKEN_COMMAND)


def _child_env(secret_env: tuple[str, ...] = ()) -> dict[str, str]:
    """The parent's environment without secrets, with this package importable however amlc
    was installed."""
    env = dict(os.environ)
    for name in (*SECRET_VARIABLES, *secret_env):
        env.pop(name, None)
    root = str(Path(__file__).resolve().parents[2])
    current = env.get("PYTHONPATH")
    env["PYTHONPATH"] = root if not current else f"{root}{os.pathsep}{current}"
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


class LoadProcess:
    """One ``aml_client.bench.load.runner`` child: configuration in, events out, logs kept.

    The child runs in a session of its own, as the workers of a distributed run do. Where the
    kernel groups processes by session for CPU time (Linux's autogroup, on by default on most
    distributions), a load process that shares its session with busy jobs gets a slice of that
    session's share and sends late: a delay the corrected latency charges to the endpoint.
    Ctrl-C and SIGTERM reach it through this process (:meth:`interrupt`), and it stops itself,
    results kept, when this process disappears.
    """

    def __init__(
        self,
        role: str,
        config: LoadConfig,
        *,
        on_log: Callable[[str], None] | None = None,
        cwd: str | Path | None = None,
        credential: Credential | None = None,
        secret_env: tuple[str, ...] = (),
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}")
        self.role = role
        self.on_log = on_log
        if credential is not None:
            # No credential now (a failing or expired token command): one error, no load
            # process sending requests that can only be refused.
            credential.secret()
        self.log_tail: deque[str] = deque(maxlen=40)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "aml_client.bench.load.runner", "--role", role],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_child_env(secret_env),
            cwd=cwd,
            text=True,
            encoding="utf-8",
            bufsize=1,
            start_new_session=True,
        )
        assert self.proc.stdin is not None
        # The child ends its test (keeping the results) if this process disappears.
        config = config.model_copy(update={"parent_pid": os.getpid()})
        self.feeder: AuthFeeder | None = None
        try:
            self.proc.stdin.write(config.line())
            self.proc.stdin.flush()
            if credential is not None:
                self.feeder = AuthFeeder(credential, self.proc.stdin, on_error=on_log)
                self.feeder.push_now()
                self.feeder.start()
            else:
                self.proc.stdin.close()
        except BrokenPipeError:  # the child died at once; its stderr says why
            pass
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._log_thread = threading.Thread(target=self._read_logs, daemon=True)
        self._log_thread.start()
        self._event_thread = threading.Thread(target=self._read_events, daemon=True)
        self._event_thread.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _read_logs(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            line = line.rstrip("\n")
            if not line:
                continue
            self.log_tail.append(line)
            if self.on_log is not None:
                self.on_log(line)

    def _read_events(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if not line.strip():
                continue
            event = parse_event(line)
            if isinstance(event, AuthRequestEvent):
                if self.feeder is not None:
                    self.feeder.refused()
                continue
            self._events.put(event.wire())
        self._events.put(None)

    def events(self, poll_s: float = 0.2) -> Iterator[dict[str, Any]]:
        """The child's events until it exits (non-JSON output is passed on as ``output``).

        Lines are read by a thread and handed over through a queue, so a Ctrl-C in the caller
        lands between two short waits and never inside a read of the pipe.
        """
        while True:
            try:
                event = self._events.get(timeout=poll_s)
            except queue.Empty:
                continue
            if event is None:
                return
            yield event

    def wait(self, timeout_s: float | None = None) -> int:
        code = self.proc.wait(timeout=timeout_s)
        self._log_thread.join(timeout=2)
        self._close_stdin()
        return code

    def _close_stdin(self) -> None:
        if self.feeder is not None:
            self.feeder.stop()
        stdin = self.proc.stdin
        if stdin is not None and not stdin.closed:
            with contextlib.suppress(OSError):
                stdin.close()

    def interrupt(self) -> None:
        """Ask the child to end the test (it still reports what it measured)."""
        if self.proc.poll() is None:
            self.proc.send_signal(2)

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._close_stdin()


def check_port_free(host: str, port: int, *, option: str = "--web-port") -> None:
    """Raise :class:`ConfigError` when nothing can listen on ``host:port`` (bound the way
    gevent's server binds it), so a busy port is one clear line, not a load process that
    never serves."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            reason = exc.strerror or str(exc)
            raise ConfigError(
                f"cannot listen on {host}:{port} ({reason}); choose another with {option}"
            ) from None
