"""What both entry scripts share: the sample rows and loading the model Azure's way."""

from __future__ import annotations

import logging
import os
from typing import Any

import joblib
import pandas as pd

#: Child of the server's own logger, so lines land in the server log with its format.
logger = logging.getLogger("azmlinfsrv.score")

# The original project's two sample rows (its data.json): they become the swagger's examples.
SAMPLE_ROWS: list[dict[str, Any]] = [
    {
        "age": 17, "job": "blue-collar", "marital": "married", "education": "unversity.degree",
        "default": "no", "housing": "yes", "loan": "yes", "contact": "cellular", "month": "may",
        "day_of_week": "mon", "duration": 971, "campaign": 1, "pdays": 999, "previous": 1,
        "poutcome": "failure", "emp.var.rate": -1.8, "cons.price.idx": 92.893,
        "cons.conf.idx": -46.2, "euribor3m": 1.299, "nr.employed": 5099.1,
    },
    {
        "age": 87, "job": "blue-collar", "marital": "married", "education": "unversity.degree",
        "default": "no", "housing": "yes", "loan": "yes", "contact": "cellular", "month": "may",
        "day_of_week": "mon", "duration": 471, "campaign": 1, "pdays": 999, "previous": 1,
        "poutcome": "failure", "emp.var.rate": -1.8, "cons.price.idx": 92.893,
        "cons.conf.idx": -46.2, "euribor3m": 1.299, "nr.employed": 5099.1,
    },
]  # fmt: skip


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
