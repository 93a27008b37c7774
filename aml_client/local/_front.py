"""The local endpoint's front: one scoring URI in front of its deployments, as on Azure.

``python -m aml_client.local._front PLAN`` starts one gunicorn server per deployment (each on an
internal 127.0.0.1 port bound by ``start``), waits until every one answers, then serves the
public socket with aiohttp: the key check, the traffic split or the ``azureml-model-deployment``
pin, Azure's request settings (429, 408), 424 for a failing scoring function and the request
log. aiohttp gives both halves in one well-kept library: an asyncio HTTP/1.1 server that keeps
client connections alive, and a client whose connector pools upstream connections (gunicorn's
sync workers, which the inference server needs for its timeout, close theirs after each answer).

What the front answers itself, with ``{"message": ...}`` bodies:

- 401 without a valid key (as each deployment would; the key is also checked there);
- 404 for a path other than ``/``, ``/score`` and ``/swagger.json``, and, with Azure's wording,
  for a pinned deployment that does not exist or an unpinned request when no deployment has
  traffic;
- 429 when the deployment already has ``2 × max_concurrent_requests_per_instance`` requests
  pending; 408 past ``request_timeout_ms`` (counted from arrival, waiting included);
- 424 when the scoring function answers anything but 200, with its status and reason in
  ``ms-azureml-model-error-statuscode`` / ``ms-azureml-model-error-reason`` and its body;
- 502 when a deployment cannot be reached, 503 while the deployments are starting.

Like a cloud front, it bounds what a client may hold: a request head must be complete within
``CLIENT_TIMEOUT_S`` (15 s; ``AMLC_LOCAL_CLIENT_TIMEOUT`` changes it) of the connection or of
the previous answer, and a body within as long again of its head (408), else the connection is
closed; the request line is at most 4,094 bytes, a header's name and value 4,000 each, and a
request has at most 90 headers (aiohttp's own parser limits: 400), so what passes the front,
its deployments (gunicorn) accept too. Slow clients cost a socket each, never a worker: everyone
else is answered meanwhile.

Request ids follow Azure: the platform sets ``x-request-id`` itself (a client's value is
replaced) and passes it to the deployment; ``x-ms-client-request-id`` is the client's own id,
passed through and echoed; ``x-ms-request-id`` is what the inference server makes of them.
Every answer that a deployment was chosen for names it in ``azureml-model-deployment``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from http import HTTPStatus
from pathlib import Path

import aiohttp
from aiohttp import web
from multidict import CIMultiDict
from yarl import URL

from aml_client.environment import seconds_from_env
from aml_client.errors import ConfigError
from aml_client.local import _launch
from aml_client.local._auth import (
    WWW_AUTHENTICATE,
    AccessLog,
    KeyChecker,
    access_line,
    is_open,
)
from aml_client.local._deployments import DeploymentInfo, FrontPlan
from aml_client.local._parent import die_with_parent
from aml_client.local._routing import (
    Admission,
    RequestTimedOut,
    SmoothWeightedRoundRobin,
    TooManyPending,
)

logger = logging.getLogger("amlc.local.front")

#: The header that pins a deployment, and names the one that answered.
DEPLOYMENT_HEADER = "azureml-model-deployment"
MODEL_STATUS_HEADER = "ms-azureml-model-error-statuscode"
MODEL_REASON_HEADER = "ms-azureml-model-error-reason"
#: Azure's answer when no deployment can take a request.
NO_DEPLOYMENT_MESSAGE = (
    "No valid deployments to route to. Please check that the endpoint has at least one "
    "deployment with positive weight values or use a deployment specific header to route."
)
ROUTES = frozenset({"/", "/score", "/swagger.json"})
#: The methods that run the scoring function (the server reads a GET's query as its body).
SCORING_METHODS = frozenset({"POST", "GET"})
#: The inference server refuses request ids longer than this (431); so does the front.
HEADER_LIMIT = 100
#: Largest request body accepted (AKS documents 100 MB); larger ones get 413.
MAX_BODY_BYTES = 100 * 1024 * 1024
#: How long health and swagger requests may take (they have no request settings).
PLAIN_TIMEOUT_S = 30.0
#: How long in-flight requests may finish once the front is told to stop.
SHUTDOWN_TIMEOUT_S = 4.0
#: A request head must arrive within this many seconds of the connection (or of the previous
#: answer), and its body within as long again; slower clients are cut off (slowloris).
CLIENT_TIMEOUT_S = 15.0
#: Seconds, to shorten (tests) or lengthen the limit above.
ENV_CLIENT_TIMEOUT = "AMLC_LOCAL_CLIENT_TIMEOUT"
#: aiohttp's parser limits, kept within those of gunicorn behind the front (request line 4,094
#: bytes; header lines 8,190 with their CRLF; 100 headers, of which the front adds a few), so
#: what the front lets through a deployment accepts. A header's name and its value are each
#: limited to MAX_FIELD_BYTES.
MAX_LINE_BYTES = 4094
MAX_FIELD_BYTES = 4000
MAX_HEADERS = 90

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "trailers",
        "transfer-encoding",
        "upgrade",
    }
)
_DROP_FROM_REQUEST = (
    _HOP_BY_HOP | {"host", "content-length", "expect", "x-request-id"} | {DEPLOYMENT_HEADER}
)
_DROP_FROM_RESPONSE = _HOP_BY_HOP | {"content-length", "date"}


class UpstreamUnavailable(Exception):
    """The deployment's server could not be reached."""


