"""Exporters of the live metrics (:mod:`aml_client.bench.metrics`): Prometheus and OTLP.

Both read the same :class:`~aml_client.bench.metrics.LiveMetrics` in ``amlc bench``'s own
process (never in the load process, whose standard library gevent has patched):

* :class:`PrometheusServer` serves the text format at ``/metrics`` with ``prometheus_client``;
* :class:`OtlpPusher` pushes through the OpenTelemetry SDK's periodic reader and its OTLP/HTTP
  exporter (the ``otlp`` extra), observable instruments reading the same samples. The standard
  ``OTEL_EXPORTER_OTLP_HEADERS`` / ``OTEL_EXPORTER_OTLP_METRICS_HEADERS`` carry credentials (never
  the command line); ``OTEL_METRIC_EXPORT_INTERVAL`` sets the period (default here 5 s).

When the run ends, :meth:`Exporters.close` keeps the final values available until a scrape has
read them (Prometheus) and pushes them once more (OTLP), waiting at most ``linger_s``.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator
from typing import Any
from urllib.parse import urlsplit

from aml_client.bench.metrics import METRICS, LiveMetrics, MetricSample
from aml_client.errors import ConfigError

__all__ = ["Exporters", "OtlpPusher", "PrometheusServer", "otlp_metrics_url"]

#: Push period when ``OTEL_METRIC_EXPORT_INTERVAL`` is not set (the SDK's own default is 60 s).
DEFAULT_PUSH_INTERVAL_MS = 5000


class _Collector:
    """A ``prometheus_client`` collector over the live samples."""

    def __init__(self, state: LiveMetrics) -> None:
        self.state = state

    def describe(self) -> list[Any]:  # nothing to check at registration
        return []

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

        finished = self.state.finished.is_set()
        by_name: dict[str, list[MetricSample]] = {}
        for sample in self.state.samples():
            by_name.setdefault(sample.name, []).append(sample)
        for definition in METRICS:
            rows = by_name.get(definition.name)
            if not rows:
                continue
            family_type = CounterMetricFamily if definition.kind == "counter" else \
                GaugeMetricFamily
            family = family_type(definition.name, definition.help,
                                 labels=list(definition.labels))
            for row in rows:
                family.add_metric([row.labels[k] for k in definition.labels], row.value)
            yield family
        if finished:
            self.state.delivered.set()


class PrometheusServer:
    """``/metrics`` on ``host:port`` (a thread of this process) while the run lasts."""

    def __init__(self, state: LiveMetrics, host: str, port: int) -> None:
        from prometheus_client import CollectorRegistry, start_http_server

        registry = CollectorRegistry(auto_describe=False)
        registry.register(_Collector(state))
        try:
            self._server, self._thread = start_http_server(port, addr=host, registry=registry)
        except OSError as exc:
            raise ConfigError(
                f"--metrics-port {port}: cannot listen on {host}:{port} "
                f"({exc.strerror or exc}); choose another port"
            ) from None
        self.host = host
        self.port = int(self._server.server_address[1])

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def otlp_metrics_url(url: str) -> str:
    """The OTLP/HTTP metrics URL: a bare collector address gets the standard ``/v1/metrics``."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ConfigError(f"--otlp-endpoint {url!r}: expected http(s)://HOST[:PORT][/PATH]")
    if parts.path in ("", "/"):
        return url.rstrip("/") + "/v1/metrics"
    return url


class OtlpPusher:
    """Pushes the live samples with the OpenTelemetry SDK (OTLP/HTTP, protobuf)."""

    def __init__(self, state: LiveMetrics, url: str, *, service: str = "amlc-bench",
                 attributes: dict[str, str] | None = None) -> None:
        try:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter,
            )
            from opentelemetry.metrics import CallbackOptions, Observation
            from opentelemetry.sdk.metrics import MeterProvider
            from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
            from opentelemetry.sdk.resources import Resource
        except ImportError:
            raise ConfigError(
                "--otlp-endpoint needs the OpenTelemetry exporter: pip install 'amlc[otlp]'"
            ) from None
        self.state = state
        self.url = otlp_metrics_url(url)
        interval = None if os.environ.get("OTEL_METRIC_EXPORT_INTERVAL") \
            else DEFAULT_PUSH_INTERVAL_MS
        reader = PeriodicExportingMetricReader(
            OTLPMetricExporter(endpoint=self.url), export_interval_millis=interval
        )
        resource = Resource.create({"service.name": service, **(attributes or {})})
        self._provider = MeterProvider(resource=resource, metric_readers=[reader])
        meter = self._provider.get_meter("aml_client.bench")

        def callback(name: str) -> Any:
            def observe(_options: CallbackOptions) -> Iterable[Observation]:
                return [Observation(s.value, s.labels) for s in state.samples() if s.name == name]
            return observe

        for definition in METRICS:
            make = meter.create_observable_counter if definition.kind == "counter" \
                else meter.create_observable_gauge
            make(definition.name, callbacks=[callback(definition.name)],
                 unit=definition.unit, description=definition.help)

    def close(self, timeout_s: float) -> bool:
        """Push the final values and stop; False when the collector did not take them."""
        ok = bool(self._provider.force_flush(timeout_millis=int(max(timeout_s, 0.1) * 1000)))
        self._provider.shutdown()
        return ok


class Exporters:
    """The exporters a run asked for, closed together when it ends."""

    def __init__(self, state: LiveMetrics, *, prometheus: tuple[str, int] | None = None,
                 otlp_endpoint: str | None = None) -> None:
        self.state = state
        self.prometheus: PrometheusServer | None = None
        self.otlp: OtlpPusher | None = None
        if prometheus is not None:
            self.prometheus = PrometheusServer(state, *prometheus)
        if otlp_endpoint is not None:
            try:
                self.otlp = OtlpPusher(state, otlp_endpoint)
            except BaseException:
                self.close(0.0)
                raise

    def close(self, linger_s: float) -> list[str]:
        """Stop exporting; with a finished run, first wait (at most ``linger_s``; 0: not at all)
        until the final values were scraped, and push them. Returns what was not delivered."""
        problems: list[str] = []
        finished = self.state.finished.is_set()
        deadline = time.monotonic() + linger_s
        if self.otlp is not None:
            if finished and not self.otlp.close(linger_s):
                problems.append(f"the OTLP endpoint {self.otlp.url} did not take the final "
                                "values")
            elif not finished:
                self.otlp.close(0.1)
            self.otlp = None
        if self.prometheus is not None:
            if finished and linger_s > 0 and \
                    not self.state.delivered.wait(max(deadline - time.monotonic(), 0)):
                problems.append(f"no scrape of {self.prometheus.url} read the final values "
                                f"within {linger_s:g} s")
            self.prometheus.close()
            self.prometheus = None
        return problems

