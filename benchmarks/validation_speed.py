"""How fast are rows checked against the swagger, now on pydantic, compared with the
hand-written validator it replaced? And how long does ``amlc swagger validate`` take on a
swagger with 20,000 columns? (Wall and CPU time are both shown: on a shared machine the wall
time also counts other work.)

Rows: 200-row batches of real bank-marketing rows (the local endpoint's training data) checked
against a real AutoML swagger, the three ways amlc checks them:

- ``json``: JSON rows, strict (``Endpoint.score``, the batch path for JSON input);
- ``csv batch``: rows of text converted to the declared types (the batch path for CSV);
- ``csv rows``: one CSV line at a time (``coerce_row``, as ``rows.py`` reads a file).

The old validator is loaded from git history (commit 4c06f7d, before the change) into a
temporary module, not kept in the tree. Old and new run interleaved, in random order, on the
same batches, so drift and other load hit both alike; the headline is the ratio of medians.

    python -m benchmarks.validation_speed [-n 300] [--columns 20000] [--json]
"""

from __future__ import annotations

import argparse
import csv
import gzip
import io
import json
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

OLD_COMMIT = "4c06f7d"
SWAGGER = ROOT / "tests" / "fixtures" / "corpus" / "swagger" / "004-abhijit-kalita.json"
DATA = ROOT / "aml_client" / "local" / "data" / "bankmarketing_train.csv.gz"
BATCH = 200
INTEGERS = {"age", "duration", "campaign", "pdays", "previous"}
NUMBERS = {"emp.var.rate", "cons.price.idx", "cons.conf.idx", "euribor3m", "nr.employed"}


