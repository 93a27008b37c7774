"""Generated typed clients: they import, build valid requests, and pass ruff and mypy --strict.

Every swagger of the corpus is generated and imported; ruff and mypy --strict each run once
over all of the generated modules. Scoring a real endpoint through a generated module is in
tests/integration/test_swagger_codegen_local.py.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from aml_client.envelope import unwrap
from aml_client.schema import load_schema
from aml_client.swagger.codegen import generate_client, python_name

REPO = Path(__file__).resolve().parent.parent
CORPUS = REPO / "tests" / "fixtures" / "corpus" / "swagger"
FILES = sorted(CORPUS.glob("*.json"))

#: Column names that are not Python identifiers or that collide with what the module uses.
AWKWARD_COLUMNS = {
    "emp.var.rate": {"type": "number"},
    "emp_var_rate": {"type": "number"},
    "class": {"type": "string"},
    "1st": {"type": "integer"},
    "model_type": {"type": "string"},
    "json": {"type": "boolean"},
    "int": {"type": "integer"},
    "datetime": {"type": "string", "format": "date-time"},
    "Field": {"type": "string"},
    "a-b c": {"type": "array", "items": {"type": "number"}},
    "über": {"type": "object"},
    "_private": {"type": "string"},
    "free": {},
}


def _module_name(path: Path) -> str:
    return "client_" + path.stem.replace("-", "_")


def _import(path: Path) -> ModuleType:
    spec = importlib.util.spec_from_file_location(path.stem, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[path.stem] = module
    try:
        spec.loader.exec_module(module)
    finally:
        del sys.modules[path.stem]
    return module


def _comparable(rows: list[Any], schema: Any) -> list[Any]:
    """Rows with date-times parsed: ``…00Z`` and ``…00.000Z`` are the same instant."""
    dates = {c.name for c in schema.columns if c.type == "datetime"}
    if not dates:
        return rows
    return [
        {k: datetime.fromisoformat(v) if k in dates else v for k, v in row.items()} for row in rows
    ]


def _awkward_swagger() -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": 'odd "names" service', "version": "1"},
        "paths": {
            "/score": {
                "post": {
                    "parameters": [
                        {
                            "name": "body",
                            "in": "body",
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "data": {
                                        "type": "array",
                                        "items": {
                                            "type": "object",
                                            "properties": AWKWARD_COLUMNS,
                                        },
                                    },
                                    "method": {"type": "string"},
                                },
                            },
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "ok",
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "result": {"type": "array", "items": {"type": "integer"}}
                                },
                            },
                        }
                    },
                }
            }
        },
    }


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Every corpus swagger (and the awkward one) generated into one directory."""
    out = tmp_path_factory.mktemp("generated")
    files = {}
    for path in FILES:
        target = out / f"{_module_name(path)}.py"
        target.write_text(generate_client(load_schema(path), source=path.name), encoding="utf-8")
        files[path.name] = target
    awkward = out / "client_awkward.py"
    awkward.write_text(generate_client(load_schema(_awkward_swagger())), encoding="utf-8")
    files["awkward"] = awkward
    return files


# --------------------------------------------------------------------------- every corpus file


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.stem)
def test_every_generated_client_imports_and_builds_valid_requests(
    path: Path, generated: dict[str, Path]
) -> None:
    schema = load_schema(path)
    module = _import(generated[path.name])
    rows = module.example_rows()
    assert rows, "example rows"
    body = module.build_request(rows * 2)
    json.dumps(body)
    body_rows, convention, _gp = unwrap(body, schema)
    assert convention is schema.convention
    assert len(body_rows) == 2
    schema.validate_rows(body_rows)  # the wire form passes amlc's own strict checks
    # the Request model reads the payload amlc itself would send, and writes it back the same
    payload = schema.example_payload(2)
    request = module.Request.model_validate(payload)
    again = request.model_dump(mode="json", by_alias=True, exclude_none=True)
    assert _comparable(unwrap(again, schema)[0], schema) == _comparable(
        unwrap(payload, schema)[0], schema
    )
    assert schema.title == module.TITLE
    assert str(schema.convention) == module.CONVENTION
    assert callable(module.score) and callable(module.score_async)


