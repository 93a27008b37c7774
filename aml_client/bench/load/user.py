"""The Locust user that drives a scoring endpoint: pre-encoded bodies, retries off, exact timing.

Importing this module imports Locust (and so gevent's monkey-patching): only the load process
(``python -m aml_client.bench.load.runner``) and locustfiles import it.

The user is a ``FastHttpUser``: its geventhttpclient client (TLS settings, timeouts,
keep-alive pool) carries the requests, through :class:`~aml_client.bench.load.exchange.Sender`,
which times each phase of a request and checks the response; the process's
:class:`~aml_client.bench.load.engine.Engine` records it in microseconds. Locust still sees every
request (its own tables and charts keep working).

* closed model: each user sends one request at a time;
* open model: each user dispatches the schedule to sender greenlets (see the engine).
"""

from __future__ import annotations

from typing import Any

from geventhttpclient.url import URL
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

from aml_client.bench.load.engine import engine_of
from aml_client.bench.load.exchange import Sender

__all__ = ["ScoringUser"]


class ScoringUser(FastHttpUser):
    """POSTs the run's request bodies to the scoring URI."""

    # Replaced by the engine with the endpoint's own scheme://host (shown in the web UI only:
    # requests always go to the absolute scoring URI, so the key never follows a host edit).
    host = "http://127.0.0.1"
    wait_time = constant(0)
    # Verify TLS certificates: FastHttpUser's default is not to.
    insecure = False
    # A load test must see every failure: a retry would hide it and distort the latency.
    max_retries = 0
    # Redirects are never followed (the sender talks to the HTTP client below the user agent).
    max_redirects = 0
    # One request at a time per user in the closed model: one connection each.
    concurrency = 1

    def __init__(self, environment: Any) -> None:
        engine = engine_of(environment)
        cls = type(self)
        cls.network_timeout = cls.connection_timeout = engine.target.timeout_s
        cls.insecure = not engine.target.verify
        cls.concurrency = engine.senders_per_user
        super().__init__(environment)
        self._engine = engine
        target = engine.target
        client = self.client.client.clientpool.get_client(URL(target.scoring_uri))
        self._sender = Sender(client, target.scoring_uri, target.timeout_s)

    @task
    def score(self) -> None:
        engine = self._engine
        if engine.plan.mode == "open":
            engine.dispatch(self._sender)  # runs this user's part of the schedule
            return
        slot = engine.claim()
        if slot is None:
            raise StopUser()
        engine.send(self._sender, slot[0], 0, later=True)
