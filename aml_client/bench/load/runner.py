"""The load process: ``python -m aml_client.bench.load.runner --role local|master|worker``.

Locust is imported first thing, so gevent patches the standard library before anything else
uses it; this is why the load runs in its own process and ``amlc`` itself never imports Locust.

Protocol with the parent (``amlc bench``):

* stdin: one :class:`~aml_client.bench.protocol.LoadConfig` JSON line (target without the
  secret, plan, report root, role options), validated before anything starts — then, for an
  authenticated target, ``auth`` lines with the current ``Authorization`` value, for as long as
  the run lasts (see :mod:`aml_client.bench.auth`). The secret never goes on a command line,
  into the environment or into a file.
* stdout: :data:`~aml_client.bench.protocol.LoadEvent` JSON lines (status, progress, web,
  result, error, auth_request); ``auth_request`` asks the parent for a fresh credential after
  a 401.
* stderr: logs (never the secret).

A master started with ``local_workers = N`` launches N worker processes of this same module on
127.0.0.1 (their own sessions, so a Ctrl-C reaches the master only; the master then tells them
to quit), hands each the target over its stdin and forwards the auth lines it receives; their
requests for a fresh credential come back as Locust messages.
"""

from __future__ import annotations

import argparse
import collections
import gc
import logging
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

import gevent
import locust
import locust.runners
from locust import argument_parser
from locust.env import Environment
from locust.runners import MasterRunner
from pydantic import ValidationError

from aml_client.bench.auth import PushedAuth
from aml_client.bench.load.engine import Engine, install, json_line
from aml_client.bench.load.results_hook import results_wanted
from aml_client.bench.load.user import ScoringUser
from aml_client.bench.protocol import (
    AuthRequestEvent,
    ErrorEvent,
    Event,
    LoadConfig,
    MasterOptions,
    StatusEvent,
    WebEvent,
    WebOptions,
    WorkerOptions,
)
from aml_client.bench.target import RunTarget
from aml_client.errors import AmlcError, ConfigError

log = logging.getLogger("aml_client.bench.load.runner")

#: Workers report to the master every second (Locust: 3 s) so live progress stays current.
WORKER_REPORT_INTERVAL_S = 1.0
#: How long a master waits for its local worker processes to connect.
LOCAL_WORKERS_WAIT_S = 60.0
#: How long a master waits for its local workers to end after the run before stopping them,
#: and how long when they write their results directories (a busy machine needs that long).
WORKER_EXIT_WAIT_S = 10.0
WORKER_RESULTS_WAIT_S = 60.0
#: How long the web UI may take to start listening.
WEB_UI_START_S = 30.0
#: How long a load process waits for its first credential from the parent.
FIRST_AUTH_WAIT_S = 120.0
#: Locust message a worker sends its master after a 401.
MSG_AUTH_REQUEST = "amlc_auth_request"


class _Emitter:
    """Writes the JSON-lines protocol to stdout (or nowhere)."""

    def __init__(self, stream: TextIO | None) -> None:
        self.stream = stream

    def __call__(self, event: Event) -> None:
        if self.stream is None:
            return
        try:
            self.stream.write(json_line(event.wire()) + "\n")
            self.stream.flush()
        except (BrokenPipeError, ValueError):  # the parent went away; keep the run going
            self.stream = None


def _setup_logging() -> None:
    level = logging.INFO if os.environ.get("AMLC_DEBUG") == "1" else logging.WARNING
    logging.basicConfig(
        level=level, stream=sys.stderr, format="%(levelname)s %(name)s: %(message)s"
    )


def _environment() -> Environment:
    environment = Environment(user_classes=[ScoringUser], catch_exceptions=True)
    # Everything imported and built so far lives as long as the process: out of the garbage
    # collector's sight, a full collection during the load stays short (as Locust's own main).
    gc.collect()
    gc.freeze()
    return environment


def _stop_on_signals(environment: Environment) -> None:
    """Ctrl-C / SIGTERM end the test properly: measurements so far are kept and reported."""

    def stop() -> None:
        runner = environment.runner
        if runner is not None:
            gevent.spawn(runner.quit)

    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, stop)


