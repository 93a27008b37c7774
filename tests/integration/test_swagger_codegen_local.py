"""A generated client, written by ``amlc swagger codegen``, scores the real local endpoints."""

from __future__ import annotations

import asyncio
import importlib.util
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

#: The tests of ``local_endpoint_v1`` share one pytest-xdist worker, so it starts once per run.
ON_THE_V1_WORKER = pytest.mark.xdist_group("local-v1")


def _generate(handle: Any, folder: Path, name: str) -> ModuleType:
    """Run the real CLI against the endpoint, then import the module from ``folder``."""
    target = folder / f"{name}.py"
    result = handle.amlc("swagger", "codegen", "--endpoint", "local", "-o", str(target))
    assert result.returncode == 0, result.stderr
    assert f"wrote {target}" in result.stdout
    spec = importlib.util.spec_from_file_location(name, target)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def inputs_client(local_endpoint: Any, tmp_path: Path) -> Iterator[ModuleType]:
    try:
        yield _generate(local_endpoint, tmp_path, "endpoint_client")
    finally:
        sys.modules.pop("endpoint_client", None)


def test_generated_client_scores_the_local_endpoint(
    inputs_client: ModuleType, local_endpoint: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = inputs_client
    assert client.CONVENTION == "inputs"
    local_endpoint.activate(monkeypatch)  # "local" and the default now find this endpoint
    rows = client.example_rows() * 3
    older = rows[0].model_copy(update={"age": 70, "emp_var_rate": -3.4})
    predictions = client.score([*rows, older], endpoint="local")
    assert len(predictions) == 4 and set(predictions) <= {"yes", "no"}
    assert client.score(rows) == predictions[:3]  # the default endpoint is the same one

    probabilities = client.predict_proba(rows)
    assert len(probabilities) == 3
    assert all(len(p) == 2 and abs(sum(p) - 1) < 1e-6 for p in probabilities)

    from aml_client import KeyCredential
    from aml_client.client import AsyncEndpoint, Endpoint

    key = KeyCredential(local_endpoint.primary_key)
    with Endpoint(local_endpoint.scoring_uri, key) as endpoint:
        assert client.score(rows[:1], endpoint=endpoint) == predictions[:1]

    async def score_async() -> list[Any]:
        async with AsyncEndpoint(local_endpoint.scoring_uri, key) as endpoint:
            return list(await client.score_async(rows, endpoint=endpoint))

    assert asyncio.run(score_async()) == predictions[:3]


@ON_THE_V1_WORKER
def test_generated_client_for_the_v1_contract(
    local_endpoint_v1: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``{"data": rows}`` in, a JSON string holding ``{"result": [...]}`` out."""
    try:
        client = _generate(local_endpoint_v1, tmp_path, "v1_client")
        assert client.CONVENTION == "data"
        assert set(client.build_request(client.example_rows())) <= {"data", "method"}
        local_endpoint_v1.activate(monkeypatch)
        predictions = client.score(client.example_rows() * 2, endpoint="local")
        assert len(predictions) == 2
        assert all(isinstance(p, str | int | float) for p in predictions)
    finally:
        sys.modules.pop("v1_client", None)
