"""The ONNX copy of the local model: converted once, cached beside it, answering like it."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import joblib
import numpy as np
import pytest
from support.local import start_local_endpoint, stop_local_endpoint

from aml_client.local import SAMPLE_ROWS, ensure_model
from aml_client.local._model import splits
from aml_client.local._onnx import ensure_onnx_model, load_cached
from aml_client.local.scoring._onnx_model import OnnxPipeline


@pytest.fixture
def model_home(tmp_path: Path, local_model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "home"
    home.mkdir()
    (home / "cache").symlink_to(local_model_cache, target_is_directory=True)
    monkeypatch.setenv("AMLC_HOME", str(home))
    return home


def test_the_onnx_copy_agrees_with_scikit_learn_on_held_out_rows(model_home: Path) -> None:
    model = ensure_model("accuracy")
    info = ensure_onnx_model(model)
    assert Path(info.directory) == Path(model.directory)  # cached beside the model
    assert info.onnx_file.is_file()
    described = json.loads((Path(model.directory) / "onnx.json").read_text())
    assert described["agreement"] == info.agreement

    # Measured again here, not taken from the stored figures.
    _, _, (x_test, y_test) = splits()
    pipeline = joblib.load(model.model_file)
    served = OnnxPipeline(info.onnx_file)
    onnx_labels, sklearn_labels = served.predict(x_test), pipeline.predict(x_test)
    agreement = float(np.mean(onnx_labels == sklearn_labels))
    onnx_accuracy = float(np.mean(onnx_labels == y_test))
    sklearn_accuracy = float(np.mean(sklearn_labels == y_test))
    assert len(y_test) > 4000
    assert agreement >= 0.999
    assert abs(onnx_accuracy - sklearn_accuracy) <= 0.001  # 0.1 percentage point
    assert sklearn_accuracy == pytest.approx(model.accuracy, abs=1e-5)
    assert (info.agreement, info.accuracy, info.sklearn_accuracy, info.rows) == (
        pytest.approx(agreement, abs=1e-6),
        pytest.approx(onnx_accuracy, abs=1e-5),
        pytest.approx(sklearn_accuracy, abs=1e-5),
        len(y_test),
    )
    probabilities = served.predict_proba(x_test)
    assert np.abs(probabilities - pipeline.predict_proba(x_test)).max() < 1e-4
    assert list(served.classes_) == list(pipeline.classes_)


def test_unseen_categories_and_missing_columns_behave_as_in_scikit_learn(
    model_home: Path,
) -> None:
    import pandas as pd

    model = ensure_model("accuracy")
    served = OnnxPipeline(ensure_onnx_model(model).onnx_file)
    pipeline = joblib.load(model.model_file)
    rows = pd.DataFrame([dict(SAMPLE_ROWS[0], job="astronaut"), dict(SAMPLE_ROWS[1], month="xyz")])
    for column in rows.columns:
        if rows[column].dtype.kind not in "if":
            rows[column] = rows[column].astype(object)
    assert list(served.predict(rows)) == list(pipeline.predict(rows))
    with pytest.raises(KeyError, match="age"):
        served.predict(rows.drop(columns=["age"]))


def test_the_conversion_is_cached_and_redone_when_the_model_changes(
    model_home: Path, tmp_path: Path, local_model_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = ensure_model("accuracy")
    first = ensure_onnx_model(model)
    again = ensure_onnx_model(model)
    assert again.cached and again.converted_at == first.converted_at
    # A copy of the cache whose model file differs: the old conversion no longer counts.
    import shutil

    copy = tmp_path / "copy"
    shutil.copytree(local_model_cache, copy / "cache")
    monkeypatch.setenv("AMLC_HOME", str(copy))
    changed = ensure_model("accuracy")
    assert load_cached(changed) is not None
    pipeline = joblib.load(changed.model_file)
    joblib.dump(pipeline, changed.model_file, compress=1)  # same model, other bytes
    assert load_cached(changed) is None
    redone = ensure_onnx_model(changed)
    assert not redone.cached and redone.agreement >= 0.999


def test_the_v1_contract_is_served_by_an_onnx_deployment_too(
    tmp_path_factory: pytest.TempPathFactory, local_model_cache: Path
) -> None:
    handle = start_local_endpoint(
        tmp_path_factory, local_model_cache, style="v1", deployments=["green:onnx", "blue"]
    )
    try:
        answers = {}
        for name in ("green", "blue"):
            response = httpx.post(
                handle.scoring_uri,
                json={"data": SAMPLE_ROWS},
                headers=handle.headers(deployment=name),
            )
            assert response.status_code == 200
            assert response.headers["azureml-model-deployment"] == name
            answers[name] = json.loads(response.json())
        assert answers["green"] == answers["blue"]
        assert set(answers["green"]["result"]) <= {"yes", "no"}
        # The 2020 script's model error inside a 200 comes from the ONNX copy too.
        row = {("agee" if k == "age" else k): v for k, v in SAMPLE_ROWS[0].items()}
        error = httpx.post(handle.scoring_uri, json={"data": [row]}, headers=handle.headers())
        assert error.status_code == 200
        assert error.headers["azureml-model-deployment"] == "green"  # the first one: 100 %
        assert "age" in json.loads(error.json())["error"]
    finally:
        stop_local_endpoint(handle)