def _watch_parent(environment: Environment, parent_pid: int) -> None:
    """End the test (results kept) if the process that started this one goes away."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            gevent.sleep(1.0)
        log.warning("the parent process exited; stopping the load")
        runner = environment.runner
        if runner is not None:
            runner.quit()

    gevent.spawn(watch)


def _start_web_ui(
    environment: Environment, engine: Engine, web: WebOptions, emit: _Emitter
) -> None:
    """Locust's web UI with the HDR tab, answering only this machine and whoever holds the
    per-run secret (see :mod:`aml_client.bench.load.webguard`); its address goes to the parent."""
    from aml_client.bench.launch import check_port_free
    from aml_client.bench.load.webguard import TOKEN_PARAM, new_token, protect
    from aml_client.bench.load.webui import add_hdr_tab, keep_target

    host, port = web.host, web.port
    check_port_free(host, port)
    # Pre-fill the start form with the command line's users and spawn rate.
    parser = argument_parser.get_empty_argument_parser()
    argument_parser.setup_parser_arguments(parser)
    options = parser.parse(args=[])
    options.num_users, options.spawn_rate = engine.plan.users, engine.plan.spawn_rate
    environment.parsed_options = options
    web_ui = environment.create_web_ui(host=host, port=port, delayed_start=True)
    add_hdr_tab(environment, engine)
    keep_target(environment, engine.target.base_url)
    token = new_token()
    protect(web_ui, token=token)
    web_ui.start()
    deadline = time.monotonic() + WEB_UI_START_S
    while not (web_ui.server is not None and web_ui.server.started):
        if web_ui.greenlet is None or web_ui.greenlet.dead or time.monotonic() > deadline:
            # Otherwise the run would wait forever for a UI nobody can open.
            raise ConfigError(f"the web UI cannot listen on {host}:{port}")
        gevent.sleep(0.05)
    base = f"http://{host}:{port}"
    emit(WebEvent(url=f"{base}/?{TOKEN_PARAM}={token}",
                       hdr_url=f"{base}/hdr?{TOKEN_PARAM}={token}"))


def _spawn_local_workers(
    count: int, port: int, config: LoadConfig, auth_line: bytes | None
) -> list[subprocess.Popen[bytes]]:
    """Worker processes with the target on stdin (kept open for fresh credentials)."""
    worker_config = LoadConfig(
        target=config.target,
        plan=config.plan,
        report_root=None,
        worker=WorkerOptions(master_host="127.0.0.1", master_port=port),
        parent_pid=os.getpid(),
        # Locust's own statistics only feed its web UI
        web=config.web,
    )
    payload = worker_config.line().encode("utf-8") + (auth_line or b"")
    procs = []
    for _ in range(count):
        proc = subprocess.Popen(
            [sys.executable, "-m", "aml_client.bench.load.runner", "--role", "worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            start_new_session=True,
        )
        assert proc.stdin is not None
        proc.stdin.write(payload)
        proc.stdin.flush()
        procs.append(proc)
    return procs


def _forward(procs: list[subprocess.Popen[bytes]], line: bytes) -> None:
    for proc in procs:
        if proc.stdin is None or proc.poll() is not None:
            continue
        try:
            proc.stdin.write(line)
            proc.stdin.flush()
        except (BrokenPipeError, OSError, ValueError):
            pass


class _Stdin:
    """This process's stdin: the configuration line, then auth lines for the whole run.

    Lines are read by a native thread with plain blocking reads (gevent would make the pipe
    non-blocking, and a child process can turn that off again under it, freezing the hub); the
    thread only stores what it read, and greenlets pick it up.
    """

    def __init__(self) -> None:
        # Raw reads of the descriptor: a buffered stdin's lock held by a reading thread would
        # abort the interpreter's shutdown.
        self._fd = sys.stdin.fileno()
        self._pending = b""
        self.lines: collections.deque[bytes] = collections.deque()

    def _readline(self) -> bytes:
        """One line (with its newline), or b"" at the end of input."""
        while b"\n" not in self._pending:
            try:
                chunk = os.read(self._fd, 65536)
            except OSError:
                chunk = b""
            if not chunk:
                line, self._pending = self._pending, b""
                return line
            self._pending += chunk
        line, _, self._pending = self._pending.partition(b"\n")
        return line + b"\n"

    def config(self) -> LoadConfig:
        line = self._readline()
        if not line.strip():
            raise RuntimeError("no configuration on stdin")
        return LoadConfig.model_validate_json(line)

    def follow_auth(self, auth: PushedAuth, on_line: Any = None) -> None:
        """Take auth lines until stdin closes (``on_line`` also gets each one, in a greenlet)."""
        from gevent.monkey import get_original

        def read() -> None:  # a native thread: touches no gevent object
            while line := self._readline():
                if auth.handle_line(line) and on_line is not None:
                    self.lines.append(line)

        get_original("_thread", "start_new_thread")(read, ())
        if on_line is not None:

            def forward() -> None:
                while True:
                    while self.lines:
                        on_line(self.lines.popleft())
                    gevent.sleep(0.05)

            gevent.spawn(forward)

    @staticmethod
    def wait_first(auth: PushedAuth) -> None:
        waited = 0.0
        while not auth.received:
            if waited > FIRST_AUTH_WAIT_S:
                raise RuntimeError("no credential arrived from the parent process")
            gevent.sleep(0.02)
            waited += 0.02


def _pushed_auth(
    target: RunTarget, stdin: _Stdin | None, on_refused: Any, on_line: Any = None
) -> PushedAuth | None:
    """The target's pushed credential (waits for the first one), or None without auth."""
    if not target.authenticated or stdin is None:
        return None
    auth = PushedAuth(on_refused)
    stdin.follow_auth(auth, on_line)
    stdin.wait_first(auth)
    target.auth = auth
    return auth