@dataclass
class Upstream:
    """A deployment's answer, read whole (scoring answers are small)."""

    status: int
    reason: str
    headers: CIMultiDict[str]
    body: bytes


@dataclass
class Exchange:
    """What the front knows about one request while it handles it (for headers and the log)."""

    started: float
    arrived: float
    request_id: str
    client_id: str
    legacy_id: str
    key: str = "-"
    deployment: str | None = None
    model_status: str | None = None
    run_ms: str = "-"


def client_timeout_s() -> float:
    """The head and body deadline: ``AMLC_LOCAL_CLIENT_TIMEOUT`` seconds, else 15 s (with a
    warning when the variable holds anything but seconds up to an hour)."""
    try:
        value = seconds_from_env(ENV_CLIENT_TIMEOUT, maximum=3600)
    except ConfigError as exc:
        logger.warning("%s; using %.0f s", exc, CLIENT_TIMEOUT_S)
        return CLIENT_TIMEOUT_S
    return CLIENT_TIMEOUT_S if value is None else value


class HeadDeadlines:
    """Closes a connection whose first request head is not complete in time.

    aiohttp closes a kept-alive connection that sends no complete head within its
    ``keepalive_timeout`` of the previous answer, and recent releases also time the first head
    from the connection; this covers the first head on every release. Armed when the server
    sees a connection (``web.Server.connection_made``), disarmed when a request reaches the
    handler (its head is complete) or the connection ends.
    """

    def __init__(self, timeout_s: float) -> None:
        self.timeout_s = timeout_s
        self._timers: dict[web.RequestHandler, asyncio.TimerHandle] = {}

    def install(self, server: web.Server) -> None:
        made, lost = server.connection_made, server.connection_lost

        def connection_made(handler: web.RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            loop = asyncio.get_running_loop()
            self._timers[handler] = loop.call_later(self.timeout_s, self._expire, handler)

        def connection_lost(
            handler: web.RequestHandler, exc: BaseException | None = None
        ) -> None:
            self.disarm(handler)
            lost(handler, exc)

        server.connection_made = connection_made  # type: ignore[method-assign]
        server.connection_lost = connection_lost  # type: ignore[method-assign]

    def disarm(self, handler: web.RequestHandler) -> None:
        timer = self._timers.pop(handler, None)
        if timer is not None:
            timer.cancel()

    def _expire(self, handler: web.RequestHandler) -> None:
        if self._timers.pop(handler, None) is not None:
            handler.force_close()


@dataclass
class Deployment:
    info: DeploymentInfo
    base_url: str
    admission: Admission
    process: subprocess.Popen[bytes] | None = None


@dataclass
class Front:
    """The aiohttp handler and the state it routes with."""

    plan: FrontPlan
    deployments: dict[str, Deployment]
    session: aiohttp.ClientSession
    keys: KeyChecker = field(init=False)
    log: AccessLog = field(init=False)
    router: SmoothWeightedRoundRobin = field(init=False)
    default: str = field(init=False)  # answers health and swagger requests that name none
    ready: bool = False
    #: The head and body deadline (see the module docstring).
    client_timeout_s: float = CLIENT_TIMEOUT_S
    deadlines: HeadDeadlines | None = None

    def __post_init__(self) -> None:
        self.keys = KeyChecker(Path(self.plan.keys_file))
        self.log = AccessLog(Path(self.plan.access_log))
        self.router = SmoothWeightedRoundRobin(
            {name: d.info.traffic for name, d in self.deployments.items()}
        )
        self.default = self.plan.deployments[0].name

    # the request ----------------------------------------------------------------------------
    async def handle(self, request: web.Request) -> web.StreamResponse:
        if self.deadlines is not None:
            self.deadlines.disarm(request.protocol)  # the head is complete
        exchange = Exchange(
            started=time.perf_counter(),
            arrived=time.monotonic(),
            request_id=str(uuid.uuid4()),
            client_id=request.headers.get("x-ms-client-request-id", ""),
            legacy_id=request.headers.get("x-ms-request-id", ""),
        )
        response = await self._respond(request, exchange)
        self._log(request, response, exchange)
        return response

    async def _respond(self, request: web.Request, exchange: Exchange) -> web.Response:
        if len(exchange.client_id) > HEADER_LIMIT or len(exchange.legacy_id) > HEADER_LIMIT:
            exchange.client_id = exchange.legacy_id = ""
            return self._answer(
                exchange,
                431,
                f"x-ms-request-id and x-ms-client-request-id must not exceed {HEADER_LIMIT} "
                "characters",
            )
        method, path = request.method, request.path
        if not is_open(method, path):
            matched, reason = self.keys.check(request.headers.get("Authorization", ""))
            if matched is None:
                exchange.key = "refused"
                return self._answer(exchange, 401, reason, {"WWW-Authenticate": WWW_AUTHENTICATE})
            exchange.key = matched
        if path not in ROUTES:
            return self._answer(exchange, 404, f"Not found: {path[:100]}")
        if not self.ready:
            return self._answer(exchange, 503, "The endpoint is starting; try again shortly.")

        deployment = self._choose(request, path)
        if deployment is None:
            return self._answer(exchange, 404, NO_DEPLOYMENT_MESSAGE)
        exchange.deployment = deployment.info.name
        try:
            body = await asyncio.wait_for(request.read(), self.client_timeout_s)
        except web.HTTPRequestEntityTooLarge:
            return self._answer(
                exchange, 413, f"The request body is larger than {MAX_BODY_BYTES} bytes."
            )
        except TimeoutError:
            answer = self._answer(
                exchange,
                408,
                f"The request body did not arrive within {self.client_timeout_s:g} s.",
            )
            answer.force_close()  # what is left of the body is not waited for
            return answer

        if path == "/score" and method in SCORING_METHODS:
            return await self._score(request, exchange, deployment, body)
        try:
            upstream = await self._forward(request, exchange, deployment, body, PLAIN_TIMEOUT_S)
        except TimeoutError:
            return self._answer(exchange, 504, "The deployment did not answer in time.")
        except UpstreamUnavailable as exc:
            return self._answer(exchange, 502, str(exc))
        return self._relay(exchange, upstream)

    def _choose(self, request: web.Request, path: str) -> Deployment | None:
        pinned = request.headers.get(DEPLOYMENT_HEADER)
        if pinned is not None:
            return self.deployments.get(pinned.strip())
        if path != "/score":
            return self.deployments[self.default]  # health and swagger: the first deployment
        name = self.router.next()
        return self.deployments[name] if name is not None else None

    async def _score(
        self, request: web.Request, exchange: Exchange, deployment: Deployment, body: bytes
    ) -> web.Response:
        async def call(seconds_left: float) -> Upstream:
            return await self._forward(request, exchange, deployment, body, seconds_left)

        info = deployment.info
        try:
            upstream = await deployment.admission.run(exchange.arrived, call)
        except TooManyPending:
            limit = deployment.admission.max_pending
            return self._answer(
                exchange,
                429,
                f"Too many pending requests for deployment {info.name}: at most {limit} may be "
                f"pending at any time (2 x max_concurrent_requests_per_instance, which is "
                f"{info.max_concurrent_requests_per_instance}).",
            )
        except RequestTimedOut:
            return self._answer(
                exchange,
                408,
                f"Request timed out after {info.request_timeout_ms} ms "
                f"(request_timeout_ms of deployment {info.name}).",
            )
        except UpstreamUnavailable as exc:
            return self._answer(exchange, 502, str(exc))
        if upstream.status != 200:
            return self._model_error(exchange, upstream)
        return self._relay(exchange, upstream)

    async def _forward(
        self,
        request: web.Request,
        exchange: Exchange,
        deployment: Deployment,
        body: bytes,
        timeout_s: float,
    ) -> Upstream:
        headers = CIMultiDict(
            (name, value)
            for name, value in request.headers.items()
            if name.lower() not in _DROP_FROM_REQUEST
        )
        headers["x-request-id"] = exchange.request_id
        url = URL(deployment.base_url + request.raw_path, encoded=True)
        try:
            async with self.session.request(
                request.method,
                url,
                headers=headers,
                data=body if body else None,
                timeout=aiohttp.ClientTimeout(total=max(timeout_s, 0.001)),
                allow_redirects=False,
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding", "User-Agent", "Content-Type"),
            ) as answer:
                data = await answer.read()
                return Upstream(
                    answer.status, answer.reason or "", CIMultiDict(answer.headers), data
                )
        except TimeoutError:
            raise  # aiohttp's own timeouts are TimeoutErrors too: the caller's 408 or 504
        except aiohttp.ClientError as exc:
            raise UpstreamUnavailable(
                f"Deployment {deployment.info.name} did not answer: {type(exc).__name__}."
            ) from None

    # answers --------------------------------------------------------------------------------
    def _id_headers(self, exchange: Exchange) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict()
        headers["x-request-id"] = exchange.request_id
        headers["x-ms-request-id"] = exchange.legacy_id or exchange.client_id or exchange.request_id
        if exchange.client_id:
            headers["x-ms-client-request-id"] = exchange.client_id
        if exchange.deployment is not None:
            headers[DEPLOYMENT_HEADER] = exchange.deployment
        return headers

    def _answer(
        self,
        exchange: Exchange,
        status: int,
        message: str,
        extra: dict[str, str] | None = None,
    ) -> web.Response:
        headers = self._id_headers(exchange)
        headers.update(extra or {})
        return web.Response(
            status=status,
            body=json.dumps({"message": message}).encode(),
            content_type="application/json",
            headers=headers,
        )

    def _upstream_headers(self, exchange: Exchange, upstream: Upstream) -> CIMultiDict[str]:
        headers: CIMultiDict[str] = CIMultiDict(
            (name, value)
            for name, value in upstream.headers.items()
            if name.lower() not in _DROP_FROM_RESPONSE
        )
        exchange.run_ms = upstream.headers.get("x-ms-run-fn-exec-ms", "-")
        if exchange.deployment is not None:
            headers[DEPLOYMENT_HEADER] = exchange.deployment
        return headers

    def _relay(self, exchange: Exchange, upstream: Upstream) -> web.Response:
        return web.Response(
            status=upstream.status,
            reason=upstream.reason or None,
            body=upstream.body,
            headers=self._upstream_headers(exchange, upstream),
        )

    def _model_error(self, exchange: Exchange, upstream: Upstream) -> web.Response:
        """424: the scoring function answered non-200; its status, reason and body go along."""
        headers = self._upstream_headers(exchange, upstream)
        try:
            reason = HTTPStatus(upstream.status).phrase
        except ValueError:
            reason = upstream.reason or "Unknown"
        headers[MODEL_STATUS_HEADER] = str(upstream.status)
        headers[MODEL_REASON_HEADER] = reason
        exchange.model_status = str(upstream.status)
        return web.Response(status=424, body=upstream.body, headers=headers)

    def _log(self, request: web.Request, response: web.Response, exchange: Exchange) -> None:
        if request.path == "/" and (response.status == 200 or not self.ready):
            return  # health probes (and the launcher's, while starting) would drown the requests
        headers = response.headers
        self.log.write(
            access_line(
                method=request.method,
                path=request.raw_path,
                status=str(response.status),
                elapsed_ms=(time.perf_counter() - exchange.started) * 1000,
                key=exchange.key,
                deployment=exchange.deployment or "-",
                run_ms=exchange.run_ms,
                size=str(len(response.body)) if isinstance(response.body, bytes) else "-",
                request_id=headers.get("x-request-id", exchange.request_id),
                client_request_id=exchange.client_id or "-",
                model_status=exchange.model_status or "-",
            )
        )


# the deployments' processes -----------------------------------------------------------------
def launch(plan: FrontPlan) -> dict[str, Deployment]:
    """Start every deployment's server on its pre-bound socket (before any thread exists)."""
    app_root = Path(plan.app_root)
    deployments: dict[str, Deployment] = {}
    for info, fd in zip(plan.deployments, plan.deployment_fds, strict=True):
        env = _launch.deployment_env(
            info, style=plan.style, app_root=app_root, keys_file=Path(plan.keys_file)
        )
        process = subprocess.Popen(
            _launch.deployment_command(
                fd, info.workers, info.name, preload=info.kind == "sklearn" and info.workers > 1
            ),
            env=env,
            stdin=subprocess.DEVNULL,
            pass_fds=(fd,),
            cwd=str(app_root),
            # Linux: the deployment gets SIGTERM if the front dies, even by SIGKILL.
            preexec_fn=die_with_parent if sys.platform.startswith("linux") else None,
        )
        os.close(fd)  # the deployment holds it now; the port closes when it stops
        logger.info(
            "deployment %s (%s, %d worker%s): gunicorn pid %d on 127.0.0.1:%d",
            info.name,
            info.kind,
            info.workers,
            "" if info.workers == 1 else "s",
            process.pid,
            info.port,
        )
        deployments[info.name] = Deployment(
            info=info,
            base_url=f"http://127.0.0.1:{info.port}",
            admission=Admission(info.max_concurrent_requests_per_instance, info.request_timeout_ms),
            process=process,
        )
    return deployments


def _stop_processes(deployments: dict[str, Deployment]) -> None:
    processes = [d.process for d in deployments.values() if d.process is not None]
    for process in processes:
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + _launch.GRACEFUL_TIMEOUT_S
    for process in processes:
        try:
            process.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def _exited(deployments: dict[str, Deployment]) -> tuple[str, int] | None:
    for name, deployment in deployments.items():
        if deployment.process is not None:
            code = deployment.process.poll()
            if code is not None:
                return name, code
    return None


async def _wait_ready(front: Front, timeout_s: float) -> None:
    """Until every deployment answers ``GET /`` (or one exits, or time runs out)."""
    deadline = time.monotonic() + timeout_s
    waiting = set(front.deployments)
    while waiting:
        exited = _exited(front.deployments)
        if exited is not None:
            raise RuntimeError(
                f"deployment {exited[0]} exited with code {exited[1]} while starting"
            )
        if time.monotonic() > deadline:
            raise RuntimeError(
                f"deployment(s) {', '.join(sorted(waiting))} did not answer within "
                f"{timeout_s:.0f} s"
            )
        for name in sorted(waiting):
            url = front.deployments[name].base_url + "/"
            with contextlib.suppress(aiohttp.ClientError, TimeoutError):
                async with front.session.get(url, timeout=aiohttp.ClientTimeout(total=2)) as r:
                    if r.status == 200:
                        waiting.discard(name)
                        logger.info("deployment %s is ready", name)
        await asyncio.sleep(0.2)


async def serve(plan: FrontPlan, deployments: dict[str, Deployment]) -> int:
    """Serve until SIGTERM/SIGINT (exit 0) or until a deployment stops by itself (exit 1)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)

    # Pooled upstream connections; no limit of its own: admission bounds each deployment.
    connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=30)
    session = aiohttp.ClientSession(connector=connector, auto_decompress=False)
    timeout_s = client_timeout_s()
    deadlines = HeadDeadlines(timeout_s)
    front = Front(
        plan=plan,
        deployments=deployments,
        session=session,
        client_timeout_s=timeout_s,
        deadlines=deadlines,
    )
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app.router.add_route("*", "/{tail:.*}", front.handle)
    runner = web.AppRunner(
        app,
        access_log=None,
        handle_signals=False,
        shutdown_timeout=SHUTDOWN_TIMEOUT_S,
        # The library's own limits: a kept-alive connection gets as long for its next head,
        # and the parser refuses long lines and many headers (400) before any handler runs.
        keepalive_timeout=timeout_s,
        max_line_size=MAX_LINE_BYTES,
        max_field_size=MAX_FIELD_BYTES,
        max_headers=MAX_HEADERS,
        lingering_time=min(timeout_s, 10.0),
    )
    await runner.setup()
    assert runner.server is not None
    deadlines.install(runner.server)
    listener = socket.socket(fileno=plan.listen_fd)
    code = 0
    try:
        await web.SockSite(runner, listener).start()
        logger.info(
            "front listening on http://%s:%d (request heads and bodies within %g s)",
            plan.host,
            plan.port,
            timeout_s,
        )
        ready = asyncio.ensure_future(_wait_ready(front, plan.ready_timeout_s))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait({ready, stopped}, return_when=asyncio.FIRST_COMPLETED)
        if stopped.done():
            ready.cancel()
        else:
            stopped.cancel()
            ready.result()  # raises when a deployment failed to start
            front.ready = True
            logger.info(
                "endpoint ready: %s", ", ".join(_describe(d.info) for d in deployments.values())
            )
            while not stop.is_set():
                exited = _exited(deployments)
                if exited is not None:
                    logger.error("deployment %s stopped (code %d); stopping the endpoint", *exited)
                    code = 1
                    break
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), 0.5)
    except RuntimeError as exc:
        logger.error("%s", exc)
        code = 1
    finally:
        await runner.cleanup()
        await session.close()
    return code


def _describe(info: DeploymentInfo) -> str:
    return f"{info.name} ({info.kind}, {info.traffic} %)"


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("usage: python -m aml_client.local._front PLAN.json", file=sys.stderr)
        return 2
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s | front | %(levelname)s | %(message)s",
        stream=sys.stderr,
    )
    plan = FrontPlan.from_dict(json.loads(Path(args[0]).read_text(encoding="utf-8")))
    deployments = launch(plan)
    try:
        return asyncio.run(serve(plan, deployments))
    finally:
        _stop_processes(deployments)
        logger.info("stopped")


if __name__ == "__main__":
    sys.exit(main())
