"""What both entry scripts share: the sample rows and loading the model Azure's way."""

from __future__ import annotations

import logging
import os
from typing import Any

import joblib
import pandas as pd

from aml_client.local._model import SAMPLE_ROWS

#: Child of the server's own logger, so lines land in the server log with its format.
logger = logging.getLogger("azmlinfsrv.score")


def sample_frame() -> pd.DataFrame:
    """The sample rows typed as AutoML typed them: int64, float64 and strings."""
    frame = pd.DataFrame(SAMPLE_ROWS)
    for column in frame.columns:
        if frame[column].dtype.kind not in "if":
            frame[column] = frame[column].astype(object)
    return frame


def load_model() -> Any:
    """Load ``model.joblib`` from ``AZUREML_MODEL_DIR``, where Azure ML mounts the model."""
    path = os.path.join(os.environ["AZUREML_MODEL_DIR"], "model.joblib")
    model = joblib.load(path)
    # One prediction now, so the first request (and a benchmark's first sample) does not pay
    # for lazy initialisation inside pandas and scikit-learn.
    model.predict_proba(sample_frame())
    logger.info("loaded model %s from %s", type(model[-1]).__name__, path)
    return model
