"""``amlc endpoint import``, imported profiles in use, and ``amlc logs``: real ``amlc`` processes
against the replayed ARM examples over HTTPS.

The processes find Resource Manager through ``AMLC_ARM_URL``, trust the replay's trustme CA through
``REQUESTS_CA_BUNDLE`` (read by azure-core's requests transport) and sign in with azure-identity's
DefaultAzureCredential, limited by ``AZURE_TOKEN_CREDENTIALS`` to the Azure CLI, whose ``az`` is
the double in tests/support/azure_cli.py.
"""

from __future__ import annotations

import json
import stat
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from support.arm_replay import ArmReplay, arm_error, example
from support.azure_cli import AzureCliDouble
from support.faults import FaultServer, Reply

from aml_client import config

Run = Callable[..., Any]  # the root conftest's ``amlc`` fixture (returns a CliResult)
SAMPLES = Path(__file__).resolve().parents[1] / "fixtures" / "samples"
EXAMPLE = example("OnlineEndpoints_Get")["parameters"]
IMPORT_ARGS = (
    "--subscription", EXAMPLE["subscriptionId"],
    "--resource-group", EXAMPLE["resourceGroupName"],
    "--workspace", EXAMPLE["workspaceName"],
    "--endpoint", EXAMPLE["endpointName"],
)  # fmt: skip


@pytest.fixture
def arm(tmp_path: Path) -> Iterator[ArmReplay]:
    with ArmReplay(tmp_path) as server:
        yield server
    assert not server.mismatches, server.mismatches


@pytest.fixture
def az(tmp_path: Path) -> AzureCliDouble:
    return AzureCliDouble(tmp_path)


@pytest.fixture
def azure_env(arm: ArmReplay, az: AzureCliDouble) -> dict[str, str]:
    return {"AMLC_ARM_URL": arm.url, "REQUESTS_CA_BUNDLE": str(arm.ca_file), **az.env()}


def serve_endpoint_examples(arm: ArmReplay, **patch: Any) -> None:
    arm.replay("OnlineEndpoints_Get", patch={"properties": patch} if patch else None)
    arm.replay("OnlineDeployments_List", drop=("nextLink",))


def config_text() -> str:
    return config.config_path().read_text()


def test_import_stores_the_discovered_profile_without_a_secret(
    amlc: Run, arm: ArmReplay, az: AzureCliDouble, azure_env: dict[str, str]
) -> None:
    serve_endpoint_examples(arm)

    result = amlc("endpoint", "import", "prod", *IMPORT_ARGS, env=azure_env)

    assert result.returncode == 0, result.stderr
    assert "imported endpoint 'testEndpointName' as 'prod'" in result.stdout
    path = config.config_path()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    table = tomllib.loads(path.read_text())["endpoints"]["prod"]
    assert table == {
        "scoring_uri": "https://www.contoso.com/example",
        "swagger_uri": "https://www.contoso.com/example",
        "auth": "aml_token",
        "azure": {
            "subscription": EXAMPLE["subscriptionId"],
            "resource_group": "test-rg",
            "workspace": "my-aml-workspace",
            "endpoint": "testEndpointName",
            "auth_mode": "aml_token",
            "traffic": {"string": 1},
            "arm_url": arm.url,
            "provisioning_state": "Creating",
            "deployments": [{
                "name": "string",
                "compute_type": "Kubernetes",
                "instance_type": "string",
                "instance_count": 1,
                "provisioning_state": "Creating",
                "max_concurrent_requests_per_instance": 1,
                "request_timeout_ms": 300000,
            }],
        },
    }  # fmt: skip
    # Discovery only: no key and no token was asked for, none is stored.
    assert [seen.operation for seen in arm.requests] == [
        "OnlineEndpoints_Get", "OnlineDeployments_List",
    ]
    assert "key" not in table and "token" not in table
    assert all(seen.headers["Authorization"] == f"Bearer {az.token}" for seen in arm.requests)
    assert az.resources() == [arm.url]  # the management audience of this Resource Manager


