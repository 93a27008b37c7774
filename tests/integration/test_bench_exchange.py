"""When a bench request starts and ends: the sender's stamps against a real server on 127.0.0.1.

A reply ends when its bytes arrived (the kernel's receive timestamp), not when the sending
greenlet got round to reading them. Each test holds the gevent loop (as other greenlets' work
would) while the server answers, and orders the stamps against the server's own, taken on the
same clock in this process: no assertion on how long anything took.
"""

from __future__ import annotations

import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import gevent
import gevent.socket
import gevent.ssl
import pytest
from geventhttpclient.client import HTTPClient
from geventhttpclient.url import URL

from aml_client.bench.load import exchange
from aml_client.bench.load.exchange import Reply, Sender, arrival_ns, ask_receive_timestamps

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="kernel receive timestamps")

BODY = b'{"data": [[1, 2]]}'
HEADERS = {"Content-Type": "application/json"}
HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n"
PREDICTIONS = b'{"Results": [1]}'
#: How long the loop (or the server, between two parts of a reply) is held.
HOLD_S = 0.05


@dataclass
class TwoRequestServer:
    """Answers a first request at once (it opens the keep-alive connection), then a second one,
    once the client's loop is held, with ``parts`` (a pause of HOLD_S between two), noting when
    (perf_counter ns) it started and finished writing each part."""

    parts: list[bytes]
    holding: threading.Event = field(default_factory=threading.Event)
    written: threading.Event = field(default_factory=threading.Event)
    stamps: list[tuple[int, int]] = field(default_factory=list)
    port: int = 0

    def serve(self, listener: socket.socket) -> None:
        conn, _ = listener.accept()
        with conn:
            for answer in ([HEAD + PREDICTIONS], self.parts):
                data = b""
                while not data.endswith(BODY):
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    data += chunk
                if answer is self.parts and not self.holding.wait(30):
                    return
                for i, part in enumerate(answer):
                    if i:
                        time.sleep(HOLD_S)
                    before = time.perf_counter_ns()
                    conn.sendall(part)
                    self.stamps.append((before, time.perf_counter_ns()))
            self.written.set()
            conn.recv(1)  # until the client closes


@pytest.fixture(scope="module", autouse=True)
def kernel_stamps_on() -> Iterator[None]:
    """Linux turns receive timestamping on a moment after the first socket asks for it (and off
    after the last one closes): hold one stamped loopback connection open, once stamps flow."""
    with socket.create_server(("127.0.0.1", 0)) as listener, \
            socket.create_connection(listener.getsockname()) as sending:
        receiving = gevent.socket.socket(fileno=listener.accept()[0].detach())
        try:
            assert ask_receive_timestamps(receiving)
            for _ in range(3000):
                sending.sendall(b"x")
                _data, ancillary, _flags, _address = receiving.recvmsg(1, 1024)
                if arrival_ns(ancillary):
                    break
                time.sleep(0.01)
            else:
                pytest.fail("the kernel never stamped a received segment")
            yield
        finally:
            receiving.close()


@pytest.fixture
def serve() -> Iterator[Callable[[list[bytes]], TwoRequestServer]]:
    listeners: list[socket.socket] = []

    def start(parts: list[bytes]) -> TwoRequestServer:
        listener = socket.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        listeners.append(listener)
        server = TwoRequestServer(parts, port=listener.getsockname()[1])
        threading.Thread(target=server.serve, args=(listener,), daemon=True).start()
        return server

    yield start
    for listener in listeners:
        listener.close()


