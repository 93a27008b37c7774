"""A process that has imported amlc and its libraries, and forks one real ``amlc`` per request.

    python tests/support/cli_zygote.py SOCKET      # prints "ready", serves until stdin closes

A request is one connection on the Unix socket ``SOCKET``: a JSON object (``args``, ``env``,
``cwd``) with the caller's stdin, stdout and stderr passed as file descriptors. The forked
child answers its pid, becomes ``python -m aml_client ARGS`` (those streams, that environment
and directory, ``aml_client.cli`` imported afresh so its consoles read the new environment),
and answers ``exit N`` once it ends as Python would: non-daemon threads joined, ``atexit``
run, streams flushed. See tests/support/forked_cli.py for the caller's side.

Two optional fields: ``script`` (a console script, such as the installed ``amlc``, run as
``python SCRIPT ARGS`` would run it instead of ``-m aml_client``) and ``group`` (true: the
child leads a process group of its own, which the caller signals as a terminal would its
foreground job). The child ends (SIGKILL) when its caller's end of the connection closes
before it has ended, so a caller that is killed leaves no command running.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import importlib
import json
import os
import pkgutil
import runpy
import select
import signal
import socket
import sys
import threading
import traceback

#: What is imported again in each child: it builds rich consoles from the environment.
FRESH = ("aml_client.cli", "aml_client.__main__")
#: Libraries that the commands import only once they run, shared like typer and rich: the HTTP
#: client with the transport it loads on its first request, and pydantic's model machinery.
#: Importing them was most of what a short command cost (about 0.1 s of CPU each time).
LIBRARIES = (
    "asyncio", "ssl", "orjson", "httpx", "httpcore", "h11", "anyio", "anyio.to_thread",
    "anyio._backends._asyncio", "concurrent.futures.thread", "encodings.idna",
    "encodings.utf_8_sig",
    "pydantic", "pydantic.main", "pydantic.fields", "pydantic.types", "pydantic.type_adapter",
)  # fmt: skip


#: amlc's modules that the zygote leaves alone: the load process's (Locust and gevent patch
#: the standard library when imported), the local endpoint's server side (it reads its
#: environment on import) and the pytest plugin. Every other module reads no environment and
#: starts nothing on import (tests/test_ci.py checks it), so the children share them; they
#: were most of what a command still cost (0.1 to 0.25 s of CPU each time).
NOT_PRELOADED = (
    "aml_client.__main__", "aml_client.bench.load", "aml_client.local.scoring",
    "aml_client.local._wsgi", "aml_client.pytest_plugin",
)  # fmt: skip


def _preload() -> None:
    import aml_client

    for module in pkgutil.walk_packages(aml_client.__path__, "aml_client."):
        if not module.name.startswith(NOT_PRELOADED):
            importlib.import_module(module.name)
    for name in LIBRARIES:
        importlib.import_module(name)
    for name in [n for n in sys.modules if n == FRESH[0] or n.startswith(FRESH[0] + ".")]:
        del sys.modules[name]
    del aml_client.cli  # type: ignore[attr-defined]


def _exit_code(error: SystemExit) -> int:
    """What the interpreter makes of ``SystemExit(code)``."""
    if error.code is None:
        return 0
    if isinstance(error.code, int):
        return error.code
    print(error.code, file=sys.stderr)
    return 1


def _run(request: dict) -> int:
    os.chdir(request["cwd"])
    os.environ.clear()
    os.environ.update(request["env"])
    script = request.get("script")
    sys.path[0] = os.path.dirname(os.path.realpath(script)) if script else request["cwd"]
    sys.argv = [script or "-m", *request["args"]]
    try:
        if script:
            runpy.run_path(script, run_name="__main__")
        else:
            runpy.run_module("aml_client", run_name="__main__", alter_sys=True)
        code = 0
    except SystemExit as error:
        code = _exit_code(error)
    except KeyboardInterrupt:
        traceback.print_exc()
        code = 128 + signal.SIGINT
    except BaseException:
        traceback.print_exc()
        code = 1
    try:
        threading._shutdown()  # type: ignore[attr-defined]
        atexit._run_exitfuncs()
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    return code


def _end_with(conn: socket.socket) -> None:
    """Have the kernel send this process SIGKILL when the caller's end of ``conn`` closes (the
    caller sends nothing after its request); a caller already gone fails the first send."""
    fcntl.fcntl(conn.fileno(), fcntl.F_SETOWN, os.getpid())
    fcntl.fcntl(conn.fileno(), fcntl.F_SETSIG, signal.SIGKILL)
    flags = fcntl.fcntl(conn.fileno(), fcntl.F_GETFL)
    fcntl.fcntl(conn.fileno(), fcntl.F_SETFL, flags | os.O_ASYNC)


def _child(conn: socket.socket) -> None:
    signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    code = 1
    try:
        message, fds, _, _ = socket.recv_fds(conn, 1 << 22, 3)
        while not message.endswith(b"\n"):
            message += conn.recv(1 << 22)
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
            os.close(fd)
        request = json.loads(message)
        if request.get("group"):
            os.setpgid(0, 0)
        _end_with(conn)
        conn.sendall(f"{os.getpid()}\n".encode())
        code = _run(request)
        conn.sendall(f"exit {code}\n".encode())
    finally:
        os._exit(code)


def main(path: str) -> None:
    _preload()
    sys.stdout.flush()
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # the kernel reaps the children
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(path)
    server.listen(128)
    print("ready", flush=True)
    while True:
        readable, _, _ = select.select([server, 0], [], [])
        if 0 in readable and not os.read(0, 1024):
            return  # the caller went away
        if server in readable:
            conn, _ = server.accept()
            sys.stdout.flush()
            sys.stderr.flush()
            if os.fork() == 0:
                server.close()
                _child(conn)
            conn.close()


if __name__ == "__main__":
    main(sys.argv[1])
