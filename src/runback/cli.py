"""The ``runback`` command line.

Each command builds the one ``Settings`` from its flags and ``RUNBACK_*`` variables, then
hands it down. Errors runback expects print as one line on stderr (exit status 1), never as a
traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
import uvloop

from runback.core.clock import SystemClock
from runback.core.records import ApiKey, Organization
from runback.datadir import prepare_data_dir
from runback.errors import RunbackError
from runback.models import register_builtins
from runback.provider.discovery import load_models
from runback.provider.registry import ModelRegistry
from runback.provider.server import serve as serve_forever
from runback.settings import Settings, load_settings
from runback.store import Store, open_store

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
orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")

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
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--models",
            help="A module whose models to serve; repeat for several [env RUNBACK_MODELS]",
        ),
    ] = None,
) -> None:
    """Serve the API, run models and deliver callbacks, in one process."""
    settings = _settings(
        host=host,
        port=port,
        data_dir=data_dir,
        callback_allow=callback_allow,
        access_log=access_log,
        models=tuple(models) if models else None,
    )
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    registry = register_builtins(ModelRegistry())
    try:
        loaded = load_models(registry, settings.models)
    except RunbackError as exc:
        typer.echo(f"runback: {exc}", err=True)
        raise typer.Exit(2) from None
    if loaded:
        logging.getLogger("runback").info("models from %s", ", ".join(loaded))

    def say(text: str) -> None:
        print(text, flush=True)

    _run(serve_forever(settings, registry=registry, say=say))


async def _with_store(settings: Settings, work: Callable[[Store, datetime], Awaitable[T]]) -> T:
    """Open (and migrate) the data directory's database, make sure the default
    organization exists, and do ``work`` with the store and the time now."""
    prepare_data_dir(settings.data_dir)
    async with open_store(
        settings.effective_database_url, sqlite_synchronous=settings.sqlite_synchronous
    ) as store:
        clock = SystemClock()
        await store.accounts.ensure_default_organization(now=clock.now())
        return await work(store, clock.now())


def _when(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime("%Y-%m-%d %H:%M:%S")


@keys_app.command("create")
def keys_create(
    data_dir: DataDir = None,
    org: Annotated[
        list[str] | None,
        typer.Option(
            help="An organization of the key, by name; repeat for several, the "
            "first is its default [the default organization]"
        ),
    ] = None,
    label: Annotated[str | None, typer.Option(help="A name to tell the key apart")] = None,
) -> None:
    """Create an API key and print it (only it, on stdout, for scripts)."""

    async def create(store: Store, now: datetime) -> str:
        names = org or [(await store.accounts.list_organizations())[0].name]
        members = await store.accounts.organizations_named(names)
        return await store.accounts.create_api_key([o.id for o in members], now=now, label=label)

    typer.echo(_run(_with_store(_settings(data_dir=data_dir), create)))


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List API keys (their prefixes, never the keys)."""

    async def listed(store: Store, _now: datetime) -> list[ApiKey]:
        return await store.accounts.list_keys()

    for key in _run(_with_store(_settings(data_dir=data_dir), listed)):
        state = f"revoked {_when(key.revoked_at)}" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}  {key.key_prefix}...  {state:<27}  created {_when(key.created_at)}  "
            f"orgs {','.join(key.organizations)}  {key.label or ''}".rstrip()
        )


@keys_app.command("revoke")
def keys_revoke(
    key: Annotated[str, typer.Argument(help="The key's id or its prefix, from 'keys list'")],
    data_dir: DataDir = None,
) -> None:
    """Revoke an API key: it answers 401 from the next request on."""

    async def revoke(store: Store, now: datetime) -> ApiKey:
        return await store.accounts.revoke_key(key, now=now)

    revoked = _run(_with_store(_settings(data_dir=data_dir), revoke))
    typer.echo(f"revoked {revoked.id} ({revoked.key_prefix}...)")


@orgs_app.command("create")
def orgs_create(
    name: Annotated[str, typer.Argument(help="A unique name")],
    data_dir: DataDir = None,
) -> None:
    """Create an organization and print its id."""

    async def create(store: Store, now: datetime) -> Organization:
        return await store.accounts.create_organization(name, now=now)

    typer.echo(_run(_with_store(_settings(data_dir=data_dir), create)).id)


@orgs_app.command("list")
def orgs_list(data_dir: DataDir = None) -> None:
    """List organizations, the default (first) one first."""

    async def listed(store: Store, _now: datetime) -> list[Organization]:
        return await store.accounts.list_organizations()

    for organization in _run(_with_store(_settings(data_dir=data_dir), listed)):
        typer.echo(
            f"{organization.id}  {organization.name}  created {_when(organization.created_at)}"
        )


def main() -> None:
    """The console script's entry point."""
    app()
