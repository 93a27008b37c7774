#!/usr/bin/env python3
"""``amlc`` for a test's shell: the installed ``amlc``, run in a process forked from a zygote.

The README test runs the tour's commands as written, in ``bash``; each ``amlc`` there would be
a fresh interpreter spending a few tenths of a second of CPU on imports (typer, rich, click,
pydantic, httpx) before doing anything. ``forked_cli.launcher()`` puts this script first on
such a shell's ``PATH`` as ``amlc``, run by the tests' Python with ``-I -S`` and only built-in
modules imported (about 15 ms of CPU): it asks a zygote (tests/support/cli_zygote.py), which
has already imported the libraries it preloads, to fork the installed ``amlc`` console script,
and waits for it. What the shell sees is what the installed ``amlc`` gives it:

- the same command: the next ``amlc`` on the ``PATH``, run by the zygote with this process's
  arguments, environment (less ``AMLC_TEST_ZYGOTE``), working directory and standard streams
  (the same open files: pipes, redirections and ``$(…)`` work as they would);
- the same exit status: the command's exit code, or, when a signal ended it, the same signal
  ends this process;
- Ctrl-C: SIGINT, SIGTERM and SIGHUP sent to this process go to the command's process group
  (it leads one, as a shell's job does, so they also reach the processes it started, as a
  terminal's Ctrl-C would); a signal ignored when this process started stays ignored;
- nothing left running: when this process is killed (SIGKILL: a test's timeout), the kernel
  kills the command too (the zygote's child asks for that on its connection);
- a fresh ``amlc`` (exec, same pid) when the zygote cannot stand in for it: no
  ``AMLC_TEST_ZYGOTE``, an environment that would start Python differently (a ``PYTHON*``,
  ``LANG`` or ``LC_*`` variable other than the zygote's, as read from ``startup`` beside its
  socket), an ``amlc`` that is not a script of this Python, or a zygote that does not answer.

The zygote's Python decided the streams' encoding and buffering when it started, from the same
``PYTHON*`` and locale variables; it saw pipes, not a terminal (as in the tests).
"""

import _json
import _signal  # type: ignore[import-not-found]  # (no stub; "signal" imports enum)
import _socket
import os
import sys

#: The zygote's socket; ``startup`` beside it holds its ``PYTHON*``/locale variables.
VARIABLE = "AMLC_TEST_ZYGOTE"
#: Variables that change how an interpreter starts.
STARTUP = (b"PYTHON", b"LANG", b"LC_")
FORWARDED = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP)


def startup(environ: dict[bytes, bytes]) -> bytes:
    """The variables of ``environ`` that change how an interpreter starts, as one string."""
    return b"\0".join(sorted(k + b"=" + v for k, v in environ.items() if k.startswith(STARTUP)))


def _real_amlc() -> str | None:
    """The ``amlc`` the shell would run were this one not first on the ``PATH``."""
    me = os.path.realpath(__file__)
    for folder in os.environ.get("PATH", os.defpath).split(os.pathsep):
        candidate = os.path.abspath(os.path.join(folder or ".", "amlc"))
        if (os.path.isfile(candidate) and os.access(candidate, os.X_OK)
                and os.path.realpath(candidate) != me):  # fmt: skip
            return candidate
    return None


def _zygote_fits(socket_path: str, script: str) -> bool:
    """Whether the zygote would run ``script`` as a fresh process would: a script of this
    Python (the zygote's), started with the zygote's ``PYTHON*`` and locale variables."""
    try:
        with open(os.path.join(os.path.dirname(socket_path), "startup"), "rb") as saved:
            if saved.read() != startup(dict(os.environb)):
                return False
        with open(script, "rb") as code:
            first = code.readline(4096)
    except OSError:
        return False
    interpreter = first[2:].strip().decode(errors="replace") if first.startswith(b"#!") else ""
    return os.path.dirname(interpreter) == os.path.dirname(sys.executable) and (
        os.path.realpath(interpreter) == os.path.realpath(sys.executable)
    )


