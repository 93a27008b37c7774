"""A local endpoint with several deployments, as a managed online endpoint: real requests.

``blue_green_endpoint`` is ``amlc local up --deployment blue --deployment green:onnx --traffic
blue=50,green=50``; ``misbehaving`` has deployments made slow, narrow or failing on purpose and
no traffic at all, so only pinned requests are answered.

Each endpoint's tests run on one pytest-xdist worker (``xdist_group``), so it starts once per
run rather than once per worker that happens to take one of its tests.
"""

from __future__ import annotations

import http.client
import json
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import pytest
from support.local import (
    LocalEndpointHandle,
    start_local_endpoint,
    stop_local_endpoint,
)

from aml_client.local import SAMPLE_ROWS

BODY = {"Inputs": {"data": SAMPLE_ROWS}, "GlobalParameters": {"method": "predict"}}
NO_DEPLOYMENT = "No valid deployments to route to"
DEPLOYMENT = "azureml-model-deployment"

#: The tests of ``blue_green_endpoint`` (here and in test_bench_bluegreen_cli.py) share a worker.
ON_THE_BLUE_GREEN_WORKER = pytest.mark.xdist_group("blue-green")
#: And so do those of ``misbehaving`` (four deployments to start).
ON_THE_MISBEHAVING_WORKER = pytest.mark.xdist_group("local-misbehaving")


def _post(client: httpx.Client, handle: LocalEndpointHandle, deployment: str | None = None,
          body: dict | None = None) -> httpx.Response:  # fmt: skip
    return client.post(
        handle.scoring_uri, json=body or BODY, headers=handle.headers(deployment=deployment)
    )


# --------------------------------------------------------------------------- blue and green


