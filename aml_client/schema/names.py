"""Python names for swagger names: a column ``emp.var.rate`` is the attribute ``emp_var_rate``.

Used by the run-time pydantic models and by generated code alike, so a column has the same
attribute everywhere. The result is always a valid identifier that Python reads back as the
same name (identifiers are NFKC-normalised by the parser, so ``ﬁ`` would silently become
``fi``), never a keyword, a builtin, a name the generated module uses, or a pydantic name.
"""

from __future__ import annotations

import builtins
import keyword
import re
import unicodedata
from functools import cache

__all__ = ["model_name", "python_name"]

#: Names an attribute must not take: they are used in generated modules or mean something to
#: pydantic.
_RESERVED = set(dir(builtins)) | {
    "Any",
    "AliasChoices",
    "BaseModel",
    "ConfigDict",
    "Field",
    "Final",
    "TypeAdapter",
    "TypeAlias",
    "datetime",
    "model_config",
    "model_fields",
    "self",
    # linters refuse them as names (E741: easily mistaken for 1 and 0)
    "l",
    "O",
    "I",
}
_ASCII_WORD = re.compile(r"[^0-9A-Za-z_]")


@cache
def _pydantic_names() -> frozenset[str]:
    from pydantic import BaseModel

    return frozenset(dir(BaseModel))


def _identifier_chars(name: str) -> str:
    """``name`` with every character that cannot stay in an identifier replaced by ``_``."""
    out = []
    for char in name:
        keep = ("a" + char).isidentifier() and unicodedata.normalize("NFKC", char) == char
        out.append(char if keep else "_")
    text = "".join(out)
    if unicodedata.normalize("NFKC", text) != text:  # combining marks compose: stay ASCII
        text = _ASCII_WORD.sub("_", name)
    return text


def python_name(name: str, taken: set[str]) -> str:
    """A valid, unused attribute name for a column (``emp.var.rate`` -> ``emp_var_rate``);
    ``taken`` collects the names given so far."""
    attr = _identifier_chars(str(name)).strip("_") or "column"
    if not attr[0].isidentifier():
        attr = f"f_{attr}"
    if attr.startswith("model_"):  # pydantic keeps that namespace for itself
        attr = f"f_{attr}"
    elif (
        keyword.iskeyword(attr)
        or keyword.issoftkeyword(attr)
        or attr in _RESERVED
        or attr in _pydantic_names()
    ):
        attr = f"{attr}_"
    base, number = attr, 2
    while attr in taken:
        attr = f"{base}_{number}"
        number += 1
    taken.add(attr)
    return attr


def model_name(title: str, suffix: str) -> str:
    """A class name from an endpoint's title (``bank marketing`` -> ``BankMarketingRow``)."""
    words = re.findall(r"[A-Za-z0-9]+", str(title))
    stem = "".join(w[:1].upper() + w[1:] for w in words) or "Endpoint"
    if stem[0].isdigit():
        stem = f"E{stem}"
    return f"{stem}{suffix}"