def old_schema_module() -> types.ModuleType:
    """``aml_client/schema.py`` as it was before the change, as a throwaway module."""
    source = subprocess.run(
        ["git", "show", f"{OLD_COMMIT}:aml_client/schema.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType("_amlc_old_schema")
    sys.modules[module.__name__] = module  # dataclasses look their module up
    exec(compile(source, f"{OLD_COMMIT}:aml_client/schema.py", "exec"), module.__dict__)
    return module


def text_rows(count: int) -> list[dict[str, str]]:
    """Real rows as CSV text, without the label column."""
    with gzip.open(DATA, "rt", encoding="utf-8", newline="") as handle:
        reader = csv.DictReader(handle)
        rows = []
        for row in reader:
            row.pop("y", None)
            rows.append(row)
            if len(rows) >= count:
                break
    return rows


def typed(row: dict[str, str]) -> dict[str, Any]:
    """A row as a careful caller writes it in JSON."""
    out: dict[str, Any] = {}
    for name, value in row.items():
        if name in INTEGERS:
            out[name] = int(value)
        elif name in NUMBERS:
            out[name] = float(value)
        else:
            out[name] = value
    return out


def _median_us(samples: list[float]) -> float:
    return statistics.median(samples) * 1e6


def compare(repeats: int) -> dict[str, Any]:
    from aml_client.schema import load_schema

    old = old_schema_module().load_schema(SWAGGER)
    new = load_schema(SWAGGER)
    texts = text_rows(BATCH * 10)
    batches_text = [texts[i : i + BATCH] for i in range(0, len(texts), BATCH)]
    batches_json = [[typed(r) for r in batch] for batch in batches_text]
    for batch in batches_json:  # both accept real rows, and agree on them
        assert old.validate_rows(batch) == new.validate_rows(batch)
    for batch in batches_text:
        assert old.validate_rows(batch, coerce=True) == new.validate_rows(batch, coerce=True)

    cases: dict[str, Callable[[Any, list[Any]], Any]] = {
        "json": lambda schema, batch: schema.validate_rows(batch),
        "csv batch": lambda schema, batch: schema.validate_rows(batch, coerce=True),
        "csv rows": lambda schema, batch: [schema.coerce_row(row) for row in batch],
    }
    inputs = {"json": batches_json, "csv batch": batches_text, "csv rows": batches_text}
    timings: dict[str, dict[str, list[float]]] = {c: {"old": [], "new": []} for c in cases}
    rng = random.Random(7)
    for repeat in range(repeats + 20):  # the first 20 warm both up
        for case, run in cases.items():
            batch = inputs[case][repeat % len(inputs[case])]
            order = [("old", old), ("new", new)]
            rng.shuffle(order)
            for label, schema in order:
                started = time.perf_counter()
                run(schema, batch)
                elapsed = time.perf_counter() - started
                if repeat >= 20:
                    timings[case][label].append(elapsed)
    results = {}
    for case, pair in timings.items():
        old_us, new_us = _median_us(pair["old"]), _median_us(pair["new"])
        results[case] = {
            "old_us": round(old_us, 1),
            "new_us": round(new_us, 1),
            "speedup": round(old_us / new_us, 2),
        }
    return results


def wide_validate(columns: int) -> dict[str, Any]:
    """``amlc swagger validate`` on a swagger with ``columns`` columns: the library call, and
    the whole command in a fresh process (imports and JSON output included)."""
    from support.swaggers import wide_swagger

    from aml_client.swagger.lint import validate_document

    doc = wide_swagger(columns)
    validate_document(wide_swagger(10))  # imports and caches, as a warm process has them
    started, cpu = time.perf_counter(), time.process_time()
    report = validate_document(doc)
    library_s, library_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    assert report.ok, [str(f) for f in report.findings[:3]]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "wide.json"
        path.write_text(json.dumps(doc), encoding="utf-8")
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.perf_counter()
        done = subprocess.run(
            [sys.executable, "-m", "aml_client", "swagger", "validate", str(path), "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
        )
        command_s = time.perf_counter() - started
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert done.returncode == 0, done.stderr[-500:]
    command_cpu_s = (after.ru_utime + after.ru_stime) - (children.ru_utime + children.ru_stime)
    # The worst case for the structural check: no two column schemas alike.
    items = doc["definitions"]["ServiceInput"]["properties"]["data"]["items"]
    for index, prop in enumerate(items["properties"].values()):
        prop["description"] = f"column {index}"
    started, cpu = time.perf_counter(), time.process_time()
    assert validate_document(doc).ok
    distinct_s, distinct_cpu_s = time.perf_counter() - started, time.process_time() - cpu
    return {
        "columns": columns,
        "library_s": round(library_s, 2),
        "library_cpu_s": round(library_cpu_s, 2),
        "command_s": round(command_s, 2),
        "command_cpu_s": round(command_cpu_s, 2),
        "distinct_s": round(distinct_s, 2),
        "distinct_cpu_s": round(distinct_cpu_s, 2),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=300, help="measured batches per case")
    parser.add_argument("--columns", type=int, default=20_000, help="columns of the wide swagger")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args(argv)
    figures = {"batches": compare(args.n), "validate": wide_validate(args.columns)}
    if args.json:
        print(json.dumps(figures, indent=2))
        return
    out = io.StringIO()
    out.write(f"200-row batches, median of {args.n} (old = {OLD_COMMIT}, new = pydantic)\n")
    for case, row in figures["batches"].items():
        out.write(
            f"  {case:<10} old {row['old_us']:>9.1f} us   new {row['new_us']:>9.1f} us   "
            f"{row['speedup']:.2f}x faster\n"
        )
    wide = figures["validate"]
    out.write(
        f"swagger validate, {wide['columns']:,} columns (target < 5 s):\n"
        f"  library call   {wide['library_s']:.2f} s wall, {wide['library_cpu_s']:.2f} s CPU\n"
        f"  whole command  {wide['command_s']:.2f} s wall, {wide['command_cpu_s']:.2f} s CPU "
        "(a fresh process: imports, reading, output)\n"
        f"  library call   {wide['distinct_s']:.2f} s wall, {wide['distinct_cpu_s']:.2f} s CPU "
        "with every column schema different (a description each)\n"
    )
    print(out.getvalue(), end="")


if __name__ == "__main__":
    main()
