"""How the client commands print: rich tables with headers for a terminal, or the API's
objects as JSON (``--json``) for scripts.

A table shows ids in full (they are what the next command takes); times are UTC to the
second. JSON keeps the API's field names, times in ISO 8601 and bodies as text.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from enum import Enum
from typing import Any, TypeVar

from rich.console import Console
from rich.table import Table
from rich.text import Text

T = TypeVar("T")


def plain(value: Any) -> Any:
    """A client record (or anything holding them) as the JSON the API answered."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {
            field.name.rstrip("_"): plain(getattr(value, field.name))
            for field in dataclasses.fields(value)
        }
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, bytes):
        return value.decode(errors="replace")
    if isinstance(value, Mapping):
        return {str(key): plain(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [plain(item) for item in value]
    return value


def print_json(value: Any) -> None:
    """One JSON document on one line."""
    print(json.dumps(plain(value), ensure_ascii=False), flush=True)


def cell(value: Any) -> str:
    """A value as a table shows it: ``-`` for nothing."""
    if value is None or value == "":
        return "-"
    if isinstance(value, datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, Enum):
        return str(value.value)
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


UNBOUNDED = 10_000
"""The width of a table printed to a pipe or a file: rows stay whole lines."""


def _console() -> Console:
    console = Console(highlight=False)
    if not console.is_terminal:
        console.width = UNBOUNDED
    return console


def print_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> None:
    """A table with a header row, its cells as ``cell`` shows them; the first column (the
    id) is never cut nor wrapped, the others fold on a narrow terminal."""
    cells = [[cell(value) for value in row] for row in rows]
    table = Table(box=None, pad_edge=False, header_style="bold")
    for index, header in enumerate(headers):
        widest = max((len(row[index]) for row in cells), default=0)
        if index == 0:
            table.add_column(header, no_wrap=True, min_width=max(widest, len(header)))
        else:
            table.add_column(header, overflow="fold")
    for row in cells:
        table.add_row(*(Text(value) for value in row))  # never read as markup
    _console().print(table)


def print_items(
    items: Sequence[T],
    headers: Sequence[str],
    row: Callable[[T], Sequence[Any]],
    *,
    as_json: bool,
) -> None:
    """A list command's answer: one JSON object a line with ``--json``, else a table."""
    if as_json:
        for item in items:
            print_json(item)
    else:
        print_table(headers, (row(item) for item in items))


def print_fields(pairs: Iterable[tuple[str, Any]]) -> None:
    """One object as a two-column table, its field names on the left."""
    table = Table(box=None, pad_edge=False, header_style="bold")
    table.add_column("field", no_wrap=True)
    table.add_column("value", overflow="fold")
    for name, value in pairs:
        table.add_row(Text(name), Text(cell(value)))
    _console().print(table)
