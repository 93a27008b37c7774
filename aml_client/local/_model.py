"""Train, rank and cache the local endpoint's bank-marketing model.

The original project let AutoML try many models and kept the best one on held-out data; this
module does the same on a small scale: a few scikit-learn pipelines are fitted on one split,
ranked on a validation split by the chosen metric, and the winner is measured once on a test
split it has never seen, so the accuracy it reports is honest. The fitted winner is cached
(joblib) under ``paths.cache_dir()``, keyed by the data's hash, the metric and the scikit-learn
version, so only the first start pays for training.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from aml_client import paths

logger = logging.getLogger(__name__)

#: Bumped whenever the training recipe changes, so an old cached model is not reused.
RECIPE_VERSION = 2
DATA_FILE = "bankmarketing_train.csv.gz"
TARGET = "y"
POSITIVE = "yes"
SEED = 20140601  # any fixed value; the date of the dataset's paper

CATEGORICAL = [
    "job", "marital", "education", "default", "housing", "loan", "contact", "month",
    "day_of_week", "poutcome",
]  # fmt: skip
INTEGER = ["age", "duration", "campaign", "pdays", "previous"]
REAL = ["emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"]
#: Column order of a request row, as in the data file and in Azure's swagger for this model.
COLUMNS = [
    "age", "job", "marital", "education", "default", "housing", "loan", "contact", "month",
    "day_of_week", "duration", "campaign", "pdays", "previous", "poutcome", "emp.var.rate",
    "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed",
]  # fmt: skip

METRICS = ("accuracy", "auc", "f1", "balanced_accuracy")

#: The original project's two sample rows (its ``data.json``, with its ``unversity.degree``
#: typo corrected to the category the training data uses): the swagger examples.
SAMPLE_ROWS: list[dict[str, Any]] = [
    {
        "age": 17, "job": "blue-collar", "marital": "married", "education": "university.degree",
        "default": "no", "housing": "yes", "loan": "yes", "contact": "cellular", "month": "may",
        "day_of_week": "mon", "duration": 971, "campaign": 1, "pdays": 999, "previous": 1,
        "poutcome": "failure", "emp.var.rate": -1.8, "cons.price.idx": 92.893,
        "cons.conf.idx": -46.2, "euribor3m": 1.299, "nr.employed": 5099.1,
    },
    {
        "age": 87, "job": "blue-collar", "marital": "married", "education": "university.degree",
        "default": "no", "housing": "yes", "loan": "yes", "contact": "cellular", "month": "may",
        "day_of_week": "mon", "duration": 471, "campaign": 1, "pdays": 999, "previous": 1,
        "poutcome": "failure", "emp.var.rate": -1.8, "cons.price.idx": 92.893,
        "cons.conf.idx": -46.2, "euribor3m": 1.299, "nr.employed": 5099.1,
    },
]  # fmt: skip


@dataclass
class Candidate:
    """One model tried during training, with its validation scores."""

    name: str
    score: float  # validation value of the ranking metric
    accuracy: float  # validation accuracy
    fit_s: float


@dataclass
class ModelInfo:
    """What a cached model is and how well it did; stored beside it as ``model.json``."""

    name: str
    metric: str
    score: float  # test value of the ranking metric
    accuracy: float  # test accuracy
    candidates: list[Candidate] = field(default_factory=list)
    train_s: float = 0.0
    rows: dict[str, int] = field(default_factory=dict)
    data_sha256: str = ""
    sklearn_version: str = ""
    trained_at: str = ""
    directory: str = ""
    cached: bool = False

    @property
    def model_file(self) -> Path:
        return Path(self.directory) / "model.joblib"

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("directory")
        data.pop("cached")
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any], directory: Path, *, cached: bool) -> ModelInfo:
        data = dict(data)
        data["candidates"] = [Candidate(**c) for c in data.get("candidates", [])]
        return cls(**data, directory=str(directory), cached=cached)


def data_path() -> Path:
    """The packaged training data (UCI Bank Marketing, CC BY 4.0)."""
    return Path(str(resources.files("aml_client.local").joinpath("data", DATA_FILE)))


def data_sha256(path: Path | None = None) -> str:
    return hashlib.sha256((path or data_path()).read_bytes()).hexdigest()


#: Laid out as Azure ML mounts a registered model: ``.../<model name>/<version>/model.joblib``,
#: so the server's own model-id detection (``AZUREML_MODEL_DIR``) reads ``bankmarketing:1``.
MODEL_NAME = "bankmarketing"
MODEL_VERSION = "1"


def _sklearn_version() -> str:
    """The installed scikit-learn's version (PackageNotFoundError, an ImportError, without it)."""
    from importlib.metadata import version

    return version("scikit-learn")


