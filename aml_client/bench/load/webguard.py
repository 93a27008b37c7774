"""Who may drive Locust's web UI: :mod:`aml_client.webguard` in front of every request it gets.

Locust's web UI starts, stops and reconfigures load tests that carry the user's credential, yet
Locust answers any Host, lets flask-cors grant every origin, and accepts ``POST /swarm`` from
any page. :func:`protect` wraps the UI's Flask app in a :class:`~aml_client.webguard.WebGuard`
(WSGI middleware), so it sees every request, Locust's routes, its assets and the HDR tab alike,
and refuses a foreign ``Host``, ``Origin`` or ``Sec-Fetch-Site`` and, with the per-run secret of
``amlc bench --web``, a request without it, before Locust runs anything. Locust's own
``--web-login`` is not used for the secret: it is a username/password or OAuth page that each
locustfile must wire up, not a link that opens the UI in one click.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from aml_client.webguard import (
    ENV_ALLOWED_HOSTS,
    TOKEN_HEADER,
    TOKEN_PARAM,
    WebGuard,
    local_hosts,
    new_token,
)

if TYPE_CHECKING:
    from locust.web import WebUI

__all__ = [
    "ENV_ALLOWED_HOSTS",
    "TOKEN_HEADER",
    "TOKEN_PARAM",
    "WebGuard",
    "local_hosts",
    "new_token",
    "protect",
]


def protect(web_ui: WebUI, *, token: str | None = None) -> WebGuard:
    """Put a :class:`WebGuard` in front of a Locust web UI (before or after it starts).

    It answers the names of this machine on the UI's port, the address it is bound to, and
    those in ``AMLC_WEB_ALLOWED_HOSTS``. With ``token``, every request needs the secret.
    """
    app = web_ui.app
    if app is None:
        raise RuntimeError("the web UI has no application to protect")
    scheme = "https" if web_ui.tls_cert and web_ui.tls_key else "http"
    extra = os.environ.get(ENV_ALLOWED_HOSTS, "").split(",")
    hosts = local_hosts(int(web_ui.port), bind_host=web_ui.host, scheme=scheme, extra=extra)
    guard = WebGuard(
        app.wsgi_app,
        hosts=hosts,
        scheme=scheme,
        token=token,
        cookie_name=f"amlc_web_{web_ui.port}",  # cookies are shared by every port of a host
    )
    app.wsgi_app = guard  # type: ignore[method-assign]
    return guard
