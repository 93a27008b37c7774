"""Codegen cannot be injected: random hostile text in every swagger field codegen reads gives a
module that compiles, imports without side effects, and keeps every name.

Strings with quotes, triple quotes, backslashes, newlines, NUL, line separators and any other
Unicode go into the title, version, ``openapi``/``swagger`` version, source file name, column
names, examples, enum values, descriptions and GlobalParameters keys. The module is compiled
and run in this process under an audit hook: opening a file, starting a process, opening a
socket or importing a new module during the import fails the test, as does any output.

The normal suite runs a few hundred examples; ``HYPOTHESIS_PROFILE=thorough`` runs thousands:
    HYPOTHESIS_PROFILE=thorough .venv/bin/python -m pytest tests/test_swagger_codegen_fuzz.py
"""

from __future__ import annotations

import contextlib
import io
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from aml_client.schema import load_schema
from aml_client.swagger.codegen import generate_client

REPO = Path(__file__).resolve().parent.parent

_NASTY = [
    '"""',
    "'''",
    '"',
    "'",
    "\\",
    "\\N{",
    "\n",
    "\r\n",
    "\x00",
    "\x0c",
    "\u2028",
    "\u0085",
    "a²",
    "ﬁ",
    "e\u0301",
    "C:\\Users\\x",
    "Infinity",
    "NaN",
    "{x}",
    "%s",
    "# noqa",
    "__import__('os').system('echo pwned')",
    '"""\nimport os\nos.system("echo pwned")\n"""',
    "\\\n",
    "model_config",
    "class",
    "Field",
    "_private",
    "O",
    "l",
    "$ref",
    "",
]
#: Any text but lone surrogates, which the reader refuses (test_schema_reader.py).
_any_text = st.text(st.characters(exclude_categories=["Cs"]), max_size=24)
text = st.one_of(st.sampled_from(_NASTY), _any_text, st.lists(st.sampled_from(_NASTY)).map("".join))
json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(10**30), max_value=10**30),
    st.floats(allow_nan=False, allow_infinity=False),
    text,
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(text, inner, max_size=3)),
    max_leaves=6,
)
column_types = st.sampled_from(
    [
        {"type": "integer", "format": "int64"},
        {"type": "number", "format": "double"},
        {"type": "string"},
        {"type": "string", "format": "date-time"},
        {"type": "boolean"},
        {"type": "array", "items": {"type": "number"}},
        {"type": "object"},
        {},
        {"type": ["integer", "null"]},
        {"type": "number", "x-nullable": True},
    ]
)


@st.composite
def hostile_swaggers(draw: st.DrawFn) -> tuple[dict[str, Any], str]:
    names = draw(st.lists(text, min_size=1, max_size=6, unique=True))
    columns: dict[str, Any] = {}
    for name in names:
        prop = dict(draw(column_types))
        if draw(st.booleans()):
            prop["example"] = draw(json_values)
        if draw(st.booleans()):
            prop["description"] = draw(text)
        if draw(st.booleans()):
            prop["enum"] = draw(st.lists(json_scalars, max_size=3))
        columns[name] = prop
    row = {name: draw(json_values) for name in names if draw(st.booleans())}
    inputs = draw(st.booleans())
    if inputs:
        global_parameters = draw(st.dictionaries(text, json_scalars, max_size=3))
        if draw(st.booleans()):
            global_parameters["method"] = draw(text)
        body: dict[str, Any] = {
            "type": "object",
            "properties": {
                "Inputs": {
                    "type": "object",
                    "properties": {
                        "data": {
                            "type": "array",
                            "items": {"type": "object", "properties": columns},
                        }
                    },
                },
                "GlobalParameters": {
                    "type": "object",
                    "properties": {key: {"type": "string"} for key in global_parameters},
                },
            },
            "example": {"Inputs": {"data": [row]}, "GlobalParameters": global_parameters},
        }
    else:
        body = {
            "type": "object",
            "properties": {
                "data": {"type": "array", "items": {"type": "object", "properties": columns}},
                **({"method": {"type": "string"}} if draw(st.booleans()) else {}),
            },
            "example": {"data": [row]},
        }
    output_key = draw(st.sampled_from(["Results", "result"]))
    output = {
        "type": "object",
        "properties": {output_key: {"type": "array", "items": dict(draw(column_types))}},
        "example": {output_key: draw(st.lists(json_scalars, max_size=2))},
    }
    doc = {
        "swagger": "2" + draw(text),
        "info": {"title": draw(text), "version": draw(text), "description": draw(text)},
        "paths": {
            "/score": {
                "post": {
                    "summary": draw(text),
                    "parameters": [{"name": draw(text), "in": "body", "schema": body}],
                    "responses": {"200": {"description": draw(text), "schema": output}},
                }
            }
        },
    }
    return doc, draw(text)


