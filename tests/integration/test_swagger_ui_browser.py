"""Swagger UI in a real headless Chromium: the page lists /score, and "Try it out" → Execute
returns predictions from the local endpoint through the proxy, without the key in the page."""

from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from support.local import free_port
from support.web import CHROMIUM, ON_THE_BROWSER_WORKER

pytestmark = [
    pytest.mark.browser,
    ON_THE_BROWSER_WORKER,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
]


@pytest.fixture(params=["2", "3.1"], ids=["swagger2", "openapi31"])
def served(
    request: pytest.FixtureRequest, local_endpoint: Any
) -> Iterator[tuple[str, str, str]]:
    """``amlc swagger serve`` as a real process against the local endpoint; yields (url, the
    printed address with its secret, log)."""
    port = free_port()
    args = ["swagger", "serve", "--endpoint", "local", "--port", str(port)]
    if request.param != "2":
        args += ["--openapi", request.param]
    log = Path(local_endpoint.home) / f"serve-{port}.log"
    with log.open("w") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "aml_client", *args],
            env=local_endpoint.env(),
            stdin=subprocess.DEVNULL,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 30
        while True:
            printed = re.search(rf"{re.escape(url)}\?token=[\w-]+", log.read_text())
            try:
                if printed and httpx.get(printed.group(0), timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert process.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "amlc swagger serve did not come up"
            time.sleep(0.1)
        yield url, printed.group(0), str(log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def test_try_it_out_returns_predictions(
    served: tuple[str, str, str], local_endpoint: Any, tmp_path: Path, chromium: Any
) -> None:
    url, address, log = served
    key = local_endpoint.primary_key
    try:
        page = chromium.new_page()
        page.set_viewport_size({"width": 1280, "height": 1400})
        seen_requests: list[str] = []
        page.on("request", lambda r: seen_requests.append(f"{r.method} {r.url}"))
        errors: list[str] = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(address)  # the secret becomes a cookie, and leaves the address bar
        assert page.url == url
        score = page.locator(".opblock-post", has_text="/score")
        score.wait_for(timeout=20_000)
        assert "/score" in page.locator(".opblock-summary-path").all_inner_texts()

        score.locator(".opblock-summary").click()
        score.locator("button.try-out__btn").click()
        body = json.loads(score.locator("textarea.body-param__text").input_value())
        assert "Inputs" in body and body["Inputs"]["data"]  # a valid example, prefilled
        score.locator("button.execute").click()

        live = score.locator(".live-responses-table tbody tr.response")
        live.wait_for(timeout=30_000)
        assert live.locator(".response-col_status").inner_text().strip() == "200"
        answer = json.loads(live.locator(".response-col_description pre").first.inner_text())
        assert len(answer["Results"]) == len(body["Inputs"]["data"])
        assert set(answer["Results"]) <= {"yes", "no"}
        request_url = score.locator(".request-url pre").inner_text()
        assert request_url == f"{url}proxy/score"

        live.scroll_into_view_if_needed()
        page.screenshot(path=str(tmp_path / "swagger-ui.png"))
        html = page.content()
        storage = page.evaluate("() => JSON.stringify({...localStorage, ...sessionStorage})")
    finally:
        chromium.close()
    assert errors == []  # no script error, nothing blocked by the page's content policy
    assert key not in html and key not in storage
    assert (tmp_path / "swagger-ui.png").stat().st_size > 10_000
    # everything the page fetched came from the local server: nothing from the internet
    assert seen_requests and all(r.split(" ", 1)[1].startswith(url) for r in seen_requests), (
        seen_requests
    )
    text = Path(log).read_text()
    assert "POST /proxy/score" in text and key not in text and key[:8] not in text
    if os.environ.get("AMLC_KEEP_SCREENSHOT"):
        Path(os.environ["AMLC_KEEP_SCREENSHOT"]).write_bytes(
            (tmp_path / "swagger-ui.png").read_bytes()
        )


ATTACK_PAGE = """<!doctype html><html><body>
<script>window.results = {{}};</script>
<!-- handlers in the tag: a quick refusal may fail the image before a later script runs -->
<img id="img" src="{proxy}?Inputs=%7B%22data%22%3A%5B%5D%7D"
  onerror="window.results.img = 'error'" onload="window.results.img = 'loaded'">
<iframe name="sink"></iframe>
<form id="form" method="POST" action="{proxy}" enctype="text/plain" target="sink">
  <input name='{{"Inputs": {{"data": [], "x": "' value='"}}}}'>
</form>
<script>
const done = (name) => (value) => {{ window.results[name] = String(value); }};
document.querySelector("iframe").onload = () => done("form")("answered");
document.getElementById("form").submit();
fetch("{proxy}", {{method: "POST", body: "{{}}",
  headers: {{"Content-Type": "application/json", "{header}": "{value}"}}}})
  .then((r) => done("custom_header")(r.status), (e) => done("custom_header")("blocked " + e));
fetch("{proxy}", {{method: "POST", mode: "no-cors", body: "{{}}", credentials: "include",
  headers: {{"Content-Type": "text/plain"}}}})
  .then((r) => done("no_cors")(r.type), (e) => done("no_cors")("error " + e));
</script></body></html>"""


def test_another_local_page_cannot_use_the_proxy(
    caplog: pytest.LogCaptureFixture, chromium: Any
) -> None:
    """A page on another port of 127.0.0.1 tries everything a page can: an image (GET with the
    request in the query), a form, a fetch with the custom header (preflight), a no-cors fetch,
    in a browser that opened the Swagger UI before (so it holds its cookie). The endpoint
    receives nothing; then the served page itself still gets through."""
    from support.web import page_elsewhere, recording_upstream

    from aml_client import KeyCredential
    from aml_client.config import Target
    from aml_client.swagger.fetch import read_document
    from aml_client.swagger.ui import PAGE_HEADER, PAGE_HEADER_VALUE, SwaggerUIServer

    corpus = Path(__file__).resolve().parents[1] / "fixtures" / "corpus" / "swagger"
    doc = read_document(corpus / "005-Aduzona.json")
    with recording_upstream() as upstream:
        target = Target(
            name="test",
            scoring_uri=f"{upstream.url}/api/v1/service/bank/score",
            swagger_uri=None,
            credential=KeyCredential("sEcReT-browser-key-0123456789abcdef"),
            source="profile",
        )
        with SwaggerUIServer(doc, target=target, port=0) as ui:
            proxy = f"{ui.url}proxy/score"
            html = ATTACK_PAGE.format(proxy=proxy, header=PAGE_HEADER, value=PAGE_HEADER_VALUE)
            with page_elsewhere(html) as attack_url:
                try:
                    page = chromium.new_page()
                    page.goto(ui.address)  # the user opened the UI: the cookie is set
                    page.wait_for_function("window.ui !== undefined")
                    caplog.set_level(logging.INFO, logger="aml_client.swagger.ui")
                    page.goto(attack_url)
                    page.wait_for_function("Object.keys(window.results).length === 4")
                    results = page.evaluate("window.results")
                    # What the proxy answered, from its request log: (method, status).
                    attacked = sorted(
                        (m[1], int(m[2]))
                        for r in caplog.records
                        if (
                            m := re.search(
                                r'"(\w+) /proxy/score\S* HTTP/[\d.]+" (\d+)', r.getMessage()
                            )
                        )
                    )

                    # The control: the page served here, with its interceptor, gets through.
                    page.goto(ui.url)
                    page.wait_for_function("window.ui !== undefined")
                    status = page.evaluate(
                        """async ([url, header, value]) => (await fetch(url, {method: "POST",
                           headers: {"Content-Type": "application/json", [header]: value},
                           body: JSON.stringify({Inputs: {data: []}})})).status""",
                        [proxy, PAGE_HEADER, PAGE_HEADER_VALUE],
                    )
                finally:
                    chromium.close()
        seen = list(upstream.seen)
    assert results["custom_header"].startswith("blocked TypeError"), results
    assert results["img"] == "error" and results["form"] == "answered", results
    assert results["no_cors"] == "opaque", results
    # The image, the form and the no-cors fetch reached the proxy and were refused there; the
    # preflight of the fetch with the custom header too.
    assert attacked == [("GET", 403), ("OPTIONS", 403), ("POST", 403), ("POST", 403)], attacked
    assert status == 200
    assert [(s["method"], s["path"]) for s in seen] == [("POST", "/api/v1/service/bank/score")]