def test_generated_clients_pass_ruff(generated: dict[str, Path]) -> None:
    folder = next(iter(generated.values())).parent
    project = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--config", str(REPO / "pyproject.toml"), "."],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert project.returncode == 0, project.stdout[-3000:]
    strict = subprocess.run(
        [
            *(sys.executable, "-m", "ruff", "check", "--isolated", "--line-length", "88"),
            *("--target-version", "py311", "--select", "E,F,W,I,B,UP,SIM,RUF,C4,PIE,PT,RET", "."),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
    )
    assert strict.returncode == 0, strict.stdout[-3000:]


def _mypy(folder: Path, cache: Path, *files: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, MYPYPATH=str(REPO))
    return subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"),
            *("--cache-dir", str(cache), *files),
        ],
        cwd=folder,
        capture_output=True,
        text=True,
        env=env,
    )


@pytest.mark.slow  # tens of seconds on a busy 2-core machine
@pytest.mark.xdist_group("mypy")
def test_generated_clients_pass_mypy_strict(generated: dict[str, Path], mypy_cache: Path) -> None:
    folder = next(iter(generated.values())).parent
    names = sorted(path.name for path in generated.values())  # all of them: a few seconds
    result = _mypy(folder, mypy_cache, *names)
    assert result.returncode == 0, result.stdout[-3000:]
    assert f"no issues found in {len(names)} source files" in result.stdout


@pytest.mark.slow  # tens of seconds on a busy 2-core machine
@pytest.mark.xdist_group("mypy")
def test_mypy_catches_a_wrong_row_and_accepts_python_names(
    generated: dict[str, Path], mypy_cache: Path
) -> None:
    """The point of the generated types: a type checker sees through them."""
    folder = generated["005-Aduzona.json"].parent
    good = folder / "use_good.py"
    good.write_text(
        "from client_005_Aduzona import Row, predict_proba, score\n"
        "\n"
        "row = Row(\n"
        '    age=41, job="admin.", marital="married", education="university.degree",\n'
        '    default="no", housing="yes", loan="no", contact="cellular", month="may",\n'
        '    day_of_week="mon", duration=120, campaign=1, pdays=999, previous=0,\n'
        '    poutcome="nonexistent", emp_var_rate=-1.8, cons_price_idx=92.9,\n'
        "    cons_conf_idx=-46.2, euribor3m=1.3, nr_employed=5099,\n"
        ")\n"
        "labels: list[str] = score([row])\n"
        'probabilities: list[list[float]] = predict_proba([row], endpoint="prod")\n'
    )
    result = _mypy(folder, mypy_cache, good.name)
    assert result.returncode == 0, result.stdout
    bad = folder / "use_bad.py"
    bad.write_text(
        "from client_005_Aduzona import Row, score\n"
        "\n"
        'row = Row(age="old", job="admin.")\n'
        "numbers: list[int] = score([row], endpoint=42)\n"
    )
    result = _mypy(folder, mypy_cache, bad.name)
    assert result.returncode == 1
    out = result.stdout
    assert 'Argument "age" to "Row" has incompatible type "str"; expected "int"' in out
    assert 'Missing named argument "emp_var_rate" for "Row"' in out
    assert 'Argument "endpoint" to "score" has incompatible type "int"' in out
    assert "list[int]" in out  # predictions are str for this endpoint


# --------------------------------------------------------------------------- shapes of the code


def test_dotted_names_become_aliases_and_round_trip(generated: dict[str, Path]) -> None:
    module = _import(generated["005-Aduzona.json"])
    fields = module.Row.model_fields
    assert fields["emp_var_rate"].serialization_alias == "emp.var.rate"
    row = module.example_rows()[0]
    wire = row.model_dump(by_alias=True)
    assert "emp.var.rate" in wire and "emp_var_rate" not in wire
    assert module.Row.model_validate(wire) == row  # the wire names read back
    with pytest.raises(ValueError, match="extra"):
        module.Row.model_validate({**wire, "surprise": 1})


