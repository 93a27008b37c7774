"""The local endpoint over plain HTTP: both contracts, key auth, health, swagger, request log."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest

from aml_client.local import SAMPLE_ROWS

REPO = Path(__file__).resolve().parents[2]
LABELS = {"yes", "no"}

#: The tests of ``local_endpoint_v1`` share one pytest-xdist worker, so it starts once per run.
ON_THE_V1_WORKER = pytest.mark.xdist_group("local-v1")


def inputs_body(method: str | None = "predict", rows: list | None = None) -> dict:
    body: dict = {"Inputs": {"data": rows if rows is not None else SAMPLE_ROWS}}
    if method is not None:
        body["GlobalParameters"] = {"method": method}
    return body


def test_sample_rows_are_the_original_projects() -> None:
    original = json.loads((REPO / "examples" / "data.json").read_text())
    assert original == {"data": SAMPLE_ROWS}
    assert [row["age"] for row in SAMPLE_ROWS] == [17, 87]


def test_inputs_contract_scores_the_two_sample_rows(local_endpoint) -> None:
    response = httpx.post(
        local_endpoint.scoring_uri, json=inputs_body(), headers=local_endpoint.headers()
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert list(body) == ["Results"]
    assert len(body["Results"]) == 2
    assert set(body["Results"]) <= LABELS
    # The server itself (not a look-alike) answered: its headers are there.
    assert response.headers["x-ms-run-function-failed"] == "False"
    assert float(response.headers["x-ms-run-fn-exec-ms"]) > 0
    assert response.headers["x-ms-server-version"].startswith("azmlinfsrv/")
    assert response.headers["x-ms-request-id"]


def test_global_parameters_are_optional(local_endpoint) -> None:
    response = httpx.post(
        local_endpoint.scoring_uri, json=inputs_body(method=None), headers=local_endpoint.headers()
    )
    assert response.status_code == 200, response.text
    assert len(response.json()["Results"]) == 2


def test_predict_proba_gives_one_probability_pair_per_row(local_endpoint) -> None:
    response = httpx.post(
        local_endpoint.scoring_uri,
        json=inputs_body("predict_proba"),
        headers=local_endpoint.headers(),
    )
    assert response.status_code == 200, response.text
    results = response.json()["Results"]
    assert len(results) == 2
    for pair in results:
        assert len(pair) == 2
        assert sum(pair) == pytest.approx(1.0)


def test_unknown_method_fails_the_scoring_function_a_424_as_on_azure(local_endpoint) -> None:
    # The container answers 500 (AutoML's script raises); the endpoint turns any non-200 from
    # the container into 424 and says what the container answered.
    response = httpx.post(
        local_endpoint.scoring_uri, json=inputs_body("explain"), headers=local_endpoint.headers()
    )
    assert response.status_code == 424
    assert response.headers["ms-azureml-model-error-statuscode"] == "500"
    assert response.headers["ms-azureml-model-error-reason"] == "Internal Server Error"
    assert response.headers["x-ms-run-function-failed"] == "True"
    assert response.headers["azureml-model-deployment"] == "blue"
    assert "message" in response.json()


@ON_THE_V1_WORKER
def test_v1_contract_answers_a_json_string_holding_result(
    local_endpoint_v1, local_endpoint
) -> None:
    response = httpx.post(
        local_endpoint_v1.scoring_uri,
        json={"data": SAMPLE_ROWS},
        headers=local_endpoint_v1.headers(),
    )
    assert response.status_code == 200, response.text
    # The body is a JSON string, whose content is JSON again (the 2020 AutoML script's
    # json.dumps, serialised once more by the server).
    assert response.content.startswith(b'"{\\"result\\": [')
    outer = response.json()
    assert isinstance(outer, str)
    inner = json.loads(outer)
    assert list(inner) == ["result"]
    assert len(inner["result"]) == 2
    assert set(inner["result"]) <= LABELS
    # Same model behind both contracts: same predictions.
    modern = httpx.post(
        local_endpoint.scoring_uri, json=inputs_body(), headers=local_endpoint.headers()
    )
    assert modern.json()["Results"] == inner["result"]


@ON_THE_V1_WORKER
def test_v1_model_error_comes_back_inside_a_200(local_endpoint_v1) -> None:
    # Same column count, so the schema layer lets it through; the model then misses "age".
    row = {("agee" if name == "age" else name): value for name, value in SAMPLE_ROWS[0].items()}
    response = httpx.post(
        local_endpoint_v1.scoring_uri, json={"data": [row]}, headers=local_endpoint_v1.headers()
    )
    assert response.status_code == 200
    inner = json.loads(response.json())
    assert list(inner) == ["error"]
    assert "age" in inner["error"]


@ON_THE_V1_WORKER
def test_v1_rejects_a_value_of_the_wrong_type_with_424(local_endpoint_v1) -> None:
    row = dict(SAMPLE_ROWS[0], age="abc")
    response = httpx.post(
        local_endpoint_v1.scoring_uri, json={"data": [row]}, headers=local_endpoint_v1.headers()
    )
    assert response.status_code == 424
    assert response.headers["ms-azureml-model-error-statuscode"] == "500"
    assert response.headers["x-ms-run-function-failed"] == "True"


def _scored_count(handle) -> int:
    return handle.server_log_text().count("azmlinfsrv.score - scored ")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({}, "missing"),
        ({"Authorization": "Bearer not-the-key"}, "Invalid key"),
        ({"Authorization": "Bearer"}, "Bearer <key>"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "Bearer <key>"),
    ],
    ids=["missing", "wrong-key", "empty-key", "basic-scheme"],
)
def test_without_a_valid_key_score_is_401_and_the_model_never_runs(
    local_endpoint, headers: dict, reason: str
) -> None:
    before = _scored_count(local_endpoint)
    request_id = uuid.uuid4().hex
    response = httpx.post(
        local_endpoint.scoring_uri,
        json=inputs_body(),
        headers={**headers, "x-ms-client-request-id": request_id},
    )
    assert response.status_code == 401
    assert reason in response.json()["message"]
    assert response.headers["x-ms-client-request-id"] == request_id
    assert response.headers["www-authenticate"].startswith("Bearer")
    assert "x-ms-run-fn-exec-ms" not in response.headers
    # A valid request afterwards proves the log is flushed: exactly one new model run.
    ok = httpx.post(
        local_endpoint.scoring_uri, json=inputs_body(), headers=local_endpoint.headers()
    )
    assert ok.status_code == 200
    assert _scored_count(local_endpoint) == before + 1
    refused = local_endpoint.wait_for_log(f"client_rid={request_id}")
    assert len(refused) == 1
    assert " POST /score 401 " in refused[0]
    assert "key=refused" in refused[0]
    assert "run_ms=-" in refused[0]


def test_the_secondary_key_works_too(local_endpoint) -> None:
    request_id = uuid.uuid4().hex
    response = httpx.post(
        local_endpoint.scoring_uri,
        json=inputs_body(),
        headers={
            "Authorization": f"bearer {local_endpoint.secondary_key}",
            "x-ms-client-request-id": request_id,
        },
    )
    assert response.status_code == 200
    [line] = local_endpoint.wait_for_log(f"client_rid={request_id}")
    assert "key=secondary" in line


def test_the_platform_sets_x_request_id_and_echoes_the_clients_id(local_endpoint) -> None:
    # On Azure the platform replaces x-request-id with its own; x-ms-client-request-id is
    # the client's id for correlation, passed through to the container and echoed.
    mine = f"mine-{uuid.uuid4().hex[:8]}"
    response = httpx.post(
        local_endpoint.scoring_uri,
        json=inputs_body(),
        headers={
            **local_endpoint.headers(),
            "x-request-id": "chosen-by-the-client",
            "x-ms-client-request-id": mine,
        },
    )
    assert response.status_code == 200
    assigned = response.headers["x-request-id"]
    assert assigned != "chosen-by-the-client"
    assert str(uuid.UUID(assigned)) == assigned
    assert response.headers["x-ms-client-request-id"] == mine
    assert response.headers["x-ms-request-id"] == mine  # the inference server's own rule
    [line] = local_endpoint.wait_for_log(f"client_rid={mine}")
    assert f"rid={assigned}" in line


def test_an_over_long_client_request_id_is_refused_with_431(local_endpoint) -> None:
    response = httpx.post(
        local_endpoint.scoring_uri,
        json=inputs_body(),
        headers={**local_endpoint.headers(), "x-ms-client-request-id": "x" * 101},
    )
    assert response.status_code == 431
    assert "must not exceed 100" in response.json()["message"]


def test_other_paths_need_the_key_too(local_endpoint) -> None:
    assert httpx.get(f"{local_endpoint.base_uri}/nowhere").status_code == 401
    found = httpx.get(f"{local_endpoint.base_uri}/nowhere", headers=local_endpoint.headers())
    assert found.status_code == 404


@ON_THE_V1_WORKER
def test_health_route_is_open(local_endpoint, local_endpoint_v1) -> None:
    for handle in (local_endpoint, local_endpoint_v1):
        response = httpx.get(f"{handle.base_uri}/")
        assert response.status_code == 200
        assert response.text == "Healthy"


@ON_THE_V1_WORKER
@pytest.mark.parametrize("version", ["2", "3"])
def test_swagger_is_served_open_and_matches_the_reference(
    local_endpoint, local_endpoint_v1, version: str
) -> None:
    for handle in (local_endpoint, local_endpoint_v1):
        response = httpx.get(handle.swagger_uri, params={"version": version})
        assert response.status_code == 200, response.text
        document = response.json()
        if version == "2":
            assert document["swagger"] == "2.0"
            service_input = document["definitions"]["ServiceInput"]
        else:
            assert document["openapi"].startswith("3.0")
            service_input = document["components"]["schemas"]["ServiceInput"]
        example = service_input["example"]
        rows = example["Inputs"]["data"] if handle.style == "inputs" else example["data"]
        assert rows == SAMPLE_ROWS
        reference = REPO / "swagger" / f"local-{handle.style}.swagger{version}.json"
        assert json.loads(reference.read_text()) == document, f"{reference} is out of date"


def test_unknown_swagger_version_is_404(local_endpoint) -> None:
    response = httpx.get(local_endpoint.swagger_uri, params={"version": "9"})
    assert response.status_code == 404
    assert "message" in response.json()


def test_request_log_has_status_latency_and_ids_but_never_a_key(local_endpoint) -> None:
    client_id = uuid.uuid4().hex
    response = httpx.post(
        local_endpoint.scoring_uri,
        json=inputs_body(),
        headers={**local_endpoint.headers(), "x-ms-client-request-id": client_id},
    )
    assert response.status_code == 200
    lines = local_endpoint.wait_for_log(client_id)
    assert len(lines) == 1
    fields = lines[0].split()
    assert fields[1:4] == ["POST", "/score", "200"]
    assert fields[4].endswith("ms") and float(fields[4][:-2]) > 0
    assert f"rid={response.headers['x-request-id']}" in lines[0]
    assert "key=primary" in lines[0]
    assert "deployment=blue" in lines[0]
    assert "run_ms=" in lines[0] and "run_ms=-" not in lines[0]
    everything = "\n".join(local_endpoint.access_log_lines()) + local_endpoint.server_log_text()
    assert local_endpoint.primary_key not in everything
    assert local_endpoint.secondary_key not in everything


def test_several_workers_share_one_loaded_model(local_endpoint) -> None:
    """The scikit-learn deployment loads the server and model once, in gunicorn's master, and
    forks its two workers from it: the model's init runs once, in no worker's pid."""
    log = local_endpoint.server_log_text()
    inits = re.findall(r"\[(\d+)\] azmlinfsrv\.user_script - Invoking user's init", log)
    booted = re.findall(r"Booting worker with pid: (\d+)", log)
    assert len(booted) == 2, log
    assert len(inits) == 1 and inits[0] not in booted, log
