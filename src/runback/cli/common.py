"""What every command shares: settings from flags, one-line errors, the store."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvloop

from runback import logs
from runback.cli.exits import exit_status
from runback.core.clock import SystemClock
from runback.datadir import prepare_data_dir
from runback.errors import RunbackError
from runback.settings import Settings, load_settings
from runback.store import MigrationProgress, Store, open_database

T = TypeVar("T")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="Directory of the database [env RUNBACK_DATA_DIR; ./runback-data]",
    ),
]


def run(coroutine: Coroutine[Any, Any, T]) -> T:
    """Run a command's coroutine; an error runback expects is one line and the exit status
    of its kind."""
    try:
        return uvloop.run(coroutine)
    except RunbackError as exc:
        typer.echo(f"runback: {exc}", err=True)
        raise typer.Exit(int(exit_status(exc))) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def settings_from(**flags: Any) -> Settings:
    """The settings, flags over ``RUNBACK_*``; a bad value is one line and exit status 2."""
    try:
        return load_settings(**flags)
    except RunbackError as exc:
        typer.echo(f"runback: {exc}", err=True)
        raise typer.Exit(2) from None


def fail(message: str) -> typer.Exit:
    """Say ``message`` on one line; raise the answer to end with exit status 2."""
    typer.echo(f"runback: {message}", err=True)
    return typer.Exit(2)


LogFormat = Annotated[
    str | None,
    typer.Option(
        "--log-format",
        metavar="json|text",
        help="Log lines as JSON objects or text [env RUNBACK_LOG_FORMAT; text on a terminal]",
    ),
]


def setup_logging(settings: Settings) -> None:
    """Logs in the chosen format, with the ids of the work under way, secrets masked."""
    logs.configure(level=settings.log_level, format=settings.log_format)


def say(text: str) -> None:
    print(text, flush=True)


async def with_store(
    settings: Settings,
    work: Callable[[Store, datetime], Awaitable[T]],
    *,
    receiving: bool = False,
    progress: MigrationProgress | None = None,
) -> T:
    """Open (and migrate) the database of ``serve`` (or, ``receiving``, of ``receive``), make
    sure the default organization exists, and do ``work`` with the store and the time now."""
    config = settings.receiving_config() if receiving else settings.config()
    directory = prepare_data_dir(config.server.data_dir)
    if not receiving and "data_dir" not in settings.model_fields_set:
        # The default is relative to where the command runs: say which one it was, so a
        # key made from another directory is not a mystery.
        typer.echo(f"runback: data dir {directory.resolve()}", err=True)
    async with open_database(config.database, progress=progress) as store:
        clock = SystemClock()
        await store.accounts.ensure_default_organization(now=clock.now())
        return await work(store, clock.now())


def when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")
