"""The Locust user that drives a scoring endpoint: pre-encoded bodies, retries off, exact timing.

Importing this module imports Locust (and so gevent's monkey-patching): only the load process
(``python -m aml_client.bench.runner``) and locustfiles import it.

Each request is timed with ``time.perf_counter_ns`` around the send and recorded by the
process's :class:`~aml_client.bench.engine.Engine` in microseconds, not from Locust's rounded
statistics. Locust still sees every request (its own tables and charts keep working).

The HTTP layer's policy holds here too, over Locust's transport: the ``Authorization`` value is
the run's current one (a 401 asks for a fresh token), redirects are never followed (a 3xx is a
``redirect`` failure), and ``--timeout`` is a total deadline for the whole request, body
included (a ``timeout`` failure).
"""

from __future__ import annotations

import time

import gevent
from locust import constant, task
from locust.contrib.fasthttp import FastHttpUser
from locust.exception import StopUser

from aml_client.bench.engine import engine_of

__all__ = ["ScoringUser"]


class RequestDeadline(TimeoutError):
    """The request's total deadline passed (raised into it by a gevent timer)."""


class ScoringUser(FastHttpUser):
    """POSTs the run's request bodies to the scoring URI, one at a time per user."""

    # Replaced by the engine with the endpoint's own scheme://host (shown in the web UI only:
    # requests always go to the absolute scoring URI, so the key never follows a host edit).
    host = "http://127.0.0.1"
    wait_time = constant(0)
    # Verify TLS certificates: FastHttpUser's default is not to.
    insecure = False
    # A load test must see every failure: a retry would hide it and distort the latency.
    max_retries = 0
    # One request at a time per user: one connection each.
    concurrency = 1

    def __init__(self, environment) -> None:  # type: ignore[no-untyped-def]
        engine = engine_of(environment)
        cls = type(self)
        cls.network_timeout = cls.connection_timeout = engine.target.timeout_s
        cls.insecure = not engine.target.verify
        super().__init__(environment)
        self._engine = engine
        self._deadline_error = RequestDeadline(f"no answer within {engine.target.timeout_s:g} s")

    @task
    def score(self) -> None:
        engine = self._engine
        slot = engine.claim()
        if slot is None:
            raise StopUser()
        index, due_ns = slot
        if due_ns:
            wait_ns = due_ns - time.perf_counter_ns()
            if wait_ns > 0:
                gevent.sleep(wait_ns / 1e9)
        target = engine.target
        body = target.bodies[index % len(target.bodies)]
        headers = target.request_headers()
        timeout_s = target.timeout_s
        sent_ns = time.perf_counter_ns()
        try:
            with gevent.Timeout(timeout_s, self._deadline_error):
                response = self.client.request(
                    "POST",
                    target.scoring_uri,
                    name=engine.request_name,
                    # Pre-encoded bytes as-is: Locust's hint says str, geventhttpclient takes bytes.
                    data=body,  # type: ignore[arg-type]
                    headers=headers,
                    allow_redirects=False,
                )
        except RequestDeadline as exc:
            engine.complete(sent_ns, time.perf_counter_ns(), due_ns, 0, exc)
            return
        except Exception as exc:  # not a transport failure Locust knows: count it, then let it show
            engine.complete(sent_ns, time.perf_counter_ns(), due_ns, 0, exc)
            raise
        done_ns = time.perf_counter_ns()
        status = response.status_code or 0
        error = getattr(response, "error", None)
        if done_ns - sent_ns >= timeout_s * 1e9:  # cut while Locust read the body
            status, error = 0, RequestDeadline(f"no complete answer within {timeout_s:g} s")
        elif status == 401:
            target.unauthorized(headers)
        engine.complete(sent_ns, done_ns, due_ns, status, error)
