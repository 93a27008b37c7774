"""``amlc swagger show | validate | example | codegen`` on files, run as real processes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aml_client.envelope import unwrap
from aml_client.schema import load_schema

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "fixtures" / "corpus" / "swagger"
BANK = str(CORPUS / "005-Aduzona.json")
TELCO = str(CORPUS / "143-Pogayo.json")
NUMPY = str(CORPUS / "001-microsoft.json")


def test_show_renders_a_readable_summary(amlc: Any) -> None:
    result = amlc("swagger", "show", BANK)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""  # the summary is the command's output: stdout
    text = result.stdout
    for needle in (
        "bankmarketing-endpoint",
        "Swagger 2.0",
        "/score",
        "POST",
        "Authorization: Bearer",
        '"Inputs": {"data": [row, …]}, "GlobalParameters": {"method": "predict"}',
        '{"Results": [string, …]}',
        "Columns (20)",
        "emp.var.rate",
        "double",
    ):
        assert needle in text, needle


def test_show_json(amlc: Any) -> None:
    result = amlc("swagger", "show", NUMPY, "--json")
    assert result.returncode == 0, result.stderr
    summary = result.json()
    assert summary["source"] == NUMPY
    assert summary["version"] == "OpenAPI 3.0.3"
    assert summary["row_kind"] == "scalar"
    assert summary["output"]["shape"] == "[number, …]"


def test_validate_clean_and_with_warnings(amlc: Any) -> None:
    clean = amlc("swagger", "validate", BANK)
    assert clean.returncode == 0, clean.stderr
    assert "valid Swagger 2.0 · 0 errors, 0 warnings" in clean.stdout
    telco = amlc("swagger", "validate", TELCO)
    assert telco.returncode == 0, telco.stderr
    assert "$.definitions.ServiceInput.example.data[0].Partner" in telco.stdout
    assert "0 errors, 4 warnings" in telco.stdout
    strict = amlc("swagger", "validate", TELCO, "--strict")
    assert strict.returncode == 2


def test_validate_an_invalid_swagger_exits_2_with_paths(amlc: Any, tmp_path: Path) -> None:
    doc = json.loads(Path(BANK).read_text(encoding="utf-8-sig"))
    del doc["info"]["version"]
    inputs = doc["definitions"]["ServiceInput"]["properties"]
    inputs["Rows"] = inputs.pop("Inputs")
    path = tmp_path / "broken.json"
    path.write_text(json.dumps(doc))
    result = amlc("swagger", "validate", str(path))
    assert result.returncode == 2
    assert "error $.info: 'version' is a required property" in result.stdout
    assert "error $.definitions.ServiceInput.properties: input convention not recognised" in (
        result.stdout
    )
    as_json = amlc("swagger", "validate", str(path), "--json")
    assert as_json.returncode == 2
    report = as_json.json()
    assert report["ok"] is False and report["errors"] == 2
    assert {f["path"] for f in report["findings"]} >= {
        "$.info",
        "$.definitions.ServiceInput.properties",
    }


@pytest.mark.parametrize("swagger", [BANK, TELCO, NUMPY, str(CORPUS / "137-nbelmokhtar.json")])
def test_example_prints_a_valid_body(amlc: Any, swagger: str) -> None:
    result = amlc("swagger", "example", swagger, "--rows", "3")
    assert result.returncode == 0, result.stderr
    body = json.loads(result.stdout)
    schema = load_schema(swagger)
    rows, convention, _gp = unwrap(body, schema)
    assert convention is schema.convention and len(rows) == 3
    schema.validate_rows(rows)
    assert "example_value" not in result.stdout


def test_codegen_writes_a_module(amlc: Any, tmp_path: Path) -> None:
    out = tmp_path / "endpoint_client.py"
    result = amlc("swagger", "codegen", BANK, "-o", str(out))
    assert result.returncode == 0, result.stderr
    assert "20 columns, inputs convention" in result.stdout
    code = out.read_text()
    assert "class Row(BaseModel):" in code and "def score(" in code
    assert "005-Aduzona.json" in code  # says where it came from
    to_stdout = amlc("swagger", "codegen", BANK, "-o", "-")
    assert to_stdout.returncode == 0 and to_stdout.stdout == code


def test_unreadable_swaggers_are_one_line_errors(amlc: Any, tmp_path: Path) -> None:
    amlc("swagger", "show", str(tmp_path / "nope.json")).assert_error(2, "no such file")
    bad = tmp_path / "bad.json"
    bad.write_text('{"swagger": "2.0",\n  "info": }\n')
    amlc("swagger", "example", str(bad)).assert_error(2, "not valid JSON", "line 2")
    not_scoring = tmp_path / "other.json"
    not_scoring.write_text('{"hello": "world"}')
    amlc("swagger", "codegen", str(not_scoring), "-o", "-").assert_error(2, "not a swagger")
    result = amlc("swagger", "validate", str(not_scoring))
    assert result.returncode == 2 and "no 'swagger' or 'openapi' field" in result.stdout


def test_swagger_commands_never_import_heavy_modules() -> None:
    code = (
        "import json, sys\n"
        f"sys.argv = ['amlc', 'swagger', 'validate', {TELCO!r}]\n"
        "from aml_client.cli.app import main\n"
        "try:\n"
        "    main()\n"
        "except SystemExit:\n"
        "    pass\n"
        "heavy = ('locust', 'gevent', 'pandas', 'sklearn', 'numpy', 'playwright')\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in heavy)))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []


# --------------------------------------------------------------------------- scale


def test_validate_a_20000_column_swagger(amlc: Any, tmp_path: Path) -> None:
    from support.swaggers import wide_swagger

    path = tmp_path / "wide.json"
    path.write_text(json.dumps(wide_swagger(20_000)), encoding="utf-8")
    result = amlc("swagger", "validate", str(path), "--json", timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = result.json()
    assert report["ok"] is True and report["findings"] == []
    bad = wide_swagger(20_000)
    bad["definitions"]["ServiceInput"]["example"]["data"][0]["col.19999"] = "not a date"
    path.write_text(json.dumps(bad), encoding="utf-8")
    result = amlc("swagger", "validate", str(path), "--json", timeout=300)
    assert result.returncode == 2
    (finding,) = result.json()["findings"]
    assert finding["path"] == "$.definitions.ServiceInput.example.data[0]['col.19999']"


def test_validate_is_linear_in_the_number_of_columns() -> None:
    """Ten times the columns costs about ten times as much (quadratic would be a hundred).

    Measured in this process's CPU time, the best of three: time spent waiting for a core on a
    busy machine is not the validator's."""
    import time

    from support.swaggers import wide_swagger

    from aml_client.swagger.lint import validate_document

    def cost(columns: int) -> float:
        doc = wide_swagger(columns)
        best = float("inf")
        for _ in range(3):
            started = time.process_time()
            assert validate_document(doc).ok
            best = min(best, time.process_time() - started)
        return best

    cost(200)  # warm up imports and caches
    ratio = cost(10_000) / cost(1_000)
    assert ratio < 30, f"10x the columns cost {ratio:.0f}x the time"
