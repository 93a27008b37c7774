"""Credentials as ``httpx.Auth`` flows: a key, a fixed token, or tokens fetched on demand.

Azure ML always wants ``Authorization: Bearer <secret>``. A credential adds that header to the
requests it is given and, for fetched tokens, refreshes the token before it expires and once
more after a 401 (a token may expire between fetch and use). Which requests it is given is
decided elsewhere (:class:`aml_client.http.origin.OriginAuth`): only those to the scoring
URI's origin.

Fetched tokens are cached per credential and shared by threads and event loops alike: a lock
guards the cache, and async callers fetch in a worker thread so a slow ``az`` never blocks the
loop. ``repr`` shows at most the first four characters of a secret.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable, Generator

import httpx

from aml_client.auth import mask

__all__ = [
    "Credential",
    "KeyCredential",
    "TokenCredential",
    "credential_for",
    "entra_id_credential",
    "token_command_credential",
]

#: A token is refreshed this long before it expires (or halfway through a shorter life).
REFRESH_MARGIN_S = 300.0

Fetch = Callable[[], tuple[str, float]]


class Credential(httpx.Auth):
    """What every credential does: hand out the current bearer secret."""

    #: Whether a 401 may be cured by fetching a fresh secret.
    refreshable = False

    def secret(self) -> str:
        """The current secret (fetching or refreshing it when due). Blocks."""
        raise NotImplementedError

    def needs_fetch(self) -> bool:
        """True when :meth:`secret` would have to fetch (so async callers use a thread)."""
        return False

    def invalidate(self, secret: str) -> None:
        """``secret`` was refused (401): forget it, unless a newer one replaced it already."""

    def expires_at(self) -> float:
        """Epoch seconds when the current secret expires (``inf`` for a key)."""
        return float("inf")

    def refresh_due_at(self) -> float:
        """Epoch seconds when the secret should be replaced (``inf``: never)."""
        return float("inf")

    def auth_headers(self) -> dict[str, str]:
        """``{"Authorization": "Bearer …"}`` for code that cannot use an httpx flow (Locust)."""
        return {"Authorization": f"Bearer {self.secret()}"}

    # -- httpx.Auth --------------------------------------------------------------------------

    def sync_auth_flow(
        self, request: httpx.Request
    ) -> Generator[httpx.Request, httpx.Response, None]:
        secret = self.secret()
        request.headers["Authorization"] = f"Bearer {secret}"
        response = yield request
        if response.status_code == 401 and self.refreshable:
            self.invalidate(secret)
            request.headers["Authorization"] = f"Bearer {self.secret()}"
            yield request

    async def async_auth_flow(
        self, request: httpx.Request
    ) -> AsyncGenerator[httpx.Request, httpx.Response]:
        secret = await self.secret_async()
        request.headers["Authorization"] = f"Bearer {secret}"
        response = yield request
        if response.status_code == 401 and self.refreshable:
            self.invalidate(secret)
            request.headers["Authorization"] = f"Bearer {await self.secret_async()}"
            yield request

    async def secret_async(self) -> str:
        """:meth:`secret` for asyncio: a fetch runs in a worker thread."""
        if self.needs_fetch():
            return await asyncio.to_thread(self.secret)
        return self.secret()


class KeyCredential(Credential):
    """A primary/secondary endpoint key (never expires)."""

    def __init__(self, key: str):
        key = key.strip()
        if not key:
            raise ValueError("empty key")
        self._key = key

    def secret(self) -> str:
        return self._key

    def __repr__(self) -> str:
        return f"KeyCredential({mask(self._key)})"

    __str__ = __repr__


class TokenCredential(Credential):
    """A bearer token, fixed or fetched by a callable that returns ``(token, expires_at_epoch)``.

    A fetched token is cached and replaced ``REFRESH_MARGIN_S`` before it expires (halfway
    through its life when that is shorter), instead of on every call as ``azure-ai-ml`` does.
    The Azure control plane's ``aml_token`` plugs in here through ``fetch``.
    """

    def __init__(
        self,
        token: str | None = None,
        *,
        fetch: Fetch | None = None,
        clock: Callable[[], float] = time.time,
    ):
        if token is None and fetch is None:
            raise ValueError("give a token or a fetch callable")
        self._token = token.strip() if token else None
        self._fetch = fetch
        self._clock = clock
        self._expires_at = float("inf") if self._token else 0.0
        self._refresh_at = self._expires_at
        self._lock = threading.Lock()
        self.refreshable = fetch is not None

    def needs_fetch(self) -> bool:
        return self._fetch is not None and self._clock() >= self._refresh_at

    def secret(self) -> str:
        if not self.needs_fetch():
            token = self._token
            if token is not None:
                return token
        with self._lock:
            if self._token is None or self.needs_fetch():
                self._refetch()
            assert self._token is not None
            return self._token

    def _refetch(self) -> None:
        assert self._fetch is not None
        token, expires_at = self._fetch()
        now = self._clock()
        life = max(0.0, float(expires_at) - now)
        self._token = token
        self._expires_at = float(expires_at)
        self._refresh_at = float(expires_at) - min(REFRESH_MARGIN_S, life / 2)

    def invalidate(self, secret: str) -> None:
        with self._lock:
            if self._fetch is not None and self._token == secret:
                self._refresh_at = 0.0

    def expires_at(self) -> float:
        return self._expires_at

    def refresh_due_at(self) -> float:
        return self._refresh_at if self._fetch is not None else float("inf")

    def __repr__(self) -> str:
        if self._token is None:
            return f"TokenCredential(fetch={self._fetch!r})"
        return f"TokenCredential({mask(self._token)})"

    __str__ = __repr__


def token_command_credential(command: str, *, timeout_s: float | None = None) -> TokenCredential:
    """Tokens printed by ``command`` (``AMLC_TOKEN_COMMAND``; see ``token_command``), which
    may run ``timeout_s`` (default 60 s)."""
    from aml_client.http.token_command import TokenCommand

    return TokenCredential(fetch=TokenCommand(command, timeout_s=timeout_s))


def entra_id_credential(scope: str = "https://ml.azure.com/.default") -> TokenCredential:
    """Entra ID tokens through ``azure-identity`` (``pip install 'amlc[azure]'``)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:  # pragma: no cover - depends on the optional extra
        from aml_client.errors import ConfigError

        raise ConfigError("Entra ID needs azure-identity: pip install 'amlc[azure]'") from exc
    source = DefaultAzureCredential()

    def fetch() -> tuple[str, float]:
        from aml_client.errors import CredentialError

        try:
            token = source.get_token(scope)
        except Exception as exc:  # azure-identity raises its own ClientAuthenticationError
            first = str(exc).strip().splitlines()[0][:200] if str(exc).strip() else ""
            raise CredentialError(f"Entra ID: no token for {scope}: {first}") from None
        return token.token, float(token.expires_on)

    return TokenCredential(fetch=fetch)


def credential_for(
    auth: str,
    *,
    secret: str | None = None,
    token_command: str | None = None,
    token_command_timeout: float | None = None,
) -> Credential | None:
    """The credential for a profile's or the environment's settings — the one place they are
    built: ``key`` / ``token`` (a fixed secret, or ``token_command``), ``entra``, ``none``."""
    if auth == "none":
        return None
    if auth == "entra":
        return entra_id_credential()
    if auth == "token" and token_command and not secret:
        return token_command_credential(token_command, timeout_s=token_command_timeout)
    if not secret:
        raise ValueError(f"no {auth} given")
    return KeyCredential(secret) if auth == "key" else TokenCredential(secret)
