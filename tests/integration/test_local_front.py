"""The local endpoint's front against hostile clients, over real sockets on 127.0.0.1:
slowloris connections are cut at the documented limit while a normal client keeps scoring,
header size and count are bounded, and a property-based fuzz of raw HTTP (methods, paths,
headers, bodies, framing) never takes it down, never leaves a request unanswered past its
limits and never lets an unauthenticated request reach a deployment (whose own request log,
``AMLC_LOCAL_DEPLOYMENT_LOG``, is read to prove it)."""

from __future__ import annotations

import contextlib
import os
import re
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.local import LocalEndpointHandle, start_local_endpoint, stop_local_endpoint

pytestmark = pytest.mark.slow

#: The front's head/body deadline for these tests (AMLC_LOCAL_CLIENT_TIMEOUT), short on purpose.
LIMIT_S = 3.0
#: How long past its limit a connection may take to be cut or answered on a busy machine: only
#: an upper bound far above the limit, never a window.
GRACE_S = 30.0
ROWS = {
    "Inputs": {
        "data": [
            {
                "age": 17, "job": "blue-collar", "marital": "married",
                "education": "university.degree", "default": "no", "housing": "yes",
                "loan": "yes", "contact": "cellular", "month": "may", "day_of_week": "mon",
                "duration": 971, "campaign": 1, "pdays": 999, "previous": 1,
                "poutcome": "failure", "emp.var.rate": -1.8, "cons.price.idx": 92.893,
                "cons.conf.idx": -46.2, "euribor3m": 1.299, "nr.employed": 5099.1,
            }
        ]
    }
}  # fmt: skip
STATUS_LINE = re.compile(rb"^HTTP/1\.[01] (\d{3})")


@dataclass
class Front:
    handle: LocalEndpointHandle
    #: The deployment's own request log: every request that reached it (but health probes).
    deployment_log: Path

    @property
    def port(self) -> int:
        return self.handle.info.port

    def deployment_lines(self) -> list[str]:
        if not self.deployment_log.exists():
            return []
        return self.deployment_log.read_text(encoding="utf-8", errors="replace").splitlines()


@pytest.fixture(scope="module")
def front(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> Iterator[Front]:
    log = tmp_path_factory.mktemp("deployment-log") / "deployment.log"
    saved = {name: os.environ.get(name) for name in ("AMLC_LOCAL_CLIENT_TIMEOUT",
                                                      "AMLC_LOCAL_DEPLOYMENT_LOG")}  # fmt: skip
    os.environ["AMLC_LOCAL_CLIENT_TIMEOUT"] = str(LIMIT_S)
    os.environ["AMLC_LOCAL_DEPLOYMENT_LOG"] = str(log)
    try:
        handle = start_local_endpoint(tmp_path_factory, local_model_cache, workers=1)
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    try:
        yield Front(handle, log)
    finally:
        stop_local_endpoint(handle)


#: Every request this module sends with the key (the only ones that may reach /score upstream).
_AUTHENTICATED: list[int] = []


def _score(front: Front, client: httpx.Client) -> int:
    answer = client.post(front.handle.scoring_uri, json=ROWS, headers=front.handle.headers())
    _AUTHENTICATED.append(answer.status_code)
    return answer.status_code


def _closed_by_peer(sock: socket.socket) -> bool:
    """True once the server has closed (EOF or reset); False while it holds the socket."""
    try:
        return sock.recv(4096) == b""
    except (BlockingIOError, TimeoutError):
        return False
    except OSError:
        return True


def test_slowloris_sockets_are_cut_at_the_limit_while_others_are_served(front: Front) -> None:
    """300 sockets each send a request head a line at a time and never finish it; a
    normal client scores beside them the whole time. Every slow socket is closed by the
    front, none before the limit; every score succeeds."""
    count = 300
    head = b"POST /score HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    sockets: list[tuple[socket.socket, float]] = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", front.port), timeout=10)
        sockets.append((sock, time.monotonic()))
        sock.sendall(head)
    closed_after: dict[int, float] = {}
    #: (status, slow sockets still open when it was answered) of each score beside them.
    scores: list[tuple[int, int]] = []
    stop = threading.Event()

    def score_meanwhile() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                status = _score(front, client)
                scores.append((status, count - len(closed_after)))

    scorer = threading.Thread(target=score_meanwhile, daemon=True)
    scorer.start()
    try:
        deadline = time.monotonic() + LIMIT_S + GRACE_S
        trickle = 0
        while len(closed_after) < count and time.monotonic() < deadline:
            trickle += 1
            for index, (sock, opened) in enumerate(sockets):
                if index in closed_after:
                    continue
                sock.setblocking(False)
                if _closed_by_peer(sock):
                    closed_after[index] = time.monotonic() - opened
                    continue
                try:  # one more header line, slowly: the head never completes
                    sock.send(f"X-Slow-{trickle}: {trickle}\r\n".encode())
                except OSError:
                    closed_after[index] = time.monotonic() - opened
            time.sleep(0.2)
    finally:
        stop.set()
        scorer.join(timeout=90)
        for sock, _ in sockets:
            sock.close()
    assert len(closed_after) == count, f"{count - len(closed_after)} slow sockets still open"
    assert min(closed_after.values()) >= LIMIT_S * 0.9, "cut before the documented limit"
    assert scores and {status for status, _ in scores} == {200}, scores
    assert any(still_open for _, still_open in scores), "no score answered beside the slow ones"
    with httpx.Client(timeout=60) as client:
        assert _score(front, client) == 200


