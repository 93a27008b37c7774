"""pydantic models of one endpoint's row, request and response, built at run time.

For callers who want typed objects (and a JSON Schema) rather than dicts. Row fields use the
same core schemas as row validation, so a model and ``validate_rows`` accept the same values;
field names are Python-safe and the swagger's names are kept as aliases.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated, Any, cast

import pydantic
from pydantic import ConfigDict, Field, GetPydanticSchema, RootModel
from pydantic_core import CoreSchema
from pydantic_core import core_schema as cs

from aml_client.envelope import Convention
from aml_client.schema.column_types import Bounds, column_type, value_schema
from aml_client.schema.names import model_name, python_name
from aml_client.schema.validation import ColumnSpec

__all__ = ["request_model", "response_model", "row_model"]


def _typed(schema: CoreSchema) -> Any:
    """An annotation whose validation is exactly ``schema``."""
    return Annotated[Any, GetPydanticSchema(lambda _type, _handler: schema)]


def _list_of(item: Any) -> Any:
    """``list[item]`` for a type only known at run time."""
    return list.__class_getitem__(item)


def _root_model(item: Any) -> type[pydantic.BaseModel]:
    """``RootModel[item]`` for a type only known at run time."""
    return cast(type[pydantic.BaseModel], RootModel.__class_getitem__(item))


def row_type(
    row_kind: str,
    item_type: str | None,
    record: type[pydantic.BaseModel] | None,
    item_bounds: Bounds | None = None,
) -> Any:
    """The annotation of one row."""
    if row_kind == "record" and record is not None:
        return record
    item = value_schema(item_type or "any", bounds=item_bounds)
    if row_kind == "scalar":
        return _typed(item)
    if row_kind == "array":
        return _typed(cs.list_schema(item, strict=True))
    return Any


def row_model(
    title: str, row_kind: str, item_type: str | None, columns: Sequence[ColumnSpec]
) -> type[pydantic.BaseModel]:
    """A model of one row; non-record rows are a RootModel of the row's type."""
    if row_kind != "record":
        return _root_model(row_type(row_kind, item_type, None))
    fields: dict[str, Any] = {}
    taken: set[str] = set()
    for name, kind, nullable, bounds in columns:
        attr = python_name(name, taken)
        value = value_schema(kind, nullable=nullable, bounds=bounds)
        fields[attr] = (_typed(value), Field(alias=name))
    config = ConfigDict(extra="forbid", populate_by_name=True)
    return pydantic.create_model(model_name(title, "Row"), __config__=config, **fields)


def request_model(
    title: str, convention: Convention, method_field: bool, row: Any
) -> type[pydantic.BaseModel]:
    """A model of the whole request body in ``convention``, rows of type ``row``."""
    rows = _list_of(row)
    config = ConfigDict(extra="forbid", populate_by_name=True)
    name = model_name(title, "Request")
    if convention is Convention.INPUTS:
        inputs = pydantic.create_model(
            model_name(title, "Inputs"), __config__=config, data=(rows, ...)
        )
        return pydantic.create_model(
            name,
            __config__=config,
            inputs=(inputs, Field(alias="Inputs")),
            global_parameters=(
                dict[str, Any] | float | None,
                Field(default=None, alias="GlobalParameters"),
            ),
        )
    extra: dict[str, Any] = {}
    if method_field:
        extra["method"] = (str | None, None)
    return pydantic.create_model(name, __config__=config, data=(rows, ...), **extra)


def response_model(
    title: str, output_kind: str, output_item_type: str | None
) -> type[pydantic.BaseModel]:
    """A lenient model of the response: declared output types are often wrong (int64
    declared, floats returned), so numbers accept any number."""
    item = column_type(output_item_type).response
    name = model_name(title, "Response")
    if output_kind in ("Results[]", "result[]"):
        key = output_kind[:-2]
        return pydantic.create_model(
            name, __config__=ConfigDict(extra="allow"), items=(_list_of(item), Field(alias=key))
        )
    if output_kind == "array":
        return _root_model(_list_of(item))
    return _root_model(Any)