def _exec(script: str) -> None:
    """Become ``script`` (what the shell would have run), with the signals a shell leaves."""
    for name in ("SIGPIPE", "SIGXFSZ"):  # Python ignores them; a shell's child does not
        _signal.signal(getattr(_signal, name), _signal.SIG_DFL)
    os.execv(script, ["amlc", *sys.argv[1:]])


def _die_by(signum: int) -> None:
    _signal.signal(signum, _signal.SIG_DFL)
    _signal.pthread_sigmask(_signal.SIG_UNBLOCK, [signum])
    os.kill(os.getpid(), signum)
    os._exit(128 + signum)


class _Child:
    """The forked command, as far as signals go: each one received is sent on once."""

    def __init__(self) -> None:
        self.pid: int | None = None
        self.ended = False
        self.signals: list[int] = []  # received, in order
        self.pending: list[int] = []  # received before the command was there

    def on_signal(self, signum: int, _frame: object) -> None:
        self.signals.append(signum)
        if self.pid is None:
            self.pending.append(signum)
        elif not self.ended:
            self.forward(signum)

    def forward(self, signum: int) -> None:
        try:  # noqa: SIM105 (contextlib is an import this script does without)
            os.killpg(self.pid, signum)  # type: ignore[arg-type]
        except ProcessLookupError:
            pass

    def started(self, pid: int) -> None:
        self.pid = pid  # from here on the handler sends a signal on itself
        while self.pending:
            self.forward(self.pending.pop(0))


def _request(script: str) -> bytes:
    enc = _json.encode_basestring_ascii
    env = ",".join(f"{enc(k)}:{enc(v)}" for k, v in os.environ.items())
    args = ",".join(enc(arg) for arg in sys.argv[1:])
    return (f'{{"args":[{args}],"env":{{{env}}},"cwd":{enc(os.getcwd())},'
            f'"script":{enc(script)},"group":true}}\n').encode()  # fmt: skip


def _run(socket_path: str, script: str, child: _Child) -> int | None:
    """The command's exit code, from the zygote; None when it did not start it."""
    try:
        request = _request(script)
        conn = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
        conn.connect(socket_path)
        fds = b"".join(fd.to_bytes(4, sys.byteorder) for fd in (0, 1, 2))
        sent = conn.sendmsg([request], [(_socket.SOL_SOCKET, _socket.SCM_RIGHTS, fds)])
        conn.sendall(request[sent:])
    except OSError:
        return None
    answer = b""
    while True:  # "PID\n", later "exit N\n", then the end of the connection
        try:
            chunk = conn.recv(4096)
        except OSError:
            chunk = b""
        if not chunk:
            break
        answer += chunk
        lines = answer.split(b"\n")
        if child.pid is None and len(lines) > 1:
            child.started(int(lines[0]))
        if len(lines) > 2:
            child.ended = True  # it answered its exit code: no signal for it any more
    lines = answer.split(b"\n")
    if len(lines) < 2:
        return None
    if len(lines) > 2 and lines[1].startswith(b"exit "):
        return int(lines[1].split()[1])
    # Ended without an answer: by the signal it was sent, else killed.
    _die_by(child.signals[-1] if child.signals else _signal.SIGKILL)
    return None


def main() -> None:
    child = _Child()
    for signum in FORWARDED:
        if _signal.getsignal(signum) != _signal.SIG_IGN:
            _signal.signal(signum, child.on_signal)
    socket_path = os.environ.pop(VARIABLE, "")
    script = _real_amlc()
    if script is None:
        sys.stderr.write("amlc: command not found\n")
        sys.exit(127)
    code = None
    if socket_path and _zygote_fits(socket_path, script):
        code = _run(socket_path, script, child)
    if code is None:  # run here what the shell would have run, unless already interrupted
        if child.signals:
            _die_by(child.signals[-1])
        _exec(script)
    sys.exit(code)


if __name__ == "__main__":
    main()