@ON_THE_BLUE_GREEN_WORKER
def test_status_shows_both_deployments_their_traffic_and_accuracy(blue_green_endpoint) -> None:
    result = blue_green_endpoint.amlc("local", "status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    deployments = {d["name"]: d for d in data["deployments"]}
    assert list(deployments) == ["blue", "green"]
    blue, green = deployments["blue"], deployments["green"]
    assert (blue["kind"], blue["traffic"], green["kind"], green["traffic"]) == (
        "sklearn", 50, "onnx", 50,
    )  # fmt: skip
    assert blue["model"] == green["model"] == data["model"]
    assert green["agreement"] >= 0.999
    assert abs(green["accuracy"] - blue["accuracy"]) <= 0.001
    assert blue["accuracy"] >= 0.90 and blue["agreement"] is None
    assert blue["request_timeout_ms"] == green["request_timeout_ms"] == 5000

    table = blue_green_endpoint.amlc("local", "status")
    assert table.returncode == 0
    for needle in ("deployments", "blue", "green", "onnx", "50 %", f"{green['agreement']:.2%}"):
        assert needle in table.stdout


@ON_THE_BLUE_GREEN_WORKER
def test_pinned_requests_are_all_answered_by_the_named_deployment(blue_green_endpoint) -> None:
    # A pinned request bypasses the split: it is answered by the deployment it names, and it
    # takes no turn from the unpinned requests around it, which go on alternating blue, green.
    # An odd number of pinned requests between two unpinned ones: had they taken turns, the
    # second unpinned request would go where the first went.
    pinned = 21
    with httpx.Client() as client:

        def unpinned() -> str:
            response = _post(client, blue_green_endpoint)
            assert response.status_code == 200, response.text
            return response.headers[DEPLOYMENT]

        def answered(name: str) -> Counter[tuple[int, str]]:
            responses = [_post(client, blue_green_endpoint, name) for _ in range(pinned)]
            return Counter((r.status_code, r.headers[DEPLOYMENT]) for r in responses)

        first = unpinned()
        green = answered("green")
        second = unpinned()
        blue = answered("blue")
        third = unpinned()
    assert green == {(200, "green"): pinned}
    assert blue == {(200, "blue"): pinned}
    assert {first, second} == {"blue", "green"} and third == first, (first, second, third)


@ON_THE_BLUE_GREEN_WORKER
def test_unpinned_requests_split_by_weight(blue_green_endpoint) -> None:
    # blue=50,green=50 under smooth weighted round-robin (aml_client/local/_routing.py) is
    # blue, green, blue, green …: any 200 unpinned requests in a row are split exactly 100/100,
    # whatever went before them. Two clients at once: the front draws each request in turn,
    # whichever client sent it (and two pending requests are within any deployment's limit).
    responses: list[httpx.Response] = []

    def send(count: int) -> None:
        with httpx.Client(timeout=60) as client:
            mine = [_post(client, blue_green_endpoint) for _ in range(count)]
        responses.extend(mine)

    threads = [threading.Thread(target=send, args=(100,)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert len(responses) == 200
    assert Counter(r.status_code for r in responses) == {200: 200}
    answered = Counter(r.headers[DEPLOYMENT] for r in responses)
    assert answered == {"blue": 100, "green": 100}, answered
    for response in responses[:50]:
        assert len(response.json()["Results"]) == 2


@ON_THE_BLUE_GREEN_WORKER
def test_an_unknown_deployment_is_404_and_reaches_no_model(blue_green_endpoint) -> None:
    before = blue_green_endpoint.server_log_text().count("azmlinfsrv.score - scored ")
    response = httpx.post(
        blue_green_endpoint.scoring_uri,
        json=BODY,
        headers=blue_green_endpoint.headers(deployment="purple"),
    )
    assert response.status_code == 404
    assert response.json()["message"].startswith(NO_DEPLOYMENT)
    assert "azureml-model-deployment" not in response.headers
    ok = httpx.post(
        blue_green_endpoint.scoring_uri, json=BODY, headers=blue_green_endpoint.headers()
    )
    assert ok.status_code == 200
    assert blue_green_endpoint.server_log_text().count("azmlinfsrv.score - scored ") == before + 1


@ON_THE_BLUE_GREEN_WORKER
def test_onnx_and_scikit_learn_answer_alike_over_http(blue_green_endpoint) -> None:
    from aml_client.local._model import splits

    _, _, (x_test, _) = splits()
    rows = json.loads(x_test.to_json(orient="records"))
    labels: dict[str, list[str]] = {"blue": [], "green": []}
    probabilities: dict[str, list[list[float]]] = {"blue": [], "green": []}
    with httpx.Client(timeout=60) as client:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            for name in labels:
                for method, into in (("predict", labels), ("predict_proba", probabilities)):
                    body = {"Inputs": {"data": chunk}, "GlobalParameters": {"method": method}}
                    response = _post(client, blue_green_endpoint, name, body)
                    assert response.status_code == 200, response.text
                    into[name].extend(response.json()["Results"])
    assert len(labels["green"]) == len(rows) > 4000
    same = sum(b == g for b, g in zip(labels["blue"], labels["green"], strict=True))
    assert same / len(rows) >= 0.999
    gap = max(
        abs(b - g)
        for pb, pg in zip(probabilities["blue"], probabilities["green"], strict=True)
        for b, g in zip(pb, pg, strict=True)
    )
    assert gap < 1e-4


@ON_THE_BLUE_GREEN_WORKER
def test_both_deployments_serve_the_same_swagger(blue_green_endpoint) -> None:
    documents = {}
    for name in (None, "blue", "green"):
        response = httpx.get(
            blue_green_endpoint.swagger_uri,
            params={"version": "3"},
            headers={"azureml-model-deployment": name} if name else {},
        )
        assert response.status_code == 200
        assert response.headers["azureml-model-deployment"] == (name or "blue")
        documents[name] = response.json()
    assert documents[None] == documents["blue"] == documents["green"]
    reference = Path(__file__).resolve().parents[2] / "swagger" / "local-inputs.swagger3.json"
    assert json.loads(reference.read_text()) == documents["green"]


@ON_THE_BLUE_GREEN_WORKER
def test_client_connections_are_kept_alive(blue_green_endpoint) -> None:
    connection = http.client.HTTPConnection(
        blue_green_endpoint.info.host, blue_green_endpoint.info.port, timeout=30
    )
    try:
        body = json.dumps(BODY)
        headers = {**blue_green_endpoint.headers(), "Content-Type": "application/json"}
        sockets = []
        answered = []
        for _ in range(6):
            connection.request("POST", "/score", body=body, headers=headers)
            response = connection.getresponse()
            response.read()
            assert response.status == 200
            assert (response.getheader("Connection") or "").lower() != "close"
            sockets.append(connection.sock)
            answered.append(response.getheader("azureml-model-deployment"))
        assert sockets[0] is not None
        assert all(sock is sockets[0] for sock in sockets)  # one TCP connection for all six
        assert set(answered) == {"blue", "green"}
    finally:
        connection.close()


@ON_THE_BLUE_GREEN_WORKER
def test_a_deployments_own_port_still_needs_the_key(blue_green_endpoint) -> None:
    for name in ("blue", "green"):
        uri = blue_green_endpoint.deployment_uri(name)
        assert uri.startswith("http://127.0.0.1:")
        assert httpx.post(uri, json=BODY).status_code == 401
        direct = httpx.post(uri, json=BODY, headers=blue_green_endpoint.headers())
        assert direct.status_code == 200


@ON_THE_BLUE_GREEN_WORKER
def test_the_request_log_names_the_deployment(blue_green_endpoint) -> None:
    for name in ("blue", "green"):
        client_id = f"log-{name}-{threading.get_ident()}"
        response = httpx.post(
            blue_green_endpoint.scoring_uri,
            json=BODY,
            headers={
                **blue_green_endpoint.headers(deployment=name),
                "x-ms-client-request-id": client_id,
            },
        )
        assert response.status_code == 200
        [line] = blue_green_endpoint.wait_for_log(f"client_rid={client_id}")
        assert f" deployment={name} " in line and " POST /score 200 " in line
        assert "run_ms=-" not in line


# --------------------------------------------------------------------- Azure's error semantics


@pytest.fixture(scope="module")
def misbehaving(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> Iterator[LocalEndpointHandle]:
    handle = start_local_endpoint(
        tmp_path_factory,
        local_model_cache,
        deployments=[
            "blue",
            "slow,delay_ms=1500,request_timeout_ms=300",
            "narrow,max_concurrent=1,delay_ms=2500,request_timeout_ms=60000",
            "broken,fail_rate=1",
        ],
        traffic="blue=0",  # no traffic anywhere: only pinned requests are answered
    )
    try:
        yield handle
    finally:
        stop_local_endpoint(handle)


@ON_THE_MISBEHAVING_WORKER
def test_without_traffic_only_pinned_requests_are_answered(misbehaving) -> None:
    unpinned = httpx.post(misbehaving.scoring_uri, json=BODY, headers=misbehaving.headers())
    assert unpinned.status_code == 404
    assert unpinned.json()["message"].startswith(NO_DEPLOYMENT)
    pinned = httpx.post(
        misbehaving.scoring_uri, json=BODY, headers=misbehaving.headers(deployment="blue")
    )
    assert pinned.status_code == 200
    assert pinned.headers["azureml-model-deployment"] == "blue"


@ON_THE_MISBEHAVING_WORKER
def test_over_request_timeout_ms_is_408(misbehaving) -> None:
    response = httpx.post(
        misbehaving.scoring_uri,
        json=BODY,
        headers=misbehaving.headers(deployment="slow"),
        timeout=30,
    )
    assert response.status_code == 408
    assert response.headers["azureml-model-deployment"] == "slow"
    assert "request_timeout_ms" in response.json()["message"]
    assert response.headers["x-request-id"]


@ON_THE_MISBEHAVING_WORKER
def test_a_failing_scoring_function_is_424_with_the_model_status(misbehaving) -> None:
    response = httpx.post(
        misbehaving.scoring_uri, json=BODY, headers=misbehaving.headers(deployment="broken")
    )
    assert response.status_code == 424
    assert response.headers["ms-azureml-model-error-statuscode"] == "500"
    assert response.headers["ms-azureml-model-error-reason"] == "Internal Server Error"
    assert response.headers["azureml-model-deployment"] == "broken"
    assert "message" in response.json()  # the container's own body comes along
    [line] = misbehaving.wait_for_log(f"rid={response.headers['x-request-id']}")
    assert " 424 " in line and "model_status=500" in line and "deployment=broken" in line


@ON_THE_MISBEHAVING_WORKER
def test_more_than_twice_max_concurrent_pending_is_429(misbehaving) -> None:
    # narrow: one request at a time in the container, each taking 2.5 s, so of six sent at
    # once, two are admitted (one inside, one waiting) and four are refused at once.
    statuses: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(6)

    def send() -> None:
        with httpx.Client(timeout=60) as client:
            barrier.wait()
            response = _post(client, misbehaving, "narrow")
        with lock:
            statuses.append(response.status_code)
            if response.status_code == 429:
                assert response.headers["azureml-model-deployment"] == "narrow"
                assert "Too many pending requests" in response.json()["message"]

    threads = [threading.Thread(target=send) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert Counter(statuses) == {200: 2, 429: 4}


def test_a_deployment_that_dies_takes_the_endpoint_down(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> None:
    import re
    import signal
    import time

    handle = start_local_endpoint(
        tmp_path_factory, local_model_cache, deployments=["blue", "green:onnx"]
    )
    try:
        found = re.search(r"deployment green \(onnx, 1 worker\): gunicorn pid (\d+)",
                          handle.server_log_text())  # fmt: skip
        assert found, handle.server_log_text()
        master = psutil.Process(int(found.group(1)))
        workers = master.children()
        assert workers
        master.send_signal(signal.SIGKILL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and handle.amlc("local", "status").returncode == 0:
            time.sleep(0.5)
        assert handle.amlc("local", "status").returncode == 4
        assert "deployment green stopped" in handle.server_log_text()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"{handle.base_uri}/", timeout=2)
        # Its workers go with it (without the parent-death signal, a sync worker noticed only
        # when its wait for a connection timed out, 150 s later, serving until then).
        _, alive = psutil.wait_procs(workers, timeout=60)
        assert not alive, alive
    finally:
        stop_local_endpoint(handle)


# ------------------------------------------------- amlc score and amlc bench say Azure's reason

SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"


@pytest.fixture
def narrow_kept_full(misbehaving: LocalEndpointHandle) -> Iterator[None]:
    """Keeps ``narrow`` (one request at a time, 2.5 s each) at its 2 pending requests: three
    clients resend as soon as they are answered, so a fourth request finds it full."""
    import time

    stop = threading.Event()

    def keep_busy() -> None:
        with httpx.Client(timeout=60) as client:
            while not stop.is_set():
                if _post(client, misbehaving, "narrow").status_code == 429:
                    time.sleep(0.02)

    threads = [threading.Thread(target=keep_busy) for _ in range(3)]
    for thread in threads:
        thread.start()
    time.sleep(0.5)  # both slots taken
    try:
        yield
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=30)


def _score(handle: LocalEndpointHandle, deployment: str) -> str:
    """``amlc score`` pinned to ``deployment``, without retries: its one error line."""
    done = handle.amlc("score", str(SAMPLES / "data_inputs.json"), "--endpoint", "local",
                       "--deployment", deployment, "--retries", "0")
    assert done.returncode == 4, (done.stdout, done.stderr)
    assert "Traceback" not in done.stderr and done.stdout == ""
    [line] = [line for line in done.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ")
    return line


@ON_THE_MISBEHAVING_WORKER
def test_amlc_score_reports_424_and_408_with_azures_reason(misbehaving) -> None:
    line = _score(misbehaving, "broken")
    assert "HTTP 424" in line and "model container answered 500 Internal Server Error" in line
    line = _score(misbehaving, "slow")
    assert "HTTP 408" in line and "request_timeout_ms of deployment slow" in line


@ON_THE_MISBEHAVING_WORKER
def test_amlc_score_reports_429_with_its_cause(misbehaving, narrow_kept_full) -> None:
    line = _score(misbehaving, "narrow")
    assert "HTTP 429" in line and "Too many pending requests for deployment narrow" in line
    assert "too many requests pending for the deployment's max_concurrent_requests_per_instance" \
        in line


@ON_THE_MISBEHAVING_WORKER
@pytest.mark.parametrize(
    ("deployment", "options", "kind", "reason"),
    [
        ("broken", ["-n", "6", "-u", "2"], "http_424",
         "model answered 500 Internal Server Error"),
        ("slow", ["-n", "4", "-u", "2"], "http_408",
         "Request timed out after 300 ms (request_timeout_ms of deployment slow)"),
        ("narrow", ["-n", "12", "-u", "6"], "http_429",
         "too many pending requests (max_concurrent_requests_per_instance)"),
    ],
)
def test_amlc_bench_counts_each_with_azures_reason(
    misbehaving, tmp_path: Path, deployment: str, options: list[str], kind: str, reason: str
) -> None:
    done = misbehaving.amlc(
        "bench", "--endpoint", "local", "--deployment", deployment, *options, "--workers", "1",
        "--allow-failures", "--json", "--report-dir", str(tmp_path / "reports"),
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    failures = summary["failures"]
    assert failures["by_kind"][kind] >= 1 and set(failures["by_kind"]) == {kind}, failures
    assert failures["reasons"] == {kind: {reason: failures["by_kind"][kind]}}
    shown = misbehaving.amlc("report", "show", str(next((tmp_path / "reports").iterdir())))
    assert f"{kind} {failures['by_kind'][kind]} [{reason}: " in shown.stdout, shown.stdout
