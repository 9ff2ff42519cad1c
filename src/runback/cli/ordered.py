"""``runback ordered``: callback URLs delivered in order, and releasing a stuck head."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated
from uuid import UUID

import typer

from runback.cli.common import DataDir, fail, run, settings_from, when, with_store
from runback.core.clock import SystemClock
from runback.core.records import Delivery
from runback.provider.ordering import Ordering
from runback.store import OrderedUrl, Store

ordered_app = typer.Typer(
    help="Callback URLs delivered one at a time, in order.", no_args_is_help=True
)

Url = Annotated[str, typer.Argument(help="The callback URL, exactly as runs give it")]
Org = Annotated[
    str | None, typer.Option(help="The organization, by name [the default organization]")
]


async def _organization(store: Store, org: str | None) -> UUID:
    if org is None:
        return (await store.accounts.list_organizations())[0].id
    return (await store.accounts.organizations_named([org]))[0].id


def _ordering(store: Store) -> Ordering:
    return Ordering(store=store, clock=SystemClock())


@ordered_app.command("on")
def ordered_on(url: Url, org: Org = None, data_dir: DataDir = None) -> None:
    """Deliver callbacks to URL in the order they are made, each after the previous one
    succeeded or failed (those made before are not ordered)."""

    async def switch(store: Store, _now: datetime) -> bool:
        _, made = await _ordering(store).switch_on(await _organization(store, org), url)
        return made

    made = run(with_store(settings_from(data_dir=data_dir), switch))
    typer.echo(f"{url} ordered" if made else f"{url} was already ordered")


@ordered_app.command("off")
def ordered_off(url: Url, org: Org = None, data_dir: DataDir = None) -> None:
    """Stop ordering callbacks to URL: those waiting their turn go out at once."""

    async def switch(store: Store, _now: datetime) -> bool:
        return await _ordering(store).switch_off(await _organization(store, org), url)

    if not run(with_store(settings_from(data_dir=data_dir), switch)):
        raise fail(f"{url} is not ordered")
    typer.echo(f"{url} no longer ordered")


@ordered_app.command("list")
@ordered_app.command("ls", hidden=True)  # the verb before all groups said "list"
def ordered_ls(org: Org = None, data_dir: DataDir = None) -> None:
    """List ordered URLs, each with its head: the oldest callback in flight, which every
    later one waits for."""

    async def listed(store: Store, _now: datetime) -> list[OrderedUrl]:
        return await _ordering(store).listing(await _organization(store, org))

    for found in run(with_store(settings_from(data_dir=data_dir), listed)):
        head = found.head
        if head is None:
            typer.echo(f"{found.ordered.callback_url}  nothing in flight")
            continue
        typer.echo(
            f"{found.ordered.callback_url}  {found.in_flight} in flight; head {head.id} "
            f"{head.status.value}, {head.attempt_count} attempts, next {when(head.next_attempt_at)}"
            f", last failure {head.failure_reason_code or '-'}"
        )


@ordered_app.command("release")
def ordered_release(url: Url, org: Org = None, data_dir: DataDir = None) -> None:
    """Give up the head of URL (it fails with 'released'): the next one goes."""

    async def release(store: Store, _now: datetime) -> Delivery:
        return await _ordering(store).release(await _organization(store, org), url)

    released = run(with_store(settings_from(data_dir=data_dir), release))
    typer.echo(
        f"released {released.id} (run {released.run_id or '-'}) after "
        f"{released.attempt_count} attempts"
    )
