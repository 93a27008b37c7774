"""``amlc bench --web`` in a real headless Chromium: start a test, read the HDR tab, stop it,
and find the report files written."""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from bench_support import AMLC_BENCH, KEY, bench_env, files_under, start_server

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.slow,
    pytest.mark.skipif(
        not CHROMIUM.exists(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> dict:
    with urllib.request.urlopen(url, timeout=5) as r:
        return json.load(r)


def _wait_for(predicate, timeout_s: float, what: str):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except OSError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}")


def test_web_ui_hdr_tab_and_report_on_stop(tmp_path: Path) -> None:
    from playwright.sync_api import expect, sync_playwright

    server = start_server(tmp_path, "--service-ms", "20", "--key", KEY)
    port = _free_port()
    reports = tmp_path / "reports"
    amlc = subprocess.Popen(
        [
            *AMLC_BENCH,
            "--web",
            "--web-port",
            str(port),
            "--workers",
            "1",
            "--users",
            "3",
            "--report-dir",
            str(reports),
        ],
        env=bench_env(server),
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_for(lambda: _get_json(f"{base}/hdr/json"), 30, "the web UI")
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
            try:
                page = browser.new_page()
                page.goto(base + "/")
                # The form is pre-filled from the command line; start with 2 users.
                assert page.input_value("input[name=userCount]") == "3"
                page.fill("input[name=userCount]", "2")
                page.fill("input[name=spawnRate]", "2")
                page.click("button[type=submit]")
                _wait_for(lambda: _get_json(f"{base}/hdr/json")["requests"] >= 50, 30, "requests")

                page.get_by_role("tab", name="HDR latency").click()
                p50 = page.get_by_role("row").filter(has_text="p50").first
                # The UI refreshes its tables every 2 s: wait for a number.
                expect(p50.locator("td").nth(1)).to_have_text(
                    re.compile(r"^\d+\.\d{3}$"), timeout=10_000
                )
                cells = p50.locator("td").all_inner_texts()
                assert cells[0] == "p50"
                assert 20.0 <= float(cells[1]) <= 60.0, cells  # 20 ms service, busy machine
                # Each statistic once (no "count" and "requests" twice), then the failures.
                stats = [row.locator("td").first.inner_text()
                         for row in page.get_by_role("row").all()
                         if row.locator("td").count()]
                numeric = [s for s in stats if s not in ("failures", "warning")]
                assert len(numeric) == len(set(numeric)) and "samples" in numeric
                assert "count" not in stats and "requests" not in stats
                # The nines chart under the tab's table, refreshed while the tab is open.
                expect(page.locator("#amlc-hdr-chart svg#hdr-tab-spectrum")).to_be_visible(
                    timeout=10_000
                )

                page.get_by_role("button", name="Stop").click()
                snap = _wait_for(
                    lambda: (s := _get_json(f"{base}/hdr/json"))["reports"] and s, 30, "a report"
                )
                # The standalone page shows the same numbers and the report written.
                page.goto(base + "/hdr")
                assert page.locator("#hdr-table tr[data-stat=p99]").count() == 1
                assert snap["reports"][0] in page.inner_text("#reports")
            finally:
                browser.close()
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
        amlc.send_signal(signal.SIGINT)
        try:
            out, err = amlc.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            amlc.kill()
            out, err = amlc.communicate()
        server.stop()
    assert KEY not in out + err
    assert "test stopped — report:" in err
