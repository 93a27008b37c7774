"""Test servers and helpers shared by the tests (``tests/`` and ``tests/integration/``) and by
``benchmarks/``; nothing here is collected as a test.

pytest puts ``tests/`` on ``sys.path`` (``pythonpath`` in pyproject.toml), so a test imports
``from support.faults import FaultServer``; a benchmark adds ``tests/`` to its path itself. Every
server listens on 127.0.0.1 only, on a free port, and stops with its ``with`` block or fixture.

Servers, in the test process:

- :mod:`support.faults`: ``FaultServer``, an HTTP(S) scoring endpoint that answers with scripted
  replies (``Reply``: status, body, headers, delay, a trickled body) and records every request
  with its arrival time; ``refused_port()``, ``self_signed_cert()``. For what the client and the
  HTTP layer do with each answer: retries, redirects, deadlines, tokens, Azure's error headers.
- :mod:`support.batch_servers`: ``ScoringServer``, a fast deterministic bank-marketing endpoint
  (prediction ``id<duration>``) that can be slow, saturated, shed load, refuse rows or sizes,
  and logs every row it scores; ``ServerProcess``, the same in its own process;
  ``make_row()`` / ``write_csv()``. For batch scoring, input files and benchmarks, where which
  rows were scored (and how often) matters.
- :mod:`support.arm_replay`: ``ArmReplay``, a fake Azure Resource Manager over HTTPS (trustme
  CA) replaying Microsoft's published examples from ``tests/fixtures/arm``; records mismatches.
  For ``aml_client.azure`` and ``amlc endpoint import`` / ``amlc logs``.
- :mod:`support.web`: ``recording_upstream()`` and ``page_elsewhere()`` (a page from another
  127.0.0.1 origin), and the headless Chromium settings. For the Swagger UI and Locust's web UI.

Servers in their own process, and commands:

- :mod:`support.calibrated`: a scoring endpoint with a known service time (slots, stalls, faults,
  pinned blue/green deployments), run as a script. For what ``amlc bench`` measures.
- :mod:`support.slots_server`: an endpoint of exactly K slots x S ms (K / S req/s), on the
  monotonic clock in one asyncio loop (a busy machine never lowers its capacity), optionally
  answering 429 past N pending requests. For ``--find-capacity``.
- :mod:`support.bench`: ``start_server()`` for the calibrated endpoint, ``start_slots_server()``,
  ``bench_env()``, ``run_bench()`` (a real ``amlc bench``), ``files_under()``. For the bench
  integration tests.
- :mod:`support.local`: ``start_local_endpoint()`` / ``stop_local_endpoint()`` (the real local
  endpoint with Microsoft's inference server), ``amlc_env()``, ``run_amlc_in()``,
  ``free_port()``. Used by the fixtures of ``tests/integration/conftest.py``; call it directly
  only for an endpoint of a test's own.
- :mod:`support.azure_cli`: ``AzureCliDouble``, an ``az`` that prints a token, so a real
  ``amlc`` process signs in through azure-identity without a network.

Data built in code:

- :mod:`support.swaggers`: ``wide_swagger(columns)`` (scale tests, validation benchmark) and
  ``minimal_swagger(request, response)`` with ``ROWS_OF_AGE`` / ``RESULTS`` (lint and reader
  tests that break one thing at a time). Real swaggers are files in ``tests/fixtures/corpus/``.
- :mod:`support.bench_results`: ``synthetic_result()``, a benchmark result with known latencies
  and a ``SECRET`` in every credential-like field. For the report and ``amlc report`` tests.

Running the suite:

- :mod:`support.busy`: ``python tests/support/busy.py [pytest args]`` runs pytest beside two
  CPU-bound processes, as CI does, to catch tests that pass only on an idle machine.
"""
