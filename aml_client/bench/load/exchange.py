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

What the generator adds to each latency is kept small:

* the request head (request line and headers, built and checked by geventhttpclient's own
  ``_build_request``) is built once per header set and body length, and each request is one
  ``sendall`` of head and body, stamped just before it (as ``wrk`` stamps its ``write``); a
  request that opened a connection counts its ``connect`` time as well;
* a reply ends when its last bytes *arrived*, not when this greenlet got round to reading them:
  on Linux every plain-TCP connection asks the kernel for receive timestamps
  (``SO_TIMESTAMPNS``) and each read is a ``recvmsg`` that returns one, so the time a reply
  waits while other greenlets handle the replies that arrived with it (user-space queueing in
  one Python thread) is not counted. The kernel stamps ``CLOCK_REALTIME``; the span from the
  send is taken on that clock and bounded by the user-space stamps, so a clock step can never
  make a latency negative or longer than it was seen. TLS connections (and other systems) keep
  the user-space stamp taken when the last byte was read;
* the checks and the recording wait until the other greenlets whose replies arrived in the
  same loop iteration have read theirs (``gevent.sleep(0)``), so one request's bookkeeping
  delays no other request.
"""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import gevent
import gevent.socket
from gevent import Timeout
from gevent.ssl import SSLSocket
from geventhttpclient.client import HTTPClient
from geventhttpclient.response import HTTPSocketPoolResponse
from geventhttpclient.url import URL

from aml_client.bench.checks import (
    REASON_KINDS,
    classify_error,
    decode_body,
    failure_reason,
    read_response,
)
from aml_client.bench.result import Sample, clean_name

__all__ = ["Outcome", "Reply", "Sender", "arrival_ns", "ask_receive_timestamps"]

_SERVER_TIME = "x-ms-run-fn-exec-ms"
_RUN_FAILED = "x-ms-run-function-failed"
_DEPLOYMENT = "azureml-model-deployment"
#: Request line, status line and header framing that the parsed headers do not show.
_HEAD_OVERHEAD = 2
#: Header sets whose request heads are kept (a fresh token or another deployment adds one).
_MAX_HEADER_SETS = 16


#: ``SO_TIMESTAMPNS`` (its ``SCM_TIMESTAMPNS`` control message has the same number): Linux
#: only, and not every Python names it.
_SO_TIMESTAMPNS = getattr(socket, "SO_TIMESTAMPNS", 35) if sys.platform == "linux" else None
#: The kernel's ``struct timespec`` of ``SCM_TIMESTAMPNS``: two C longs.
_TIMESPEC = struct.Struct("@ll")
_ANCILLARY_SIZE = socket.CMSG_SPACE(_TIMESPEC.size) if _SO_TIMESTAMPNS is not None else 0


def _plain(sock: Any) -> bool:
    """A gevent socket without TLS: its reads can be ``recvmsg`` (a TLS socket's cannot)."""
    return isinstance(sock, gevent.socket.socket) and not isinstance(sock, SSLSocket)


def ask_receive_timestamps(sock: Any) -> bool:
    """Ask the kernel to stamp what ``sock`` receives (a plain TCP socket on Linux); False
    when it cannot (TLS, another system): its replies keep user-space stamps."""
    if _SO_TIMESTAMPNS is None or not _plain(sock):
        return False
    try:
        sock.setsockopt(socket.SOL_SOCKET, _SO_TIMESTAMPNS, 1)
    except (OSError, AttributeError):
        return False
    return True


def arrival_ns(ancillary: list[tuple[int, int, bytes]]) -> int:
    """The kernel's receive time (``CLOCK_REALTIME`` ns) in ``recvmsg``'s control messages,
    or 0 when there is none."""
    for level, kind, data in ancillary:
        if level == socket.SOL_SOCKET and kind == _SO_TIMESTAMPNS \
                and len(data) >= _TIMESPEC.size:
            seconds, nanoseconds = _TIMESPEC.unpack_from(data)
            return int(seconds * 1_000_000_000 + nanoseconds)
    return 0


class _StampedReads:
    """A socket's reads as the response parser sees them (``recv``), each one a ``recvmsg``
    that keeps the kernel's receive time of the last bytes read (:attr:`arrived_rt`)."""

    __slots__ = ("arrived_rt", "sock")

    def __init__(self, sock: Any) -> None:
        self.sock = sock
        self.arrived_rt = 0

    def recv(self, size: int) -> bytes:
        data, ancillary, _flags, _address = self.sock.recvmsg(size, _ANCILLARY_SIZE)
        if data:
            self.arrived_rt = arrival_ns(ancillary)
        return data  # type: ignore[no-any-return]

    def close(self) -> None:
        self.sock.close()


class _Response(HTTPSocketPoolResponse):
    """geventhttpclient's pooled response, reading through :class:`_StampedReads`; the pool
    gets the socket itself back."""

    def release(self) -> None:
        reads = self._sock
        if isinstance(reads, _StampedReads):
            self._sock = reads.sock
        super().release()

    def __del__(self) -> None:
        reads = self._sock
        if isinstance(reads, _StampedReads):
            self._sock = reads.sock
        super().__del__()


def _on_clock(stamp_ns: int, sent_ns: int, sent_rt: int, arrived_rt: int, read_ns: int) -> int:
    """The perf_counter time at which bytes stamped ``arrived_rt`` (realtime) arrived, for a
    request sent at ``sent_ns`` / ``sent_rt``: never before ``stamp_ns`` (the previous stamp)
    nor after ``read_ns`` (when they were read); ``read_ns`` when there is no kernel stamp."""
    if not arrived_rt:
        return read_ns
    return min(max(sent_ns + arrived_rt - sent_rt, stamp_ns), read_ns)


class _Deadline(Exception):
    """The request's total deadline passed (raised by gevent.Timeout in the sender)."""


@dataclass(slots=True)
class Outcome:
    """One request: when it was sent and done (perf_counter ns), its status and failure kind.

    ``reason`` is Azure's explanation of a 408/424/429 (see
    :func:`~aml_client.bench.checks.failure_reason`);
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


@dataclass(slots=True)
class Reply:
    """A whole answer as it came off the wire, timed (perf_counter ns), not yet checked."""

    sent_ns: int
    headers_ns: int
    done_ns: int
    #: time spent opening a connection for this request (-1: it reused one)
    connect_ns: int
    bytes_sent: int
    response: Any
    data: bytes


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
            ask_receive_timestamps(sock)
            return sock

        pool._create_socket = timed_create_socket  # type: ignore[method-assign]
        self._pool = pool
        #: id(headers) -> (headers, {body length: encoded request head})
        self._heads: dict[int, tuple[dict[str, str], dict[int, bytes]]] = {}

    def _head(self, headers: dict[str, str], length: int) -> bytes:
        """The request line and headers for a body of ``length`` bytes (cached)."""
        entry = self._heads.get(id(headers))
        if entry is None or entry[0] is not headers:
            if len(self._heads) >= _MAX_HEADER_SETS:
                self._heads.clear()
            entry = self._heads[id(headers)] = (headers, {})
        head = entry[1].get(length)
        if head is None:
            text = self.client._build_request(
                "POST", self.request_uri, body=b"\0" * length, headers=headers, chunked=False
            )
            head = entry[1][length] = text.encode("latin-1")
        return head

    def _request(
        self, body: bytes, headers: dict[str, str]
    ) -> tuple[Any, int, int, int, _StampedReads | None]:
        """Send one POST on a pooled keep-alive connection: (response, bytes sent, the send's
        perf_counter and realtime stamps, the stamped reads if any). A POST is never sent twice
        (as geventhttpclient: not after a send error)."""
        wire = self._head(headers, len(body)) + body
        pool = self._pool
        sock = pool.get_socket()
        sent_rt = time.time_ns()
        sent_ns = time.perf_counter_ns()
        try:
            sock.sendall(wire)
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                pool.release_socket(sock)
                raise
            # The server may have answered (a 413, a 401) and closed: read that answer.
        except BaseException:  # the deadline, or the greenlet killed: the socket is unusable
            pool.release_socket(sock)
            raise
        client = self.client
        reads = _StampedReads(sock) if _ANCILLARY_SIZE and _plain(sock) else None
        stream: Any = sock if reads is None else reads
        response = _Response(
            stream, pool, block_size=client.block_size, method="POST",
            headers_type=client.headers_type,
        )
        return response, len(wire), sent_ns, sent_rt, reads

    def send(
        self,
        body: bytes,
        headers: dict[str, str],
        expected_rows: int | None,
        keep_predictions: bool = False,
    ) -> Outcome:
        """POST ``body``; never raises for what the endpoint or the network did."""
        reply = self.exchange(body, headers)
        if isinstance(reply, Outcome):
            return reply
        gevent.sleep(0)  # let the replies that arrived with this one be read (and timed)
        return self.finish(reply, expected_rows, keep_predictions)

    def exchange(self, body: bytes, headers: dict[str, str]) -> Reply | Outcome:
        """The network part of :meth:`send`: the whole answer, timed (a :class:`Reply` to
        :meth:`finish`), or the failed request's :class:`Outcome` (nothing left to do)."""
        me = gevent.getcurrent()
        headers_ns = done_ns = 0
        response = None
        timer = Timeout(self.timeout_s, _Deadline)
        sent_ns = time.perf_counter_ns()
        timer.start()
        try:
            response, sent, wire_ns, sent_rt, reads = self._request(body, headers)
            headers_ns = time.perf_counter_ns()
            headers_rt = reads.arrived_rt if reads is not None else 0
            data = response.read()
            done_ns = time.perf_counter_ns()
            timer.close()
        except BaseException as exc:
            done_ns = done_ns or time.perf_counter_ns()
            timer.close()
            if not isinstance(exc, Exception):  # GreenletExit, KeyboardInterrupt: let them go
                raise
            if response is not None:
                response.release()
            connect = self._connect_ns.pop(me, -1)
            kind = "timeout" if isinstance(exc, _Deadline) else classify_error(
                exc, headers_received=headers_ns > 0)
            status = response.status_code if response is not None else 0
            sample = Sample()
            sample.bytes_sent = len(body)
            sample.connect_us = connect // 1000 if connect >= 0 else -1
            if headers_ns:
                sample.ttfb_us = (headers_ns - sent_ns - max(connect, 0)) // 1000
                sample.body_us = (done_ns - headers_ns) // 1000
            else:
                sample.ttfb_us = (done_ns - sent_ns - max(connect, 0)) // 1000
            return Outcome(sent_ns, done_ns, status, kind, sample,
                           error=None if isinstance(exc, _Deadline) else exc)
        connect = self._connect_ns.pop(me, -1)
        # From the send (a new connection's connect included) to the kernel's arrival of the
        # headers and of the last byte (see the module docstring).
        sent_ns = max(wire_ns - max(connect, 0), sent_ns)
        done_rt = reads.arrived_rt if reads is not None else 0
        headers_ns = _on_clock(wire_ns, wire_ns, sent_rt, headers_rt, headers_ns)
        done_ns = _on_clock(headers_ns, wire_ns, sent_rt, done_rt, done_ns)
        return Reply(sent_ns, headers_ns, done_ns, connect, sent, response, data)

    def finish(
        self, reply: Reply, expected_rows: int | None, keep_predictions: bool = False
    ) -> Outcome:
        """The checks and figures of a :class:`Reply` (from :meth:`exchange`): its
        :class:`Outcome`. Runs after the replies that arrived with it were read."""
        sample = Sample()
        sent_ns, headers_ns, done_ns, connect = (
            reply.sent_ns, reply.headers_ns, reply.done_ns, reply.connect_ns
        )
        response, data = reply.response, reply.data
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
        sample.bytes_received = head + len(data)
        sample.bytes_sent = reply.bytes_sent
        coding = get("content-encoding")
        decoded: bytes | None = data
        if isinstance(coding, str) and complete and 200 <= status < 300:
            decoded = decode_body(data, coding)
        failure: str | None
        if decoded is None:
            failure, predictions = "encoding", None
        else:
            data = decoded
            failure, predictions = read_response(
                status, data, complete=complete, run_function_failed=run_failed,
                expected_rows=expected_rows,
            )
        sample.body_bytes = len(data)
        reason = failure_reason(status, get, data) if failure in REASON_KINDS else None
        return Outcome(sent_ns, done_ns, status, failure, sample, reason=reason,
                       predictions=predictions if keep_predictions else None)