def model_dir(metric: str, *, data_hash: str | None = None) -> Path:
    """Cache directory of the model for this data and metric (need not exist yet).

    scikit-learn's version is read from its installed metadata: importing it costs more than a
    second of CPU, which every ``amlc local up`` would pay only to name a directory.
    """
    data_hash = data_hash or data_sha256()
    key = f"{data_hash[:16]}-{metric}-sklearn{_sklearn_version()}-r{RECIPE_VERSION}"
    return paths.cache_dir() / "local-model" / key / MODEL_NAME / MODEL_VERSION


def load_cached(metric: str) -> ModelInfo | None:
    """The cached model's description, or None when it has to be trained."""
    directory = model_dir(metric)
    meta = directory / "model.json"
    if not (meta.is_file() and (directory / "model.joblib").is_file()):
        return None
    try:
        return ModelInfo.from_dict(json.loads(meta.read_text()), directory, cached=True)
    except (ValueError, TypeError) as exc:
        logger.warning("ignoring unreadable cached model %s: %s", meta, exc)
        return None


def ensure_model(
    metric: str = "accuracy",
    *,
    retrain: bool = False,
    report: Callable[[str], None] | None = None,
) -> ModelInfo:
    """Return the cached model for ``metric``, training (and caching) it first if needed."""
    if metric not in METRICS:
        from aml_client.errors import ConfigError

        raise ConfigError(f"unknown metric {metric!r}; choose one of {', '.join(METRICS)}")
    if not retrain:
        cached = load_cached(metric)
        if cached is not None:
            return cached
    return train(metric, report=report)


def _candidates() -> dict[str, Any]:
    """The pipelines to try: a linear model and two tree ensembles, each with its own encoding.

    Every candidate must convert to ONNX (skl2onnx) with the same predictions, since the ONNX
    deployment serves whichever one wins. That rules out HistGradientBoosting: skl2onnx ignores
    its native categorical splits, so the classic GradientBoosting stands in for it.
    """
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

    numeric = INTEGER + REAL

    def one_hot() -> Any:
        return ColumnTransformer(
            [
                ("categories", OneHotEncoder(handle_unknown="ignore"), CATEGORICAL),
                ("numbers", StandardScaler(), numeric),
            ]
        )

    # Trees take categories as small integers; an unseen category becomes -1, below every
    # known one, so it follows the "smallest category" branch of each split.
    def ordinal() -> Any:
        return ColumnTransformer(
            [
                (
                    "categories",
                    OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1),
                    CATEGORICAL,
                ),
                ("numbers", "passthrough", numeric),
            ]
        )

    return {
        "LogisticRegression": Pipeline(
            [("prepare", one_hot()), ("model", LogisticRegression(max_iter=2000, C=1.0))]
        ),
        "GradientBoosting": Pipeline(
            [
                ("prepare", ordinal()),
                (
                    "model",
                    GradientBoostingClassifier(
                        n_estimators=300,
                        max_depth=4,
                        learning_rate=0.08,
                        subsample=0.8,
                        n_iter_no_change=10,
                        validation_fraction=0.1,
                        random_state=SEED,
                    ),
                ),
            ]
        ),
        "RandomForest": Pipeline(
            [
                ("prepare", ordinal()),
                (
                    "model",
                    RandomForestClassifier(
                        n_estimators=150,
                        min_samples_leaf=2,
                        n_jobs=min(2, os.cpu_count() or 1),
                        random_state=SEED,
                    ),
                ),
            ]
        ),
    }


def _score(model: Any, metric: str, x: Any, y: Any) -> tuple[float, float]:
    """(value of ``metric``, accuracy) of a fitted model on one split."""
    from sklearn.metrics import accuracy_score, balanced_accuracy_score, f1_score, roc_auc_score

    predicted = model.predict(x)
    accuracy = float(accuracy_score(y, predicted))
    if metric == "accuracy":
        value = accuracy
    elif metric == "auc":
        positive = list(model.classes_).index(POSITIVE)
        value = float(roc_auc_score(y == POSITIVE, model.predict_proba(x)[:, positive]))
    elif metric == "f1":
        value = float(f1_score(y, predicted, pos_label=POSITIVE))
    else:
        value = float(balanced_accuracy_score(y, predicted))
    return value, accuracy


