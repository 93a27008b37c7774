"""``amlc export``: the Azure Load Testing and Kubernetes bundles are valid against schemas
written from each engine's published reference, never hold the key, and their locustfile runs
under plain ``locust`` as the engines run it (two separate engines; a master and two workers
whose log carries the results), against a real test endpoint on 127.0.0.1; ``amlc report
merge`` then combines the engines exactly."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from hdrh.histogram import HdrHistogram
from hdrh.log import HistogramLogReader
from support.bench import KEY, Server, bench_env, files_under, start_server
from support.local import free_port

from aml_client.bench.hdr import HIGHEST_US, LOWEST_US, SIGNIFICANT_FIGURES
from aml_client.bench.report.merge import load_sources, merge_results

pytestmark = pytest.mark.slow

SCHEMAS = Path(__file__).resolve().parents[1] / "fixtures" / "schemas"
VAULT_SECRET = "https://amlc-test-vault.vault.azure.net/secrets/endpoint-key"
PERCENTILES = [0, 50, 90, 99, 99.9, 100]


def _schema(name: str) -> dict[str, Any]:
    return json.loads((SCHEMAS / name).read_text())


def _amlc(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "aml_client", *args], env=env, cwd=cwd,
                          capture_output=True, text=True, timeout=120)


def _rows(tmp_path: Path) -> Path:
    rows = tmp_path / "rows.jsonl"
    rows.write_text("".join(json.dumps({"x": i / 4, "y": i}) + "\n" for i in range(20)))
    return rows


def _no_key_in(paths: list[Path], *texts: str) -> None:
    for path in paths:
        assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path
    for text in texts:
        assert KEY not in text


def _union_of_hlogs(paths: list[Path]) -> HdrHistogram:
    """An independent union: hdrh's own log reader, every interval of every engine added."""
    union = HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_FIGURES)
    for path in paths:
        reader = HistogramLogReader(str(path), HdrHistogram(LOWEST_US, HIGHEST_US,
                                                            SIGNIFICANT_FIGURES))
        while (interval := reader.get_next_interval_histogram()) is not None:
            union.add(interval)
        reader.close()
    return union


@pytest.fixture
def server(tmp_path: Path) -> Any:
    srv = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    yield srv
    srv.stop()


