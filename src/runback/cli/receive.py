"""``runback receive`` and ``runback inbox``: the receiving side and its inspection."""

from __future__ import annotations

import os
from datetime import datetime
from pathlib import Path
from typing import Annotated
from uuid import UUID

import orjson
import typer

from runback.cli.common import (
    LogFormat,
    fail,
    run,
    say,
    settings_from,
    setup_logging,
    when,
    with_store,
)
from runback.core.inbox import Copy, InboxEvent, Receipt
from runback.errors import RunbackError
from runback.receiver.config import load_receive_config
from runback.receiver.handlers import HandlerRegistry
from runback.receiving.app import copy_view, event_view
from runback.receiving.handling import load_handlers
from runback.receiving.service import receive as receive_forever
from runback.settings import Settings
from runback.store import Store

inbox_app = typer.Typer(help="Received callbacks (runback receive's inbox).", no_args_is_help=True)

ReceiveDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="The receiver's data directory [env RUNBACK_RECEIVE_DATA_DIR; ./runback-receive-data]",
    ),
]


def receive(
    host: Annotated[str | None, typer.Option(help="Address to listen on [127.0.0.1]")] = None,
    port: Annotated[int | None, typer.Option(help="Port, 0 for any [8001]")] = None,
    data_dir: ReceiveDir = None,
    secret: Annotated[
        list[str] | None,
        typer.Option(help="A secret to verify with; repeat during a rotation"),
    ] = None,
    config: Annotated[Path | None, typer.Option(help="A TOML file of per-source settings")] = None,
    handlers: Annotated[
        list[str] | None, typer.Option(help="A module of handlers; repeat for several")
    ] = None,
    insecure: Annotated[
        bool | None, typer.Option("--insecure", help="Accept unsigned callbacks (development)")
    ] = None,
    callback_allow: Annotated[
        str | None,
        typer.Option(help="CIDRs and host names output URLs may reach although internal"),
    ] = None,
    log_format: LogFormat = None,
) -> None:
    """Receive callbacks: verify, persist once, answer fast, copy outputs in the background."""
    settings = settings_from(
        host=host,
        receive_port=port,
        receive_data_dir=data_dir,
        receive_secrets=tuple(secret) if secret else None,
        receive_config=config,
        receive_handlers=tuple(handlers) if handlers else None,
        receive_insecure=insecure,
        callback_allow=callback_allow,
        log_format=log_format,
    )
    setup_logging(settings)
    registry = HandlerRegistry()
    try:
        sources = load_receive_config(
            settings.receive_config,
            global_secrets=settings.receive_secrets,
            environ=os.environ,  # the edge: sender_key_env names are read here, once
        )
        load_handlers(registry, settings.receive_handlers)
    except RunbackError as exc:
        raise fail(str(exc)) from None
    run(receive_forever(settings.receiving_config(), sources=sources, handlers=registry, say=say))


def _inbox(data_dir: Path | None) -> Settings:
    return settings_from(receive_data_dir=data_dir)


@inbox_app.command("list")
@inbox_app.command("ls", hidden=True)  # the verb before all groups said "list"
def inbox_ls(
    data_dir: ReceiveDir = None,
    source: Annotated[str | None, typer.Option(help="Only this source")] = None,
    limit: Annotated[int, typer.Option(min=1, max=500)] = 50,
) -> None:
    """List received events, newest first."""
    settings = _inbox(data_dir)

    async def listed(store: Store, _now: datetime) -> list[InboxEvent]:
        found, _ = await store.inbox.page(source=source, after=None, limit=limit)
        return found

    for event in run(with_store(settings, listed, receiving=True)):
        typer.echo(
            f"{event.id}  {when(event.first_received_at)}  {event.source:<12} "
            f"{event.event or '-':<22} x{event.receipt_count}  handler {event.handler_state}"
            + ("  reconciled" if event.reconciled else "")
        )


@inbox_app.command("show")
def inbox_show(
    event_id: Annotated[str, typer.Argument(help="An event id from 'inbox ls'")],
    data_dir: ReceiveDir = None,
) -> None:
    """Show one event: its keys, receipts, copies and handler outcome (as JSON)."""
    settings = _inbox(data_dir)
    parsed = _event_id(event_id)

    async def shown(
        store: Store, _now: datetime
    ) -> tuple[InboxEvent, list[Receipt], list[Copy]] | None:
        return await store.inbox.event(parsed)

    found = run(with_store(settings, shown, receiving=True))
    if found is None:
        raise fail(f"there is no event {event_id}")
    event, receipts, copies = found
    view = event_view(event) | {
        "receipts": [
            {"id": str(r.id), "scheme": r.scheme, "received_at": when(r.received_at)}
            for r in receipts
        ],
        "copies": [copy_view(c) for c in copies],
    }
    typer.echo(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())


@inbox_app.command("replay")
def inbox_replay(
    event_id: Annotated[str, typer.Argument(help="An event id from 'inbox ls'")],
    data_dir: ReceiveDir = None,
) -> None:
    """Run an event's handlers again and retry its lost copies whose URLs still live."""
    settings = _inbox(data_dir)
    parsed = _event_id(event_id)

    async def replay(store: Store, now: datetime) -> bool:
        return await store.inbox.replay(parsed, now=now)

    if not run(with_store(settings, replay, receiving=True)):
        raise fail(f"there is no event {event_id}")
    typer.echo(f"event {event_id} will be handled again by the running receiver")


def _event_id(text: str) -> UUID:
    try:
        return UUID(text)
    except ValueError:
        raise fail(f"{text!r} is not an event id (see 'runback inbox ls')") from None
