"""The ``runback`` command line.

Each command builds the one ``Settings`` from its flags and ``RUNBACK_*`` variables, then
hands it down. Errors runback expects print as one line on stderr (exit status 1), never as a
traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Coroutine
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvloop

from runback.core.clock import SystemClock
from runback.errors import RunbackError
from runback.models import register_builtins
from runback.provider.datadir import prepare_data_dir
from runback.provider.registry import ModelRegistry
from runback.provider.server import serve as serve_forever
from runback.settings import Settings, load_settings
from runback.store import open_store

T = TypeVar("T")

app = typer.Typer(
    name="runback",
    help="Long-running jobs that call back.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
app.add_typer(keys_app, name="keys")

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir", help="Directory of the database [env RUNBACK_DATA_DIR; ./runback-data]"
    ),
]


def _run(coroutine: Coroutine[Any, Any, T]) -> T:
    try:
        return uvloop.run(coroutine)
    except RunbackError as exc:
        typer.echo(f"runback: {exc}", err=True)
        raise typer.Exit(1) from None
    except KeyboardInterrupt:
        raise typer.Exit(130) from None


def _settings(**flags: Any) -> Settings:
    try:
        return load_settings(**flags)
    except RunbackError as exc:
        typer.echo(f"runback: {exc}", err=True)
        raise typer.Exit(2) from None


@app.command()
def serve(
    host: Annotated[
        str | None, typer.Option(help="Address to listen on [env RUNBACK_HOST; 127.0.0.1]")
    ] = None,
    port: Annotated[
        int | None, typer.Option(help="Port to listen on, 0 for any [env RUNBACK_PORT; 8000]")
    ] = None,
    data_dir: DataDir = None,
    callback_allow: Annotated[
        str | None,
        typer.Option(
            help="Comma-separated CIDRs and host names that callbacks may reach although "
            "internal [env RUNBACK_CALLBACK_ALLOW]"
        ),
    ] = None,
    access_log: Annotated[
        bool | None, typer.Option("--access-log", help="Log every request")
    ] = None,
) -> None:
    """Serve the API, run models and deliver callbacks, in one process."""
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        callback_allow=callback_allow,
        access_log=access_log,
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    registry = register_builtins(ModelRegistry())

    def say(text: str) -> None:
        print(text, flush=True)

    _run(serve_forever(settings, registry=registry, say=say))


async def _create_key(settings: Settings, label: str | None) -> str:
    prepare_data_dir(settings.data_dir)
    async with open_store(
        settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
    ) as store:
        clock = SystemClock()
        organization, _ = await store.accounts.ensure_default_organization(now=clock.now())
        return await store.accounts.create_api_key([organization.id], now=clock.now(), label=label)


@keys_app.command("create")
def keys_create(
    data_dir: DataDir = None,
    label: Annotated[str | None, typer.Option(help="A name to tell the key apart")] = None,
) -> None:
    """Create an API key and print it (only it, on stdout, for scripts)."""
    settings = _settings(data_dir=data_dir)
    typer.echo(_run(_create_key(settings, label)))


def main() -> None:
    """The console script's entry point."""
    app()
