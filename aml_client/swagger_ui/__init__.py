"""A local, offline Swagger UI for an endpoint, with a proxy that keeps the key off the page."""

from aml_client.swagger_ui.server import (
    PROXY_PREFIX,
    SwaggerUIServer,
    assets_dir,
    rewrite_document,
)

__all__ = ["PROXY_PREFIX", "SwaggerUIServer", "assets_dir", "rewrite_document"]
