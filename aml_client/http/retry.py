"""The one retry policy, and the one rule for "the model may have run".

A scoring call is not idempotent: the model may write, bill or log, and a re-sent batch may be
scored twice. So a POST is sent again only when the endpoint cannot have run the model:

* the connection was never made (refused, DNS, connect timeout, no pooled connection), or
* the platform answered instead of the model: **429** (too many requests pending, or a rate
  limit), **503** (load spike: the request was queued and dropped before it reached the
  container; on a managed endpoint a container failure comes back as 424, not 503) or **409**
  (AKS: another operation in progress), or
* **401** with a credential that can fetch a fresh token (once; see ``credentials``).

Everything else is final for a POST: 408 (the endpoint's own request timeout; raise it instead),
500 and 424 (the script failed), 502 and 504 (on Kubernetes endpoints: ``run()`` crashed or timed
out — it ran), a read timeout or a connection lost after the request went out, and any other
status. A GET (swagger, health) is idempotent and is also retried on 408, 500, 502, 504, read
timeouts and lost connections.

Waits follow the Stainless SDKs: the server's ``retry-after-ms`` or ``Retry-After`` (seconds or
an HTTP date) when it is between 0 and 60 s, else ``min(0.5 * 2**n, 8)`` less up to 25 % jitter.
"""

from __future__ import annotations

import email.utils
import random
import time
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "POST_RETRY_STATUSES",
    "RetryPolicy",
    "parse_retry_after",
    "retryable_status",
]

#: Statuses that prove the model did not run: a POST may be sent again.
POST_RETRY_STATUSES = frozenset({409, 429, 503})
#: Statuses worth another GET (idempotent).
GET_RETRY_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504})


@dataclass
class RetryPolicy:
    """How often and how patiently to retry. ``RetryPolicy(max_retries=0)`` turns retries off
    (as a load test must: a retry hides a failure and distorts latency)."""

    max_retries: int = 2
    backoff_base_s: float = 0.5
    backoff_max_s: float = 8.0
    jitter: float = 0.25
    max_retry_after_s: float = 60.0

    def delay_s(self, retry_number: int, retry_after_s: float | None = None) -> float:
        """Seconds to wait before retry ``retry_number`` (0-based): the server's Retry-After
        when it is within 0..max_retry_after_s, else capped exponential backoff minus jitter."""
        if retry_after_s is not None and 0 <= retry_after_s <= self.max_retry_after_s:
            return retry_after_s
        backoff: float = min(self.backoff_base_s * 2.0**retry_number, self.backoff_max_s)
        return backoff * (1 - self.jitter * random.random())


def retryable_status(method: str, status: int) -> bool:
    """May a request that got ``status`` be sent again (see the module docstring)?"""
    if method == "GET":
        return status in GET_RETRY_STATUSES
    return status in POST_RETRY_STATUSES


def parse_retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """``retry-after-ms``, then ``Retry-After`` as seconds or an HTTP date, in seconds."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return float(value) / 1000.0
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))
