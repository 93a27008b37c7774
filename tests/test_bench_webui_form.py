"""The web UI's start form may not re-aim a run: which Host values name the run's own origin."""

from __future__ import annotations

import pytest

from aml_client.bench.load.webui import same_host

BASE = "http://127.0.0.1:5001"


@pytest.mark.parametrize(
    "given",
    ["", "  ", BASE, BASE + "/", BASE + "/score", "HTTP://127.0.0.1:5001", f" {BASE} "],
)
def test_the_runs_own_origin_is_the_same_host(given: str) -> None:
    assert same_host(given, BASE)


@pytest.mark.parametrize(
    "given",
    [
        "http://127.0.0.1:5002",  # another port: another origin
        "https://127.0.0.1:5001",  # another scheme
        "http://localhost:5001",  # another name for the machine is another origin too
        "http://127.0.0.1",
        "http://evil.example:5001",
        "http://127.0.0.1:5001@evil.example",
        "http://127.0.0.1:99999",  # not a port at all
        "127.0.0.1:5001",
    ],
)
def test_anything_else_is_another_host(given: str) -> None:
    assert not same_host(given, BASE)


def test_default_ports_match_their_scheme() -> None:
    assert same_host("https://ep.example", "https://ep.example:443")
    assert not same_host("http://ep.example", "https://ep.example")
