"""From a database row to a core record: the columns named like the record's fields."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from runback.core.records import Delivery
from runback.core.retry import RetryPolicy
from runback.core.states import DeliveryStatus

R = TypeVar("R")


# dataclasses.fields() rebuilds its tuple on every call: hot when claiming many rows.
_FIELD_NAMES: dict[type[Any], tuple[str, ...]] = {}


def to_record(cls: type[R], row: Any, **converted: Any) -> R:
    """``cls`` built from ``row``'s like-named columns (a row of ``runback.store.sql``);
    ``converted`` replaces some of them."""
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in fields(cls))  # type: ignore[arg-type]
    values = {name: getattr(row, name) for name in names if name not in converted}
    return cls(**values, **converted)


def delivery_of(row: Any) -> Delivery:
    """A ``deliveries`` row as its record."""
    return to_record(
        Delivery,
        row,
        status=DeliveryStatus(row.status),
        retry_policy=RetryPolicy.parse(row.retry_policy),
    )
