"""Published pipelines (Azure ML SDK v1): submit a run over REST, and follow it until it ends.

Submit (documented): ``POST`` the pipeline's REST endpoint — ``…/pipelines/v1.0/subscriptions/…/
workspaces/W/PipelineRuns/PipelineSubmit/<id>`` or ``…/PipelineRuns/PipelineEndpointSubmit/Id/<id>``
— with an Entra ID token for Resource Manager as Bearer and the body ``{"ExperimentName": …,
"ParameterAssignments": {…}}`` (optional ``Description``, ``Tags``); the run id is ``Id`` in the
answer.

Status: ``GET <same prefix>/PipelineRuns/<run id>``, the route Microsoft's v1 SDK
(azureml-pipeline-core) uses to read a ``PipelineRunEntity``; its ``Status.StatusCode`` is
NotStarted, Running, Failed, Finished or Canceled (0–4 in that order when sent as a number). This
route is taken from the SDK's client code, not from a published REST reference: ``--wait`` is the
one part of this module that could not be checked against Microsoft's documentation.

Parameter values keep their type only when it is unambiguous: ``--param n=3`` sends the number 3,
``--param rate=0.5`` the number 0.5, anything else (``007``, ``1e3``, ``true``, ``nan``, ``3.``)
is sent as the string it is; ``--param-str`` always sends a string.
"""

from __future__ import annotations

import ipaddress
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from aml_client.azure.control import sign_in_details
from aml_client.azure.reference import clean_text
from aml_client.errors import (
    AuthenticationError,
    BadRequestError,
    ConfigError,
    ConnectionFailedError,
    EndpointError,
    EndpointTimeoutError,
    InputError,
    NotFoundError,
    RateLimitError,
    ResponseFormatError,
    UnavailableError,
)
from aml_client.http.credentials import Credential
from aml_client.http.retry import RetryPolicy
from aml_client.http.session import Session

ParamValue = str | int | float

#: The audience of the token a published pipeline wants (Resource Manager).
MANAGEMENT_SCOPE = "https://management.azure.com/.default"
#: Largest answer read from the pipeline service.
MAX_RESPONSE_BYTES = 1024 * 1024
MAX_PARAMS = 200

_INT = re.compile(r"^-?(0|[1-9][0-9]{0,17})$")
_FLOAT = re.compile(r"^-?(0|[1-9][0-9]{0,17})\.[0-9]{1,17}$")
_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_.-]{0,127}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,255}$")

#: StatusCode numbers in the order of the v1 SDK's PipelineRunStatusCode.
_STATUS_NUMBERS = ("NotStarted", "Running", "Failed", "Finished", "Canceled")
_SUCCEEDED = {"finished", "completed"}
_FAILED = {"failed", "canceled", "cancelled"}


# --------------------------------------------------------------------------- parameters


def typed_value(text: str) -> ParamValue:
    """``"3"`` → 3, ``"0.5"`` → 0.5, anything else stays the string it is (see module doc)."""
    if _INT.match(text):
        return int(text)
    if _FLOAT.match(text):
        return float(text)
    return text


def parse_assignment(
    text: str, *, option: str = "--param", typed: bool = True
) -> tuple[str, ParamValue]:
    """``NAME=VALUE`` → ``(name, value)``; InputError naming the option when it is not one."""
    name, sep, value = text.partition("=")
    name = name.strip()
    if not sep or not name:
        raise InputError(f"{option} {text!r}: expected NAME=VALUE")
    if not _KEY.match(name):
        raise InputError(
            f"{option} {text!r}: a name uses letters, digits, '_', '.' and '-', "
            "starting with a letter or '_'"
        )
    return name, typed_value(value) if typed else value


def collect(
    pairs: list[tuple[str, ParamValue]], *, option: str = "--param"
) -> dict[str, ParamValue]:
    """Assignments as a dict; a name given twice is an error, not a silent overwrite."""
    if len(pairs) > MAX_PARAMS:
        raise InputError(f"{option}: more than {MAX_PARAMS} values")
    result: dict[str, ParamValue] = {}
    for name, value in pairs:
        if name in result:
            raise InputError(f"{option} {name}: given twice")
        result[name] = value
    return result


@dataclass
class PipelineRequest:
    """The documented body of a published-pipeline submission."""

    experiment: str
    parameters: dict[str, ParamValue] = field(default_factory=dict)
    description: str | None = None
    tags: dict[str, str] = field(default_factory=dict)

    def body(self) -> dict[str, Any]:
        if not self.experiment.strip():
            raise InputError("--experiment: an experiment name is required")
        body: dict[str, Any] = {
            "ExperimentName": self.experiment,
            "ParameterAssignments": dict(self.parameters),
        }
        if self.description:
            body["Description"] = self.description
        if self.tags:
            body["Tags"] = dict(self.tags)
        return body