def _raw(port: int, data: bytes, wait_s: float) -> tuple[int | None, float]:
    """Send ``data`` on a fresh connection; (the status answered, or None when the front
    closed without one, and the seconds it took). Fails when neither happens in ``wait_s``."""
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.settimeout(wait_s)
        with contextlib.suppress(OSError):  # cut off while sending: it still has to answer
            sock.sendall(data)
        received = b""
        try:
            while b"\r\n" not in received:
                chunk = sock.recv(4096)
                if not chunk:
                    break
                received += chunk
        except TimeoutError:
            pytest.fail(f"no answer and no close within {wait_s:.0f} s for {data[:200]!r}")
        except ConnectionResetError:
            pass
    match = STATUS_LINE.match(received)
    return (int(match.group(1)) if match else None), time.monotonic() - started


def test_long_and_many_headers_are_refused_before_any_handler(front: Front) -> None:
    from aml_client.local._front import MAX_FIELD_BYTES, MAX_HEADERS, MAX_LINE_BYTES

    def get(path: bytes = b"/", extra: int = 0, field: bytes = b"1") -> bytes:
        """GET with ``extra`` headers besides Host, the first holding ``field``."""
        headers = b"".join(b"X-%d: %s\r\n" % (i, field if i == 0 else b"1") for i in range(extra))
        return b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n"

    line_room = MAX_LINE_BYTES - len(b"GET  HTTP/1.1")
    field_room = MAX_FIELD_BYTES
    refused = {
        "a long request line": get(b"/?" + b"a" * line_room),
        "a long header": get(extra=1, field=b"b" * (field_room + 1)),
        "too many headers": get(extra=MAX_HEADERS),
    }
    accepted = {
        "the longest request line": get(b"/?" + b"a" * (line_room - 2)),
        "the longest header": get(extra=1, field=b"b" * field_room),
        "the most headers": get(extra=MAX_HEADERS - 1),
    }
    before = len(front.deployment_lines())
    for name, data in refused.items():
        status, _ = _raw(front.port, data, LIMIT_S + GRACE_S)
        assert status is not None and 400 <= status < 500, (name, status)
    time.sleep(0.5)  # the deployment writes its log line as it answers
    assert len(front.deployment_lines()) == before, "a refused request reached the deployment"
    for name, data in accepted.items():
        status, _ = _raw(front.port, data, LIMIT_S + GRACE_S)
        assert status == 200, (name, status)


def test_a_body_slower_than_the_limit_gets_408(front: Front) -> None:
    head = (
        b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Authorization: Bearer " + front.handle.primary_key.encode() + b"\r\n"
        b"Content-Length: 1000\r\n\r\n{"
    )
    status, _ = _raw(front.port, head, LIMIT_S + GRACE_S)
    assert status == 408


# -- the fuzz ---------------------------------------------------------------------------------

_TOKEN = st.text(alphabet="ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz-_!", min_size=1,
                 max_size=12)  # fmt: skip


def _mostly(common: list[str], rare: list[str], weight: int = 4) -> st.SearchStrategy[str]:
    """Well-formed values most of the time, so the fuzz gets past the parser as often as it
    trips it."""
    return st.sampled_from(common * weight + rare)


METHODS = _mostly(["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"],
                  ["TRACE", "CONNECT", "PRI", "get", "POST ", "FOO", "A", "M-SEARCH"])  # fmt: skip
