"""``amlc bench``'s live metrics read by real consumers: a real Prometheus scraping
``--metrics-port`` every second, and an OTLP/HTTP receiver (decoded with opentelemetry-proto)
taking ``--otlp-endpoint``'s pushes; both against a real run of several load processes."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from support.bench import Server, bench_env, run_bench, start_server
from support.local import free_port

pytestmark = pytest.mark.slow

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    # Every 10th request fails (503): the outcome label must carry the failure kind. 50 ms a
    # request: 4 users send ~80 a second, enough for every scrape and push to see new counts.
    srv = start_server(tmp_path, "--service-ms", "50", "--fail-every", "10")
    yield srv
    srv.stop()


def _summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.stdout.strip(), done.stderr
    return dict(json.loads(done.stdout))


# -- Prometheus ------------------------------------------------------------------------------------
class Prometheus:
    """A real Prometheus on 127.0.0.1 scraping one target every second, temp storage."""

    def __init__(self, tmp_path: Path, target_port: int) -> None:
        self.port = free_port()
        config = tmp_path / "prometheus.yml"
        config.write_text(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
            "scrape_configs:\n  - job_name: amlc\n    static_configs:\n"
            f"      - targets: ['127.0.0.1:{target_port}']\n"
        )
        self.log = (tmp_path / "prometheus.log").open("w")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}",
             f"--storage.tsdb.path={tmp_path / 'tsdb'}",
             f"--web.listen-address=127.0.0.1:{self.port}"],
            stdout=self.log, stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2):
                    return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError("prometheus did not start") from None
                time.sleep(0.2)

    def query(self, expr: str) -> list[dict[str, Any]]:
        url = (f"http://127.0.0.1:{self.port}/api/v1/query?"
               + urllib.parse.urlencode({"query": expr}))
        with urllib.request.urlopen(url, timeout=10) as reply:
            data = json.load(reply)
        assert data["status"] == "success", data
        return list(data["data"]["result"])

    def value(self, expr: str) -> float | None:
        result = self.query(expr)
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.log.close()


@pytest.mark.skipif(not Path(PROMETHEUS).exists(),
                    reason="needs Prometheus (Debian: apt-get install prometheus)")
def test_prometheus_sees_the_run_live_and_its_final_count(
    server: Server, tmp_path: Path
) -> None:
    metrics_port = free_port()
    prometheus = Prometheus(tmp_path, metrics_port)
    try:
        done = run_bench(
            ["-u", "4", "-t", "6s", "--workers", "2", "--metrics-port", str(metrics_port),
             "--metrics-linger", "60s", "--slo", "p99<=5s", "--slo", "error_rate<=50%",
             "--json", "--report-dir", str(tmp_path / "r")],
            bench_env(server), tmp_path, timeout_s=240,
        )
        assert done.returncode == 0, done.stderr
        summary = _summary(done)
        assert "no scrape" not in done.stderr
        # The bench waited for a scrape of its final values: Prometheus has them (range
        # selectors skip the staleness marker written once the target went away).
        final = None
        deadline = time.monotonic() + 20
        while final != 1.0 and time.monotonic() < deadline:
            final = prometheus.value("max(last_over_time(amlc_run_finished[10m]))")
            time.sleep(0.5)
        assert final == 1.0
        scraped = prometheus.value("sum(last_over_time(amlc_requests_total[10m]))")
        by_outcome = {
            row["metric"]["outcome"]: float(row["value"][1])
            for row in prometheus.query(
                "sum by (outcome) (last_over_time(amlc_requests_total[10m]))")
        }
        slo = {row["metric"]["objective"]: float(row["value"][1])
               for row in prometheus.query("last_over_time(amlc_slo_met[10m])")}
        # Live, not only at the end: values below the final one were scraped during the run.
        earlier = prometheus.value('min_over_time(amlc_requests_total{outcome="ok"}[10m])')
        samples = prometheus.value('count_over_time(amlc_requests_total{outcome="ok"}[10m])')
        p99 = prometheus.value(
            'max(max_over_time(amlc_interval_latency_seconds{quantile="0.99"}[10m]))')
    finally:
        prometheus.stop()
    requests = summary["requests"]
    # Beside the logs, for whoever reads a failure.
    (tmp_path / "counts.json").write_text(json.dumps(
        {"summary": requests, "prometheus": scraped, "by_outcome": by_outcome,
         "samples": samples}))
    assert requests > 0 and scraped is not None
    assert abs(scraped - requests) <= 0.02 * requests, (scraped, requests)
    assert set(by_outcome) == {"ok", *summary["failures"]["by_kind"]}
    assert by_outcome["http_503"] > 0
    assert slo == {"p99<=5s": 1.0, "error_rate<=50%": 1.0}
    assert samples is not None and samples >= 2
    assert earlier is not None and earlier < summary["successes"]
    assert p99 is not None and 0.05 <= p99 < 5.0  # the server takes 50 ms a request


# -- OTLP ---------------------------------------------------------------------------------------
class OtlpReceiver:
    """An OTLP/HTTP metrics receiver on 127.0.0.1 keeping every decoded export request."""

    def __init__(self) -> None:
        from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

        self.requests: list[Any] = []
        received = self.requests

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: object) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                ok = self.path == "/v1/metrics" and \
                    self.headers.get("Content-Type") == "application/x-protobuf"
                if ok:
                    message = metrics_service_pb2.ExportMetricsServiceRequest()
                    message.ParseFromString(body)
                    received.append(message)
                reply = metrics_service_pb2.ExportMetricsServiceResponse().SerializeToString()
                self.send_response(200 if ok else 400)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def last_points(self) -> dict[str, list[Any]]:
        """Each metric's data points in the last export that carried it."""
        points: dict[str, list[Any]] = {}
        for message in self.requests:
            for resource in message.resource_metrics:
                for scope in resource.scope_metrics:
                    for metric in scope.metrics:
                        data = metric.sum if metric.HasField("sum") else metric.gauge
                        points[metric.name] = list(data.data_points)
        return points

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def test_otlp_receiver_gets_the_same_metrics_and_final_counts(
    server: Server, tmp_path: Path
) -> None:
    pytest.importorskip("opentelemetry.exporter.otlp.proto.http",
                        reason="needs the otlp extra: pip install 'amlc[otlp]'")
    from aml_client.bench.metrics import METRICS

    receiver = OtlpReceiver()
    try:
        done = run_bench(
            ["-u", "4", "-t", "4s", "--workers", "2", "--otlp-endpoint", receiver.url,
             "--slo", "p99<=5s", "--slo", "error_rate<=50%", "--json",
             "--report-dir", str(tmp_path / "r")],
            bench_env(server, OTEL_METRIC_EXPORT_INTERVAL="500"), tmp_path, timeout_s=240,
        )
    finally:
        receiver.close()
    assert done.returncode == 0, done.stderr
    summary = _summary(done)
    points = receiver.last_points()
    assert len(receiver.requests) >= 2  # pushed during the run, and the final values
    expected = {m.name for m in METRICS} - {"amlc_scheduled_rate"}  # closed model: no schedule
    assert expected <= set(points), expected - set(points)
    counts = {
        next(a.value.string_value for a in p.attributes if a.key == "outcome"): p.as_int
        or int(p.as_double)
        for p in points["amlc_requests"]
    }
    assert sum(counts.values()) == summary["requests"]
    assert counts == {"ok": summary["successes"], **summary["failures"]["by_kind"]}
    finished = points["amlc_run_finished"][0]
    assert (finished.as_double or finished.as_int) == 1
    service = {a.key: a.value.string_value
               for a in receiver.requests[-1].resource_metrics[0].resource.attributes}
    assert service["service.name"] == "amlc-bench"


def test_a_busy_metrics_port_or_metrics_on_a_worker_is_one_line_and_exit_2(
    server: Server, tmp_path: Path
) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_bench(["-n", "5", "--metrics-port", str(port)], bench_env(server), tmp_path)
    assert done.returncode == 2
    assert f"error: --metrics-port {port}: cannot listen on 127.0.0.1:{port}" in done.stderr
    assert "Traceback" not in done.stderr
    done = run_bench(["--worker", "--metrics-port", "0"], bench_env(server), tmp_path)
    assert done.returncode == 2 and "go to the master" in done.stderr
    done = run_bench(["-n", "5", "--otlp-endpoint", "ftp://x"], bench_env(server), tmp_path)
    assert done.returncode == 2 and "--otlp-endpoint 'ftp://x'" in done.stderr
