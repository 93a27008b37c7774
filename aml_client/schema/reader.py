"""Turning bytes, text or a file into a swagger document, with limits.

A swagger usually comes from the endpoint, so its body is untrusted: it is only ever parsed as
JSON (never taken for a file name), and bounded in size, nesting depth and number size, so a
hostile body cannot exhaust memory or the stack. A local file is the user's own, but gets the
same limits. Every failure is one :class:`~aml_client.errors.SchemaError` naming the source.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from aml_client.envelope import json_kind
from aml_client.errors import SchemaError

__all__ = [
    "MAX_DEPTH",
    "MAX_DOCUMENT_BYTES",
    "MAX_NUMBER_DIGITS",
    "SwaggerSource",
    "check_document",
    "parse_document",
    "read_swagger",
]

#: Largest swagger read, in bytes (real ones are a few kB; 20,000 columns is about 2 MB).
MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
#: Deepest nesting of objects and arrays (real swaggers stay below 20).
MAX_DEPTH = 64
#: Longest number literal; Python's int() is quadratic in the digits and refuses > 4300.
MAX_NUMBER_DIGITS = 64

#: What :func:`read_swagger` (and so ``load_schema``) accepts.
SwaggerSource = dict[str, Any] | str | os.PathLike[str]

_BOM = "\ufeff"


def parse_document(body: bytes | str, *, source: str = "swagger") -> dict[str, Any]:
    """Parse a swagger body received from anywhere (an endpoint, a pipe) as JSON.

    The body is never interpreted as a path. ``source`` only names it in messages.
    """
    if isinstance(body, bytes | bytearray):
        if len(body) > MAX_DOCUMENT_BYTES:
            raise SchemaError(f"{source}: larger than {_mib(MAX_DOCUMENT_BYTES)}; not a swagger")
        try:
            text = bytes(body).decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise SchemaError(f"{source}: not UTF-8 text (byte {exc.start})") from None
    elif isinstance(body, str):
        if len(body) > MAX_DOCUMENT_BYTES:
            raise SchemaError(f"{source}: larger than {_mib(MAX_DOCUMENT_BYTES)}; not a swagger")
        text = body
    else:
        raise SchemaError(f"{source}: expected JSON text, got {type(body).__name__}")
    text = text.lstrip(_BOM)
    try:
        doc = json.loads(
            text,
            parse_int=_parse_int,
            parse_float=_parse_float,
            parse_constant=_refuse_constant,
        )
    except json.JSONDecodeError as exc:
        raise SchemaError(
            f"{source}: not valid JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})"
        ) from None
    except _NumberError as exc:
        raise SchemaError(f"{source}: {exc}") from None
    except RecursionError:
        raise SchemaError(f"{source}: nested deeper than {MAX_DEPTH} levels") from None
    except ValueError as exc:  # e.g. a number beyond Python's own int-from-text limit
        raise SchemaError(f"{source}: not valid JSON: {_short(str(exc))}") from None
    if not isinstance(doc, dict):
        raise SchemaError(f"{source}: expected a JSON object, got {json_kind(doc)}")
    check_document(doc, source=source)
    return doc


def read_swagger(source: SwaggerSource) -> tuple[dict[str, Any], str]:
    """The document and a name for it, from a dict, a file path, or JSON text.

    A ``str`` that starts like JSON (``{`` or ``[``) is JSON text; any other ``str`` is a path
    the user gave. Text that came from the network must go through :func:`parse_document`.
    """
    if isinstance(source, dict):
        check_document(source, source="swagger")
        return source, "swagger"
    if isinstance(source, str) and source.lstrip(_BOM + " \t\r\n").startswith(("{", "[")):
        return parse_document(source), "swagger"
    if not isinstance(source, str | os.PathLike):
        raise SchemaError(
            f"expected a swagger file, JSON text or dict, got {type(source).__name__}"
        )
    path = Path(source)
    return parse_document(_read_file(path), source=str(path)), str(path)


def _read_file(path: Path) -> bytes:
    try:
        with open(path, "rb") as handle:
            data = handle.read(MAX_DOCUMENT_BYTES + 1)  # bounded: /dev/zero ends here too
    except FileNotFoundError:
        raise SchemaError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SchemaError(f"{path}: is a directory, not a swagger file") from None
    except (OSError, ValueError) as exc:
        raise SchemaError(f"{path}: cannot read: {exc}") from None
    if len(data) > MAX_DOCUMENT_BYTES:
        raise SchemaError(f"{path}: larger than {_mib(MAX_DOCUMENT_BYTES)}; not a swagger")
    return data


def check_document(doc: dict[str, Any], *, source: str = "swagger") -> None:
    """Refuse what JSON parsing lets through but nothing downstream should meet: nesting
    beyond :data:`MAX_DEPTH`, non-finite or huge numbers, and strings that are not Unicode
    (lone surrogates), which cannot be printed or written to a file.

    Iterative, so a deep document given as a dict cannot exhaust the stack either.
    """
    stack: list[tuple[Any, int]] = [(doc, 1)]
    while stack:
        node, depth = stack.pop()
        if isinstance(node, dict):
            if depth > MAX_DEPTH:
                raise SchemaError(f"{source}: nested deeper than {MAX_DEPTH} levels")
            for key, value in node.items():
                if isinstance(key, str):
                    _check_text(key, source)
                stack.append((value, depth + 1))
        elif isinstance(node, list):
            if depth > MAX_DEPTH:
                raise SchemaError(f"{source}: nested deeper than {MAX_DEPTH} levels")
            stack.extend((value, depth + 1) for value in node)
        elif isinstance(node, str):
            _check_text(node, source)
        elif isinstance(node, float):
            if not math.isfinite(node):
                raise SchemaError(f"{source}: {node} is not a JSON number")
        elif isinstance(node, int) and node.bit_length() > _MAX_INT_BITS:
            raise SchemaError(f"{source}: a number longer than {MAX_NUMBER_DIGITS} digits")


# 10**64 needs 213 bits; anything wider has more digits than MAX_NUMBER_DIGITS allows.
_MAX_INT_BITS = (10**MAX_NUMBER_DIGITS).bit_length()


def _check_text(text: str, source: str) -> None:
    if text.isascii():
        return
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        bad = text[exc.start]
        raise SchemaError(
            f"{source}: a string holds a lone surrogate (\\u{ord(bad):04x}), not valid Unicode"
        ) from None


class _NumberError(ValueError):
    pass


def _parse_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise _NumberError(f"a number longer than {MAX_NUMBER_DIGITS} digits")
    return int(text)


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_DIGITS * 2:
        raise _NumberError(f"a number longer than {MAX_NUMBER_DIGITS * 2} characters")
    value = float(text)
    if not math.isfinite(value):
        raise _NumberError(f"{text} is too large for a JSON number")
    return value


def _refuse_constant(name: str) -> Any:
    raise _NumberError(f"{name} is not JSON")


def _mib(size: int) -> str:
    return f"{size // (1024 * 1024)} MB"


def _short(message: str, limit: int = 200) -> str:
    return message if len(message) <= limit else message[: limit - 1] + "…"
