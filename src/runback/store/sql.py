"""SQL on the drivers' own connections: ``sqlite3`` and asyncpg, no ORM layer in between.

Statements are SQLAlchemy Core expressions, defined once for both databases. Each is compiled
for the connection's dialect into SQL text, the order of its parameters and their converters
(the column types' own bind and result processors), then run by the driver: a one-statement
transaction through SQLAlchemy's async layer cost about 330 µs of CPU here, the driver 16 µs.
The hot statements are ``prepared``: compiled once per dialect and kept (asyncpg also
prepares them once per connection); any other statement is compiled where it is run.

A list parameter is ``any_of(column, name)``: ``col IN (SELECT value FROM json_each(?))`` on
SQLite, ``col IN (SELECT unnest($n))`` on PostgreSQL, so a statement with a list stays one
statement whatever the list's length.
"""

from __future__ import annotations

import re
import sqlite3
from collections import namedtuple
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias, cast

import asyncpg
import orjson
from sqlalchemy import ARRAY, BindParameter, ColumnElement, Text, bindparam
from sqlalchemy.engine import Dialect
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql import ClauseElement
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.dml import Insert, Update
from sqlalchemy.types import TypeDecorator, TypeEngine

from runback.errors import StoreError

Params = Mapping[str, Any]
Row: TypeAlias = Any
"""A row a statement answered: a named tuple of its columns."""


class IntegrityError(StoreError):
    """A statement broke a constraint (a unique index, a foreign key); the message names it.
    Translated from either driver, and turned into a runback error by the store."""


# -- lists as one parameter ---------------------------------------------------------------


class _JsonList(TypeDecorator[list[Any]]):
    """A list sent to SQLite as one JSON array, each item converted as its column's type."""

    impl = Text
    cache_ok = True

    def __init__(self, item: TypeEngine[Any]) -> None:
        super().__init__()
        self.item = item

    def process_bind_param(self, value: Any, dialect: Dialect) -> str:
        convert = self.item.dialect_impl(dialect).bind_processor(dialect)
        items = list(value) if convert is None else [convert(v) for v in value]
        return orjson.dumps(items).decode()


class _ListOf(ColumnElement[Any]):
    """The items of list parameter ``name`` as a one-column subquery."""

    inherit_cache = True

    def __init__(self, name: str, item: TypeEngine[Any]) -> None:
        self.name = name
        self.item = item


@compiles(_ListOf, "sqlite")
def _list_sqlite(element: _ListOf, compiler: SQLCompiler, **kw: Any) -> str:
    values = compiler.process(bindparam(element.name, type_=_JsonList(element.item)), **kw)
    return f"(SELECT value FROM json_each({values}))"


@compiles(_ListOf, "postgresql")
def _list_postgresql(element: _ListOf, compiler: SQLCompiler, **kw: Any) -> str:
    values = compiler.process(bindparam(element.name, type_=ARRAY(element.item)), **kw)
    return f"(SELECT unnest({values}))"


def any_of(column: ColumnElement[Any], name: str) -> ColumnElement[bool]:
    """``column`` is one of the list given as parameter ``name``: a comparison the planner
    answers from ``column``'s index, whatever the list's length."""
    return column.op("IN", is_comparison=True)(_ListOf(name, column.type))


# -- compiled statements ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Compiled:
    """A statement as one dialect's driver takes it."""

    sql: str
    names: tuple[str, ...]
    """The parameters, in the order the SQL takes them."""
    defaults: tuple[Any, ...]
    """Values the expression itself holds (``status == 'pending'``), by position."""
    required: tuple[bool, ...]
    converters: tuple[Callable[[Any], Any] | None, ...]
    row: type[tuple[Any, ...]] | None
    """The rows it answers (a named tuple), or None."""
    readers: tuple[Callable[[Any], Any] | None, ...]

    def arguments(self, params: Params | None) -> tuple[Any, ...]:
        given = params or {}
        values = []
        for name, default, required, convert in zip(
            self.names, self.defaults, self.required, self.converters, strict=True
        ):
            if name in given:
                value = given[name]
            elif required:
                raise StoreError(f"the statement needs a value for {name!r}: {self.sql}")
            else:
                value = default
            values.append(value if convert is None or value is None else convert(value))
        return tuple(values)

    def rows(self, raw: Sequence[Sequence[Any]]) -> list[tuple[Any, ...]]:
        assert self.row is not None
        make, readers = self.row._make, self.readers  # type: ignore[attr-defined]
        if not any(readers):
            return [make(values) for values in raw]
        return [
            make(
                value if read is None or value is None else read(value)
                for value, read in zip(values, readers, strict=True)
            )
            for values in raw
        ]


