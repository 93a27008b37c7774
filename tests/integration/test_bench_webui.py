"""``amlc bench --web``: the address it prints opens Locust's UI in a real headless Chromium,
which starts a test, shows the HDR tab, stops it and finds the report; no other page, Host or
request without the run's secret can start, stop or reconfigure anything; a busy port is one
line and exit 2. Plain ``locust -f loadtests/locustfile.py`` keeps the Host/Origin checks."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from support.bench import (
    AMLC_BENCH,
    KEY,
    ROOT,
    Server,
    bench_env,
    files_under,
    run_bench,
    start_server,
)
from support.local import free_port
from support.web import CHROMIUM, ON_THE_BROWSER_WORKER, page_elsewhere

pytestmark = pytest.mark.slow
T = TypeVar("T")


def browser(test: T) -> T:
    """Drives a real headless Chromium (skipped without Debian's): the module's one, on the
    process that runs every browser test (the ``chromium`` fixture)."""
    needs = pytest.mark.skipif(not CHROMIUM.exists(), reason="needs /usr/bin/chromium")
    return pytest.mark.browser(ON_THE_BROWSER_WORKER(needs(test)))  # type: ignore[no-any-return]


PRINTED = re.compile(r"(http://127\.0\.0\.1:(\d+))/\?token=([A-Za-z0-9_-]{40,})")


def _wait_for(predicate: Callable[[], T | None], timeout_s: float, what: str) -> T:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (OSError, httpx.TransportError):  # not listening yet
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def _ended(proc: subprocess.Popen[str]) -> bool:
    return proc.poll() is not None


@dataclass
class WebBench:
    """A running ``amlc bench --web`` and what it printed."""

    proc: subprocess.Popen[str]
    lines: list[str] = field(default_factory=list)
    url: str = ""
    base: str = ""
    token: str = ""

    def get(self, path: str) -> Any:
        """GET ``path`` with the secret (as a script would) and decode its JSON."""
        sep = "&" if "?" in path else "?"
        with urllib.request.urlopen(f"{self.base}{path}{sep}token={self.token}", timeout=5) as r:
            return json.load(r)

    @property
    def output(self) -> str:
        return "\n".join(self.lines)


@contextmanager
def web_bench(server: Server, tmp_path: Path, *args: str) -> Iterator[WebBench]:
    proc = subprocess.Popen(
        [*AMLC_BENCH, "--web", "--workers", "1", *args],
        env=bench_env(server),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    bench = WebBench(proc)

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            bench.lines.append(line.rstrip("\n"))

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        found = _wait_for(
            lambda: PRINTED.search(bench.output) or _ended(proc), 180, "the printed address"
        )
        if not isinstance(found, re.Match):  # it ended without serving: say what it printed
            reader.join(timeout=5)
            raise AssertionError(f"exit {proc.poll()} before serving:\n{bench.output}")
        bench.url, bench.base, bench.token = found[0], found[1], found[3]
        yield bench
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        reader.join(timeout=5)


@browser
def test_the_printed_address_opens_the_ui_hdr_tab_and_report_on_stop(
    tmp_path: Path, chromium: Any
) -> None:
    from playwright.sync_api import expect

    server = start_server(tmp_path, "--service-ms", "20", "--key", KEY)
    reports = tmp_path / "reports"
    try:
        with web_bench(server, tmp_path, "--users", "3", "--report-dir", str(reports)) as bench:
            # One line, whole, so a terminal opens it in one click.
            assert any(line.strip() == bench.url for line in bench.lines), bench.output
            try:
                page = chromium.new_page()
                page.goto(bench.url)
                assert page.url == bench.base + "/"  # the secret left the address bar
                # The form is pre-filled from the command line; start with 2 users.
                assert page.input_value("input[name=userCount]") == "3"
                page.fill("input[name=userCount]", "2")
                page.fill("input[name=spawnRate]", "2")
                page.click("button[type=submit]")
                _wait_for(lambda: bench.get("/hdr/json")["requests"] >= 50, 60, "requests")

                page.get_by_role("tab", name="HDR latency").click()
                p50 = page.get_by_role("row").filter(has_text="p50").first
                # The UI refreshes its tables every 2 s: wait for a number.
                expect(p50.locator("td").nth(1)).to_have_text(
                    re.compile(r"^\d+\.\d{3}$"), timeout=10_000
                )
                cells = p50.locator("td").all_inner_texts()
                assert cells[0] == "p50"
                assert float(cells[1]) >= 19.0, cells  # the server takes 20 ms
                # Each statistic once (no "count" and "requests" twice), then the failures.
                stats = [
                    row.locator("td").first.inner_text()
                    for row in page.get_by_role("row").all()
                    if row.locator("td").count()
                ]
                numeric = [s for s in stats if s not in ("failures", "warning")]
                assert len(numeric) == len(set(numeric)) and "samples" in numeric
                assert "count" not in stats and "requests" not in stats
                # The nines chart under the tab's table, refreshed while the tab is open.
                expect(page.locator("#amlc-hdr-chart svg#hdr-tab-spectrum")).to_be_visible(
                    timeout=10_000
                )

                page.get_by_role("button", name="Stop").click()
                snap = _wait_for(
                    lambda: (s := bench.get("/hdr/json"))["reports"] and s, 30, "a report"
                )
                # The standalone page shows the same numbers and the report written.
                page.goto(bench.base + "/hdr")
                assert page.locator("#hdr-table tr[data-stat=p99]").count() == 1
                assert snap["reports"][0] in page.inner_text("#reports")
            finally:
                chromium.close()
        (directory,) = reports.iterdir()
        assert str(directory) == snap["reports"][0]
        summary = json.loads((directory / "summary.json").read_text())
        # Stopping from the UI kills at most one in-flight request per user.
        served = server.count()["total"]
        assert summary["requests"] <= served <= summary["requests"] + 2
        assert summary["requests"] == snap["requests"]
        for path in files_under(directory):
            assert KEY not in path.read_text(encoding="utf-8", errors="replace"), path
    finally:
        server.stop()
    assert KEY not in bench.output
    assert "test stopped — report:" in bench.output


ATTACK_PAGE = """<!doctype html><html><body>
<iframe name="sink"></iframe>
<form id="swarm" method="POST" action="{base}/swarm" target="sink">
  <input name="user_count" value="5"><input name="spawn_rate" value="5">
  <input name="host" value="http://127.0.0.1:9">
</form>
<img id="img" src="{base}/stats/requests">
<script>
window.results = {{}};
const done = (name) => (value) => {{ window.results[name] = String(value); }};
document.getElementById("img").onerror = () => done("img")("error");
document.getElementById("img").onload = () => done("img")("loaded");
document.querySelector("iframe").onload = () => done("form")("answered");
document.getElementById("swarm").submit();
fetch("{base}/swarm", {{method: "POST", mode: "no-cors", credentials: "include",
  body: new URLSearchParams({{user_count: "5", spawn_rate: "5"}})}})
  .then((r) => done("no_cors")(r.type), (e) => done("no_cors")("error " + e));
fetch("{base}/stats/requests", {{credentials: "include"}})
  .then((r) => r.text().then(done("read")), (e) => done("read")("blocked " + e));
</script></body></html>"""


@browser
def test_other_pages_hosts_and_requests_without_the_secret_start_nothing(
    tmp_path: Path, chromium: Any
) -> None:
    """The browser holds the run's cookie (the user opened the printed address), then visits a
    page on another port of 127.0.0.1 — the same site, so the cookie goes along — which posts
    the start form, as any page can. Scripts try a foreign Host and no secret."""
    server = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    try:
        with web_bench(server, tmp_path, "--report-dir", str(tmp_path / "reports")) as bench:
            port = bench.base.rsplit(":", 1)[1]
            own = {"Origin": bench.base}
            with httpx.Client(base_url=bench.base, timeout=5) as client:
                answers = {
                    "foreign host": client.post(
                        f"/swarm?token={bench.token}",
                        data={"user_count": "5", "spawn_rate": "5"},
                        headers={"Host": f"rebind.example:{port}"},
                    ),
                    "no secret": client.post(
                        "/swarm", data={"user_count": "5", "spawn_rate": "5"}, headers=own
                    ),
                    "wrong secret": client.post(
                        "/swarm?token=guess", data={"user_count": "5", "spawn_rate": "5"}
                    ),
                    "cross-origin form": client.post(
                        "/swarm",
                        data={"user_count": "5", "spawn_rate": "5"},
                        headers={
                            "Origin": "http://127.0.0.1:8000",
                            "Cookie": f"amlc_web_{port}={bench.token}",
                        },
                    ),
                    "stop without secret": client.post("/stop", headers=own),
                    "hdr without secret": client.get("/hdr/json"),
                }
            html = ATTACK_PAGE.format(base=bench.base)
            with page_elsewhere(html) as attack:
                try:
                    page = chromium.new_page()
                    page.goto(bench.url)
                    cookies = {c["name"] for c in page.context.cookies()}
                    assert f"amlc_web_{port}" in cookies
                    seen: list[tuple[str, str, int]] = []
                    page.on(
                        "response",
                        lambda r: seen.append((r.request.method, r.url, r.status)),
                    )
                    page.goto(attack)
                    page.wait_for_function("Object.keys(window.results).length === 4")
                    results = page.evaluate("window.results")
                finally:
                    chromium.close()
            time.sleep(1.0)  # a swarm, had one started, spawns its users at once
            stats = bench.get("/stats/requests")
            hdr = bench.get("/hdr/json")
        served = server.count()["total"]
    finally:
        server.stop()
    codes = {name: r.status_code for name, r in answers.items()}
    assert codes == {
        "foreign host": 403,
        "no secret": 401,
        "wrong secret": 401,
        "cross-origin form": 403,
        "stop without secret": 401,
        "hdr without secret": 401,
    }
    assert results["read"].startswith("blocked"), results  # no CORS grant to read the stats
    assert results["img"] == "error" and results["no_cors"] == "opaque", results
    # The form reached the UI and was refused there (its answer may not even be framed).
    assert ("POST", f"{bench.base}/swarm", 403) in seen, seen
    assert stats["state"] == "ready" and stats["user_count"] == 0
    assert hdr["requests"] == 0 and not hdr["running"]
    assert served == 0


def test_a_busy_web_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    server = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    import socket

    try:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            done = run_bench(
                ["--web", "--web-port", str(port)], bench_env(server), tmp_path, timeout_s=60
            )
        served = server.count()["total"]
    finally:
        server.stop()
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.strip().splitlines() == [
        f"error: cannot listen on 127.0.0.1:{port} (Address already in use); "
        "choose another with --web-port"
    ]
    assert served == 0


def test_the_load_process_reports_a_busy_web_port_and_exits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should the port be taken between amlc's check and the load process's start, the load
    process says so (exit 2) instead of waiting for a UI that never comes."""
    import socket

    from aml_client.bench.launch import LoadProcess
    from aml_client.bench.plan import BenchPlan
    from aml_client.bench.protocol import LoadConfig, WebOptions
    from aml_client.bench.target import build_run_target

    server = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    try:
        for name, value in bench_env(server).items():
            monkeypatch.setenv(name, value)
        target = build_run_target(None, None)
        plan = BenchPlan(mode="closed", users=1, spawn_rate=1.0)
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            config = LoadConfig(
                target=target.to_wire(),
                plan=plan,
                report_root=str(tmp_path / "reports"),
                web=WebOptions(host="127.0.0.1", port=port),
            )
            proc = LoadProcess("local", config, cwd=tmp_path, credential=target.credential)
            try:
                events = list(proc.events())
                code = proc.wait(timeout_s=60)
            finally:
                proc.kill()
        served = server.count()["total"]
    finally:
        server.stop()
    errors = [e for e in events if e["type"] == "error"]
    assert errors == [
        {
            "type": "error",
            "message": f"cannot listen on 127.0.0.1:{port} (Address already in use); "
            "choose another with --web-port",
            "exit_code": 2,
        }
    ]
    assert code == 2
    assert not any(e["type"] == "web" for e in events)
    assert served == 0


def test_plain_locust_web_ui_keeps_the_host_and_origin_checks(tmp_path: Path) -> None:
    """``locust -f loadtests/locustfile.py`` (the user's own Locust run): no secret, but another
    origin or Host cannot drive it, while its own page can."""
    server = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    locust = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(ROOT / "loadtests" / "locustfile.py"),
            "--web-host",
            "127.0.0.1",
            "--web-port",
            str(port),
        ],
        env=bench_env(server, AMLC_REPORT_DIR=str(tmp_path / "reports")),
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    form = {"user_count": "1", "spawn_rate": "1"}
    try:
        with httpx.Client(base_url=base, timeout=5) as client:
            _wait_for(lambda: client.get("/").status_code == 200, 60, "plain Locust's web UI")
            foreign_origin = client.post("/swarm", data=form, headers={"Origin": "http://x.test"})
            foreign_host = client.post("/swarm", data=form, headers={"Host": f"x.test:{port}"})
            cross_site = client.post("/swarm", data=form, headers={"Sec-Fetch-Site": "same-site"})
            time.sleep(1.0)
            before = server.count()["total"]
            own = client.post("/swarm", data=form, headers={"Origin": base})
            _wait_for(lambda: server.count()["total"] > 0, 30, "the load the UI started")
            stopped = client.post("/stop", headers={"Origin": base})
    finally:
        locust.send_signal(signal.SIGINT)
        try:
            _out, err = locust.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            locust.kill()
            _out, err = locust.communicate()
        server.stop()
    assert foreign_origin.status_code == foreign_host.status_code == 403
    assert cross_site.status_code == 403
    assert before == 0
    assert own.status_code == 200 and own.json()["success"] is True
    assert stopped.status_code == 200
    assert KEY not in err


