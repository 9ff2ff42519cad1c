"""Schema migrations, run by every command before it touches the database.

A new or older database is upgraded to this runback's head revision; a database stamped with a
revision this runback does not know was written by a newer runback and is refused, because
running old code on a newer schema can lose data.
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any, Protocol

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import Connection

from runback.errors import SchemaOutdatedError, SchemaTooNewError
from runback.store.database import Database


class MigrationProgress(Protocol):
    """Told how many revisions a migration will apply, then of each one applied."""

    def start(self, total: int) -> None: ...

    def step(self, revision: str, description: str) -> None: ...


def _config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(files("runback.store") / "migrations"))
    config.set_main_option("path_separator", "os")
    return config


def head_revision() -> str:
    """The schema revision this runback writes."""
    head = ScriptDirectory.from_config(_config()).get_current_head()
    assert head is not None
    return head


# Any constant: processes that start together take turns migrating.
_MIGRATION_LOCK = 0x72756E62


def _current(connection: Connection, script: ScriptDirectory) -> str | None:
    """The database's revision; ``SchemaTooNewError`` when this runback does not know it."""
    current = MigrationContext.configure(connection).get_current_revision()
    if current is not None:
        try:
            script.get_revision(current)
        except CommandError:
            raise SchemaTooNewError(
                f"the database is at schema revision {current}, newer than this runback "
                f"knows (head {script.get_current_head()}): upgrade runback to use it"
            ) from None
    return current


def _upgrade(connection: Connection, progress: MigrationProgress | None) -> str | None:
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({_MIGRATION_LOCK})")
    config = _config()
    script = ScriptDirectory.from_config(config)
    current = _current(connection, script)
    if current == script.get_current_head():
        return current
    config.attributes["connection"] = connection
    if progress is not None:
        pending = list(script.iterate_revisions("head", current))
        progress.start(len(pending))
        config.attributes["on_version_apply"] = _reporting(progress)
    command.upgrade(config, "head")
    return current


def _reporting(progress: MigrationProgress) -> Any:
    """Alembic's ``on_version_apply`` hook, telling ``progress`` of each revision."""

    def applied(*, step: Any, **_: Any) -> None:
        progress.step(step.up_revision_id, step.up_revision.doc or "")

    return applied


def _check(connection: Connection) -> None:
    script = ScriptDirectory.from_config(_config())
    current = _current(connection, script)
    if current != script.get_current_head():
        raise SchemaOutdatedError(
            f"the database is at schema revision {current or 'none'}, this runback needs "
            f"{script.get_current_head()}: run 'runback migrate' (automatic migration is off)"
        )


async def migrate(database: Database, progress: MigrationProgress | None = None) -> str | None:
    """Bring the schema to this runback's head, telling ``progress`` of each revision
    applied; answer the revision it was at before."""
    engine = database.migration_engine()
    try:
        async with engine.begin() as connection:
            before: str | None = await connection.run_sync(_upgrade, progress)
            return before
    finally:
        await engine.dispose()


async def check_schema(database: Database) -> None:
    """Raise unless the database is reachable and at this runback's schema revision."""
    engine = database.migration_engine()
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_check)
    finally:
        await engine.dispose()
