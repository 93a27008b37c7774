"""The bench's credential feeder (aml_client.bench.auth): a credential that cannot be had is
asked again after a growing pause, reported once, and never fetched in a loop."""

from __future__ import annotations

import io
import json
import threading
import time

import pytest

from aml_client.bench import auth
from aml_client.bench.auth import AuthFeeder
from aml_client.errors import CredentialError
from aml_client.http.credentials import TokenCredential


class _Fetch:
    """A token source that fails ``failures`` times, then hands out tokens valid for an hour."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0
        self.lock = threading.Lock()

    def __call__(self) -> tuple[str, float]:
        with self.lock:
            self.calls += 1
            if self.calls <= self.failures:
                raise CredentialError("token command `get-token` printed a token that expired")
            return f"tok-{self.calls}", time.time() + 3600


def test_401s_while_no_credential_comes_do_not_run_the_command_again() -> None:
    fetch = _Fetch(failures=1000)
    problems: list[str] = []
    feeder = AuthFeeder(TokenCredential(fetch=fetch), io.StringIO(), on_error=problems.append)
    feeder.start()
    try:
        for _ in range(40):  # load processes reporting 401s, as fast as they may
            feeder.refused()
            time.sleep(0.02)
    finally:
        feeder.stop()
    # The first pause is RETRY_FIRST_S (2 s): one attempt, two if this machine was slow.
    assert 1 <= fetch.calls <= 2
    assert problems == [
        "could not refresh the credential: "
        "token command `get-token` printed a token that expired"
    ]


def test_the_feeder_tries_again_and_pushes_once_a_token_comes(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(auth, "RETRY_FIRST_S", 0.05)
    fetch = _Fetch(failures=2)
    stream = io.StringIO()
    feeder = AuthFeeder(TokenCredential(fetch=fetch), stream)
    feeder.start()
    try:
        for _ in range(200):
            if stream.getvalue():
                break
            time.sleep(0.05)
    finally:
        feeder.stop()
    assert json.loads(stream.getvalue().splitlines()[0]) == {
        "type": "auth",
        "value": "Bearer tok-3",
    }
    assert fetch.calls == 3
