"""How one deployment's server is started: gunicorn serving Microsoft's inference server.

Each deployment is ``python -m gunicorn aml_client.local._wsgi:app`` with the environment the
inference server expects (``AZUREML_ENTRY_SCRIPT``, ``AZUREML_MODEL_DIR``…), listening on a
socket the caller has already bound to 127.0.0.1 (``--bind fd://N``), so no port can be taken
in between. The ``azmlinfsrv`` command is not used because it always binds 0.0.0.0 and has no
key check.
"""

from __future__ import annotations

import os
import sys
from importlib import metadata
from pathlib import Path

from aml_client.local._deployments import DeploymentInfo

SCRIPTS = {"inputs": "score_inputs.py", "v1": "score_v1.py"}
#: gunicorn's wait for in-flight requests on SIGTERM.
GRACEFUL_TIMEOUT_S = 10
#: Marks a deployment's server in its command line.
DEPLOYMENT_MARKER = "aml_client.local._wsgi"
#: A file where every deployment logs each request that reached it (off by default).
ENV_DEPLOYMENT_LOG = "AMLC_LOCAL_DEPLOYMENT_LOG"


def scoring_script(style: str) -> Path:
    return Path(__file__).resolve().parent / "scoring" / SCRIPTS[style]


def server_version() -> str:
    try:
        return metadata.version("azureml-inference-server-http")
    except metadata.PackageNotFoundError:  # pragma: no cover - the [local] extra is missing
        return "unknown"


def deployment_env(
    deployment: DeploymentInfo, *, style: str, app_root: Path, keys_file: Path
) -> dict[str, str]:
    """The environment of one deployment's server (its model, contract and test knobs)."""
    env = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[2])
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_parent, env.get("PYTHONPATH")) if p)
    env.update(
        {
            "AZUREML_ENTRY_SCRIPT": str(scoring_script(style)),
            "AZUREML_MODEL_DIR": deployment.model_dir,
            # An empty app root of our own, so no stray swagger.json / config.json /
            # logging.json from the current directory changes the server's behaviour.
            "AML_APP_ROOT": str(app_root),
            # The swagger's title: the endpoint's, so every deployment serves the same document.
            "SERVICE_NAME": f"amlc-local-{style}",
            "HTTP_X_MS_SERVER_VERSION": f"azmlinfsrv/{server_version()}",
            "AML_APP_INSIGHTS_ENABLED": "false",
            "WORKER_COUNT": str(deployment.workers),
            "AMLC_LOCAL_KEYS_FILE": str(keys_file),
            "AMLC_LOCAL_DEPLOYMENT": deployment.name,
            "AMLC_LOCAL_MODEL_KIND": deployment.kind,
            "AMLC_LOCAL_DELAY_MS": str(deployment.delay_ms),
            "AMLC_LOCAL_FAIL_RATE": str(deployment.fail_rate),
            "PYTHONUNBUFFERED": "1",
        }
    )
    # The front writes the request log; a deployment only checks the key, and logs what
    # reached it only when asked to (a file named in AMLC_LOCAL_DEPLOYMENT_LOG: what got past
    # the front, for checking the front itself).
    env.pop("AMLC_LOCAL_ACCESS_LOG", None)
    own_log = os.environ.get(ENV_DEPLOYMENT_LOG, "").strip()
    if own_log:
        env["AMLC_LOCAL_ACCESS_LOG"] = own_log
    # Past the front's request timeout the answer is no longer awaited: the server's own
    # timeout then frees the worker soon after, instead of an hour later (its default).
    env.setdefault("SCORING_TIMEOUT_MS", str(deployment.request_timeout_ms + 1000))
    # One BLAS/OpenMP thread per worker: with several gunicorn workers on few cores, each
    # worker's own thread pool oversubscribes the CPUs and stalls requests for seconds.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env.setdefault(var, "1")
    env.pop("AZUREML_CONFIG_FILE", None)
    return env


def deployment_command(listen_fd: int, workers: int, name: str, *, preload: bool) -> list[str]:
    """gunicorn serving the inference server on the already bound socket ``listen_fd``.

    ``preload`` imports the server and loads the model once, in gunicorn's master, before it
    forks the workers: each further worker then starts at once and shares the model's memory,
    instead of paying seconds of CPU for the same imports. Only for models that hold no threads
    at load (the scikit-learn pipeline); onnxruntime's session would be forked mid-flight.
    """
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
        f"fd://{listen_fd}",
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
        "--name",
        f"amlc-local-{name}",
        # Each worker ends with its master (see the module).
        "--config",
        "python:aml_client.local._gunicorn_hooks",
        *extra,
        *(["--preload"] if preload else []),
        DEPLOYMENT_MARKER + ":app",
    ]