def test_the_start_form_refuses_another_host_instead_of_claiming_it(tmp_path: Path) -> None:
    """The form's Host field names another endpoint: the answer says nothing was started and
    why (Locust alone answered "Swarming started" and went on sending to the old host); the
    other endpoint gets nothing (and so never the key). The run's own host starts the run."""
    server = start_server(tmp_path, "--service-ms", "5", "--key", KEY)
    other = start_server(tmp_path, "--service-ms", "5")
    try:
        with web_bench(server, tmp_path, "--report-dir", str(tmp_path / "reports")) as bench:
            own = {"Origin": bench.base}
            form = {"user_count": "2", "spawn_rate": "2"}
            base = server.uri.removesuffix("/score")
            with httpx.Client(base_url=bench.base, timeout=5) as client:
                moved = client.post(
                    f"/swarm?token={bench.token}",
                    data={**form, "host": f"http://127.0.0.1:{other.port}"},
                    headers=own,
                )
                time.sleep(1.0)  # a swarm, had one started, spawns its users at once
                idle = bench.get("/stats/requests")
                same = client.post(
                    f"/swarm?token={bench.token}", data={**form, "host": base + "/"}, headers=own
                )
                _wait_for(lambda: server.count()["total"] > 0, 30, "requests to the run's host")
        served_elsewhere = other.count()["total"]
    finally:
        server.stop()
        other.stop()
    assert moved.status_code == 400, moved.text
    answer = moved.json()
    assert answer["success"] is False and "Swarming started" not in answer["message"]
    assert "cannot be re-aimed" in answer["message"] and answer["host"] == base
    assert idle["state"] == "ready" and idle["user_count"] == 0
    assert same.status_code == 200 and same.json()["success"] is True
    assert served_elsewhere == 0