def load_data() -> Any:
    """The packaged CSV as a DataFrame, columns typed as a request row is."""
    import pandas as pd

    with gzip.open(data_path(), "rt", encoding="utf-8") as handle:
        frame = pd.read_csv(handle)
    missing = [c for c in [*COLUMNS, TARGET] if c not in frame.columns]
    if missing:
        raise ValueError(f"training data lacks columns {missing}")
    return frame


def splits() -> tuple[tuple[Any, Any], tuple[Any, Any], tuple[Any, Any]]:
    """(fit, validation, test) pairs of (rows, labels): always the same rows for the same data.

    70 % to fit, 15 % to choose the model, 15 % to report on: the reported accuracy comes from
    rows that took no part in fitting or choosing (and so does the ONNX agreement).
    """
    from sklearn.model_selection import train_test_split

    frame = load_data()
    x, y = frame[COLUMNS], frame[TARGET].astype(str).to_numpy()
    x_fit, x_rest, y_fit, y_rest = train_test_split(
        x, y, test_size=0.30, stratify=y, random_state=SEED
    )
    x_val, x_test, y_val, y_test = train_test_split(
        x_rest, y_rest, test_size=0.50, stratify=y_rest, random_state=SEED
    )
    return (x_fit, y_fit), (x_val, y_val), (x_test, y_test)


def train(metric: str = "accuracy", *, report: Callable[[str], None] | None = None) -> ModelInfo:
    """Fit every candidate, keep the best on validation data, measure it on test data, cache it."""
    import sklearn

    say = report or (lambda message: logger.info("%s", message))
    started = time.perf_counter()
    (x_fit, y_fit), (x_val, y_val), (x_test, y_test) = splits()
    say(
        f"training on {len(x_fit)} rows, choosing by {metric} on {len(x_val)}, "
        f"testing on {len(x_test)}"
    )

    tried: list[Candidate] = []
    fitted: dict[str, Any] = {}
    for name, pipeline in _candidates().items():
        t0 = time.perf_counter()
        pipeline.fit(x_fit, y_fit)
        fit_s = time.perf_counter() - t0
        value, accuracy = _score(pipeline, metric, x_val, y_val)
        tried.append(Candidate(name, round(value, 5), round(accuracy, 5), round(fit_s, 2)))
        fitted[name] = pipeline
        say(
            f"  {name:<22} validation {metric} {value:.4f}  accuracy {accuracy:.4f}"
            f"  ({fit_s:.1f} s)"
        )

    best = max(tried, key=lambda c: (c.score, c.accuracy))
    model = fitted[best.name]
    test_value, test_accuracy = _score(model, metric, x_test, y_test)
    train_s = time.perf_counter() - started
    also = "" if metric == "accuracy" else f"{metric} {test_value:.4f}, "
    say(
        f"winner: {best.name} — held-out test {also}accuracy {test_accuracy:.4f} "
        f"(trained in {train_s:.1f} s)"
    )

    digest = data_sha256()
    directory = model_dir(metric, data_hash=digest)
    info = ModelInfo(
        name=best.name,
        metric=metric,
        score=round(test_value, 5),
        accuracy=round(test_accuracy, 5),
        candidates=tried,
        train_s=round(train_s, 2),
        rows={"fit": len(x_fit), "validation": len(x_val), "test": len(x_test)},
        data_sha256=digest,
        sklearn_version=sklearn.__version__,
        trained_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        directory=str(directory),
        cached=False,
    )
    _save(model, info, directory)
    return info


def _save(model: Any, info: ModelInfo, directory: Path) -> None:
    """Write model and description atomically, so a concurrent start never loads half a file."""
    import joblib

    directory.mkdir(parents=True, exist_ok=True)
    tmp_model = directory / f".model.joblib.{os.getpid()}.tmp"
    joblib.dump(model, tmp_model, compress=3)
    os.replace(tmp_model, directory / "model.joblib")
    tmp_meta = directory / f".model.json.{os.getpid()}.tmp"
    tmp_meta.write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_meta, directory / "model.json")
