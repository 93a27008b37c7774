"""``aml_client.benchmark``: the plan, the process roles and the verdicts that ``amlc bench``
and ``run_bench`` share (the runs themselves: tests/integration/test_pytest_plugin.py and the
bench integration tests)."""

from __future__ import annotations

import pytest

from aml_client import KeyCredential, benchmark
from aml_client.bench.report.summary import BenchSummary, DeploymentRun, Failures, LatencyBlock
from aml_client.bench.report.summary import BlueGreen as BlueGreenSection
from aml_client.bench.target import RunTarget
from aml_client.client import Endpoint
from aml_client.errors import ConfigError


def test_a_closed_run_bounded_by_nothing_lasts_the_default_duration() -> None:
    plan = benchmark.plan_load(users=None, workers=4)
    assert (plan.mode, plan.users, plan.duration_s, plan.max_requests) == ("closed", 10, 30.0,
                                                                          None)
    assert plan.workers == 4 and plan.spawn_rate == 10.0
    assert benchmark.plan_load(requests=50).duration_s is None
    assert benchmark.plan_load(bounded=False).duration_s is None  # the web UI's own stop


def test_an_open_run_has_one_dispatcher_per_process_and_users_cap_the_senders() -> None:
    plan = benchmark.plan_load(rate=50, users=7, workers=2, duration="5s")
    assert (plan.mode, plan.users, plan.max_senders, plan.duration_s) == ("open", 2, 7, 5.0)