def test_azure_load_testing_bundle_runs_on_two_engines_and_merges_exactly(
    tmp_path: Path, server: Server
) -> None:
    env = bench_env(server)
    bundle = tmp_path / "alt"
    made = _amlc(["export", "azure-load-testing", str(bundle), "--key-secret", VAULT_SECRET,
                  "--engines", "2", "-u", "2", "-t", "4s", "--slo", "p99<=500ms",
                  "--slo", "error_rate<=1%", "--payload", str(_rows(tmp_path)),
                  "--test-id", "amlc-ci"], env, tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    config = yaml.safe_load((bundle / "loadtest.yaml").read_text())
    schema = _schema("azure-load-testing-test-config.schema.json")
    jsonschema.validate(config, schema)
    assert config["testType"] == "Locust" and config["engineInstances"] == 2
    assert config["secrets"] == [{"name": "AMLC_KEY", "value": VAULT_SECRET}]
    assert config["failureCriteria"] == ["p99(response_time_ms) > 500", "percentage(error) > 1"]
    assert config["autoStop"] == {"errorPercentage": 90, "timeWindow": 60}
    for name in [config["testPlan"], *config["configurationFiles"]]:
        assert (bundle / name).is_file()
    assert "amlc==" in (bundle / "requirements.txt").read_text()
    _no_key_in(files_under(bundle), made.stdout, made.stderr)
    # The schema is not a formality: what the reference forbids fails it.
    for broken in ({"testId": "Amlc CI"}, {"secrets": [{"name": "AMLC_KEY", "value": KEY}]},
                   {"failureCriteria": ["p99.9(response_time_ms) > 500"]},
                   {"engineInstances": 0}, {"version": "v1"}, {"testType": "k6"}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**config, **broken}, schema)

    # Two engines as the service runs them: each its own copy of the files, the YAML's env,
    # the Key Vault secret as AMLC_KEY; plain `locust`, nothing from amlc on the command line.
    engines = []
    for k in range(2):
        workdir = tmp_path / f"engine-{k}"
        shutil.copytree(bundle, workdir)
        engine_env = bench_env(server, AMLC_REPORT_DIR=str(tmp_path / "reports"),
                               AMLC_RESULTS_DIR=str(tmp_path / f"results-{k}"))
        engine_env.update({item["name"]: item["value"] for item in config["env"]})
        engine_env["AMLC_KEY"] = KEY
        out = open(tmp_path / f"engine-{k}.log", "w")  # noqa: SIM115
        engines.append((subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", config["testPlan"]], cwd=workdir,
            env=engine_env, stdout=out, stderr=subprocess.PIPE, text=True), out))
    for proc, out in engines:
        _, err = proc.communicate(timeout=90)
        out.close()
        assert proc.returncode == 0, err[-2000:]
        _no_key_in([], err)
    served = server.count()["total"]
    dirs = [next((tmp_path / f"results-{k}").iterdir()) for k in range(2)]
    merged = merge_results(load_sources(dirs))
    from_logs = merge_results(load_sources([tmp_path / f"engine-{k}.log" for k in range(2)]))
    union = _union_of_hlogs([d / "total.hlog" for d in dirs])
    for run in (merged, from_logs):
        latency = run.result.latency
        assert latency.count == union.get_total_count() == run.result.requests
        assert list(latency.histogram.counts) == list(union.counts)
        assert latency.max_us == max(read.recording.latency.max_us
                                     for read in load_sources(dirs))
        assert run.overlap and len(run.engines) == 2
    assert from_logs.result.latency.percentiles_us(PERCENTILES) == \
        merged.result.latency.percentiles_us(PERCENTILES)
    # Locust's --run-time ends each engine's users: at most one in-flight request each lost.
    assert merged.result.requests <= served <= merged.result.requests + 4
    assert merged.result.requests > 50 and merged.result.failure_count == 0

    cli = _amlc(["report", "merge", *map(str, dirs), "-o", str(tmp_path / "merged")], env,
                tmp_path)
    assert cli.returncode == 0, cli.stderr[-2000:]
    assert "merged 2 engine(s)" in cli.stderr and "windows overlap" in cli.stderr
    (report,) = (tmp_path / "merged").iterdir()
    summary = json.loads((report / "summary.json").read_text())
    assert summary["requests"] == merged.result.requests
    _no_key_in(files_under(tmp_path / "merged") + [f for d in dirs for f in files_under(d)],
               cli.stdout, cli.stderr, *(p.read_text() for p in tmp_path.glob("engine-*.log")))


