"""Today's AutoML contract: ``{"Inputs": {"data": [rows]}, "GlobalParameters": {"method": ...}}``.

Shaped after the scoring script AutoML generates now: ``method`` picks ``predict`` (labels) or
``predict_proba`` (one ``[p_no, p_yes]`` pair per row); any other method raises, which the
server turns into a 500, as on Azure. The answer is ``{"Results": [...]}``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from inference_schema.parameter_types.numpy_parameter_type import NumpyParameterType
from inference_schema.parameter_types.pandas_parameter_type import PandasParameterType
from inference_schema.parameter_types.standard_py_parameter_type import (
    StandardPythonParameterType,
)
from inference_schema.schema_decorators import input_schema, output_schema

from aml_client.local.scoring._common import (
    DEPLOYMENT,
    load_model,
    logger,
    misbehaviour,
    sample_frame,
)

input_sample = PandasParameterType(sample_frame())
method_sample = StandardPythonParameterType("predict")
sample_global_parameters = StandardPythonParameterType({"method": method_sample})
result_sample = NumpyParameterType(np.array(["yes", "no"]))
output_sample = StandardPythonParameterType({"Results": result_sample})

model: Any = None


def init() -> None:
    global model
    model = load_model()


@input_schema("Inputs", StandardPythonParameterType({"data": input_sample}))
@input_schema("GlobalParameters", sample_global_parameters, convert_to_provided_type=False)
@output_schema(output_sample)
def run(Inputs: dict[str, Any], GlobalParameters: Any = None) -> dict[str, Any]:
    misbehaviour.before_run()
    data = Inputs["data"]
    method = "predict"
    if isinstance(GlobalParameters, dict) and "method" in GlobalParameters:
        method = GlobalParameters["method"]
    if method == "predict_proba":
        result = model.predict_proba(data)
    elif method == "predict":
        result = model.predict(data)
    else:
        raise ValueError(f"Invalid predict method argument received ({method})")
    logger.info("scored %d rows (method=%s, deployment=%s)", len(data), method, DEPLOYMENT)
    return {"Results": result.tolist()}