def test_a_capacity_search_runs_in_one_process_at_its_first_rate() -> None:
    objectives = benchmark.parse_objectives(["p99<=200ms"])
    settings = benchmark.CapacityOptions(start_rate=20, max_rate=400).settings(
        objectives, ["p99<=200ms"])
    plan = benchmark.plan_load(capacity=settings, workers=8, duration="1m", requests=5)
    assert (plan.mode, plan.rate, plan.workers) == ("open", 20, 1)
    assert plan.duration_s is None and plan.max_requests is None
    assert settings["step_s"] == 20.0 and settings["warmup_s"] == 2.0


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: benchmark.plan_load(arrival="bursty"), "--arrival must be one of"),
        (lambda: benchmark.plan_load(rate=0), "--rate must be above 0"),
        (lambda: benchmark.plan_load(duration="soon"), "--duration: not a duration"),
        (lambda: benchmark.parse_timeout("0s"), "--timeout: '0s' is not a duration above 0"),
        (lambda: benchmark.parse_objectives(["p99 <= fast"]), "--slo"),
        (lambda: benchmark.parse_deployments(["blue"]), "--deployments"),
        (lambda: benchmark.parse_deployments("blue,green", "blue"), "exclude each other"),
        (lambda: benchmark.CapacityOptions().settings([], []), "needs at least one --slo"),
        (lambda: benchmark.CapacityOptions(precision=2).settings(
            benchmark.parse_objectives(["p99<=1s"]), ["p99<=1s"]), "--precision"),
        (lambda: benchmark.Distribution(master=True, worker=True), "exclude each other"),
    ],
)
def test_settings_no_run_can_use_are_one_clear_line(make, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as info:
        make()
    assert message in str(info.value)


def test_deployments_as_text_or_list() -> None:
    assert benchmark.parse_deployments("blue, green") == ["blue", "green"]
    assert benchmark.parse_deployments(("blue", "green")) == ["blue", "green"]
    assert benchmark.parse_deployments(None) is None


def _target() -> RunTarget:
    return RunTarget(name="t", scoring_uri="http://127.0.0.1:9/score", headers={},
                     bodies=[b"{}"], payload={"bodies": 1, "source": "x"})


def test_each_role_gets_what_it_needs_and_nothing_secret() -> None:
    many = benchmark.plan_load(users=4, workers=3)
    one = benchmark.plan_load(users=4, workers=1)
    role, config = benchmark.load_config(_target(), one, "reports")
    assert role == "local" and config.report_root == "reports"
    assert (config.master, config.worker, config.web, config.live_metrics) == (
        None, None, None, False)
    role, config = benchmark.load_config(_target(), many, "r", web_port=8089, live_metrics=True)
    assert config.master is not None and config.web is not None
    assert (role, config.master.local_workers, config.master.bind_port) == ("master", 3, 0)
    assert (config.web.host, config.web.port) == ("127.0.0.1", 8089) and config.live_metrics
    spread = benchmark.Distribution(master=True, expect_workers=2, master_bind="0.0.0.0")
    role, config = benchmark.load_config(_target(), many, "r", distribution=spread)
    assert config.master is not None
    assert (role, config.master.expect_workers, config.master.bind_host,
            config.master.bind_port) == ("master", 2, "0.0.0.0", benchmark.DEFAULT_MASTER_PORT)
    worker = benchmark.Distribution(worker=True, master_host="10.0.0.2", master_port=6000)
    role, config = benchmark.load_config(_target(), many, "r", distribution=worker)
    assert config.worker is not None
    assert (role, config.worker.master_host, config.worker.master_port) == (
        "worker", "10.0.0.2", 6000)
    assert "Authorization" not in config.model_dump_json()


def test_a_master_port_needs_a_master() -> None:
    with pytest.raises(ConfigError, match="--master-port needs"):
        benchmark.Distribution(master_port=6000).check(benchmark.plan_load(workers=1))
    benchmark.Distribution(master_port=6000).check(benchmark.plan_load(workers=2))
    with pytest.raises(ConfigError, match="--expect-workers"):
        benchmark.Distribution(master=True, expect_workers=5).check(
            benchmark.plan_load(users=2, workers=5))


def test_a_client_endpoint_is_benchmarked_as_the_target_it_calls() -> None:
    endpoint = Endpoint("https://example.invalid:8443/score", KeyCredential("k" * 32),
                        verify=False, deployment="blue")
    target = endpoint.to_target()
    assert (target.name, target.scoring_uri, target.deployment, target.verify) == (
        "example.invalid:8443", "https://example.invalid:8443/score", "blue", False)
    assert target.credential is not None and "k" * 32 not in repr(target)
    assert endpoint.to_target("bank").name == "bank"


def _summary(p99: float, failures: dict[str, int] | None = None, **extra: object) -> BenchSummary:
    block = LatencyBlock(kind="latency", samples=100, percentiles_ms={"p50": 10.0, "p99": p99})
    failed = sum((failures or {}).values())
    return BenchSummary(endpoint="e", mode="closed", started_at="", ended_at="",
                        started_at_epoch_s=0, duration_s=1, requests=100,
                        successes=100 - failed, failures=Failures(total=failed,
                                                                  by_kind=failures or {}),
                        error_rate=failed / 100, throughput_rps=100, judged_on="latency",
                        latency=block, **extra)  # type: ignore[arg-type]


def test_missed_objectives_name_each_miss() -> None:
    assert benchmark.missed_objectives(_summary(150.0), ["p99<=200ms"]) == []
    missed = benchmark.missed_objectives(_summary(250.0, {"http_500": 3}), ["p99<=200ms"])
    assert missed == ["p99 = 250.0 ms, objective <= 200 ms: MISSED",
                      "error_rate = 3 %, objective <= 1 % (implied): MISSED"]


def test_each_deployment_of_a_blue_green_run_is_judged() -> None:
    def run(name: str, p99: float) -> DeploymentRun:
        return DeploymentRun(name=name, requests=50, successes=50, failures=Failures(),
                             error_rate=0.0, throughput_rps=50, judged_on="latency",
                             latency=LatencyBlock(kind="latency", samples=50,
                                                  percentiles_ms={"p99": p99}))

    section = BlueGreenSection(deployments=["blue", "green"], baseline="blue",
                               interleaving="alternate", runs=[run("blue", 90), run("green", 300)])
    missed = benchmark.missed_objectives(_summary(100.0, blue_green=section), ["p99<=200ms"])
    assert missed == ["green: p99 = 300.0 ms, objective <= 200 ms: MISSED"]


def test_failed_requests_fail_a_run_unless_accepted() -> None:
    objectives = benchmark.parse_objectives(["p99<=1s"])
    failing = [_summary(1.0, {"http_503": 2, "timeout": 5})]
    assert benchmark.failed_requests(failing, objectives) == (
        "7 of 100 requests failed (timeout 5, http_503 2): --allow-failures or "
        "--slo 'error_rate<=...' accepts failures")
    assert benchmark.failed_requests(failing, objectives, allow_failures=True) is None
    assert benchmark.failed_requests(failing, benchmark.parse_objectives(["error_rate<=10%"])) \
        is None
    assert benchmark.failed_requests([_summary(1.0)], objectives) is None


def test_own_log_lines_are_told_from_locusts() -> None:
    assert benchmark.own_log_line("WARNING aml_client.bench.engine: slow") == ("WARNING", "slow")
    assert benchmark.own_log_line("INFO locust.main: Starting") is None