def test_show_and_list_an_imported_profile_beside_a_plain_one(
    amlc: Run, arm: ArmReplay, azure_env: dict[str, str]
) -> None:
    serve_endpoint_examples(arm)
    assert amlc("endpoint", "import", "prod", *IMPORT_ARGS, env=azure_env).returncode == 0
    plain = amlc("endpoint", "add", "plain", "--scoring-uri", "https://example.org/score",
                 "--key-stdin", input="plain-key-123456\n")
    assert plain.returncode == 0, plain.stderr

    shown = amlc("endpoint", "show", "prod")
    assert shown.returncode == 0, shown.stderr
    assert "Deployments (as imported)" in shown.stdout
    row = next(line for line in shown.stdout.splitlines() if line.strip(" │┃").startswith("string"))
    assert "1 %" in row and "Kubernetes" in row and "Creating" in row
    assert "(from Azure when used)" in shown.stdout

    listed = amlc("endpoint", "list", "--json")
    assert listed.returncode == 0, listed.stderr
    by_name = {p["name"]: p for p in listed.json()}
    assert by_name["prod"]["auth"] == "aml_token"
    assert by_name["prod"]["azure"]["traffic"] == {"string": 1}
    assert by_name["plain"]["key"] == "plai…" and "azure" not in by_name["plain"]


@pytest.fixture
def scoring() -> Iterator[FaultServer]:
    with FaultServer() as server:
        server.default = Reply(body={"Results": ["no", "no"]})
        yield server


def test_key_profile_fetches_the_key_with_list_keys_when_used(
    amlc: Run, arm: ArmReplay, azure_env: dict[str, str], scoring: FaultServer
) -> None:
    # A variant of the get example: key auth, and a scoring URI on this machine.
    serve_endpoint_examples(arm, authMode="Key", scoringUri=scoring.scoring_uri,
                            swaggerUri=f"{scoring.url}/swagger.json")
    arm.replay("OnlineEndpoints_ListKeys")
    assert amlc("endpoint", "import", "prod", *IMPORT_ARGS, env=azure_env).returncode == 0
    assert arm.calls("OnlineEndpoints_ListKeys") == []
    assert tomllib.loads(config_text())["endpoints"]["prod"]["auth"] == "azure_key"

    result = amlc("score", str(SAMPLES / "data_inputs.json"), "--endpoint", "prod",
                  "--no-validate", "--json", env=azure_env)

    assert result.returncode == 0, result.stderr
    assert len(arm.calls("OnlineEndpoints_ListKeys")) == 1
    [request] = scoring.scores
    assert request.headers["Authorization"] == "Bearer string"  # the example's primaryKey
    assert "key" not in tomllib.loads(config_text())["endpoints"]["prod"]  # still no secret


def test_aml_token_profile_fetches_a_token_with_get_token_when_used(
    amlc: Run, arm: ArmReplay, azure_env: dict[str, str], scoring: FaultServer
) -> None:
    serve_endpoint_examples(arm, scoringUri=scoring.scoring_uri)
    later = int(time.time()) + 3600
    arm.replay("OnlineEndpoints_GetToken", patch={
        "accessToken": "aml-token-7d1e", "expiryTimeUtc": later, "refreshAfterTimeUtc": later,
    })
    assert amlc("endpoint", "import", "prod", *IMPORT_ARGS, env=azure_env).returncode == 0

    result = amlc("score", str(SAMPLES / "data_inputs.json"), "--endpoint", "prod",
                  "--no-validate", "--json", env=azure_env)

    assert result.returncode == 0, result.stderr
    assert len(arm.calls("OnlineEndpoints_GetToken")) == 1
    assert scoring.scores[0].headers["Authorization"] == "Bearer aml-token-7d1e"
    assert "aml-token-7d1e" not in config_text()


