"""A stand-in for the Azure CLI, so a real ``amlc`` process signs in without a network.

azure-identity's DefaultAzureCredential, restricted by its own ``AZURE_TOKEN_CREDENTIALS``
setting to ``AzureCliCredential``, runs ``az account get-access-token --output json --resource
R``. The ``az`` written here prints a token in that command's JSON shape and appends its argv to a
log, so a test sees which audience was asked for. Nothing in amlc or the SDK is patched.
"""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

_SCRIPT = """#!{python}
import json, sys, time
with open({log!r}, "a") as log:
    log.write(json.dumps(sys.argv[1:]) + "\\n")
if {fail!r}:
    sys.stderr.write({fail!r} + "\\n")
    sys.exit(1)
print(json.dumps({{"accessToken": {token!r}, "expires_on": int(time.time()) + 3600,
                  "tokenType": "Bearer", "subscription": "00000000-1111-2222-3333-444444444444",
                  "tenant": "00000000-0000-0000-0000-000000000000"}}))
"""


class AzureCliDouble:
    """``env()`` gives the variables that make DefaultAzureCredential use this ``az``."""

    def __init__(self, directory: Path, token: str = "arm-token-from-az", fail: str = ""):
        self.directory = directory / "az-bin"
        self.directory.mkdir(parents=True, exist_ok=True)
        self.log = directory / "az-calls.jsonl"
        self.token = token
        script = self.directory / "az"
        script.write_text(
            _SCRIPT.format(python=sys.executable, log=str(self.log), token=token, fail=fail)
        )
        script.chmod(script.stat().st_mode | stat.S_IXUSR)

    def env(self) -> dict[str, str]:
        return {
            "PATH": f"{self.directory}{os.pathsep}{os.environ.get('PATH', '')}",
            "AZURE_TOKEN_CREDENTIALS": "AzureCliCredential",
        }

    def calls(self) -> list[list[str]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def resources(self) -> list[str]:
        """The ``--resource`` each call asked a token for."""
        return [args[args.index("--resource") + 1] for args in self.calls() if "--resource" in args]
