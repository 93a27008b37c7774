"""Load-test a scoring endpoint with plain Locust: ``locust -f loadtests/locustfile.py``.

Same settings as ``amlc``: ``AMLC_SCORING_URI`` + ``AMLC_KEY`` (or ``AMLC_ENDPOINT=<profile>``,
else the running local endpoint), ``AMLC_PAYLOAD=rows.csv`` for the request rows (default: the
swagger's example). Every request's latency goes into an HdrHistogram; the web UI gets an
"HDR latency" tab and ``/hdr``; when a test stops, the report files are written under
``AMLC_REPORT_DIR`` (default ``reports``). ``amlc bench`` runs the same user and hooks.

The web UI answers only requests addressed to this machine and sent by its own pages (Host,
Origin and Sec-Fetch-Site checks); add other names it should answer to
``AMLC_WEB_ALLOWED_HOSTS``. Anything more (``--web-login``, ``--tls-cert``) is Locust's.
"""

from locust import events

from aml_client.bench.load.hooks import on_init
from aml_client.bench.load.user import ScoringUser

__all__ = ["ScoringUser"]

events.init.add_listener(on_init)