# --------------------------------------------------------------------------- URLs


def check_pipeline_url(url: str) -> str:
    """An https URL (plain http only to this machine's loopback, for tests and tunnels)."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or len(url) > 2048:
        raise ConfigError(f"pipeline URL must be an http(s) URL: {url[:100]!r}")
    if parts.scheme == "http" and not _is_loopback(parts.hostname):
        raise ConfigError(
            "pipeline URL must use https: the Entra ID token is not sent in clear text "
            f"(http is allowed for 127.0.0.1 only): {url[:100]!r}"
        )
    return url.strip()


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def status_url(submit_url: str, run_id: str) -> str:
    """``…/PipelineRuns/<run id>`` on the submit URL's origin and prefix."""
    if not _RUN_ID.match(run_id):
        raise ResponseFormatError(
            f"the pipeline service returned an unusable run id {run_id[:60]!r}"
        )
    parts = urlsplit(submit_url)
    segments = parts.path.split("/")
    lowered = [s.lower() for s in segments]
    if "pipelineruns" not in lowered:
        raise ConfigError(
            "cannot follow this run: the pipeline URL has no /PipelineRuns/ segment "
            "to derive its status URL from"
        )
    prefix = segments[: lowered.index("pipelineruns") + 1]
    path = "/".join([*prefix, quote(run_id, safe="")])
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


# --------------------------------------------------------------------------- status


@dataclass(frozen=True)
class RunStatus:
    """Where a pipeline run stands."""

    run_id: str
    status: str
    detail: str | None = None

    @property
    def finished(self) -> bool:
        return self.status.lower() in _SUCCEEDED | _FAILED

    @property
    def succeeded(self) -> bool:
        return self.status.lower() in _SUCCEEDED


def read_status(run_id: str, body: Any) -> RunStatus:
    """``Status.StatusCode`` (name or number) of a PipelineRunEntity."""
    status = body.get("Status") if isinstance(body, dict) else None
    code: Any = status.get("StatusCode") if isinstance(status, dict) else status
    detail = clean_text(status.get("StatusDetail"), 200) if isinstance(status, dict) else None
    if isinstance(code, str) and code.strip().isdigit():
        code = int(code.strip())
    if isinstance(code, int) and not isinstance(code, bool) and 0 <= code < len(_STATUS_NUMBERS):
        return RunStatus(run_id, _STATUS_NUMBERS[code], detail)
    name = clean_text(code, 40) if isinstance(code, str) else None
    if not name:
        raise ResponseFormatError(f"the pipeline service gave no status for run {run_id}")
    return RunStatus(run_id, name, detail)


# --------------------------------------------------------------------------- the client


def entra_token_source(scope: str = MANAGEMENT_SCOPE) -> Callable[[], str]:
    """Tokens from azure-identity's DefaultAzureCredential (which caches and refreshes them)."""
    try:
        from azure.identity import DefaultAzureCredential
    except ImportError as exc:
        raise ConfigError(
            "published pipelines need the azure extra: pip install 'amlc[azure]'"
        ) from exc
    credential = DefaultAzureCredential()

    def token() -> str:
        from azure.core.exceptions import ClientAuthenticationError

        try:
            return credential.get_token(scope).token
        except ClientAuthenticationError as exc:
            raise ConfigError(
                f"no Entra ID token for {scope}: run `az login` or set AZURE_* variables "
                f"({sign_in_details(exc)})"
            ) from exc

    return token


@dataclass(frozen=True)
class SubmittedRun:
    run_id: str
    response: dict[str, Any]


class _BearerToken(Credential):
    """A token source as the HTTP layer's credential: asked on every request (the source
    caches), never refreshed on a 401 (a run is submitted once)."""

    def __init__(self, token: Callable[[], str]):
        self._token = token

    def secret(self) -> str:
        return self._token()