_EXPANDED = re.compile(r"_\d+$")


def compile_for(
    statement: ClauseElement,
    dialect: Dialect,
    *,
    keys: Sequence[str] | None = None,
    params: Params | None = None,
) -> Compiled:
    """``statement`` compiled for ``dialect``; ``keys``, an insert's or update's columns
    given as parameters (all of the table's, for an insert without them). With ``params``
    (a statement compiled where it is run), lists in the expression (``in_([...])``)
    become one parameter per item."""
    compiled = cast(
        SQLCompiler,
        statement.compile(
            dialect=dialect,
            column_keys=list(keys) if keys is not None else None,
            compile_kwargs={"render_postcompile": True},
        ),
    )
    names = tuple(compiled.positiontup or ())
    binds: list[BindParameter[Any]] = []
    for name in names:
        found = compiled.binds.get(name)
        if found is None:  # one item of a list rendered as a parameter each
            found = compiled.binds.get(_EXPANDED.sub("", name))
        assert found is not None, name
        binds.append(found)
    if params is not None:
        values = compiled.construct_params(params) if names else {}
        defaults = tuple(values.get(name) for name in names)
        required = tuple(False for _ in names)
    else:
        defaults = tuple(None if b.required else b.value for b in binds)
        required = tuple(bool(b.required) for b in binds)
    columns = list(getattr(statement, "exported_columns", ()))
    row_type: type[tuple[Any, ...]] | None = None
    readers: tuple[Callable[[Any], Any] | None, ...] = ()
    if columns:
        labels = [c.key or c.name or f"c{i}" for i, c in enumerate(columns)]
        row_type = namedtuple("Row", labels, rename=True)  # type: ignore[misc,no-redef]
        readers = tuple(
            c.type.dialect_impl(dialect).result_processor(dialect, None) for c in columns
        )
    return Compiled(
        sql=str(compiled),
        names=names,
        defaults=defaults,
        required=required,
        converters=tuple(b.type.dialect_impl(dialect).bind_processor(dialect) for b in binds),
        row=row_type,
        readers=readers,
    )


@dataclass(eq=False)
class Prepared:
    """A hot statement: compiled once per dialect (and, for an insert or update, per set of
    columns given), then kept. Every value it varies by is a ``bindparam``."""

    statement: ClauseElement
    _compiled: dict[tuple[str, tuple[str, ...] | None], Compiled] = field(
        default_factory=dict, repr=False
    )

    def compiled_for(self, dialect: Dialect) -> list[Compiled]:
        """Every form compiled for ``dialect`` so far (an insert: one per set of columns)."""
        return [c for (name, _), c in self._compiled.items() if name == dialect.name]

    def compiled(self, dialect: Dialect, keys: tuple[str, ...] | None = None) -> Compiled:
        found = self._compiled.get((dialect.name, keys))
        if found is None:
            found = self._compiled[(dialect.name, keys)] = compile_for(
                self.statement, dialect, keys=keys
            )
        return found


def prepared(statement: ClauseElement) -> Prepared:
    """Mark a statement hot: compiled once per dialect, at its first use, and kept."""
    return Prepared(statement)


# -- results ------------------------------------------------------------------------------


class Scalars(list[Any]):
    """The first column of every row."""

    def all(self) -> list[Any]:
        return list(self)


@dataclass(slots=True)
class Result:
    """What a statement answered: its rows (named tuples) and how many rows it changed."""

    found: list[tuple[Any, ...]]
    rowcount: int

    def __iter__(self) -> Iterator[Any]:
        return iter(self.found)

    def all(self) -> list[Any]:
        return list(self.found)

    def first(self) -> Any:
        return self.found[0] if self.found else None

    def one(self) -> Any:
        if len(self.found) != 1:
            raise StoreError(f"expected one row, got {len(self.found)}")
        return self.found[0]

    def scalar(self) -> Any:
        return self.found[0][0] if self.found else None

    def scalar_one(self) -> Any:
        return self.one()[0]

    def scalars(self) -> Scalars:
        return Scalars(row[0] for row in self.found)


