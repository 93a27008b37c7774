"""Seconds from the environment: one rule for every such variable (the token command's
timeout refuses what the local front's deadline warns about and replaces)."""

from __future__ import annotations

import logging

import pytest

from aml_client.environment import seconds_from_env
from aml_client.errors import ConfigError
from aml_client.local._front import CLIENT_TIMEOUT_S, ENV_CLIENT_TIMEOUT, client_timeout_s


def test_seconds_are_read_within_their_bounds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("AMLC_TEST_SECONDS", raising=False)
    assert seconds_from_env("AMLC_TEST_SECONDS", maximum=10) is None
    for blank in ("", "  "):
        monkeypatch.setenv("AMLC_TEST_SECONDS", blank)
        assert seconds_from_env("AMLC_TEST_SECONDS", maximum=10) is None
    monkeypatch.setenv("AMLC_TEST_SECONDS", " 2.5 ")
    assert seconds_from_env("AMLC_TEST_SECONDS", maximum=10) == 2.5
    monkeypatch.setenv("AMLC_TEST_SECONDS", "10")
    assert seconds_from_env("AMLC_TEST_SECONDS", maximum=10) == 10.0


@pytest.mark.parametrize("bad", ["0", "-1", "10.5", "nan", "inf", "soon"])
def test_other_text_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, bad: str) -> None:
    monkeypatch.setenv("AMLC_TEST_SECONDS", bad)
    with pytest.raises(ConfigError, match=rf"^AMLC_TEST_SECONDS='{bad}': expected seconds "
                       "above 0 and at most 10$"):
        seconds_from_env("AMLC_TEST_SECONDS", maximum=10)


def test_the_local_front_warns_and_keeps_its_default(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(ENV_CLIENT_TIMEOUT, "7")
    assert client_timeout_s() == 7.0
    monkeypatch.setenv(ENV_CLIENT_TIMEOUT, "7200")
    with caplog.at_level(logging.WARNING):
        assert client_timeout_s() == CLIENT_TIMEOUT_S
    assert f"{ENV_CLIENT_TIMEOUT}='7200': expected seconds above 0 and at most 3600" in caplog.text
    monkeypatch.delenv(ENV_CLIENT_TIMEOUT)
    assert client_timeout_s() == CLIENT_TIMEOUT_S