class _SideEffects:
    """Audit events that a module import must not cause."""

    FORBIDDEN = (
        "open",
        "os.system",
        "os.exec",
        "os.posix_spawn",
        "os.spawn",
        "os.fork",
        "os.remove",
        "os.rename",
        "os.mkdir",
        "os.chdir",
        "subprocess.Popen",
        "socket.connect",
        "socket.bind",
        "import",
        "ctypes.dlopen",
        "shutil.rmtree",
        "urllib.Request",
        "builtins.input",
        "webbrowser.open",
    )

    def __init__(self) -> None:
        self.recording = False
        self.events: list[str] = []
        sys.addaudithook(self._hook)

    def _hook(self, event: str, args: tuple[Any, ...]) -> None:
        if self.recording and event.startswith(self.FORBIDDEN):
            self.events.append(f"{event}{args!r}"[:200])


_AUDIT = _SideEffects()


def _import(code: str) -> types.ModuleType:
    """Compile and run the generated module under watch, as ``import`` would (registered in
    sys.modules while it runs, so pydantic resolves its annotations)."""
    import collections.abc  # noqa: F401  what a generated module imports: loaded beforehand
    import datetime  # noqa: F401

    from pydantic import AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

    del AliasChoices, BaseModel, ConfigDict, Field, TypeAdapter, ValidationError
    compiled = compile(code, "<generated endpoint_client>", "exec")
    module = types.ModuleType("endpoint_client")
    before = set(sys.modules)
    out, err = io.StringIO(), io.StringIO()
    _AUDIT.events.clear()
    sys.modules["endpoint_client"] = module
    _AUDIT.recording = True
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            exec(compiled, module.__dict__)
    finally:
        _AUDIT.recording = False
        del sys.modules["endpoint_client"]
    assert _AUDIT.events == [], _AUDIT.events
    assert set(sys.modules) == before
    assert out.getvalue() == "" and err.getvalue() == ""
    return module


#: A sample of the fuzzed modules, linted and type-checked together after the fuzz test:
#: the first 40, then every 7th replaces one, so later (richer) examples are kept too.
_SAMPLES: list[str] = []
_SEEN = [0]


