"""The load process: everything that runs inside Locust (``python -m aml_client.bench.load.runner``
or a plain ``locust -f loadtests/locustfile.py``).

* ``runner`` — the process itself: reads the configuration ``amlc bench`` sends, starts
  Locust (local, master or worker), writes JSON-lines events;
* ``engine`` — one :class:`~aml_client.bench.load.engine.Engine` per Locust environment, built
  from ``node`` (its state, stopping, results), ``hotpath`` (claim, send, record),
  ``steps`` (the capacity search's steps) and ``distribution`` (master and workers);
* ``exchange`` / ``user`` — one request on the wire, and the Locust user that sends it;
* ``hooks`` / ``webui`` / ``webguard`` — plain ``locust`` integration, the web UI's HDR tab and
  who may drive the web UI;
* ``results_hook`` — this process's results directory (or log lines).

Only this package imports Locust or gevent, and nothing outside it imports it
(``lint-imports`` checks).
"""