# -- connections --------------------------------------------------------------------------

Statement = ClauseElement | Prepared
Tracer = Callable[[str, Sequence[Any]], None]


class Connection:
    """A connection inside one transaction: ``execute`` runs a statement (with one set of
    parameters, or many), ``sql`` runs SQL text as is."""

    dialect: Dialect
    tracers: list[Tracer]

    def _compile(self, statement: Statement, params: Params | None) -> Compiled:
        if isinstance(statement, Prepared):
            dml = params and isinstance(statement.statement, Insert | Update)
            return statement.compiled(self.dialect, tuple(params) if dml and params else None)
        keys = list(params) if params and isinstance(statement, Insert | Update) else None
        return compile_for(statement, self.dialect, keys=keys, params=params or {})

    async def execute(
        self, statement: Statement, params: Params | Sequence[Params] | None = None
    ) -> Result:
        if params is not None and not isinstance(params, Mapping):
            many = list(params)
            if not many:
                return Result([], 0)
            compiled = self._compile(statement, many[0])
            arguments = [compiled.arguments(p) for p in many]
            for trace in self.tracers:
                trace(compiled.sql, arguments)
            return await self._run_many(compiled, arguments)
        compiled = self._compile(statement, params)
        arguments_one = compiled.arguments(params)
        for trace in self.tracers:
            trace(compiled.sql, arguments_one)
        return await self._run(compiled, arguments_one)

    async def _run(self, compiled: Compiled, arguments: tuple[Any, ...]) -> Result:
        raise NotImplementedError

    async def _run_many(self, compiled: Compiled, arguments: list[tuple[Any, ...]]) -> Result:
        raise NotImplementedError

    async def sql(self, text: str, arguments: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        """Run SQL text as the driver takes it (``?`` or ``$n`` placeholders)."""
        raise NotImplementedError


class SqliteConnection(Connection):
    """A ``sqlite3`` connection, called on the event loop's thread (see ``database``)."""

    def __init__(self, raw: sqlite3.Connection, dialect: Dialect, tracers: list[Tracer]) -> None:
        self.raw = raw
        self.dialect = dialect
        self.tracers = tracers

    async def _run(self, compiled: Compiled, arguments: tuple[Any, ...]) -> Result:
        try:
            cursor = self.raw.execute(compiled.sql, arguments)
            rows = compiled.rows(cursor.fetchall()) if compiled.row is not None else []
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return Result(rows, cursor.rowcount if compiled.row is None else len(rows))

    async def _run_many(self, compiled: Compiled, arguments: list[tuple[Any, ...]]) -> Result:
        try:
            cursor = self.raw.executemany(compiled.sql, arguments)
        except sqlite3.IntegrityError as exc:
            raise IntegrityError(str(exc)) from exc
        return Result([], cursor.rowcount)

    async def sql(self, text: str, arguments: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in self.raw.execute(text, tuple(arguments)).fetchall()]


_COUNT = re.compile(r"(\d+)$")


class PostgresConnection(Connection):
    """An asyncpg connection; asyncpg prepares each statement once per connection."""

    def __init__(self, raw: asyncpg.Connection, dialect: Dialect, tracers: list[Tracer]) -> None:
        self.raw = raw
        self.dialect = dialect
        self.tracers = tracers

    async def _run(self, compiled: Compiled, arguments: tuple[Any, ...]) -> Result:
        try:
            if compiled.row is not None:
                rows = compiled.rows(await self.raw.fetch(compiled.sql, *arguments))
                return Result(rows, len(rows))
            status = await self.raw.execute(compiled.sql, *arguments)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(f"{exc} ({exc.constraint_name})") from exc
        found = _COUNT.search(status or "")
        return Result([], int(found.group(1)) if found else 0)

    async def _run_many(self, compiled: Compiled, arguments: list[tuple[Any, ...]]) -> Result:
        try:
            await self.raw.executemany(compiled.sql, arguments)
        except asyncpg.IntegrityConstraintViolationError as exc:
            raise IntegrityError(f"{exc} ({exc.constraint_name})") from exc
        return Result([], len(arguments))

    async def sql(self, text: str, arguments: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return [tuple(row) for row in await self.raw.fetch(text, *arguments)]
