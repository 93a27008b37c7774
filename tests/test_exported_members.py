"""The public API is ``aml_client.__all__`` (and the ``__all__`` of each swagger tool module):
pinned here so a change to it is a deliberate one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import aml_client

EXPECTED = {
    # clients and results
    "Endpoint", "AsyncEndpoint", "ScoreResult", "RetryPolicy",
    # credentials
    "KeyCredential", "TokenCredential", "entra_id_credential", "token_command_credential",
    # large files
    "score_file", "score_file_async", "ScoreFileResult", "BatchOptions", "BatchProgress",
    # schemas
    "load_schema", "ScoringSchema", "Convention",
    # configuration
    "Target", "resolve_target", "open_endpoint", "open_async_endpoint",
    # errors
    "AmlcError", "ConfigError", "InputError", "SchemaError", "ValidationError", "RowProblem",
    "EndpointError", "ConnectionFailedError", "EndpointTimeoutError", "AuthenticationError",
    "NotFoundError", "BadRequestError", "PayloadTooLargeError", "RateLimitError", "ModelError",
    "UnavailableError", "ResponseFormatError", "RedirectError", "CredentialError",
    "SwaggerFetchError",
    "__version__",
}  # fmt: skip


def test_all_is_pinned() -> None:
    assert set(aml_client.__all__) == EXPECTED
    assert len(aml_client.__all__) == len(EXPECTED), "duplicates in __all__"


def test_every_exported_member_resolves() -> None:
    for name in aml_client.__all__:
        member = getattr(aml_client, name)
        if name.startswith("__"):
            continue
        assert getattr(member, "__module__", "").startswith("aml_client."), name


def test_errors_share_one_base() -> None:
    for name in aml_client.__all__:
        member = getattr(aml_client, name)
        if name.endswith("Error"):
            assert issubclass(member, aml_client.AmlcError), name


def test_unknown_attribute() -> None:
    try:
        aml_client.no_such_thing  # noqa: B018
    except AttributeError as exc:
        assert "no_such_thing" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected AttributeError")


def test_import_is_cheap() -> None:
    """``import aml_client`` loads no HTTP stack, no pydantic and nothing heavy."""
    code = (
        "import json, sys, aml_client\n"
        "mods = ('httpx', 'pydantic', 'locust', 'gevent', 'pandas', 'sklearn', 'numpy', 'rich')\n"
        "print(json.dumps([m for m in mods if m in sys.modules]))\n"
    )
    root = Path(__file__).resolve().parent.parent
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=root, check=True
    )
    assert json.loads(out.stdout) == []


def test_public_api() -> None:
    import aml_client.swagger.codegen
    import aml_client.swagger.fetch
    import aml_client.swagger.lint
    import aml_client.swagger.summary
    import aml_client.swagger.ui

    assert aml_client.swagger.fetch.__all__ == [
        "FetchedSwagger",
        "fetch_swagger",
        "load_document",
        "read_document",
    ]
    assert aml_client.swagger.summary.__all__ == [
        "describe_version",
        "request_shape",
        "response_shape",
        "summarize",
    ]
    assert aml_client.swagger.lint.__all__ == ["Finding", "ValidationReport", "validate_document"]
    assert aml_client.swagger.codegen.__all__ == ["generate_client", "python_name"]
    assert aml_client.swagger.ui.__all__ == [
        "PAGE_HEADER",
        "PAGE_HEADER_VALUE",
        "PROXY_PREFIX",
        "SwaggerUIServer",
        "assets_dir",
        "rewrite_document",
    ]
