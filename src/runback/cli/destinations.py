"""``runback destinations``: callback destinations that are failing or disabled."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer

from runback.cli.common import DataDir, fail, run, settings_from, when, with_store
from runback.core.destinations import Destination
from runback.store import Store

destinations_app = typer.Typer(help="Failing and disabled destinations.", no_args_is_help=True)


@destinations_app.command("list")
@destinations_app.command("ls", hidden=True)  # the verb before all groups said "list"
def destinations_ls(data_dir: DataDir = None) -> None:
    """List destinations whose circuit is open or that are disabled."""

    async def listed(store: Store, _now: datetime) -> list[Destination]:
        return sorted((await store.destinations.troubled()).values(), key=lambda d: d.host)

    for d in run(with_store(settings_from(data_dir=data_dir), listed)):
        state = f"disabled {when(d.disabled_at)}" if d.disabled_at else "failing"
        typer.echo(
            f"{d.host:<40} {state:<28} {d.consecutive_failures} failures in a row since "
            f"{when(d.failing_since)}"
        )


@destinations_app.command("enable")
def destinations_enable(
    host: Annotated[str, typer.Argument(help="host:port, as 'destinations ls' shows it")],
    data_dir: DataDir = None,
) -> None:
    """Forget a destination's failures: its deliveries are sent again at once."""

    async def enable(store: Store, now: datetime) -> bool:
        return await store.destinations.enable(host, now=now)

    if not run(with_store(settings_from(data_dir=data_dir), enable)):
        raise fail(f"{host} is neither failing nor disabled")
    typer.echo(f"{host} enabled")
