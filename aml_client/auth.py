"""Credentials for scoring endpoints, and masking so a secret is never shown in full.

Azure ML always wants ``Authorization: Bearer <secret>``; the secret is a key, an AML token or
an Entra ID token. A credential object hands out that header and nothing else: its ``repr``
shows at most the first four characters.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Protocol, runtime_checkable


def mask(secret: str | None) -> str:
    """``abcd…`` — enough to tell two keys apart, never enough to use one."""
    if not secret:
        return "(none)"
    return f"{secret[:4]}…"


@runtime_checkable
class Credential(Protocol):
    def auth_headers(self) -> dict[str, str]:
        """Headers to add to each scoring request."""
        ...


class KeyCredential:
    """A primary/secondary endpoint key (never expires)."""

    __slots__ = ("_key",)

    def __init__(self, key: str):
        key = key.strip()
        if not key:
            raise ValueError("empty key")
        self._key = key

    @property
    def secret(self) -> str:
        return self._key

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key}"}

    def __repr__(self) -> str:
        return f"KeyCredential({mask(self._key)})"

    __str__ = __repr__


class TokenCredential:
    """A bearer token, fixed or fetched by a callable that returns ``(token, expires_at_epoch)``.

    Fetched tokens are cached and refreshed five minutes before they expire, instead of on
    every call as ``azure-ai-ml`` does.
    """

    _REFRESH_MARGIN_S = 300.0

    def __init__(
        self,
        token: str | None = None,
        *,
        fetch: Callable[[], tuple[str, float]] | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if token is None and fetch is None:
            raise ValueError("give a token or a fetch callable")
        self._token = token
        self._expires_at = float("inf") if token else 0.0
        self._fetch = fetch
        self._clock = clock  # epoch seconds; injectable so tests need not wait
        self._lock = threading.Lock()

    def _current(self) -> str:
        with self._lock:
            due = self._expires_at - self._REFRESH_MARGIN_S
            if self._fetch is not None and self._clock() >= due:
                self._token, self._expires_at = self._fetch()
            assert self._token is not None
            return self._token

    def invalidate(self) -> None:
        """Forget a cached token so the next request fetches a new one (after a 401)."""
        with self._lock:
            if self._fetch is not None:
                self._expires_at = 0.0

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._current()}"}

    def __repr__(self) -> str:
        return f"TokenCredential({mask(self._token)})"

    __str__ = __repr__


def entra_id_credential(scope: str = "https://ml.azure.com/.default") -> TokenCredential:
    """Entra ID tokens through ``azure-identity`` (``pip install 'amlc[azure]'``)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        from aml_client.errors import ConfigError

        raise ConfigError("Entra ID needs azure-identity: pip install 'amlc[azure]'") from exc
    source = DefaultAzureCredential()

    def fetch() -> tuple[str, float]:
        token = source.get_token(scope)
        return token.token, float(token.expires_on)

    return TokenCredential(fetch=fetch)
