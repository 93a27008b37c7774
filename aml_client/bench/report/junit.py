"""JUnit XML for CI systems: one test case per objective (``--slo``) or gate (``--fail-on``).

The format is the one Jenkins, GitLab, GitHub Actions reporters and Azure Pipelines read:
``<testsuites><testsuite name tests failures><testcase classname name time><failure
message>…``. Written with the standard library's ElementTree (it escapes every value).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path

__all__ = ["Case", "write_junit"]


@dataclass(frozen=True)
class Case:
    """One test case: ``failure`` is the message when it failed, None when it passed."""

    name: str
    failure: str | None = None
    output: str = ""


def write_junit(path: str | Path, suite: str, cases: list[Case], *, time_s: float = 0.0) -> None:
    """Write ``cases`` as one test suite named ``suite`` to ``path``."""
    failures = sum(1 for c in cases if c.failure is not None)
    root = ET.Element("testsuites", tests=str(len(cases)), failures=str(failures))
    element = ET.SubElement(root, "testsuite", name=suite, tests=str(len(cases)),
                            failures=str(failures), errors="0", time=f"{time_s:.3f}")
    for case in cases:
        node = ET.SubElement(element, "testcase", classname=suite, name=case.name, time="0")
        if case.failure is not None:
            failure = ET.SubElement(node, "failure", message=case.failure, type="objective")
            failure.text = case.failure
        if case.output:
            ET.SubElement(node, "system-out").text = case.output
    ET.indent(root)
    Path(path).write_bytes(ET.tostring(root, encoding="utf-8", xml_declaration=True) + b"\n")
