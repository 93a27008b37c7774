"""``amlc bench --master`` / ``--worker`` on separate hosts: Linux network namespaces joined by
veth pairs on a bridge, one namespace each for the endpoint, the master and two workers.

The addresses (``10.213.X.0/24``) exist only inside the namespaces the test makes, so every
request stays on them; the namespaces (and their interfaces) are removed afterwards, also when
the test fails. Needs root and iproute2's ``ip`` (as on CI); skipped otherwise.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from support.bench import KEY, ROOT, SERVER

pytestmark = pytest.mark.slow

IP = shutil.which("ip")
HOSTS = ("ep", "ms", "w1", "w2")
MASTER_PORT = 5557
ENDPOINT_PORT = 8080


def _ip(*args: str) -> None:
    assert IP is not None
    subprocess.run([IP, *args], check=True, capture_output=True, text=True, timeout=30)


class Hosts:
    """Namespaces ``<prefix>-ep|ms|w1|w2`` on a bridge in ``<prefix>-hub``; processes in them."""

    def __init__(self, tmp_path: Path) -> None:
        tag = os.getpid() % 250
        self.prefix = f"amlc{os.getpid()}"
        self.subnet = f"10.213.{tag + 1}"
        self.tmp = tmp_path
        self.made: list[str] = []
        self.procs: list[subprocess.Popen[str]] = []
        hub = self.ns("hub")
        self._add(hub)
        _ip("-n", hub, "link", "add", "br0", "type", "bridge")
        _ip("-n", hub, "link", "set", "br0", "up")
        for host in HOSTS:
            ns = self.ns(host)
            self._add(ns)
            # The pair is made inside the namespaces: nothing appears in the test's own.
            _ip("-n", ns, "link", "add", "eth0", "type", "veth", "peer", "name", f"p{host}",
                "netns", hub)
            _ip("-n", hub, "link", "set", f"p{host}", "master", "br0", "up")
            _ip("-n", ns, "addr", "add", f"{self.addr(host)}/24", "dev", "eth0")
            _ip("-n", ns, "link", "set", "eth0", "up")

    def _add(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def ns(self, host: str) -> str:
        return f"{self.prefix}-{host}"

    def addr(self, host: str) -> str:
        return f"{self.subnet}.{HOSTS.index(host) + 1}"

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("AMLC_")}
        env.update(
            AMLC_HOME=str(self.tmp / "home"),
            AMLC_SCORING_URI=f"http://{self.addr('ep')}:{ENDPOINT_PORT}/score",
            AMLC_KEY=KEY,
            PYTHONPATH=str(ROOT),
        )
        return env

    def start(self, host: str, *args: str, name: str) -> subprocess.Popen[str]:
        """A process in ``host``'s namespace, in its own session (killed as a group)."""
        assert IP is not None
        out = (self.tmp / f"{name}.out").open("w")
        err = (self.tmp / f"{name}.err").open("w")
        proc = subprocess.Popen(
            [IP, "netns", "exec", self.ns(host), *args], env=self.env(), cwd=self.tmp,
            stdout=out, stderr=err, text=True, start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def amlc_bench(self, host: str, *args: str, name: str) -> subprocess.Popen[str]:
        return self.start(host, sys.executable, "-m", "aml_client", "bench", *args, name=name)

    def output(self, name: str) -> tuple[str, str]:
        return ((self.tmp / f"{name}.out").read_text(), (self.tmp / f"{name}.err").read_text())

    def endpoint_count(self) -> int:
        """The endpoint's own count of scoring requests, asked from the master's host."""
        code = ("import json, urllib.request, sys; "
                f"r = urllib.request.urlopen('http://{self.addr('ep')}:{ENDPOINT_PORT}/count', "
                "timeout=5); print(json.load(r)['total'])")
        assert IP is not None
        done = subprocess.run([IP, "netns", "exec", self.ns("ms"), sys.executable, "-c", code],
                              capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr
        return int(done.stdout)

    def wait_endpoint(self) -> None:
        deadline = time.monotonic() + 30
        while True:
            try:
                self.endpoint_count()
                return
            except AssertionError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.2)

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(timeout=10)
        for ns in reversed(self.made):
            subprocess.run([IP or "ip", "netns", "del", ns], capture_output=True, timeout=30)


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[Hosts]:
    if os.geteuid() != 0:
        pytest.skip("network namespaces need root (ip netns add)")
    if IP is None:
        pytest.skip("needs iproute2's ip (apt-get install iproute2)")
    made: Hosts | None = None
    try:
        try:
            made = Hosts(tmp_path)
        except subprocess.CalledProcessError as exc:
            pytest.skip(f"cannot make network namespaces here: {exc.stderr.strip()}")
        made.start("ep", sys.executable, str(SERVER), "--host", made.addr("ep"), "--port",
                   str(ENDPOINT_PORT), "--service-ms", "5", "--key", KEY, name="endpoint")
        made.wait_endpoint()
        yield made
    finally:
        if made is not None:
            made.close()
        else:  # a half-made set: remove what exists
            for host in ("hub", *HOSTS):
                subprocess.run([IP or "ip", "netns", "del", f"amlc{os.getpid()}-{host}"],
                               capture_output=True, timeout=30)
    leftover = subprocess.run([IP or "ip", "netns", "list"], capture_output=True, text=True)
    assert f"amlc{os.getpid()}-" not in leftover.stdout


def _start_run(hosts: Hosts, *args: str) -> tuple[subprocess.Popen[str], list[Any]]:
    master = hosts.amlc_bench(
        "ms", "--master", "--master-bind", hosts.addr("ms"), "--master-port", str(MASTER_PORT),
        "--expect-workers", "2", "-u", "4", *args, "--json",
        "--report-dir", str(hosts.tmp / "reports"), name="master",
    )
    # The workers connect once the master listens.
    deadline = time.monotonic() + 60
    while "waiting for 2 workers" not in hosts.output("master")[1]:
        assert master.poll() is None, hosts.output("master")
        assert time.monotonic() < deadline, hosts.output("master")
        time.sleep(0.2)
    workers = [
        hosts.amlc_bench(host, "--worker", "--master-host", hosts.addr("ms"), "--master-port",
                         str(MASTER_PORT), name=host)
        for host in ("w1", "w2")
    ]
    return master, workers


def _summary(hosts: Hosts) -> dict[str, Any]:
    out, err = hosts.output("master")
    assert out.strip(), err
    return dict(json.loads(out))


def test_master_and_two_workers_on_separate_hosts_count_what_the_endpoint_received(
    hosts: Hosts,
) -> None:
    master, workers = _start_run(hosts, "-n", "1200")
    assert master.wait(timeout=240) == 0, hosts.output("master")
    for worker in workers:
        assert worker.wait(timeout=60) == 0
    summary = _summary(hosts)
    received = hosts.endpoint_count()
    assert summary["requests"] == received == 1200
    assert summary["failures"]["total"] == 0
    assert summary["partial"] is False and summary["lost_workers"] == []
    assert summary["environment"]["load_processes"] == 2


def test_a_worker_killed_mid_run_is_reported_and_the_result_is_partial(hosts: Hosts) -> None:
    master, workers = _start_run(hosts, "-t", "12s")
    victim = workers[1]
    deadline = time.monotonic() + 60
    while hosts.endpoint_count() < 300:  # the load is on
        assert master.poll() is None and time.monotonic() < deadline, hosts.output("master")
        time.sleep(0.2)
    # The worker's load process: the child of `amlc bench --worker` (under `ip netns exec`).
    load_pids = {p.pid for p in psutil.Process(victim.pid).children(recursive=True)
                 if "aml_client.bench.load.runner" in " ".join(p.cmdline())}
    assert len(load_pids) == 1
    os.killpg(victim.pid, signal.SIGKILL)
    code = master.wait(timeout=240)
    summary = _summary(hosts)
    err = hosts.output("master")[1]
    assert code == 6, err  # a partial result
    assert workers[0].wait(timeout=60) == 0
    assert summary["partial"] is True
    [lost] = summary["lost_workers"]
    assert lost["pid"] in load_pids and lost["host"] == hosts.addr("w2")
    assert 0 < lost["answered"] <= lost["sent"]
    assert (f"worker {hosts.addr('w2')} (pid {lost['pid']}) was lost after sending "
            f"{lost['sent']:,} requests") in err
    assert "the result is partial" in err
    received = hosts.endpoint_count()
    # Beside the processes' logs, for whoever reads a failure.
    (hosts.tmp / "counts.json").write_text(json.dumps(
        {"merged": summary["requests"], "endpoint": received, "lost": lost}))
    # Everything merged reached the endpoint; what the lost worker sent after its last report
    # (a second of its load at most) is known only to the endpoint.
    assert lost["answered"] < summary["requests"] <= received
