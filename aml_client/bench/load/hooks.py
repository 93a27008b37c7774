"""Locust ``init`` hook for a plain ``locust -f loadtests/locustfile.py`` run.

``amlc bench`` installs the engine itself; a plain Locust run (headless, web UI, master or worker)
gets the same engine, HDR recording, web UI tab and report files through :func:`on_init`. The
endpoint, key and payload come from the same settings as ``amlc``: ``AMLC_SCORING_URI`` with
``AMLC_KEY``/``AMLC_TOKEN``, a profile named by ``AMLC_ENDPOINT``, else the local endpoint;
``AMLC_PAYLOAD`` names a payload file; reports go under ``AMLC_REPORT_DIR`` (default
``reports``); ``AMLC_RESULTS_DIR`` / ``AMLC_RESULTS_LOG`` make each process leave (or print) its
results for ``amlc report merge`` (:mod:`aml_client.bench.load.results_hook`).

Locust's web UI, when there is one, answers only requests addressed to this machine and sent
by its own pages (the Host, Origin and Sec-Fetch-Site checks of
:mod:`aml_client.bench.load.webguard`); other names it should answer go in
``AMLC_WEB_ALLOWED_HOSTS``. Who may use it beyond that is up to Locust's own flags
(``--web-host``, ``--web-login``, ``--tls-cert``); ``amlc bench --web`` adds a per-run secret.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from locust.env import Environment
from locust.runners import WorkerRunner

from aml_client.bench.load.engine import install
from aml_client.bench.plan import BenchPlan
from aml_client.bench.target import RunTarget, run_target_from_environment

__all__ = ["ENV_REPORT_DIR", "on_init"]

ENV_REPORT_DIR = "AMLC_REPORT_DIR"


def on_init(
    environment: Environment, runner: Any = None, web_ui: Any = None, *,
    target: RunTarget | None = None, **_kw: Any,
) -> None:
    """Attach the engine (and the web UI's HDR tab) to a Locust environment.

    ``target``: one built beforehand, e.g. when the locustfile is imported — before a worker
    connects to its master, so no spawn message can arrive before the engine is installed
    (building it here fetches the swagger, and a worker answers its master meanwhile).
    """
    if runner is None:  # e.g. ``locust --list``: nothing will run
        return
    try:
        _install(environment, runner, web_ui, target)
    except KeyboardInterrupt:  # Ctrl-C while starting: one line, not a traceback
        raise SystemExit("interrupted while starting: nothing was sent") from None


def _install(environment: Environment, runner: Any, web_ui: Any, target: RunTarget | None) -> None:
    options = environment.parsed_options
    users = int(getattr(options, "num_users", None) or 1)
    spawn_rate = float(getattr(options, "spawn_rate", None) or 1.0)
    headless = bool(getattr(options, "headless", False))
    # Locust's own --run-time bounds the test; the plan only describes it.
    plan = BenchPlan(mode="closed", users=users, spawn_rate=spawn_rate)
    if target is None:
        target = run_target_from_environment()
    report_root = (
        None if isinstance(runner, WorkerRunner) else os.environ.get(ENV_REPORT_DIR, "reports")
    )
    engine = install(environment, target, plan, report_root=report_root, headless=headless)
    if web_ui is not None:
        from aml_client.bench.load.webguard import protect
        from aml_client.bench.load.webui import add_hdr_tab, keep_target

        add_hdr_tab(environment, engine)
        keep_target(environment, target.base_url)
        protect(web_ui)
    where = f"reports under {report_root}/" if report_root else "its figures go to the master"
    logging.getLogger(__name__).info(
        "amlc ready: %s, every latency recorded; %s", target.base_url, where
    )
