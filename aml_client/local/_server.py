"""Starting and stopping the local endpoint: a front on 127.0.0.1 and one server per deployment.

``start`` trains (or loads) the model in the calling process, where its progress can be shown,
converts it to ONNX when a deployment serves that copy, binds the public port and one internal
port per deployment (all on 127.0.0.1, so a busy port fails here, with one clear line), then
launches ``python -m aml_client.local._front``, which starts each deployment's gunicorn on its
socket and serves the public one. The front's process group holds everything, so stopping it
stops the deployments too.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from aml_client.errors import ConfigError, UnavailableError
from aml_client.local import _deployments, _keys, _launch, _logs, _model, _state
from aml_client.local._deployments import DeploymentInfo, DeploymentSpec, FrontPlan
from aml_client.local._parent import die_with_parent
from aml_client.local._state import LocalEndpointInfo

STYLES = ("inputs", "v1")
DEFAULT_PORT = 5001  # the inference server's own default
DEFAULT_HOST = "127.0.0.1"
#: The front's wait for in-flight requests and deployments on SIGTERM; ``stop`` waits longer.
GRACEFUL_TIMEOUT_S = _launch.GRACEFUL_TIMEOUT_S + 5


def default_workers() -> int:
    """Two workers at most: enough to overlap requests without swamping a small machine."""
    return max(1, min(2, os.cpu_count() or 1))


def _listen(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free one), inheritable by children."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    # gunicorn and aiohttp set SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise ConfigError(
            f"port {port} on {host} is already in use; choose another with --port"
        ) from None
    sock.listen(1024)
    sock.set_inheritable(True)
    return sock


def _check_dependencies(kinds: set[str]) -> None:
    import importlib.util

    needed = ["azureml_inference_server_http", "inference_schema", "gunicorn", "sklearn", "aiohttp"]
    if "onnx" in kinds:
        needed += ["skl2onnx", "onnxruntime"]
    missing = [name for name in needed if importlib.util.find_spec(name) is None]
    if missing:
        raise ConfigError(
            f"the local endpoint needs {', '.join(missing)}: pip install 'amlc[local]'"
        )


def _deployment_infos(
    specs: Sequence[DeploymentSpec],
    traffic: dict[str, int],
    ports: Sequence[int],
    workers: int,
    model: _model.ModelInfo,
    report: Callable[[str], None] | None,
) -> list[DeploymentInfo]:
    onnx = None
    if any(spec.kind == "onnx" for spec in specs):
        from aml_client.local._onnx import ensure_onnx_model

        onnx = ensure_onnx_model(model, report=report)
        if onnx.cached and report:
            report(
                f"ONNX copy from cache (same label on {onnx.agreement:.2%} of {onnx.rows} "
                f"held-out rows, accuracy {onnx.accuracy:.4f})"
            )
    infos = []
    for spec, port in zip(specs, ports, strict=True):
        spec_workers = spec.workers or workers
        is_onnx = spec.kind == "onnx" and onnx is not None
        infos.append(
            DeploymentInfo(
                name=spec.name,
                kind=spec.kind,
                traffic=traffic[spec.name],
                workers=spec_workers,
                max_concurrent_requests_per_instance=(
                    spec.max_concurrent_requests_per_instance
                    or _deployments.default_max_concurrent(spec_workers)
                ),
                request_timeout_ms=spec.request_timeout_ms,
                port=port,
                model=model.name,
                model_dir=model.directory,
                accuracy=onnx.accuracy if is_onnx and onnx else model.accuracy,
                agreement=onnx.agreement if is_onnx and onnx else None,
                delay_ms=spec.delay_ms,
                fail_rate=spec.fail_rate,
            )
        )
    return infos


def start(
    port: int = DEFAULT_PORT,
    workers: int | None = None,
    style: str = "inputs",
    metric: str = "accuracy",
    detach: bool = False,
    host: str = DEFAULT_HOST,
    *,
    deployments: Sequence[DeploymentSpec] | None = None,
    traffic: dict[str, int] | None = None,
    retrain: bool = False,
    timeout_s: float = 90.0,
    report: Callable[[str], None] | None = None,
    on_ready: Callable[[LocalEndpointInfo], None] | None = None,
) -> LocalEndpointInfo:
    """Start the local endpoint; with ``detach`` return once ``/`` answers, else serve until
    interrupted (Ctrl-C stops it cleanly) and return when it has stopped.

    ``deployments`` default to one scikit-learn deployment called ``blue``; ``traffic`` (percent
    per deployment name) defaults to all of it for the first one. ``workers`` is the worker
    count of a deployment that does not set its own.

    Raises ConfigError for a bad style, metric, deployment or traffic, a busy port or an
    endpoint already running, and UnavailableError (with the end of the server log) when the
    endpoint does not come up.
    """
    if style not in STYLES:
        raise ConfigError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    workers = workers or default_workers()
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    specs, shares = _deployments.resolve(deployments, traffic)
    _check_dependencies({spec.kind for spec in specs})
    current = _state.running_endpoint()
    if current is not None:
        raise ConfigError(
            f"a local endpoint is already running at {current.scoring_uri} (pid {current.pid}); "
            "stop it first with: amlc local down"
        )
    recorded = _state.read_state()
    if recorded is not None:
        if _state.pid_alive(recorded.pid) and _state.is_our_server(recorded.pid):
            raise ConfigError(
                f"a local endpoint (pid {recorded.pid}) is starting or not answering on "
                f"{recorded.scoring_uri}; stop it first with: amlc local down"
            )
        _state.clear_state()

    with contextlib.ExitStack() as sockets:
        public = sockets.enter_context(_listen(host, port))
        internal = [
            sockets.enter_context(_listen(DEFAULT_HOST, 0)) for spec in specs
        ]
        model = _model.ensure_model(metric, retrain=retrain, report=report)
        if model.cached and report:
            also = "" if metric == "accuracy" else f"{metric} {model.score:.4f}, "
            report(
                f"model: {model.name} from cache (held-out {also}accuracy {model.accuracy:.4f})"
            )
        infos = _deployment_infos(
            specs,
            shares,
            [sock.getsockname()[1] for sock in internal],
            workers,
            model,
            report,
        )
        _keys.local_keys(create=True)
        process, info = _launch_front(
            public, internal, infos, host=host, port=port, style=style, metric=metric,
            model=model, detach=detach, timeout_s=timeout_s,
        )  # fmt: skip
    # Recorded before it is ready, so `amlc local down` can always stop what was started.
    _state.write_state(info)
    server_log = _state.server_log_file()
    try:
        _wait_ready(process, info, timeout_s + 5, server_log)
        if on_ready is not None:
            on_ready(info)
    except BaseException:
        _terminate(process.pid, own_group=True)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired, KeyboardInterrupt):
            process.wait(timeout=GRACEFUL_TIMEOUT_S + 5)
        if process.poll() is None:
            _terminate(process.pid, own_group=True, force=True)
        _state.clear_state()
        raise
    if detach:
        return info
    _serve_foreground(process)
    return info


def _launch_front(
    public: socket.socket,
    internal: list[socket.socket],
    infos: list[DeploymentInfo],
    *,
    host: str,
    port: int,
    style: str,
    metric: str,
    model: _model.ModelInfo,
    detach: bool,
    timeout_s: float,
) -> tuple[subprocess.Popen[bytes], LocalEndpointInfo]:
    local_dir = _state.local_dir()
    app_root = local_dir / "app"
    app_root.mkdir(parents=True, exist_ok=True)
    server_log = _state.server_log_file()
    plan = FrontPlan(
        host=host,
        port=port,
        listen_fd=public.fileno(),
        style=style,
        keys_file=str(_keys.keys_file()),
        access_log=str(_state.access_log_file()),
        app_root=str(app_root),
        ready_timeout_s=timeout_s,
        deployments=infos,
        deployment_fds=[sock.fileno() for sock in internal],
    )
    plan_path = _state.plan_file()
    plan_path.write_text(json.dumps(plan.to_dict(), indent=2) + "\n", encoding="utf-8")
    command = [sys.executable, "-m", _state.SERVER_MARKER, str(plan_path)]
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env["PYTHONUNBUFFERED"] = "1"
    fds = (public.fileno(), *(sock.fileno() for sock in internal))
    # Detached or not, the front runs in a session of its own with its output in the server
    # log: a Ctrl-C in the terminal reaches this process only, which then stops the front
    # gracefully (in-flight requests finish, no worker is cut mid-write). In the foreground
    # the front also gets SIGTERM if this process dies without stopping it.
    with server_log.open("wb") as log:
        process = subprocess.Popen(
            command,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            cwd=str(app_root),
            pass_fds=fds,
            preexec_fn=None if detach or not sys.platform.startswith("linux") else die_with_parent,
        )

    base = f"http://{host}:{port}"
    first = infos[0]
    info = LocalEndpointInfo(
        pid=process.pid,
        host=host,
        port=port,
        scoring_uri=f"{base}/score",
        swagger_uri=f"{base}/swagger.json",
        style=style,
        model=model.name,
        metric=metric,
        score=model.score,
        accuracy=first.accuracy,
        workers=first.workers,
        log_file=str(_state.access_log_file()),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        server_log=str(server_log),
        model_dir=model.directory,
        keys_file=str(_keys.keys_file()),
        server_version=_launch.server_version(),
        deployments=infos,
    )
    return process, info


def _wait_ready(
    process: subprocess.Popen[bytes], info: LocalEndpointInfo, timeout_s: float, log: Path | None
) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        code = process.poll()
        if code is not None:
            raise UnavailableError(
                f"the local endpoint exited with code {code} while starting"
                + _log_tail_message(log)
            )
        if _state.answers(info.host, info.port, timeout_s=1.0):
            return
        time.sleep(0.2)
    raise UnavailableError(
        f"the local endpoint did not answer on {info.health_uri} within {timeout_s:.0f} s"
        + _log_tail_message(log)
    )


def _log_tail_message(log: Path | None, lines: int = 15) -> str:
    if log is None:
        return ""
    tail = _logs.tail(log, lines)
    if not tail:
        return f" (no output in {log})"
    hint = "(if the model cache is damaged, `amlc local up --retrain` rebuilds it)"
    return f"; last lines of {log}:\n" + "\n".join(tail) + "\n" + hint


def _serve_foreground(process: subprocess.Popen[bytes]) -> None:
    """Wait for the server; Ctrl-C (or SIGTERM to this process) stops it cleanly.

    The front is in a session of its own, so only this process sees the Ctrl-C: it asks the
    front to stop (SIGTERM: in-flight requests finish, then each deployment stops) and waits;
    a second Ctrl-C, or a front that does not stop in time, ends the whole group at once.
    """
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        process.wait()
    except KeyboardInterrupt:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=GRACEFUL_TIMEOUT_S + 5)
        except (subprocess.TimeoutExpired, KeyboardInterrupt):
            _terminate(process.pid, own_group=True, force=True)
            process.wait(timeout=5)
    finally:
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
        info = _state.read_state()
        if info is not None and info.pid == process.pid:
            _state.clear_state()


def _terminate(pid: int, *, own_group: bool, force: bool = False) -> None:
    sig = signal.SIGKILL if force else signal.SIGTERM
    with contextlib.suppress(ProcessLookupError, PermissionError):
        if own_group and os.getpgid(pid) == pid:
            os.killpg(pid, sig)
        else:
            os.kill(pid, sig)


def stop(timeout_s: float = GRACEFUL_TIMEOUT_S + 5) -> LocalEndpointInfo | None:
    """Stop the recorded local endpoint: SIGTERM, wait, then SIGKILL; remove its state file.

    Returns what was stopped, or None when nothing was running. A recorded PID that now
    belongs to another program is never signalled.
    """
    info = _state.read_state()
    if info is None:
        return None
    if not _state.pid_alive(info.pid) or not _state.is_our_server(info.pid):
        _state.clear_state()
        return None
    _terminate(info.pid, own_group=True)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and _state.pid_alive(info.pid):
        time.sleep(0.1)
    if _state.pid_alive(info.pid):
        _terminate(info.pid, own_group=True, force=True)
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and _state.pid_alive(info.pid):
            time.sleep(0.1)
    _state.clear_state()
    return info


def differences(
    info: LocalEndpointInfo,
    *,
    port: int = DEFAULT_PORT,
    workers: int | None = None,
    style: str = "inputs",
    metric: str = "accuracy",
    deployments: Sequence[DeploymentSpec] | None = None,
    traffic: dict[str, int] | None = None,
) -> list[str]:
    """How the running endpoint ``info`` differs from what ``start`` would run with these
    settings, one phrase per difference (empty: the same endpoint), so starting it again can
    be a no-op instead of an error."""
    specs, shares = _deployments.resolve(deployments, traffic)
    workers = workers or default_workers()
    found: list[str] = []
    for name, running, asked in (
        ("port", info.port, port),
        ("style", info.style, style),
        ("metric", info.metric, metric),
    ):
        if running != asked:
            found.append(f"{name} {running}, not {asked}")
    fields = (
        "kind",
        "traffic",
        "workers",
        "max_concurrent_requests_per_instance",
        "request_timeout_ms",
        "delay_ms",
        "fail_rate",
    )
    wanted = {
        spec.name: (
            spec.kind,
            shares[spec.name],
            spec.workers or workers,
            spec.max_concurrent_requests_per_instance
            or _deployments.default_max_concurrent(spec.workers or workers),
            spec.request_timeout_ms,
            spec.delay_ms,
            spec.fail_rate,
        )
        for spec in specs
    }
    have = {d.name: tuple(getattr(d, name) for name in fields) for d in info.deployments}
    if list(wanted) != list(have):
        found.append(f"deployments {', '.join(have)}, not {', '.join(wanted)}")
        return found
    for deployment, settings in wanted.items():
        found += [
            f"{deployment} {field} {running}, not {value}"
            for field, running, value in zip(fields, have[deployment], settings, strict=True)
            if running != value
        ]
    return found


def status() -> LocalEndpointInfo | None:
    """The running endpoint (as ``running_endpoint``), forgetting a record whose process died."""
    info = _state.read_state()
    if info is not None and not _state.pid_alive(info.pid):
        _state.clear_state()
        return None
    return _state.running_endpoint()