def _reap(procs: list[subprocess.Popen[bytes]]) -> None:
    """Wait (bounded) for local workers to end: longer when they write results after the run."""
    timeout_s = WORKER_RESULTS_WAIT_S if results_wanted() else WORKER_EXIT_WAIT_S
    deadline = time.monotonic() + timeout_s
    for proc in procs:
        while proc.poll() is None and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def _install_engine(
    environment: Environment, target: RunTarget, config: LoadConfig, emit: _Emitter
) -> Engine:
    """The engine of a local or master process, stopped by signals and by its parent's end."""
    engine = install(
        environment,
        target,
        config.plan,
        emit=emit,
        report_root=config.report_root,
        headless=config.web is None,
        locust_stats=config.web is not None,
    )
    engine.live_metrics = config.live_metrics
    _stop_on_signals(environment)
    if config.parent_pid:
        _watch_parent(environment, config.parent_pid)
    return engine


def run_local(config: LoadConfig, emit: _Emitter, stdin: _Stdin | None = None) -> int:
    target = RunTarget.from_wire(config.target)
    _pushed_auth(target, stdin, lambda: emit(AuthRequestEvent()))
    plan = config.plan
    environment = _environment()
    runner = environment.create_local_runner()
    engine = _install_engine(environment, target, config, emit)
    if config.web is not None:
        _start_web_ui(environment, engine, config.web, emit)
    else:
        emit(StatusEvent(message=f"running: {plan.describe()}"))
        runner.start(plan.users, plan.spawn_rate)
    runner.greenlet.join()
    return 0


def _wait_for_workers(
    runner: MasterRunner, options: MasterOptions, procs: list[subprocess.Popen[bytes]],
    emit: _Emitter,
) -> None:
    expect = options.local_workers or options.expect_workers
    emit(StatusEvent(
        message=f"waiting for {expect} worker{'' if expect == 1 else 's'} "
        f"on {options.bind_host}:{runner.server.port}"
    ))
    wait_s = LOCAL_WORKERS_WAIT_S if options.local_workers else options.wait_s
    started = time.monotonic()
    while len(runner.clients.ready) < expect:
        if any(p.poll() is not None for p in procs):
            raise RuntimeError("a worker process exited before the test started")
        if time.monotonic() - started > wait_s:
            raise RuntimeError(
                f"only {len(runner.clients.ready)} of {expect} workers connected "
                f"within {wait_s:g} s"
            )
        gevent.sleep(0.1)
    # Let each worker finish installing its message handlers before the plan is sent.
    gevent.sleep(0.5)


