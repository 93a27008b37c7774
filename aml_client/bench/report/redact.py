"""Keep secrets out of reports: anything credential-like in a run's configuration is scrubbed.

Defensive by design: :class:`~aml_client.bench.target.RunTarget` never puts a key in the
configuration it describes, and reports scrub it anyway, whatever a caller passed in.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

__all__ = ["redact"]

_REDACTED = "[redacted]"
_SECRET_WORDS = {
    "key", "keys", "apikey", "token", "tokens", "secret", "secrets", "password", "passwd",
    "authorization", "credential", "credentials", "cookie", "cookies", "bearer", "signature",
    "sig", "sas",
}
#: Query parameters that carry secrets in URLs (Azure Functions' ``?code=``, SAS ``sig``).
_SECRET_QUERY = _SECRET_WORDS | {"code"}
_SECRET_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S+", re.IGNORECASE)
#: What ``auth.mask`` makes of a secret (``Bearer abcd…``): safe to keep, it tells keys apart.
_MASKED_VALUE = re.compile(r"^\s*(bearer|basic)\s+\S{0,4}…\s*$", re.IGNORECASE)


# -- scrubbing ---------------------------------------------------------------------------------
def _words(name: str) -> set[str]:
    spaced = re.sub(r"([a-z0-9])([A-Z])", r"\1 \2", name)
    return {w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w}


def _scrub_url(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    netloc = parts.netloc
    if "@" in netloc:  # user:password@host
        netloc = f"{_REDACTED}@{netloc.rsplit('@', 1)[1]}"
    query = parts.query
    if query:
        pairs = parse_qsl(query, keep_blank_values=True)
        query = urlencode(
            [(k, _REDACTED if _words(k) & _SECRET_QUERY else v) for k, v in pairs], safe="[]"
        )
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def redact(value: Any) -> Any:
    """A copy with anything credential-like replaced by ``[redacted]``.

    Defensive: a field is scrubbed when its name contains a word such as key, token, secret,
    password, authorization or cookie; a string value is scrubbed when it looks like an
    ``Authorization`` header; URLs lose passwords and secret query parameters.
    """
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            name = str(k)
            if _words(name) & _SECRET_WORDS and v not in (None, "", [], {}):
                out[name] = _REDACTED
            else:
                out[name] = redact(v)
        return out
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    if isinstance(value, str):
        if _SECRET_VALUE.match(value) and not _MASKED_VALUE.match(value):
            return _REDACTED
        if "://" in value:
            return _scrub_url(value)
        return value
    if value is None or isinstance(value, bool | int | float):
        return value
    return redact(str(value))
