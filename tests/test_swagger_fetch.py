"""Reading a swagger document from a file (aml_client.swagger.fetch). Fetching one from an
endpoint, over real HTTP, is in tests/integration/test_swagger_fetch_http.py."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from support.swaggers import ROWS_OF_AGE, minimal_swagger

from aml_client.errors import SchemaError
from aml_client.swagger.fetch import read_document


def test_read_document_tolerates_bom_and_crlf(tmp_path: Path) -> None:
    path = tmp_path / "s.json"
    path.write_bytes(
        b"\xef\xbb\xbf" + json.dumps(minimal_swagger(ROWS_OF_AGE)).encode().replace(b",", b",\r\n")
    )
    assert read_document(path)["swagger"] == "2.0"


def test_read_document_names_the_line_of_bad_json(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text('{\n  "swagger": "2.0",\n  oops\n}\n')
    with pytest.raises(SchemaError, match=r"bad\.json: not valid JSON: .*line 3, column 3"):
        read_document(path)
    with pytest.raises(SchemaError, match="no such file"):
        read_document(tmp_path / "missing.json")
    path.write_text("[1, 2]")
    with pytest.raises(SchemaError, match="expected a JSON object"):
        read_document(path)
