"""From a database row to a core record: the columns named like the record's fields."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from sqlalchemy import Row

R = TypeVar("R")


def to_record(cls: type[R], row: Row[Any], **converted: Any) -> R:
    """``cls`` built from ``row``'s like-named columns; ``converted`` replaces some of them."""
    mapping = row._mapping
    values = {
        field.name: mapping[field.name]
        for field in fields(cls)  # type: ignore[arg-type]
        if field.name not in converted
    }
    return cls(**values, **converted)