PATHS = st.one_of(
    _mostly(["/", "/score", "/swagger.json", "/score?x=1"], [
        "//score", "/score/", "/SCORE", "/%73core", "/../score", "/score#frag", "*",
        "http://127.0.0.1/score", "/score%00", "/swagger.json?version=3", "/" + "a" * 3000,
    ], weight=3),
    st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=40).map(
        lambda t: "/" + t
    ),
)  # fmt: skip
VERSIONS = _mostly(["HTTP/1.1", "HTTP/1.0"], ["HTTP/2.0", "HTTP/1.1 ", "HTTP/9", "HTTP"], 6)
AUTH = st.sampled_from([
    None, "Bearer", "Bearer ", "Bearer wrong-key", "Bearer " + "k" * 3000, "Basic dXNlcjpwYXNz",
    "bearer wrong", "Bearer\twrong", "Bearer wrong\r\nX-Injected: 1", "Bearer " + "k" * 5000,
])  # fmt: skip
HEADER_NAMES = st.one_of(
    st.sampled_from([
        "Content-Type", "Accept", "azureml-model-deployment", "x-ms-client-request-id",
        "x-request-id", "Expect", "Connection", "Upgrade", "Host", "Cookie", "Accept-Encoding",
        "Content-Encoding", "Transfer-Encoding", "Content-Length",
    ]),
    _TOKEN,
)  # fmt: skip
HEADER_VALUES = st.one_of(
    st.sampled_from(["blue", "nope", "100-continue", "close", "keep-alive", "h2c", "websocket",
                     "gzip", "application/json", "x" * 120, "", " ", "chunked", "-1"]),
    st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=30),
)  # fmt: skip
FRAMINGS = _mostly(["exact", "none", "chunked"], [
    "short body", "long body", "negative length", "two lengths", "length and chunked",
    "bad chunk size", "unterminated chunks", "huge length", "non-numeric length", "bare LF",
], weight=5)  # fmt: skip


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    """One raw request, never with the endpoint's key."""
    method, path, version = draw(METHODS), draw(PATHS), draw(VERSIONS)
    headers = [(draw(HEADER_NAMES), draw(HEADER_VALUES))
               for _ in range(draw(st.integers(0, 3)))]  # fmt: skip
    auth = draw(AUTH)
    if auth is not None:
        headers.append(("Authorization", auth))
    body = draw(st.binary(max_size=600))
    framing = draw(FRAMINGS)
    eol = "\n" if framing == "bare LF" else "\r\n"
    tail = b""
    if framing in ("exact", "bare LF"):
        headers.append(("Content-Length", str(len(body))))
        tail = body
    elif framing == "short body":
        headers.append(("Content-Length", str(len(body) + 50)))
        tail = body
    elif framing == "long body":
        headers.append(("Content-Length", str(len(body) // 2)))
        tail = body
    elif framing == "negative length":
        headers.append(("Content-Length", "-5"))
        tail = body
    elif framing == "two lengths":
        headers += [("Content-Length", str(len(body))), ("Content-Length", "3")]
        tail = body
    elif framing == "length and chunked":
        headers += [("Content-Length", "4"), ("Transfer-Encoding", "chunked")]
        tail = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    elif framing == "chunked":
        headers.append(("Transfer-Encoding", "chunked"))
        tail = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    elif framing == "bad chunk size":
        headers.append(("Transfer-Encoding", "chunked"))
        tail = b"zz\r\n" + body + b"\r\n0\r\n\r\n"
    elif framing == "unterminated chunks":
        headers.append(("Transfer-Encoding", "chunked"))
        tail = b"%x\r\n%s" % (len(body) + 10, body)
    elif framing == "huge length":
        headers.append(("Content-Length", "9" * 30))
        tail = body
    elif framing == "non-numeric length":
        headers.append(("Content-Length", "1e3"))
        tail = body
    head = f"{method} {path} {version}{eol}Host: 127.0.0.1{eol}"
    head += "".join(f"{name}: {value}{eol}" for name, value in headers) + eol
    return head.encode("utf-8", "surrogateescape") + tail


_SENT: list[tuple[bytes, int | None, float]] = []


@settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(request=requests())
def fuzz_raw_requests(front: Front, request: bytes) -> None:
    data = request
    # An incomplete head or body is cut at the limit; the rest are answered at once. Either
    # way the front answers or closes within its limit (plus the busy machine's grace).
    status, took = _raw(front.port, data, 2 * LIMIT_S + GRACE_S)
    _SENT.append((data, status, took))
    assert status is None or (100 <= status < 600 and status != 500), (status, data[:300])


def test_fuzzed_requests_leave_the_front_up_and_reach_no_deployment_unauthenticated(
    front: Front,
) -> None:
    """The fuzz, then: the deployment's own access log holds only open routes (health,
    swagger, CORS preflight), never a request that needed the key."""
    fuzz_raw_requests(front)
    assert _SENT, "the fuzz sent nothing"
    outcomes = Counter(status for _, status, _ in _SENT)
    # The fuzz reached the parser's refusals, the key check and the deployments (open routes).
    assert outcomes[400] and outcomes[401] and outcomes[200], outcomes
    with httpx.Client(timeout=60) as client:
        assert client.get(f"http://127.0.0.1:{front.port}/").status_code == 200
        assert _score(front, client) == 200
    time.sleep(0.5)  # the deployment writes its log line as it answers
    seen = [line.split() for line in front.deployment_lines()]
    scored = [fields for fields in seen if fields[1:3] == ["POST", "/score"]]
    assert scored, "the log is real: the authenticated scores are in it"
    assert all(fields[5] == "key=primary" for fields in scored), scored[:3]
    without_key = [
        " ".join(fields) for fields in seen
        if fields[5] != "key=primary"
        and not (fields[1] in ("GET", "HEAD") and fields[2].split("?")[0] in ("/", "/swagger.json"))
        and fields[1] != "OPTIONS"
    ]  # fmt: skip
    assert without_key == [], without_key[:5]
    assert len(scored) == len(_AUTHENTICATED), "a request without the key reached the deployment"
