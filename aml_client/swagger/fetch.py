"""Where a swagger comes from: a file, or the endpoint itself with its credential.

The endpoint's copy travels through the HTTP layer like every other request (the credential
kept to the scoring URI's origin, redirects within that origin only, the body size-capped) and is
only ever parsed as JSON: a body is never taken for a path.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aml_client.config import swagger_uri_for
from aml_client.errors import (
    AuthenticationError,
    EndpointError,
    NotFoundError,
    SwaggerNotFoundError,
    swagger_fetch_error,
)
from aml_client.schema.reader import parse_document, read_swagger

if TYPE_CHECKING:
    from aml_client.config import Target

__all__ = [
    "FetchedSwagger",
    "fetch_swagger",
    "load_document",
    "read_document",
]


@dataclass
class FetchedSwagger:
    """A swagger as the endpoint served it: the exact text (to save) and the parsed document."""

    url: str
    text: str
    document: dict[str, Any]


def read_document(source: str | Path, *, text: str | bytes | None = None) -> dict[str, Any]:
    """A swagger file (or ``text`` received from ``source``) as a dict; tolerates a BOM and
    CRLF, names the line and column of bad JSON, and applies the reader's size limits."""
    if text is not None:
        return parse_document(text, source=str(source))
    doc, _name = read_swagger(Path(source))
    return doc


def fetch_swagger(
    target: Target, *, openapi: str | None = None, timeout_s: float = 30.0
) -> FetchedSwagger:
    """GET the endpoint's swagger (``?version=3`` etc. when ``openapi`` is given).

    Through the HTTP layer: the credential goes only to the scoring URI's origin (a swagger URI
    configured on another host or port gets none), redirects are followed within one origin
    only, and the body is read as JSON only, size-capped.
    """
    from aml_client.http.session import Session
    from aml_client.schema.reader import MAX_DOCUMENT_BYTES

    url = target.swagger_uri or swagger_uri_for(target.scoring_uri)
    params = {"version": openapi} if openapi else None
    session = Session(
        target.scoring_uri,
        target.credential,
        timeout_s=timeout_s,
        verify=target.verify,
        headers={"Accept": "application/json"},
    )
    try:
        reply = session.request("GET", url, params=params, max_bytes=MAX_DOCUMENT_BYTES)
    except NotFoundError as exc:
        if not openapi:
            raise swagger_fetch_error(exc, url) from None
        raise SwaggerNotFoundError(
            f"no swagger at {url} (HTTP 404: version {openapi} is not offered)",
            status_code=404,
            request_id=exc.request_id,
        ) from None
    except AuthenticationError as exc:
        raise AuthenticationError(
            f"{url} refused the credential (HTTP {exc.status_code})",
            status_code=exc.status_code,
            request_id=exc.request_id,
        ) from None
    except EndpointError as exc:
        raise swagger_fetch_error(exc, url) from None
    finally:
        session.close()
    text = reply.content.decode("utf-8", "replace")
    return FetchedSwagger(
        url=reply.url, text=text, document=parse_document(reply.content, source=reply.url)
    )


def load_document(
    file: str | Path | None = None, *, endpoint: str | None = None, openapi: str | None = None
) -> tuple[dict[str, Any], str]:
    """The swagger document and a label for messages: from ``file`` when given, else fetched
    from the endpoint that :func:`aml_client.config.resolve_target` picks."""
    if file is not None:
        return read_document(file), str(file)
    from aml_client.config import resolve_target

    fetched = fetch_swagger(resolve_target(endpoint), openapi=openapi)
    return fetched.document, fetched.url
