"""The 2020-era AutoML contract: ``{"data": [rows]}`` in, a JSON *string* out.

Reproduces the scoring script AutoML generated in 2020 (``scoring_file_v_1_0_0.py``): ``run()``
returns ``json.dumps({"result": [...]})``, which the server serialises once more, so the body
is ``"{\\"result\\": [\\"no\\", \\"no\\"]}"``; a model error comes back as ``{"error": "..."}``
inside a 200. The declared output schema is an int64 array, as it was then, although labels
come back: clients must not trust it.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.schema_decorators import input_schema, output_schema

from aml_client.local.scoring._common import (
    DEPLOYMENT,
    load_model,
    logger,
    misbehaviour,
    sample_frame,
)

input_sample = sample_frame()
output_sample = np.array([0])

model: Any = None


def init() -> None:
    global model
    model = load_model()


@input_schema("data", PandasParameterType(input_sample))
@output_schema(NumpyParameterType(output_sample))
def run(data: Any) -> str:
    # Outside the try: an injected failure is a failing scoring function (500), not a model
    # error reported inside a 200.
    misbehaviour.before_run()
    try:
        result = model.predict(data)
        logger.info("scored %d rows (deployment=%s)", len(data), DEPLOYMENT)
        return json.dumps({"result": result.tolist()})
    except Exception as e:
        result = str(e)
        logger.info("model error: %s", result)
        return json.dumps({"error": result})
