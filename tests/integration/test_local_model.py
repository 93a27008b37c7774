"""The local endpoint's model: candidates ranked on held-out data, cached, imported lazily."""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from aml_client.errors import ConfigError
from aml_client.local import ensure_model

REPO = Path(__file__).resolve().parents[2]


def _model_json(cache: Path) -> dict:
    found = list(cache.glob("local-model/*-accuracy-*/bankmarketing/1/model.json"))
    assert len(found) == 1, found
    return json.loads(found[0].read_text())


def test_candidates_are_ranked_and_the_winner_is_accurate(local_model_cache: Path) -> None:
    meta = _model_json(local_model_cache)
    candidates = meta["candidates"]
    assert len(candidates) >= 2
    assert {c["name"] for c in candidates} == {
        "LogisticRegression",
        "GradientBoosting",
        "RandomForest",
    }
    best = max(candidates, key=lambda c: (c["score"], c["accuracy"]))
    assert meta["name"] == best["name"]
    assert meta["metric"] == "accuracy"
    assert meta["accuracy"] >= 0.90  # measured on test rows used neither to fit nor to choose
    assert meta["rows"]["test"] > 4000
    assert meta["train_s"] > 0  # recorded; how long it takes depends on the machine's load


def test_a_cached_model_is_reused(
    local_model_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").symlink_to(local_model_cache, target_is_directory=True)
    monkeypatch.setenv("AMLC_HOME", str(home))
    before = _model_json(local_model_cache)["trained_at"]
    info = ensure_model("accuracy")
    assert info.cached is True
    assert info.model_file.is_file()
    assert _model_json(local_model_cache)["trained_at"] == before


def test_finding_the_cached_model_imports_no_scikit_learn(
    local_model_cache: Path, tmp_path: Path
) -> None:
    """What ``amlc local up`` does before it starts the server: importing scikit-learn would
    cost it more than a second of CPU only to name the cache directory."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").symlink_to(local_model_cache, target_is_directory=True)
    code = (
        "import sys\n"
        "from aml_client.local import ensure_model\n"
        "info = ensure_model('accuracy')\n"
        "print(info.cached, sorted(m for m in ('sklearn', 'pandas', 'numpy') if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "AMLC_HOME": str(home)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.stdout.split() == ["True", "[]"], result.stderr


def test_an_unknown_metric_is_refused() -> None:
    with pytest.raises(ConfigError, match="unknown metric"):
        ensure_model("r2")


def test_importing_the_local_package_stays_light() -> None:
    code = (
        "import sys, aml_client.local, aml_client.cli.local\n"
        "heavy = {'pandas', 'sklearn', 'numpy', 'azureml_inference_server_http', 'gunicorn',"
        " 'flask', 'rich', 'httpx', 'aiohttp', 'onnxruntime', 'skl2onnx', 'onnx'}\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True
    )
    # typer pulls in rich for its help; the library itself pulls in nothing heavy.
    loaded = set(json.loads(result.stdout.replace("'", '"')))
    assert loaded <= {"rich"}, loaded


def test_public_api_is_pinned() -> None:
    import aml_client.local as local

    assert sorted(local.__all__) == [
        "Candidate", "DEFAULT_PORT", "DeploymentInfo", "DeploymentSpec", "LocalEndpointInfo",
        "METRICS", "ModelInfo", "SAMPLE_ROWS", "STYLES", "default_workers", "differences",
        "ensure_model",
        "follow", "keys_file", "local_keys", "log_file", "parse_deployment", "parse_traffic",
        "recorded_endpoint", "regenerate_keys", "running_endpoint", "start", "status", "stop",
        "tail",
    ]  # fmt: skip
    for name in local.__all__:
        assert getattr(local, name) is not None
    fields = [f.name for f in dataclasses.fields(local.LocalEndpointInfo)]
    # The fields other code relies on, in their documented order.
    assert fields[:13] == [
        "pid", "host", "port", "scoring_uri", "swagger_uri", "style", "model", "metric", "score",
        "accuracy", "workers", "log_file", "started_at",
    ]  # fmt: skip
