"""One scoring request on the wire: send, time each phase, check the response.

Runs inside the load process (gevent). It talks to geventhttpclient's ``HTTPClient`` — the one
Locust's ``FastHttpUser`` keeps in its client pool, so TLS, timeouts and keep-alive are
FastHttpUser's — directly rather than through ``FastHttpSession.request``: that gives the
moment the response headers arrived apart from the end of the body, never follows a redirect
(a POST must not be replayed elsewhere), and skips work the benchmark does not need.

Timing, all from ``time.perf_counter_ns`` in the sending greenlet:

* ``connect`` — opening a connection (TCP, and TLS), timed by wrapping the connection pool's
  socket factory, only for requests that opened one;
* ``ttfb`` — from the first byte sent to the response headers parsed;
* ``body`` — from there to the last body byte;
* ``server`` — the endpoint's own ``x-ms-run-fn-exec-ms`` header; ``rest`` = total - server.

The whole request (connect, send, headers and body) is bounded by one deadline
(``gevent.Timeout``): a body that trickles in cannot outlast it.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
from gevent import Timeout
from geventhttpclient.client import HTTPClient
from geventhttpclient.url import URL

from aml_client.bench.checks import REASON_KINDS, classify_error, failure_reason, read_response
from aml_client.bench.result import Sample, clean_name

__all__ = ["Outcome", "Sender"]

_SERVER_TIME = "x-ms-run-fn-exec-ms"
_RUN_FAILED = "x-ms-run-function-failed"
_DEPLOYMENT = "azureml-model-deployment"
#: Request line, status line and header framing that the parsed headers do not show.
_HEAD_OVERHEAD = 2


class _Deadline(Exception):
    """The request's total deadline passed (raised by gevent.Timeout in the sender)."""


@dataclass(slots=True)
class Outcome:
    """One request: when it was sent and done (perf_counter ns), its status and failure kind.

    ``reason`` is Azure's explanation of a 408/424/429 (see :func:`~.checks.failure_reason`);
    ``predictions`` are the good response's predictions, kept only when asked for (a blue/green
    run compares them between deployments).
    """

    sent_ns: int
    done_ns: int
    status: int
    failure: str | None
    sample: Sample
    error: BaseException | None = None
    reason: str | None = None
    predictions: list[Any] | None = None


class Sender:
    """Sends the run's request bodies to one scoring URI and measures each exchange.

    ``client`` is a geventhttpclient ``HTTPClient`` for the URI's origin (FastHttpUser's);
    several greenlets may share it (its pool holds up to ``concurrency`` connections).
    """

    def __init__(self, client: HTTPClient, scoring_uri: str, timeout_s: float) -> None:
        url = URL(scoring_uri)
        self.client = client
        self.request_uri = getattr(url, "quoted_uri", url.request_uri)
        self.timeout_s = timeout_s
        self._connect_ns: dict[Any, int] = {}
        pool = client._connection_pool
        create: Callable[[], Any] = pool._create_socket
        connects = self._connect_ns

        def timed_create_socket() -> Any:
            start = time.perf_counter_ns()
            sock = create()
            connects[gevent.getcurrent()] = time.perf_counter_ns() - start
            return sock

        pool._create_socket = timed_create_socket  # type: ignore[method-assign]

    def send(
        self,
        body: bytes,
        headers: dict[str, str],
        expected_rows: int | None,
        keep_predictions: bool = False,
    ) -> Outcome:
        """POST ``body``; never raises for what the endpoint or the network did."""
        sample = Sample()
        sample.bytes_sent = len(body)
        me = gevent.getcurrent()
        headers_ns = 0
        response = None
        timer = Timeout(self.timeout_s, _Deadline)
        sent_ns = time.perf_counter_ns()
        timer.start()
        try:
            response = self.client.request("POST", self.request_uri, body=body, headers=headers)
            headers_ns = time.perf_counter_ns()
            data = response.read()
            done_ns = time.perf_counter_ns()
        except BaseException as exc:
            done_ns = time.perf_counter_ns()
            timer.close()
            if not isinstance(exc, Exception):  # GreenletExit, KeyboardInterrupt: let them go
                raise
            if response is not None:
                response.release()
            connect = self._connect_ns.pop(me, -1)
            kind = "timeout" if isinstance(exc, _Deadline) else classify_error(
                exc, headers_received=headers_ns > 0)
            status = response.status_code if response is not None else 0
            sample.connect_us = connect // 1000 if connect >= 0 else -1
            if headers_ns:
                sample.ttfb_us = (headers_ns - sent_ns - max(connect, 0)) // 1000
                sample.body_us = (done_ns - headers_ns) // 1000
            else:
                sample.ttfb_us = (done_ns - sent_ns - max(connect, 0)) // 1000
            return Outcome(sent_ns, done_ns, status, kind, sample,
                           error=None if isinstance(exc, _Deadline) else exc)
        timer.close()
        connect = self._connect_ns.pop(me, -1)
        if connect >= 0:
            sample.connect_us = connect // 1000
        sample.ttfb_us = (headers_ns - sent_ns - max(connect, 0)) // 1000
        sample.body_us = (done_ns - headers_ns) // 1000
        status = response.status_code
        length = response.content_length
        complete = response.message_complete and (length is None or length == len(data))
        get = response.get
        server_ms = get(_SERVER_TIME)
        if isinstance(server_ms, str):
            with contextlib.suppress(ValueError, OverflowError):
                sample.server_us = round(float(server_ms) * 1000)
        failed = get(_RUN_FAILED)
        run_failed = isinstance(failed, str) and failed.strip().lower() == "true"
        deployment = get(_DEPLOYMENT)
        if isinstance(deployment, str):
            sample.deployment = clean_name(deployment)
        server = get("server")
        if isinstance(server, str):
            sample.server = clean_name(server)
        head = _HEAD_OVERHEAD + 17  # "HTTP/1.1 200 OK\r\n"
        for name, value in response.items():
            head += len(name) + len(value) + 4
        sample.body_bytes = len(data)
        sample.bytes_received = head + len(data)
        if response._sent_request:
            sample.bytes_sent += len(response._sent_request)
        failure, predictions = read_response(
            status, data, complete=complete, run_function_failed=run_failed,
            expected_rows=expected_rows,
        )
        reason = failure_reason(status, get, data) if failure in REASON_KINDS else None
        return Outcome(sent_ns, done_ns, status, failure, sample, reason=reason,
                       predictions=predictions if keep_predictions else None)
