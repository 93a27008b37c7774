"""Scoring credentials fetched from Azure when first used, and never written anywhere.

Both are :class:`~aml_client.http.credentials.TokenCredential` objects built on its ``fetch``
form (a callable returning ``(secret, expires_at_epoch)``), so the client, batch scoring and the
bench use them like any other token: cached, refreshed before expiry, fetched again after a 401.

- ``azure_key``: the endpoint's primary key from OnlineEndpoints_ListKeys. Keys do not expire, so
  it is asked for once per process, and again only after a 401 (a regenerated key).
- ``aml_token``: OnlineEndpoints_GetToken. Azure says when to refresh (``refreshAfterTimeUtc``)
  and when the token dies (``expiryTimeUtc``); the credential refreshes at the first of the two.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

from aml_client.azure.control import AmlToken, ControlPlane
from aml_client.azure.reference import EndpointRef, ref_from_table
from aml_client.errors import ConfigError
from aml_client.http.credentials import TokenCredential

#: Profile auth kinds whose credential comes from Resource Manager.
AZURE_AUTH_KINDS = ("azure_key", "aml_token")

# TokenCredential replaces a token this long before the expiry its fetch reports; the fetches
# below add it back so the refresh lands on Azure's own refresh time.
_MARGIN_S = float(getattr(TokenCredential, "_REFRESH_MARGIN_S", 300.0))


class EndpointKeySource:
    """``fetch`` for a TokenCredential: the endpoint's primary key via listKeys."""

    def __init__(self, control: ControlPlane, ref: EndpointRef):
        self._control = control
        self._ref = ref

    def __call__(self) -> tuple[str, float]:
        return self._control.list_keys(self._ref).primary, math.inf


class AmlTokenSource:
    """``fetch`` for a TokenCredential: a fresh ``aml_token`` via getToken."""

    def __init__(self, control: ControlPlane, ref: EndpointRef):
        self._control = control
        self._ref = ref

    def __call__(self) -> tuple[str, float]:
        token = self._control.get_token(self._ref)
        return token.token, reported_expiry(token)


def reported_expiry(token: AmlToken) -> float:
    """The expiry to report so that TokenCredential refreshes at ``min(refresh_after, expiry -
    margin)``; 0 (refresh on every use) when Azure gave neither time."""
    times = [t for t in (token.refresh_after, token.expires_at) if t > 0]
    if not times:
        return 0.0
    reported = min(times) + _MARGIN_S
    return min(reported, token.expires_at) if token.expires_at > 0 else reported


def scoring_credential(
    auth: str,
    ref: EndpointRef,
    *,
    control: ControlPlane | None = None,
    clock: Callable[[], float] = time.time,
) -> TokenCredential:
    """The scoring credential for an endpoint whose profile has ``auth`` = azure_key / aml_token."""
    control = control or ControlPlane(arm_url=ref.arm_url)
    if auth == "azure_key":
        return TokenCredential(fetch=EndpointKeySource(control, ref), clock=clock)
    if auth == "aml_token":
        return TokenCredential(fetch=AmlTokenSource(control, ref), clock=clock)
    raise ConfigError(
        f"auth '{auth}' is not fetched from Azure (expected {' or '.join(AZURE_AUTH_KINDS)})"
    )


def profile_credential(auth: str, table: Any, *, profile: str) -> TokenCredential:
    """The credential of an imported profile, from its ``azure`` table."""
    return scoring_credential(auth, ref_from_table(table, profile=profile))