def run_master(config: LoadConfig, emit: _Emitter, stdin: _Stdin | None = None) -> int:
    target = RunTarget.from_wire(config.target)
    procs: list[subprocess.Popen[bytes]] = []
    pushed = _pushed_auth(target, stdin, None, lambda line: _forward(procs, line))
    plan = config.plan
    options = config.master or MasterOptions()
    environment = _environment()
    runner = environment.create_master_runner(options.bind_host, options.bind_port)
    assert isinstance(runner, MasterRunner)
    engine = _install_engine(environment, target, config, emit)
    runner.register_message(MSG_AUTH_REQUEST, lambda *_a, **_kw: emit(AuthRequestEvent()))
    if options.local_workers:
        from aml_client.bench.auth import auth_line

        first = auth_line(pushed.header()).encode() if pushed is not None else None
        procs.extend(_spawn_local_workers(options.local_workers, runner.server.port, config,
                                          first))
    try:
        if config.web is not None:
            _start_web_ui(environment, engine, config.web, emit)
        else:
            _wait_for_workers(runner, options, procs, emit)
            emit(StatusEvent(message=f"running: {plan.describe()}"))
            gevent.spawn(runner.start, plan.users, plan.spawn_rate)
        runner.greenlet.join()
    finally:
        if procs:
            if runner.state != locust.runners.STATE_STOPPED:
                runner.quit()
            _reap(procs)
    return 0


def run_worker(config: LoadConfig, emit: _Emitter, stdin: _Stdin | None = None) -> int:
    if config.worker is None:
        raise ConfigError("a worker's configuration names no master (worker.master_host)")
    master = config.worker
    target = RunTarget.from_wire(config.target)
    locust.runners.WORKER_REPORT_INTERVAL = WORKER_REPORT_INTERVAL_S
    environment = _environment()

    def ask_master() -> None:
        if environment.runner is not None:
            environment.runner.send_message(MSG_AUTH_REQUEST, {})

    _pushed_auth(target, stdin, ask_master)
    runner = environment.create_worker_runner(master.master_host, master.master_port)
    install(environment, target, config.plan, emit=None, report_root=None, headless=True,
            locust_stats=config.web is not None)
    if config.parent_pid:
        _watch_parent(environment, config.parent_pid)
    emit(StatusEvent(message=f"connected to {master.master_host}:{master.master_port}"))
    runner.greenlet.join()
    return 0


def _invalid(exc: ValidationError) -> str:
    """The first problem of a configuration the load process cannot use, on one line."""
    error = exc.errors()[0]
    where = ".".join(str(part) for part in error["loc"]) or "configuration"
    return f"invalid load configuration: {where}: {error['msg']}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m aml_client.bench.load.runner")
    parser.add_argument("--role", choices=("local", "master", "worker"), default="local")
    args = parser.parse_args(argv)
    # Locust's web UI parses sys.argv for its own options: leave it nothing of ours to reject.
    sys.argv = sys.argv[:1]
    _setup_logging()
    emit = _Emitter(sys.stdout)
    try:
        stdin = _Stdin()
        config = stdin.config()
        if config.report_root is not None:
            config.report_root = str(Path(config.report_root))
        role = {"local": run_local, "master": run_master, "worker": run_worker}[args.role]
        return role(config, emit, stdin)
    except ValidationError as exc:  # the parent and this process disagree: one line
        log.debug("load process failed", exc_info=True)
        emit(ErrorEvent(message=_invalid(exc), exit_code=ConfigError.exit_code))
        return ConfigError.exit_code
    except AmlcError as exc:  # a configuration this process cannot use: one line, its code
        log.debug("load process failed", exc_info=True)
        emit(ErrorEvent(message=str(exc), exit_code=exc.exit_code))
        return exc.exit_code
    except Exception as exc:  # reported to the parent as one line; details with AMLC_DEBUG=1
        log.debug("load process failed", exc_info=True)
        emit(ErrorEvent(message=f"{type(exc).__name__}: {exc}"))
        return 1


if __name__ == "__main__":
    sys.exit(main())