def test_kubernetes_bundle_is_a_valid_locusttest_and_its_master_log_merges(
    tmp_path: Path, server: Server
) -> None:
    env = bench_env(server)
    bundle = tmp_path / "k8s"
    made = _amlc(["export", "kubernetes", str(bundle), "--secret", "amlc-endpoint-key",
                  "--workers", "2", "-u", "4", "-t", "4s", "--payload", str(_rows(tmp_path))],
                 env, tmp_path)
    assert made.returncode == 0, made.stderr[-2000:]
    configmap, test = yaml.safe_load_all((bundle / "kubernetes.yaml").read_text())
    schema = _schema("locusttest-v2.schema.json")
    jsonschema.validate(test, schema)
    crd = os.environ.get("AMLC_LOCUSTTEST_CRD")
    if crd:  # the operator's own CRD, when a copy is at hand
        versions = yaml.safe_load(Path(crd).read_text())["spec"]["versions"]
        (v2,) = [v for v in versions if v["name"] == "v2"]
        jsonschema.validate(test, v2["schema"]["openAPIV3Schema"])
    assert configmap["kind"] == "ConfigMap" and test["spec"]["testFiles"] == {
        "configMapRef": configmap["metadata"]["name"]}
    assert set(configmap["data"]) == {"locustfile.py", "payload.jsonl"}
    assert all(isinstance(v, str) for v in configmap["data"].values())
    variables = {v["name"]: v for v in test["spec"]["env"]["variables"]}
    assert variables["AMLC_KEY"] == {"name": "AMLC_KEY", "valueFrom": {"secretKeyRef": {
        "name": "amlc-endpoint-key", "key": "key"}}}
    assert test["spec"]["worker"]["replicas"] == 2
    _no_key_in(files_under(bundle), made.stdout, made.stderr)
    for broken in ({"replicas": 0}, {"replicas": 501}, {"command": 3}):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({**test, "spec": {**test["spec"], "worker": {
                **test["spec"]["worker"], **broken}}}, schema)

    # As the operator runs it: the ConfigMap mounted at the source path, the env variables
    # (the Secret's value for AMLC_KEY), the commands with the flags the operator appends
    # (internal/resources/command.go); the web UI kept on 127.0.0.1, and a short --autoquit.
    src = tmp_path / "lotest" / "src"
    src.mkdir(parents=True)
    for name, text in configmap["data"].items():
        (src / name).write_text(text)
    pod_env = bench_env(server, AMLC_REPORT_DIR=str(tmp_path / "reports"))
    for name, var in variables.items():
        pod_env[name] = var.get("value", KEY)  # valueFrom: the Secret's value, as kubelet sets
    port = free_port()
    master_cmd = test["spec"]["master"]["command"].replace("/lotest/src", str(src)).split()
    master_cmd += ["--master", f"--master-port={port}", "--expect-workers=2", "--autostart",
                   "--autoquit", "1", "--enable-rebalancing", "--only-summary",
                   # test-only: a free port on 127.0.0.1 stands for the pod's own 5557
                   "--master-bind-host", "127.0.0.1", f"--master-bind-port={port}",
                   "--web-host", "127.0.0.1",
                   "--web-port", str(free_port())]
    worker_cmd = test["spec"]["worker"]["command"].replace("/lotest/src", str(src)).split()
    worker_cmd += ["--worker", f"--master-port={port}", "--master-host=127.0.0.1"]
    master_log = tmp_path / "master.log"
    with open(master_log, "w") as log:
        master = subprocess.Popen([sys.executable, "-m", "locust", *master_cmd], env=pod_env,
                                  cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
        # Test-only: the workers also keep their own results, to check the master's log
        # against the exact union of what each worker measured.
        worker_env = {**pod_env, "AMLC_RESULTS_DIR": str(tmp_path / "worker-results")}
        workers = [subprocess.Popen([sys.executable, "-m", "locust", *worker_cmd],
                                    env=worker_env, cwd=tmp_path, stdout=log,
                                    stderr=subprocess.STDOUT) for _ in range(2)]
        try:
            master.wait(timeout=120)
        finally:
            for proc in (master, *workers):
                if proc.poll() is None:
                    proc.terminate()
                proc.wait(timeout=30)
    served = server.count()["total"]
    text = master_log.read_text()
    _no_key_in([master_log])
    assert "AMLC-RESULTS" in text, text[-2000:]
    cli = _amlc(["report", "merge", str(master_log), "-o", str(tmp_path / "merged")], env,
                tmp_path)
    assert cli.returncode == 0, cli.stderr[-2000:]
    (report,) = (tmp_path / "merged").iterdir()
    summary = json.loads((report / "summary.json").read_text())
    (read,) = load_sources([master_log])
    assert read.identity.role == "master" and len(read.identity.workers) == 2
    assert summary["requests"] == read.recording.requests > 50
    assert summary["requests"] <= served <= summary["requests"] + 4
    workers_union = merge_results(load_sources([tmp_path / "worker-results"]))
    assert len(workers_union.engines) == 2
    ours, theirs = workers_union.result.latency, read.recording.latency
    assert list(ours.histogram.counts) == list(theirs.histogram.counts)
    assert (ours.count, ours.max_us, ours.sum_us) == (theirs.count, theirs.max_us, theirs.sum_us)
    assert ours.percentiles_us(PERCENTILES) == theirs.percentiles_us(PERCENTILES)