def test_inputs_convention_request_carries_the_method(generated: dict[str, Path]) -> None:
    module = _import(generated["005-Aduzona.json"])
    rows = module.example_rows()
    body = module.build_request(rows)
    assert set(body) == {"Inputs", "GlobalParameters"}
    assert body["GlobalParameters"] == {"method": "predict"}
    assert module.build_request(rows, method="predict_proba")["GlobalParameters"] == {
        "method": "predict_proba"
    }
    assert "predict_proba" in module.__all__


def test_data_convention_and_numeric_global_parameters(generated: dict[str, Path]) -> None:
    data = _import(generated["052-aimazin.json"])
    assert set(data.build_request(data.example_rows())) == {"data"}
    assert not hasattr(data, "predict_proba")
    numeric = _import(generated["041-DiegoLimeiradaSilva.json"])
    body = numeric.build_request(numeric.example_rows())
    assert body["GlobalParameters"] == 1.0


def test_dates_are_datetimes_on_the_row_and_iso_strings_on_the_wire(
    generated: dict[str, Path],
) -> None:
    module = _import(generated["137-nbelmokhtar.json"])
    row = module.example_rows()[0]
    assert type(row.date).__name__ == "datetime"
    wire = module.build_request([row])["data"][0]["date"]
    assert wire.startswith(f"{row.date.year:04d}-") and "T" in wire


def test_booleans_and_numpy_rows(generated: dict[str, Path]) -> None:
    telco = _import(generated["143-Pogayo.json"])
    row = telco.example_rows()[0]
    assert row.Partner is True  # the swagger's "True" became a real boolean
    numpy = _import(generated["142-MicrosoftDocs.json"])
    assert numpy.build_request([[1, 2, 3]]) == {"data": [[1, 2, 3]]}
    scalar = _import(generated["001-microsoft.json"])
    assert scalar.build_request([5, 6]) == {"data": [5, 6]}


def test_awkward_column_names(generated: dict[str, Path]) -> None:
    module = _import(generated["awkward"])
    names = {
        field.serialization_alias or name: name for name, field in module.Row.model_fields.items()
    }
    assert set(names) == set(AWKWARD_COLUMNS)
    assert names["emp.var.rate"] != names["emp_var_rate"]
    assert names["class"] == "class_"
    assert names["1st"] == "f_1st"
    assert names["model_type"] == "f_model_type"  # pydantic owns model_*
    row = module.Row.model_validate(
        {
            "emp.var.rate": 1.5,
            "emp_var_rate": 2.5,
            "class": "a",
            "1st": 1,
            "model_type": "m",
            "json": True,
            "int": 3,
            "datetime": "2020-01-01T00:00:00",
            "Field": "f",
            "a-b c": [1.0],
            "über": {"x": 1},
            "_private": "p",
            "free": None,
        }
    )
    wire = module.build_request([row], method="predict")
    assert wire["method"] == "predict"
    assert set(wire["data"][0]) == set(AWKWARD_COLUMNS) - {"free"}  # None is left out
    assert module.TITLE == 'odd "names" service'


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("age", "age"),
        ("emp.var.rate", "emp_var_rate"),
        ("class", "class_"),
        ("match", "match_"),
        ("2nd", "f_2nd"),
        ("model_config", "f_model_config"),
        ("json", "json_"),
        ("float", "float_"),
        ("...", "column"),
    ],
)
def test_python_name(name: str, expected: str) -> None:
    assert python_name(name, set()) == expected


def test_python_name_never_repeats() -> None:
    taken: set[str] = set()
    assert [python_name(n, taken) for n in ("a.b", "a_b", "a-b")] == ["a_b", "a_b_2", "a_b_3"]
