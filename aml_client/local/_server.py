"""Starting and stopping the local endpoint: gunicorn serving the inference server on 127.0.0.1.

``start`` trains (or loads) the model in the calling process, where its progress can be shown,
then launches ``python -m gunicorn aml_client.local._wsgi:app`` with the environment Microsoft's
server expects (``AZUREML_ENTRY_SCRIPT``, ``AZUREML_MODEL_DIR``…). The ``azmlinfsrv`` command
is not used because it always binds 0.0.0.0 and has no key check.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

from aml_client.errors import ConfigError, UnavailableError
from aml_client.local import _keys, _logs, _model, _state
from aml_client.local._state import LocalEndpointInfo

STYLES = ("inputs", "v1")
DEFAULT_PORT = 5001  # the inference server's own default
DEFAULT_HOST = "127.0.0.1"
SCRIPTS = {"inputs": "score_inputs.py", "v1": "score_v1.py"}
#: gunicorn's wait for in-flight requests on SIGTERM; ``stop`` waits a little longer.
GRACEFUL_TIMEOUT_S = 10


def default_workers() -> int:
    """Two workers at most: enough to overlap requests without swamping a small machine."""
    return max(1, min(2, os.cpu_count() or 1))


def scoring_script(style: str) -> Path:
    return Path(__file__).resolve().parent / "scoring" / SCRIPTS[style]


def _port_free(host: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        # gunicorn sets SO_REUSEADDR too, so a port in TIME_WAIT counts as free.
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _server_env(style: str, model: _model.ModelInfo, app_root: Path) -> dict[str, str]:
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.update(
        {
            "AZUREML_ENTRY_SCRIPT": str(scoring_script(style)),
            "AZUREML_MODEL_DIR": model.directory,
            # An empty app root of our own, so no stray swagger.json / config.json /
            # logging.json from the current directory changes the server's behaviour.
            "AML_APP_ROOT": str(app_root),
            "SERVICE_NAME": f"amlc-local-{style}",
            "HTTP_X_MS_SERVER_VERSION": f"azmlinfsrv/{_server_version()}",
            "AML_APP_INSIGHTS_ENABLED": "false",
            "AMLC_LOCAL_KEYS_FILE": str(_keys.keys_file()),
            "AMLC_LOCAL_ACCESS_LOG": str(_state.access_log_file()),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # One BLAS/OpenMP thread per worker: with several gunicorn workers on few cores, each
    # worker's own thread pool oversubscribes the CPUs and stalls requests for seconds.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    env.pop("AZUREML_CONFIG_FILE", None)
    return env


def _server_version() -> str:
    try:
        return metadata.version("azureml-inference-server-http")
    except metadata.PackageNotFoundError:  # pragma: no cover - the [local] extra is missing
        return "unknown"


def _command(host: str, port: int, workers: int) -> list[str]:
    from gunicorn.config import KNOWN_SETTINGS

    # gunicorn >= 25 opens a control socket in ~/.gunicorn by default; one endpoint per
    # AMLC_HOME must not share (or clobber) a per-user socket.
    extra = (
        ["--no-control-socket"]
        if any(s.name == "control_socket_disable" for s in KNOWN_SETTINGS)
        else []
    )
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--bind",
        f"{host}:{port}",
        "--workers",
        str(workers),
        # The inference server's own settings: sync workers (its timeout uses SIGALRM on the
        # main thread) and a generous worker timeout for slow models.
        "--worker-class",
        "sync",
        "--timeout",
        os.environ.get("WORKER_TIMEOUT", "300"),
        "--graceful-timeout",
        str(GRACEFUL_TIMEOUT_S),
        "--error-logfile",
        "-",
        "--log-level",
        "info",
        *extra,
        _state.SERVER_MARKER + ":app",
    ]


def _check_dependencies() -> None:
    import importlib.util

    missing = [
        name
        for name in ("azureml_inference_server_http", "inference_schema", "gunicorn", "sklearn")
        if importlib.util.find_spec(name) is None
    ]
    if missing:
        raise ConfigError(
            f"the local endpoint needs {', '.join(missing)}: pip install 'amlc[local]'"
        )


def start(
    port: int = DEFAULT_PORT,
    workers: int | None = None,
    style: str = "inputs",
    metric: str = "accuracy",
    detach: bool = False,
    host: str = DEFAULT_HOST,
    *,
    retrain: bool = False,
    timeout_s: float = 90.0,
    report: Callable[[str], None] | None = None,
    on_ready: Callable[[LocalEndpointInfo], None] | None = None,
) -> LocalEndpointInfo:
    """Start the local endpoint; with ``detach`` return once ``/`` answers, else serve until
    interrupted (Ctrl-C stops the server cleanly) and return when it has stopped.

    Raises ConfigError for a bad style/metric, a busy port or an endpoint already running, and
    UnavailableError (with the end of the server log) when the server does not come up.
    """
    if style not in STYLES:
        raise ConfigError(f"unknown style {style!r}; choose one of {', '.join(STYLES)}")
    workers = workers or default_workers()
    if workers < 1:
        raise ConfigError("--workers must be at least 1")
    _check_dependencies()
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
    if not _port_free(host, port):
        raise ConfigError(f"port {port} on {host} is already in use; choose another with --port")

    model = _model.ensure_model(metric, retrain=retrain, report=report)
    if model.cached and report:
        also = "" if metric == "accuracy" else f"{metric} {model.score:.4f}, "
        report(f"model: {model.name} from cache (held-out {also}accuracy {model.accuracy:.4f})")
    _keys.local_keys(create=True)

    local_dir = _state.local_dir()
    app_root = local_dir / "app"
    app_root.mkdir(parents=True, exist_ok=True)
    server_log = _state.server_log_file()
    env = _server_env(style, model, app_root)

    if detach:
        with server_log.open("wb") as log:
            process = subprocess.Popen(
                _command(host, port, workers),
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # outlives this command and its terminal
                cwd=str(app_root),
            )
    else:
        process = subprocess.Popen(_command(host, port, workers), env=env, cwd=str(app_root))

    base = f"http://{host}:{port}"
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
        accuracy=model.accuracy,
        workers=workers,
        log_file=str(_state.access_log_file()),
        started_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        server_log=str(server_log) if detach else "",
        model_dir=model.directory,
        keys_file=str(_keys.keys_file()),
        server_version=_server_version(),
    )
    # Recorded before it is ready, so `amlc local down` can always stop what was started.
    _state.write_state(info)
    try:
        _wait_ready(process, info, timeout_s, server_log if detach else None)
        if on_ready is not None:
            on_ready(info)
    except BaseException:
        _terminate(process.pid, own_group=detach)
        with contextlib.suppress(OSError, subprocess.TimeoutExpired):
            process.wait(timeout=GRACEFUL_TIMEOUT_S + 5)
        if process.poll() is None:
            _terminate(process.pid, own_group=detach, force=True)
        _state.clear_state()
        raise
    if detach:
        return info
    _serve_foreground(process)
    return info


def _wait_ready(
    process: subprocess.Popen, info: LocalEndpointInfo, timeout_s: float, log: Path | None
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


def _serve_foreground(process: subprocess.Popen) -> None:
    """Wait for the server; Ctrl-C (or SIGTERM to this process) stops it cleanly."""
    previous = None
    if threading.current_thread() is threading.main_thread():

        def on_term(signum: int, frame: object) -> None:
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGTERM, on_term)
    try:
        process.wait()
    except KeyboardInterrupt:
        # From a terminal, gunicorn got the same SIGINT; else tell it ourselves.
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=GRACEFUL_TIMEOUT_S + 5)
        except subprocess.TimeoutExpired:
            _terminate(process.pid, own_group=False, force=True)
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


def status() -> LocalEndpointInfo | None:
    """The running endpoint (as ``running_endpoint``), forgetting a record whose process died."""
    info = _state.read_state()
    if info is not None and not _state.pid_alive(info.pid):
        _state.clear_state()
        return None
    return _state.running_endpoint()
