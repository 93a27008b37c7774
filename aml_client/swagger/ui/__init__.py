"""A local, offline Swagger UI for an endpoint, with a proxy that keeps the key off the page."""

from aml_client.swagger.ui.server import (
    PAGE_HEADER,
    PAGE_HEADER_VALUE,
    PROXY_PREFIX,
    SwaggerUIServer,
    assets_dir,
    rewrite_document,
)

__all__ = [
    "PAGE_HEADER",
    "PAGE_HEADER_VALUE",
    "PROXY_PREFIX",
    "SwaggerUIServer",
    "assets_dir",
    "rewrite_document",
]
