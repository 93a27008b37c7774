"""``amlc local up | down | status | logs | keys`` through the real CLI."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import shutil
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from aml_client.local import SAMPLE_ROWS
from aml_client.local._state import pid_alive

REPO = Path(__file__).resolve().parents[2]

BODY = {"Inputs": {"data": SAMPLE_ROWS}, "GlobalParameters": {"method": "predict"}}


def _one_error_line(result: subprocess.CompletedProcess) -> str:
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) >= 1
    assert lines[-1].startswith("error: "), result.stderr
    return lines[-1]


def test_status_describes_the_running_endpoint(local_endpoint) -> None:
    result = local_endpoint.amlc("local", "status", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["running"] is True
    assert data["scoring_uri"] == local_endpoint.scoring_uri
    assert data["swagger_uri"] == local_endpoint.swagger_uri
    assert data["pid"] == local_endpoint.info.pid
    assert data["style"] == "inputs"
    assert data["accuracy"] >= 0.90
    assert data["metric"] == "accuracy"
    assert data["workers"] == 2

    table = local_endpoint.amlc("local", "status")
    assert table.returncode == 0
    assert table.stderr == ""  # the status is the command's output: `| grep` sees it
    info = local_endpoint.info
    for needle in (info.scoring_uri, info.swagger_uri, "inputs", str(info.pid), info.model):
        assert needle in table.stdout


def test_status_exits_non_zero_when_nothing_runs(tmp_path: Path, amlc_in) -> None:
    result = amlc_in(tmp_path, "local", "status", "--json")
    assert result.returncode == 4
    assert json.loads(result.stdout) == {"running": False}
    assert amlc_in(tmp_path, "local", "status").returncode == 4


def test_keys_are_masked_and_the_file_is_private(local_endpoint) -> None:
    result = local_endpoint.amlc("local", "keys")
    assert result.returncode == 0, result.stderr
    shown = result.stdout + result.stderr
    assert local_endpoint.primary_key not in shown
    assert local_endpoint.secondary_key not in shown
    assert f"{local_endpoint.primary_key[:4]}…" in shown
    assert f"{local_endpoint.secondary_key[:4]}…" in shown
    keys_file = local_endpoint.home / "config" / "local-keys.json"
    assert stat.S_IMODE(keys_file.stat().st_mode) == 0o600
    masked = json.loads(local_endpoint.amlc("local", "keys", "--json").stdout)
    assert masked["primary"] == f"{local_endpoint.primary_key[:4]}…"


def test_keys_show_prints_the_primary_key_on_its_first_line(local_endpoint) -> None:
    result = local_endpoint.amlc("local", "keys", "--show")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[0] == local_endpoint.primary_key
    assert local_endpoint.secondary_key not in result.stdout + result.stderr
    # ... and the key it prints is one the endpoint accepts.
    key = result.stdout.splitlines()[0]
    response = httpx.post(
        local_endpoint.scoring_uri, json=BODY, headers={"Authorization": f"Bearer {key}"}
    )
    assert response.status_code == 200


def test_regenerate_rotates_the_keys_of_a_running_endpoint(scratch_local_endpoint) -> None:
    handle = scratch_local_endpoint
    old = handle.primary_key
    assert httpx.post(handle.scoring_uri, json=BODY, headers=handle.headers()).status_code == 200
    result = handle.amlc("local", "keys", "--regenerate")
    assert result.returncode == 0, result.stderr
    assert old not in result.stdout + result.stderr
    new = handle.amlc("local", "keys", "--show").stdout.splitlines()[0]
    assert new != old
    refused = httpx.post(handle.scoring_uri, json=BODY, headers=handle.headers(old))
    assert refused.status_code == 401
    assert httpx.post(handle.scoring_uri, json=BODY, headers=handle.headers(new)).status_code == 200
    # Rotating only the secondary keeps the primary.
    handle.amlc("local", "keys", "--regenerate", "--which", "secondary")
    assert handle.amlc("local", "keys", "--show").stdout.splitlines()[0] == new


def test_logs_print_one_line_per_request(local_endpoint) -> None:
    request_id = f"logs-test-{time.time_ns()}"
    response = httpx.post(
        local_endpoint.scoring_uri,
        json=BODY,
        headers={**local_endpoint.headers(), "x-ms-client-request-id": request_id},
    )
    assert response.status_code == 200
    assert local_endpoint.wait_for_log(f"client_rid={request_id}")
    result = local_endpoint.amlc("local", "logs", "-n", "5")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert 1 <= len(lines) <= 5
    mine = [line for line in lines if f"client_rid={request_id}" in line]
    assert len(mine) == 1 and " POST /score 200 " in mine[0]
    assert local_endpoint.primary_key not in result.stdout


def test_logs_follow_prints_new_requests(local_endpoint) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "aml_client", "local", "logs", "-f", "-n", "0"],
        env=local_endpoint.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    try:
        lines: queue.Queue[str] = queue.Queue()
        assert proc.stdout is not None
        threading.Thread(
            target=lambda: [lines.put(line) for line in proc.stdout], daemon=True
        ).start()
        # A request sent before the command reached the end of the file is not new to it:
        # send one each half second until one is printed (no guess at its start-up time).
        sent: list[str] = []
        seen = ""
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(rid in seen for rid in sent):
            sent.append(f"follow-test-{time.time_ns()}")
            httpx.post(
                local_endpoint.scoring_uri,
                json=BODY,
                headers={**local_endpoint.headers(), "x-ms-client-request-id": sent[-1]},
            )
            stop = time.monotonic() + 0.5
            while time.monotonic() < stop:
                with contextlib.suppress(queue.Empty):
                    seen += lines.get(timeout=0.1)
        printed = [rid for rid in sent if rid in seen]
        assert printed, seen
        # From the first request it printed on, it printed every one, once.
        assert printed == sent[sent.index(printed[0]) :] or printed == sent[
            sent.index(printed[0]) : -1
        ], (sent, seen)
        assert all(seen.count(rid) == 1 for rid in printed)
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0


def test_down_stops_the_endpoint(scratch_local_endpoint) -> None:
    handle = scratch_local_endpoint
    pid = handle.info.pid
    result = handle.amlc("local", "down")
    assert result.returncode == 0, result.stderr
    assert str(pid) in result.stdout
    assert not (handle.home / "state" / "local" / "endpoint.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{handle.base_uri}/", timeout=2)
    # The deployment behind the front is gone too (its own port closes with it).
    [deployment] = handle.info.deployments
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        try:
            httpx.get(f"http://127.0.0.1:{deployment.port}/", timeout=2)
        except httpx.ConnectError:
            break
        time.sleep(0.2)
    else:
        pytest.fail("the deployment still answers after amlc local down")
    assert not pid_alive(pid)
    assert handle.amlc("local", "status").returncode == 4
    again = handle.amlc("local", "down")
    assert again.returncode == 0
    assert "no local endpoint" in again.stdout


def test_up_detach_through_the_cli(home_with_model: Path, amlc_in, port_factory) -> None:
    home = home_with_model
    port = port_factory()
    started = time.monotonic()
    result = amlc_in(
        home, "local", "up", "--detach", "--port", str(port), "--workers", "1", "--style", "v1"
    )
    try:
        assert result.returncode == 0, result.stderr
        assert time.monotonic() - started < 60
        assert "from cache" in result.stderr  # no training when the model is cached
        assert f"http://127.0.0.1:{port}/score" in result.stdout
        assert "ready" in result.stdout
        keys = json.loads((home / "config" / "local-keys.json").read_text())
        response = httpx.post(
            f"http://127.0.0.1:{port}/score",
            json={"data": SAMPLE_ROWS},
            headers={"Authorization": f"Bearer {keys['primary']}"},
        )
        assert set(json.loads(response.json())) == {"result"}
        # A second start is refused with one clear line.
        second = amlc_in(home, "local", "up", "--detach", "--port", str(port_factory()))
        assert second.returncode == 2
        assert "already running" in _one_error_line(second)
    finally:
        assert amlc_in(home, "local", "down").returncode == 0


def test_up_on_a_busy_port_fails_with_one_line(tmp_path: Path, amlc_in) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = amlc_in(tmp_path, "local", "up", "--detach", "--port", str(port))
    assert result.returncode == 2
    assert "already in use" in _one_error_line(result)


def test_up_in_the_foreground_stops_cleanly_on_ctrl_c(
    home_with_model: Path, port_factory, local_endpoint
) -> None:
    """Ctrl-C in the terminal reaches the whole foreground group while requests are in flight:
    only amlc sees it, stops the front gracefully, and says so in one line."""
    home = home_with_model
    port = port_factory()
    proc = subprocess.Popen(
        [sys.executable, "-m", "aml_client", "local", "up", "--port", str(port), "--workers", "1"],
        env={**local_endpoint.env(), "AMLC_HOME": str(home)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
        start_new_session=True,  # its own group, as a terminal would have it
    )
    stdout: list[str] = []
    stderr: list[str] = []
    assert proc.stdout is not None and proc.stderr is not None
    readers = [
        threading.Thread(target=lambda: stdout.extend(proc.stdout), daemon=True),
        threading.Thread(target=lambda: stderr.extend(proc.stderr), daemon=True),
    ]
    for reader in readers:
        reader.start()
    stop_load = threading.Event()
    answered: list[int] = []

    def score_until_stopped() -> None:
        headers = {"Authorization": f"Bearer {json.loads(keys_file.read_text())['primary']}"}
        with httpx.Client(timeout=10) as client:
            while not stop_load.is_set():
                try:
                    url = f"http://127.0.0.1:{port}/score"
                    answered.append(client.post(url, json=BODY, headers=headers).status_code)
                except httpx.HTTPError:
                    # Refused once the front has stopped: no busy loop while amlc shuts down.
                    stop_load.wait(0.05)

    keys_file = home / "config" / "local-keys.json"
    load = [threading.Thread(target=score_until_stopped, daemon=True) for _ in range(3)]
    try:
        # Wait for the command to say it is ready (Ctrl-C before that is an interrupted
        # start, exit 130, which is right but not what this test is about).
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not any("ready" in line for line in stdout):
            assert proc.poll() is None, "".join(stdout + stderr)
            time.sleep(0.1)
        assert any("local endpoint ready" in line for line in stdout), "".join(stdout + stderr)
        state = json.loads((home / "state" / "local" / "endpoint.json").read_text())
        for thread in load:
            thread.start()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and answered.count(200) < 5:
            time.sleep(0.05)
        assert answered.count(200) >= 5, answered  # requests are in flight now
        # Ctrl-C in a terminal signals the whole foreground process group.
        os.killpg(proc.pid, signal.SIGINT)
        assert proc.wait(timeout=60) == 0, "".join(stderr)
        stop_load.set()
        for reader in readers:
            reader.join(timeout=5)
        assert "Traceback" not in "".join(stdout + stderr)
        # After the ready block: the hint, then one line, and nothing from the servers.
        assert [line.strip() for line in stderr][-2:] == [
            "Ctrl-C stops it · request log: amlc local logs -f",
            "local endpoint stopped",
        ], stderr
        assert "Traceback" not in Path(state["server_log"]).read_text(errors="replace")
        assert not (home / "state" / "local" / "endpoint.json").exists()
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
        assert not pid_alive(state["pid"])
        for deployment in state["deployments"]:
            with pytest.raises(httpx.ConnectError):
                httpx.get(f"http://127.0.0.1:{deployment['port']}/", timeout=2)
    finally:
        stop_load.set()
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_a_server_that_cannot_start_is_reported_with_its_log(
    tmp_path: Path, local_model_cache: Path, amlc_in, port_factory
) -> None:
    home = tmp_path / "home"
    shutil.copytree(local_model_cache, home / "cache", symlinks=False)
    [model] = (home / "cache").glob("local-model/*/bankmarketing/1/model.joblib")
    model.write_bytes(b"not a model")  # init() will fail in every worker
    port = port_factory()
    result = amlc_in(home, "local", "up", "--detach", "--port", str(port), "--workers", "1")
    assert result.returncode == 4, result.stderr
    assert "Traceback" not in result.stderr.split("last lines of")[0]
    assert "error: the local endpoint exited with code" in result.stderr
    assert "last lines of" in result.stderr and "server.log" in result.stderr
    assert not (home / "state" / "local" / "endpoint.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--deployment", "b"], "deployment name 'b' is not valid"),
        (["--deployment", "green:tf"], "unknown kind 'tf'"),
        (["--deployment", "blue", "--deployment", "green", "--traffic", "blue=80"], "add up to 80"),
        (["--deployment", "blue", "--traffic", "green=100"], "green, which is not a deployment"),
        (["--deployment", "blue,request_timeout_ms=soon"], "must be a number"),
    ],
    ids=["name", "kind", "sum", "unknown", "option"],
)
def test_bad_deployments_are_one_line_exit_2_and_start_nothing(
    tmp_path: Path, amlc_in, port_factory, args: list[str], says: str
) -> None:
    port = port_factory()
    result = amlc_in(tmp_path, "local", "up", "--detach", "--port", str(port), *args)
    assert result.returncode == 2
    assert says in _one_error_line(result)
    assert not (tmp_path / "state" / "local" / "endpoint.json").exists()
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/", timeout=2)