def add_logs_profile(arm: ArmReplay, name: str = "logs") -> dict[str, Any]:
    """The profile an import of the getLogs example's endpoint would have stored."""
    params = example("OnlineDeployments_GetLogs")["parameters"]
    config.add_profile(config.Profile(
        name=name,
        scoring_uri="https://www.contoso.com/example",
        auth="aml_token",
        azure={
            "subscription": params["subscriptionId"],
            "resource_group": params["resourceGroupName"],
            "workspace": params["workspaceName"],
            "endpoint": params["endpointName"],
            "arm_url": arm.url,
            "auth_mode": "aml_token",
            "traffic": {},
            "deployments": [],
        },
    ))  # fmt: skip
    return params


def test_logs_prints_the_examples_log_content(
    amlc: Run, arm: ArmReplay, azure_env: dict[str, str]
) -> None:
    params = add_logs_profile(arm)
    arm.replay("OnlineDeployments_GetLogs")

    result = amlc("logs", "--deployment", params["deploymentName"], "--lines", "0",
                  "--container", "storage-initializer", "--endpoint", "logs", env=azure_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "string\n"
    [seen] = arm.calls("OnlineDeployments_GetLogs")
    assert json.loads(seen.body) == {"containerType": "StorageInitializer", "tail": 0}


def test_logs_cannot_run_escape_sequences(
    amlc: Run, arm: ArmReplay, azure_env: dict[str, str]
) -> None:
    add_logs_profile(arm)
    route = arm.replay("OnlineDeployments_GetLogs", body={"content": "ok\x1b[2J\x07done\n"})
    route.request_body = {"containerType": "InferenceServer", "tail": 100}  # the defaults

    result = amlc("logs", "-d", "testDeployment", "-e", "logs", env=azure_env)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "ok\\x1b[2J\\x07done\n"


# --------------------------------------------------------------------------- errors


def test_forbidden_import_is_exit_3(amlc: Run, arm: ArmReplay, azure_env: dict[str, str]) -> None:
    arm.replay("OnlineEndpoints_Get", status="403", body=arm_error(
        "AuthorizationFailed",
        "The client 'x' does not have authorization to perform action 'read'.",
    ))
    result = amlc("endpoint", "import", "prod", *IMPORT_ARGS, env=azure_env)
    result.assert_error(3, "refused the credential (403)", "AuthorizationFailed")
    assert not config.config_path().exists()


def test_unknown_endpoint_is_exit_4(amlc: Run, arm: ArmReplay, azure_env: dict[str, str]) -> None:
    arm.replay("OnlineEndpoints_Get", status="404", parameters={"endpointName": "nope"},
               body=arm_error("ResourceNotFound", "Online endpoint nope was not found."))
    result = amlc("endpoint", "import", "prod", *IMPORT_ARGS[:-1], "nope", env=azure_env)
    result.assert_error(4, "not found", "nope")


def test_no_azure_sign_in_is_exit_2(amlc: Run, arm: ArmReplay, tmp_path: Path) -> None:
    env = {
        "AMLC_ARM_URL": arm.url,
        "REQUESTS_CA_BUNDLE": str(arm.ca_file),
        "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
        "PATH": str(tmp_path / "empty-bin"),  # no az anywhere
    }
    result = amlc("endpoint", "import", "prod", *IMPORT_ARGS, env=env)
    result.assert_error(2, "no usable Azure sign-in", "az login", "Azure CLI not found")
    assert arm.requests == []


def test_untrusted_certificate_is_refused(amlc: Run, arm: ArmReplay, az: AzureCliDouble) -> None:
    serve_endpoint_examples(arm)
    result = amlc("endpoint", "import", "prod", *IMPORT_ARGS,
                  env={"AMLC_ARM_URL": arm.url, **az.env()})
    result.assert_error(4, "cannot reach Azure Resource Manager")


def test_missing_extra_names_it(tmp_path: Path) -> None:
    """With the SDK absent (a None entry in sys.modules makes Python's import fail)."""
    import os
    import subprocess

    code = (
        "import sys; sys.modules['azure.mgmt.machinelearningservices'] = None; "
        "sys.argv = ['amlc'] + sys.argv[1:]; from aml_client.cli.app import main; main()"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "endpoint", "import", "prod", *IMPORT_ARGS],
        capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL,
        env={**os.environ, "COLUMNS": "200"},
    )
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    [line] = [line for line in proc.stderr.splitlines() if line.strip()]
    assert line.startswith("error: ") and "pip install 'amlc[azure]'" in line


