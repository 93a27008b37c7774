"""The import contracts of pyproject.toml cover every module they are meant to cover.

``lint-imports`` checks the contracts; this checks that a new module cannot slip past them: the
layers contract is exhaustive by itself, and the load-process contracts name folders
(``aml_client.bench.load``, ``aml_client.bench.report``) and wildcards, never single modules.
"""

from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent


def _contracts() -> dict[str, dict[str, Any]]:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    return {c["id"]: c for c in config["tool"]["importlinter"]["contracts"]}


def _children(package: str) -> set[str]:
    folder = ROOT.joinpath(*package.split("."))
    return {
        f"{package}.{path.stem if path.is_file() else path.name}"
        for path in folder.iterdir()
        if (path.suffix == ".py" and path.stem != "__init__")
        or (path.is_dir() and (path / "__init__.py").exists())
    }


def test_bench_is_split_into_the_load_process_the_reports_and_the_parent() -> None:
    packages = {m for m in _children("aml_client.bench") if (ROOT / m.replace(".", "/")).is_dir()}
    assert packages == {"aml_client.bench.load", "aml_client.bench.report"}


def test_only_the_load_process_imports_locust_and_nothing_imports_it() -> None:
    contracts = _contracts()
    protected = contracts["locust-only-in-load-process"]
    assert protected["type"] == "protected"
    assert set(protected["protected_modules"]) == {"locust", "gevent", "geventhttpclient"}
    assert set(protected["allowed_importers"]) == {"aml_client.bench.load", "loadtests"}
    apart = contracts["load-process-apart"]
    # Wildcards: every module of aml_client and of aml_client.bench, present and future.
    assert set(apart["source_modules"]) == {"aml_client.*", "aml_client.bench.*"}
    assert apart["forbidden_modules"] == ["aml_client.bench.load"]
    reports = contracts["reports-from-recordings"]
    assert reports["source_modules"] == ["aml_client.bench.report"]
    assert "aml_client.bench.load" in reports["forbidden_modules"]


def test_every_library_package_is_kept_from_typer_and_rich() -> None:
    contracts = _contracts()
    library = _children("aml_client") - {"aml_client.cli", "aml_client.__main__"}
    assert set(contracts["no-ui-in-library"]["source_modules"]) == library
