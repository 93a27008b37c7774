"""Example rows that an endpoint accepts, built from what its swagger shows.

inference-schema fills examples with ``"example_value"`` and zeros when it has no sample, and
real examples are often of the wrong type (``"True"`` for a boolean). Real values are kept
(converted when needed); placeholders become a plausible value for the column's name (the
datasets these endpoints were trained on are few) or a default of the column's type.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

from pydantic_core import ValidationError as PydanticValidationError

from aml_client.schema.column_types import Bounds, column_type, value_validator

__all__ = ["NOT_CONVERTIBLE", "example_row", "fits", "from_text"]

_PLACEHOLDER_STRINGS = {"example_value", "string", ""}

# Plausible values for columns of the datasets these endpoints were trained on (UCI bank
# marketing, bike sharing, telco churn, city safety), used when a swagger example is a placeholder.
_KNOWN_VALUES: dict[str, Any] = {
    # bank marketing
    "age": 41,
    "job": "blue-collar",
    "marital": "married",
    "education": "university.degree",
    "default": "no",
    "housing": "yes",
    "loan": "no",
    "contact": "cellular",
    "month": "may",
    "day_of_week": "mon",
    "duration": 258,
    "campaign": 2,
    "pdays": 999,
    "previous": 0,
    "poutcome": "nonexistent",
    "emp.var.rate": -1.8,
    "cons.price.idx": 92.893,
    "cons.conf.idx": -46.2,
    "euribor3m": 1.299,
    "nr.employed": 5099.1,
    "y": "no",
    # bike sharing
    "instant": 1,
    "dteday": "2011-01-01",
    "date": "2011-01-01T00:00:00",
    "season": 2,
    "yr": 1,
    "year": 2012,
    "mnth": 6,
    "day": 15,
    "hr": 12,
    "holiday": 0,
    "weekday": 3,
    "workingday": 1,
    "weathersit": 1,
    "temp": 0.52,
    "atemp": 0.5,
    "hum": 0.63,
    "windspeed": 0.19,
    "casual": 331,
    "registered": 654,
    # telco churn
    "customerID": "7590-VHVEG",
    "gender": "Female",
    "SeniorCitizen": 0,
    "Partner": True,
    "Dependents": False,
    "tenure": 12,
    "PhoneService": True,
    "MultipleLines": "No",
    "InternetService": "DSL",
    "OnlineSecurity": "No",
    "OnlineBackup": "Yes",
    "DeviceProtection": "No",
    "TechSupport": "No",
    "StreamingTV": "No",
    "StreamingMovies": "No",
    "Contract": "Month-to-month",
    "PaperlessBilling": True,
    "PaymentMethod": "Electronic check",
    "MonthlyCharges": 29.85,
    "TotalCharges": 358.2,
    # city safety incidents
    "dataType": "Safety",
    "dataSubtype": "911_Fire",
    "dateTime": "2015-06-01T12:00:00Z",
    "category": "Medical Emergency",
    "subcategory": "Other",
    "status": "Closed",
    "address": "100 Main St",
    "latitude": 47.6062,
    "longitude": -122.3321,
    "extendedProperties": "",
}


class _Missing:
    pass


_NO: Any = _Missing()
#: What :func:`from_text` returns for text that does not convert.
NOT_CONVERTIBLE: Any = _NO


def fits(value: Any, kind: str) -> bool:
    """Whether ``value`` is a valid JSON value of ``kind`` as it is."""
    return bool(value_validator(kind).isinstance_python(value))


def from_text(value: Any, kind: str) -> Any:
    """``value`` converted the way a text cell is (``"24"`` -> 24), else NOT_CONVERTIBLE."""
    try:
        return value_validator(kind, text=True).validate_python(value)
    except PydanticValidationError:
        return _NO


def example_row(
    row: Any, row_kind: str, item_type: str | None, columns: Sequence[tuple[str, str, Any]]
) -> Any:
    """A plausible row from one example row (or None): ``columns`` are (name, type, the
    column's own example) of record rows."""
    item = item_type or "any"
    if row_kind == "scalar":
        return _fix_value(row, item, None, placeholder=row in (None, 0))
    if row_kind == "array":
        items = row if isinstance(row, list) and row else [None] * 4
        return [_fix_value(v, item, None, placeholder=False) for v in items]
    if row_kind == "any":
        return row if row is not None else {}
    source = row if isinstance(row, dict) else {}
    placeholder = _looks_like_placeholder(source)
    return {
        name: _fix_value(source.get(name, example), kind, name, placeholder)
        for name, kind, example in columns
    }


def _looks_like_placeholder(row: dict[str, Any]) -> bool:
    """A row of ``"example_value"`` and zeros is inference-schema's filler, not a sample."""
    if not row:
        return True
    values = list(row.values())
    if any(isinstance(v, str) and v in _PLACEHOLDER_STRINGS for v in values):
        return True
    numbers = [v for v in values if isinstance(v, int | float) and not isinstance(v, bool)]
    return bool(numbers) and all(v == 0 for v in numbers)


def _fix_value(value: Any, kind: str, name: str | None, placeholder: bool) -> Any:
    """One example value made a plausible value of ``kind``: placeholders become a known
    value for the column name or the type's default; real values are kept (converted if
    needed)."""
    is_number = isinstance(value, int | float) and not isinstance(value, bool)
    is_placeholder = (
        value is None
        or (isinstance(value, str) and value in _PLACEHOLDER_STRINGS)
        or (placeholder and is_number and value == 0)
    )
    if is_placeholder:
        known = _KNOWN_VALUES.get(name, _NO) if isinstance(name, str) else _NO
        if known is not _NO and fits(known, kind):
            return copy.deepcopy(known)
        return copy.deepcopy(column_type(kind).default)
    if fits(value, kind):
        return value
    if isinstance(value, str):
        converted = from_text(value, kind)
        if converted is not _NO:
            return converted
    if kind == "string" and isinstance(value, int | float | bool):
        return str(value)
    return copy.deepcopy(column_type(kind).default)


def within(value: Any, kind: str, bounds: Bounds) -> Any:
    """``value`` when ``bounds`` allow it, else a value of ``kind`` inside them (the middle of
    a closed range, or one step inside the only bound)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if number and bounds.allows(value):
        return value
    low, high = bounds.low, bounds.high
    step = 1 if kind == "integer" else 0.5
    if low is not None and high is not None:
        middle = (low + high) / 2
        candidate: int | float = round(middle) if kind == "integer" else middle
    elif low is not None:
        candidate = low + step
    elif high is not None:
        candidate = high - step
    else:
        return value
    if kind == "integer":
        candidate = int(candidate)
    return candidate if bounds.allows(candidate) else value
