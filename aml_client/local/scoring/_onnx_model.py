"""An onnxruntime session that scores a DataFrame like the scikit-learn pipeline it came from.

The entry scripts call ``model.predict(rows)`` and ``model.predict_proba(rows)`` on whatever
``load_model()`` returns; this adapter gives the ONNX copy the same two methods, so both
deployments run the very same ``run()`` and serve the same swagger. Each graph input is one
request column (``[N, 1]``), typed as the converter declared it; the column of each input and
the class order are stored in the file's metadata at conversion time.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime

COLUMNS_KEY = "amlc.columns"
CLASSES_KEY = "amlc.classes"

_DTYPES = {
    "tensor(string)": object,
    "tensor(int64)": np.int64,
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
}


class OnnxPipeline:
    """``predict`` / ``predict_proba`` over an ONNX classifier with one input per column."""

    def __init__(self, path: str | Path) -> None:
        options = onnxruntime.SessionOptions()
        # One thread per server worker, like the BLAS pools: several workers on few cores
        # must not each start a pool the size of the machine.
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(
            str(path), options, providers=["CPUExecutionProvider"]
        )
        metadata = self.session.get_modelmeta().custom_metadata_map
        columns: dict[str, str] = json.loads(metadata[COLUMNS_KEY])
        self.classes_ = np.array(json.loads(metadata[CLASSES_KEY]), dtype=object)
        self._inputs = [
            (node.name, columns[node.name], _DTYPES[node.type])
            for node in self.session.get_inputs()
        ]
        outputs = [node.name for node in self.session.get_outputs()]
        self._label, self._probabilities = outputs[0], outputs[1]

    def _feeds(self, rows: Any) -> dict[str, np.ndarray]:
        feeds: dict[str, np.ndarray] = {}
        for name, column, dtype in self._inputs:
            values = rows[column].to_numpy()  # KeyError names a missing column, as pandas does
            typed = values.astype(str).astype(object) if dtype is object else values.astype(dtype)
            feeds[name] = typed.reshape(-1, 1)
        return feeds

    def predict(self, rows: Any) -> np.ndarray:
        """One label per row (strings, as the scikit-learn pipeline returns)."""
        (labels,) = self.session.run([self._label], self._feeds(rows))
        return np.asarray(labels, dtype=object).ravel()

    def predict_proba(self, rows: Any) -> np.ndarray:
        """One probability per class per row, in ``classes_`` order."""
        (probabilities,) = self.session.run([self._probabilities], self._feeds(rows))
        return np.asarray(probabilities, dtype=np.float64)