def test_bad_names_are_refused_before_any_call(amlc: Run) -> None:
    result = amlc("endpoint", "import", "prod", "--subscription", "not-a-guid",
                  "--resource-group", "rg", "--workspace", "ws")
    result.assert_error(2, "subscription", "not a subscription id")
    result = amlc("endpoint", "import", "prod", *IMPORT_ARGS[:-1], "../../etc")
    result.assert_error(2, "endpoint", "not a valid Azure name")


def test_logs_needs_an_imported_profile(amlc: Run) -> None:
    amlc("endpoint", "add", "plain", "--scoring-uri", "https://example.org/score",
         "--auth", "none")
    amlc("logs", "-d", "blue", "-e", "plain").assert_error(2, "was not imported from Azure")
    amlc("logs", "-d", "blue", "-e", "missing").assert_error(2, "no endpoint profile named")


# --------------------------------------------------------------------------- a bench with aml_token


def test_a_bench_with_an_aml_token_profile_refreshes_the_token_during_the_run(
    amlc: Run, arm: ArmReplay, azure_env: dict[str, str], scoring: FaultServer, tmp_path: Path
) -> None:
    """getToken hands out tokens that die 5 s after they are issued (and should be refreshed
    after 2 s, as ``refreshAfterTimeUtc`` says); the scoring server refuses a token it did not
    issue or one past its expiry. A 20 s bench must see no failure and use several tokens."""
    import secrets
    import threading

    issued: dict[str, float] = {}  # token -> expiry (epoch seconds), as getToken said
    used: set[str] = set()
    lock = threading.Lock()

    def fresh_token(body: dict[str, Any]) -> dict[str, Any]:
        now = int(time.time())
        token = f"aml-{secrets.token_urlsafe(18)}"
        with lock:
            issued[token] = now + 5
        return {**body, "accessToken": token, "expiryTimeUtc": now + 5,
                "refreshAfterTimeUtc": now + 2}

    def accept(header: str | None) -> bool:
        token = (header or "").removeprefix("Bearer ")
        with lock:
            expiry = issued.get(token)
            if expiry is None or expiry <= time.time():
                return False
            used.add(token)
            return True

    serve_endpoint_examples(arm, scoringUri=scoring.scoring_uri)
    arm.replay("OnlineEndpoints_GetToken", respond=fresh_token)
    scoring.default = Reply(body={"Results": ["no"]})  # one row per request
    scoring.auth_check = accept
    assert amlc("endpoint", "import", "prod", *IMPORT_ARGS, env=azure_env).returncode == 0

    result = amlc(
        "bench", "--endpoint", "prod", "--payload", str(SAMPLES / "data_inputs.json"),
        "-t", "20s", "--rate", "20", "--workers", "2", "--json",
        "--report-dir", str(tmp_path / "reports"), env=azure_env, timeout=240,
    )  # fmt: skip

    assert result.returncode == 0, result.stderr
    summary = result.json()
    assert summary["requests"] >= 300, summary["requests"]
    assert summary["failures"]["total"] == 0, summary["failures"]
    # Tokens valid for 5 s over a 20 s run: at least four were asked for and sent.
    assert len(arm.calls("OnlineEndpoints_GetToken")) >= 5
    assert len(used) >= 4, sorted(used)
    written = "".join(p.read_text(errors="replace") for p in (tmp_path / "reports").rglob("*")
                      if p.is_file())
    for token in issued:
        assert token not in result.stdout + result.stderr + written
        assert token not in config_text()