class PipelineClient:
    """One published pipeline: submit runs and read their status.

    Requests go through the HTTP layer's :class:`~aml_client.http.session.Session`: the token
    goes only to the pipeline URL's origin (the status URL is built on it), each request has
    a total deadline, redirects are never followed, and nothing is retried here (``wait``
    waits out its own transient failures).
    """

    def __init__(
        self,
        url: str,
        *,
        token: Callable[[], str] | None = None,
        timeout_s: float = 60.0,
        verify: bool = True,
    ):
        self.url = check_pipeline_url(url)
        self._http = Session(
            self.url,
            _BearerToken(token or entra_token_source()),
            timeout_s=timeout_s,
            verify=verify,
            retry=RetryPolicy(max_retries=0),
            headers={"Accept": "application/json"},
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PipelineClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def submit(self, request: PipelineRequest) -> SubmittedRun:
        """POST the run; the answer's ``Id`` is the run id. Never retried (it would run twice)."""
        body = json.dumps(request.body(), ensure_ascii=False, allow_nan=False).encode()
        answer = self._send("POST", self.url, body, "submitting the pipeline run")
        if not isinstance(answer, dict):
            raise ResponseFormatError(
                "the pipeline service answered with something other than a JSON object"
            )
        run_id = answer.get("Id")
        if not isinstance(run_id, str) or not _RUN_ID.match(run_id):
            raise ResponseFormatError("the pipeline service's answer has no usable run id ('Id')")
        return SubmittedRun(run_id, answer)

    def status(self, run_id: str) -> RunStatus:
        answer = self._send("GET", status_url(self.url, run_id), None, f"reading run {run_id}")
        return read_status(run_id, answer)

    def wait(
        self,
        run_id: str,
        *,
        poll_interval_s: float = 15.0,
        timeout_s: float = 3600.0,
        on_change: Callable[[RunStatus, float], None] | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> RunStatus:
        """Poll until the run ends or ``timeout_s`` passes (EndpointTimeoutError). Up to three
        transient failures in a row (connection, 429, 5xx) are waited out."""
        status_url(self.url, run_id)  # a URL it cannot follow fails before the first sleep
        start = clock()
        last: RunStatus | None = None
        failures = 0
        while True:
            try:
                current = self.status(run_id)
                failures = 0
            except (ConnectionFailedError, RateLimitError, UnavailableError, EndpointTimeoutError):
                failures += 1
                if failures > 3:
                    raise
                current = last or RunStatus(run_id, "Unknown")
            elapsed = clock() - start
            if on_change is not None and (last is None or current != last):
                on_change(current, elapsed)
            last = current
            if current.finished:
                return current
            if elapsed + poll_interval_s > timeout_s:
                raise EndpointTimeoutError(
                    f"pipeline run {run_id} is still {current.status} after {elapsed:.0f} s; "
                    "stopped waiting (the run goes on)"
                )
            sleep(poll_interval_s)

    # ------------------------------------------------------------------ HTTP

    def _send(self, method: str, url: str, body: bytes | None, doing: str) -> Any:
        headers = {"Content-Type": "application/json"} if body is not None else None
        try:
            reply = self._http.exchange(
                method, url, content=body, headers=headers, max_bytes=MAX_RESPONSE_BYTES
            )
        except (EndpointTimeoutError, ConnectionFailedError) as exc:
            raise type(exc)(f"{exc} while {doing}") from exc
        status = reply.status_code
        if 300 <= status < 400:
            location = reply.headers.get("location")
            raise EndpointError(
                f"the pipeline service redirected ({status}) to {clean_text(location, 200)}; "
                "not followed",
                status_code=status,
            )
        if status >= 400:
            raise _status_error(status, reply.content, doing)
        try:
            return json.loads(reply.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise ResponseFormatError(
                f"the pipeline service's answer is not JSON while {doing}"
            ) from exc


def _status_error(status: int, data: bytes, doing: str) -> EndpointError:
    message = _server_message(data)
    text = f"the pipeline service answered {status} while {doing}" + (
        f": {message}" if message else ""
    )
    if status in (401, 403):
        return AuthenticationError(text, status_code=status)
    if status == 404:
        return NotFoundError(text, status_code=status)
    if status == 429:
        return RateLimitError(text, status_code=status)
    if status in (502, 503, 504):
        return UnavailableError(text, status_code=status)
    if 400 <= status < 500:
        return BadRequestError(text, status_code=status)
    return EndpointError(text, status_code=status)


def _server_message(data: bytes) -> str | None:
    """The ``error.message`` (or ``Message``) of an error answer, else its first line."""
    try:
        parsed = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        text = data[:300].decode("utf-8", "replace")
        return clean_text(text.splitlines()[0] if text.strip() else "", 200)
    if isinstance(parsed, dict):
        error = parsed.get("error")
        if isinstance(error, dict):
            return clean_text(error.get("message") or error.get("code"), 200)
        return clean_text(parsed.get("Message") or parsed.get("message"), 200)
    return None
