"""A pytest plugin for a model's CI: benchmark an endpoint and assert on its latency in one line.

Installed with amlc (a ``pytest11`` entry point), so any project that has amlc gets:

* ``--amlc-endpoint NAME|local`` (or ``AMLC_ENDPOINT``): the endpoint the fixtures use (a
  profile name, ``local`` for ``amlc local up``, ``env`` for ``AMLC_SCORING_URI``; default:
  as ``amlc score`` picks it);
* ``--amlc-report-dir DIR`` (or ``AMLC_REPORT_DIR``): where the reports go (default: a
  directory under pytest's temporary directory, kept as pytest keeps them);
* the fixture ``amlc_endpoint``: that endpoint, resolved (:class:`~aml_client.config.Target`);
* the fixture ``amlc_bench``: a callable that runs a bounded benchmark on it (keyword options
  of :func:`aml_client.run_bench`; 200 requests when neither ``requests`` nor ``duration``
  is given) and returns a :class:`BenchRun`, whose failures name the report::

      def test_latency(amlc_bench):
          amlc_bench(users=4, requests=500).assert_slo("p99<=200ms")

      def test_p99(amlc_bench):
          assert amlc_bench(requests=300).p99_ms < 200

Nothing is imported from the rest of amlc until a fixture is used, so the plugin costs a
test session that does not use it nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from aml_client.bench.report.summary import BenchSummary
    from aml_client.config import Target

__all__ = ["BenchRun", "amlc_bench", "amlc_endpoint"]

#: The environment variables behind the options (the first also names the endpoint of a plain
#: ``locust -f loadtests/locustfile.py`` run).
ENV_ENDPOINT = "AMLC_ENDPOINT"
ENV_REPORT_DIR = "AMLC_REPORT_DIR"
#: Requests of a benchmark bounded by nothing else: short, but enough for a p99.
DEFAULT_REQUESTS = 200


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("amlc", "amlc endpoint benchmarks")
    group.addoption(
        "--amlc-endpoint", metavar="NAME|local", default=None,
        help=f"Endpoint of the amlc fixtures: a profile name or 'local' (default: "
        f"${ENV_ENDPOINT}, else as `amlc score` picks it).",
    )
    group.addoption(
        "--amlc-report-dir", metavar="DIR", default=None,
        help=f"Where amlc_bench writes its reports (default: ${ENV_REPORT_DIR}, else under "
        "pytest's temporary directory).",
    )


@dataclass(frozen=True)
class BenchRun:
    """A finished benchmark: its summary, and assertions whose message names the report."""

    summary: BenchSummary

    @property
    def report_dir(self) -> str | None:
        return self.summary.report_dir

    def percentile_ms(self, metric: str) -> float | None:
        """``p50``, ``p99``, ``p99.9``, ``max``… of the judged latency (from each intended
        start in an open-model run), in ms."""
        return self.summary.judged.value_ms(metric)

    @property
    def p50_ms(self) -> float | None:
        return self.percentile_ms("p50")

    @property
    def p99_ms(self) -> float | None:
        return self.percentile_ms("p99")

    def assert_slo(self, *slo: str, allow_invalid: bool = False) -> None:
        """Fail the test when an objective (``"p99<=200ms"``, ``"error_rate<=0.1%"``…) is
        missed; without an ``error_rate`` objective, more than 1 % failed requests miss too.
        The message lists every miss and the report directory."""
        from aml_client.benchmark import missed_objectives

        missed = missed_objectives(self.summary, slo, allow_invalid=allow_invalid)
        __tracebackhide__ = True  # the test's line is the one to show, not this one
        if missed:
            raise AssertionError("objective missed: " + "; ".join(missed)
                                 + f" (report: {self.report_dir})")

    def assert_no_failures(self) -> None:
        """Fail the test when any request failed (by kind, with the report directory)."""
        __tracebackhide__ = True
        failures = self.summary.failures
        if failures.total:
            kinds = ", ".join(f"{kind} {count:,}" for kind, count in
                              sorted(failures.by_kind.items(), key=lambda item: -item[1]))
            raise AssertionError(f"{failures.total:,} of {self.summary.requests:,} requests "
                                 f"failed ({kinds}) (report: {self.report_dir})")

    def __repr__(self) -> str:
        # pytest shows this when a plain ``assert run.p99_ms < 200`` fails: name the report.
        p99 = self.p99_ms
        return (f"BenchRun(report={self.report_dir!r}, requests={self.summary.requests}, "
                f"failures={self.summary.failures.total}, "
                f"p99_ms={'-' if p99 is None else round(p99, 3)})")


def _endpoint_name(config: pytest.Config) -> str | None:
    value = config.getoption("amlc_endpoint") or os.environ.get(ENV_ENDPOINT)
    return str(value) if value else None


@pytest.fixture(scope="session")
def amlc_endpoint(pytestconfig: pytest.Config) -> Target:
    """The endpoint of ``--amlc-endpoint`` (or ``$AMLC_ENDPOINT``, or the configured default),
    resolved once per session; a test that needs one fails with amlc's own message when none
    is configured or the local endpoint is not running."""
    from aml_client.config import resolve_target
    from aml_client.errors import AmlcError

    try:
        return resolve_target(_endpoint_name(pytestconfig))
    except AmlcError as exc:
        pytest.fail(f"amlc_endpoint: {exc}", pytrace=False)


@pytest.fixture(scope="session")
def _amlc_report_dir(pytestconfig: pytest.Config, tmp_path_factory: pytest.TempPathFactory
                     ) -> Path:
    given = pytestconfig.getoption("amlc_report_dir") or os.environ.get(ENV_REPORT_DIR)
    return Path(given) if given else tmp_path_factory.mktemp("amlc-reports")


@pytest.fixture
def amlc_bench(amlc_endpoint: Target, _amlc_report_dir: Path) -> Callable[..., BenchRun]:
    """``amlc_bench(**options)``: a benchmark of ``amlc_endpoint`` with the keyword options of
    :func:`aml_client.run_bench` (bounded at 200 requests unless ``requests`` or ``duration``
    says otherwise), as a :class:`BenchRun`."""
    from aml_client.benchmark import run_bench

    def bench(**options: Any) -> BenchRun:
        if options.get("requests") is None and options.get("duration") is None:
            options["requests"] = DEFAULT_REQUESTS
        options.setdefault("report_dir", _amlc_report_dir)
        return BenchRun(run_bench(amlc_endpoint, **options))

    return bench
