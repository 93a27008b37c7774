"""What both entry scripts share: the sample rows, loading the model Azure's way, test knobs."""

from __future__ import annotations

import logging
import os
import threading
import time
from typing import Any

import joblib
import pandas as pd

from aml_client.local._model import SAMPLE_ROWS

#: Child of the server's own logger, so lines land in the server log with its format.
logger = logging.getLogger("azmlinfsrv.score")

#: Which deployment this server is, and which copy of the model it serves ("sklearn" | "onnx").
DEPLOYMENT = os.environ.get("AMLC_LOCAL_DEPLOYMENT", "default")
MODEL_KIND = os.environ.get("AMLC_LOCAL_MODEL_KIND", "sklearn")


def sample_frame() -> pd.DataFrame:
    """The sample rows typed as AutoML typed them: int64, float64 and strings."""
    frame = pd.DataFrame(SAMPLE_ROWS)
    for column in frame.columns:
        if frame[column].dtype.kind not in "if":
            frame[column] = frame[column].astype(object)
    return frame


def load_model() -> Any:
    """Load the model from ``AZUREML_MODEL_DIR``, where Azure ML mounts it.

    ``model.joblib`` is the scikit-learn pipeline; ``model.onnx`` its ONNX copy, served with
    onnxruntime behind the same ``predict`` / ``predict_proba`` methods.
    """
    directory = os.environ["AZUREML_MODEL_DIR"]
    if MODEL_KIND == "onnx":
        from aml_client.local.scoring._onnx_model import OnnxPipeline

        path = os.path.join(directory, "model.onnx")
        model: Any = OnnxPipeline(path)
        described = "ONNX (onnxruntime)"
    else:
        path = os.path.join(directory, "model.joblib")
        model = joblib.load(path)
        described = type(model[-1]).__name__
    # One prediction now, so the first request (and a benchmark's first sample) does not pay
    # for lazy initialisation inside pandas, scikit-learn or onnxruntime.
    model.predict_proba(sample_frame())
    logger.info("deployment %s loaded model %s from %s", DEPLOYMENT, described, path)
    return model


class Misbehaviour:
    """Deployment options that make ``run()`` slow or failing on purpose, so the endpoint's
    408 (``delay_ms``), 429 and 424 (``fail_rate``) answers can be driven by real requests.

    Failures are spread evenly, not drawn at random: with ``fail_rate=0.25`` every fourth call
    of a worker fails, so tests know exactly what to expect.
    """

    def __init__(self, delay_ms: float, fail_rate: float) -> None:
        self.delay_s = max(0.0, delay_ms) / 1000
        self.fail_rate = min(1.0, max(0.0, fail_rate))
        self._owed = 0.0
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> Misbehaviour:
        return cls(
            float(os.environ.get("AMLC_LOCAL_DELAY_MS", "0") or 0),
            float(os.environ.get("AMLC_LOCAL_FAIL_RATE", "0") or 0),
        )

    def before_run(self) -> None:
        if self.delay_s:
            time.sleep(self.delay_s)
        if not self.fail_rate:
            return
        with self._lock:
            self._owed += self.fail_rate
            fail = self._owed >= 1.0 - 1e-9
            if fail:
                self._owed -= 1.0
        if fail:
            raise RuntimeError(
                f"deployment {DEPLOYMENT} failed on purpose (fail_rate={self.fail_rate:g})"
            )


misbehaviour = Misbehaviour.from_environment()
