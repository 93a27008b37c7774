"""The import contracts of pyproject.toml cover every module they are meant to cover.

``lint-imports`` checks the contracts; this checks that a new module cannot slip past them: the
layers contract is exhaustive by itself, but the Locust contract names the bench modules one by
one, on the side that runs in the load process or the side that must never import it.
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


def test_every_bench_module_is_on_one_side_of_the_locust_contract() -> None:
    contract = _contracts()["locust-only-in-load-process"]
    control = {m for m in contract["source_modules"] if m.startswith("aml_client.bench.")}
    load = {m for m in contract["forbidden_modules"] if m.startswith("aml_client.bench.")}
    assert not control & load
    assert _children("aml_client.bench") == control | load


def test_every_library_package_is_kept_from_typer_rich_and_locust() -> None:
    contracts = _contracts()
    library = _children("aml_client") - {"aml_client.cli", "aml_client.__main__"}
    assert set(contracts["no-ui-in-library"]["source_modules"]) == library
    locust_sources = set(contracts["locust-only-in-load-process"]["source_modules"])
    top_level = {m for m in locust_sources if m.count(".") == 1}
    assert top_level == (library - {"aml_client.bench"}) | {"aml_client.cli"}
