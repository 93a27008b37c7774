"""The WSGI application gunicorn serves: Microsoft's inference server behind the key check.

gunicorn imports ``aml_client.local._wsgi:app`` in each worker. The launcher has already set
the server's environment (``AZUREML_ENTRY_SCRIPT``, ``AZUREML_MODEL_DIR``, ``AML_APP_ROOT``,
…) because the server reads it at import time; importing it also replaces ``builtins.print``
in this process, which is why this module is only ever imported inside the server.
"""

from __future__ import annotations

import os
from pathlib import Path

from azureml_inference_server_http.server.create_app import create

from aml_client.local._auth import KeyAuthMiddleware

#: The server's own Flask app (routes /, /score, /swagger.json); Flask's documented way to add
#: middleware is to wrap ``app.wsgi_app``, which keeps ``app`` a Flask app (test_client works).
app = create()
_access_log = os.environ.get("AMLC_LOCAL_ACCESS_LOG")
app.wsgi_app = KeyAuthMiddleware(
    app.wsgi_app,
    keys_path=Path(os.environ["AMLC_LOCAL_KEYS_FILE"]),
    access_log=Path(_access_log) if _access_log else None,
)
