"""``runback keys`` and ``runback orgs``: API keys and the organizations they act for."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from runback.cli.common import DataDir, run, settings_from, when, with_store
from runback.core.records import ApiKey, Organization
from runback.store import Store

keys_app = typer.Typer(help="API keys.", no_args_is_help=True)
orgs_app = typer.Typer(help="Organizations.", no_args_is_help=True)


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

    typer.echo(run(with_store(settings_from(data_dir=data_dir), create)))


@keys_app.command("list")
def keys_list(data_dir: DataDir = None) -> None:
    """List API keys (their prefixes, never the keys)."""

    async def listed(store: Store, _now: datetime) -> list[ApiKey]:
        return await store.accounts.list_keys()

    for key in run(with_store(settings_from(data_dir=data_dir), listed)):
        state = f"revoked {when(key.revoked_at)}" if key.revoked_at else "active"
        typer.echo(
            f"{key.id}  {key.key_prefix}...  {state:<27}  created {when(key.created_at)}  "
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

    revoked = run(with_store(settings_from(data_dir=data_dir), revoke))
    typer.echo(f"revoked {revoked.id} ({revoked.key_prefix}...)")


@orgs_app.command("create")
def orgs_create(
    name: Annotated[str, typer.Argument(help="A unique name")],
    data_dir: DataDir = None,
) -> None:
    """Create an organization and print its id."""

    async def create(store: Store, now: datetime) -> Organization:
        return await store.accounts.create_organization(name, now=now)

    typer.echo(run(with_store(settings_from(data_dir=data_dir), create)).id)


@orgs_app.command("list")
def orgs_list(data_dir: DataDir = None) -> None:
    """List organizations, the default (first) one first."""

    async def listed(store: Store, _now: datetime) -> list[Organization]:
        return await store.accounts.list_organizations()

    for organization in run(with_store(settings_from(data_dir=data_dir), listed)):
        typer.echo(
            f"{organization.id}  {organization.name}  created {when(organization.created_at)}"
        )