def _keep_sample(code: str) -> None:
    _SEEN[0] += 1
    if len(_SAMPLES) < 40:
        _SAMPLES.append(code)
    elif _SEEN[0] % 7 == 0:
        _SAMPLES[(_SEEN[0] // 7) % 40] = code


@pytest.mark.slow  # tens of seconds on a busy 2-core machine
@given(hostile_swaggers())
def test_hostile_text_never_becomes_code(case: tuple[dict[str, Any], str]) -> None:
    doc, source = case
    schema = load_schema(doc)
    code = generate_client(schema, source=source)
    module = _import(code)
    _keep_sample(code)

    assert schema.title == module.TITLE
    assert source == module.SOURCE
    assert doc["swagger"] == module.SWAGGER_VERSION
    fields = module.Row.model_fields
    wire_names = [_wire(name, field) for name, field in fields.items()]
    assert wire_names == schema.column_names, "every column keeps its swagger name, in order"
    assert all(name.isidentifier() for name in fields)
    rows = module.example_rows()
    body = module.build_request(rows)
    data = body["Inputs"]["data"] if "Inputs" in body else body["data"]
    dumped = rows[0].model_dump(by_alias=True)
    assert list(dumped) == schema.column_names
    assert set(data[0]) <= set(schema.column_names)
    assert module.Row.model_validate(dumped) == rows[0], "the wire names read back"


def _wire(name: str, field: Any) -> str:
    alias = field.serialization_alias
    return name if alias is None else str(alias)


# --------------------------------------------------------------------------- known breakages


def _swagger(columns: dict[str, Any], **top: Any) -> dict[str, Any]:
    return {
        "swagger": "2.0",
        "info": {"title": "t", "version": "1"},
        "paths": {
            "/score": {
                "post": {
                    "parameters": [
                        {
                            "name": "b",
                            "in": "body",
                            "schema": {
                                "type": "object",
                                "properties": {
                                    "data": {
                                        "type": "array",
                                        "items": {"type": "object", "properties": columns},
                                    }
                                },
                            },
                        }
                    ],
                    "responses": {"200": {"description": "ok"}},
                }
            }
        },
        **top,
    }


HOSTILE = {
    "docstring_escape": (
        _swagger({'x"""': {"type": "string"}}, swagger='2.0 """ + __import__("os").system("x")'),
        'a.json"""\nimport os\nos.system("echo pwned")\n"""',
    ),
    "superscript_column": (_swagger({"a²": {"type": "integer"}, "a2": {"type": "integer"}}), None),
    "windows_title": (
        _swagger({"n": {"type": "integer"}}, info={"title": "C:\\Users\\me\\new", "version": "1"}),
        "C:\\Users\\me\\swagger.json",
    ),
    "infinity_example": (
        _swagger({"x": {"type": "number", "example": "Infinity"}, "o": {"example": "NaN"}}),
        None,
    ),
    "long_and_wide_names": (
        _swagger(
            {
                "x" * 120: {"type": "integer"},
                "列" * 50: {"type": "string", "example": "値" * 60},
                "y.z" * 40: {"type": "number"},
            },
            info={"title": "題" * 70, "version": "1"},
        ),
        "s" * 200,
    ),
    "nul_and_separators": (
        _swagger({"a\x00b": {"type": "string"}, "c\u2028d": {"type": "boolean"}}),
        "x\x00y",
    ),
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_known_breakages_import(name: str) -> None:
    doc, source = HOSTILE[name]
    schema = load_schema(doc)
    module = _import(generate_client(schema, source=source))
    assert [_wire(n, f) for n, f in module.Row.model_fields.items()] == schema.column_names
    module.build_request(module.example_rows())


@pytest.mark.slow  # tens of seconds on a busy 2-core machine
@pytest.mark.xdist_group("mypy")
def test_known_breakages_and_fuzzed_modules_pass_ruff_and_mypy(
    tmp_path: Path, mypy_cache: Path
) -> None:
    for name, (doc, source) in HOSTILE.items():
        (tmp_path / f"client_{name}.py").write_text(
            generate_client(load_schema(doc), source=source), encoding="utf-8"
        )
    for index, code in enumerate(_SAMPLES):  # filled when the fuzz test ran first
        (tmp_path / f"client_fuzzed_{index}.py").write_text(code, encoding="utf-8")
    for config in (
        ["--config", str(REPO / "pyproject.toml")],
        # a user's stricter settings; swagger text may hold any character (RUF001-3)
        [
            *("--isolated", "--line-length", "88", "--target-version", "py311"),
            *("--select", "E,F,W,I,B,UP,SIM,RUF,C4,PIE,PT,RET", "--ignore", "RUF001,RUF002,RUF003"),
        ],
    ):
        ruff = subprocess.run(
            [sys.executable, "-m", "ruff", "check", *config, "."],
            cwd=tmp_path,
            capture_output=True,
            text=True,
        )
        assert ruff.returncode == 0, ruff.stdout[-3000:]
    mypy = subprocess.run(
        [
            *(sys.executable, "-m", "mypy", "--strict", "--follow-imports=silent"),
            *("--cache-dir", str(mypy_cache), "."),
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"MYPYPATH": str(REPO), "PATH": "/usr/bin:/bin"},
    )
    assert mypy.returncode == 0, mypy.stdout[-3000:]