def exchange_while_loop_held(server: TwoRequestServer) -> tuple[Reply, int]:
    """Two requests on one connection; while the server answers the second, another greenlet
    holds the loop (a blocking wait, then HOLD_S more). The second reply and the moment the
    loop was let go."""
    uri = f"http://127.0.0.1:{server.port}/score"
    client = HTTPClient.from_url(URL(uri), concurrency=1)
    sender = Sender(client, uri, timeout_s=30)
    released: list[int] = []

    def hold_loop() -> None:
        server.holding.set()
        assert server.written.wait(30)  # not cooperative: the sender cannot read meanwhile
        time.sleep(HOLD_S)
        released.append(time.perf_counter_ns())

    try:
        first = sender.exchange(BODY, HEADERS)  # connected: the next send does not yield
        assert isinstance(first, Reply), first
        # The sender runs first, sends, and yields waiting for the reply; then the loop is held.
        sending = gevent.spawn(sender.exchange, BODY, HEADERS)
        holding = gevent.spawn(hold_loop)
        gevent.joinall([sending, holding], timeout=60, raise_error=True)  # type: ignore[type-var]
    finally:
        client.close()
    reply = sending.value
    assert isinstance(reply, Reply), reply
    assert reply.response.status_code == 200 and reply.data == PREDICTIONS
    return reply, released[0]


def test_a_reply_ends_when_it_arrived_not_when_it_was_read(
    serve: Callable[[list[bytes]], TwoRequestServer],
) -> None:
    server = serve([HEAD + PREDICTIONS])
    reply, released = exchange_while_loop_held(server)
    written_from, written_by = server.stamps[1]
    assert reply.sent_ns < written_from
    # Arrived while the server was writing: before the loop was let go (and read it).
    assert reply.done_ns < released
    assert reply.headers_ns <= reply.done_ns
    assert reply.done_ns <= written_by + (released - written_by) // 2
    assert reply.done_ns >= written_from - (released - written_by) // 2


def test_without_kernel_stamps_the_reply_ends_when_it_was_read(
    serve: Callable[[list[bytes]], TwoRequestServer], monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The same exchange with the user-space stamp only (TLS, other systems): the time the
    # loop was held is inside the latency. This is what the kernel stamp takes out.
    monkeypatch.setattr(exchange, "_ANCILLARY_SIZE", 0)
    server = serve([HEAD + PREDICTIONS])
    reply, released = exchange_while_loop_held(server)
    assert reply.done_ns >= released


def test_a_reply_in_two_parts_ends_at_the_arrival_of_its_last_bytes(
    serve: Callable[[list[bytes]], TwoRequestServer],
) -> None:
    # Read as it comes (the loop is not held): the headers in one read, the rest in another.
    server = serve([HEAD + PREDICTIONS[:5], PREDICTIONS[5:]])
    server.holding.set()
    uri = f"http://127.0.0.1:{server.port}/score"
    client = HTTPClient.from_url(URL(uri), concurrency=1)
    try:
        replies = [sender.exchange(BODY, HEADERS) for sender in [Sender(client, uri, 30)] * 2]
    finally:
        client.close()
    reply = replies[1]
    assert isinstance(reply, Reply), reply
    assert reply.data == PREDICTIONS
    assert server.written.wait(30)
    _, (head_from, head_by), (rest_from, _) = server.stamps
    half_pause = (rest_from - head_by) // 2
    assert reply.sent_ns < head_from
    assert head_from - half_pause <= reply.headers_ns <= reply.done_ns
    assert reply.done_ns >= rest_from - half_pause


def test_plain_tcp_sockets_ask_for_timestamps_tls_ones_do_not() -> None:
    plain = gevent.socket.socket()
    tls = gevent.ssl.create_default_context().wrap_socket(
        gevent.socket.socket(), do_handshake_on_connect=False, server_hostname="localhost"
    )
    try:
        assert ask_receive_timestamps(plain)
        assert not ask_receive_timestamps(tls)
    finally:
        plain.close()
        tls.close()


def test_arrival_is_read_from_the_timestamp_message_only() -> None:
    kind = exchange._SO_TIMESTAMPNS
    assert kind is not None
    stamp = struct.pack("@ll", 1_700_000_000, 123_456_789)
    other = (socket.SOL_SOCKET, kind + 1, b"\0" * 16)
    assert arrival_ns([other, (socket.SOL_SOCKET, kind, stamp)]) == (
        1_700_000_000_123_456_789
    )
    assert arrival_ns([other]) == 0
    assert arrival_ns([]) == 0
