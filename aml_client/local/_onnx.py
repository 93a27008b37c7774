"""Convert the local endpoint's scikit-learn pipeline to ONNX and prove the copy agrees with it.

The ONNX deployment must answer like the scikit-learn one, so the conversion is only kept when it
is measured on the held-out test rows (those that took no part in fitting or choosing the model):
the share of rows where both predict the same label, and both accuracies. ``model.onnx`` and its
description ``onnx.json`` are cached beside ``model.joblib`` and rebuilt when the model, the
converter or onnxruntime changes. skl2onnx, onnx and onnxruntime are imported only here and in
the ONNX scoring adapter, never by the rest of the package.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aml_client.errors import ConfigError
from aml_client.local import _model

logger = logging.getLogger(__name__)

#: Bumped whenever the conversion changes, so an old cached ONNX file is not reused.
CONVERSION_VERSION = 1
ONNX_FILE = "model.onnx"
ONNX_META = "onnx.json"
#: The documented bar: the ONNX copy answers like the scikit-learn pipeline on held-out rows.
MIN_AGREEMENT = 0.999
MAX_ACCURACY_GAP = 0.001  # 0.1 percentage point


@dataclass
class OnnxInfo:
    """How well the ONNX copy matches its scikit-learn source; stored as ``onnx.json``."""

    agreement: float  # share of held-out rows with the same predicted label
    accuracy: float  # held-out accuracy of the ONNX model
    sklearn_accuracy: float  # held-out accuracy of the scikit-learn model, same rows
    rows: int  # held-out rows compared
    max_probability_gap: float  # largest |p_onnx - p_sklearn| over those rows
    source_sha256: str  # of model.joblib
    skl2onnx_version: str
    onnxruntime_version: str
    convert_s: float
    converted_at: str
    recipe: int = CONVERSION_VERSION
    directory: str = ""
    cached: bool = False

    @property
    def onnx_file(self) -> Path:
        return Path(self.directory) / ONNX_FILE

    @property
    def accuracy_gap(self) -> float:
        return abs(self.accuracy - self.sklearn_accuracy)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data.pop("directory")
        data.pop("cached")
        return data


def input_name(column: str) -> str:
    """The ONNX graph input for a request column (ONNX names are identifiers)."""
    return re.sub(r"[^0-9A-Za-z_]", "_", column)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _versions() -> tuple[str, str]:
    import onnxruntime
    import skl2onnx

    return str(skl2onnx.__version__), str(onnxruntime.__version__)


def load_cached(model: _model.ModelInfo) -> OnnxInfo | None:
    """The cached conversion of ``model``, or None when it is missing or stale."""
    directory = Path(model.directory)
    meta, onnx_file = directory / ONNX_META, directory / ONNX_FILE
    if not (meta.is_file() and onnx_file.is_file()):
        return None
    try:
        data = json.loads(meta.read_text(encoding="utf-8"))
        info = OnnxInfo(**data, directory=str(directory), cached=True)
    except (OSError, ValueError, TypeError) as exc:
        logger.warning("ignoring unreadable ONNX description %s: %s", meta, exc)
        return None
    if info.recipe != CONVERSION_VERSION or info.source_sha256 != _sha256(model.model_file):
        return None
    if (info.skl2onnx_version, info.onnxruntime_version) != _versions():
        return None
    return info


def ensure_onnx_model(
    model: _model.ModelInfo, *, report: Callable[[str], None] | None = None
) -> OnnxInfo:
    """The ONNX copy of ``model`` (converted and checked on first use, then cached beside it).

    Raises ConfigError when the converter is missing or the copy does not agree well enough
    (which would make the ONNX deployment a different model, not a faster one).
    """
    import importlib.util

    missing = [n for n in ("skl2onnx", "onnxruntime") if importlib.util.find_spec(n) is None]
    if missing:
        raise ConfigError(
            f"the ONNX deployment needs {', '.join(missing)}: pip install 'amlc[local]'"
        )
    cached = load_cached(model)
    if cached is None:
        cached = convert(model, report=report)
    if cached.agreement < MIN_AGREEMENT or cached.accuracy_gap > MAX_ACCURACY_GAP:
        raise ConfigError(
            f"the ONNX copy of {model.name} agrees on only {cached.agreement:.2%} of held-out "
            f"rows (accuracy {cached.accuracy:.4f} vs {cached.sklearn_accuracy:.4f}); "
            "it cannot stand in for the scikit-learn model"
        )
    return cached


def _initial_types() -> list[tuple[str, Any]]:
    from skl2onnx.common.data_types import FloatTensorType, Int64TensorType, StringTensorType

    types: list[tuple[str, Any]] = []
    for column in _model.COLUMNS:
        if column in _model.CATEGORICAL:
            types.append((column, StringTensorType([None, 1])))
        elif column in _model.INTEGER:
            types.append((column, Int64TensorType([None, 1])))
        else:
            types.append((column, FloatTensorType([None, 1])))
    return types


def convert(model: _model.ModelInfo, *, report: Callable[[str], None] | None = None) -> OnnxInfo:
    """Convert ``model`` with skl2onnx, compare both on the held-out rows, cache the result."""
    import joblib
    import numpy as np
    from skl2onnx import convert_sklearn

    # The adapter the scoring script uses: the file is measured as it will be served.
    from aml_client.local.scoring._onnx_model import CLASSES_KEY, COLUMNS_KEY, OnnxPipeline

    say = report or (lambda message: logger.info("%s", message))
    started = time.perf_counter()
    pipeline = joblib.load(model.model_file)
    # Labels and one probability per class, as plain tensors (no ZipMap dictionaries).
    onnx_model = convert_sklearn(
        pipeline,
        name=f"bankmarketing-{model.name}",
        initial_types=_initial_types(),
        options={id(pipeline): {"zipmap": False}},
    )
    graph_inputs = [node.name for node in onnx_model.graph.input]
    expected = [input_name(column) for column in _model.COLUMNS]
    if graph_inputs != expected:  # pragma: no cover - a converter that names inputs otherwise
        raise ConfigError(f"unexpected ONNX inputs {graph_inputs}; expected {expected}")
    for key, value in (
        (COLUMNS_KEY, json.dumps(dict(zip(graph_inputs, _model.COLUMNS, strict=True)))),
        (CLASSES_KEY, json.dumps([str(c) for c in pipeline.classes_])),
    ):
        entry = onnx_model.metadata_props.add()
        entry.key, entry.value = key, value
    convert_s = time.perf_counter() - started

    directory = Path(model.directory)
    tmp = directory / f".{ONNX_FILE}.{os.getpid()}.tmp"
    tmp.write_bytes(onnx_model.SerializeToString())

    _, _, (x_test, y_test) = _model.splits()
    served = OnnxPipeline(tmp)
    onnx_labels = served.predict(x_test)
    sklearn_labels = pipeline.predict(x_test)
    gap = float(np.max(np.abs(served.predict_proba(x_test) - pipeline.predict_proba(x_test))))
    os.replace(tmp, directory / ONNX_FILE)

    skl2onnx_version, onnxruntime_version = _versions()
    info = OnnxInfo(
        agreement=round(float(np.mean(onnx_labels == sklearn_labels)), 6),
        accuracy=round(float(np.mean(onnx_labels == y_test)), 5),
        sklearn_accuracy=round(float(np.mean(sklearn_labels == y_test)), 5),
        rows=len(y_test),
        max_probability_gap=float(f"{gap:.3g}"),
        source_sha256=_sha256(model.model_file),
        skl2onnx_version=skl2onnx_version,
        onnxruntime_version=onnxruntime_version,
        convert_s=round(convert_s, 2),
        converted_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        directory=str(directory),
    )
    tmp_meta = directory / f".{ONNX_META}.{os.getpid()}.tmp"
    tmp_meta.write_text(json.dumps(info.to_dict(), indent=2) + "\n", encoding="utf-8")
    os.replace(tmp_meta, directory / ONNX_META)
    say(
        f"ONNX copy of {model.name}: same label on {info.agreement:.2%} of {info.rows} held-out "
        f"rows, accuracy {info.accuracy:.4f} (scikit-learn {info.sklearn_accuracy:.4f})"
    )
    return info
